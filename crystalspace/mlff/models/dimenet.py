"""DimeNet (Gasteiger, Groß & Günnemann 2020, "Directional Message Passing for Molecular Graphs").

Directional messages on edges, updated from the k → j → i triplets through the full bilinear
interaction layer (a ``num_spherical·num_radial × num_bilinear × hidden × hidden`` tensor); the
energy is the sum of per-atom outputs of every block. The blocks are torch-geometric's
``torch_geometric.nn.models.DimeNet`` (Bessel radial and spherical bases with the polynomial
envelope, embedding, bilinear interaction and output blocks); the periodic triplets and the forward
pass are shared with DimeNet++ (:class:`crystalspace.mlff.models.triplets.TripletForceField`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from crystalspace.mlff.models.triplets import TripletForceField


class DimeNet(TripletForceField):
    """DimeNet energy model on periodic graphs: ``layers`` bilinear interaction blocks of width ``hidden``."""

    arch = "dimenet"
    symmetry = "E(3)-invariant"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 3}
    study_params = 1.11e6

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 3,
        num_bilinear: int = 8,
        num_spherical: int = 7,
        num_radial: int = 6,
        envelope_exponent: int = 5,
    ) -> None:
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            num_bilinear=num_bilinear,
            num_spherical=num_spherical,
            num_radial=num_radial,
            envelope_exponent=envelope_exponent,
        )
        from torch_geometric.nn.models import DimeNet as PygDimeNet

        self.net = PygDimeNet(
            hidden_channels=hidden,
            out_channels=1,
            num_blocks=layers,
            num_bilinear=num_bilinear,
            num_spherical=num_spherical,
            num_radial=num_radial,
            cutoff=cutoff,
            envelope_exponent=envelope_exponent,
            output_initializer="glorot_orthogonal",
        )

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        if hparams.get("num_spherical", 7) < 2:
            raise ValueError("num_spherical must be at least 2")
