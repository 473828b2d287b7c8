"""Oxidation-state sets: SMACT's smact14 exactly, every named set, a user's own file."""

from __future__ import annotations

import pytest

from crystalspace.chem.elements import ChemistryError, element_table
from crystalspace.chem.oxidation import NAMED_SETS, load_oxidation_set


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
