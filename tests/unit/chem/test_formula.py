"""Formulas and element lists: parse, reduce, format; one clear error for what is not a formula."""

from __future__ import annotations

import pytest

from crystalspace.chem.elements import ChemistryError, parse_elements
from crystalspace.chem.formula import format_formula, parse_formula


def test_parse_and_format_formulas():
    assert parse_formula("Mg2O2") == {8: 1, 12: 1}
    assert parse_formula("Li10Ge(PS6)2") == {3: 10, 15: 2, 16: 12, 32: 1}
    assert parse_formula("Li4O2") == {3: 2, 8: 1}
    assert format_formula(parse_formula("O8SnZn4Li")) == "LiZn4SnO8"
    assert format_formula(parse_formula("NaN")) == "NaN"
    with pytest.raises(ChemistryError):
        parse_formula("Xy2O")
    with pytest.raises(ChemistryError):
        parse_formula("Fe0.5O")
    assert parse_elements("O, Li,Zn") == [3, 8, 30]
    with pytest.raises(ChemistryError):
        parse_elements("Li,Qq")
