"""The model zoo: every registered architecture passes the conformance suite that ships with the
library (:class:`crystalspace.mlff.testing.ForceFieldConformance`; float64, tiny models, rc 4.5 Å),
direct-force and lab-frame models are flagged (and the flags are honest), DimeNet and ForceNet run
on the batched MD path, and unknown names are one clear error."""

from __future__ import annotations

import functools

import _paths
import numpy as np
import pytest
import torch

from crystalspace.config import ConfigError
from crystalspace.mlff.config import make_mlff_config
from crystalspace.mlff.data import labelled_rows, load_material
from crystalspace.mlff.models import MODELS, ForceField, UnknownModelError, build_model, study_sizes
from crystalspace.mlff.potential import Potential
from crystalspace.mlff.testing import ForceFieldConformance, li_p_s, predict, random_rotation, rotated

RC = 4.5
ALL = sorted(MODELS)
CONSERVATIVE = [m for m in ALL if MODELS[m].conservative]
OPTIONAL = {"mace": "mace"}
"""Architectures built on an optional package (model → module): their suite skips without it."""


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@functools.cache  # DimeNet(++) builds its spherical basis with sympy (seconds): build each model once
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
        if self.arch in OPTIONAL:
            pytest.importorskip(
                OPTIONAL[self.arch], reason=f"model {self.arch}: {OPTIONAL[self.arch]} is not installed"
            )

    def make_model(self) -> ForceField:
        return tiny_model(self.arch)


def test_direct_force_models_are_flagged() -> None:
    direct = set(ALL) - set(CONSERVATIVE)
    assert "forcenet" in direct
    assert direct <= {"forcenet", "scn", "escn"}  # the study's direct-force heads; the rest are −∇E
    assert {"dimenet", "dimenetpp"} <= set(CONSERVATIVE)


def test_forcenet_is_translation_invariant_but_not_rotation_equivariant() -> None:
    """ForceNet's flag is honest: its forces do not rotate with the structure, but ignore translations."""
    assert not MODELS["forcenet"].rotation_invariant
    assert MODELS["forcenet"].symmetry == "Translation-invariant"
    pot = Potential(tiny_model("forcenet")).eval()
    a, rot = li_p_s(1), random_rotation()
    _, f0, _ = predict(pot, [a])
    _, f1, _ = predict(pot, [rotated(a, rot)])
    assert np.abs(f1 - f0 @ rot.T).max() > 0.1 * np.abs(f0).max()
    moved = a.copy()
    moved.positions += np.array([1.3, -0.7, 2.9])
    moved.wrap()
    _, f2, _ = predict(pot, [moved])
    np.testing.assert_allclose(f2, f0, atol=1e-8)


@pytest.mark.parametrize("arch", ["dimenet", "forcenet"])
def test_runs_on_the_md_path_for_li3ps4(arch: str) -> None:
    """The batched evaluation MD calls gives finite, non-trivial forces on reference Li3PS4 frames."""
    rows = labelled_rows(load_material(str(_paths.DATA / "mlff_subset"), "Li3PS4").slice(0, 2))
    pos = np.stack([r["positions"].reshape(-1, 3) for r in rows])
    cell = np.stack([r["cell"].reshape(3, 3) for r in rows])
    energy, forces = Potential(tiny_model(arch)).eval().batched(rows[0]["numbers"], pos, cell)
    assert energy.shape == (2,)
    assert forces.shape == pos.shape
    assert torch.isfinite(energy).all()
    assert torch.isfinite(forces).all()
    assert forces.abs().max() > 1e-4


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'gemnet'; choose one of"):
        build_model("gemnet")
    with pytest.raises(UnknownModelError, match="unknown hyper-parameter 'widht'"):
        build_model("schnet", widht=3)
    assert type(build_model("DimeNet++", cutoff=4.0, hidden=8, layers=1)).__name__ == "DimeNetPP"


def test_study_models_are_sized_as_the_study() -> None:
    """At the study's width every Table 1 model is within ±30% of the study's parameter count."""
    rows = study_sizes()
    assert {"schnet", "dimenetpp", "cgcnn"} <= {r["model"] for r in rows}
    for row in rows:
        assert 0.7 <= row["ratio"] <= 1.3, row


def test_a_model_that_cannot_build_fails_at_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"^unknown model 'gemnet'; choose one of schnet"):
        make_mlff_config(overrides={"model": "gemnet"})
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'lmax'"):
        make_mlff_config(overrides={"model": "schnet", "hparams": {"lmax": 3}})


def test_a_model_whose_package_is_missing_names_its_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    assert "mace" in MODELS
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mace" else find_spec(name, *a)
    )
    with pytest.raises(UnknownModelError, match=r"^model mace: needs the mace-torch package: pip install"):
        build_model("mace", cutoff=RC, hidden=16, layers=2)
    with pytest.raises(ConfigError, match="needs the mace-torch package"):
        make_mlff_config(overrides={"model": "mace"})


def test_mace_runs_mace_torchs_own_model() -> None:
    """On our edge vectors the mace blocks give what ``mace.modules.MACE.forward`` gives from
    positions and cell shifts: the same energies, forces and stress (and its edge direction)."""
    pytest.importorskip("mace")
    from crystalspace.atoms.graph import collate, make_graph

    model = tiny_model("mace")
    graphs = []
    for seed in (1, 2):
        atoms = li_p_s(seed)
        g = make_graph(atoms.numbers, atoms.positions, atoms.cell[:], True, RC)
        g.pos, g.cell = torch.as_tensor(atoms.positions), torch.as_tensor(np.asarray(atoms.cell[:]))[None]
        graphs.append(g)
    batch = collate(graphs)
    ours = Potential(model)(batch, forces=True, stress=True)
    unit = -batch.shift.double()  # mace's edge vector runs neighbour → centre: pos[1] - pos[0] + shift
    data = {
        "positions": batch.pos.clone(),
        "edge_index": batch.edge_index,
        "unit_shifts": unit,
        "shifts": torch.einsum("ek,ekl->el", unit, batch.cell[batch.batch[batch.edge_index[1]]]),
        "cell": batch.cell.reshape(-1, 3),
        "node_attrs": model.one_hot(batch.z, torch.float64),
        "batch": batch.batch,
        "ptr": batch.ptr,
    }
    theirs = model.net(data, compute_force=True, compute_stress=True)
    ref = torch.zeros(2, dtype=torch.float64).index_add(0, batch.batch, model.atom_ref[batch.z])
    torch.testing.assert_close(ours.energy - ref, theirs["energy"])
    torch.testing.assert_close(ours.forces, theirs["forces"])
    torch.testing.assert_close(ours.stress, theirs["stress"])
