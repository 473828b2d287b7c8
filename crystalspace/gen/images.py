"""Invertible crystal images (iMatGen, Noh et al. 2019): a cell image and per-element basis images.

* **Cell image**: one Gaussian ``p = exp(-r²/2σ²)`` on an m³ grid whose points sit at fractional
  coordinates ``(i + ½)/m`` of the cell; ``r`` is the real-space distance of a grid point from the
  cell centre, so ``r² = dᵀ G d`` with ``d`` the fractional offset and ``G`` the metric tensor. The
  image is distorted by the lattice, and inverting ``r = sqrt(-2σ² ln p)`` at every grid point and
  solving the (linear) least-squares problem for the six entries of ``G`` recovers a, b, c, α, β, γ
  exactly (to floating-point precision) from a clean image.
* **Basis image**: the atoms of the cell, centred in a cubic box of side ``l`` Å, one channel per
  element, each atom a Gaussian of width σ on an n³ grid (spacing ``l/n``). Decoding finds the
  peaks (SciPy ``gaussian_filter`` + ``maximum_filter``) and maps them back to fractional
  coordinates of the (decoded) cell. The grid limits the position error: about 0.11 Å on average
  for n = 64, l = 15 Å (the study's intrinsic error); ``refine=True`` adds a log-parabola sub-voxel
  fit that is exact for an isolated Gaussian.

Rendering is batched torch (CPU or GPU) so training can draw images on the fly; decoding is numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.errors import UserError

if TYPE_CHECKING:
    import torch
    from pymatgen.core import Lattice, Structure


class ImageError(UserError, ValueError):
    """An image or structure that cannot be encoded/decoded with the given image settings."""


@dataclass(frozen=True)
class ImageSpec:
    """Grid settings shared by encoder and decoder (defaults: the study's values)."""

    cell_grid: int = 32  # m
    cell_sigma: float = 2.0  # Å, width of the cell Gaussian (the study does not state it)
    basis_grid: int = 64  # n
    box: float = 15.0  # l, Å
    basis_sigma: float = 0.5  # Å
    elements: tuple[str, ...] = ("V", "O")  # one basis channel per element

    @property
    def spacing(self) -> float:
        """Basis grid spacing (Å)."""
        return self.box / self.basis_grid


# ---------------------------------------------------------------- cell image
def _cell_offsets(m: int) -> np.ndarray:
    """Fractional offsets d from the cell centre of the m³ grid points, shape (m, m, m, 3)."""
    u = (np.arange(m) + 0.5) / m - 0.5
    return np.stack(np.meshgrid(u, u, u, indexing="ij"), axis=-1)


def render_cells(metric: torch.Tensor, m: int, sigma: float) -> torch.Tensor:
    """Cell images (B, 1, m, m, m) from metric tensors G = L Lᵀ (B, 3, 3), Å²."""
    import torch

    d = torch.as_tensor(_cell_offsets(m), dtype=metric.dtype, device=metric.device)
    r2 = torch.einsum("ijka,bac,ijkc->bijk", d, metric, d)
    return torch.exp(-r2 / (2 * sigma**2)).unsqueeze(1)


def cell_image(lattice: Lattice, spec: ImageSpec = ImageSpec()) -> np.ndarray:
    """The cell image (m, m, m) of one lattice (float64)."""
    import torch

    g = torch.as_tensor(np.asarray(lattice.metric_tensor), dtype=torch.float64)[None]
    return render_cells(g, spec.cell_grid, spec.cell_sigma)[0, 0].numpy()


def decode_cell(
    image: np.ndarray, spec: ImageSpec = ImageSpec(), p_range: tuple[float, float] = (1e-6, 0.9999)
) -> Lattice:
    """Lattice from a cell image by inverting r = sqrt(-2σ² ln p) and fitting the metric tensor.

    Points with p outside ``p_range`` carry no usable distance and are ignored; the fit is
    weighted by p so noisy far-field values of a decoded image count little.
    """
    from pymatgen.core import Lattice

    p = np.asarray(image, dtype=np.float64).reshape(-1)
    d = _cell_offsets(spec.cell_grid).reshape(-1, 3)
    ok = (p > p_range[0]) & (p < p_range[1])
    if ok.sum() < 6:
        raise ImageError("cell image has fewer than 6 usable grid values; cannot recover the lattice")
    r2 = -2 * spec.cell_sigma**2 * np.log(p[ok])
    dd = d[ok]
    a = np.stack(
        [
            dd[:, 0] ** 2,
            dd[:, 1] ** 2,
            dd[:, 2] ** 2,
            2 * dd[:, 0] * dd[:, 1],
            2 * dd[:, 0] * dd[:, 2],
            2 * dd[:, 1] * dd[:, 2],
        ],
        axis=1,
    )
    w = p[ok]
    g11, g22, g33, g12, g13, g23 = np.linalg.lstsq(a * w[:, None], r2 * w, rcond=None)[0]
    lengths = np.sqrt(np.clip([g11, g22, g33], 1e-6, None))
    cos = np.clip(
        [g23 / (lengths[1] * lengths[2]), g13 / (lengths[0] * lengths[2]), g12 / (lengths[0] * lengths[1])],
        -0.999,
        0.999,
    )
    alpha, beta, gamma = np.degrees(np.arccos(cos))
    lattice = Lattice.from_parameters(
        float(lengths[0]), float(lengths[1]), float(lengths[2]), alpha, beta, gamma
    )
    if not lattice.volume > MIN_RELATIVE_VOLUME * np.prod(lengths):  # NaN too
        raise ImageError(
            f"cell image decodes to a degenerate lattice (α, β, γ = {alpha:.1f}°, {beta:.1f}°, {gamma:.1f}°)"
        )
    return lattice


#: A decoded cell with volume below this fraction of a·b·c is flat (its angles cannot close a cell).
MIN_RELATIVE_VOLUME = 0.01


# --------------------------------------------------------------- basis image
def box_positions(frac: np.ndarray, lattice_matrix: np.ndarray, box: float) -> np.ndarray:
    """Cartesian positions (Å) in the basis box: the cell centre at the box centre."""
    f = np.mod(np.asarray(frac, dtype=np.float64), 1.0)
    return (f - 0.5) @ np.asarray(lattice_matrix) + box / 2


def render_basis(
    positions: torch.Tensor, channel: torch.Tensor, n: int, box: float, sigma: float, n_channels: int
) -> torch.Tensor:
    """Basis images (B, C, n, n, n) from box positions (B, N, 3) Å and channels (B, N), -1 = padding.

    A Gaussian is separable, so each atom's image is an outer product of three 1-D profiles.
    """
    import torch

    x = torch.arange(n, dtype=positions.dtype, device=positions.device) * (box / n)
    prof = torch.exp(-((positions[..., None] - x) ** 2) / (2 * sigma**2))  # (B, N, 3, n)
    w = torch.nn.functional.one_hot(channel.clamp(min=0), n_channels).to(positions.dtype)
    w = w * (channel >= 0).unsqueeze(-1).to(positions.dtype)
    return torch.einsum("bnc,bni,bnj,bnk->bcijk", w, prof[:, :, 0], prof[:, :, 1], prof[:, :, 2])


def basis_image(structure: Structure, spec: ImageSpec = ImageSpec()) -> np.ndarray:
    """Basis images (C, n, n, n) of one structure (channels follow ``spec.elements``)."""
    import torch

    pos, ch = structure_arrays(structure, spec)
    img = render_basis(
        torch.as_tensor(pos)[None],
        torch.as_tensor(ch)[None],
        spec.basis_grid,
        spec.box,
        spec.basis_sigma,
        len(spec.elements),
    )
    return img[0].numpy()


def standard_matrix(lattice: Lattice) -> np.ndarray:
    """Lattice vectors in pymatgen's standard orientation for (a, b, c, α, β, γ).

    The basis image is drawn in this frame so that the decoded parameters alone fix it.
    """
    from pymatgen.core import Lattice

    a, b, c, alpha, beta, gamma = lattice.parameters
    return np.asarray(Lattice.from_parameters(a, b, c, alpha, beta, gamma).matrix)


def structure_arrays(structure: Structure, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    """Box positions (N, 3) and channel indices (N,) of a structure; clear error if it does not fit."""
    symbols = [site.specie.symbol for site in structure]
    unknown = sorted(set(symbols) - set(spec.elements))
    if unknown:
        raise ImageError(f"elements {unknown} have no basis channel (channels: {list(spec.elements)})")
    pos = box_positions(structure.frac_coords, standard_matrix(structure.lattice), spec.box)
    if pos.min() < 0 or pos.max() > spec.box:
        raise ImageError(f"{structure.formula}: atoms fall outside the {spec.box} Å basis box")
    ch = np.array([spec.elements.index(s) for s in symbols], dtype=np.int64)
    return pos, ch


# ------------------------------------------------------- batches of images
def structure_tensors(
    structures: list[Structure], spec: ImageSpec, max_atoms: int | None = None
) -> dict[str, np.ndarray]:
    """Metric tensors, box positions (padded), channels (-1 = pad) and element counts."""
    p = max_atoms or max(len(s) for s in structures)
    n = len(structures)
    metric = np.zeros((n, 3, 3), np.float32)
    pos = np.zeros((n, p, 3), np.float32)
    ch = -np.ones((n, p), np.int64)
    counts = np.zeros((n, len(spec.elements)), np.float32)
    for i, s in enumerate(structures):
        m = standard_matrix(s.lattice)
        metric[i] = m @ m.T
        x, c = structure_arrays(s, spec)
        pos[i, : len(x)], ch[i, : len(x)] = x, c
        counts[i] = np.bincount(c, minlength=len(spec.elements))
    return {"metric": metric, "pos": pos, "ch": ch, "counts": counts}


def cell_images(
    arrays: dict[str, torch.Tensor], idx: torch.Tensor, spec: ImageSpec, device: Any
) -> torch.Tensor:
    """Cell images (B,1,m,m,m) of rows ``idx``, drawn on ``device``."""
    return render_cells(arrays["metric"][idx].to(device), spec.cell_grid, spec.cell_sigma)


def basis_images(
    arrays: dict[str, torch.Tensor], idx: torch.Tensor, spec: ImageSpec, device: Any
) -> torch.Tensor:
    """Basis images (B,C,n,n,n) of rows ``idx``, drawn on ``device``."""
    return render_basis(
        arrays["pos"][idx].to(device),
        arrays["ch"][idx].to(device),
        spec.basis_grid,
        spec.box,
        spec.basis_sigma,
        len(spec.elements),
    )


def images(
    arrays: dict[str, torch.Tensor], idx: torch.Tensor, spec: ImageSpec, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell (B,1,m,m,m) and basis (B,C,n,n,n) images of rows ``idx``, drawn on ``device``."""
    return cell_images(arrays, idx, spec, device), basis_images(arrays, idx, spec, device)


#: With the atom count known, a peak this high still counts as an atom: a blurred decoded atom can
#: fall below the counting threshold, while the count says how many peaks to take.
COUNTED_PEAK_FLOOR = 0.05


def find_peaks(
    image: np.ndarray,
    spec: ImageSpec,
    threshold: float = 0.3,
    refine: bool = False,
    smooth: float = 0.5,
    count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Peak positions (K, 3) in box Å and their heights (K,) in one basis channel.

    ``gaussian_filter`` (``smooth`` voxels) suppresses decoder noise, ``maximum_filter`` keeps
    local maxima above ``threshold``; ``refine`` fits a parabola to ln p along each axis. With
    ``count`` (the channel's atom count, when the model decodes it) the ``count`` highest maxima
    above :data:`COUNTED_PEAK_FLOOR` are the atoms instead.
    """
    from scipy.ndimage import gaussian_filter, maximum_filter

    img = np.asarray(image, dtype=np.float64)
    sm = gaussian_filter(img, smooth, mode="constant") if smooth > 0 else img
    floor = threshold if count is None else min(threshold, COUNTED_PEAK_FLOOR)
    peaks = (sm == maximum_filter(sm, size=3, mode="constant")) & (img > floor)
    idx = _merge_adjacent(np.argwhere(peaks), img)[:count]
    heights = img[tuple(idx.T)]
    h = spec.spacing
    pos = idx * h
    if refine and len(idx):
        n = img.shape[0]
        logi = np.log(np.clip(img, 1e-12, None))
        for axis in range(3):
            lo, hi = idx.copy(), idx.copy()
            lo[:, axis] = np.clip(lo[:, axis] - 1, 0, n - 1)
            hi[:, axis] = np.clip(hi[:, axis] + 1, 0, n - 1)
            f0, fm, fp = logi[tuple(idx.T)], logi[tuple(lo.T)], logi[tuple(hi.T)]
            curv = fm - 2 * f0 + fp
            shift = np.where(curv < 0, 0.5 * (fm - fp) / np.where(curv < 0, curv, -1.0), 0.0)
            pos[:, axis] += np.clip(shift, -0.5, 0.5) * h
    return pos, heights


MAX_PEAKS = 64  # per channel; a decoded image with more maxima is noise, not a ≤ 20-site cell


def _merge_adjacent(idx: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Keep one voxel of each group of touching maxima (a plateau between grid points), at most
    :data:`MAX_PEAKS` of the highest."""
    if len(idx) < 2:
        return idx
    idx = idx[np.argsort(-img[tuple(idx.T)], kind="stable")][: 4 * MAX_PEAKS]
    kept: list[np.ndarray] = []
    for v in idx:
        if not kept or np.abs(np.array(kept) - v).max(axis=1).min() > 1:
            kept.append(v)
            if len(kept) == MAX_PEAKS:
                break
    return np.array(kept)


def decode_structure(
    cell_img: np.ndarray,
    basis_imgs: np.ndarray,
    spec: ImageSpec = ImageSpec(),
    threshold: float = 0.3,
    refine: bool = False,
    lattice: Lattice | None = None,
    counts: np.ndarray | None = None,
) -> tuple[Structure, np.ndarray]:
    """Structure (and each site's peak height) from cell and basis images.

    ``lattice`` overrides the decoded cell (used to measure the basis decoding alone); ``counts``
    (atoms per channel, rounded here) picks each channel's peaks by count (:func:`find_peaks`).
    """
    from pymatgen.core import Structure

    lat = lattice if lattice is not None else decode_cell(cell_img, spec)
    inv = np.linalg.inv(lat.matrix)
    species: list[str] = []
    frac: list[np.ndarray] = []
    heights: list[np.ndarray] = []
    for c, el in enumerate(spec.elements):
        count = None if counts is None else max(0, round(float(counts[c])))
        pos, hts = find_peaks(basis_imgs[c], spec, threshold, refine, count=count)
        f = np.mod((pos - spec.box / 2) @ inv + 0.5, 1.0)
        species += [el] * len(f)
        frac.append(f)
        heights.append(hts)
    coords = np.concatenate(frac) if species else np.zeros((0, 3))
    return Structure(lat, species, coords), np.concatenate(heights) if species else np.zeros(0)


def encode_structure(structure: Structure, spec: ImageSpec = ImageSpec()) -> dict[str, Any]:
    """Both images of one structure: ``{"cell": (m,m,m), "basis": (C,n,n,n)}``."""
    return {"cell": cell_image(structure.lattice, spec), "basis": basis_image(structure, spec)}


# ------------------------------------------------------------------ metrics
def match_sites(ref: Structure, other: Structure) -> np.ndarray | None:
    """Per-site distances (Å) between the sites of two structures of equal composition, matched
    element by element (Hungarian, periodic distances in ``ref``'s lattice); None if the
    per-element counts differ."""
    from scipy.optimize import linear_sum_assignment

    if ref.composition != other.composition:
        return None
    out = []
    for el in ref.composition.elements:
        a = np.array([s.frac_coords for s in ref if s.specie == el])
        b = np.array([s.frac_coords for s in other if s.specie == el])
        diff = a[:, None, :] - b[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ ref.lattice.matrix, axis=-1)
        i, j = linear_sum_assignment(dist)
        out.append(dist[i, j])
    return np.concatenate(out)


def cell_errors(ref: Lattice, other: Lattice) -> np.ndarray:
    """Absolute errors of (a, b, c) in Å and (α, β, γ) in degrees."""
    return np.abs(np.array(other.parameters) - np.array(ref.parameters))
