"""MD replicas: thermostats hold their temperature, the ramp reaches its target, a blow-up stops only
its own replica."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crystalspace.md.replicas import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
from crystalspace.md.trajectory import read_trajectory
from crystalspace.potentials.pair import PairPotential

torch.set_num_threads(1)


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
