"""The provider registry: names, the study's model-table info, one clear error for an unknown name
and for a relaxation that needs a stress the provider does not give."""

from __future__ import annotations

import pytest

from crystalspace.potentials import ForceProviderError, Relaxer, check_provider, get_provider, provider_info


def test_registry_names():
    check_provider("pair")
    assert provider_info("chgnet")["parameters"] == 412525
    assert provider_info("pair")["epochs"] == "none (analytic)"
    with pytest.raises(ForceProviderError, match="unknown force provider 'no-such-model'"):
        check_provider("no-such-model")
    with pytest.raises(ForceProviderError, match="unknown force provider"):
        get_provider("no-such-model")
    with pytest.raises(ForceProviderError, match="gives no stress"):
        Relaxer(lambda z, pos, cell: get_provider("pair")(z, pos, cell), relax_cell=True)
