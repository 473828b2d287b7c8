"""The model zoo: every registered architecture passes the conformance suite that ships with the
library (:class:`crystalspace.mlff.testing.ForceFieldConformance`; float64, tiny models, rc 4.5 Å),
direct-force models are flagged, and unknown names are one clear error."""

from __future__ import annotations

import functools

import pytest
import torch

from crystalspace.mlff.models import MODELS, ForceField, UnknownModelError, build_model
from crystalspace.mlff.testing import ForceFieldConformance

RC = 4.5
ALL = sorted(MODELS)
CONSERVATIVE = [m for m in ALL if MODELS[m].conservative]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@functools.cache  # DimeNet++ builds its spherical basis with sympy (seconds): build each model once
def tiny_model(name: str, seed: int = 0) -> ForceField:
    torch.manual_seed(seed)
    model = build_model(name, cutoff=RC, hidden=16, layers=2).double()
    with torch.no_grad():  # non-trivial reference energies so extensivity is tested too
        model.atom_ref.uniform_(-1, 1)
    return model


class TestZooConformance(ForceFieldConformance):
    """The suite once per registered architecture (a new model in ``MODELS`` is tested here too)."""

    @pytest.fixture(autouse=True, params=ALL)
    def _arch(self, request: pytest.FixtureRequest) -> None:
        self.arch = request.param

    def make_model(self) -> ForceField:
        return tiny_model(self.arch)


def test_direct_force_model_is_flagged() -> None:
    assert not MODELS["forcenet"].conservative
    assert all(MODELS[m].conservative for m in CONSERVATIVE)
    assert len(CONSERVATIVE) == len(ALL) - 1


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'gemnet'; choose one of"):
        build_model("gemnet")
    with pytest.raises(UnknownModelError, match="bad hyper-parameter"):
        build_model("schnet", widht=3)
    assert type(build_model("DimeNet++", cutoff=4.0, hidden=8, layers=1)).__name__ == "DimeNetPP"
