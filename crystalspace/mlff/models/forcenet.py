"""ForceNet-style direct forces (Hu et al. 2021): forces from an output head, not from −∂E/∂r.

The study's ForceNet predicts forces directly, which is fast but not energy conserving. This model
keeps that contrast: invariant message passing on the periodic graph (SchNet-like continuous
filters), an energy head, and a force head F_i = Σ_j w_ij r̂_ij with weights from the two atoms'
features and the edge length (rotation-equivariant, translation invariant, non-conservative).
"""

from __future__ import annotations

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


class ForceNet(ForceField):
    """Direct-force model, flagged ``conservative = False``."""

    arch = "forcenet"
    conservative = False

    def __init__(
        self, cutoff: float = 6.0, hidden: int = 128, layers: int = 3, num_gaussians: int = 50
    ) -> None:
        super().__init__(cutoff, hidden=hidden, layers=layers, num_gaussians=num_gaussians)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.basis = GaussianBasis(cutoff, num_gaussians)
        self.filters = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(num_gaussians, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
                for _ in range(layers)
            ]
        )
        self.mix = nn.ModuleList([nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU()) for _ in range(layers)])
        self.energy_head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.force_head = nn.Sequential(
            nn.Linear(2 * hidden + num_gaussians, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        src, tgt = g.edge_index
        d = g.dist
        rbf, fc = self.basis(d), cosine_cutoff(d, self.cutoff).unsqueeze(-1)
        h = self.embed(g.z)
        for filt, mix in zip(self.filters, self.mix, strict=True):
            h = h + mix(scatter_sum(h[src] * filt(rbf) * fc, tgt, h.shape[0]))
        energy = scatter_sum(self.energy_head(h).squeeze(-1), g.batch, g.num_graphs)
        w = self.force_head(torch.cat([h[tgt], h[src], rbf], dim=-1)) * fc
        unit = g.vec / d.clamp_min(1e-9).unsqueeze(-1)
        # vec points from the centre to the neighbour; a positive weight pushes the centre away
        forces = scatter_sum(-w * unit, tgt, h.shape[0])
        return energy, forces
