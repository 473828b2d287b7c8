from __future__ import annotations

import math

import pytest

from crystalspace.chem.elements import ChemistryError, element_table, parse_elements
from crystalspace.chem.formula import format_formula, parse_formula
from crystalspace.chem.oxidation import NAMED_SETS, load_oxidation_set


def test_element_table_matches_smact():
    from smact import Element

    table = element_table()
    assert table.symbols[1] == "H"
    assert table.symbols[103] == "Lr"
    for z in (1, 8, 26, 61, 103):
        smact_en = Element(table.symbols[z]).pauling_eneg
        assert (smact_en is None and math.isnan(table.pauling[z])) or table.pauling[z] == smact_en


def test_smact14_has_421_species_and_matches_smact():
    from smact import Element

    ox = load_oxidation_set("smact14")
    assert ox.n_species == 421
    assert ox.tag.startswith("smact14@")
    table = element_table()
    for z in range(1, 104):
        expected = Element(table.symbols[z]).oxidation_states_smact14 or []
        assert sorted(ox.states[z]) == sorted(expected), table.symbols[z]


@pytest.mark.parametrize("name", sorted(NAMED_SETS))
def test_every_named_set_loads(name):
    assert load_oxidation_set(name).n_species > 100


def test_user_oxidation_file(tmp_path):
    good = tmp_path / "mine.txt"
    good.write_text("# my set\nLi 1\nO -2\n")
    ox = load_oxidation_set(str(good))
    assert ox.states[3] == (1,)
    assert ox.states[8] == (-2,)
    assert ox.n_species == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("Li one\n")
    with pytest.raises(ChemistryError, match="integers"):
        load_oxidation_set(str(bad))
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("Xx 1\n")
    with pytest.raises(ChemistryError, match="unknown element"):
        load_oxidation_set(str(unknown))
    with pytest.raises(ChemistryError, match="unknown oxidation set"):
        load_oxidation_set("smact99")


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
