"""The element table (Z 1..103) against SMACT's."""

from __future__ import annotations

import math

from crystalspace.chem.elements import element_table


def test_element_table_matches_smact():
    from smact import Element

    table = element_table()
    assert table.symbols[1] == "H"
    assert table.symbols[103] == "Lr"
    for z in (1, 8, 26, 61, 103):
        smact_en = Element(table.symbols[z]).pauling_eneg
        assert (smact_en is None and math.isnan(table.pauling[z])) or table.pauling[z] == smact_en
