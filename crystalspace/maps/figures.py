"""The maps as PNG figures (matplotlib, Agg): periodic-table heat map and scatter grids.

Colours are fixed everywhere (figures and explorer): standard blue, missing red, interesting
green, unlikely grey. Points are drawn largest class first so the rare ones stay visible.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from crystalspace.maps.build import FREQUENCY, read_points
from crystalspace.maps.embeddings import MapsError

log = logging.getLogger(__name__)

CATEGORY_COLOURS = {
    "standard": "#1f77b4",
    "missing": "#d62728",
    "interesting": "#2ca02c",
    "unlikely": "#8c8c8c",
}
ANION_COLOURS = {
    "oxide": "#d62728",
    "chalcogenide": "#ff7f0e",
    "halide": "#2ca02c",
    "pnictide": "#9467bd",
    "other": "#bdbdbd",
}
METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def table_position(z: int) -> tuple[float, int]:
    """(row, column) of element ``z`` in the 18-column periodic table; f-block in rows 8.5 / 9.5."""
    if z == 1:
        return 1, 1
    if z == 2:
        return 1, 18
    if 57 <= z <= 71:
        return 8.5, 3 + z - 57
    if 89 <= z <= 103:
        return 9.5, 3 + z - 89
    for row, start in ((2, 3), (3, 11)):
        if start <= z < start + 8:
            i = z - start
            return row, i + 1 if i < 2 else i + 11
    for row, start in ((4, 19), (5, 37)):
        if start <= z < start + 18:
            return row, z - start + 1
    for row, start in ((6, 55), (7, 87)):
        if z < start + 32:
            i = z - start
            return row, i + 1 if i < 2 else i - 14 + 1
    raise ValueError(f"no table position for Z={z}")


def periodic_table_figure(frequency: pd.DataFrame, path: Path) -> Path:
    """Heat map of element occurrences in allowed binary compositions."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    fig, ax = plt.subplots(figsize=(13, 7))
    vmax = max(1, int(frequency["count"].max()))
    norm = colors.Normalize(0, vmax)
    cmap = matplotlib.colormaps["viridis"]
    for z, symbol, count in frequency[["z", "symbol", "count"]].itertuples(index=False):
        row, col = table_position(int(z))
        face = cmap(norm(count)) if count > 0 else "#f0f0f0"
        ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 0.95, 0.95, facecolor=face, edgecolor="white"))
        dark = count > 0 and norm(count) < 0.6
        ax.text(
            col - 0.02,
            row - 0.1,
            symbol,
            ha="center",
            va="center",
            fontsize=10,
            weight="bold",
            color="white" if dark else "black",
        )
        ax.text(
            col - 0.02,
            row + 0.22,
            f"{count}",
            ha="center",
            va="center",
            fontsize=6.5,
            color="white" if dark else "black",
        )
    ax.set_xlim(0.4, 18.6)
    ax.set_ylim(10.1, 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.colorbar(
        cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6, label="allowed binary compositions"
    )
    total = int(frequency["count"].sum()) // 2
    ax.set_title(f"How often each element appears in the {total:,} allowed binary compositions")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def scatter_grid(points: pd.DataFrame, path: Path, colour_by: str, title: str) -> Path:
    """A grid of maps, one row per embedding and one column per method, coloured by a label."""
    import matplotlib.pyplot as plt

    palette = CATEGORY_COLOURS if colour_by == "category" else ANION_COLOURS
    embeddings = list(dict.fromkeys(points["embedding"]))
    methods = list(dict.fromkeys(points["method"]))
    fig, axes = plt.subplots(
        len(embeddings), len(methods), figsize=(3.3 * len(methods), 3.0 * len(embeddings)), squeeze=False
    )
    order = points[colour_by].value_counts().index.tolist()  # largest class drawn first
    for i, name in enumerate(embeddings):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            sub = points[(points["embedding"] == name) & (points["method"] == method)]
            for label in order:
                part = sub[sub[colour_by] == label]
                ax.scatter(
                    part["x"],
                    part["y"],
                    s=2.0,
                    c=palette.get(label, "black"),
                    alpha=0.6,
                    linewidths=0,
                    rasterized=True,
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(METHOD_LABELS.get(method, method), fontsize=12)
            if j == 0:
                ax.set_ylabel(name, fontsize=12)
    handles = [
        plt.Line2D(
            [], [], marker="o", linestyle="", color=palette.get(label, "black"), label=label, markersize=7
        )
        for label in palette
        if label in set(order)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=11)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_figures(maps: str | Path) -> list[Path]:
    """Every figure of a maps folder; returns the PNG paths (under ``maps/figures/``)."""
    import matplotlib

    matplotlib.use("Agg")
    maps = Path(maps)
    points = read_points(maps)
    frequency = _read_frequency(maps / FREQUENCY) if (maps / FREQUENCY).is_file() else None
    out = maps / "figures"
    out.mkdir(exist_ok=True)
    paths = []
    if frequency is not None:
        paths.append(periodic_table_figure(frequency, out / "periodic_table_binary.png"))
    else:
        log.warning("no %s (the maps have no arity 2): periodic table skipped", FREQUENCY)
    for arity in sorted(points["arity"].unique()):
        sub = points[points["arity"] == arity]
        n = sub.groupby(["embedding", "method"]).size().max()
        paths.append(
            scatter_grid(
                sub,
                out / f"categories_arity{arity}.png",
                "category",
                f"{_arity_name(arity)} compositions by category ({n:,} per map)",
            )
        )
        if arity == 2:
            paths.append(
                scatter_grid(
                    sub,
                    out / "anions_arity2.png",
                    "anion",
                    f"Binary compositions by anion class ({n:,} per map)",
                )
            )
    if not paths:
        raise MapsError(f"nothing to draw in {maps}")
    return paths


def _read_frequency(path: Path) -> pd.DataFrame:
    """The element-frequency table of a maps folder, with one clear error when it is unreadable."""
    try:
        frequency = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MapsError(f"cannot read {path}: {str(exc).splitlines()[0] or 'not a CSV table'}") from None
    missing = [c for c in ("z", "symbol", "count") if c not in frequency.columns]
    if missing:
        raise MapsError(f"{path}: not an element-frequency table (lacks column(s) {', '.join(missing)})")
    return frequency


def _arity_name(arity: int) -> str:
    return {2: "Binary", 3: "Ternary", 4: "Quaternary"}.get(int(arity), f"{arity}-element")
