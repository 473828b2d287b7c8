"""Exact composition counts for a sub-space, through the Python API.

Counts every binary, ternary and quaternary composition of Li, Zn, Sn, O, Fe and S with
stoichiometric factors 1..8 and labels them with the SMACT filters and the shipped Materials
Project reference set. Nothing is written and no Ray cluster is started: the counts come from
the numba kernel in well under a second.

    python examples/space_count.py
"""

from __future__ import annotations

from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space

ELEMENTS = "Li,Zn,Sn,O,Fe,S"
COLUMNS = ("compositions", "allowed", "known", "standard", "missing", "interesting", "unlikely")


def main() -> None:
    config = make_space_config(overrides={"elements": ELEMENTS, "arities": "2,3,4"})
    space = Space.load(config)
    print(f"{ELEMENTS}, factors 1..{config.limit}, {space.ox.tag}, reference {space.known.tag}")
    print(f"{'arity':>5}" + "".join(f"{name:>14}" for name in COLUMNS))
    for arity in config.arities:
        counts = space.count(arity)
        print(f"{arity:>5}" + "".join(f"{getattr(counts, name):>14,}" for name in COLUMNS))
        assert counts.standard + counts.missing == counts.allowed


if __name__ == "__main__":
    main()
