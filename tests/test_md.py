"""MD engine: integrators vs ASE, thermostats, blow-up detection, Ray actors with kill/resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read

from crystalspace.md.integrators import FS, MDState, NoseHooverChain, nhc_step, velocity_verlet
from crystalspace.md.replicas import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
from crystalspace.md.trajectory import read_trajectory
from crystalspace.potentials import (
    AseCalculatorProvider,
    ForceProviderError,
    ProviderCalculator,
    get_provider,
)
from crystalspace.potentials.pair import PairPotential

REF = Path(__file__).parent / "data" / "mlff_subset"  # relaxed CIFs + labelled frames
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def li3ps4():
    return read(f"{REF}/Li3PS4_chgnet_relaxed.cif")


def _state(atoms, provider, momenta_seed=0, temperature=600.0, replicas=1):
    from ase.data import atomic_masses

    from crystalspace.md.integrators import maxwell_boltzmann

    z = torch.as_tensor(atoms.numbers)
    cell = torch.as_tensor(atoms.cell[:])[None].repeat(replicas, 1, 1)
    pos = torch.as_tensor(atoms.positions)[None].repeat(replicas, 1, 1).clone()
    masses = torch.as_tensor(atomic_masses[atoms.numbers])
    p = maxwell_boltzmann(masses, temperature, [momenta_seed + k for k in range(replicas)])
    e, f = provider(z, pos, cell)
    return MDState(pos, p, masses, e, f), (lambda q: provider(z, q, cell))


def test_pair_forces_are_minus_energy_gradient(li3ps4):
    pot = PairPotential()
    z = torch.as_tensor(li3ps4.numbers)
    pos = torch.as_tensor(li3ps4.positions)[None] + 0.05 * torch.randn(1, len(li3ps4), 3, dtype=torch.float64)
    cell = torch.as_tensor(li3ps4.cell[:])[None]
    _, f = pot(z, pos, cell)
    h = 1e-5
    for atom, axis in [(0, 0), (7, 2), (12, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[0, atom, axis] += h
        minus[0, atom, axis] -= h
        fd = -(pot(z, plus, cell)[0] - pot(z, minus, cell)[0]) / (2 * h)
        assert float(fd) == pytest.approx(float(f[0, atom, axis]), abs=1e-6)
    shifted = pos + torch.as_tensor(li3ps4.cell[:])[0]  # a lattice translation changes nothing
    assert float(pot(z, shifted, cell)[0]) == pytest.approx(float(pot(z, pos, cell)[0]), abs=1e-9)


def test_nve_conserves_energy(li3ps4):
    state, forces = _state(li3ps4, PairPotential(), replicas=2)
    e0 = (state.energy + state.kinetic_energy()).clone()
    drift = []
    for _ in range(300):
        velocity_verlet(state, forces, 1.0 * FS)
        drift.append(((state.energy + state.kinetic_energy()) - e0).abs().max().item())
    assert max(drift) / len(li3ps4) < 2e-4  # eV/atom over 0.3 ps
    assert state.temperature().min() > 50  # it actually moved


@pytest.mark.parametrize("ensemble", ["nve", "nhc"])
def test_agrees_with_ase_integrators(li3ps4, ensemble):
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    pot = PairPotential()
    state, forces = _state(li3ps4, pot, temperature=800.0)
    atoms = li3ps4.copy()
    atoms.calc = ProviderCalculator(pot)
    atoms.set_momenta(state.momenta[0].numpy())
    dt = 2 * FS
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=1000, tdamp=100 * dt, tchain=3)
        nhc = NoseHooverChain(torch.tensor([1000.0], dtype=torch.float64), len(atoms), 100 * dt, 3, 1)
    for _ in range(50):
        dyn.run(1)
        if ensemble == "nve":
            velocity_verlet(state, forces, dt)
        else:
            nhc_step(state, forces, dt, nhc)
    assert np.abs(atoms.positions - state.positions[0].numpy()).max() < 1e-8
    assert np.abs(atoms.get_momenta() - state.momenta[0].numpy()).max() < 1e-8


def test_ase_calculator_adapter_matches_batched_provider(li3ps4):
    pot = PairPotential()
    adapter = AseCalculatorProvider(ProviderCalculator(pot))
    z = torch.as_tensor(li3ps4.numbers)
    pos = torch.as_tensor(li3ps4.positions)[None].repeat(2, 1, 1) + 0.03 * torch.randn(
        2, len(li3ps4), 3, dtype=torch.float64
    )
    cell = torch.as_tensor(li3ps4.cell[:])[None].repeat(2, 1, 1)
    e1, f1 = pot(z, pos, cell)
    e2, f2 = adapter(z, pos, cell)
    assert torch.allclose(e1, e2)
    assert torch.allclose(f1, f2)
    with pytest.raises(ForceProviderError, match="unknown force provider"):
        get_provider("no-such-model")


def _batch(atoms, temps, out, **protocol):
    specs = [ReplicaSpec("Li3PS4", t, k, replica_seed(1, t, k), k) for k, t in enumerate(temps)]
    return ReplicaBatch(PairPotential(), atoms.numbers, atoms.cell[:], atoms.positions, specs,
                        MDProtocol(**protocol), out, "t")  # fmt: skip


@pytest.mark.parametrize("thermostat", ["nhc", "langevin"])
def test_thermostat_holds_temperature(li3ps4, tmp_path, thermostat):
    b = _batch(li3ps4, [700.0] * 4, tmp_path, t0_K=700, ramp_ps=0.0, production_ps=1.2, thermostat=thermostat,
               tdamp_steps=25, record_every=5, checkpoint_every=10_000)  # fmt: skip
    b.start()
    b.run()
    temps = read_trajectory(tmp_path).to_pandas()
    late = temps[temps.time_fs >= 600].temperature_inst_K
    assert late.mean() == pytest.approx(700, rel=0.12)


def test_ramp_reaches_target(li3ps4, tmp_path):
    b = _batch(li3ps4, [400.0, 900.0], tmp_path, ramp_ps=0.2, production_ps=0.0, rescale_every=10)
    b.start()
    b.run()
    t = b.state.temperature().numpy()
    assert t == pytest.approx([400, 900], rel=1e-6)  # the last ramp step rescales to exactly T


def test_blow_ups_stop_only_their_replica(li3ps4, tmp_path):
    class NanFor1:
        def __init__(self):
            self.pot, self.calls = PairPotential(), 0

        def __call__(self, z, pos, cell):
            e, f = self.pot(z, pos, cell)
            self.calls += 1
            if self.calls > 5:
                f[1, 0, 0] = float("nan")
            f[2] = 0.0  # a "model" without short-range repulsion: nothing keeps atoms apart
            return e, f

    b = _batch(li3ps4, [600.0] * 4, tmp_path, ramp_ps=0.0, t0_K=600, production_ps=0.1, check_every=5,
               record_every=5, checkpoint_every=25)  # fmt: skip
    b.provider = NanFor1()
    b.start()
    b.state.positions[2, 1] = b.state.positions[2, 0] + torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)
    b.state.momenta[2, :2] = 0.0
    b.state.momenta[3] *= 12.0  # ~ 86,000 K
    b.run()
    reasons = {s["replica"]: s["reason"] for s in b.summary()}
    assert reasons[0] is None
    assert reasons[1] == "nan_forces"
    assert reasons[2].startswith("atom_fusion")
    assert reasons[3].startswith("temperature_runaway")
    frames = read_trajectory(tmp_path).to_pandas()
    assert frames[frames.replica == 0].step.max() == 50
    assert frames[frames.replica.isin([1, 2, 3])].step.max() <= 10
    assert np.isfinite(np.stack(frames.forces.to_numpy())).all()


@pytest.mark.slow
def test_actors_run_kill_resume_contiguous(ray_session, li3ps4, tmp_path):
    import json

    from crystalspace.md.actors import run_md
    from crystalspace.md.analysis import diffusion_table

    protocol = MDProtocol(
        ramp_ps=0.1, production_ps=0.3, checkpoint_every=20, record_every=5, record_every_ramp=5
    )
    summary = run_md({"Li3PS4": li3ps4}, [800.0, 1000.0], 3, tmp_path, protocol, actors_per_material=2,
                     crash_at_step=70)  # fmt: skip
    assert (tmp_path / ".crashed-Li3PS4-a0").exists()  # the first actor really died once
    assert len(summary) == 6
    assert all(r["status"] == "ok" and r["last_step"] == 200 for r in summary)
    frames = read_trajectory(tmp_path).to_pandas()
    for _, g in frames.groupby("replica"):
        steps = g.step.to_numpy()
        assert steps[0] == 0
        assert steps[-1] == 200
        assert set(np.diff(steps)) == {5}  # no gap, no duplicate
    assert json.loads((tmp_path / "summary.json").read_text())["ns_per_day"] > 0
    table = diffusion_table(frames, fit_ps=(0.05, 0.15))
    assert len(table) == 6
    assert (table.D_cm2_s > 0).all()


def test_more_actors_than_cpus_finish(ray_session, li3ps4, tmp_path):
    """Three 1-CPU actors on the 2-CPU session: the third runs once a finished actor frees its CPU."""
    from crystalspace.md.actors import run_md

    protocol = MDProtocol(ramp_ps=0.01, production_ps=0.02, checkpoint_every=10, record_every=5,
                          record_every_ramp=5)  # fmt: skip
    summary = run_md({"Li3PS4": li3ps4}, [900.0], 3, tmp_path, protocol, actors_per_material=3)
    assert sorted(r["replica"] for r in summary) == [0, 1, 2]
    assert all(r["status"] == "ok" and r["last_step"] == 15 for r in summary)


def test_speed_benchmark_quick(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_md_speed.py"
    spec = importlib.util.spec_from_file_location("bench_md_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--models", "pair", "--out", str(tmp_path)]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "md_speed.csv")
    assert list(table.replicas) == [1, 2]
    assert list(table.path) == ["new", "new"]  # a registered provider has no old path
    assert (table.ns_day_aggregate > 0).all()
    assert (table.stopped == 0).all()


MULTINODE = """
import collections, sys
from ase.io import read
import ray
from ray.cluster_utils import Cluster
from crystalspace.md.actors import run_md
from crystalspace.md.replicas import MDProtocol

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
ray.init(address=cluster.address, log_to_driver=False)
atoms = read(sys.argv[1])
protocol = MDProtocol(ramp_ps=0.02, production_ps=0.02, checkpoint_every=10, record_every=5, record_every_ramp=5)
summary = run_md({"Li3PS4": atoms}, [800.0], 4, sys.argv[2], protocol, actors_per_material=2)
print("NODES", len({r["node_id"] for r in summary}), "OK", sum(r["status"] == "ok" for r in summary))
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
@pytest.mark.integration
def test_driver_spreads_actors_over_nodes(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "RAY_AUTH_MODE": "disabled"}
    res = subprocess.run([sys.executable, "-c", MULTINODE, f"{REF}/Li3PS4_chgnet_relaxed.cif", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert "NODES 2 OK 4" in res.stdout, res.stdout + res.stderr[-2000:]


def test_chgnet_provider_reproduces_reference_labels():
    """The ASE adapter around CHGNet (the teacher) gives the reference files' own energies and forces."""
    import warnings

    import pyarrow.parquet as pq

    rows = pq.read_table(f"{REF}/Li3PS4.parquet").slice(200, 2).to_pylist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        provider = get_provider("chgnet")
        z = torch.as_tensor(np.asarray(rows[0]["numbers"], dtype=np.int64))
        pos = torch.as_tensor(
            np.stack([np.reshape(r["positions"], (-1, 3)) for r in rows]), dtype=torch.float64
        )
        cell = torch.as_tensor(np.stack([np.reshape(r["cell"], (3, 3)) for r in rows]))
        energy, forces = provider(z, pos, cell)
    assert energy.numpy() == pytest.approx([r["energy"] for r in rows], abs=1e-3)
    assert np.abs(forces.numpy() - np.stack([np.reshape(r["forces"], (-1, 3)) for r in rows])).max() < 1e-3
