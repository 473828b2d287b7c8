"""iMatGen networks: 3-D convolutional autoencoders for cell and basis images, and the materials
generator (a VAE over the concatenated image vectors plus element information, with a stability
classifier on the latent space)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn


def _depth(grid: int) -> int:
    """Stride-2 stages that take a grid down to 4³ (grid must be 4·2^k)."""
    k = round(math.log2(grid / 4))
    if k < 1 or 4 * 2**k != grid:
        raise ValueError(f"image grid must be 4·2^k with k ≥ 1 (8, 16, 32, 64, ...), got {grid}")
    return k


class ConvAutoencoder(nn.Module):
    """One-channel 3-D image (grid³) ↔ vector of size ``latent``; sigmoid output in [0, 1]."""

    def __init__(self, grid: int, latent: int, width: int = 16) -> None:
        super().__init__()
        k = _depth(grid)
        chans = [1] + [min(width * 2**i, 128) for i in range(k)]
        enc: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            enc += [nn.Conv3d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm3d(cout), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(chans[-1] * 64, latent))
        dec: list[nn.Module] = [nn.Linear(latent, chans[-1] * 64), nn.Unflatten(1, (chans[-1], 4, 4, 4))]
        rev = chans[::-1]
        for i, (cin, cout) in enumerate(itertools.pairwise(rev)):
            dec.append(nn.ConvTranspose3d(cin, cout, 4, stride=2, padding=1))
            if i < len(rev) - 2:
                dec += [nn.BatchNorm3d(cout), nn.LeakyReLU(0.2)]
        self.decoder = nn.Sequential(*dec, nn.Sigmoid())
        self.latent = latent

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class MaterialsVAE(nn.Module):
    """VAE over material vectors [cell | basis per element | element counts] with a stability head."""

    def __init__(self, in_dim: int, latent: int, hidden: int = 512) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden // 2), nn.LeakyReLU(0.2)
        )
        self.mu = nn.Linear(hidden // 2, latent)
        self.logvar = nn.Linear(hidden // 2, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden // 2),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden // 2, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, in_dim),
        )
        self.classifier = nn.Sequential(nn.Linear(latent, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
        self.latent = latent

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h).clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar, self.classifier(z).squeeze(-1)


def vae_loss(
    x: torch.Tensor,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    stable: torch.Tensor,
    beta: float,
    gamma: float,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Reconstruction (MSE, optionally weighted per input number and normalised by the mean weight)
    + β·KL + γ·BCE(stability); the classifier term organises the latent space. The parts come back
    as detached tensors (reading them on the host would sync every step)."""
    recon, mu, logvar, logit = out
    sq = (recon - x) ** 2
    rec = sq.mean() if weight is None else (sq * weight).mean() / weight.mean()
    kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1))
    bce = nn.functional.binary_cross_entropy_with_logits(logit, stable.float())
    acc = ((logit > 0) == stable.bool()).float().mean()
    parts = {"rec": rec, "kl": kl, "bce": bce, "acc": acc}
    return rec + beta * kl + gamma * bce, {k: v.detach() for k, v in parts.items()}


def image_loss(pred: torch.Tensor, target: torch.Tensor, peak_weight: float = 10.0) -> torch.Tensor:
    """MSE weighted towards occupied voxels (basis images are mostly empty)."""
    return torch.mean((pred - target) ** 2 * (1 + peak_weight * target))


COUNT_SCALE = 20.0  # atoms per element enter the material vector as counts / COUNT_SCALE


def material_vectors(
    cell_ae: Any, basis_ae: Any, cell: torch.Tensor, basis: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """``[cell vector | basis vector per element | counts / COUNT_SCALE]`` (the generator's input)."""
    b, c = basis.shape[:2]
    vb = basis_ae.encode(basis.reshape(b * c, 1, *basis.shape[2:])).reshape(b, -1)
    return torch.cat([cell_ae.encode(cell), vb, counts / COUNT_SCALE], dim=1)
