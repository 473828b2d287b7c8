"""SevenNet-0 as a provider: the provider conformance suite, offline loading from the wheel's own
checkpoint, and the one-line error naming the extra when ``sevenn`` is missing."""

from __future__ import annotations

import functools
import importlib.util
import socket

import pytest
import torch
from _paths import DATA
from ase import Atoms
from ase.io import read

from crystalspace.potentials import ForceProviderError, check_provider, get_provider, provider_info
from crystalspace.potentials.base import ForceProvider
from crystalspace.potentials.testing import ProviderConformance

CIF = DATA / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif"
needs_sevenn = pytest.mark.skipif(
    importlib.util.find_spec("sevenn") is None, reason='needs pip install "crystalspace[sevennet]"'
)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@functools.cache  # one provider for the module: the checks share it
def sevennet() -> ForceProvider:
    """SevenNet-0, built with every socket refused: loading it must not touch the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access while loading SevenNet-0: {args}")

    with pytest.MonkeyPatch.context() as mp:
        for method in ("connect", "connect_ex", "sendto"):
            mp.setattr(socket.socket, method, refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        return get_provider("sevennet")


@needs_sevenn
@pytest.mark.slow  # importing sevenn and building the model take ~10 s of CPU
class TestSevenNet(ProviderConformance):
    """SevenNet-0 computes in float32, as CHGNet does: the same finite-difference step and float32
    tolerances (energy of the 16-atom cell -70 eV; batches and the ASE round trip are exact)."""

    step = 3e-3
    fd_force_atol = 5e-3
    fd_stress_atol = 1e-4
    translation_energy_atol = 1e-4
    translation_force_atol = 1e-4

    def make_provider(self) -> ForceProvider:
        return sevennet()

    def structure(self) -> Atoms:
        return read(CIF)


@needs_sevenn
def test_sevennet_is_offline_and_named():
    """Built from the checkpoint inside the wheel (no socket opened, see :func:`sevennet`), named
    after the model, with the model table's info."""
    provider = sevennet()
    assert provider.name == "sevennet-0-11Jul2024"  # type: ignore[attr-defined]
    assert provider.has_stress  # type: ignore[attr-defined]
    model = provider.calculator.model  # type: ignore[attr-defined]
    assert sum(p.numel() for p in model.parameters()) == provider_info("sevennet")["parameters"]
    check_provider("sevennet")


def test_missing_sevenn_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sevenn" else real(name, *a)
    )
    for attempt in (lambda: check_provider("sevennet"), lambda: get_provider("sevennet")):
        with pytest.raises(ForceProviderError) as info:
            attempt()
        message = str(info.value)
        assert (
            message == 'the sevennet provider needs the sevenn package: pip install "crystalspace[sevennet]"'
        )
