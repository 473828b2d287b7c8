"""The distance network: symmetric output, channel widths doubling as configured."""

from __future__ import annotations

import torch

from crystalspace.csp.model import DistanceNet, NetConfig


def test_network_symmetric_and_widths() -> None:
    torch.manual_seed(0)
    net = DistanceNet(
        NetConfig(n_out=5, blocks_1d=3, filters_1d=4, blocks_2d=3, filters_2d=4, double_every=2)
    ).eval()
    out = net(torch.randn(2, 12, 11), torch.ones(2, 12, dtype=torch.bool))
    assert out.shape == (2, 5, 12, 12)
    assert torch.allclose(out, out.transpose(2, 3))
    assert net.net2[-1].body[0].out_channels == 8  # doubled after 2 blocks
