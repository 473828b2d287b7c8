"""Direct-prediction evaluation: per model × material energy and force MAE and R² on unseen frames.

For the training material the test frames are those in neither its training nor its validation
split (re-derived from the saved config and seed); for the other materials they are random frames.
Writes ``direct_prediction.csv`` / ``.md`` and one force parity plot (PNG) per material.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from crystalspace.mlff.data import labelled_rows, load_material, material_path, split_frames, unseen_frames
from crystalspace.mlff.train import force_metrics, predict_graphs, rows_to_graphs
from crystalspace.storage import atomic_path

COLUMNS = ["model", "material", "frames", "energy_mae_mev_atom", "energy_r2", "force_mae", "force_r2", "seen"]


def evaluate_models(
    entries: list[str | os.PathLike[str]],
    data: str | os.PathLike[str],
    materials: list[str],
    out: str | os.PathLike[str],
    n_test: int = 2000,
    batch_size: int = 16,
    device: str = "cpu",
    registry: str | None = None,
) -> list[dict[str, Any]]:
    """Evaluate saved models on unseen frames of each material; write the table and parity plots.

    Returns one dict per (model, material) with ``energy_mae_mev_atom``, ``energy_r2``,
    ``force_mae`` (eV/Å), ``force_r2`` (mean over x, y, z) and whether the material was seen.
    """
    from crystalspace.mlff.potential import load_potential
    from crystalspace.registry import load_entry
    from crystalspace.runtime import progress

    loaded = [load_entry(ref, root=registry) for ref in entries]  # bad names fail before `out` is made
    for material in materials:
        material_path(data, material)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    parity: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in materials}
    with progress(len(entries) * len(materials), "evaluate", unit="frames", step="chunks") as bar:
        for entry in loaded:
            pot = load_potential(entry.path, device)
            train = entry.config.get("train", {})
            for material in materials:
                rows = _test_rows(data, material, train, n_test)
                graphs = rows_to_graphs(rows, pot.cutoff, pot.max_neighbors or 500)
                pe, pf = predict_graphs(pot, graphs, batch_size, device)
                te = np.array([r["energy"] for r in rows])
                tf = np.concatenate([r["forces"].reshape(-1, 3) for r in rows])
                natoms = np.array([len(r["numbers"]) for r in rows])
                m = force_metrics(pe, te, natoms, pf, tf)
                results.append(
                    {
                        "model": entry.name,
                        "material": material,
                        "frames": len(rows),
                        "energy_mae_mev_atom": 1000 * m["energy_mae"],
                        "energy_r2": m["energy_r2"],
                        "force_mae": m["force_mae"],
                        "force_r2": m["force_r2"],
                        "seen": material == train.get("train_material"),
                    }
                )
                parity[material][entry.name] = (tf.ravel(), pf.ravel())
                bar.advance(len(rows))
    write_table(results, out)
    for material, curves in parity.items():
        parity_plot(curves, out / f"parity_{material}.png", material)
    return results


def _test_rows(
    data: str | os.PathLike[str], material: str, train: dict[str, Any], n: int
) -> list[dict[str, Any]]:
    table = load_material(data, material, train.get("phase", "production"))
    if material == train.get("train_material"):
        split = split_frames(
            table, train["train_per_temperature"], train["val_per_temperature"], n, train.get("seed", 0)
        )
        idx = split.test
    else:
        idx = unseen_frames(table, n, train.get("seed", 0))
    return labelled_rows(table, idx, f"{material} test frames")


def write_table(results: list[dict[str, Any]], out: Path) -> None:
    """``direct_prediction.csv`` and a Markdown version (atomic writes)."""
    import pandas as pd

    frame = pd.DataFrame(results, columns=COLUMNS)
    with atomic_path(out / "direct_prediction.csv") as tmp:
        frame.to_csv(tmp, index=False)
    (out / "direct_prediction.md").write_text(format_table(results) + "\n")


def format_table(results: list[dict[str, Any]]) -> str:
    """The direct-prediction table as Markdown."""
    lines = [
        "| model | material | frames | E MAE (meV/atom) | E R² | F MAE (eV/Å) | F R² | seen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['material']} | {r['frames']} | {r['energy_mae_mev_atom']:.2f} | "
            f"{r['energy_r2']:.3f} | {r['force_mae']:.4f} | {r['force_r2']:.3f} | {'yes' if r['seen'] else 'transfer'} |"
        )
    return "\n".join(lines)


def parity_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Force parity (reference vs predicted components), one panel per model, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(curves), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for ax, (name, (true, pred)) in zip(axes[0], curves.items(), strict=False):
        lim = float(np.abs(true).max()) * 1.05 if true.size else 1.0
        ax.hexbin(true, pred, gridsize=60, bins="log", extent=(-lim, lim, -lim, lim), mincnt=1)
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        mae = float(np.mean(np.abs(true - pred)))
        ax.set_title(f"{name}\nMAE {mae:.3f} eV/Å", fontsize=9)
        ax.set_xlabel("reference F (eV/Å)")
        ax.set_ylabel("predicted F (eV/Å)")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
