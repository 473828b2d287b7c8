"""The MLFF-MD report: the study's three tables and four figures, from trajectories alone.

Inputs: the reference trajectories and, per model, its trajectories plus an optional ``model.json``
(``symmetry``, ``parameters``, ``epochs``, ``ns_per_day``, ``force_mae`` per material). Outputs under
``out``: ``models.{csv,md}`` (per model), ``conductivity.{csv,md}`` (−log10 σ(300 K) per model ×
material next to the reference), ``errors.{csv,md}`` (force MAE vs RDF MAE, verdict, failure mode),
``diffusion.csv`` and the figures ``rdf_<material>.png``, ``msd_<material>.png``, ``arrhenius.png``,
``force_vs_rdf.png``. With no trained model, :func:`seed_split` turns the reference's independent
seeds into "models" so the whole report runs on the reference alone.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crystalspace.md import analysis as an


@dataclass
class ModelRun:
    """One model's trajectories (all materials/temperatures) and what is known about the model."""

    name: str
    frames: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def load_model(name: str, paths: Sequence[str | os.PathLike[str]]) -> ModelRun:
    """A :class:`ModelRun` from trajectory files/dirs; ``model.json`` / ``summary.json`` next to them add info."""
    info: dict[str, Any] = {}
    for p in map(Path, paths):
        base = p if p.is_dir() else p.parent
        if (base / "model.json").is_file():
            info.update(_read_json(base / "model.json"))
        if (base / "summary.json").is_file():
            summary = _read_json(base / "summary.json")
            info.setdefault("ns_per_day", summary.get("ns_per_day"))
            info["stopped"] = [
                {k: r.get(k) for k in ("material", "temperature_K", "reason")}
                for r in summary.get("replicas", [])
                if r.get("reason")
            ]
    return ModelRun(name, an.load_trajectories(list(paths)), info)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file next to a model's trajectories (``model.json``, ``summary.json``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise an.AnalysisError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise an.AnalysisError(f"cannot read {path}: expected a JSON object")
    return data


def seed_split(
    reference: pd.DataFrame, teacher: str = "chgnet", name: str | None = None
) -> tuple[pd.DataFrame, list[ModelRun]]:
    """Reference = run 0 for the RDFs; every other run becomes a "model" (reference vs itself) with
    the info of ``teacher``, the provider that labelled the reference, and named after it (``name``,
    else the frames' one ``source`` such as ``chgnet-0.3.0``, else ``teacher``)."""
    runs = sorted(reference.run.unique())
    if len(runs) < 2:
        raise an.AnalysisError("seed split needs at least 2 runs per condition")
    from crystalspace.potentials import provider_info

    sources = set(reference["source"].dropna()) - {""} if "source" in reference else set()
    name = name or (sources.pop() if len(sources) == 1 else teacher)
    info = provider_info(teacher)
    models = [ModelRun(f"{name} seed {r}", reference[reference.run == r], dict(info)) for r in runs[1:]]
    return reference, models


def _markdown(df: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _save(df: pd.DataFrame, out: Path, stem: str) -> None:
    df.to_csv(out / f"{stem}.csv", index=False)
    (out / f"{stem}.md").write_text(_markdown(df))


def _conductivity(frames: pd.DataFrame, discard_ps: float, fit_ps: tuple[float, float], t_room: float
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, an.Arrhenius]]:  # fmt: skip
    table = an.diffusion_table(frames, discard_ps, fit_ps)
    summary = an.summarize_diffusion(table)
    fits = {}
    for mat in summary.material.unique():
        try:
            fits[mat] = an.arrhenius_fit(summary, mat, t_room)
        except an.AnalysisError:
            continue
    return table, summary, fits


def build_report(
    reference: pd.DataFrame,
    models: list[ModelRun],
    out: str | os.PathLike[str],
    discard_ps: float = 0.0,
    fit_ps: tuple[float, float] = (1.0, 5.0),
    t_room: float = 300.0,
    rdf_frames: int = 50,
    rdf_reference: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Write the tables and figures; return the tables. ``rdf_reference`` defaults to ``reference``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rdf_ref_frames = an.production(rdf_reference if rdf_reference is not None else reference, discard_ps)
    ref_table, ref_summary, ref_fits = _conductivity(reference, discard_ps, fit_ps, t_room)
    model_rows, cond_rows, err_rows, diff_tables = [], [], [], [ref_table.assign(model="reference")]
    summaries = {"reference": ref_summary}
    fits = {"reference": ref_fits}
    rdfs: dict[str, dict[str, tuple[an.RDF, an.RDF]]] = {}
    for m in models:
        info = m.info
        model_rows.append({"model": m.name, "symmetry": info.get("symmetry", ""), "parameters": info.get("parameters"),
                           "epochs": info.get("epochs"), "ns_per_day": info.get("ns_per_day")})  # fmt: skip
        table, summary, mfits = _conductivity(m.frames, discard_ps, fit_ps, t_room)
        diff_tables.append(table.assign(model=m.name))
        summaries[m.name], fits[m.name] = summary, mfits
        prod = an.production(m.frames, discard_ps)
        for mat in sorted(prod.material.unique()):
            ref_fit, fit = ref_fits.get(mat), mfits.get(mat)
            cond_rows.append({
                "model": m.name, "material": mat,
                "neg_log10_sigma_300K": fit.neg_log10_sigma_room if fit else math.nan,
                "err": fit.neg_log10_sigma_room_err if fit else math.nan,
                "reference": ref_fit.neg_log10_sigma_room if ref_fit else math.nan,
                "Ea_eV": fit.ea_eV if fit else math.nan, "Ea_err_eV": fit.ea_err_eV if fit else math.nan,
                "reference_Ea_eV": ref_fit.ea_eV if ref_fit else math.nan,
            })  # fmt: skip
            maes, verdicts, modes = [], [], []
            for temp in sorted(prod[prod.material == mat].temperature_K.unique()):
                ref_t = rdf_ref_frames[
                    (rdf_ref_frames.material == mat) & (rdf_ref_frames.temperature_K == temp)
                ]
                mod_t = prod[(prod.material == mat) & (prod.temperature_K == temp)]
                if ref_t.empty:
                    continue
                r_ref, r_mod = (
                    an.frames_rdf(ref_t, max_frames=rdf_frames),
                    an.frames_rdf(mod_t, max_frames=rdf_frames),
                )
                stops = [s["reason"] for s in info.get("stopped", [])
                         if s["material"] == mat and float(s["temperature_K"]) == float(temp)]  # fmt: skip
                verdict, mode, mae = an.stability_verdict(r_mod, r_ref, stopped_reasons=stops)
                maes.append(mae)
                verdicts.append(verdict)
                modes.append(mode)
                rdfs.setdefault(mat, {}).setdefault(m.name, (r_mod, r_ref))
            fmae = (info.get("force_mae") or {}).get(mat, math.nan)
            bad = [md for md in modes if md]
            err_rows.append({
                "model": m.name, "material": mat, "force_mae_eV_A": fmae,
                "rdf_mae": float(np.mean(maes)) if maes else math.nan,
                "verdict": "unstable" if "unstable" in verdicts else ("stable" if verdicts else ""),
                "failure_mode": max(set(bad), key=bad.count) if bad else "",
            })  # fmt: skip
    ref_rows = [{"model": "reference", "material": mat, "neg_log10_sigma_300K": f.neg_log10_sigma_room,
                 "err": f.neg_log10_sigma_room_err, "reference": f.neg_log10_sigma_room, "Ea_eV": f.ea_eV,
                 "Ea_err_eV": f.ea_err_eV, "reference_Ea_eV": f.ea_eV} for mat, f in ref_fits.items()]  # fmt: skip
    tables = {
        "models": pd.DataFrame(
            model_rows, columns=["model", "symmetry", "parameters", "epochs", "ns_per_day"]
        ),
        "conductivity": pd.DataFrame(ref_rows + cond_rows),
        "errors": pd.DataFrame(err_rows),
        "diffusion": pd.concat(diff_tables, ignore_index=True),
    }
    for stem, df in tables.items():
        if stem == "diffusion":
            df.to_csv(out / "diffusion.csv", index=False)
        else:
            _save(df, out, stem)
    _figures(out, rdfs, summaries, fits, tables["errors"], reference, models, discard_ps)
    return tables


# ----------------------------------------------------------------------------------------- figures
def _figures(out: Path, rdfs: dict[str, dict[str, tuple[an.RDF, an.RDF]]], summaries: dict[str, pd.DataFrame],
             fits: dict[str, dict[str, an.Arrhenius]], errors: pd.DataFrame, reference: pd.DataFrame,
             models: list[ModelRun], discard_ps: float) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for mat, per_model in rdfs.items():
        pairs = list(next(iter(per_model.values()))[1].partial)
        shown = ["total", *[p for p in pairs if p.startswith("Li-")][:3]]
        fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), squeeze=False)
        for ax, key in zip(axes[0], shown, strict=True):
            ref = next(iter(per_model.values()))[1]
            ax.plot(ref.r, ref.total if key == "total" else ref.partial[key], "k-", lw=2, label="reference")
            for name, (r_mod, _) in per_model.items():
                ax.plot(r_mod.r, r_mod.total if key == "total" else r_mod.partial[key], lw=1, label=name)
            ax.set(title=f"{mat} {key} (lowest T)", xlabel="r (Å)", ylabel="g(r)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"rdf_{mat}.png", dpi=110)
        plt.close(fig)

    runs = [("reference", reference)] + [(m.name, m.frames) for m in models]
    for mat in sorted(reference.material.unique()):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for k, (name, frames) in enumerate(runs):
            prod = an.production(frames[frames.material == mat], discard_ps)
            for j, temp in enumerate(sorted(prod.temperature_K.unique())):
                g = prod[
                    (prod.temperature_K == temp) & (prod.run == prod[prod.temperature_K == temp].run.min())
                ]
                if len(g) < 4:
                    continue
                d = an.run_diffusion(g)
                ax.plot(d.lag_fs / 1000, d.msd, color=plt.cm.plasma(j / 5), ls=["-", "--", ":", "-."][k % 4],
                        label=f"{name} {temp} K" if k == 0 or j == 0 else None)  # fmt: skip
        ax.set(title=f"{mat}: Li MSD (one run per T)", xlabel="lag (ps)", ylabel="MSD (Å²)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / f"msd_{mat}.png", dpi=110)
        plt.close(fig)

    mats = sorted(reference.material.unique())
    fig, axes = plt.subplots(1, len(mats), figsize=(4.5 * len(mats), 3.6), squeeze=False)
    for ax, mat in zip(axes[0], mats, strict=True):
        for k, (name, summ) in enumerate(summaries.items()):
            s = summ[summ.material == mat]
            if s.empty:
                continue
            x = 1000 / s.temperature_K.to_numpy(float)
            color = "k" if k == 0 else f"C{k - 1}"
            ax.errorbar(x, s.D_mean, yerr=s.D_sd.fillna(0), fmt="o" if k == 0 else "s", ms=4, capsize=2,
                        label=name, color=color)  # fmt: skip
            f = fits[name].get(mat)
            if f:
                xs = np.linspace(x.min(), x.max(), 20)
                ax.plot(xs, f.d0_cm2_s * np.exp(-f.ea_eV / (an.KB * 1000 / xs)), lw=1, color=color)
        ax.set_yscale("log")
        ax.set(title=mat, xlabel="1000/T (1/K)", ylabel="D_Li (cm²/s)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "arrhenius.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for mat, g in errors.groupby("material"):
        ax.scatter(g.force_mae_eV_A.fillna(0), g.rdf_mae, label=mat)
        for row in g.itertuples():
            ax.annotate(row.model, (0 if math.isnan(row.force_mae_eV_A) else row.force_mae_eV_A, row.rdf_mae),
                        fontsize=6)  # fmt: skip
    ax.axhline(an.RDF_STABLE_MAE, color="r", ls="--", lw=1, label="stable threshold")
    ax.set(xlabel="force MAE (eV/Å; 0 = not given)", ylabel="RDF MAE", title="force MAE vs RDF MAE")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "force_vs_rdf.png", dpi=110)
    plt.close(fig)
