"""The VO dataset: every binary A_xB_y from MP with A/B replaced by V and O (both assignments).

Step 1 (:func:`build_vo_dataset`): one Ray task per source binary structure; keep N_sites ≤ 20 and
the longest cell edge ≤ 10 Å (and atoms inside the basis box); provenance per row. Written as a
structure table (``crystalspace.atoms.io`` schema plus ``source_id``, ``source_formula``,
``assignment``, ``formula``, ``nsites``, ``known_vo``).

Step 2 (:func:`label_energies`): single-point energies with the force field, chunk by chunk as Ray
tasks; each finished chunk is written to ``energies/part-XXXXX.parquet`` (tmp + rename) so an
interrupted run resumes where it stopped. Then formation energy against the elemental references
and the stability label (E_f ≤ 0.5 eV/atom).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystalspace.gen.errors import GenError
from crystalspace.runtime import as_completed, progress, shared_data
from crystalspace.storage import atomic_path
from crystalspace.tables import read_table

if TYPE_CHECKING:
    from pymatgen.core import Structure

log = logging.getLogger(__name__)

DEFAULT_SOURCE = shared_data("mp_binary_smact", "mp_binary_docs.jsonl.gz")
STABLE_EF = 0.5  # eV/atom, the study's stability label


@dataclass(frozen=True)
class VOFilter:
    """Which substituted structures are kept (the study's limits)."""

    max_sites: int = 20
    max_length: float = 10.0  # Å
    box: float = 15.0  # Å, the basis box atoms must fit in

    def admits(self, s: Structure) -> bool:
        """Whether a source structure is a binary within the site and cell-length limits."""
        return (
            len(s.composition.elements) == 2
            and len(s) <= self.max_sites
            and max(s.lattice.abc) <= self.max_length
        )


def read_sources(path: str | os.PathLike[str], limit: int | None = None) -> list[dict[str, Any]]:
    """MP binary summary docs (JSON lines, gzip or plain): id, formula, structure dict."""
    p = Path(path)
    if not p.exists():
        raise GenError(
            f"source file {p} not found (MP binary summary docs: shared/data/mp_binary_smact, see its README)"
        )
    if not p.is_file():
        raise GenError(f"source {p} is not a file (MP binary summary docs, JSON lines)")
    opener = gzip.open if p.suffix == ".gz" else open
    out: list[dict[str, Any]] = []
    n = 0
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                d = json.loads(line)
                if not isinstance(d, dict) or not {"material_id", "formula_pretty"} <= d.keys():
                    raise GenError(
                        f"source {p} line {n}: expected an MP summary doc with material_id, formula_pretty, "
                        "structure"
                    )
                if not d.get("structure"):
                    continue
                if not isinstance(d["structure"], dict):
                    raise GenError(f"source {p} line {n}: 'structure' is not a pymatgen structure dict")
                out.append(
                    {"id": d["material_id"], "formula": d["formula_pretty"], "structure": d["structure"]}
                )
                if limit is not None and len(out) >= limit:
                    break
    except json.JSONDecodeError as exc:
        raise GenError(f"source {p} line {n}: not JSON lines ({exc.msg})") from None
    except UnicodeDecodeError:
        raise GenError(f"source {p} line {n + 1}: not JSON lines (not UTF-8 text)") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        what = "not a gzip file" if isinstance(exc, gzip.BadGzipFile) else str(exc).splitlines()[0]
        raise GenError(f"source {p}: cannot read ({what or type(exc).__name__})") from None
    if not out:
        raise GenError(f"source {p}: no structures (expected JSON lines of MP summary docs)")
    return out


def substitute(doc: dict[str, Any], filt: VOFilter) -> list[dict[str, Any]]:
    """The V/O substitutions of one binary that pass the filter, as structure rows."""
    from pymatgen.core import Structure

    from crystalspace.atoms.io import atoms_to_row, structure_to_atoms

    try:
        s = Structure.from_dict(doc["structure"])
    except Exception as exc:  # pymatgen raises many types for a malformed dict
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GenError(f"source doc {doc['id']}: not a pymatgen structure dict ({first})") from None
    if not filt.admits(s):
        return []
    a, b = sorted(el.symbol for el in s.composition.elements)
    known = {a, b} == {"O", "V"}
    rows = []
    for target in (("V", "O"), ("O", "V")):
        mapping = dict(zip((a, b), target, strict=True))
        t = s.copy()
        t.replace_species(mapping)
        t = t.get_sorted_structure()
        tag = f"{a}->{mapping[a]},{b}->{mapping[b]}"
        rows.append(
            atoms_to_row(
                structure_to_atoms(t),
                id=f"{doc['id']}:{mapping[a]}{mapping[b]}",
                source=doc["id"],
                source_id=doc["id"],
                source_formula=doc["formula"],
                assignment=tag,
                formula=t.composition.reduced_formula,
                nsites=len(t),
                known_vo=bool(known and mapping[a] == a),
            )
        )
    # both rows share one geometry; test it as stored (float32), which is what training reads
    return rows if _fits_box(rows[0], filt.box) else []


def _fits_box(row: dict[str, Any], box: float) -> bool:
    """Whether a stored row's atoms lie inside the basis box (the cell centred in it)."""
    from crystalspace.atoms.io import atoms_to_structure, row_to_atoms
    from crystalspace.gen.images import box_positions, standard_matrix

    st = atoms_to_structure(row_to_atoms(row))
    pos = box_positions(st.frac_coords, standard_matrix(st.lattice), box)
    return bool(pos.min() >= 0 and pos.max() <= box)


def build_vo_dataset(
    out: str | os.PathLike[str],
    source: str | os.PathLike[str] = DEFAULT_SOURCE,
    limit: int | None = None,
    filt: VOFilter = VOFilter(),
    docs: list[dict[str, Any]] | None = None,
) -> dict[str, int]:
    """Build the VO dataset with one Ray task per source binary; returns counts.

    ``docs`` are the source docs when already read (:func:`read_sources` of ``source``/``limit``).
    """
    import ray

    from crystalspace.atoms.io import rows_to_table

    docs = read_sources(source, limit) if docs is None else docs
    task = ray.remote(num_cpus=1)(substitute)
    pending = [task.remote(d, filt) for d in docs]
    rows: list[dict[str, Any]] = []
    kept_sources = 0
    with progress(len(pending), "VO dataset", unit="sources", step="sources") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=min(len(pending), 64), timeout=5.0)
            for ref in done:
                try:
                    r = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # a bad source doc: its one-line error
                    if isinstance(exc.cause, GenError):
                        raise GenError(str(exc.cause.args[0])) from None
                    raise
                kept_sources += bool(r)
                rows.extend(r)
                bar.advance(1)
    rows.sort(key=lambda r: r["id"])
    _atomic_parquet(rows_to_table(rows), Path(out) / "structures.parquet")
    counts = {"sources": len(docs), "sources_kept": kept_sources, "structures": len(rows)}
    (Path(out) / "build.json").write_text(
        json.dumps({**counts, "source": str(source), "filter": filt.__dict__}, indent=1)
    )
    return counts


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _energy_chunk(rows: list[dict[str, Any]], model_name: str) -> list[float]:
    import torch

    from crystalspace.atoms.io import atoms_to_structure, row_to_atoms
    from crystalspace.gen.energy import load_energy_model

    torch.set_num_threads(1)
    model = load_energy_model(model_name)
    return [float(e) for e in model.energies([atoms_to_structure(row_to_atoms(r)) for r in rows])]


def label_energies(
    data_dir: str | os.PathLike[str],
    model_name: str = "chgnet",
    chunk: int = 64,
    limit: int | None = None,
    max_chunks: int | None = None,
) -> dict[str, int]:
    """Energies, formation energies and stability labels for the dataset (resumable).

    ``limit`` labels only the first rows (CI); ``max_chunks`` stops after that many new chunks
    (the rest is done by the next call). The labelled table is ``labelled.parquet``.
    """
    import ray

    from crystalspace.atoms.io import table_to_rows
    from crystalspace.gen.energy import elemental_references, formation_energy, load_energy_model

    d = Path(data_dir)
    table = _read(d / "structures.parquet")
    if limit is not None:
        table = table.slice(0, limit)
    rows = table_to_rows(table)
    if not rows:
        raise GenError(f"{d / 'structures.parquet'} has no structures to label")
    parts = d / "energies"
    parts.mkdir(exist_ok=True)
    chunks = [(i, rows[i : i + chunk]) for i in range(0, len(rows), chunk)]
    todo = [(i, c) for i, c in chunks if not (parts / f"part-{i:06d}.parquet").exists()]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    task = ray.remote(num_cpus=1)(_energy_chunk)
    futures = {task.remote(c, model_name): (i, c) for i, c in todo}
    for (i, c), e in as_completed(futures, "energies", "structures", lambda ic, _: len(ic[1]), "shards"):
        _atomic_parquet(
            pa.table({"id": [r["id"] for r in c], "e_per_atom": e}), parts / f"part-{i:06d}.parquet"
        )
    have = {i for i, _ in chunks if (parts / f"part-{i:06d}.parquet").exists()}
    counts = {"structures": len(rows), "labelled": sum(len(c) for i, c in chunks if i in have)}
    if len(have) < len(chunks):
        log.warning("%d of %d chunks labelled; run again to resume", len(have), len(chunks))
        return counts
    refs = elemental_references(load_energy_model(model_name), d / "references.json")
    energies = pa.concat_tables(
        [read_table(parts / f"part-{i:06d}.parquet", "energy chunk") for i, _ in chunks]
    )
    e_map = dict(zip(energies["id"].to_pylist(), energies["e_per_atom"].to_pylist(), strict=True))
    ef = []
    for r in rows:
        nums = np.asarray(r["numbers"])
        comp = {"V": float((nums == 23).sum()), "O": float((nums == 8).sum())}
        ef.append(formation_energy(comp, e_map[r["id"]], refs))
    e_pa = [e_map[r["id"]] for r in rows]
    out = table.set_column(
        table.schema.get_field_index("energy"),
        "energy",
        pa.array([e * len(r["numbers"]) for e, r in zip(e_pa, rows, strict=True)]),
    )
    out = out.append_column("e_per_atom", pa.array(e_pa)).append_column("e_form", pa.array(ef))
    out = out.append_column("stable", pa.array([x <= STABLE_EF for x in ef]))
    out = out.append_column("energy_model", pa.array([model_name] * len(rows)))
    _atomic_parquet(out, d / "labelled.parquet")
    counts["stable"] = int(sum(x <= STABLE_EF for x in ef))
    return counts


def _read(path: Path) -> pa.Table:
    if not path.exists():
        raise GenError(f"{path} not found: run `crystalspace gen build-data` first")
    return read_table(path, "VO dataset")


def load_labelled(data_dir: str | os.PathLike[str]) -> pa.Table:
    """The labelled VO dataset (clear error if the energy step has not finished)."""
    p = Path(data_dir) / "labelled.parquet"
    if not p.exists():
        raise GenError(f"{p} not found: run `crystalspace gen build-data` (energy step) to finish labelling")
    return read_table(p, "labelled VO dataset")


def row_structure(row: dict[str, Any]) -> Structure:
    """pymatgen structure of a dataset row."""
    from crystalspace.atoms.io import atoms_to_structure, row_to_atoms

    return atoms_to_structure(row_to_atoms(row))
