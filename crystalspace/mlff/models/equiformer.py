"""Equiformer (Liao & Smidt 2023): an E(3)-equivariant graph attention transformer, built with e3nn.

Node features are irreps ``H×0e + (H/2)×1o [+ (H/4)×2e …]`` up to ``lmax``. Each block is pre-norm:
``x + Attention(LN(x))`` then ``x + FFN(LN(x))``, with an equivariant layer norm (scalars centred,
all irrep types scaled by one shared RMS), and the FFN an e3nn ``Linear`` → ``Gate`` → ``Linear``.

Attention: the source and target features are merged by two linears, then a depthwise tensor
product (``uvu``) with the spherical harmonics of the edge, its weights an MLP of a Gaussian radial
basis. The scalars of that product give one invariant logit per head (smooth leaky ReLU, then a dot
product); the whole product, gated and passed through a second depthwise tensor product and a
linear, is the value (the paper's non-linear message; ``nonlinear=False`` takes a linear map of the
product instead, as the reference OC20 configuration does). The softmax over neighbours is weighted by the
cosine envelope, ``α_ij = fc_ij · fc_ij e^{a_ij} / Σ_k fc_ik e^{a_ik}``, so a neighbour entering the
cutoff (even the only one) changes the energy smoothly. The first features are an atom embedding plus
an edge-degree embedding (enveloped radial weights times spherical harmonics, summed over neighbours).
Energy = Σ atoms of an MLP of the last block's scalars; forces by autograd.

Parity is kept (SH of odd ``l`` are odd), so the model is E(3)-equivariant; the reference design
(atomicarchitects/equiformer, MIT) also offers an SE(3) variant that drops parity. Dropout and drop
path are left out. Uses e3nn (``o3.Linear``, ``o3.TensorProduct`` with per-edge weights,
``o3.spherical_harmonics``, ``e3nn.nn.Gate``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import (
    MAX_Z,
    ForceField,
    GaussianBasis,
    GraphInput,
    cosine_cutoff,
    scatter_sum,
)

if TYPE_CHECKING:
    from e3nn.o3 import Irreps


def _node_irreps(hidden: int, lmax: int, ratio: int = 1) -> Irreps:
    """``ratio·H×0e + ratio·H/2×1o + …``: the multiplicity halves with each ``l``, parity (−1)^l."""
    from e3nn import o3

    return o3.Irreps([(ratio * (hidden >> deg), (deg, (-1) ** deg)) for deg in range(lmax + 1)])


def _gate(irreps_out: Irreps) -> Any:
    """An e3nn ``Gate`` whose output is ``irreps_out`` (SiLU on scalars, sigmoid gates on the rest)."""
    from e3nn import o3
    from e3nn.nn import Gate

    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    return Gate(
        scalars,
        [torch.nn.functional.silu],
        o3.Irreps(f"{gated.num_irreps}x0e"),
        [torch.sigmoid],
        gated,
    )


def _smooth_leaky_relu(x: Tensor, slope: float = 0.2) -> Tensor:
    """The paper's smooth leaky ReLU: ``(1+s)/2·x + (1−s)/2·x·(2σ(x)−1)``."""
    return 0.5 * (1 + slope) * x + 0.5 * (1 - slope) * x * (2 * torch.sigmoid(x) - 1)


class _RadialMLP(nn.Sequential):
    """Radial basis → per-edge tensor-product weights (Linear, LayerNorm, SiLU; Equiformer's profile)."""

    def __init__(self, num_basis: int, width: int, out: int) -> None:
        super().__init__(
            nn.Linear(num_basis, width),
            nn.LayerNorm(width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.LayerNorm(width),
            nn.SiLU(),
            nn.Linear(width, out),
        )


class _DepthwiseTP(nn.Module):
    """Channel-wise (``uvu``) tensor product of node irreps with edge SH, kept to the irreps in ``keep``.

    ``shared`` weights are learned once; otherwise they come per edge from the caller.
    """

    def __init__(self, irreps_in: Irreps, irreps_sh: Irreps, keep: Irreps, shared: bool = False) -> None:
        super().__init__()
        from e3nn import o3

        wanted = {ir for _, ir in keep}
        mid: list[tuple[int, Any]] = []
        instructions: list[tuple[int, int, int, str, bool]] = []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in wanted:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid, perm, _ = o3.Irreps(mid).sort()
        self.tp = o3.TensorProduct(
            irreps_in,
            irreps_sh,
            irreps_mid,
            [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions],
            shared_weights=shared,
            internal_weights=shared,
        )
        self.irreps_out = irreps_mid

    @property
    def weight_numel(self) -> int:
        return int(self.tp.weight_numel)

    def forward(self, x: Tensor, sh: Tensor, weight: Tensor | None = None) -> Tensor:
        return self.tp(x, sh) if weight is None else self.tp(x, sh, weight)


class _EquivariantLayerNorm(nn.Module):
    """Layer norm of irreps: scalars centred, then every irrep type divided by one RMS shared by all
    types (the mean over ``l`` of each type's mean square), then a learned scale per channel and a bias
    on scalars.

    One shared RMS (as EquiformerV2 does) rather than one per type: where symmetry makes the ``l > 0``
    features vanish (a cubic site), a per-type norm would magnify their rounding noise layer after layer.
    """

    def __init__(self, irreps: Irreps, eps: float = 1e-5) -> None:
        super().__init__()
        self.blocks = [(mul, ir.dim, ir.l == 0) for mul, ir in irreps]
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(irreps.num_irreps))
        num_scalars = sum(mul for mul, _, scalar in self.blocks if scalar)
        self.bias = nn.Parameter(torch.zeros(num_scalars))

    def forward(self, x: Tensor) -> Tensor:
        fields, start = [], 0
        for mul, dim, scalar in self.blocks:
            f = x[:, start : start + mul * dim].reshape(-1, mul, dim)
            start += mul * dim
            fields.append(f - f.mean(dim=1, keepdim=True) if scalar else f)
        mean_square = torch.stack([f.pow(2).mean(dim=(1, 2)) for f in fields]).mean(dim=0)
        inv_rms = torch.rsqrt(mean_square + self.eps).view(-1, 1, 1)
        out, w0, b0 = [], 0, 0
        for f, (mul, dim, scalar) in zip(fields, self.blocks, strict=True):
            f = f * inv_rms * self.weight[w0 : w0 + mul].view(1, mul, 1)
            w0 += mul
            if scalar:
                f = f + self.bias[b0 : b0 + mul].view(1, mul, 1)
                b0 += mul
            out.append(f.reshape(-1, mul * dim))
        return torch.cat(out, dim=-1)


class _Edges:
    """What every attention layer needs of the edges: ends, SH, radial basis and envelope."""

    def __init__(self, g: GraphInput, sh: Tensor, rbf: Tensor, fc: Tensor) -> None:
        self.src, self.dst = g.edge_index  # neighbour j, centre i
        self.sh, self.rbf, self.fc = sh, rbf, fc
        self.num_nodes = g.z.shape[0]


def _enveloped_softmax(logits: Tensor, fc: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """``α_ij = fc_ij · fc_ij e^{a_ij} / Σ_k fc_ik e^{a_ik}`` per centre ``i`` and head (E, heads).

    The shift (the per-centre maximum of ``a + log fc``) cancels exactly; it only keeps ``exp`` finite.
    """
    tiny = torch.finfo(logits.dtype).tiny
    log_w = logits + torch.log(fc.clamp_min(tiny)).unsqueeze(-1)
    shift = torch.full((num_nodes, logits.shape[1]), -math.inf, dtype=logits.dtype, device=logits.device)
    shift = shift.scatter_reduce(0, dst.unsqueeze(-1).expand_as(log_w), log_w.detach(), "amax")
    w = torch.exp(log_w - shift[dst])
    denom = scatter_sum(w, dst, num_nodes).clamp_min(tiny)
    return fc.unsqueeze(-1) * w / denom[dst]


class _GraphAttention(nn.Module):
    """Equivariant graph attention: invariant logits from the message scalars, equivariant values."""

    head_of: Tensor

    def __init__(
        self,
        irreps: Irreps,
        irreps_sh: Irreps,
        num_basis: int,
        radial_width: int,
        heads: int,
        nonlinear: bool,
    ) -> None:
        super().__init__()
        from e3nn import o3

        self.heads = heads
        self.merge_src = o3.Linear(irreps, irreps, biases=True)
        self.merge_dst = o3.Linear(irreps, irreps, biases=False)
        self.dtp = _DepthwiseTP(irreps, irreps_sh, irreps)
        self.radial = _RadialMLP(num_basis, radial_width, self.dtp.weight_numel)
        num_scalars = irreps.count("0e")
        self.alpha = o3.Linear(self.dtp.irreps_out, o3.Irreps(f"{num_scalars}x0e"))
        self.alpha_dot = nn.Parameter(torch.randn(heads, num_scalars // heads) * (heads / num_scalars) ** 0.5)
        if nonlinear:  # value = Linear(DTP(Gate(Linear(message)), SH)), the DTP weights shared
            gate = _gate(irreps)
            self.value_in: nn.Module = nn.Sequential(o3.Linear(self.dtp.irreps_out, gate.irreps_in), gate)
            self.value_tp: nn.Module | None = _DepthwiseTP(irreps, irreps_sh, irreps, shared=True)
            self.value = o3.Linear(self.value_tp.irreps_out, irreps)
        else:  # value = Linear(message)
            self.value_in, self.value_tp = nn.Identity(), None
            self.value = o3.Linear(self.dtp.irreps_out, irreps)
        self.proj = o3.Linear(irreps, irreps)
        # the head of each feature component: channels of every irrep type are split evenly over heads
        head_of = [torch.arange(heads).repeat_interleave(mul // heads * ir.dim) for mul, ir in irreps]
        self.register_buffer("head_of", torch.cat(head_of), persistent=False)

    def forward(self, x: Tensor, e: _Edges) -> Tensor:
        msg = self.merge_src(x)[e.src] + self.merge_dst(x)[e.dst]
        msg = self.dtp(msg, e.sh, self.radial(e.rbf))
        a = _smooth_leaky_relu(self.alpha(msg).view(msg.shape[0], self.heads, -1))
        alpha = _enveloped_softmax((a * self.alpha_dot).sum(-1), e.fc, e.dst, e.num_nodes)
        value = self.value_in(msg)
        if self.value_tp is not None:
            value = self.value_tp(value, e.sh)
        value = self.value(value)
        return self.proj(scatter_sum(value * alpha[:, self.head_of], e.dst, e.num_nodes))


class _FeedForward(nn.Module):
    """Equivariant two-layer MLP: ``Linear`` → ``Gate`` → ``Linear``."""

    def __init__(self, irreps_in: Irreps, irreps_mid: Irreps, irreps_out: Irreps) -> None:
        super().__init__()
        from e3nn import o3

        self.gate = _gate(irreps_mid)
        self.lin1 = o3.Linear(irreps_in, self.gate.irreps_in, biases=True)
        self.lin2 = o3.Linear(irreps_mid, irreps_out, biases=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(self.gate(self.lin1(x)))


class _Block(nn.Module):
    """Pre-norm transformer block: attention and feed-forward, each with a residual."""

    def __init__(
        self,
        irreps: Irreps,
        irreps_out: Irreps,
        irreps_sh: Irreps,
        irreps_mid: Irreps,
        num_basis: int,
        radial_width: int,
        heads: int,
        nonlinear: bool,
    ) -> None:
        super().__init__()
        from e3nn import o3

        self.norm1 = _EquivariantLayerNorm(irreps)
        self.attn = _GraphAttention(irreps, irreps_sh, num_basis, radial_width, heads, nonlinear)
        self.norm2 = _EquivariantLayerNorm(irreps)
        self.ffn = _FeedForward(irreps, irreps_mid, irreps_out)
        self.shortcut = None if irreps_out == irreps else o3.Linear(irreps, irreps_out, biases=True)

    def forward(self, x: Tensor, e: _Edges) -> Tensor:
        x = x + self.attn(self.norm1(x), e)
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + self.ffn(self.norm2(x))


class _EdgeDegreeEmbedding(nn.Module):
    """Σ_j fc_ij · Linear(R_l(r_ij) ⊗ Y_l(r̂_ij)) / √avg_degree: the first non-scalar features."""

    def __init__(self, hidden: int, lmax: int, irreps: Irreps, num_basis: int, radial_width: int) -> None:
        super().__init__()
        from e3nn import o3

        self.hidden, self.lmax = hidden, lmax
        self.radial = _RadialMLP(num_basis, radial_width, hidden * (lmax + 1))
        irreps_edge = o3.Irreps([(hidden, (deg, (-1) ** deg)) for deg in range(lmax + 1)])
        self.proj = o3.Linear(irreps_edge, irreps)

    def forward(self, e: _Edges, avg_degree: float) -> Tensor:
        w = self.radial(e.rbf).view(-1, self.lmax + 1, self.hidden)
        parts = []
        for deg in range(self.lmax + 1):
            sh = e.sh[:, deg * deg : (deg + 1) * (deg + 1)]
            parts.append((w[:, deg].unsqueeze(-1) * sh.unsqueeze(1)).flatten(1))
        edge = self.proj(torch.cat(parts, dim=-1)) * e.fc.unsqueeze(-1)
        return scatter_sum(edge, e.dst, e.num_nodes) / math.sqrt(avg_degree)


class Equiformer(ForceField):
    """Equiformer energy model: irreps ``H×0e + H/2×1o + …`` to ``lmax``, ``layers`` attention blocks.

    Args:
        hidden: scalar channels ``H`` (the multiplicity of ``l`` is ``H / 2^l``).
        layers: transformer blocks.
        lmax: highest rotation order of the features and edge spherical harmonics.
        heads: attention heads (they split every irrep type's channels evenly).
        ffn_ratio: width of the feed-forward hidden irreps, in multiples of the node irreps.
        nonlinear: non-linear value messages (gate and a second tensor product, the paper's
            best variant); False takes a linear map of the tensor-product message.
        num_basis: Gaussian radial basis functions.
        radial_width: width of the radial MLPs that give the tensor-product weights.
        avg_degree: neighbours per atom the edge-degree embedding is normalised by.
    """

    arch = "equiformer"
    symmetry = "SE(3)/E(3)-equivariant"
    # the study ran the reference OC20 configuration: 256×0e+128×1o, 6 blocks, 8 heads, linear messages
    study_hparams: ClassVar[dict[str, Any]] = {
        "hidden": 256,
        "layers": 6,
        "lmax": 1,
        "heads": 8,
        "nonlinear": False,
    }
    study_params = 7.84e6

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 6,
        lmax: int = 2,
        heads: int = 4,
        ffn_ratio: int = 3,
        nonlinear: bool = True,
        num_basis: int = 128,
        radial_width: int = 64,
        avg_degree: float = 40.0,
    ) -> None:
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            lmax=lmax,
            heads=heads,
            ffn_ratio=ffn_ratio,
            nonlinear=nonlinear,
            num_basis=num_basis,
            radial_width=radial_width,
            avg_degree=avg_degree,
        )
        self.check_hparams(self.hparams)
        from e3nn import o3

        irreps = _node_irreps(hidden, lmax)
        irreps_mid = _node_irreps(hidden, lmax, ffn_ratio)
        irreps_feature = o3.Irreps(f"{2 * hidden}x0e")
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.avg_degree = avg_degree
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.embed_pad = irreps.dim - hidden
        self.basis = GaussianBasis(cutoff, num_basis)
        self.edge_degree = _EdgeDegreeEmbedding(hidden, lmax, irreps, num_basis, radial_width)
        self.blocks = nn.ModuleList(
            _Block(
                irreps,
                irreps_feature if k == layers - 1 else irreps,
                self.irreps_sh,
                irreps_mid,
                num_basis,
                radial_width,
                heads,
                nonlinear,
            )
            for k in range(layers)
        )
        self.norm = _EquivariantLayerNorm(irreps_feature)
        self.head = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, 1))

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        hidden, lmax = int(hparams.get("hidden", 128)), int(hparams.get("lmax", 2))
        heads, layers = int(hparams.get("heads", 4)), int(hparams.get("layers", 6))
        if not 1 <= lmax <= 3:
            raise ValueError(f"lmax must be 1, 2 or 3, got {lmax}")
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        smallest = hidden >> lmax
        if heads < 1 or hidden % (1 << lmax) or smallest % heads:
            raise ValueError(
                f"hidden ({hidden}) must be divisible by 2^lmax ({1 << lmax}) and hidden/2^lmax "
                f"by heads ({heads})"
            )

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        from e3nn import o3

        d = g.dist
        sh = o3.spherical_harmonics(self.irreps_sh, g.vec, normalize=True, normalization="component")
        e = _Edges(g, sh, self.basis(d), cosine_cutoff(d, self.cutoff))
        x = nn.functional.pad(self.embed(g.z), (0, self.embed_pad))
        x = x + self.edge_degree(e, self.avg_degree)
        for block in self.blocks:
            x = block(x, e)
        atomic = self.head(self.norm(x)).squeeze(-1)
        return scatter_sum(atomic, g.batch, g.num_graphs), None
