"""Build the shipped reference set ``crystalspace/data/known_mp.parquet`` from ../shared/data.

Sources (offline copies of Materials Project data; see ../shared/data/README.md):
- ``mp_binary_smact/mp_binary_summary.csv``: every MP binary A_xB_y with x, y <= 8 (complete).
- ``mp_id_lists/mp_ids_union_DERIVED.csv.gz``: reduced formulas of 136k MP ids (2018-2025
  releases mixed) for ternaries and quaternaries.

Usage: ``python pipelines/build_known_set.py [--data ../shared/data]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from crystalspace.space.known import compositions_table

OUT = Path(__file__).resolve().parents[1] / "crystalspace" / "data" / "known_mp.parquet"


def _formulas(path: Path, column: str) -> list[str]:
    opts = pacsv.ConvertOptions(strings_can_be_null=False, include_columns=[column])
    return [f for f in pacsv.read_csv(path, convert_options=opts).column(column).to_pylist() if f]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    binaries = _formulas(args.data / "mp_binary_smact" / "mp_binary_summary.csv", "formula_pretty")
    union = _formulas(args.data / "mp_id_lists" / "mp_ids_union_DERIVED.csv.gz", "reduced_formula")
    source = (
        "Materials Project compositions: mp_binary_smact/mp_binary_summary.csv (SMACT tutorial "
        "MP binaries, 2025) + mp_id_lists/mp_ids_union_DERIVED.csv.gz (MP ids 2018-2025); "
        "CC BY 4.0, Jain et al., APL Mater. 1, 011002 (2013)"
    )
    table, skipped = compositions_table(binaries + union, source)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, OUT, compression="zstd")
    counts = table.group_by("arity").aggregate([("arity", "count")]).to_pylist()
    logging.getLogger(__name__).info("skipped %d formulas", skipped)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB), skipped {skipped} formulas")
    for row in sorted(counts, key=lambda r: r["arity"]):
        print(f"  arity {row['arity']}: {row['arity_count']:,} known compositions")


if __name__ == "__main__":
    main()
