"""AlphaCrystal-II protocol: Table 5 analogue (Ray Tune sweep) and Table 3 analogue (CSP vs random search).

One command on a 1x H100 (~8 min):  python benchmarks/bench_csp_protocol.py --out $OUT
CPU smoke test (tiny):              python benchmarks/bench_csp_protocol.py --quick --out /tmp/csp_proto

Writes table5.csv/.md, table3.csv/.md, summary.md and PNG figures under --out.
Settings that differ from the study (stated in the output):
2-D widths 64->128->256 (study 256->512->1024), 30 epochs (study 125), 10 GA runs per formula
(study 50), CHGNet FIRE relaxations capped at 20 steps (CHGNet is the bottleneck: its actors share the
GPU when there is one; study: M3GNet, full).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "csp_protocol_out")))
    p.add_argument("--quick", action="store_true", help="tiny CPU run")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--filters-2d", type=int, default=64)
    p.add_argument("--per-arity", type=int, default=10, help="Table 3 formulas per arity (2, 3, 4)")
    p.add_argument("--ga-runs", type=int, default=10)
    p.add_argument("--relax-steps", type=int, default=20)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--tables", default="5,3", help="which tables to make: 5 (sweep), 3 (CSP vs random)")
    return p.parse_args()


def _split(entries: list[Any], per_arity: int, seed: int = 0) -> tuple[list[Any], list[Any], list[Any]]:
    """Composition split: 10% of formulas held out, plus ``per_arity`` held-out formulas per arity for Table 3."""
    from crystalspace.csp.data import split_by_formula

    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for n in (2, 3, 4):
        forms = sorted({e.formula for e in entries if e.n_elements == n})
        picked += list(rng.permutation(np.array(forms, dtype=object))[:per_arity]) if forms else []
    rest = [e for e in entries if e.formula not in set(picked)]
    train, test = split_by_formula(rest, 0.1, seed)
    held = [e for e in entries if e.formula in set(picked)]
    t3: list[Any] = []
    for f in picked:  # one structure per picked formula
        t3.append(next(e for e in held if e.formula == f))
    return train, test + held, t3


def _md(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))

    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |\n" for r in rows)


def table5(
    train: list[Any], test: list[Any], a: argparse.Namespace, out: Path, gpu: bool
) -> list[dict[str, Any]]:
    from crystalspace.csp.sweep import STUDY_TABLE5, sweep
    from crystalspace.csp.train import TrainConfig

    big = 200 if a.quick else 10000
    small = 60 if a.quick else 1000
    grid = [{"family": "all", "n_bins": n, "train_size": s} for n in (5, 10, 20) for s in (small, big)]
    grid += [{"family": f, "n_bins": 10, "train_size": None} for f in ("binary", "ternary", "cubic")]
    w = a.filters_2d
    base = TrainConfig(
        epochs=a.epochs,
        batch_size=128,
        net={
            "filters_1d": 32 if not a.quick else 8,
            "filters_2d": w,
            "blocks_1d": 9 if not a.quick else 2,
            "blocks_2d": 9 if not a.quick else 2,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = sweep(train, test, grid, base, Path(tmp), use_gpu=gpu, concurrent=4 if gpu else 2)
    for r in rows:
        key = (
            r["family"],
            r["n_bins"],
            1000 if r["train_size"] == small else 10000 if r["train_size"] == big else None,
        )
        ref = STUDY_TABLE5.get(key)
        r["study_rmse"], r["study_overlap"] = ref if ref else (None, None)
        r["train_size"] = r["train_size"] or "all"
    cols = [
        "family",
        "n_bins",
        "train_size",
        "n_train",
        "n_test",
        "rmse",
        "mse",
        "overlap",
        "study_rmse",
        "study_overlap",
    ]
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "table5.csv", index=False)
    (out / "table5.md").write_text(_md(rows, cols))
    _fig5(rows, out / "table5.png")
    return rows


def _fig5(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['family']}\nN={r['n_bins']}\n{r['train_size']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(x - 0.2, [r["rmse"] for r in rows], 0.4, label="ours")
    ax.bar(x + 0.2, [r["study_rmse"] or 0 for r in rows], 0.4, label="AlphaCrystal-II Table 5")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("distance RMSE (Å)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table3(
    train: list[Any], t3: list[Any], a: argparse.Namespace, out: Path, device: str
) -> list[dict[str, Any]]:
    import pandas as pd

    from crystalspace.csp.features import Standardiser, species_of
    from crystalspace.csp.ga import GAConfig
    from crystalspace.csp.lattice import LatticeModel
    from crystalspace.csp.relax import RelaxPool
    from crystalspace.csp.target import Bins, pair_mask
    from crystalspace.csp.train import Arrays, TrainConfig, fit
    from crystalspace.csp.workflow import CSPConfig, evaluate_formulas

    cfg = CSPConfig(
        train=TrainConfig(
            n_bins=10,
            epochs=a.epochs,
            batch_size=128,
            net={"filters_2d": a.filters_2d}
            if not a.quick
            else {"blocks_1d": 2, "filters_1d": 8, "blocks_2d": 2, "filters_2d": 8},
        ),
        ga=GAConfig(population=60 if not a.quick else 30, generations=80 if not a.quick else 20),
        ga_runs=a.ga_runs,
        relax_steps=a.relax_steps,
        top_k=10,
        ga_actors=a.cpus,  # capped to the cores the relaxation pool leaves free
    )
    std = Standardiser.fit([z for e in train for z in species_of(e.structure)])
    arr = Arrays.of(train, std)
    bins = Bins.fit(arr.d, pair_mask(arr.mask), 10)
    t0 = time.perf_counter()
    model = fit(arr, cfg.train, bins, device=device).cpu().eval()
    lat = LatticeModel().fit(train)
    bundle = {"model": model, "std": std, "bins": bins, "lattice": lat, "cfg": cfg.train}
    lat_err = lat.score(t3)
    t_train = time.perf_counter() - t0
    pool = RelaxPool(n_actors=max(1, a.cpus // 2), gpus=1.0 if device == "cuda" else 0.0)  # CHGNet on the GPU
    t0 = time.perf_counter()
    rows = evaluate_formulas(bundle, t3, pool, cfg)
    t_eval = time.perf_counter() - t0
    pool.close()
    df = pd.DataFrame(rows)
    df.to_csv(out / "table3.csv", index=False)
    cols = [
        "formula",
        "material_id",
        "n_elements",
        "n_atoms",
        "dm_rmse",
        "csp_best_rms",
        "csp_matched",
        "csp_energy_distance",
        "rand_best_rms",
        "rand_matched",
        "rand_energy_distance",
    ]
    summ = (
        df.groupby("n_elements")
        .agg(
            n=("formula", "size"),
            dm_rmse=("dm_rmse", "mean"),
            csp_rms=("csp_best_rms", "mean"),
            csp_matched=("csp_matched", "sum"),
            csp_dE=("csp_energy_distance", "median"),
            rand_rms=("rand_best_rms", "mean"),
            rand_matched=("rand_matched", "sum"),
            rand_dE=("rand_energy_distance", "median"),
        )
        .reset_index()
    )
    text = _md(rows, cols) + "\n" + _md(summ.to_dict("records"), list(summ.columns))
    text += f"\nlattice model on these formulas: {lat_err}\ntrain {t_train:.0f} s, evaluate {t_eval:.0f} s ({len(rows)} formulas, {a.ga_runs} GA runs + {a.ga_runs} random per formula, {a.relax_steps} FIRE steps)\n"
    (out / "table3.md").write_text(text)
    _fig3(df, out / "table3.png")
    print(text)
    return rows


def _fig3(df: Any, path: Path) -> None:
    """Formulas matched per arity (CSP vs random search) and energy distance per formula."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    by = df.groupby("n_elements")[["csp_matched", "rand_matched"]].sum()
    x = np.arange(len(by))
    ax[0].bar(x - 0.2, by["csp_matched"], 0.4, label="AlphaCrystal-II (GA + CHGNet)")
    ax[0].bar(x + 0.2, by["rand_matched"], 0.4, label="random search, same budget")
    ax[0].set_xticks(x, [f"{n} elements" for n in by.index])
    ax[0].set_ylabel("formulas matched (StructureMatcher)")
    ax[0].legend(fontsize=8)
    for n, g in df.groupby("n_elements"):
        ax[1].scatter(g["rand_energy_distance"], g["csp_energy_distance"], label=f"{n} elements")
    ax[1].axline((0, 0), slope=1, color="k", ls="--", lw=0.8)
    ax[1].set_xlabel("random: E_best - E_true (eV/atom)")
    ax[1].set_ylabel("CSP: E_best - E_true (eV/atom)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    a = _args()
    import torch

    from crystalspace.csp.data import STUDY_MP12_SIZE, family_of, load_default
    from crystalspace.runtime import init_ray

    if a.quick:
        a.epochs, a.per_arity, a.ga_runs, a.relax_steps, a.cpus = 2, 1, 3, 3, 2
        torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    init_ray(num_cpus=a.cpus)
    t0 = time.perf_counter()
    entries = load_default(12, limit=400 if a.quick else None)
    fams = {f: sum(family_of(e, f) for e in entries) for f in ("binary", "ternary", "quaternary", "cubic")}
    print(
        f"dataset: {len(entries)} structures <= 12 atoms (study Mp_12: {STUDY_MP12_SIZE}); {fams}; loaded in {time.perf_counter() - t0:.0f} s"
    )
    train, test, t3 = _split(entries, a.per_arity)
    print(f"train {len(train)}, test {len(test)} (no shared formula), Table 3 formulas {len(t3)}")
    tables = {t.strip() for t in a.tables.split(",")}
    timings = []
    if "5" in tables:
        t0 = time.perf_counter()
        rows5 = table5(train, test, a, a.out, gpu)
        timings.append(f"Table 5 sweep {time.perf_counter() - t0:.0f} s ({len(rows5)} trials)")
        print((a.out / "table5.md").read_text())
    if "3" in tables:
        t0 = time.perf_counter()
        table3(train, t3, a, a.out, device)
        timings.append(f"Table 3 {time.perf_counter() - t0:.0f} s")
    summary = f"# CSP protocol ({'quick CPU' if a.quick else device})\n\ndataset {len(entries)} (study 18,776), families {fams}\nsettings {vars(a)}\n{', '.join(timings)}\n"
    (a.out / "summary.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
