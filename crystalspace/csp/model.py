"""Residual network: 1-D blocks over atoms -> pair features -> 2-D blocks -> per-pair bin logits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class NetConfig:
    """Widths and depths (study defaults: 9 blocks, 32 -> x2 every 3 in 1-D; 9 blocks, 256 -> x2 every 3 in 2-D)."""

    n_features: int = 11
    n_out: int = 10  # bins (1 = direct regression)
    blocks_1d: int = 9
    filters_1d: int = 32
    blocks_2d: int = 9
    filters_2d: int = 256
    double_every: int = 3

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, dim: int) -> None:
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        self.body = nn.Sequential(
            conv(cin, cout, 3, padding=1), norm(cout), nn.ReLU(), conv(cout, cout, 3, padding=1), norm(cout)
        )
        self.skip = nn.Identity() if cin == cout else conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def _stack(cin: int, base: int, blocks: int, every: int, dim: int) -> tuple[nn.Sequential, int]:
    layers, c = [], cin
    for i in range(blocks):
        w = base * 2 ** (i // every)
        layers.append(_Res(c, w, dim))
        c = w
    return nn.Sequential(*layers), c


class DistanceNet(nn.Module):
    """Maps (B x 12 x 11) atom features + mask to symmetric (B x N x 12 x 12) pair outputs."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net1, c1 = _stack(cfg.n_features, cfg.filters_1d, cfg.blocks_1d, cfg.double_every, 1)
        self.net2, c2 = _stack(3 * c1, cfg.filters_2d, cfg.blocks_2d, cfg.double_every, 2)
        self.head = nn.Conv2d(c2, cfg.n_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()
        h = self.net1(x.transpose(1, 2)) * m[:, None, :]  # B x C x n
        n = h.shape[-1]
        hi, hj = h[:, :, :, None].expand(-1, -1, -1, n), h[:, :, None, :].expand(-1, -1, n, -1)
        pair = torch.cat([hi * hj, hi, hj], dim=1)  # outer product + broadcast site features
        out = self.head(self.net2(pair))
        return 0.5 * (out + out.transpose(2, 3))
