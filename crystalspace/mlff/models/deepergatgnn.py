"""DeeperGATGNN (Omee et al. 2022, Patterns 3, 100491) as a smooth, extensive force field.

Omee et al. deepen GATGNN (Louis et al. 2020) with residual skip connections and differentiable
group normalisation. The design here follows their reference code (usccolumbia/deeperGATGNN), which
the MLFF study also runs. A 128-wide atom embedding and a Gaussian distance basis are projected to
``conv_hidden`` channels. Then come ``layers`` augmented graph-attention (AGAT) layers, each with a
norm and a residual skip connection. In an AGAT layer each of ``heads`` heads transforms the centre and
the neighbour, each concatenated with the edge feature, by a shared matrix and softplus. It scores
the pair with an attention vector and weights the neighbour term by its normalised score. The heads
are averaged. A per-atom attention gate scales the features, and an MLP gives one energy term per
atom. At width 128, 5 layers and 100 Gaussians this is the study's 0.22 M parameters.

Attention is written here rather than imported. PyG's ``GATConv``, ``GATv2Conv`` and
``TransformerConv`` normalise the scores with a plain softmax over neighbours. That is not smooth at
the cutoff: a lone neighbour gets weight 1 however far it is. The changes:

- Enveloped softmax: ``w_ij = c(r_ij) · softmax_j(s_ij + log c(r_ij))``, where ``c`` is the cosine
  envelope. The envelope is added to the logits as a log and also multiplies the weight. A
  neighbour's weight then goes smoothly to zero at the cutoff, and so does its effect on the others'
  weights, so the energy is smooth.
- A per-atom LayerNorm on each layer's input (pre-norm residual) replaces DiffGroupNorm on its
  output, and a per-head affine map replaces the batch norm of the attention scores. DiffGroupNorm
  and batch norm use batch statistics in training. Then one structure's energy, and the forces
  trained on it, would depend on the other structures of its batch, and eval mode would compute a
  different function (running statistics). A norm on the layer output would be scale-invariant: it
  would blow a weak message from a neighbour near the cutoff up to full size. On the input it
  normalises the atom state and leaves the message's magnitude alone.
- The global attention weights atoms by a sigmoid of a per-atom MLP instead of a softmax over the
  crystal. Its output is summed per atom rather than pooled before the output MLP. The energy is
  then a sum of local atom terms, extensive under supercells. The reference's softmax-then-pool
  readout is intensive.
- Softplus everywhere; the reference's leaky ReLU on the edge features has kinks.

Forces come from autograd.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional

from crystalspace.mlff.models.base import (
    MAX_Z,
    ForceField,
    GaussianBasis,
    GraphInput,
    cosine_cutoff,
    scatter_sum,
)


def enveloped_softmax(score: Tensor, env: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """Attention weights ``c_ij · softmax_j(s_ij + log c_ij)`` over the edges of each centre ``i``.

    Args:
        score: (E, H) attention scores ``s``.
        env: (E,) envelope ``c``, positive inside the cutoff, zero with zero slope at it.
        index: (E,) centre of each edge.
        num_nodes: number of centres.

    A neighbour near the cutoff gets a weight of order ``c²`` and shifts the others by order ``c``,
    so the weights are smooth as neighbours cross the cutoff; a lone neighbour gets weight ``c``.
    The logits are shifted by their detached per-centre maximum, which leaves the weights and their
    gradients exact and keeps each denominator at least one.
    """
    heads = score.shape[1]
    tiny = torch.finfo(env.dtype).tiny
    logit = score + torch.log(env.clamp_min(tiny)).unsqueeze(-1)
    expanded = index.unsqueeze(-1).expand(-1, heads)
    shift = logit.new_full((num_nodes, heads), -torch.inf)
    shift = shift.scatter_reduce(0, expanded, logit.detach(), "amax")
    num = torch.exp(logit - shift[index])
    return env.unsqueeze(-1) * num / scatter_sum(num, index, num_nodes)[index]


class _AGATLayer(nn.Module):
    """Augmented graph-attention layer of GATGNN with ``heads`` heads, enveloped and normalised per atom."""

    def __init__(self, f: int, heads: int) -> None:
        super().__init__()
        self.f, self.heads = f, heads
        self.w = nn.Parameter(torch.empty(2 * f, heads * f))
        self.att = nn.Parameter(torch.empty(heads, 2 * f))
        self.score_scale = nn.Parameter(torch.ones(heads))
        self.score_shift = nn.Parameter(torch.zeros(heads))
        self.bias = nn.Parameter(torch.zeros(f))
        nn.init.xavier_uniform_(self.w)
        nn.init.xavier_uniform_(self.att)

    def forward(self, x: Tensor, edge_attr: Tensor, edge_index: Tensor, env: Tensor) -> Tensor:
        src, tgt = edge_index  # neighbour j, centre i
        n, e = x.shape[0], edge_attr.shape[0]
        # [x, e] @ W split as x @ W_x + e @ W_e: the node part once per atom, the edge part shared
        node, edge = x @ self.w[: self.f], edge_attr @ self.w[self.f :]
        h_i = functional.softplus(node[tgt] + edge).view(e, self.heads, self.f)
        h_j = functional.softplus(node[src] + edge).view(e, self.heads, self.f)
        pair = (h_i * self.att[:, : self.f]).sum(dim=-1) + (h_j * self.att[:, self.f :]).sum(dim=-1)
        score = functional.softplus(pair)
        score = functional.softplus(score * self.score_scale + self.score_shift)
        weight = enveloped_softmax(score, env, tgt, n)
        out = scatter_sum(h_j * weight.unsqueeze(-1), tgt, n)
        return out.mean(dim=1) + self.bias


class DeeperGATGNN(ForceField):
    """DeeperGATGNN energy model: ``hidden``-wide embedding, ``layers`` residual AGAT layers of width
    ``conv_hidden`` (``hidden // 2`` by default) with ``heads`` heads."""

    arch = "deepergatgnn"
    symmetry = "E(3)-invariant"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 5, "heads": 4, "num_gaussians": 100}
    study_params = 0.22e6

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 5,
        heads: int = 4,
        conv_hidden: int | None = None,
        num_gaussians: int = 100,
    ) -> None:
        self.check_hparams({"hidden": hidden, "layers": layers, "heads": heads, "conv_hidden": conv_hidden})
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            heads=heads,
            conv_hidden=conv_hidden,
            num_gaussians=num_gaussians,
        )
        c = conv_hidden or max(hidden // 2, 1)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.basis = GaussianBasis(cutoff, num_gaussians)
        self.node_in = nn.Linear(hidden, c)
        self.edge_in = nn.Linear(num_gaussians, c)
        self.convs = nn.ModuleList([_AGATLayer(c, heads) for _ in range(layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(c) for _ in range(layers)])
        self.gate = nn.Sequential(
            nn.Linear(c, c), nn.Softplus(), nn.Linear(c, c), nn.Softplus(), nn.Linear(c, 1)
        )
        self.head = nn.Sequential(nn.Linear(c, c), nn.Softplus(), nn.Linear(c, 1))

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        for key in ("hidden", "layers", "heads"):
            if key in hparams and int(hparams[key]) < 1:
                raise ValueError(f"{key} ({hparams[key]}) must be at least 1")
        conv = hparams.get("conv_hidden")
        if conv is not None and int(conv) < 1:
            raise ValueError(f"conv_hidden ({conv}) must be at least 1")

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        d = g.dist
        env = cosine_cutoff(d, self.cutoff)
        edge_attr = functional.softplus(self.edge_in(self.basis(d)))
        x = functional.softplus(self.node_in(self.embed(g.z)))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = x + conv(norm(x), edge_attr, g.edge_index, env)
        x = x * torch.sigmoid(self.gate(x))
        return scatter_sum(self.head(x).squeeze(-1), g.batch, g.num_graphs), None
