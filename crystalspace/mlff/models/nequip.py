"""A small NequIP-style E(3)-equivariant tensor model (Batzner et al. 2022) built with e3nn.

Node features are irreps ``hidden×0e + (hidden/4)×1o [+ (hidden/8)×2e]``. Each layer is a
convolution — tensor product (``uvu``) of neighbour features with the spherical harmonics of the
edge direction, weighted per edge by an MLP of a Bessel basis times a smooth envelope — followed by
a linear self-interaction, a residual and an e3nn ``Gate``. Energy = Σ atoms of a scalar readout;
forces by autograd.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import (
    MAX_Z,
    BesselBasis,
    ForceField,
    GraphInput,
    cosine_cutoff,
    scatter_sum,
)


def _gate(hidden: int, lmax: int) -> Any:
    from e3nn import o3
    from e3nn.nn import Gate

    gated = [(max(hidden // 4, 1), (1, -1))]
    if lmax >= 2:
        gated.append((max(hidden // 8, 1), (2, 1)))
    irreps_gated = o3.Irreps(gated)
    return Gate(
        o3.Irreps(f"{hidden}x0e"),
        [torch.nn.functional.silu],
        o3.Irreps(f"{irreps_gated.num_irreps}x0e"),
        [torch.sigmoid],
        irreps_gated,
    )


class _Conv(nn.Module):
    def __init__(
        self, irreps_in: Any, irreps_sh: Any, gate: Any, num_basis: int, avg_neighbors: float
    ) -> None:
        super().__init__()
        from e3nn import o3
        from e3nn.nn import FullyConnectedNet

        target = gate.irreps_in
        mid: list[tuple[int, Any]] = []
        instructions: list[tuple[int, int, int, str, bool]] = []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in target:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(mid)
        irreps_mid, perm, _ = irreps_mid.sort()
        instructions = [(i, j, perm[k], m, t) for i, j, k, m, t in instructions]
        self.lin1 = o3.Linear(irreps_in, irreps_in)
        self.tp = o3.TensorProduct(
            irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.radial = FullyConnectedNet([num_basis, 64, self.tp.weight_numel], torch.nn.functional.silu)
        self.lin2 = o3.Linear(irreps_mid, target)
        self.self_int = o3.Linear(irreps_in, target)
        self.gate = gate
        self.norm = avg_neighbors**0.5

    def forward(self, x: Tensor, sh: Tensor, rbf: Tensor, fc: Tensor, g: GraphInput) -> Tensor:
        src, tgt = g.edge_index
        w = self.radial(rbf) * fc.unsqueeze(-1)
        msg = self.tp(self.lin1(x)[src], sh, w)
        agg = scatter_sum(msg, tgt, x.shape[0]) / self.norm
        return self.gate(self.lin2(agg) + self.self_int(x))


class NequIP(ForceField):
    """Equivariant tensor-product energy model (e3nn): ``hidden`` scalars, ``layers`` convolutions."""

    arch = "nequip"
    symmetry = "E(3)-equivariant"

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 3,
        lmax: int = 2,
        num_basis: int = 8,
        avg_neighbors: float = 30.0,
    ) -> None:
        super().__init__(
            cutoff, hidden=hidden, layers=layers, lmax=lmax, num_basis=num_basis, avg_neighbors=avg_neighbors
        )
        from e3nn import o3

        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.basis = BesselBasis(cutoff, num_basis)
        irreps = o3.Irreps(f"{hidden}x0e")
        convs = []
        for _ in range(layers):
            gate = _gate(hidden, lmax)
            convs.append(_Conv(irreps, self.irreps_sh, gate, num_basis, avg_neighbors))
            irreps = gate.irreps_out
        self.convs = nn.ModuleList(convs)
        self.readout = nn.Sequential(o3.Linear(irreps, o3.Irreps(f"{hidden // 2}x0e")))
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(hidden // 2, 1))

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        from e3nn import o3

        d = g.dist
        sh = o3.spherical_harmonics(self.irreps_sh, g.vec, normalize=True, normalization="component")
        rbf, fc = self.basis(d), cosine_cutoff(d, self.cutoff)
        x = self.embed(g.z)
        for conv in self.convs:
            x = conv(x, sh, rbf, fc, g)
        atomic = self.head(self.readout(x)).squeeze(-1)
        return scatter_sum(atomic, g.batch, g.num_graphs), None
