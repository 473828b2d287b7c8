"""MACE (Batatia et al., NeurIPS 2022): higher-order equivariant message passing, from mace-torch.

The network is ``mace.modules.MACE`` of the ``mace-torch`` package (MIT, ACEsuit), built from our
hyper-parameters and trained from scratch: ``hidden`` channels of irreps ``0e + 1o + … + lmax``,
``layers`` interactions (residual, element-agnostic) each followed by a symmetric tensor product of
body order ``correlation + 1``, spherical harmonics up to ``max_ell``, a Bessel radial basis times
MACE's polynomial envelope, a linear readout per layer and an MLP readout on the last. Its blocks run
on our differentiable edge vectors (MACE's own forward would rebuild them from positions), so forces
and stress come from :mod:`crystalspace.mlff.potential`'s autograd; MACE's fixed atomic energies are
zero, the base class's fitted reference energies take their place. Species enter as a one-hot over
``elements`` (every element by default; the training set's elements make a much smaller model).

Every mace-torch release pins e3nn 0.4.4; the zoo runs it on e3nn 0.6.0 (see :data:`INSTALL`), where
this model reproduces ``mace.modules.MACE``'s own energies, forces and stress.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
from typing import Any, ClassVar

import torch
from torch import Tensor

from crystalspace.errors import UserError
from crystalspace.mlff.models.base import MAX_Z, ForceField, GraphInput, scatter_sum

MACE_TORCH = "mace-torch==0.3.16"
INSTALL = f'pip install "crystalspace[mace]" && pip install --no-deps {MACE_TORCH}'
"""How to add mace-torch (``tools/install_mace.sh`` in a checkout): the ``mace`` extra carries its
requirements but its ``e3nn==0.4.4`` pin, which would conflict with the zoo's e3nn 0.6.0."""
LGPS = [3, 15, 16, 32]
"""Li, P, S, Ge: the elements of the study's Li10GeP2S12 data."""


WEIGHTS_ONLY_OFF = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
"""The variable ``import mace`` sets for the whole process (torch.load unpickles anything)."""


class MaceError(UserError, ValueError):
    """mace-torch is missing, or a structure holds an element the model was not built for."""


def _require_mace() -> None:
    if importlib.util.find_spec("mace") is None:
        raise MaceError(f"model mace needs the mace-torch package: {INSTALL}")


def _mace_modules() -> Any:
    """``mace.modules``, imported without mace's side effects on the process: its package turns
    torch.load's weights-only safety off through an environment variable (restored here) and prints
    a notice about an optional GPU library (silenced)."""
    before = os.environ.get(WEIGHTS_ONLY_OFF)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from mace import modules
    finally:
        if before is None:
            os.environ.pop(WEIGHTS_ONLY_OFF, None)
        else:
            os.environ[WEIGHTS_ONLY_OFF] = before
    return modules


class MACE(ForceField):
    """MACE energy model (mace-torch): ``hidden`` channels per irrep, ``layers`` interactions.

    Args:
        cutoff: neighbour cutoff (Å), MACE's ``r_max``.
        hidden: channels of every hidden irrep (MACE's ``num_channels``).
        layers: interaction blocks (``num_interactions``).
        lmax: highest order of the hidden irreps (MACE's ``max_L``): 0 → ``0e``, 1 → ``0e+1o``, ...
        max_ell: highest order of the edge spherical harmonics.
        correlation: body order minus one of the symmetric product at each layer.
        num_bessel: radial Bessel functions.
        num_polynomial_cutoff: power ``p`` of MACE's polynomial envelope.
        avg_neighbors: the message normaliser (MACE's ``avg_num_neighbors``).
        elements: atomic numbers the one-hot species encoding knows; ``None`` for every element
            (1..118). Other elements are an error at prediction time.
    """

    arch = "mace"
    symmetry = "E(3)-equivariant"
    study_hparams: ClassVar[dict[str, Any]] = {
        "hidden": 128,
        "layers": 2,
        "lmax": 1,
        "max_ell": 3,
        "correlation": 3,
        "elements": LGPS,
    }
    """A MACE-MP "medium"-like anchor on the study's LGPS elements (128x0e+128x1o, ℓ ≤ 3, body
    order 4, 2 interactions): 0.65 M parameters (6.07 M over every element). MACE is not in the
    study (``study_params`` None)."""
    species_index: Tensor

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 2,
        lmax: int = 1,
        max_ell: int = 3,
        correlation: int = 3,
        num_bessel: int = 8,
        num_polynomial_cutoff: int = 5,
        avg_neighbors: float = 30.0,
        elements: list[int] | None = None,
    ) -> None:
        _require_mace()
        elements = None if elements is None else [int(z) for z in elements]
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            lmax=lmax,
            max_ell=max_ell,
            correlation=correlation,
            num_bessel=num_bessel,
            num_polynomial_cutoff=num_polynomial_cutoff,
            avg_neighbors=avg_neighbors,
            elements=elements,
        )
        self.check_hparams(self.hparams)
        self.elements = list(range(1, MAX_Z)) if elements is None else sorted(elements)
        index = torch.full((MAX_Z,), -1, dtype=torch.long)
        index[self.elements] = torch.arange(len(self.elements))
        self.register_buffer("species_index", index, persistent=False)
        # e3nn re-traces its generated tensor-product code on every copy and may fold a constant into
        # a new buffer: keep the copied form, so copies (an EMA of the weights) have the same buffers
        self.net = copy.deepcopy(_build_mace(self.hparams, self.elements))

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        """mace-torch installed; ``0 ≤ lmax ≤ max_ell``; ``correlation, layers ≥ 1``; known elements."""
        try:
            _require_mace()
        except MaceError as exc:
            raise ValueError(str(exc).removeprefix("model mace ")) from None
        lmax, max_ell = hparams.get("lmax", 1), hparams.get("max_ell", 3)
        if not 0 <= lmax <= max_ell:
            raise ValueError(f"lmax must lie in 0..max_ell ({max_ell}), got {lmax}")
        for name in ("correlation", "layers", "hidden"):
            if hparams.get(name, 1) < 1:
                raise ValueError(f"{name} must be at least 1, got {hparams[name]}")
        elements = hparams.get("elements")
        if elements is not None:
            bad = [z for z in elements if not 1 <= int(z) < MAX_Z]
            if bad or not elements or len(set(elements)) != len(elements):
                raise ValueError(f"elements must be distinct atomic numbers 1..{MAX_Z - 1}, got {elements}")

    def one_hot(self, z: Tensor, dtype: torch.dtype) -> Tensor:
        """MACE's ``node_attrs``: one-hot (N, len(elements)) of the species."""
        index = self.species_index[z]
        if bool((index < 0).any()):
            unknown = sorted({int(v) for v in z[index < 0]})
            raise MaceError(f"model mace was built for elements {self.elements}; got Z={unknown}")
        return torch.nn.functional.one_hot(index, len(self.elements)).to(dtype)

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        net: Any = self.net  # mace.modules.MACE
        attrs = self.one_hot(g.z, g.vec.dtype)
        # MACE's edge vector points from the sender (our neighbour, edge_index[0]) to the receiver
        vectors = -g.vec
        lengths = vectors.norm(dim=-1, keepdim=True)
        edge_attrs = net.spherical_harmonics(vectors)
        edge_feats, cutoff = net.radial_embedding(lengths, attrs, g.edge_index, net.atomic_numbers)
        x = net.node_embedding(attrs)
        atomic = torch.zeros(len(g.z), dtype=g.vec.dtype, device=g.vec.device)
        for interaction, product, readout in zip(net.interactions, net.products, net.readouts, strict=True):
            x, sc = interaction(
                node_attrs=attrs,
                node_feats=x,
                edge_attrs=edge_attrs,
                edge_feats=edge_feats,
                edge_index=g.edge_index,
                cutoff=cutoff,
            )
            x = product(node_feats=x, sc=sc, node_attrs=attrs)
            atomic = atomic + readout(x)[:, 0]
        return scatter_sum(atomic, g.batch, g.num_graphs), None


def _build_mace(hp: dict[str, Any], elements: list[int]) -> torch.nn.Module:
    """``mace.modules.MACE`` as mace-torch's trainer builds its default model, zero atomic energies."""
    import numpy as np
    from e3nn import o3

    modules = _mace_modules()
    hidden_irreps = (hp["hidden"] * o3.Irreps.spherical_harmonics(hp["lmax"])).sort()[0].simplify()
    return modules.MACE(
        r_max=hp["cutoff"],
        num_bessel=hp["num_bessel"],
        num_polynomial_cutoff=hp["num_polynomial_cutoff"],
        max_ell=hp["max_ell"],
        interaction_cls=modules.RealAgnosticResidualInteractionBlock,
        interaction_cls_first=modules.RealAgnosticResidualInteractionBlock,
        num_interactions=hp["layers"],
        num_elements=len(elements),
        hidden_irreps=hidden_irreps,
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(elements)),
        avg_num_neighbors=hp["avg_neighbors"],
        atomic_numbers=elements,
        correlation=hp["correlation"],
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
    )
