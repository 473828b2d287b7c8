"""The one interface to interatomic potentials, and the name registry.

A force provider (after torch-sim's ``ModelInterface``) is a callable ``(numbers[N], positions[R, N, 3],
cell[R, 3, 3]) -> (energy[R], forces[R, N, 3])`` on torch tensors (eV, Å, eV/Å; float64 or float32,
any device): ``R`` replicas of one composition in one call, which is what makes small-cell MD fast
on a GPU. Two optional capabilities, each a plain attribute:

- ``has_stress = True``: the provider also accepts ``stress=True`` and then returns a third output,
  the stress ``[R, 3, 3]`` in eV/Å³ (ASE's sign convention, ``1/V ∂E/∂ε``); cell relaxation needs it.
- an ``energies(atoms_list)`` method: total energies (eV) of many structures of any composition
  in one batched call (CHGNet's own batched prediction); :func:`structure_energies` uses it.

Providers are registered by name (:func:`register_provider`, :func:`get_provider`); any other name
is looked up as a saved model of the project (:mod:`crystalspace.potentials.mlff`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from crystalspace.errors import UserError

if TYPE_CHECKING:
    from ase import Atoms


class ForceProviderError(UserError, ValueError):
    """Unknown provider name or a provider that cannot serve the request."""


@runtime_checkable
class ForceProvider(Protocol):
    """Batched energies and forces for ``R`` replicas of one composition."""

    def __call__(
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, ...]: ...


def has_stress(provider: Any) -> bool:
    """Whether ``provider`` accepts ``stress=True`` (its ``has_stress`` attribute)."""
    return bool(getattr(provider, "has_stress", False))


def evaluate(
    provider: ForceProvider, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor, stress: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Energy ``[R]``, forces ``[R, N, 3]`` and, with ``stress``, the stress ``[R, 3, 3]`` (else None)."""
    if not stress:
        energy, forces = provider(numbers, positions, cell)
        return energy, forces, None
    if not has_stress(provider):
        raise ForceProviderError(f"{provider_name(provider)} gives no stress: relax positions only")
    energy, forces, sigma = provider(numbers, positions, cell, stress=True)  # type: ignore[call-arg]
    return energy, forces, sigma


def structure_energies(provider: ForceProvider, structures: Sequence[Atoms]) -> np.ndarray:
    """Total energies (eV) of ``structures`` of any composition: the provider's own batched
    ``energies`` when it has one, else one provider call per structure (float64)."""
    if not structures:
        return np.zeros(0)
    batched = getattr(provider, "energies", None)
    if callable(batched):
        return np.asarray(batched(list(structures)), dtype=np.float64)
    return np.asarray([float(provider(*batch_of(a))[0][0]) for a in structures])


def batch_of(atoms: Atoms) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One structure as a provider's input: ``numbers [N]``, ``positions [1, N, 3]``, ``cell [1, 3, 3]``
    (float64; a provider casts to its own dtype)."""
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64)[None]
    box = torch.as_tensor(np.asarray(atoms.cell[:]), dtype=torch.float64)[None]
    return torch.as_tensor(atoms.numbers), pos, box


def provider_name(provider: Any) -> str:
    """A provider's ``name`` attribute, else its type's name."""
    return str(getattr(provider, "name", type(provider).__name__))


# ------------------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, Callable[..., ForceProvider]] = {}
_INFO: dict[str, dict[str, Any]] = {}
_CHECKS: dict[str, Callable[[], object]] = {}


def register_provider(
    name: str,
    factory: Callable[..., ForceProvider],
    info: dict[str, Any] | None = None,
    check: Callable[[], object] | None = None,
) -> None:
    """Make ``factory(device=..., **kwargs)`` available as ``get_provider(name, device, **kwargs)``;
    ``info`` is what :func:`provider_info` reports for it (symmetry, parameters, epochs), ``check``
    a cheap test that the factory can work (raises :class:`ForceProviderError`, e.g. for a missing
    optional package), run by :func:`check_provider`.

    Any ASE calculator becomes a provider this way (here ASE's EMT, then ``--teacher emt`` or
    ``get_provider("emt")``)::

        from ase.calculators.emt import EMT
        from crystalspace.potentials import AseCalculatorProvider, register_provider

        register_provider("emt", lambda device="cpu": AseCalculatorProvider(EMT(), name="emt"))
    """
    _REGISTRY[name] = factory
    _INFO[name] = dict(info or {})
    _CHECKS.pop(name, None)
    if check is not None:
        _CHECKS[name] = check


def get_provider(name: str, device: str = "cpu", **kwargs: Any) -> ForceProvider:
    """A force provider by name (``pair``, ``chgnet``, or anything registered), or a saved model.

    Any other name is a saved MLFF (a registry directory, or an entry name under
    ``$CRYSTALSPACE_REGISTRY``), served by :func:`crystalspace.potentials.mlff.load_provider`
    (``skin`` keyword: its Verlet skin); ``device`` picks where it runs.
    """
    if name in _REGISTRY:
        return _REGISTRY[name](device=device, **kwargs)
    from crystalspace.potentials.mlff import load_provider
    from crystalspace.registry import RegistryError

    try:
        return load_provider(name, device, **kwargs)
    except RegistryError as exc:
        raise ForceProviderError(_unknown(name, exc)) from None


def check_provider(name: str) -> None:
    """Raise :class:`ForceProviderError` unless ``name`` is a registered provider or a saved model.

    Cheap (a registered provider's own ``check``, or the saved entry's JSON files, not its weights):
    commands call it before they start Ray or write anything.
    """
    if name in _REGISTRY:
        if name in _CHECKS:
            _CHECKS[name]()
        return
    from crystalspace.registry import RegistryError, load_entry

    if not name.strip():
        raise ForceProviderError(_unknown(name, None))
    try:
        load_entry(name)
    except RegistryError as exc:
        raise ForceProviderError(_unknown(name, exc)) from None


def provider_factory(name: str) -> Callable[..., ForceProvider]:
    """What builds provider ``name`` with ``(device=...)``: its registered factory, else a loader of the
    saved model. Ray pickles it (cloudpickle), so a task builds the provider even in a worker process
    where ``name`` was never registered (a user's own calculator registered in the driver)."""
    check_provider(name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    return functools.partial(get_provider, name)


def provider_info(name: str) -> dict[str, Any]:
    """What the study's model table shows for a provider: symmetry, parameters, training epochs."""
    if name in _REGISTRY:
        return dict(_INFO[name])
    from crystalspace.potentials.mlff import model_info

    return model_info(name)


def _unknown(name: str, exc: Exception | None) -> str:
    """The one-line message for a provider name that is neither registered nor a saved model."""
    import os
    from pathlib import Path

    root = os.environ.get("CRYSTALSPACE_REGISTRY")
    saved = (
        sorted(p.name for p in Path(root).iterdir() if (p / "config.json").is_file())
        if root and Path(root).is_dir()
        else []
    )
    shown = ", ".join(saved[:8]) + (f", … ({len(saved)} in all)" if len(saved) > 8 else "")
    models = f"a saved model name under {root} ({shown or 'none saved'})" if root else (
        "a saved model name (set CRYSTALSPACE_REGISTRY)")  # fmt: skip
    why = f" ({exc})" if exc else ""
    return f"unknown force provider {name!r}{why}; valid: {', '.join(sorted(_REGISTRY))}, {models} or a model path"
