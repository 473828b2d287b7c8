"""Spherical channels in edge frames: what SCN and eSCN share.

Node features are spherical-harmonic coefficients ``(N, (lmax+1)², C)`` in e3nn's real basis (the
polar axis is y; the l = 1 block is (x, y, z)). A message is computed in each edge's own frame, in
which the edge points along +y, keeping the orders |m| ≤ mmax: :class:`EdgeFrame` gives the rows of
the Wigner-D matrix of that rotation. The frame is fixed only up to a rotation about the edge; any
operation that commutes with those rotations (the SO(2) about y), rotated in and out with the same
matrix, is exactly SO(3) equivariant. In the edge frame the m = 0 coefficients are invariant and each
pair (−m, +m) is a complex number ``z = x₋ₘ + i·x₊ₘ`` that turns by a phase, so complex-linear maps,
functions of the m = 0 coefficients and of |z|², and real gates are all allowed.

Reduced edge-frame coefficients are ordered by m: the m = 0 block (l = 0…lmax), then for each
m = 1…mmax the −m block and the +m block (l = m…lmax each).

Built on e3nn's Wigner-D matrices (``o3.Irrep.D_from_matrix``; e3nn, MIT); the design follows
fairchem's SCN/eSCN (MIT), Zitnick et al. 2022 and Passaro & Zitnick 2023.
"""

from __future__ import annotations

import inspect
import itertools
import math
from typing import Any

import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import MAX_Z, GaussianBasis


def reduced_index(lmax: int, mmax: int) -> list[int]:
    """Full-basis indices (l² + l + m) of the reduced coefficients, in the m-major order above."""
    index = [deg * deg + deg for deg in range(lmax + 1)]
    for m in range(1, mmax + 1):
        index += [deg * deg + deg - m for deg in range(m, lmax + 1)]
        index += [deg * deg + deg + m for deg in range(m, lmax + 1)]
    return index


def split_orders(x: Tensor, lmax: int, mmax: int) -> tuple[Tensor, list[Tensor]]:
    """Reduced coefficients (E, R, C) → m = 0 block (E, lmax+1, C) and, per m ≥ 1, (E, 2, lmax−m+1, C)
    with [:, 0] the −m (real) and [:, 1] the +m (imaginary) parts."""
    x0, offset, parts = x[:, : lmax + 1], lmax + 1, []
    for m in range(1, mmax + 1):
        size = lmax - m + 1
        parts.append(x[:, offset : offset + 2 * size].reshape(x.shape[0], 2, size, x.shape[-1]))
        offset += 2 * size
    return x0, parts


def merge_orders(x0: Tensor, parts: list[Tensor]) -> Tensor:
    """Inverse of :func:`split_orders`."""
    flat = [p.flatten(1, 2) for p in parts]
    return torch.cat([x0, *flat], dim=1)


def _block_wigner(rot: Tensor, lmax: int) -> Tensor:
    """Block-diagonal D-matrix (float64) of a rotation, degrees 0…lmax (e3nn computes its generators
    in the default dtype, so float64 is made the default while it runs)."""
    from e3nn import o3

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        blocks = [o3.Irrep(deg, (-1) ** deg).D_from_matrix(rot.double()) for deg in range(lmax + 1)]
        return torch.block_diag(*blocks)
    finally:
        torch.set_default_dtype(default)


class EdgeFrame(nn.Module):
    """Rows |m| ≤ mmax of Dᵀ(S), where S is a rotation taking +y to the edge direction.

    ``S = C·R(α, β, 0)`` with e3nn's Euler angles of ``C⁻¹·r̂`` and ``C`` the identity, or a fixed 90°
    rotation about x for edges within 45° of ±y, so that the angles stay far from their poles and
    the matrices are smooth (twice differentiable) in the edge vector, an edge exactly along ±y
    included. ``D(R(α, β, 0)) = Y(α)·K·Y(β)·Kᵀ`` with ``Y`` the rotation about y (diagonal plus
    anti-diagonal in the real basis) and ``K`` the D-matrix of a fixed rotation taking y to x.
    """

    def __init__(self, lmax: int, mmax: int) -> None:
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        degs = [deg for deg in range(lmax + 1) for _ in range(2 * deg + 1)]
        ms = [m for deg in range(lmax + 1) for m in range(-deg, deg + 1)]
        # Y(θ)x: x_j·cos(|m|θ) + sign_j·sin(|m|θ)·x_swap(j), swap(j) the index of the opposite m
        sign = -torch.sign(torch.tensor(ms, dtype=torch.float64))
        self.swap = torch.tensor([deg * deg + deg - m for deg, m in zip(degs, ms, strict=True)])
        y_to_x = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        k = _block_wigner(y_to_x, lmax)
        # float64 constants kept off the module's buffers, so that no cast to float32 rounds them
        self._constants = {
            "kred": k[reduced_index(lmax, mmax)],
            "kt": k.T.contiguous(),
            "kt_swap": -sign[:, None] * k.T[self.swap],
            "chart": _block_wigner(self._chart_matrix(torch.float64), lmax),
            "absm": torch.tensor([abs(m) for m in ms], dtype=torch.float64),
            "sign": sign,
        }
        self._cache: dict[tuple[torch.device, torch.dtype], dict[str, Tensor]] = {}

    def _on(self, like: Tensor) -> dict[str, Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = {k: v.to(like.device, like.dtype) for k, v in self._constants.items()}
        return self._cache[key]

    @staticmethod
    def _chart_matrix(dtype: torch.dtype) -> Tensor:
        """C⁻¹ of the second chart: (x, y, z) → (x, −z, y), a 90° rotation about x taking y to z."""
        return torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=dtype)

    def forward(self, vec: Tensor) -> Tensor:
        """(E, R, (lmax+1)²) matrices taking coefficients to the reduced edge-frame coefficients; their
        transposes take edge-frame coefficients back."""
        unit = vec / vec.norm(dim=-1, keepdim=True)
        polar = unit[:, 1:2].square() > 0.5
        local = torch.where(polar, unit @ self._chart_matrix(unit.dtype).T, unit)
        x, y, z = local.unbind(-1)
        alpha = torch.atan2(x, z)
        beta = torch.atan2(torch.sqrt(x.square() + z.square()), y)
        c = self._on(unit)
        # (K Y(−β) Kᵀ)[rows], then · Y(−α), then · D(C⁻¹) in the second chart
        mb = beta.unsqueeze(-1) * c["absm"]
        rot = (c["kred"] * torch.cos(mb).unsqueeze(1)) @ c["kt"]
        rot = rot + (c["kred"] * torch.sin(mb).unsqueeze(1)) @ c["kt_swap"]
        ma = alpha.unsqueeze(-1) * c["absm"]
        rot = rot * torch.cos(ma).unsqueeze(1) + rot[:, :, self.swap.to(unit.device)] * (
            c["sign"] * torch.sin(ma)
        ).unsqueeze(1)
        return torch.where(polar.unsqueeze(-1), rot @ c["chart"], rot)


class ComplexLinear(nn.Module):
    """Complex-linear map of (…, 2, n_in) (real, imaginary) to (…, 2, n_out): commutes with phases."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.real = nn.Linear(n_in, n_out, bias=False)
        self.imag = nn.Linear(n_in, n_out, bias=False)

    def forward(self, z: Tensor) -> Tensor:
        re, im = z.unbind(-2)
        return torch.stack([self.real(re) - self.imag(im), self.real(im) + self.imag(re)], dim=-2)


class EdgeEmbedding(nn.Module):
    """Invariant edge features from the distance (Gaussians) and both species (SCN/eSCN edge block).

    The Gaussians are scaled by √count: only a few of them are non-zero at any distance, so the
    features start at order one whatever their number.
    """

    def __init__(self, cutoff: float, num_gaussians: int, channels: int) -> None:
        super().__init__()
        self.basis = GaussianBasis(cutoff, num_gaussians)
        self.basis_scale = math.sqrt(num_gaussians)
        self.dist = nn.Linear(num_gaussians, channels)
        self.source = nn.Embedding(MAX_Z, channels)
        self.target = nn.Embedding(MAX_Z, channels)
        nn.init.uniform_(self.source.weight, -0.001, 0.001)
        nn.init.uniform_(self.target.weight, -0.001, 0.001)
        self.mix = nn.Linear(channels, channels)

    def forward(self, dist: Tensor, z_source: Tensor, z_target: Tensor) -> Tensor:
        h = self.dist(self.basis(dist) * self.basis_scale) + self.source(z_source) + self.target(z_target)
        return nn.functional.silu(self.mix(nn.functional.silu(h)))


def node_gate(x: Tensor) -> Tensor:
    """Point-wise non-linearity of node coefficients (N, (lmax+1)², C): every degree of a channel
    gated by the sigmoid of its l = 0 coefficient (SiLU on l = 0 itself)."""
    return x * torch.sigmoid(x[:, :1])


def edge_gate(x: Tensor, lmax: int, mmax: int) -> Tensor:
    """Edge-frame non-linearity of reduced coefficients: each (l, channel) gated by the sigmoid of its
    m = 0 coefficient (invariant about the edge), which is SiLU on the m = 0 block itself."""
    x0, parts = split_orders(x, lmax, mmax)
    gate = torch.sigmoid(x0)
    return merge_orders(x0 * gate, [p * gate[:, m:].unsqueeze(1) for m, p in enumerate(parts, start=1)])


class SphericalMLP(nn.Module):
    """Equivariant stand-in for the point-wise MLP on the sphere grid: channel-mixing linears shared
    by all coefficients (bias on l = 0 only), with :func:`node_gate` between them."""

    def __init__(self, dims: list[int], bias: bool) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(dims))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(d)) for d in dims[1:]) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        for i, linear in enumerate(self.linears):
            if i > 0:
                x = node_gate(x)
            x = linear(x)
            if self.biases is not None:
                x = torch.cat([x[:, :1] + self.biases[i], x[:, 1:]], dim=1)
        return x


class ScalarHead(nn.Module):
    """Per-atom scalar from the l = 0 channels: SiLU MLP ``C → hidden → … → 1``."""

    def __init__(self, dims: list[int], bias_out: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], 1, bias=bias_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x[:, 0]).squeeze(-1)


class VectorHead(nn.Module):
    """Per-atom direct force (N, 3): the l = 1 coefficients, (x, y, z) in e3nn's basis, of each channel
    weighted by an invariant SiLU MLP of the l = 0 channels and summed over channels."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.mlp(x[:, 0]) * self.out.weight[0]
        return torch.einsum("nic,nc->ni", x[:, 1:4], weight)


def num_gaussians(cutoff: float, resolution: float) -> int:
    """Number of Gaussians spaced ``resolution`` Å apart on [0, cutoff] (fairchem's rule)."""
    return max(2, math.floor(cutoff / resolution))


def hparam(cls: type, hparams: dict[str, Any], name: str) -> Any:
    """``hparams[name]``, else the default of ``cls``'s constructor."""
    return hparams.get(name, inspect.signature(cls).parameters[name].default)


def check_orders(cls: type, hparams: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless 1 ≤ lmax and 0 ≤ mmax ≤ lmax (``hparams`` over ``cls``'s defaults)."""
    lmax, mmax = int(hparam(cls, hparams, "lmax")), int(hparam(cls, hparams, "mmax"))
    if lmax < 1:
        raise ValueError(f"lmax must be at least 1 (forces read the l = 1 coefficients), got {lmax}")
    if not 0 <= mmax <= lmax:
        raise ValueError(f"mmax must be between 0 and lmax = {lmax}, got {mmax}")


def spherical_edge_work(edge_index: Tensor, layers: int, lmax: int, channels: int) -> Tensor:
    """Work units of each edge for splitting batches: every layer keeps several (lmax+1)²×C tensors per
    edge, about what 1/64 of that many floats per triplet costs a triplet model."""
    work = layers * (lmax + 1) ** 2 * channels / 64
    return torch.full((edge_index.shape[1],), float(work), device=edge_index.device)


def reset_linears(module: nn.Module) -> None:
    """Variance-preserving start for every linear layer: weights N(0, 1/fan_in), zero biases.

    The messages are products of several SiLU-gated linear maps; with PyTorch's default (a third of
    that variance) they start near zero, and the direct forces, read from the l = 1 coefficients,
    orders of magnitude below the force scale.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=layer.in_features**-0.5)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
