"""CGCNN (Xie & Grossman 2018) as a force field: torch-geometric's ``CGConv`` with a smooth cutoff.

Each gated message of ``CGConv`` is multiplied by a cosine envelope of the edge length, so the
energy is continuous as neighbours cross the cutoff (the plain CGCNN is not). Batch norm is off:
it would make one structure's energy depend on the others in its batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

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


def _smooth_cgconv(channels: int, dim: int) -> nn.Module:
    from torch_geometric.nn import CGConv

    class SmoothCGConv(CGConv):
        """``CGConv`` whose edge attributes carry the envelope in their first column."""

        def message(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
            return super().message(x_i, x_j, edge_attr[:, 1:]) * edge_attr[:, :1]

    return SmoothCGConv(channels, dim=dim, aggr="add", batch_norm=False)


class CGCNN(ForceField):
    """CGCNN energy model: ``layers`` gated graph convolutions of width ``hidden``."""

    arch = "cgcnn"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 3}
    study_params = 0.25e6

    def __init__(
        self, cutoff: float = 6.0, hidden: int = 128, layers: int = 3, num_gaussians: int = 40
    ) -> None:
        super().__init__(cutoff, hidden=hidden, layers=layers, num_gaussians=num_gaussians)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.basis = GaussianBasis(cutoff, num_gaussians)
        self.convs = nn.ModuleList([_smooth_cgconv(hidden, num_gaussians) for _ in range(layers)])
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        d = g.dist
        attr = torch.cat([cosine_cutoff(d, self.cutoff).unsqueeze(-1), self.basis(d)], dim=-1)
        h = self.embed(g.z)
        for conv in self.convs:
            h = conv(h, g.edge_index, attr)
        return scatter_sum(self.head(h).squeeze(-1), g.batch, g.num_graphs), None
