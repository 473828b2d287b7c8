"""MD on Ray actors: an actor killed mid-run resumes its replicas from their checkpoints with
contiguous frames, and more actors than CPUs all finish."""

from __future__ import annotations

import numpy as np
import pytest

from crystalspace.md.replicas import MDProtocol
from crystalspace.md.trajectory import read_trajectory


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
