"""Why a composition is allowed or not: the verdict, its category and the evidence.

Explains three compositions of the Zn-O, Li-Zn-O and Li-Zn-Sn-O systems of Table 1 of Park et
al. (Faraday Discuss. 2024) in the full space (H..Lr, factors 1..8, smact14 oxidation states):
ZnO (standard: allowed and known), Zn2O (missing: allowed, not known) and LiZn4SnO8
(interesting: known although no oxidation-state assignment is charge neutral).

    python examples/space_explain.py
"""

from __future__ import annotations

from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space

FORMULAS = ("ZnO", "Zn2O", "LiZn4SnO8")


def main() -> None:
    space = Space.load(make_space_config())
    for formula in FORMULAS:
        e = space.explain(formula)
        print(f"{e.formula}: {e.category} - {e.reason}")
        symbols = [symbol for symbol, *_ in e.elements]
        for charges, neutral, pauling_ok in e.assignments:
            if neutral:
                species = " ".join(f"{s}{q:+d}" for s, q in zip(symbols, charges, strict=True))
                print(f"    {species}: Pauling {'pass' if pauling_ok else 'fail'}")


if __name__ == "__main__":
    main()
