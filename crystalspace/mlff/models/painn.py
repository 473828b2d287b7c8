"""PaiNN (Schütt, Unke & Gastegger 2021): scalar and vector features, equivariant message passing.

Written here (torch-geometric has no PaiNN): messages φ(s_j)·W(r_ij) split into a scalar update,
a gate on v_j and a gate on the unit vector r̂_ij; the update mixes ‖V v‖ and ⟨U v, V v⟩.
Energy is a sum of per-atom scalars; forces by autograd.
"""

from __future__ import annotations

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


class _Message(nn.Module):
    def __init__(self, f: int, num_basis: int) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(f, f), nn.SiLU(), nn.Linear(f, 3 * f))
        self.w = nn.Linear(num_basis, 3 * f)

    def forward(
        self, s: Tensor, v: Tensor, g: GraphInput, rbf: Tensor, unit: Tensor, fc: Tensor
    ) -> tuple[Tensor, Tensor]:
        src, tgt = g.edge_index
        f = s.shape[-1]
        x = self.phi(s)[src] * self.w(rbf) * fc.unsqueeze(-1)
        ds, dvv, dvs = torch.split(x, f, dim=-1)
        dv = dvv.unsqueeze(1) * v[src] + dvs.unsqueeze(1) * unit.unsqueeze(-1)
        n = s.shape[0]
        return s + scatter_sum(ds, tgt, n), v + scatter_sum(dv, tgt, n)


class _Update(nn.Module):
    def __init__(self, f: int) -> None:
        super().__init__()
        self.u = nn.Linear(f, f, bias=False)
        self.vl = nn.Linear(f, f, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * f, f), nn.SiLU(), nn.Linear(f, 3 * f))

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        f = s.shape[-1]
        uv, vv = self.u(v), self.vl(v)
        norm = torch.sqrt((vv**2).sum(dim=1) + 1e-8)
        a = self.mlp(torch.cat([s, norm], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, f, dim=-1)
        return s + a_ss + a_sv * (uv * vv).sum(dim=1), v + a_vv.unsqueeze(1) * uv


class PaiNN(ForceField):
    """PaiNN energy model: ``hidden`` features, ``layers`` message/update pairs."""

    arch = "painn"
    symmetry = "E(3)-equivariant"

    def __init__(self, cutoff: float = 6.0, hidden: int = 128, layers: int = 3, num_basis: int = 20) -> None:
        super().__init__(cutoff, hidden=hidden, layers=layers, num_basis=num_basis)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.basis = BesselBasis(cutoff, num_basis)
        self.messages = nn.ModuleList([_Message(hidden, num_basis) for _ in range(layers)])
        self.updates = nn.ModuleList([_Update(hidden) for _ in range(layers)])
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        d = g.dist
        unit = g.vec / d.clamp_min(1e-9).unsqueeze(-1)
        rbf, fc = self.basis(d), cosine_cutoff(d, self.cutoff)
        s = self.embed(g.z)
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        for msg, upd in zip(self.messages, self.updates, strict=True):
            s, v = msg(s, v, g, rbf, unit, fc)
            s, v = upd(s, v)
        return scatter_sum(self.head(s).squeeze(-1), g.batch, g.num_graphs), None
