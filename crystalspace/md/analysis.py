"""Trajectory analysis: RDF stability, Li MSD, Einstein diffusivity, Nernst–Einstein conductivity, Arrhenius.

Everything works on trajectory tables (reference Parquet files or :mod:`crystalspace.md` output): one
row per frame with ``material``, ``temperature_K``, ``run``, ``step``, ``time_fs``, ``phase``,
``numbers``, ``positions`` (wrapped), ``unwrapped_positions``, ``cell`` and ``temperature_inst_K``.

The diffusivity method is the reference dataset's (``generation/analyze.py``): production frames,
positions relative to the centre of mass, MSD averaged over every time origin and every Li atom (here
by FFT, the same numbers as the explicit loop), lags up to half the run, ``D = slope/6`` from a
least-squares line over lags of 1–5 ps. The Arrhenius fit is ``ln D`` against ``1/(k_B T)``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crystalspace.errors import UserError

KB = 8.617333262e-5  # eV/K
E_CHARGE = 1.602176634e-19  # C
KB_SI = 1.380649e-23  # J/K
RDF_STABLE_MAE = 0.02  # the study's threshold (Duangdangchote et al. 2024, Fig. 3)


class AnalysisError(UserError, ValueError):
    """A trajectory that cannot be analysed (missing columns, no production frames, too few temperatures)."""


class AnalysisWarning(UserWarning):
    """A result that exists but should not be trusted (MSD too short or too flat, poor fit)."""


# --------------------------------------------------------------------------------------- loading
def load_trajectories(paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]) -> pd.DataFrame:
    """Trajectory rows from Parquet files and/or directories of MD chunks, as one DataFrame."""
    import pyarrow as pa

    from crystalspace.md.trajectory import read_trajectory
    from crystalspace.tables import TableError, read_frame

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise AnalysisError("no trajectory files or directories given")
    need = {"material", "temperature_K", "run", "step", "time_fs", "numbers", "positions", "cell"}
    frames = []
    for p in items:
        p = Path(p)
        if p.is_dir():
            try:
                frame = read_trajectory(p).to_pandas()
            except (OSError, pa.ArrowException) as exc:  # a chunk that is not readable Parquet
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise TableError(f"cannot read trajectory directory {p}: {first}") from None
        elif p.is_file():
            frame = read_frame(p, "trajectory")
        else:
            raise AnalysisError(f"{p}: no such trajectory file or directory")
        missing = need - set(frame.columns) - ({"positions"} if "unwrapped_positions" in frame else set())
        if missing:
            raise AnalysisError(f"{p}: not a trajectory (lacks column(s) {', '.join(sorted(missing))})")
        if "positions" not in frame:
            frame["positions"] = _wrapped(frame)
        if "phase" not in frame:
            frame["phase"] = "production"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _wrapped(df: pd.DataFrame) -> list[np.ndarray]:
    """Positions wrapped into the cell (fractional in [0, 1)) from ``unwrapped_positions``."""
    out = []
    for u, c in zip(df.unwrapped_positions, df.cell, strict=True):
        cell = np.asarray(c, dtype=np.float64).reshape(3, 3)
        frac = np.asarray(u, dtype=np.float64).reshape(-1, 3) @ np.linalg.inv(cell)
        out.append(((frac % 1.0) @ cell).astype(np.float32).ravel())
    return out


def _stack(column: pd.Series, n: int) -> np.ndarray:
    return np.stack(column.to_numpy()).astype(np.float64).reshape(len(column), n, 3)


def production(df: pd.DataFrame, discard_ps: float = 0.0) -> pd.DataFrame:
    """Production frames only, dropping the first ``discard_ps`` of production (equilibration)."""
    prod = df[df.phase == "production"]
    if discard_ps > 0 and len(prod):
        start = prod.groupby(["material", "temperature_K", "run"]).time_fs.transform("min")
        prod = prod[prod.time_fs >= start + discard_ps * 1000]
    return prod


# ------------------------------------------------------------------------------------------- MSD
def msd_fft(x: np.ndarray) -> np.ndarray:
    """Mean squared displacement ``[F]`` (lag 0..F-1) of trajectories ``x [F, A, 3]``, averaged over
    all time origins and atoms (the O(F log F) form of the explicit double loop)."""
    n_frames = x.shape[0]
    d2 = (x**2).sum(-1)  # [F, A]
    d2 = np.concatenate([d2, np.zeros((1, d2.shape[1]))])
    q = 2 * d2[:-1].sum(0)
    s1 = np.empty((n_frames, x.shape[1]))
    for m in range(n_frames):
        q = q - d2[m - 1] - d2[n_frames - m]
        s1[m] = q / (n_frames - m)
    spec = np.fft.rfft(x, n=2 * n_frames, axis=0)
    acf = np.fft.irfft(spec * spec.conj(), axis=0)[:n_frames].sum(-1)  # [F, A]
    s2 = acf / (n_frames - np.arange(n_frames))[:, None]
    return (s1 - 2 * s2).mean(-1)


@dataclass
class Diffusion:
    """Einstein diffusivity of one species in one run."""

    lag_fs: np.ndarray
    msd: np.ndarray  # Å²
    d_cm2_s: float
    r2: float
    warnings: list[str] = field(default_factory=list)


def einstein_diffusivity(
    t_fs: np.ndarray, msd: np.ndarray, fit_ps: tuple[float, float] = (1.0, 5.0)
) -> tuple[float, float, list[str]]:
    """``D`` (cm²/s) from a line through ``msd`` over lags in ``fit_ps``; with R² and trust warnings."""
    notes: list[str] = []
    win = (t_fs >= fit_ps[0] * 1000) & (t_fs <= fit_ps[1] * 1000)
    if win.sum() < 3:
        notes.append(f"MSD too short: only {win.sum()} lags in the {fit_ps[0]}-{fit_ps[1]} ps fit window")
        win = t_fs > 0
    if win.sum() < 2:
        return math.nan, math.nan, [*notes, "MSD has fewer than 2 lags"]
    slope, icpt = np.polyfit(t_fs[win], msd[win], 1)
    fit = slope * t_fs[win] + icpt
    ss = ((msd[win] - msd[win].mean()) ** 2).sum()
    r2 = 1 - ((msd[win] - fit) ** 2).sum() / ss if ss > 0 else 0.0
    if slope <= 0 or msd[win][-1] < 1.0:
        notes.append(
            f"MSD too flat ({msd[win][-1]:.2f} Å² at {t_fs[win][-1] / 1000:.1f} ps): no measurable diffusion"
        )
    elif r2 < 0.9:
        notes.append(f"MSD not linear over the fit window (R² {r2:.2f})")
    return float(slope / 6 * 0.1), float(r2), notes  # Å²/fs → cm²/s


def run_diffusion(
    g: pd.DataFrame, element: int = 3, fit_ps: tuple[float, float] = (1.0, 5.0), max_lag_fraction: float = 0.5
) -> Diffusion:
    """Einstein D of ``element`` in one run's production frames (centre-of-mass frame, all origins)."""
    from ase.data import atomic_masses

    g = g.sort_values("step")
    z = np.asarray(g.numbers.iloc[0], dtype=int)
    col = "unwrapped_positions" if "unwrapped_positions" in g else "positions"
    u = _stack(g[col], z.size)
    m = atomic_masses[z]
    u = u - ((u * m[None, :, None]).sum(1) / m.sum())[:, None, :]
    sel = z == element
    if not sel.any():
        raise AnalysisError(f"no atoms of Z={element} in {g.material.iloc[0]}")
    t = g.time_fs.to_numpy(np.float64)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else math.nan
    msd = msd_fft(u[:, sel])
    n_lag = int(len(t) * max_lag_fraction)
    lag = np.arange(n_lag + 1) * dt
    d, r2, notes = einstein_diffusivity(lag[1:], msd[1 : n_lag + 1], fit_ps)
    return Diffusion(lag, msd[: n_lag + 1], d, r2, notes)


def nernst_einstein(
    d_cm2_s: np.ndarray | float, n_carriers: int, volume_A3: float, temperature_K: Any
) -> Any:
    """Ionic conductivity (S/cm) from tracer diffusivity: ``σ = n q² D / (k_B T)`` (charge +1, Haven ratio 1)."""
    n = n_carriers / (volume_A3 * 1e-30)  # 1/m³
    sigma_s_m = n * E_CHARGE**2 * np.asarray(d_cm2_s) * 1e-4 / (KB_SI * np.asarray(temperature_K))
    return sigma_s_m / 100


def diffusion_table(
    df: pd.DataFrame, discard_ps: float = 0.0, fit_ps: tuple[float, float] = (1.0, 5.0), element: int = 3
) -> pd.DataFrame:
    """Per (material, T, run): D, R², mean temperature, Li count, volume, σ(T) and warnings."""
    prod = production(df, discard_ps)
    if prod.empty:
        raise AnalysisError("no production frames to analyse")
    rows = []
    for (mat, temp, run), g in prod.groupby(["material", "temperature_K", "run"], sort=True):
        res = run_diffusion(g, element, fit_ps)
        z = np.asarray(g.numbers.iloc[0])
        vol = abs(float(np.linalg.det(np.asarray(g.cell.iloc[0], dtype=float).reshape(3, 3))))
        n_c = int((z == element).sum())
        rows.append({
            "material": mat, "temperature_K": int(temp), "run": int(run), "D_cm2_s": res.d_cm2_s, "r2": res.r2,
            "T_mean_K": float(g.temperature_inst_K.mean()) if "temperature_inst_K" in g else math.nan,
            "n_carriers": n_c, "volume_A3": vol, "msd_end_A2": float(res.msd[-1]),
            "sigma_S_cm": float(nernst_einstein(res.d_cm2_s, n_c, vol, temp)), "warnings": "; ".join(res.warnings),
        })  # fmt: skip
    return pd.DataFrame(rows)


def summarize_diffusion(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sample sd of D over runs per (material, T), as the reference README's sanity table."""
    agg = table.groupby(["material", "temperature_K"]).agg(
        D_mean=("D_cm2_s", "mean"), D_sd=("D_cm2_s", "std"), n_runs=("run", "count"), T_mean_K=("T_mean_K", "mean"),
        n_carriers=("n_carriers", "first"), volume_A3=("volume_A3", "first"),
    )  # fmt: skip
    return agg.reset_index()


# ------------------------------------------------------------------------------------- Arrhenius
@dataclass
class Arrhenius:
    """``D(T) = D0 exp(-Ea / k_B T)`` fitted over temperatures, with the room-temperature extrapolation."""

    material: str
    temperatures: list[float]
    ea_eV: float
    ea_err_eV: float
    d0_cm2_s: float
    t_room_K: float
    d_room_cm2_s: float
    sigma_room_S_cm: float
    neg_log10_sigma_room: float
    neg_log10_sigma_room_err: float
    warnings: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        row = {k: v for k, v in self.__dict__.items() if k not in ("temperatures", "warnings")}
        row["temperatures"] = ",".join(f"{t:g}" for t in self.temperatures)
        row["warnings"] = "; ".join(self.warnings)
        return row


def arrhenius_fit(
    summary: pd.DataFrame, material: str, t_room_K: float = 300.0, d_col: str = "D_mean"
) -> Arrhenius:
    """Fit ``ln D`` vs ``1/(k_B T)`` (unweighted, as the reference) and extrapolate D and σ to ``t_room_K``.

    Uncertainties are the least-squares standard errors (slope, and the propagated extrapolation).
    """
    s = summary[(summary.material == material) & np.isfinite(summary[d_col]) & (summary[d_col] > 0)]
    s = s.sort_values("temperature_K")
    notes: list[str] = []
    if len(s) < 2:
        raise AnalysisError(f"{material}: Arrhenius fit needs D at ≥ 2 temperatures, got {len(s)}")
    x = 1 / (KB * s.temperature_K.to_numpy(np.float64))
    y = np.log(s[d_col].to_numpy(np.float64))
    if len(s) >= 3:
        (a, b), cov = np.polyfit(x, y, 1, cov="unscaled" if len(s) == 3 else True)
        if len(s) == 3:  # unscaled cov × residual variance with 1 dof
            cov = cov * ((y - (a * x + b)) ** 2).sum() / (len(s) - 2)
    else:
        a, b = np.polyfit(x, y, 1)
        cov = np.full((2, 2), np.nan)
        notes.append("only 2 temperatures: no uncertainty")
    xr = 1 / (KB * t_room_K)
    ln_d = a * xr + b
    var = xr**2 * cov[0, 0] + cov[1, 1] + 2 * xr * cov[0, 1]
    d_room = float(np.exp(ln_d))
    n_c, vol = int(s.n_carriers.iloc[0]), float(s.volume_A3.iloc[0])
    sigma = float(nernst_einstein(d_room, n_c, vol, t_room_K))
    if -a <= 0:
        notes.append("non-positive activation energy")
    return Arrhenius(
        material, s.temperature_K.astype(float).tolist(), float(-a), float(math.sqrt(cov[0, 0])), float(math.exp(b)),
        t_room_K, d_room, sigma, float(-math.log10(sigma)), float(math.sqrt(max(var, 0.0)) / math.log(10)), notes,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- RDF
def _image_shifts(cell: np.ndarray, rmax: float) -> np.ndarray:
    vol = abs(np.linalg.det(cell))
    widths = vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reach = np.ceil(rmax / widths).astype(int)
    axes = [np.arange(-k, k + 1) for k in reach]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


@dataclass
class RDF:
    """Partial RDFs per element pair (``"Li-S"``, ...) and the total, on bin centres ``r`` (Å)."""

    r: np.ndarray
    partial: dict[str, np.ndarray]
    total: np.ndarray
    min_distance: float


def rdf(
    positions: np.ndarray,
    numbers: np.ndarray,
    cell: np.ndarray,
    rmax: float = 6.0,
    dr: float = 0.05,
    smear: float = 0.1,
    chunk: int = 16,
) -> RDF:
    """RDFs of frames ``positions [F, N, 3]`` in a fixed ``cell``, vectorised with explicit periodic images.

    ``g_ab(r) = V · n_ab(r) / (F · N_a N_b' · 4π r² dr)`` over ordered pairs, so every g → 1 at large r.
    Pair counts are smeared with a Gaussian of ``smear`` Å (0: plain histogram) so short runs compare.
    """
    from ase.data import chemical_symbols

    z = np.asarray(numbers, dtype=int)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    elems = sorted(set(z.tolist()))
    pairs = [(a, b) for i, a in enumerate(elems) for b in elems[i:]]
    pair_id = np.full((len(elems), len(elems)), -1)
    for k, (a, b) in enumerate(pairs):
        pair_id[elems.index(a), elems.index(b)] = pair_id[elems.index(b), elems.index(a)] = k
    zi = np.searchsorted(elems, z)
    pid = pair_id[zi[:, None], zi[None, :]]  # [N, N]
    n_bins = round(rmax / dr)
    n_all = n_bins + math.ceil(4 * smear / dr)  # histogram past rmax so smearing has no edge
    r_all = n_all * dr
    offsets = _image_shifts(cell, r_all) @ cell  # [S, 3]
    counts = np.zeros((len(pairs), n_all))
    dmin = math.inf
    n = z.size
    self_pair = np.zeros((len(offsets), n, n), dtype=bool)
    self_pair[np.flatnonzero((offsets == 0).all(1))[0]] = np.eye(n, dtype=bool)
    for s in range(0, len(positions), chunk):
        p = np.asarray(positions[s : s + chunk], dtype=np.float64)
        d = np.linalg.norm(
            p[:, None, None, :, :] - p[:, None, :, None, :] + offsets[None, :, None, None, :], axis=-1
        )
        d = np.where(self_pair[None], np.inf, d)
        dmin = min(dmin, float(d.min()))
        keep = d < r_all
        b = (d[keep] / dr).astype(int)
        kind = np.broadcast_to(pid[None, None], d.shape)[keep]
        counts += np.bincount(kind * n_all + b, minlength=len(pairs) * n_all).reshape(len(pairs), n_all)
    if smear > 0:
        from scipy.ndimage import gaussian_filter1d

        counts = gaussian_filter1d(counts, smear / dr, axis=1, mode="constant")
    counts = counts[:, :n_bins]
    r = (np.arange(n_bins) + 0.5) * dr
    shell = 4 * np.pi * r**2 * dr
    vol = abs(np.linalg.det(cell))
    f = len(positions)
    count_of = {e: int((z == e).sum()) for e in elems}
    partial = {}
    for k, (a, b) in enumerate(pairs):
        norm = count_of[a] * (count_of[a] - 1) if a == b else 2 * count_of[a] * count_of[b]
        partial[f"{chemical_symbols[a]}-{chemical_symbols[b]}"] = vol * counts[k] / (f * max(norm, 1) * shell)
    total = vol * counts.sum(0) / (f * n * (n - 1) * shell)
    return RDF(r, partial, total, dmin)


def frames_rdf(g: pd.DataFrame, rmax: float = 6.0, dr: float = 0.05, max_frames: int = 50) -> RDF:
    """RDF of (at most ``max_frames`` evenly spaced) frames of one trajectory table (one material)."""
    if g.empty:
        raise AnalysisError("no frames for the RDF")
    z = np.asarray(g.numbers.iloc[0], dtype=int)
    idx = np.unique(np.linspace(0, len(g) - 1, min(max_frames, len(g))).round().astype(int))
    pos = _stack(g.positions.iloc[idx], z.size)
    return rdf(pos, z, np.asarray(g.cell.iloc[0]), rmax, dr)


def rdf_mae(model: RDF, reference: RDF) -> float:
    """Mean absolute difference of the total RDFs, each normalised to unit area over [0, rmax] (1/Å).

    This keeps the study's threshold (MAE < 0.02 = stable) on the scale of a normalised distribution.
    """
    if model.r.shape != reference.r.shape or not np.allclose(model.r, reference.r):
        raise AnalysisError("RDFs on different grids")
    dr = float(model.r[1] - model.r[0])

    def unit(g: np.ndarray) -> np.ndarray:
        area = g.sum() * dr
        return g / area if area > 0 else g

    return float(np.abs(unit(model.total) - unit(reference.total)).mean())


def first_peak(r: RDF) -> float:
    """Position (Å) of the first maximum of the total RDF."""
    g = r.total
    if not np.any(g > 0):
        return math.nan
    start = int(np.argmax(g > 0))
    return float(r.r[start + int(np.argmax(g[start : start + int(1.0 / (r.r[1] - r.r[0])) + 1]))])


def stability_verdict(
    model: RDF,
    reference: RDF,
    threshold: float = RDF_STABLE_MAE,
    fusion_distance: float = 0.9,
    stopped_reasons: list[str] | None = None,
) -> tuple[str, str, float]:
    """``(verdict, failure_mode, mae)``: stable/unstable with the study's failure modes.

    Atom fusion: any replica stopped for fusion, a pair closer than ``fusion_distance``, or the first
    RDF peak more than 0.3 Å inside the reference's. Otherwise an MAE over the threshold is a lattice
    mismatch.
    """
    mae = rdf_mae(model, reference)
    fused = any("fusion" in (s or "") for s in stopped_reasons or [])
    fused = fused or model.min_distance < fusion_distance or first_peak(model) < first_peak(reference) - 0.3
    if fused:
        return "unstable", "atom fusion", mae
    if mae >= threshold:
        return "unstable", "lattice mismatch", mae
    return "stable", "", mae


def warn_all(table: pd.DataFrame) -> None:
    """Emit :class:`AnalysisWarning` for every run whose MSD should not be trusted."""
    for row in table.itertuples():
        if row.warnings:
            warnings.warn(f"{row.material} {row.temperature_K} K run {row.run}: {row.warnings}", AnalysisWarning,
                          stacklevel=2)  # fmt: skip


def force_mae(provider: Any, frames: pd.DataFrame, max_frames: int = 50, batch: int = 16) -> dict[str, float]:
    """Force MAE (eV/Å) of a force provider against the ``forces`` stored in reference frames, per material.

    Uses at most ``max_frames`` evenly spaced production frames per material, evaluated in batches.
    """
    import torch

    out = {}
    prod = production(frames)
    for mat, g in prod.groupby("material"):
        if "forces" not in g or g.forces.isna().any():
            raise AnalysisError(f"{mat}: reference frames carry no forces")
        idx = np.unique(np.linspace(0, len(g) - 1, min(max_frames, len(g))).round().astype(int))
        z = np.asarray(g.numbers.iloc[0], dtype=np.int64)
        pos, ref = _stack(g.positions.iloc[idx], z.size), _stack(g.forces.iloc[idx], z.size)
        cells = np.stack([np.asarray(c, dtype=np.float64).reshape(3, 3) for c in g.cell.iloc[idx]])
        errors = []
        for s in range(0, len(idx), batch):
            _, f = provider(
                torch.as_tensor(z), torch.as_tensor(pos[s : s + batch]), torch.as_tensor(cells[s : s + batch])
            )
            errors.append(np.abs(f.detach().cpu().numpy() - ref[s : s + batch]))
        out[str(mat)] = float(np.concatenate(errors).mean())
    return out
