"""DimeNet++ (Gasteiger et al. 2020): torch-geometric's ``DimeNetPlusPlus`` blocks on periodic triplets.

The forward pass, the periodic triplets and the triplet work estimate are shared with DimeNet
(:class:`crystalspace.mlff.models.triplets.TripletForceField`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from crystalspace.mlff.models.triplets import TripletForceField


class DimeNetPP(TripletForceField):
    """DimeNet++ energy model on periodic graphs (interaction size hidden/2, output size 2·hidden by default)."""

    arch = "dimenetpp"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 3}
    study_params = 1.49e6

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
