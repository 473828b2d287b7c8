"""End to end: build + train, predict (GA on Ray actors -> relax -> rank), evaluate vs random search."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Lattice, Structure

from crystalspace.csp.data import CSPDataError, Entry, family_of, load_default, read_table, split_by_formula
from crystalspace.csp.features import Standardiser, encode, species_of
from crystalspace.csp.ga import GAConfig, run_ga
from crystalspace.csp.lattice import LatticeGuess, LatticeModel
from crystalspace.csp.target import Bins, pair_mask
from crystalspace.csp.train import (
    Arrays,
    TrainConfig,
    load_model,
    predict_distances,
    save_model,
    train_distance_net,
)
from crystalspace.potentials import Relaxed, Relaxer


@dataclass
class CSPConfig:
    """Whole-pipeline settings (pipelines/configs/csp_*.yaml)."""

    table: str | None = None  # None: the shared MP tables
    limit: int | None = None
    max_atoms: int = 12
    family: str = "all"
    test_frac: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)
    ga: GAConfig = field(default_factory=GAConfig)
    ga_runs: int = 8
    relax_steps: int = 30
    force_field: str = "chgnet"  # relaxations: a provider name (chgnet, pair) or a saved model's name or path
    top_k: int = 10
    num_workers: int = 1
    ga_actors: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CSPConfig:
        if not isinstance(d, dict):
            raise CSPDataError(f"bad csp config: expected a mapping, got {type(d).__name__}")
        d = dict(d)
        try:
            tr = TrainConfig(**d.pop("train", None) or {})
            ga = GAConfig(**d.pop("ga", None) or {})
            return cls(train=tr, ga=ga, **d)
        except TypeError as exc:
            raise CSPDataError(f"bad csp config: {exc}") from None


def load_csp_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> CSPConfig:
    """The CSP config of an optional YAML file (its relative ``table`` path relative to the file)
    with overrides on top (``train.epochs=5``, ``ga.population=40`` set nested entries)."""
    from crystalspace.config import apply_overrides, read_config_file, relative_to_file

    data = relative_to_file(read_config_file(file), ("table",), file) if file else {}
    return CSPConfig.from_dict(apply_overrides(data, overrides))


def load_entries(cfg: CSPConfig) -> list[Entry]:
    """The dataset for ``cfg`` (table, size limit, family)."""
    early = cfg.limit if cfg.family == "all" else None  # stop reading early when no family filter
    rows = read_table(cfg.table, cfg.max_atoms, early) if cfg.table else load_default(cfg.max_atoms, early)
    rows = [e for e in rows if family_of(e, cfg.family)]
    if cfg.limit:
        rows = list(np.random.default_rng(0).permutation(np.array(rows, dtype=object))[: cfg.limit])
    if len(rows) < 10:
        raise CSPDataError(
            f"only {len(rows)} structures with <= {cfg.max_atoms} atoms in family {cfg.family!r}"
        )
    return rows


def train_pipeline(cfg: CSPConfig, out: Path, storage: Path) -> dict[str, Any]:
    """Build the dataset, train the distance net (Ray Train, checkpoints under ``storage``) and the
    lattice model, and save them as the model folder ``out``; returns the metrics and the config."""
    t0 = time.perf_counter()
    entries = load_entries(cfg)
    train, test = split_by_formula(entries, cfg.test_frac, cfg.train.seed)
    std = Standardiser.fit([z for e in train for z in species_of(e.structure)])
    a_tr, a_te = Arrays.of(train, std, cfg.max_atoms), Arrays.of(test, std, cfg.max_atoms)
    bins = Bins.fit(a_tr.d, pair_mask(a_tr.mask), cfg.train.n_bins) if cfg.train.n_bins > 0 else None
    model, m = train_distance_net(a_tr, a_te, cfg.train, bins, storage, num_workers=cfg.num_workers)
    lat = LatticeModel().fit(train)
    info = {
        "n_structures": len(entries),
        "n_train": len(train),
        "n_test": len(test),
        "test_formulas": sorted({e.formula for e in test}),
        "distance": m,
        "lattice": lat.score(test),
        "seconds": time.perf_counter() - t0,
    }
    data = {k: getattr(cfg, k) for k in ("table", "limit", "max_atoms", "family", "test_frac")}
    save_model(out, model, cfg.train, bins, std, lat, info, data)
    return {**info, "config": asdict(cfg)}


def _ga_actor() -> Any:
    import ray

    @ray.remote(num_cpus=1)
    class GAWorker:
        """Runs independent GA runs (one population each) on one core."""

        def run(
            self, zs: list[int], lattice: Lattice, d: np.ndarray, cfg: GAConfig, seed: int
        ) -> tuple[Structure, float]:
            return run_ga(zs, lattice, d, cfg, seed)

    return GAWorker


GAJob = tuple[list[int], Lattice, np.ndarray, GAConfig, int]  # species, lattice, distances, settings, seed


def run_ga_jobs(jobs: list[GAJob], n_actors: int = 2) -> list[tuple[Structure, float]]:
    """Independent GA runs (of one or many formulas) on a pool of ``n_actors`` Ray actors, in order."""
    from crystalspace.runtime import actors_that_fit, init_ray, map_actors

    init_ray()
    worker = _ga_actor()
    actors = [worker.remote() for _ in range(actors_that_fit(min(n_actors, len(jobs))))]
    try:
        return list(map_actors(actors, lambda a, job: a.run.remote(*job), jobs, "GA", "runs", "runs"))
    finally:
        import ray

        for a in actors:
            ray.kill(a)


def ga_candidates(
    zs: list[int], lattice: Lattice, d: np.ndarray, cfg: GAConfig, runs: int, n_actors: int = 2, seed: int = 0
) -> list[tuple[Structure, float]]:
    """``runs`` independent GA runs for one formula spread over ``n_actors`` Ray actors."""
    return run_ga_jobs([(zs, lattice, d, cfg, seed + i) for i in range(runs)], n_actors)


def lattice_for(zs: list[int], guess: LatticeGuess) -> Lattice:
    """Predicted lattice, made valid (angles clipped to a sane range)."""
    ang = [float(np.clip(a, 60, 120)) for a in guess.angles]
    abc = [max(float(x), 2.0) for x in guess.abc]
    return Lattice.from_parameters(*abc, *ang)


def predicted_geometry(bundle: dict[str, Any], zs: list[int]) -> tuple[np.ndarray, LatticeGuess]:
    """The network's distance matrix (Å, ``len(zs)`` square) and the lattice model's guess for species ``zs``."""
    max_atoms = bundle["cfg"].max_atoms
    x, m = encode(zs, bundle["std"], max_atoms)
    d = predict_distances(
        bundle["model"],
        Arrays(x[None], m[None], np.zeros((1, max_atoms, max_atoms), np.float32)),
        bundle["bins"],
    )[0]
    return d[: len(zs), : len(zs)], bundle["lattice"].predict(zs)


def _ranked(relaxed: list[Relaxed], cands: list[tuple[Structure, float]], top_k: int) -> list[dict[str, Any]]:
    """Candidates by relaxed energy per atom, GA fitness breaking ties."""
    order = sorted(range(len(relaxed)), key=lambda i: (relaxed[i].energy_per_atom, cands[i][1]))
    return [
        {
            "structure": relaxed[i].structure,
            "energy_per_atom": relaxed[i].energy_per_atom,
            "ga_fitness": cands[i][1],
        }
        for i in order[:top_k]
    ]


def predict(
    bundle: dict[str, Any],
    formula: str,
    relaxer: Relaxer | None,
    top_k: int = 10,
    runs: int = 8,
    ga: GAConfig | None = None,
    relax_steps: int = 30,
    lattice: Lattice | None = None,
    seed: int = 0,
    true_structure: Structure | None = None,
    ga_actors: int = 2,
) -> dict[str, Any]:
    """Ranked candidate structures for ``formula`` (the formula as written gives the cell's atom counts)."""
    try:
        zs = species_of(Composition(formula))
    except Exception as exc:
        raise CSPDataError(f"cannot parse formula {formula!r}: {exc}") from None
    if true_structure is not None:
        zs = species_of(true_structure)
    max_atoms = bundle["cfg"].max_atoms
    if not zs or len(zs) > max_atoms:
        raise CSPDataError(f"{formula}: {len(zs)} atoms in the cell; the model handles 1..{max_atoms}")
    d, guess = predicted_geometry(bundle, zs)
    lat = lattice or lattice_for(zs, guess)
    cands = ga_candidates(zs, lat, d, ga or GAConfig(), runs, n_actors=ga_actors, seed=seed)
    if relaxer:
        ranked = _ranked(relaxer.relax([s for s, _ in cands], relax_steps), cands, top_k)
    else:  # unrelaxed, in GA order
        ranked = [
            {"structure": s, "energy_per_atom": float("nan"), "ga_fitness": f} for s, f in cands[:top_k]
        ]
    return {"formula": formula, "species": zs, "distances": d, "lattice": guess, "candidates": ranked}


def random_structures(zs: list[int], guess: LatticeGuess, budget: int, seed: int = 0) -> list[Structure]:
    """The random-search baseline's ``budget`` structures (pyxtal symmetric every other one)."""
    from crystalspace.csp.ga import random_structure

    lat = lattice_for(zs, guess)
    return [
        random_structure(zs, lat, seed + i, guess.spacegroup if i % 2 == 0 else None) for i in range(budget)
    ]


def score_candidates(
    cands: list[Structure], energies: list[float], true: Structure, e_true: float
) -> dict[str, float]:
    """Best StructureMatcher RMS among candidates, exact match, energy distance of the best-energy one."""
    sm = StructureMatcher(scale=True, attempt_supercell=True)
    rms = [r[0] for s in cands if (r := sm.get_rms_dist(s, true)) is not None]
    return {
        "best_rms": float(min(rms)) if rms else float("nan"),
        "matched": float(any(sm.fit(s, true) for s in cands)),
        "energy_distance": float(min(energies) - e_true) if energies else float("nan"),
    }


def evaluate_formulas(
    bundle: dict[str, Any], tests: list[Entry], relaxer: Relaxer, cfg: CSPConfig
) -> list[dict[str, Any]]:
    """Per test structure: CSP (ours) and random-search baseline with equal budget and relaxation.

    All formulas go together: one pool of GA actors runs every formula's GA runs, and one
    relaxation call takes the true structures, the GA candidates and the random baseline, so a
    Ray cluster stays busy instead of waiting on one formula at a time.
    """
    import ray

    n = cfg.ga_runs
    zss = [species_of(e.structure) for e in tests]
    geo = [predicted_geometry(bundle, zs) for zs in zss]
    jobs = [
        (zs, lattice_for(zs, g), d, cfg.ga, i) for zs, (d, g) in zip(zss, geo, strict=True) for i in range(n)
    ]
    print(
        f"csp evaluate: {len(jobs)} GA runs for {len(tests)} formulas on {cfg.ga_actors} actors", flush=True
    )
    ga = run_ga_jobs(jobs, cfg.ga_actors)
    rand = [s for zs, (_, g) in zip(zss, geo, strict=True) for s in random_structures(zs, g, n)]
    batch = [e.structure for e in tests] + [s for s, _ in ga] + rand
    print(f"csp evaluate: relaxing {len(batch)} structures ({cfg.relax_steps} steps each)", flush=True)
    relaxed = relaxer.relax(batch, cfg.relax_steps)
    t = len(tests)
    true_rel, ga_rel, rand_rel = relaxed[:t], relaxed[t : t + t * n], relaxed[t + t * n :]
    # StructureMatcher is slow: one Ray task per formula and method
    score = ray.remote(num_cpus=1)(score_candidates)
    futs = []
    for k, e in enumerate(tests):
        mine = slice(k * n, (k + 1) * n)
        ranked = _ranked(ga_rel[mine], ga[mine], cfg.top_k)
        rnd = sorted(rand_rel[mine], key=lambda r: r.energy_per_atom)[: cfg.top_k]
        e_true = true_rel[k].energy_per_atom
        futs.append(
            (
                score.remote(
                    [c["structure"] for c in ranked],
                    [c["energy_per_atom"] for c in ranked],
                    e.structure,
                    e_true,
                ),
                score.remote(
                    [r.structure for r in rnd], [r.energy_per_atom for r in rnd], e.structure, e_true
                ),
            )
        )
    rows = []
    for k, (e, (f_ours, f_rand)) in enumerate(zip(tests, futs, strict=True)):
        ours, base = ray.get([f_ours, f_rand])
        iu = np.triu_indices(len(e.structure), 1)
        err = geo[k][0][iu] - e.structure.distance_matrix[iu]
        rows.append(
            {
                "formula": e.formula,
                "material_id": e.material_id,
                "n_elements": e.n_elements,
                "n_atoms": len(e.structure),
                "dm_rmse": float(np.sqrt(np.mean(err**2))) if len(iu[0]) else 0.0,
                **{f"csp_{key}": v for key, v in ours.items()},
                **{f"rand_{key}": v for key, v in base.items()},
            }
        )
    return rows


def default_relaxer(provider: str = "chgnet", device: str = "cpu") -> Relaxer:
    """FIRE with the cell relaxed (fmax 0.1 eV/Å) under ``provider``: CHGNet by default, or any name
    :func:`~crystalspace.potentials.get_provider` knows (``pair``, a saved model's name or path)."""
    return Relaxer(provider, device=device)


def load(path: Path) -> dict[str, Any]:
    """Load a trained model folder (see :func:`crystalspace.csp.train.load_model`)."""
    return load_model(path)
