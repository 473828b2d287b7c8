"""Reconstruct rock-salt NaCl from its distance matrix with the CSP genetic algorithm.

The CSP pipeline predicts a distance matrix from the composition and lets a GA find atomic
positions that fit it. Here the matrix is the true one (no trained model needed), so the
example shows the reconstruction half: GA runs on Ray actors, CHGNet relaxation, ranking,
and the StructureMatcher check against the known structure.

    python examples/csp_reconstruct.py
"""

from __future__ import annotations

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from crystalspace.csp.features import species_of
from crystalspace.csp.ga import GAConfig
from crystalspace.csp.workflow import ga_candidates
from crystalspace.potentials import Relaxer
from crystalspace.runtime import init_ray


def main() -> None:
    init_ray(num_cpus=2)
    true = Structure(
        Lattice.cubic(5.64),
        ["Na"] * 4 + ["Cl"] * 4,
        [
            [0, 0, 0],
            [0.5, 0.5, 0],
            [0.5, 0, 0.5],
            [0, 0.5, 0.5],
            [0.5, 0, 0],
            [0, 0.5, 0],
            [0, 0, 0.5],
            [0.5, 0.5, 0.5],
        ],
    )
    cands = ga_candidates(
        species_of(true), true.lattice, true.distance_matrix, GAConfig(population=80, generations=150), runs=4
    )
    best = min(cands, key=lambda c: c[1])
    print(f"GA: {len(cands)} runs, best distance-matrix mismatch {best[1]:.3f} A")
    relaxed = sorted(Relaxer("chgnet").relax([s for s, _ in cands], steps=10), key=lambda r: r.energy)
    for i, r in enumerate(relaxed, 1):
        spg = r.structure.get_space_group_info(symprec=0.1)[0]
        print(f"rank {i}: {r.energy_per_atom:.3f} eV/atom, space group {spg}")
    print(f"matches rock salt: {StructureMatcher().fit(relaxed[0].structure, true)}")


if __name__ == "__main__":
    main()
