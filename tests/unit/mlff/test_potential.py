"""The batched force path of ``Potential`` (what MD calls): equal to the reference (vesin, graph) path for
every architecture, DimeNet++ chunking, Verlet lists (alone and over a real MD run), flat positions and
shape checks."""

from __future__ import annotations

import functools
from pathlib import Path

import _paths
import numpy as np
import pytest
import torch

from crystalspace.atoms.io import StructureError
from crystalspace.mlff.data import labelled_rows, load_material
from crystalspace.mlff.models import build_model
from crystalspace.mlff.potential import Potential

DATA = str(_paths.DATA / "mlff_subset")  # 300 frames per material, see README there


@pytest.fixture(scope="module", autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


def edge_set(edge_index: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> set[tuple[int, ...]]:
    return set(map(tuple, torch.cat([edge_index.T - offset, shift.long()], 1).tolist()))


@functools.cache
def potential(arch: str) -> Potential:
    torch.manual_seed(0)
    model = build_model(arch, cutoff=4.5, hidden=16, layers=2).double()
    with torch.no_grad():
        model.atom_ref.uniform_(-1, 1)
    return Potential(model).eval()


def li_p_s_batch(replicas: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jittered 12-atom triclinic Li-P-S cells, one per replica (cells differ, rc > half the cell)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([[6.2, 0.0, 0.0], [0.4, 5.9, 0.0], [-0.3, 0.5, 6.4]], dtype=torch.float64)
    cells = base + 0.1 * torch.randn(replicas, 3, 3, generator=g, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*[torch.arange(3.0, dtype=torch.float64)] * 3, indexing="ij"), -1)
    frac = grid.reshape(-1, 3)[torch.randperm(27, generator=g)[:12]] / 3
    frac = frac + 0.03 * torch.randn(replicas, 12, 3, generator=g, dtype=torch.float64)
    z = torch.tensor([3] * 6 + [15] * 2 + [16] * 4)
    return z, torch.bmm(frac, cells), cells


@pytest.mark.parametrize("arch", ["schnet", "painn", "nequip", "dimenet", "dimenetpp", "cgcnn", "forcenet"])
def test_batched_equals_the_vesin_batch_path(arch: str) -> None:
    pot = potential(arch)
    z, pos, cells = li_p_s_batch(3)
    ref = pot.forward(pot.graphs(z, pos, cells), forces=True, stress=True)
    energy, forces, stress = pot.batched(z, pos, cells, stress=True)
    assert ref.forces is not None
    assert torch.allclose(energy, ref.energy, atol=1e-10, rtol=0)
    assert torch.allclose(forces, ref.forces.reshape(3, 12, 3), atol=1e-10, rtol=0)
    if pot.conservative:
        assert ref.stress is not None
        assert torch.allclose(stress, ref.stress, atol=1e-12, rtol=0)
        assert stress.abs().max() > 1e-6
    else:  # direct-force model: no stress
        assert ref.stress is None
        assert torch.isnan(stress).all()
    assert forces.abs().max() > 1e-4  # a non-trivial check


def test_dimenetpp_chunks_give_the_same_result() -> None:
    pot = potential("dimenetpp")
    z, pos, cells = li_p_s_batch(5, seed=3)
    whole = pot.batched(z, pos, cells, stress=True)
    edge_index, _ = pot.neighbors(pos, cells)
    chunked = Potential(pot.model, pot.max_neighbors, max_work=1.0)  # one replica per chunk
    assert len(chunked._chunks(edge_index, 5, 12)) == 5
    assert len(pot._chunks(edge_index, 5, 12)) == 1
    parts = chunked.batched(z, pos, cells, stress=True)
    for a, b in zip(whole, parts, strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_verlet_list_matches_a_fresh_list_along_a_trajectory() -> None:
    fresh = potential("schnet")
    verlet = Potential(fresh.model, fresh.max_neighbors, skin=0.5)
    z, pos, cells = li_p_s_batch(2, seed=5)
    g = torch.Generator().manual_seed(1)
    steps = 30
    for _ in range(steps):
        pos = pos + 0.04 * torch.randn(pos.shape, generator=g, dtype=torch.float64)
        e_fresh, f_fresh = fresh.batched(z, pos, cells)
        e_verlet, f_verlet = verlet.batched(z, pos, cells)
        assert torch.allclose(e_verlet, e_fresh, atol=1e-12, rtol=0)
        assert torch.allclose(f_verlet, f_fresh, atol=1e-12, rtol=0)
        ei_f, sh_f = fresh.neighbors(pos, cells)
        ei_v, sh_v = verlet.neighbors(pos, cells)
        assert edge_set(ei_f, sh_f) == edge_set(ei_v, sh_v)
    assert 1 < verlet.rebuilds < steps  # reused between rebuilds, rebuilt when atoms moved
    before = verlet.rebuilds
    verlet.batched(z, pos, cells * 1.01)  # new cells: rebuilt
    assert verlet.rebuilds == before + 1


def test_verlet_list_over_an_md_run_equals_fresh_lists(tmp_path: Path) -> None:
    """The real MD engine (NVT, 1500 K, 40 steps) gives the same trajectory with and without reuse."""
    from crystalspace.md.replicas import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
    from crystalspace.potentials.mlff import potential_provider

    fresh = potential("schnet")
    verlet = Potential(fresh.model, fresh.max_neighbors, skin=0.6)
    z, pos, cells = li_p_s_batch(1, seed=2)
    protocol = MDProtocol(t0_K=1500.0, ramp_ps=0.0, production_ps=0.08, dt_fs=2.0, record_every=1000)
    specs = [ReplicaSpec("LiPS", 1500.0, k, replica_seed(0, 1500.0, k), k) for k in range(2)]
    runs = []
    for name, pot in (("fresh", fresh), ("verlet", verlet)):
        batch = ReplicaBatch(potential_provider(pot), z.numpy(), cells[0].numpy(), pos[0].numpy(), specs, protocol,
                             tmp_path / name, name)  # fmt: skip
        batch.start()
        for _ in range(protocol.n_steps):
            batch.advance()
        runs.append(batch.state)
    moved = (runs[1].positions - torch.as_tensor(pos[0])).norm(dim=-1).max()
    assert moved > 0.6  # atoms moved past the skin: the list had to be rebuilt
    assert 1 < verlet.rebuilds < protocol.n_steps // 2
    assert torch.allclose(runs[0].positions, runs[1].positions, atol=1e-9, rtol=0)
    assert torch.allclose(runs[0].forces, runs[1].forces, atol=1e-8, rtol=0)


def test_batched_provider_accepts_flat_positions_and_checks_shapes() -> None:
    from crystalspace.mlff.models import build_model
    from crystalspace.mlff.potential import Potential

    torch.manual_seed(0)
    pot = Potential(build_model("painn", cutoff=4.0, hidden=8, layers=1))
    rows = labelled_rows(load_material(DATA, "Li3PS4").slice(0, 3))
    pos = np.stack([r["positions"].reshape(-1, 3) for r in rows])
    cell = np.stack([r["cell"].reshape(3, 3) for r in rows])
    e1, f1 = pot.batched(rows[0]["numbers"], pos, cell)
    e2, f2 = pot.batched(rows[0]["numbers"], pos.reshape(-1, 3), cell)  # (R·N, 3) works too
    assert torch.allclose(e1, e2)
    assert torch.allclose(f1, f2)
    e, f, s = pot.batched(rows[0]["numbers"], pos, cell, stress=True)
    assert torch.allclose(f, f1, atol=1e-5)
    assert s.shape == (3, 3, 3)
    assert torch.allclose(e, e1, atol=1e-5)
    with pytest.raises(StructureError, match="cell must be"):
        pot.batched(rows[0]["numbers"], pos, cell[:2])
