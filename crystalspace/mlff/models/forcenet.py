"""ForceNet (Hu et al. 2021, "ForceNet: A Graph Neural Network for Large-Scale Quantum Calculations").

A direct-force model: an MLP decoder maps each atom's final features to the three Cartesian force
components, so forces are not −∂E/∂r (``conservative = False``) and cost one forward pass. Its
messages see the edge direction in the fixed laboratory frame, so the model is translation
invariant only (no rotation invariance or force equivariance is built in; rotations are learned
from data):

- atoms: nine continuous element properties (group, period, electronegativity, covalent radius,
  valence electrons, first ionisation energy, electron affinity, block, molar volume), each
  squashed to [0, 1], expanded in sines sin(1.1ᵏ·x) and mapped linearly to ``hidden``;
- edges: real spherical harmonics (l ≤ ``lmax``, e3nn's ``o3.spherical_harmonics``) of the unit
  edge vector, multiplied by a linear map of sine-expanded distances d, d − rᵢ, d − rⱼ,
  d − rᵢ − rⱼ (covalent radii, divided by the cutoff);
- ``layers`` interaction blocks: an edge filter MLP of (edge basis, both atoms' features) gates
  the neighbour's transformed features; the sum over neighbours plus a learned self term goes
  through a node MLP and is added to the atom's features;
- outputs: forces from a per-atom MLP decoder, energy from a linear head summed over atoms.

The design follows the paper and fairchem's MIT reference implementation (its "sphallmul" basis,
edge MLP depth 2, node MLP depth 1, swish activations; hidden 512 and 5 blocks give the study's
11.37 M parameters). Three changes make it a well-behaved force field here: layer norm replaces
batch norm (one structure's output must not depend on its batch), the energy head is applied per
atom before the sum (the energy is extensive, bias included), and every message carries the smooth
envelope ½(cos(πd/r_c) + 1) instead of cos(πd/2r_c), which has a kink at the cutoff.
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import MAX_Z, ForceField, GraphInput, cosine_cutoff, scatter_sum

ELEMENT_FEATURES = 9
"""Continuous element properties of :func:`element_features`."""

_BLOCKS = {"s": 1.0, "p": 2.0, "d": 3.0, "f": 4.0}
_SCALED_UP_TO = 100  # columns span H … Fm; heavier elements' sparse data are clipped


def _known(element: Any, name: str) -> float:
    """pymatgen's property ``name`` of ``element`` as a float, NaN where it has no such data."""
    try:
        value = getattr(element, name)
    except (KeyError, ValueError, AttributeError):
        return math.nan
    return math.nan if value is None else float(value)


@cache
def element_features() -> np.ndarray:
    """(MAX_Z, 9) element properties (pymatgen, ASE), each column min-max scaled to [0, 1] over H … Fm.

    Columns: group, period, Pauling electronegativity, covalent radius, valence electrons, first
    ionisation energy, electron affinity, block (s, p, d, f), molar volume. Unknown values are 0.
    """
    from ase.data import covalent_radii
    from pymatgen.core.periodic_table import Element

    table = np.full((MAX_Z, ELEMENT_FEATURES), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for every property it lacks
        for z in range(1, MAX_Z):
            el = Element.from_Z(z)
            group = el.group
            table[z] = [
                group,
                el.row,
                _known(el, "X"),
                covalent_radii[z],
                group if group <= 12 else group - 10,
                _known(el, "ionization_energy"),
                _known(el, "electron_affinity"),
                _BLOCKS[el.block],
                _known(el, "molar_volume"),
            ]
    known = table[1 : _SCALED_UP_TO + 1]
    low, high = np.nanmin(known, axis=0), np.nanmax(known, axis=0)
    return np.nan_to_num(np.clip((table - low) / (high - low), 0.0, 1.0), nan=0.0)


class SineBasis(nn.Module):
    """sin(1.1ᵏ·x), k = 0 … num_freqs − 1, of each input column (inputs of order [0, 1])."""

    freqs: Tensor

    def __init__(self, num_freqs: int) -> None:
        super().__init__()
        self.register_buffer("freqs", 1.1 ** torch.arange(num_freqs, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x.unsqueeze(-1) * self.freqs.to(x.dtype)).flatten(-2)


def _mlp(sizes: list[int], norm: bool = False) -> nn.Sequential:
    """Linear layers of ``sizes`` with swish between them (and layer norm before the first swish)."""
    layers: list[nn.Module] = [nn.Linear(sizes[0], sizes[1])]
    for k, (n_in, n_out) in enumerate(pairwise(sizes[1:])):
        if norm and k == 0:
            layers.append(nn.LayerNorm(n_in))
        layers += [nn.SiLU(), nn.Linear(n_in, n_out)]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class ForceNetBlock(nn.Module):
    """One ForceNet interaction: edge-conditioned filters on neighbour features, a self term, a node MLP."""

    def __init__(self, hidden: int, edge_dim: int) -> None:
        super().__init__()
        self.edge_embed = _mlp([edge_dim, hidden])
        self.edge_filter = _mlp([3 * hidden, hidden, hidden, hidden])
        self.transform = _mlp([hidden, hidden])
        self.self_weight = nn.Parameter(torch.empty(1, hidden))
        nn.init.xavier_uniform_(self.self_weight)
        self.update = _mlp([hidden, hidden, hidden], norm=True)

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor, envelope: Tensor) -> Tensor:
        src, tgt = edge_index
        w = self.edge_filter(torch.cat([self.edge_embed(edge_attr), h[src], h[tgt]], dim=-1))
        x = self.transform(h)
        message = x[src] * w * envelope.unsqueeze(-1)
        return self.update(scatter_sum(message, tgt, h.shape[0]) + self.self_weight * x)


class ForceNet(ForceField):
    """ForceNet: direct forces from lab-frame directional messages (``conservative = False``)."""

    arch = "forcenet"
    conservative = False
    rotation_invariant = False
    symmetry = "Translation-invariant"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 512, "layers": 5}
    study_params = 11.37e6
    element_table: Tensor
    radii: Tensor

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 512,
        layers: int = 5,
        num_freqs: int = 50,
        lmax: int = 2,
        decoder_hidden: int | None = None,
    ) -> None:
        decoder_hidden = decoder_hidden or hidden
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            num_freqs=num_freqs,
            lmax=lmax,
            decoder_hidden=decoder_hidden,
        )
        from ase.data import covalent_radii

        self.lmax = lmax
        self.register_buffer("element_table", torch.as_tensor(element_features(), dtype=torch.float32))
        self.register_buffer("radii", torch.as_tensor(covalent_radii[:MAX_Z], dtype=torch.float32))
        self.sines = SineBasis(num_freqs)
        self.embed = _mlp([ELEMENT_FEATURES * num_freqs, hidden])
        self.radial = _mlp([4 * num_freqs, 4])
        edge_dim = 4 * (lmax + 1) ** 2
        self.blocks = nn.ModuleList([ForceNetBlock(hidden, edge_dim) for _ in range(layers)])
        self.readout = nn.Sequential(_mlp([hidden, decoder_hidden]), nn.SiLU())
        self.force_decoder = _mlp([decoder_hidden, decoder_hidden, 3], norm=True)
        self.energy_head = _mlp([decoder_hidden, 1])

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        if not 0 <= hparams.get("lmax", 2) <= 8:
            raise ValueError("lmax must be between 0 and 8")

    def edge_features(self, g: GraphInput) -> Tensor:
        """(E, 4·(lmax+1)²): lab-frame spherical harmonics of the edge direction × distance features."""
        from e3nn import o3

        d = g.dist
        src, tgt = g.edge_index
        sph = o3.spherical_harmonics(list(range(self.lmax + 1)), g.vec, normalize=True)
        r_src, r_tgt = self.radii.to(d.dtype)[g.z[src]], self.radii.to(d.dtype)[g.z[tgt]]
        dists = torch.stack([d, d - r_src, d - r_tgt, d - r_src - r_tgt], dim=-1) / self.cutoff
        radial = self.radial(self.sines(dists.clamp_min(1e-3)))
        return (sph.unsqueeze(-1) * radial.unsqueeze(-2)).flatten(-2)

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        h = self.embed(self.sines(self.element_table[g.z]))
        edge_attr = self.edge_features(g)
        envelope = cosine_cutoff(g.dist, self.cutoff)
        for block in self.blocks:
            h = h + block(h, g.edge_index, edge_attr, envelope)
        h = self.readout(h)
        energy = scatter_sum(self.energy_head(h).squeeze(-1), g.batch, g.num_graphs)
        return energy, self.force_decoder(h)
