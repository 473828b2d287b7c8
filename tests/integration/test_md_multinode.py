"""The MD driver spreads replica actors over the nodes of a two-node ``ray.cluster_utils.Cluster``
(in its own process: the cluster must not meet the tests' shared Ray session)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _paths import DATA, ROOT

REF = DATA / "mlff_subset"  # relaxed CIFs + labelled frames

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
def test_driver_spreads_actors_over_nodes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    res = subprocess.run([sys.executable, "-c", MULTINODE, f"{REF}/Li3PS4_chgnet_relaxed.cif", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert "NODES 2 OK 4" in res.stdout, res.stdout + res.stderr[-2000:]
