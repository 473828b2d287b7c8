"""Build a tiny composition lake with Ray Data, then query it with DuckDB.

Builds the binary and ternary compositions of Li, Zn, Sn and O (2,014 rows, a few seconds) in
a temporary directory on an embedded Ray cluster, then runs two of the named queries of
``queries/``: ``table2`` (counts per arity and category) and ``chemical_system`` (every allowed
or known composition of Zn-O).

    python examples/space_lake.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ray

from crystalspace.lake.duck import connect, run_query
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config


def show(title: str, result) -> None:
    """Print a DuckDB result as a plain table."""
    names = [d[0] for d in result.description]
    print(f"\n{title}\n  " + " | ".join(names))
    for row in result.fetchall():
        print("  " + " | ".join("" if v is None else str(v) for v in row))


def main() -> None:
    config = make_space_config(overrides={"elements": "Li,Zn,Sn,O", "arities": "2,3"})
    with tempfile.TemporaryDirectory() as tmp:
        lake = str(Path(tmp) / "lake")
        try:
            report = build_lake(config, lake, num_cpus=2)
        finally:
            ray.shutdown()
        print(f"lake {'complete' if report.complete else 'INCOMPLETE'}: {report.shards_built} shards")
        con = connect(lake)
        show("table2", run_query(con, "table2"))
        show("chemical_system Zn,O", run_query(con, "chemical_system", {"elements": "Zn,O"}))


if __name__ == "__main__":
    main()
