"""Sampling the materials latent space, decoding to structures, post-processing and novelty.

* Latent sampling: spherical linear interpolation (slerp) between known stable materials (19
  points per pair, as in the study) or Gaussian random sampling around the mean of the data.
* Decoding: latent → vectors → images → structure (:mod:`crystalspace.gen.images`).
* Post-processing (the study's S3.3): peaks of one element closer than the known minimal distance
  under periodic boundaries are merged, then V–O pairs that are too close lose the weaker peak.
* Validity: the V oxidation state implied by O²⁻, 2·n_O/n_V, must lie in +2..+5.
* Novelty: reduced composition against MP and the VO dataset; structure against the dataset rows
  and the MP V–O structures with the same composition (pymatgen ``StructureMatcher``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalspace.gen.errors import GenError
from crystalspace.runtime import shared_data
from crystalspace.storage import atomic_path

if TYPE_CHECKING:
    from pymatgen.core import Composition, Structure

    from crystalspace.gen.generator import Generator
    from crystalspace.gen.images import ImageSpec

log = logging.getLogger(__name__)

V_OX_RANGE = (2.0, 5.0)
#: Minimal distances (Å) used when no known V–O structure is at hand (MP V–O oxides: vanadyl V–O
#: 1.58 Å, shortest O–O about 2.5 Å, V–V pairs about 2.5 Å), scaled by 0.9.
DEFAULT_MIN_DIST = {("V", "V"): 2.2, ("O", "O"): 2.2, ("O", "V"): 1.4}
MP_VO_SOURCE = shared_data("mp_id_lists", "mp_ids_union_DERIVED.csv.gz")


def slerp(z0: np.ndarray, z1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation between two latent vectors."""
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    cos = np.clip(np.dot(z0 / n0, z1 / n1), -1.0, 1.0)
    omega = np.arccos(cos)
    if omega < 1e-6:
        return (1 - t) * z0 + t * z1
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


def anchor_indices(gen: Generator, k: int = 31) -> np.ndarray:
    """End points for slerp: the known V–O materials (the study used its 31 known V–O structures),
    topped up with stable rows of valid V oxidation state taken across compositions, the one the
    classifier is surest of in each composition first (the surest rows alone are nearly all VO,
    and slerp between VO and VO yields VO)."""
    lat = gen.latents
    known = np.flatnonzero(lat["known_vo"] & lat["stable"])
    if len(known) >= k:
        return known[:k]
    pool = np.setdiff1d(np.flatnonzero(lat["stable"] & _valid_formula(lat["formula"])), known)
    if len(pool) == 0:
        pool = np.setdiff1d(np.arange(len(lat["mu"])), known)
    order = pool[np.argsort(-gen.stability(lat["mu"][pool]), kind="stable")]
    seen: dict[str, int] = defaultdict(int)
    rank = np.empty(len(order), dtype=np.int64)  # how many surer rows share the composition
    for j, i in enumerate(order):
        rank[j] = seen[lat["formula"][i]]
        seen[lat["formula"][i]] += 1
    return np.concatenate([known, order[np.argsort(rank, kind="stable")][: k - len(known)]])


def _valid_formula(formulas: np.ndarray) -> np.ndarray:
    """Whether each V–O formula's V oxidation state (with O²⁻) lies in :data:`V_OX_RANGE`."""
    from pymatgen.core import Composition

    ok = {f: valid_v_ox(v_oxidation_state(Composition(f))) for f in set(formulas.tolist())}
    return np.array([ok[f] for f in formulas.tolist()], dtype=bool)


def sample_latents(
    gen: Generator, n: int, method: str, seed: int = 0, steps: int = 19
) -> tuple[np.ndarray, list[str]]:
    """``n`` latent points by ``slerp`` or ``random``, with a provenance string each."""
    rng = np.random.default_rng(seed)
    mu = gen.latents["mu"]
    if method == "random":
        train = gen.latents["split_train"]
        m, s = mu[train].mean(0), mu[train].std(0)
        return m + s * rng.standard_normal((n, mu.shape[1])), ["random"] * n
    if method != "slerp":
        raise GenError(f"unknown sampling method {method!r} (slerp or random)")
    anchors = anchor_indices(gen, max(2, int(np.ceil(np.sqrt(2 * n / steps))) + 1))
    ids = gen.latents["ids"]
    pairs = list(itertools.combinations(anchors, 2))
    rng.shuffle(pairs)
    z, prov = [], []
    for i, j in itertools.cycle(pairs):
        for t in np.arange(1, steps + 1) / (steps + 1):
            z.append(slerp(mu[i], mu[j], float(t)))
            prov.append(f"slerp {ids[i]} -> {ids[j]} t={t:.2f}")
            if len(z) == n:
                return np.array(z), prov
    raise AssertionError("unreachable")


def min_distances(structures: list[Structure], scale: float = 0.9) -> dict[tuple[str, str], float]:
    """Shortest V–V, O–O and V–O distances in known structures (× ``scale``); defaults if none."""
    found: dict[tuple[str, str], float] = {}
    for s in structures:
        d = s.distance_matrix + np.eye(len(s)) * 1e9
        sym = [site.specie.symbol for site in s]
        for i, j in zip(*np.triu_indices(len(s), 1), strict=True):
            key = _pair(sym[i], sym[j])
            found[key] = min(found.get(key, 1e9), d[i, j])
    return {k: scale * found[k] if k in found and found[k] < 1e8 else v for k, v in DEFAULT_MIN_DIST.items()}


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def postprocess(s: Structure, heights: np.ndarray, min_dist: dict[tuple[str, str], float]) -> Structure:
    """Remove overlapping peaks under periodic boundaries: within an element, then V–O."""
    keep = np.ones(len(s), bool)
    order = np.argsort(-heights)  # the stronger peak wins
    d = s.distance_matrix
    sym = [site.specie.symbol for site in s]
    for same in (True, False):
        for a in order:
            if not keep[a]:
                continue
            for b in order:
                if b == a or not keep[b] or (sym[a] == sym[b]) != same:
                    continue
                if d[a, b] < min_dist[_pair(sym[a], sym[b])] and heights[b] <= heights[a]:
                    keep[b] = False
    out = s.copy()
    out.remove_sites([i for i in range(len(s)) if not keep[i]])
    return out


def v_oxidation_state(s: Structure | Composition) -> float | None:
    """Mean V oxidation state with O²⁻ of a structure or composition (None without V)."""
    from pymatgen.core import Structure

    el = (s.composition if isinstance(s, Structure) else s).get_el_amt_dict()
    n_v, n_o = el.get("V", 0.0), el.get("O", 0.0)
    return 2 * n_o / n_v if n_v else None


def valid_v_ox(ox: float | None) -> bool:
    """Whether a V oxidation state lies in :data:`V_OX_RANGE` (the study's +2..+5)."""
    return ox is not None and V_OX_RANGE[0] <= ox <= V_OX_RANGE[1]


DECODE_CHUNK = 32  # images per Ray task: the peak search is pure CPU, ~0.1 s per 64³ structure
DECODE_BLOCK = 512  # structures whose images are held at once (2 MB each at the study's grids)


def _decode_chunk(
    cells: np.ndarray,
    bases: np.ndarray,
    spec: ImageSpec,
    threshold: float,
    refine: bool,
    min_dist: dict[tuple[str, str], float] | None,
    counts: np.ndarray | None,
) -> list[Structure | None]:
    from crystalspace.gen.images import ImageError, decode_structure

    out: list[Structure | None] = []
    for k, (c, b) in enumerate(zip(cells, bases, strict=True)):
        try:  # one undecodable image costs its structure, not the run
            s, h = decode_structure(
                c, b, spec, threshold=threshold, refine=refine, counts=None if counts is None else counts[k]
            )
            out.append(s if min_dist is None else postprocess(s, h, min_dist) if len(s) else None)
        except (ImageError, ValueError, np.linalg.LinAlgError):
            out.append(None)
    return out


def decode_many(
    cells: np.ndarray,
    bases: np.ndarray,
    spec: ImageSpec,
    threshold: float = 0.3,
    refine: bool = False,
    min_dist: dict[tuple[str, str], float] | None = None,
    counts: np.ndarray | None = None,
) -> list[Structure | None]:
    """Structures from cell and basis images (None where decoding fails), post-processed when
    ``min_dist`` is given, each element's peaks picked by ``counts`` (K, C) when given; more than
    one chunk of images goes to Ray tasks, with progress."""
    if len(cells) <= DECODE_CHUNK:
        return _decode_chunk(cells, bases, spec, threshold, refine, min_dist, counts)
    import ray

    from crystalspace.runtime import as_completed, init_ray

    init_ray()
    task = ray.remote(num_cpus=1)(_decode_chunk)
    starts = range(0, len(cells), DECODE_CHUNK)
    futures = {
        task.remote(
            cells[i : i + DECODE_CHUNK],
            bases[i : i + DECODE_CHUNK],
            spec,
            threshold,
            refine,
            min_dist,
            None if counts is None else counts[i : i + DECODE_CHUNK],
        ): i
        for i in starts
    }
    done = dict(as_completed(futures, "decode", "structures", lambda _, part: len(part), "chunks"))
    return [s for i in starts for s in done[i]]


def decode_latents(
    gen: Generator,
    z: np.ndarray,
    min_dist: dict[tuple[str, str], float],
    threshold: float = 0.3,
    by_counts: bool = False,
) -> list[Structure | None]:
    """Structures (post-processed) of latent points; None where decoding fails. ``by_counts``
    takes each element's atoms as the highest peaks by the decoded atom counts (else every peak
    above ``threshold``)."""
    out: list[Structure | None] = []
    for start in range(0, len(z), DECODE_BLOCK):  # bounded memory: 2 MB of images a point
        cells, bases, counts = gen.decode_images(z[start : start + DECODE_BLOCK])
        out += decode_many(
            cells, bases, gen.spec, threshold, min_dist=min_dist, counts=counts if by_counts else None
        )
    return out


def mp_vo_formulas(path: str | os.PathLike[str] = MP_VO_SOURCE) -> set[str]:
    """Reduced V–O formulas known to MP (the union id table of the shared data)."""
    import pandas as pd
    from pymatgen.core import Composition

    if not Path(path).exists():
        raise GenError(f"MP composition table {path} not found")
    df = pd.read_csv(path, usecols=["reduced_formula", "nelements"], keep_default_na=False, na_values=[""])
    out = set()
    for f in df.loc[df.nelements == 2, "reduced_formula"].dropna():
        if {"V", "O"} == {e.symbol for e in Composition(f).elements}:
            out.add(Composition(f).reduced_formula)
    return out


def classify(
    structures: list[Structure | None],
    references: dict[str, list[tuple[str, Structure]]],
    mp_formulas: set[str],
    vo_formulas: set[str],
    max_sites: int = 20,
) -> list[dict[str, Any]]:
    """Validity and novelty of each generated structure (one dict per input).

    Structures with more than ``max_sites`` atoms (outside the training domain) are invalid;
    structures are compared only with references of the same composition and site count.
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, primitive_cell=False)
    rows: list[dict[str, Any]] = []
    seen: dict[str, list[tuple[int, Structure]]] = defaultdict(list)
    for i, s in enumerate(structures):
        r: dict[str, Any] = {
            "valid_structure": s is not None and len(s) > 0,
            "formula": "",
            "v_ox": None,
            "valid_ox": False,
        }
        if s is not None and len(s):
            f = s.composition.reduced_formula
            ox = v_oxidation_state(s)
            r.update(
                formula=f,
                nsites=len(s),
                v_ox=ox,
                valid_ox=valid_v_ox(ox) and "O" in f and len(s) <= max_sites,
            )
            r["known_in"] = "MP" if f in mp_formulas else "VO dataset" if f in vo_formulas else "new"
            if r["valid_ox"]:
                dup = next((j for j, t in seen[f] if len(t) == len(s) and matcher.fit(s, t)), None)
                r["duplicate_of"] = dup
                if dup is None:
                    seen[f].append((i, s))
                    r["matches"] = next(
                        (rid for rid, t in references.get(f, []) if len(t) == len(s) and matcher.fit(s, t)),
                        None,
                    )
                else:
                    r["matches"] = rows[dup].get("matches")
        rows.append(r)
    return rows


def write_samples(
    out: str | os.PathLike[str],
    structures: list[Structure | None],
    rows: list[dict[str, Any]],
    prov: list[str],
    method: str,
) -> dict[str, int]:
    """CIFs of the new valid materials and the tables ``generated.parquet`` / ``new_materials.csv``."""
    import pandas as pd
    from pymatgen.io.cif import CifWriter

    d = Path(out)
    (d / "cifs").mkdir(parents=True, exist_ok=True)
    for i, (s, r) in enumerate(zip(structures, rows, strict=True)):
        r["id"] = f"{method}-{i:05d}"
        r["provenance"] = prov[i]
        r["new_material"] = bool(
            r.get("valid_ox") and r.get("duplicate_of") is None and r.get("matches") is None
        )
        r["cif"] = ""
        if r["new_material"] and s is not None:
            path = d / "cifs" / f"{r['id']}_{r['formula']}.cif"
            with atomic_path(path) as tmp:
                CifWriter(s).write_file(str(tmp))
            r["cif"] = str(path.relative_to(d))
    df = pd.DataFrame(rows)
    df["duplicate_of"] = (
        df.get("duplicate_of", pd.Series(dtype="float")).astype("Int64") if "duplicate_of" in df else pd.NA
    )
    df["matches"] = df["matches"].astype("string") if "matches" in df else pd.NA
    with atomic_path(d / "generated.parquet") as tmp:
        df.to_parquet(tmp)
    with atomic_path(d / "new_materials.csv") as tmp:
        df[df.new_material].to_csv(tmp, index=False)
    return table2_row(df)


def table2_row(df: Any) -> dict[str, int]:
    """The study's Table 2 counts for one sampling method."""
    valid = df[df.valid_ox]
    comps = valid.formula.unique()
    kind = valid.groupby("formula").known_in.first()
    return {
        "generated": len(df),
        "valid_ox": len(valid),
        "unique_compositions": len(comps),
        "compositions_in_MP": int((kind == "MP").sum()),
        "compositions_in_VO_only": int((kind == "VO dataset").sum()),
        "compositions_new": int((kind == "new").sum()),
        "structures_in_MP_class": int((valid.known_in == "MP").sum()),
        "structures_in_VO_class": int((valid.known_in == "VO dataset").sum()),
        "structures_new_class": int((valid.known_in == "new").sum()),
        "unique_new_structures": int(df.new_material.sum()),
    }
