"""Periodic neighbour graphs for the force-field models (vesin neighbour lists, torch-geometric data).

One graph per structure: ``edge_index = [src, tgt]`` (messages flow from neighbour ``src`` = j to
centre ``tgt`` = i), the integer image ``shift`` of each edge and the ``cell``. The edge vector from
i to its neighbour j is ``pos[j] + shift @ cell - pos[i]`` (Å), computed by :func:`edge_vectors`
from positions that may require grad, so forces and stress follow by autograd. Cells smaller than
the cutoff are handled (vesin returns every periodic image within the cutoff). The study's settings
are the defaults: cutoff 6 Å, at most 500 neighbours per atom (the nearest ones are kept).

Batches are ordinary torch-geometric ``Batch`` objects (:func:`collate`); PyG offsets ``edge_index``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from crystalspace.atoms.io import GPA, StructureError

if TYPE_CHECKING:
    from ase import Atoms
    from torch_geometric.data import Batch, Data

DEFAULT_CUTOFF = 6.0
"""Neighbour cutoff of the MLFF study (Å)."""
DEFAULT_MAX_NEIGHBORS = 500
"""Largest number of neighbours kept per atom in the MLFF study."""


def neighbor_list(
    positions: np.ndarray | Tensor,
    cell: np.ndarray | Tensor,
    cutoff: float = DEFAULT_CUTOFF,
    pbc: bool = True,
    max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS,
) -> tuple[Tensor, Tensor]:
    """Full periodic neighbour list of one structure.

    Args:
        positions: (n, 3) Cartesian positions, Å (numpy or torch; a torch tensor stays on its device).
        cell: (3, 3) lattice vectors as rows, Å.
        cutoff: neighbour cutoff, Å.
        pbc: periodic in all three directions (else an open cluster).
        max_neighbors: keep only the nearest ``max_neighbors`` neighbours of each atom (None: all).

    Returns:
        ``edge_index`` (2, E) long ``[src=j, tgt=i]`` and integer image ``shift`` (E, 3) such that
        the vector i → j is ``pos[j] + shift @ cell - pos[i]``.
    """
    pts = torch.as_tensor(positions).detach().to(torch.float64)
    box = torch.as_tensor(cell).detach().to(device=pts.device, dtype=torch.float64).reshape(3, 3)
    if not torch.isfinite(pts).all():
        raise StructureError("non-finite atomic positions")
    if pbc and abs(float(torch.linalg.det(box))) < 1e-6:
        raise StructureError("degenerate cell (zero volume)")
    i, j, shift, dist = _vesin(pts, box, float(cutoff), pbc)
    i, j, shift = i.long(), j.long(), shift.long()
    keep = cap_neighbors(i, dist, len(pts), cutoff, max_neighbors)
    if keep is not None:
        i, j, shift = i[keep], j[keep], shift[keep]
    return torch.stack([j, i]), shift


def cap_neighbors(
    centre: Tensor, dist: Tensor, num_nodes: int, cutoff: float, max_neighbors: int | None
) -> Tensor | None:
    """Indices of the edges kept when some atom has more than ``max_neighbors`` (its nearest ones).

    Returns None (keep all, no sort) when no atom exceeds the cap.
    """
    if max_neighbors is None or not len(centre):
        return None
    counts = torch.bincount(centre, minlength=num_nodes)
    if int(counts.max()) <= max_neighbors:
        return None
    order = torch.argsort(centre.double() * (4 * cutoff) + dist.double())  # by centre, then distance
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(centre), device=centre.device) - first[centre[order]]
    return torch.sort(order[rank < max_neighbors]).values  # original edge order


def image_range(cells: Tensor, cutoff: float) -> list[int]:
    """Largest |image index| along each lattice vector that can hold a neighbour within ``cutoff``.

    For wrapped fractional coordinates (differences in (−1, 1)) an image n along a is needed only if
    ``|n| ≤ ceil(cutoff / h_a)``, with ``h_a = V / |b × c|`` the cell height normal to the other two
    vectors; the maximum over all cells of the batch.
    """
    c = cells.detach().to(torch.float64).reshape(-1, 3, 3)
    vol = torch.linalg.det(c).abs()
    cross = torch.stack(
        [torch.cross(c[:, (a + 1) % 3], c[:, (a + 2) % 3], dim=-1).norm(dim=-1) for a in range(3)], 1
    )
    heights = vol[:, None] / cross
    return [int(v) for v in torch.ceil(cutoff / heights.min(dim=0).values).tolist()]


def batched_neighbor_list(
    positions: Tensor,
    cells: Tensor,
    cutoff: float = DEFAULT_CUTOFF,
    max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS,
    max_candidates: int = 1 << 24,
) -> tuple[Tensor, Tensor, Tensor]:
    """Periodic neighbour lists of R replicas of one composition in a few tensor ops, on their device.

    Every (centre i, neighbour j, image shift) candidate within the needed image range is tested at
    once (in chunks of replicas holding at most ``max_candidates`` candidates); self-pairs at zero
    shift are excluded, and the ``max_neighbors`` cap (nearest kept) applies only where exceeded.
    The result is the layout of :func:`neighbor_list` + :func:`collate`: replica-major edges with
    node indices offset by ``r·N``. Positions need not be wrapped into the cell.

    Args:
        positions: (R, N, 3) Cartesian positions, Å.
        cells: (R, 3, 3) lattice vectors as rows, Å.
        cutoff: neighbour cutoff, Å.
        max_neighbors: per-atom cap (None: all).
        max_candidates: memory bound (candidate pairs per chunk).

    Returns:
        ``edge_index`` (2, E) long ``[src=j, tgt=i]`` over R·N nodes, integer ``shift`` (E, 3) long
        such that the vector i → j is ``pos[j] + shift @ cell[r] - pos[i]``, and the edge distances
        (E,) in float64 (not differentiable).
    """
    pos = positions.detach().to(torch.float64)
    box = cells.detach().to(device=pos.device, dtype=torch.float64)
    num_rep, n = int(pos.shape[0]), int(pos.shape[1])
    if not torch.isfinite(pos).all():
        raise StructureError("non-finite atomic positions")
    if (torch.linalg.det(box).abs() < 1e-6).any():
        raise StructureError("degenerate cell (zero volume)")
    ranges = [
        torch.arange(-m, m + 1, device=pos.device, dtype=torch.float64) for m in image_range(box, cutoff)
    ]
    images = torch.cartesian_prod(*ranges).reshape(-1, 3)  # (S, 3)
    frac = torch.linalg.solve(box.transpose(1, 2), pos.transpose(1, 2)).transpose(1, 2)  # pos = frac @ cell
    cells_in = torch.floor(frac)
    wrapped = pos - torch.bmm(cells_in, box)
    zero = int(torch.nonzero((images == 0).all(dim=1))[0, 0])
    chunk = max(1, max_candidates // max(1, n * n * len(images)))
    parts: list[tuple[Tensor, ...]] = []
    for r0 in range(0, num_rep, chunk):
        w, b = wrapped[r0 : r0 + chunk], box[r0 : r0 + chunk]
        img = images @ b  # (C, S, 3)
        dij = w[:, None, :, :] - w[:, :, None, :]  # (C, i, j, 3): w_j - w_i
        # |dij + img|² without materialising (C, i, j, S, 3)
        cross = torch.bmm(dij.reshape(len(w), n * n, 3), img.transpose(1, 2)).reshape(len(w), n, n, -1)
        d2 = (dij * dij).sum(-1, keepdim=True) + 2 * cross + (img * img).sum(-1)[:, None, None, :]
        mask = d2 < cutoff * cutoff
        diag = torch.arange(n, device=pos.device)
        mask[:, diag, diag, zero] = False
        r, i, j, s = torch.nonzero(mask, as_tuple=True)
        parts.append((r + r0, i, j, s, d2[r, i, j, s].clamp_min(0).sqrt()))
    r, i, j, s, dist = (torch.cat(t) for t in zip(*parts, strict=True))
    # shift relative to the caller's (unwrapped) positions: wrapped = pos - k @ cell
    shift = images[s] + cells_in[r, i] - cells_in[r, j]
    centre, nbr = i + r * n, j + r * n
    keep = cap_neighbors(centre, dist, num_rep * n, cutoff, max_neighbors)
    if keep is not None:
        centre, nbr, shift, dist = centre[keep], nbr[keep], shift[keep], dist[keep]
    return torch.stack([nbr, centre]), shift.round().long(), dist


def _vesin(pts: Tensor, box: Tensor, cutoff: float, pbc: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """vesin-torch on the tensors' device; the numpy vesin on CPU where that is unavailable."""
    global _TORCH_NL_OK
    if _TORCH_NL_OK:
        try:
            import vesin.torch

            nl = vesin.torch.NeighborList(cutoff=cutoff, full_list=True)
            i, j, s, d = nl.compute(points=pts, box=box, periodic=pbc, quantities="ijSd")
            return i, j, s, d
        except Exception:  # no vesin-torch build for this torch version or device: use numpy vesin
            _TORCH_NL_OK = False
    from vesin import NeighborList

    out = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=pts.cpu().numpy(), box=box.cpu().numpy(), periodic=pbc, quantities="ijSd"
    )
    i, j, s, d = (torch.as_tensor(np.asarray(a)).to(pts.device) for a in out)
    return i, j, s, d


_TORCH_NL_OK = True


def atoms_to_graph(
    atoms: Atoms,
    cutoff: float = DEFAULT_CUTOFF,
    max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS,
    labels: bool = True,
) -> Data:
    """A torch-geometric ``Data`` graph of ASE ``Atoms`` (labels from an attached calculator)."""
    energy = forces = stress = None
    if labels and atoms.calc is not None:
        res = getattr(atoms.calc, "results", {})
        energy = res.get("energy")
        forces = res.get("forces")
        stress = res.get("stress")
        stress = None if stress is None or np.size(stress) != 6 else np.asarray(stress) / GPA
    return make_graph(
        atoms.numbers,
        atoms.positions,
        np.asarray(atoms.cell[:]),
        bool(np.all(atoms.pbc)),
        cutoff,
        max_neighbors,
        energy=energy,
        forces=forces,
        stress=stress,
    )


def row_to_graph(
    row: dict[str, Any],
    cutoff: float = DEFAULT_CUTOFF,
    max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS,
) -> Data:
    """A graph of a structure row (see :mod:`crystalspace.atoms.io`); labels kept when present."""
    pbc = row.get("pbc")
    return make_graph(
        np.asarray(row["numbers"]),
        np.asarray(row["positions"], dtype=np.float64).reshape(-1, 3),
        np.asarray(row["cell"], dtype=np.float64).reshape(3, 3),
        True if pbc is None else bool(np.all(pbc)),
        cutoff,
        max_neighbors,
        energy=row.get("energy"),
        forces=row.get("forces"),
        stress=row.get("stress"),
    )


def make_graph(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: bool = True,
    cutoff: float = DEFAULT_CUTOFF,
    max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    stress: np.ndarray | None = None,
) -> Data:
    """The graph of one structure: ``z``, ``pos``, ``cell`` (1,3,3), ``edge_index``, ``shift``, ``natoms``.

    Labels, when given, become ``energy`` (1,) eV, ``forces`` (n,3) eV/Å and ``stress`` (1,6) GPa.
    """
    from torch_geometric.data import Data

    pos = torch.tensor(np.asarray(positions, dtype=np.float64)).reshape(-1, 3).float()
    box = torch.tensor(np.asarray(cell, dtype=np.float64)).reshape(3, 3).float()
    edge_index, shift = neighbor_list(pos.double(), box.double(), cutoff, pbc, max_neighbors)
    data = Data(
        z=torch.tensor(np.asarray(numbers, dtype=np.int64)),
        pos=pos,
        cell=box.unsqueeze(0),
        edge_index=edge_index,
        shift=shift.float(),
        natoms=torch.tensor([len(pos)]),
    )
    if energy is not None:
        data.energy = torch.tensor([float(energy)], dtype=torch.float32)
    if forces is not None:
        data.forces = torch.tensor(np.asarray(forces, dtype=np.float32)).reshape(-1, 3)
    if stress is not None:
        data.stress = torch.tensor(np.asarray(stress, dtype=np.float32)).reshape(1, 6)
    return data


def collate(graphs: Sequence[Data]) -> Batch:
    """Batch graphs (PyG offsets ``edge_index``; ``batch`` maps atoms to structures)."""
    from torch_geometric.data import Batch

    return Batch.from_data_list(list(graphs))


def edge_vectors(pos: Tensor, cell: Tensor, edge_index: Tensor, shift: Tensor, batch: Tensor) -> Tensor:
    """Edge vectors i → j, ``pos[j] + shift @ cell[graph of i] - pos[i]`` (E, 3), Å; differentiable."""
    src, tgt = edge_index
    offset = torch.einsum("ek,ekl->el", shift.to(pos.dtype), cell.to(pos.dtype)[batch[tgt]])
    return pos[src] + offset - pos[tgt]
