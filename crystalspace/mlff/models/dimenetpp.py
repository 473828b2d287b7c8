"""DimeNet++ (Gasteiger et al. 2020): torch-geometric's blocks with periodic, pure-torch triplets.

``torch_geometric.nn.models.DimeNetPlusPlus`` needs ``torch_sparse`` for its triplets and a
non-periodic radius graph. This subclass keeps its radial/spherical bases, embedding, interaction
and output blocks and builds the k → j → i triplets with argsort/bincount/repeat_interleave.
Under periodic boundaries k may equal i as a *different image*; only the exact reverse image of
j → i is dropped.

Memory grows with the number of triplets (≈ edges × neighbours: about 10⁵ per 50-atom LGPS cell at
6 Å, a few KB each with autograd). :meth:`DimeNetPP.edge_work` reports them so that
:meth:`crystalspace.mlff.potential.Potential.batched` evaluates large replica batches in chunks
of at most ``Potential.max_work`` triplets (exact: replicas are independent).
"""

from __future__ import annotations

import torch
from torch import Tensor

from crystalspace.mlff.models.base import ForceField, GraphInput, scatter_sum


def periodic_triplets(edge_index: Tensor, shift: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Edge pairs (k → j, j → i) sharing atom j, without the reverse image of j → i.

    Returns ``idx_kj`` and ``idx_ji`` (T,), indices into the edge list.
    """
    src, tgt = edge_index
    order = torch.argsort(tgt, stable=True)
    deg = torch.bincount(tgt, minlength=num_nodes)
    start = torch.cumsum(deg, 0) - deg
    counts = deg[src]  # for edge j→i: edges arriving at j
    idx_ji = torch.repeat_interleave(torch.arange(src.numel(), device=src.device), counts)
    offset = torch.arange(idx_ji.numel(), device=src.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    idx_kj = order[start[src[idx_ji]] + offset]
    reverse = (src[idx_kj] == tgt[idx_ji]) & (shift[idx_kj] == -shift[idx_ji]).all(dim=-1)
    return idx_kj[~reverse], idx_ji[~reverse]


class DimeNetPP(ForceField):
    """DimeNet++ energy model on periodic graphs (interaction size hidden/2, output size 2·hidden by default)."""

    arch = "dimenetpp"

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 4,
        int_emb_size: int | None = None,
        basis_emb_size: int = 8,
        out_emb_channels: int | None = None,
        num_spherical: int = 7,
        num_radial: int = 6,
    ) -> None:
        int_emb_size = int_emb_size or max(hidden // 2, 8)
        out_emb_channels = out_emb_channels or 2 * hidden
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            int_emb_size=int_emb_size,
            basis_emb_size=basis_emb_size,
            out_emb_channels=out_emb_channels,
            num_spherical=num_spherical,
            num_radial=num_radial,
        )
        from torch_geometric.nn.models import DimeNetPlusPlus

        self.net = DimeNetPlusPlus(
            hidden_channels=hidden,
            out_channels=1,
            num_blocks=layers,
            int_emb_size=int_emb_size,
            basis_emb_size=basis_emb_size,
            out_emb_channels=out_emb_channels,
            num_spherical=num_spherical,
            num_radial=num_radial,
            cutoff=cutoff,
            output_initializer="glorot_orthogonal",
        )

    def edge_work(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Triplets of each edge j → i (edges arriving at j), which dominate DimeNet++'s memory."""
        deg = torch.bincount(edge_index[1], minlength=num_nodes)
        return deg[edge_index[0]].to(torch.float32) + 1.0

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        assert g.shift is not None, "DimeNet++ needs edge shifts"
        net, n = self.net, g.z.numel()
        i = g.edge_index[1]
        idx_kj, idx_ji = periodic_triplets(g.edge_index, g.shift, n)
        dist = g.dist
        v_ji, v_kj = g.vec[idx_ji], g.vec[idx_kj]
        angle = torch.atan2(torch.cross(v_ji, v_kj, dim=-1).norm(dim=-1), (v_ji * v_kj).sum(-1))
        rbf = net.rbf(dist)
        sbf = net.sbf(dist, angle, idx_kj)
        x = net.emb(g.z, rbf, i, g.edge_index[0])
        p = net.output_blocks[0](x, rbf, i, num_nodes=n)
        for block, out in zip(net.interaction_blocks, net.output_blocks[1:], strict=True):
            x = block(x, rbf, sbf, idx_kj, idx_ji)
            p = p + out(x, rbf, i, num_nodes=n)
        return scatter_sum(p.reshape(n), g.batch, g.num_graphs), None
