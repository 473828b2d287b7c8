"""Issue #5 (MD speed): the vectorised batched neighbour list, the direct MD force path, Verlet lists,
DimeNet++ chunking and the speed benchmarks' study lookup — each against the reference (vesin) path."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from crystalspace.atoms.graph import batched_neighbor_list, neighbor_list
from crystalspace.atoms.io import StructureError
from crystalspace.mlff.models import build_model
from crystalspace.mlff.potential import Potential

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module", autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


def random_batch(seed: int, replicas: int, n: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Triclinic cells ~``scale`` Å (some smaller than the cutoff) and positions partly outside them."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.eye(3, dtype=torch.float64) * scale + 0.3 * scale * torch.randn(replicas, 3, 3, generator=g,
                                                                                  dtype=torch.float64)  # fmt: skip
    frac = 2.0 * torch.rand(replicas, n, 3, generator=g, dtype=torch.float64) - 0.5
    return torch.bmm(frac, cells), cells


def edge_set(edge_index: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> set[tuple[int, ...]]:
    return set(map(tuple, torch.cat([edge_index.T - offset, shift.long()], 1).tolist()))


@pytest.mark.parametrize("scale", [2.5, 4.0, 9.0])
@pytest.mark.parametrize("seed", range(4))
def test_batched_neighbor_list_equals_vesin_edge_for_edge(seed: int, scale: float) -> None:
    replicas, n, rc = 3, 1 + 4 * seed, 4.0
    pos, cells = random_batch(seed, replicas, n, scale)
    edge_index, shift, dist = batched_neighbor_list(pos, cells, rc, None, max_candidates=200)  # forces chunks
    assert (dist < rc).all()
    assert len(dist) == edge_index.shape[1]
    assert scale > rc or len(dist) > 0  # cells smaller than the cutoff: self-images at least
    tgt = edge_index[1]
    assert bool((torch.diff(tgt // n) >= 0).all())  # replica-major, like collate
    for r in range(replicas):
        mine = (tgt // n) == r
        assert (edge_index[0, mine] // n == r).all()
        ref_index, ref_shift = neighbor_list(pos[r], cells[r], rc, True, None)
        assert edge_set(edge_index[:, mine], shift[mine], r * n) == edge_set(ref_index, ref_shift)
        vec = pos[r][ref_index[0]] + ref_shift.double() @ cells[r] - pos[r][ref_index[1]]
        assert torch.allclose(torch.sort(vec.norm(dim=-1)).values, torch.sort(dist[mine]).values)


def test_batched_neighbor_cap_keeps_the_nearest() -> None:
    pos, cells = random_batch(7, 2, 6, 3.0)  # dense: ~40 neighbours each within 4 Å
    cap = 10
    edge_index, _shift, dist = batched_neighbor_list(pos, cells, 4.0, cap)
    counts = torch.bincount(edge_index[1], minlength=12)
    assert counts.max() == cap
    for r in range(2):
        ref_index, ref_shift = neighbor_list(pos[r], cells[r], 4.0, True, cap)
        mine = (edge_index[1] // 6) == r
        # ties (±image of the same atom) make the kept set ambiguous: compare distances per centre
        vec = pos[r][ref_index[0]] + ref_shift.double() @ cells[r] - pos[r][ref_index[1]]
        ref = sorted(zip(ref_index[1].tolist(), np.round(vec.norm(dim=-1).numpy(), 9).tolist(), strict=True))
        got = sorted(
            zip((edge_index[1, mine] - 6 * r).tolist(), np.round(dist[mine].numpy(), 9).tolist(), strict=True)
        )
        assert got == ref


def test_batched_neighbor_list_rejects_bad_input() -> None:
    pos, cells = random_batch(0, 2, 3, 5.0)
    with pytest.raises(StructureError, match="non-finite"):
        batched_neighbor_list(pos.clone().fill_(float("nan")), cells)
    with pytest.raises(StructureError, match="degenerate"):
        batched_neighbor_list(pos, torch.zeros_like(cells))


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


@pytest.mark.parametrize("arch", ["schnet", "painn", "nequip", "dimenetpp", "cgcnn", "forcenet"])
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


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_md_speed_study_lookup() -> None:
    bench = load_bench("bench_md_speed")
    assert bench.study_reference("dimenetpp-lgps-v1") == ("DimeNet++", 6.0)
    assert bench.study_reference("dimenet-lgps-v1") == ("DimeNet", 1.4)
    assert bench.study_reference("schnet-lgps-v1") == ("SchNet", 22.5)
    label, value = bench.study_reference("nequip-lgps-v1")
    assert value == 3.0
    assert "Equiformer" in label
    assert "closest equivariant" in label
    assert np.isnan(bench.study_reference("pair")[1])


def test_neighbors_benchmark_quick(tmp_path: Path) -> None:
    bench = load_bench("bench_md_neighbors")
    assert bench.main(["--quick", "--replicas", "1,2", "--calls", "1", "--out", str(tmp_path)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "neighbors.csv")
    assert list(table.replicas) == [1, 2]
    assert (table.max_dE_eV < 1e-3).all()
    assert (table[["nl_old_ms", "nl_new_ms", "force_old_ms", "force_new_ms"]] > 0).all().all()


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


def test_md_speed_benchmark_quick(tmp_path: Path) -> None:
    bench = load_bench("bench_md_speed")
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "md_speed.csv")
    assert list(zip(table.path, table.replicas, strict=True)) == [
        ("old", 1),
        ("old", 2),
        ("new", 1),
        ("new", 2),
    ]
    assert (table.ms_per_step > 0).all()
    assert (table.stopped == 0).all()
    assert np.allclose(table.ns_day_aggregate, table.ns_day_per_replica * table.replicas)
    assert np.allclose(table.aggregate_vs_study, table.ns_day_aggregate / 22.5)
    assert (table.study_reference == "SchNet").all()
    assert np.allclose(table.speedup_vs_old[:2], 1.0)
    assert "| model | path | replicas | ms_per_step |" in (tmp_path / "md_speed.md").read_text()
    assert (tmp_path / "md_speed.png").stat().st_size > 10_000
