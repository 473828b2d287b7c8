"""The force-field zoo: one file per architecture, one registry of names.

``build_model("schnet", cutoff=5.0, hidden=64, layers=3)`` builds any of :data:`MODELS`; every
model is a :class:`~crystalspace.mlff.models.base.ForceField` (graph → energies, optional direct
forces) and passes the same conformance tests.
"""

from __future__ import annotations

from typing import Any

from crystalspace.errors import UserError
from crystalspace.mlff.models.base import ForceField, GraphInput
from crystalspace.mlff.models.cgcnn import CGCNN
from crystalspace.mlff.models.dimenetpp import DimeNetPP
from crystalspace.mlff.models.forcenet import ForceNet
from crystalspace.mlff.models.nequip import NequIP
from crystalspace.mlff.models.painn import PaiNN
from crystalspace.mlff.models.schnet import SchNet

MODELS: dict[str, type[ForceField]] = {
    cls.arch: cls for cls in (SchNet, DimeNetPP, CGCNN, PaiNN, NequIP, ForceNet)
}
"""Registry of architecture names → classes."""


class UnknownModelError(UserError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


def build_model(name: str, **hparams: Any) -> ForceField:
    """Build the architecture ``name`` with keyword hyper-parameters (cutoff, hidden, layers, ...)."""
    key = name.lower().replace("-", "").replace("_", "").replace("+", "p")
    key = {"dimenet++": "dimenetpp", "dimenetplusplus": "dimenetpp"}.get(key, key)
    if key not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    try:
        return MODELS[key](**hparams)
    except TypeError as exc:
        raise UnknownModelError(f"model {key}: bad hyper-parameter ({exc})") from None


__all__ = [
    "CGCNN",
    "MODELS",
    "DimeNetPP",
    "ForceField",
    "ForceNet",
    "GraphInput",
    "NequIP",
    "PaiNN",
    "SchNet",
    "UnknownModelError",
    "build_model",
]
