"""A sweep's results: one row per trial (ranked), the epoch history, the figure and the winner's ``mlff train`` config."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from crystalspace.tune.spec import METRIC, SweepSpec

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- results and figure
@dataclass
class SweepResult:
    """A sweep's outcome: the ranked table, per-epoch history, files written, and whether it is complete."""

    table: pd.DataFrame
    history: pd.DataFrame
    files: dict[str, Path]
    complete: bool
    experiment: Path
    best: dict[str, Any] = field(default_factory=dict)


@contextmanager
def quiet_analysis() -> Iterator[None]:
    """Trials that have not started have no result files; Tune warns per trial. Not worth a warning."""
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quiet.setLevel(level)


def collect(spec: SweepSpec) -> SweepResult:
    """Read the experiment back and write ``tune_results.*``, ``tune_history.parquet``,
    ``tune_sweep.png`` and ``best_config.yaml`` under ``spec.out``."""
    from ray.tune import ExperimentAnalysis

    cfg = spec.base_config()
    with quiet_analysis():
        analysis = ExperimentAnalysis(str(spec.experiment_dir))
    keys = sorted(spec.space)
    rows, histories = [], []
    for t in analysis.trials:
        df = analysis.trial_dataframes.get(t.trial_id, pd.DataFrame())
        rows.append(_trial_row(t, df, keys, cfg.epochs, spec))
        if not df.empty and "epoch" in df:
            epochs = df[df["epoch"].notna() & df.get("failed", pd.Series(index=df.index)).isna()]
            epochs = epochs[[c for c in ("epoch", METRIC, "val_energy_mae", "val_force_r2", "val_loss",
                                         "train_loss", "lr", "epoch_s") if c in epochs]]  # fmt: skip
            histories.append(epochs.assign(trial=t.trial_id, model=t.config.get("model", cfg.model)))
    table = rank_trials(pd.DataFrame(rows), spec.stability.enabled)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": out / "tune_results.csv",
        "parquet": out / "tune_results.parquet",
        "history": out / "tune_history.parquet",
        "figure": out / "tune_sweep.png",
    }
    table.to_csv(files["csv"], index=False)
    table.to_parquet(files["parquet"], index=False)
    history.to_parquet(files["history"], index=False)
    plot_sweep(table, history, files["figure"], title=f"{spec.name}: validation force MAE")
    complete = bool(len(table)) and not table.status.isin(["pending", "unfinished"]).any()
    best: dict[str, Any] = {}
    ranked = table[table["rank"].notna()]
    if len(ranked):
        winner = ranked.iloc[0]
        best = {**cfg.model_dump(), **{k: _plain(winner[k]) for k in keys}}
        files["best_config"] = out / "best_config.yaml"
        files["best_config"].write_text(
            f"# best trial {winner.trial} of sweep {spec.name}: objective {winner.objective:.4g}\n"
            + yaml.safe_dump(best, sort_keys=False)
        )
    return SweepResult(table, history, files, complete, spec.experiment_dir, best)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _trial_row(t: Any, df: pd.DataFrame, keys: list[str], epochs: int, spec: SweepSpec) -> dict[str, Any]:
    """One table row: parameters, status, epochs run, best validation metrics, MD score."""
    row: dict[str, Any] = {"trial": t.trial_id, **{k: t.config.get(k) for k in keys}}
    failed = df["failed"].dropna() if "failed" in df else pd.Series(dtype=object)
    ep = df[df[METRIC].notna()] if METRIC in df else df
    ep = ep[ep["epoch"].notna()] if "epoch" in ep else ep.iloc[0:0]
    if "md_verdict" in ep:
        ep = ep[ep["md_verdict"].isna()]
    run = int(ep["epoch"].max()) + 1 if len(ep) else 0
    if t.status == "ERROR":
        status = "error"
    elif len(failed):
        status = "failed"
    elif t.status in ("PENDING",) and not len(df):
        status = "pending"
    elif t.status != "TERMINATED":
        status = "unfinished"
    elif run >= epochs:
        status = "completed"
    elif "done" in df and bool(df["done"].iloc[-1]):  # Tune marks the result it stopped a trial on
        status = "stopped early"
    else:  # the loop ended by itself before the last epoch: the time budget ran out
        status = "budget"
    row.update({"status": status, "epochs": run, "reason": failed.iloc[0] if len(failed) else ""})
    if len(ep):
        best = ep.loc[ep[METRIC].idxmin()]
        row.update({"best_epoch": int(best["epoch"]), METRIC: float(best[METRIC]),
                    "val_energy_mae": float(best.get("val_energy_mae", math.nan)),
                    "val_force_r2": float(best.get("val_force_r2", math.nan)),
                    "final_val_force_mae": float(ep.sort_values("epoch")[METRIC].iloc[-1]),
                    "train_s": float(ep.get("epoch_s", pd.Series([0.0])).sum())})  # fmt: skip
    else:
        row.update({METRIC: math.nan})
    if spec.stability.enabled:
        md = df[df["md_verdict"].notna()] if "md_verdict" in df else df.iloc[0:0]
        last = md.iloc[-1] if len(md) else {}
        row.update({"rdf_mae": float(last.get("rdf_mae", math.nan)) if len(md) else math.nan,
                    "md_verdict": last.get("md_verdict", "") if len(md) else "",
                    "md_failure": last.get("md_failure", "") if len(md) else ""})  # fmt: skip
        row["objective"] = row[METRIC] + spec.stability.weight * row["rdf_mae"]
    else:
        row["objective"] = row[METRIC]
    row["path"] = str(t.path)
    return row


def rank_trials(table: pd.DataFrame, stability: bool = False) -> pd.DataFrame:
    """Sort by objective and number the trials that have one (1 = best); the rest follow by MAE.

    Without the MD score the objective is the best validation force MAE; with it, only trials that
    finished training (and so got an MD score) are ranked.
    """
    if table.empty:
        return table.assign(rank=pd.Series(dtype=float))
    order = table.sort_values(["objective", METRIC], na_position="last").reset_index(drop=True)
    order["rank"] = np.where(order["objective"].notna(), np.arange(1, len(order) + 1), np.nan)
    return order


def plot_sweep(table: pd.DataFrame, history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Left: validation force MAE per epoch of every trial, coloured by architecture (× = stopped by
    ASHA). Right: the trials ranked by objective. Saved atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from crystalspace.training import save_figure

    models = sorted({str(m) for m in table.get("model", pd.Series(["model"])).fillna("model")})
    colour = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    status = dict(zip(table.trial, table.status, strict=True)) if len(table) else {}
    for trial_id, g in history.groupby("trial") if len(history) else []:
        g = g.sort_values("epoch")
        c = colour.get(str(g["model"].iloc[0]), "grey")
        ax.plot(g["epoch"] + 1, g[METRIC], "-o", color=c, ms=3, lw=1, alpha=0.8)
        if status.get(trial_id) == "stopped early":
            ax.plot(g["epoch"].iloc[-1] + 1, g[METRIC].iloc[-1], "x", color=c, ms=8, mew=2)
    for m in models:
        ax.plot([], [], "-o", color=colour[m], label=m)
    ax.plot([], [], "x", color="k", label="stopped by ASHA")
    ax.set(xlabel="epoch", ylabel="validation force MAE (eV/Å)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(history) and (history[METRIC] > 0).all():
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    shown = table[table["objective"].notna()] if len(table) else table
    labels = [f"#{int(r['rank']) if pd.notna(r['rank']) else '-'} {r.trial[-5:]} {r.get('model', '')}"
              for _, r in shown.iterrows()]  # fmt: skip
    bars = bx.barh(range(len(shown)), shown["objective"] if len(shown) else [],
                   color=[colour.get(str(m), "grey") for m in shown.get("model", [])])  # fmt: skip
    for bar, st in zip(bars, shown["status"] if len(shown) else [], strict=True):
        if st != "completed":
            bar.set_hatch("//")
    bx.set_yticks(range(len(shown)), labels, fontsize=7)
    bx.invert_yaxis()
    bx.set(
        xlabel="objective (best val force MAE, eV/Å [+ w·RDF MAE])",
        title="trials ranked (hatched: stopped early)",
    )
    bx.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(fig, path)


def print_table(table: pd.DataFrame, keys: list[str]) -> None:
    """The ranked trials as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    cols = ["rank", "trial", *keys, "status", "epochs", METRIC, "val_energy_mae", "val_force_r2"]
    cols += [c for c in ("rdf_mae", "md_verdict", "objective") if c in table]
    out = Table(title="MLFF sweep (val force MAE eV/Å, energy MAE eV/atom)")
    for c in cols:
        out.add_column(c, justify="right" if c not in ("trial", "status", "model", "md_verdict") else "left")
    for _, r in table.iterrows():
        out.add_row(*[_cell(r.get(c)) for c in cols])
    Console(width=max(120, 14 * len(cols))).print(out)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if not v.is_integer() else f"{int(v)}"
    return str(v)
