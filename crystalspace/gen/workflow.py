"""The generator pipeline's steps (what the CLI and ``pipelines/gen_pipeline.py`` call)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from crystalspace.gen.config import GenConfig
    from crystalspace.gen.generator import Generator
    from crystalspace.gen.images import ImageSpec
    from crystalspace.gen.train import TrainSettings

log = logging.getLogger(__name__)


def image_spec(cfg: GenConfig) -> ImageSpec:
    """Image settings of a config."""
    from crystalspace.gen.images import ImageSpec

    return ImageSpec(
        cell_grid=cfg.cell_grid,
        cell_sigma=cfg.cell_sigma,
        basis_grid=cfg.basis_grid,
        box=cfg.box,
        basis_sigma=cfg.basis_sigma,
    )


def train_settings(cfg: GenConfig) -> TrainSettings:
    """Training settings of a config (``train:`` overrides on the defaults)."""
    from crystalspace.gen.errors import GenError
    from crystalspace.gen.train import TrainSettings

    try:
        return TrainSettings(**{**cfg.train, "seed": cfg.seed, "spec": asdict(image_spec(cfg))})
    except TypeError as exc:
        raise GenError(f"bad train setting: {exc}") from None


def source_docs(cfg: GenConfig) -> list[dict[str, Any]] | None:
    """The source docs step 1 needs (read and checked, so a bad source fails before Ray starts),
    or None when the dataset's structures are already built."""
    from crystalspace.gen.dataset import read_sources

    if (Path(cfg.data_dir) / "structures.parquet").exists():
        return None
    return read_sources(cfg.source, cfg.limit)


def build_data(
    cfg: GenConfig, energies: bool = True, docs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Step 1 (substitution, Ray tasks) and step 2 (energies, resumable Ray tasks).

    ``docs``: the source docs when already read (:func:`source_docs`).
    """
    from crystalspace.gen.dataset import VOFilter, build_vo_dataset, label_energies

    counts: dict[str, Any] = {}
    if not (Path(cfg.data_dir) / "structures.parquet").exists():
        filt = VOFilter(cfg.max_sites, cfg.max_length, cfg.box)
        counts.update(build_vo_dataset(cfg.data_dir, cfg.source, cfg.limit, filt, docs=docs))
    else:
        from crystalspace.gen.errors import GenError

        build = Path(cfg.data_dir) / "build.json"
        try:
            counts.update(json.loads(build.read_text()))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise GenError(
                f"{build}: cannot read the dataset's build record ({str(exc).splitlines()[0]}); "
                f"remove {cfg.data_dir} and run `crystalspace gen build-data` again"
            ) from None
    if energies:
        counts.update(label_energies(cfg.data_dir, cfg.energy_model, cfg.energy_chunk, cfg.energy_limit))
    return counts


def check_train(cfg: GenConfig) -> None:
    """Fail early (before Ray starts) on bad ``train.*`` settings or a missing/unreadable dataset."""
    from crystalspace.gen.errors import GenError
    from crystalspace.tables import read_table

    train_settings(cfg)
    path = Path(cfg.data_dir) / "labelled.parquet"
    if not path.exists():
        raise GenError(
            f"{path} not found: run `crystalspace gen build-data` (energy step) to finish labelling"
        )
    read_table(path, "labelled VO dataset", columns=[])  # the footer only: is it Parquet at all


def train(cfg: GenConfig) -> dict[str, Any]:
    """Train the model set (Ray Train) and save it to ``cfg.model_dir``."""
    from crystalspace.gen.train import train_generator

    return train_generator(cfg.data_dir, cfg.model_dir, train_settings(cfg))


@dataclass
class Context:
    """What sampling and evaluation share: the trained generator, the dataset and the known V–O materials."""

    gen: Generator
    structures: list[Structure]  # the VO dataset, in table order
    refs: dict[str, list[tuple[str, Structure]]]  # reduced formula → (id, structure) known to us or MP
    mp_formulas: set[str]
    vo_formulas: set[str]
    min_dist: dict[tuple[str, str], float]


def context(cfg: GenConfig) -> Context:
    """Load the model, the dataset and the MP V–O structures once (parsing them takes seconds)."""
    from crystalspace.gen.evaluate import dataset_structures, mp_vo_structures
    from crystalspace.gen.generator import Generator
    from crystalspace.gen.sample import min_distances, mp_vo_formulas

    gen = Generator(cfg.model_dir)  # one line if there is no trained model
    table, structures = dataset_structures(cfg.data_dir)
    refs: dict[str, list[tuple[str, Structure]]] = {}
    for rid, s in zip(table["id"].to_pylist(), structures, strict=True):
        refs.setdefault(s.composition.reduced_formula, []).append((rid, s))
    mp = mp_vo_structures(cfg.source)
    for mid, s in mp:
        refs.setdefault(s.composition.reduced_formula, []).append((mid, s))
    vo_formulas = {s.composition.reduced_formula for s in structures}
    return Context(
        gen, structures, refs, mp_vo_formulas(cfg.mp_formulas), vo_formulas, min_distances([s for _, s in mp])
    )


def sample(
    cfg: GenConfig,
    n: int | None = None,
    method: str | None = None,
    out: str | None = None,
    ctx: Context | None = None,
) -> dict[str, Any]:
    """Sample, decode, post-process, classify; write CIFs and tables. Returns Table-2 counts."""
    from crystalspace.gen.sample import classify, decode_latents, sample_latents, write_samples

    ctx = ctx or context(cfg)
    method = method or cfg.method
    z, prov = sample_latents(ctx.gen, n or cfg.n_samples, method, cfg.seed)
    structures = decode_latents(ctx.gen, z, ctx.min_dist, cfg.peak_threshold, cfg.decode_by_counts)
    rows = classify(structures, ctx.refs, ctx.mp_formulas, ctx.vo_formulas)
    return write_samples(Path(out or cfg.out_dir) / method, structures, rows, prov, method)


def table1(
    gen: Generator,
    structures: list[Structure],
    k: int,
    seed: int,
    intrinsic: bool = True,
    autoencoders: bool = True,
    by_counts: bool = False,
) -> dict[str, Any]:
    """Table 1 on ``k`` random rows per split: the encoding's intrinsic error, train and test through
    the whole model, and test through the image autoencoders only (the first and last optional).
    Through the model, atoms are decoded by peak threshold or, with ``by_counts``, by the decoded
    atom counts; a last test row decodes the other way, for comparison."""
    from crystalspace.gen import evaluate as ev

    rng = np.random.default_rng(seed)
    pick = {
        name: [structures[i] for i in np.sort(rng.permutation(gen.latents[f"split_{name}"])[:k])]
        for name in ("train", "test")
    }
    t1: dict[str, Any] = {}
    if intrinsic:
        t1["intrinsic"] = ev.reconstruction(gen, pick["test"], through="images")
        t1["intrinsic_refined"] = ev.reconstruction(gen, pick["test"], through="images", refine=True)
    t1["train"] = ev.reconstruction(gen, pick["train"], by_counts=by_counts)
    t1["test"] = ev.reconstruction(gen, pick["test"], by_counts=by_counts)
    other = "test_peaks_only" if by_counts else "test_by_counts"
    t1[other] = ev.reconstruction(gen, pick["test"], by_counts=not by_counts)
    if autoencoders:  # without the VAE: separates the image compression's error from the generator's
        t1["test_autoencoders_only"] = ev.reconstruction(gen, pick["test"], through="autoencoders")
    return t1


def evaluate(cfg: GenConfig, out: str | None = None) -> dict[str, Any]:
    """Table 1, Table 2 (slerp and random), rediscovery, stability of new structures, baseline;
    writes ``report.json``, ``report.md`` and PNG figures under ``out``."""
    import pandas as pd
    from pymatgen.core import Structure

    from crystalspace.gen import evaluate as ev
    from crystalspace.gen.energy import elemental_references, load_energy_model

    d = Path(out or cfg.out_dir)
    ctx = context(cfg)  # a missing model or dataset fails here, before ``out`` is made
    d.mkdir(parents=True, exist_ok=True)
    gen, refs, min_dist, structures = ctx.gen, ctx.refs, ctx.min_dist, ctx.structures
    lat = gen.latents
    report: dict[str, Any] = {"dataset": {"rows": len(structures), "stable": int(np.sum(lat["stable"]))}}
    report["table1"] = table1(gen, structures, cfg.reconstruct_max, cfg.seed, by_counts=cfg.decode_by_counts)
    model = load_energy_model(cfg.energy_model, cfg.energy_device)
    known = [(str(lat["ids"][i]), structures[i]) for i in lat["split_known"]]
    report["rediscovery"] = ev.rediscovery(
        gen,
        known,
        min_dist,
        seed=cfg.seed,
        by_counts=cfg.decode_by_counts,
        model=model,
        relax_steps=cfg.relax_steps,
    )
    report["rediscovery"]["held_out_of_training"] = bool(gen.settings.hold_out_known)
    t2 = {}
    for method in ("slerp", "random"):
        t2[method] = sample(cfg, cfg.n_samples, method, str(d), ctx)
    report["table2"] = t2
    # Stability of new structures and the baseline, under the force field.
    e_refs = elemental_references(model, Path(cfg.data_dir) / "references.json")
    new = pd.concat(
        [pd.read_parquet(d / m / "generated.parquet").assign(method=m) for m in ("slerp", "random")]
    )
    new = new[new.new_material]
    counts = new.formula.value_counts()
    cand = new[new.formula.isin(counts.index[: max(1, cfg.relax_max)])].head(cfg.relax_max)
    cand_structures = [Structure.from_file(d / m / c) for m, c in zip(cand.method, cand.cif, strict=True)]
    mp_known = [
        (mid, s) for f, lst in refs.items() for mid, s in lst if mid.startswith("mp-") and ":" not in mid
    ]
    stab, calls = (
        ev.hull_energies(model, e_refs, mp_known, cand_structures, cfg.relax_steps)
        if cand_structures
        else ([], 0)
    )
    report["stability"] = {
        "relaxed": len(stab),
        "e_hull_le_80meV": int(sum(r["e_hull"] <= ev.E_HULL_CUT for r in stab)),
        "negative_e_form": int(sum(r["e_form"] < 0 for r in stab)),
        "force_calls": calls,
        "rows": [{k: v for k, v in r.items() if k != "structure"} for r in stab],
    }
    report["baseline"] = _baseline(cfg, model, new, d, counts)
    _figures(d, stab, report["baseline"])
    (d / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (d / "report.md").write_text(markdown_report(report))
    return report


def _baseline(cfg: GenConfig, model: Any, new: Any, d: Path, counts: Any) -> dict[str, Any]:
    from pymatgen.core import Structure

    from crystalspace.gen.evaluate import generator_search, random_search

    out: dict[str, Any] = {}
    if cfg.baseline_budget <= 0:
        return out
    for formula in list(counts.index[:2]):
        rows = new[new.formula == formula]
        structures = [Structure.from_file(d / m / c) for m, c in zip(rows.method, rows.cif, strict=True)]
        g = generator_search(model, structures, cfg.baseline_budget, steps=cfg.relax_steps)
        r = random_search(model, formula, cfg.baseline_budget, steps=cfg.relax_steps, seed=cfg.seed)
        out[formula] = {"generator": g, "random_search": r}
    return out


def _figures(d: Path, stab: list[dict[str, Any]], baseline: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.visualize.plot import plot_atoms

    from crystalspace.atoms.io import structure_to_atoms

    shown = sorted(stab, key=lambda r: r["e_hull"])[:6]
    if shown:
        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), squeeze=False)
        for ax, r in zip(axes[0], shown, strict=True):
            plot_atoms(structure_to_atoms(r["structure"]), ax, rotation="10x,20y,0z", radii=0.5)
            ax.set_title(f"{r['formula']}\nE_hull {1000 * r['e_hull']:.0f} meV/atom", fontsize=9)
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(d / "generated_structures.png", dpi=120)
        plt.close(fig)
    if baseline:
        fig, axes = plt.subplots(1, len(baseline), figsize=(4.5 * len(baseline), 3.4), squeeze=False)
        for ax, (formula, curves) in zip(axes[0], baseline.items(), strict=True):
            for name, curve in curves.items():
                if curve:
                    x, y = zip(*curve, strict=True)
                    ax.step(x, y, where="post", label=name)
            ax.set_title(formula)
            ax.set_xlabel("force-field evaluations")
            ax.set_ylabel("best energy (eV/atom)")
            ax.legend()
        fig.tight_layout()
        fig.savefig(d / "baseline.png", dpi=120)
        plt.close(fig)


TABLE1_HEADER = (
    "| set | n | a Å | b Å | c Å | α ° | β ° | γ ° | basis Å | counts match | fully reconstructed |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def table1_row(name: str, t: dict[str, Any]) -> str:
    """One Markdown row of Table 1 (under ``TABLE1_HEADER``)."""
    cells = " | ".join(f"{x:.3f}" if i < 3 else f"{x:.2f}" for i, x in enumerate(t["rmse_cell"]))
    basis = f"{t['rmse_basis']:.3f} (mean {t['mean_basis']:.3f})"
    return f"| {name} | {t['n']} | {cells} | {basis} | {t['counts_match']} | {t['fully_reconstructed']} |"


def markdown_report(r: dict[str, Any]) -> str:
    """The tables of a report next to the study's numbers."""
    from crystalspace.gen.evaluate import STUDY_REDISCOVERY, STUDY_STABLE_NEW, STUDY_TABLE1, STUDY_TABLE2

    lines = [
        "### Table 1: reconstruction RMSE",
        "",
        TABLE1_HEADER,
    ]
    lines += [table1_row(name, t) for name, t in r["table1"].items()]
    s_int, s_test = STUDY_TABLE1["intrinsic"], STUDY_TABLE1["test"]
    lines.append(f"| study intrinsic | 10,981 | {' | '.join(str(x) for x in s_int)} | | |")
    lines.append(
        f"| study test | 1,189 | {' | '.join(str(x) for x in s_test)} | | {STUDY_TABLE1['fully_reconstructed'][0]:,} of {STUDY_TABLE1['fully_reconstructed'][1]:,} (all) |"
    )
    lines += [
        "",
        "### Table 2: generation",
        "",
        "| method | generated | valid V ox | unique compositions | in MP | in VO dataset only | new | unique new structures | study generated / valid / compositions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, t in r["table2"].items():
        s = STUDY_TABLE2[m]
        lines.append(
            f"| {m} | {t['generated']} | {t['valid_ox']} | {t['unique_compositions']} | {t['compositions_in_MP']} | {t['compositions_in_VO_only']} | {t['compositions_new']} | {t['unique_new_structures']} | {s['generated']} / {s['valid_ox']} / {s['unique_compositions']} |"
        )
    rd = r["rediscovery"]
    st = r["stability"]
    lines += [
        "",
        f"Rediscovery (held out of training: {rd.get('held_out_of_training')}): {rd['rediscovered']} of {rd['held_out']} known V–O materials, {rd.get('rediscovered_unrelaxed', 0)} without relaxation (study {STUDY_REDISCOVERY[0]} of {STUDY_REDISCOVERY[1]}, confirmed by DFT optimisation).",
        "",
        f"Stability: {st['e_hull_le_80meV']} of {st['relaxed']} relaxed new structures have E_hull ≤ 80 meV/atom, {st['negative_e_form']} have E_f < 0 (study: {STUDY_STABLE_NEW} new with E_hull ≤ 80 meV/atom).",
        "",
        "### Baseline: best energy (eV/atom) found vs force-field evaluations",
        "",
        "| composition | method | evaluations | best E |",
        "|---|---|---|---|",
    ]
    for formula, curves in r["baseline"].items():
        for name, curve in curves.items():
            ev, best = curve[-1] if curve else (0, float("nan"))
            lines.append(f"| {formula} | {name} | {ev} | {best:.4f} |")
    return "\n".join(lines) + "\n"
