"""Maps of a small chemical space: embed, project, measure separation, draw, explore.

Builds the binary and ternary lake of 14 common elements on an embedded Ray (a few seconds),
samples 300 compositions per category, maps them with two element embeddings and PCA, prints
how well the categories separate, and writes the PNG figures and the explorer page into a
temporary folder.

    python examples/maps_quickstart.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ray

from crystalspace.maps.build import build_maps
from crystalspace.maps.explorer import write_explorer
from crystalspace.maps.figures import make_figures
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config


def main() -> None:
    config = make_space_config(
        overrides={"arities": "2,3", "elements": "Li,Na,Mg,Zn,Cu,Fe,Al,Sn,N,P,O,S,Cl,F"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        lake, out = str(Path(tmp) / "lake"), Path(tmp) / "maps"
        try:
            build_lake(config, lake, num_cpus=2)
        finally:
            ray.shutdown()
        report = build_maps(
            [lake], out, arities=(2, 3), embeddings=("magpie", "mat2vec"), methods=("pca",), per_category=300
        )
        for note in report.notes:
            print(note)
        for r in report.separation.itertuples(index=False):
            print(
                f"arity {r.arity} {r.embedding} {r.method}: kNN accuracy {r.knn_2d:.2f} in 2-D, "
                f"{r.knn_full:.2f} in {r.embedding} space (chance {r.chance:.2f})"
            )
        print("figures:", ", ".join(p.name for p in make_figures(out)))
        page = write_explorer(out)
        print(f"explorer: {page.name}, {page.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
