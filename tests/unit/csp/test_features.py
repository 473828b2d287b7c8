"""Element features and the padded species encoding of a formula."""

from __future__ import annotations

from crystalspace.csp.features import FEATURES, Standardiser, element_features, encode, species_of


def test_features_and_encoding() -> None:
    f = element_features(8)  # oxygen
    assert len(f) == len(FEATURES) == 11
    assert f[-1] == 8
    assert f[8] == 2
    assert abs(f[9] - 3.44) < 1e-6
    std = Standardiser.fit([8, 12, 40, 13])
    x, m = encode(species_of("Zr4Al3"), std)
    assert x.shape == (12, 11)
    assert m.sum() == 7
    assert not x[7:].any()
