"""Periodic neighbour lists: small cells (images of the atom itself) and the neighbour cap, and the
vectorised batched search of many replicas against vesin edge for edge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from crystalspace.atoms.graph import batched_neighbor_list, neighbor_list
from crystalspace.atoms.io import StructureError


@pytest.fixture(scope="module", autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


def test_neighbor_list_small_cell_images_and_cap() -> None:
    from ase.neighborlist import neighbor_list as ase_nl

    atoms = bulk("Li", "bcc", a=3.45)  # one atom, cell far below the cutoff
    edge_index, shift = neighbor_list(atoms.positions, atoms.cell[:], cutoff=6.0, max_neighbors=None)
    i, _ = ase_nl("ij", atoms, 6.0)
    assert edge_index.shape[1] == len(i) > 50
    assert (edge_index == 0).all()
    assert shift.abs().sum(1).min() > 0  # every neighbour is a periodic image
    capped, _ = neighbor_list(atoms.positions, atoms.cell[:], cutoff=6.0, max_neighbors=14)
    assert capped.shape[1] == 14  # the 8 + 6 nearest (bcc first and second shells)
    with pytest.raises(StructureError, match="degenerate cell"):
        neighbor_list(atoms.positions, np.zeros((3, 3)))


def random_batch(seed: int, replicas: int, n: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Triclinic cells ~``scale`` Å (some smaller than the cutoff) and positions partly outside them."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.eye(3, dtype=torch.float64) * scale + 0.3 * scale * torch.randn(replicas, 3, 3, generator=g,
                                                                                  dtype=torch.float64)  # fmt: skip
    frac = 2.0 * torch.rand(replicas, n, 3, generator=g, dtype=torch.float64) - 0.5
    return torch.bmm(frac, cells), cells


def edge_set(edge_index: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> set[tuple[int, ...]]:
    return set(map(tuple, torch.cat([edge_index.T - offset, shift.long()], 1).tolist()))


@pytest.mark.parametrize("scale", [2.5, 4.0, 9.0])
@pytest.mark.parametrize("seed", range(4))
def test_batched_neighbor_list_equals_vesin_edge_for_edge(seed: int, scale: float) -> None:
    replicas, n, rc = 3, 1 + 4 * seed, 4.0
    pos, cells = random_batch(seed, replicas, n, scale)
    edge_index, shift, dist = batched_neighbor_list(pos, cells, rc, None, max_candidates=200)  # forces chunks
    assert (dist < rc).all()
    assert len(dist) == edge_index.shape[1]
    assert scale > rc or len(dist) > 0  # cells smaller than the cutoff: self-images at least
    tgt = edge_index[1]
    assert bool((torch.diff(tgt // n) >= 0).all())  # replica-major, like collate
    for r in range(replicas):
        mine = (tgt // n) == r
        assert (edge_index[0, mine] // n == r).all()
        ref_index, ref_shift = neighbor_list(pos[r], cells[r], rc, True, None)
        assert edge_set(edge_index[:, mine], shift[mine], r * n) == edge_set(ref_index, ref_shift)
        vec = pos[r][ref_index[0]] + ref_shift.double() @ cells[r] - pos[r][ref_index[1]]
        assert torch.allclose(torch.sort(vec.norm(dim=-1)).values, torch.sort(dist[mine]).values)


def test_batched_neighbor_cap_keeps_the_nearest() -> None:
    pos, cells = random_batch(7, 2, 6, 3.0)  # dense: ~40 neighbours each within 4 Å
    cap = 10
    edge_index, _shift, dist = batched_neighbor_list(pos, cells, 4.0, cap)
    counts = torch.bincount(edge_index[1], minlength=12)
    assert counts.max() == cap
    for r in range(2):
        ref_index, ref_shift = neighbor_list(pos[r], cells[r], 4.0, True, cap)
        mine = (edge_index[1] // 6) == r
        # ties (±image of the same atom) make the kept set ambiguous: compare distances per centre
        vec = pos[r][ref_index[0]] + ref_shift.double() @ cells[r] - pos[r][ref_index[1]]
        ref = sorted(zip(ref_index[1].tolist(), np.round(vec.norm(dim=-1).numpy(), 9).tolist(), strict=True))
        got = sorted(
            zip((edge_index[1, mine] - 6 * r).tolist(), np.round(dist[mine].numpy(), 9).tolist(), strict=True)
        )
        assert got == ref


def test_batched_neighbor_list_rejects_bad_input() -> None:
    pos, cells = random_batch(0, 2, 3, 5.0)
    with pytest.raises(StructureError, match="non-finite"):
        batched_neighbor_list(pos.clone().fill_(float("nan")), cells)
    with pytest.raises(StructureError, match="degenerate"):
        batched_neighbor_list(pos, torch.zeros_like(cells))
