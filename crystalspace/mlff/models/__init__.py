"""The force-field zoo: one file per architecture, one registry of names.

``build_model("schnet", cutoff=5.0, hidden=64, layers=3)`` builds any of :data:`MODELS`; every
model is a :class:`~crystalspace.mlff.models.base.ForceField` (graph → energies, optional direct
forces) and passes the same conformance tests.
"""

from __future__ import annotations

import inspect
from typing import Any

from crystalspace.errors import UserError
from crystalspace.mlff.models.base import ForceField, GraphInput
from crystalspace.mlff.models.cgcnn import CGCNN
from crystalspace.mlff.models.deepergatgnn import DeeperGATGNN
from crystalspace.mlff.models.dimenet import DimeNet
from crystalspace.mlff.models.dimenetpp import DimeNetPP
from crystalspace.mlff.models.equiformer import Equiformer
from crystalspace.mlff.models.escn import ESCN
from crystalspace.mlff.models.forcenet import ForceNet
from crystalspace.mlff.models.gnstat import GNSTAT
from crystalspace.mlff.models.leftnet import LeftNet
from crystalspace.mlff.models.mace import MACE
from crystalspace.mlff.models.nequip import NequIP
from crystalspace.mlff.models.painn import PaiNN
from crystalspace.mlff.models.schnet import SchNet
from crystalspace.mlff.models.scn import SCN

MODELS: dict[str, type[ForceField]] = {
    cls.arch: cls
    for cls in (
        SchNet,
        DimeNet,
        DimeNetPP,
        CGCNN,
        PaiNN,
        NequIP,
        ForceNet,
        GNSTAT,
        DeeperGATGNN,
        MACE,
        SCN,
        ESCN,
        Equiformer,
        LeftNet,
    )
}
"""Registry of architecture names → classes."""


class UnknownModelError(UserError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


def model_class(name: str) -> type[ForceField]:
    """The architecture registered as ``name`` (case, ``-``, ``_`` and ``++``/``plusplus`` forgiven)."""
    key = name.lower().replace("-", "").replace("_", "").replace("+", "p")
    key = {"dimenetplusplus": "dimenetpp"}.get(key, key)
    if key not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[key]


def check_model(name: str, hparams: dict[str, Any]) -> None:
    """Fail with one line, before building anything, if ``hparams`` cannot build model ``name``."""
    cls = model_class(name)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(hparams) - set(params) - {"self"})
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        known = ", ".join(p for p in params if p != "self")
        raise UnknownModelError(f"model {cls.arch}: unknown hyper-parameter {unknown[0]!r}; it takes {known}")
    try:
        cls.check_hparams(hparams)
    except ValueError as exc:
        raise UnknownModelError(f"model {cls.arch}: {exc}") from None


def build_model(name: str, **hparams: Any) -> ForceField:
    """Build the architecture ``name`` with keyword hyper-parameters (cutoff, hidden, layers, ...)."""
    check_model(name, hparams)
    return model_class(name)(**hparams)


def study_sizes() -> list[dict[str, Any]]:
    """Each study model built at the study's width (cutoff 6 Å): its parameters beside Table 1's."""
    rows = []
    for arch, cls in MODELS.items():
        if cls.study_params is None:
            continue
        n = sum(p.numel() for p in build_model(arch, cutoff=6.0, **cls.study_hparams).parameters())
        rows.append(
            {
                "model": arch,
                "params": n,
                "study_params": cls.study_params,
                "ratio": n / cls.study_params,
                "hparams": dict(cls.study_hparams),
            }
        )
    return rows


__all__ = [
    "CGCNN",
    "ESCN",
    "GNSTAT",
    "MACE",
    "MODELS",
    "SCN",
    "DeeperGATGNN",
    "DimeNet",
    "DimeNetPP",
    "Equiformer",
    "ForceField",
    "ForceNet",
    "GraphInput",
    "LeftNet",
    "NequIP",
    "PaiNN",
    "SchNet",
    "UnknownModelError",
    "build_model",
    "check_model",
    "model_class",
    "study_sizes",
]
