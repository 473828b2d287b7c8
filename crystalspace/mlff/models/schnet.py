"""SchNet (Schütt et al. 2018): torch-geometric's implementation on a periodic graph.

The stock ``torch_geometric.nn.models.SchNet`` runs unchanged; only its ``interaction_graph`` is
replaced by a module that hands over the periodic edges and their lengths (computed outside from
shift-aware, differentiable edge vectors).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from crystalspace.mlff.models.base import ForceField, GraphInput


class _PeriodicEdges(nn.Module):
    """SchNet's ``interaction_graph``: returns the edges of the graph being evaluated."""

    def __init__(self) -> None:
        super().__init__()
        self.current: tuple[Tensor, Tensor] | None = None

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        assert self.current is not None, "set edges before calling SchNet"
        return self.current


class SchNet(ForceField):
    """SchNet energy model; ``hidden`` channels and filters, ``layers`` interaction blocks."""

    arch = "schnet"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 6}
    study_params = 0.49e6

    def __init__(
        self, cutoff: float = 6.0, hidden: int = 128, layers: int = 6, num_gaussians: int = 50
    ) -> None:
        super().__init__(cutoff, hidden=hidden, layers=layers, num_gaussians=num_gaussians)
        from torch_geometric.nn.models import SchNet as PygSchNet

        self.edges = _PeriodicEdges()
        self.net = PygSchNet(
            hidden_channels=hidden,
            num_filters=hidden,
            num_interactions=layers,
            num_gaussians=num_gaussians,
            cutoff=cutoff,
            interaction_graph=self.edges,
            readout="add",
        )

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        self.edges.current = (g.edge_index, g.dist)
        try:
            energy = self.net(g.z, g.pos, g.batch)
        finally:
            self.edges.current = None
        return energy.reshape(-1)[: g.num_graphs].reshape(g.num_graphs), None
