"""One wrapper for every model: energies, forces (−∂E/∂r) and stress (1/V ∂E/∂ε) by autograd.

:class:`Potential` evaluates a batch of periodic graphs. For conservative models forces and stress
come from one backward pass through the edge vectors (positions and a symmetric strain applied to
positions and cell); direct-force models return their own forces (and no stress).

The batched force provider used by MD is :meth:`Potential.batched`::

    pot = load_potential("runs/registry/schnet-lgps-v1", device="cuda")
    energy, forces = pot.batched(numbers, positions, cell)   # (R,), (R, N, 3)

with ``numbers`` (N,) atomic numbers, ``positions`` (R, N, 3) Å and ``cell`` (R, 3, 3) Å (rows are
lattice vectors) as torch tensors or numpy arrays. The neighbour lists of all replicas come from
one vectorised, device-resident search (:func:`crystalspace.atoms.graph.batched_neighbor_list`) and
the model input is built directly (no torch-geometric objects). With ``skin > 0`` the search runs
at ``cutoff + skin`` and is reused (a Verlet list) until an atom has moved more than ``skin / 2``
or the cells change; each call keeps exactly the pairs within the cutoff, so results equal a fresh list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crystalspace.atoms.graph import (
    DEFAULT_MAX_NEIGHBORS,
    batched_neighbor_list,
    cap_neighbors,
    edge_vectors,
    neighbor_list,
)
from crystalspace.mlff.models import ForceField, GraphInput, build_model

EV_A3_TO_GPA = 160.21766208


@dataclass
class Prediction:
    """Output of :meth:`Potential.forward`: energy (B,) eV, forces (N, 3) eV/Å, stress (B, 3, 3) eV/Å³."""

    energy: Tensor
    forces: Tensor | None = None
    stress: Tensor | None = None


class Potential(nn.Module):
    """Energy model → energies, forces and stress, for one batch of periodic graphs."""

    def __init__(
        self,
        model: ForceField,
        max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS,
        skin: float = 0.0,
        max_work: float = 4e6,
    ) -> None:
        super().__init__()
        self.model = model
        self.max_neighbors = max_neighbors
        self.skin = skin
        self.max_work = max_work
        """:meth:`batched` splits replicas into chunks of at most this much :meth:`ForceField.edge_work`."""
        self._verlet: _VerletList | None = None
        self.rebuilds = 0
        """Neighbour searches done by :meth:`neighbors` (to see how often a Verlet list is rebuilt)."""

    @property
    def cutoff(self) -> float:
        """Neighbour cutoff of the model, Å."""
        return self.model.cutoff

    @property
    def conservative(self) -> bool:
        """Whether forces are the exact negative gradient of the energy."""
        return bool(self.model.conservative)

    def forward(
        self, batch: Any, forces: bool = True, stress: bool = False, training: bool = False
    ) -> Prediction:
        """Predict for a torch-geometric batch (``z, pos, cell, edge_index, shift, batch``).

        Args:
            batch: graphs from :func:`crystalspace.atoms.graph.collate` (or one ``Data``).
            forces: compute forces.
            stress: compute stress (conservative models only; eV/Å³, ASE sign convention).
            training: keep the graph of the forces so a force loss can be back-propagated.
        """
        idx = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros_like(batch.z)
        return self.predict(
            batch.z, batch.pos, batch.cell, batch.edge_index, batch.shift, idx, forces, stress, training
        )

    def predict(
        self,
        z: Tensor,
        positions: Tensor,
        cell: Tensor,
        edge_index: Tensor,
        shift: Tensor,
        batch: Tensor,
        forces: bool = True,
        stress: bool = False,
        training: bool = False,
    ) -> Prediction:
        """Predict for graphs given as tensors: ``z`` (N,), ``positions`` (N, 3), ``cell`` (B, 3, 3),
        ``edge_index`` (2, E) over all N nodes, ``shift`` (E, 3) and node → graph ``batch`` (N,)."""
        cell0 = cell.to(positions.dtype)
        num_graphs = int(cell0.shape[0])
        want_stress = stress and self.conservative
        need_grad = (forces and self.conservative) or want_stress
        with torch.enable_grad() if (need_grad or training) else torch.no_grad():
            leaf = positions.detach().requires_grad_(need_grad)
            pos, cell, strain = leaf, cell0, None
            if want_stress:
                strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                pos = leaf + torch.einsum("ni,nij->nj", leaf, sym[batch])
                cell = cell0 + torch.bmm(cell0, sym)
            shift = shift.to(pos.dtype)
            vec = edge_vectors(pos, cell, edge_index, shift, batch)
            g = GraphInput(z, pos, vec, edge_index, batch, num_graphs, shift)
            energy, direct = self.model(g)
            out = Prediction(energy=energy, forces=direct if forces else None)
            if need_grad:
                wrt = [leaf] if strain is None else [leaf, strain]
                grads = torch.autograd.grad(energy.sum(), wrt, create_graph=training)
                if forces:
                    out.forces = -grads[0]
                if strain is not None:
                    volume = torch.linalg.det(cell0).abs().reshape(-1, 1, 1)
                    out.stress = grads[1] / volume
        return out

    @torch.no_grad()
    def _check_shapes(self, numbers: Tensor, positions: Tensor, cell: Tensor) -> None:
        from crystalspace.atoms.io import StructureError

        if positions.ndim != 3 or positions.shape[-1] != 3 or positions.shape[1] != numbers.numel():
            raise StructureError(f"positions must be (R, {numbers.numel()}, 3), got {tuple(positions.shape)}")
        if cell.shape != (positions.shape[0], 3, 3):
            raise StructureError(f"cell must be ({positions.shape[0]}, 3, 3), got {tuple(cell.shape)}")

    def graphs(self, numbers: Tensor, positions: Tensor, cell: Tensor) -> Any:
        """A batch of R periodic graphs of one composition (neighbour lists on the tensors' device)."""
        from torch_geometric.data import Batch, Data

        graphs = []
        for r in range(positions.shape[0]):
            edge_index, shift = neighbor_list(positions[r], cell[r], self.cutoff, True, self.max_neighbors)
            graphs.append(
                Data(
                    z=numbers,
                    pos=positions[r],
                    cell=cell[r].unsqueeze(0),
                    edge_index=edge_index,
                    shift=shift.to(positions.dtype),
                )
            )
        return Batch.from_data_list(graphs)

    @torch.no_grad()
    def neighbors(self, positions: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
        """``edge_index`` (2, E) over R·N nodes and integer ``shift`` (E, 3) of R replicas (R, N, 3).

        A fresh vectorised search when ``skin`` is 0; else a Verlet list searched at ``cutoff + skin``,
        rebuilt when any atom moved more than ``skin / 2`` since the last search or the cells changed,
        and filtered to the cutoff (and the neighbour cap) on every call.
        """
        if self.skin <= 0:
            self.rebuilds += 1
            edge_index, shift, _ = batched_neighbor_list(positions, cell, self.cutoff, self.max_neighbors)
            return edge_index, shift
        v = self._verlet
        if v is None or not v.valid(positions, cell, self.skin):
            self.rebuilds += 1
            edge_index, shift, _ = batched_neighbor_list(positions, cell, self.cutoff + self.skin, None)
            v = self._verlet = _VerletList(
                positions.detach().clone(), cell.detach().clone(), edge_index, shift
            )
        pos = positions.detach().reshape(-1, 3).double()
        vec = edge_vectors(pos, cell.double(), v.edge_index, v.shift, v.node_graph())
        dist = vec.norm(dim=-1)
        inside = torch.nonzero(dist < self.cutoff).squeeze(1)
        edge_index, shift, dist = v.edge_index[:, inside], v.shift[inside], dist[inside]
        keep = cap_neighbors(edge_index[1], dist, pos.shape[0], self.cutoff, self.max_neighbors)
        if keep is not None:
            edge_index, shift = edge_index[:, keep], shift[keep]
        return edge_index, shift

    def batched(
        self,
        numbers: Tensor | np.ndarray,
        positions: Tensor | np.ndarray,
        cell: Tensor | np.ndarray,
        stress: bool = False,
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        """The MD force provider: ``(numbers[N], positions[R,N,3], cell[R,3,3]) -> (energy[R], forces[R,N,3])``.

        Inputs may be numpy or torch; outputs are torch tensors on the model's device in the
        model's dtype (eV, eV/Å). With ``stress=True`` a third output (R, 3, 3) eV/Å³ is returned.
        """
        param = next(self.model.parameters())
        dev, dtype = param.device, param.dtype
        z = torch.as_tensor(numbers, device=dev).long().reshape(-1)
        pos = torch.as_tensor(positions, device=dev, dtype=dtype)
        box = torch.as_tensor(cell, device=dev, dtype=dtype)
        if pos.ndim == 2:
            pos = pos.reshape(-1, z.numel(), 3)
        if box.ndim == 2:
            box = box.expand(pos.shape[0], 3, 3)
        self._check_shapes(z, pos, box)
        num_rep, n = pos.shape[0], z.numel()
        edge_index, shift = self.neighbors(pos, box)
        parts = []
        for r0, r1, e0, e1 in self._chunks(edge_index, num_rep, n):
            idx = torch.arange(r1 - r0, device=dev).repeat_interleave(n)
            out = self.predict(z.repeat(r1 - r0), pos[r0:r1].reshape(-1, 3), box[r0:r1],
                               edge_index[:, e0:e1] - r0 * n, shift[e0:e1], idx, stress=stress)  # fmt: skip
            assert out.forces is not None
            s = out.stress if out.stress is not None else torch.full_like(box[r0:r1], float("nan"))
            parts.append((out.energy.detach(), out.forces.detach().reshape(r1 - r0, n, 3), s.detach()))
        energy, forces, sigma = (torch.cat(t) for t in zip(*parts, strict=True))
        return (energy, forces, sigma) if stress else (energy, forces)

    def _chunks(self, edge_index: Tensor, num_rep: int, n: int) -> list[tuple[int, int, int, int]]:
        """Replica ranges [r0, r1) and their (contiguous) edge ranges [e0, e1), each within ``max_work``."""
        edges = torch.bincount(edge_index[1] // n, minlength=num_rep)
        ends = [0, *torch.cumsum(edges, 0).tolist()]
        if num_rep == 1:
            return [(0, 1, 0, ends[1])]
        work = self.model.edge_work(edge_index, num_rep * n)
        per_rep = torch.zeros(num_rep, device=work.device).index_add_(0, edge_index[1] // n, work).tolist()
        chunks, r0, acc = [], 0, 0.0
        for r, w in enumerate(per_rep):
            if r > r0 and acc + w > self.max_work:
                chunks.append((r0, r, ends[r0], ends[r]))
                r0, acc = r, 0.0
            acc += w
        chunks.append((r0, num_rep, ends[r0], ends[num_rep]))
        return chunks


@dataclass
class _VerletList:
    """Pairs within ``cutoff + skin`` of the positions and cells they were searched at."""

    positions: Tensor
    cell: Tensor
    edge_index: Tensor
    shift: Tensor

    def valid(self, positions: Tensor, cell: Tensor, skin: float) -> bool:
        """Same shapes and cells, and no atom moved more than ``skin / 2``."""
        if positions.shape != self.positions.shape or not torch.equal(cell, self.cell):
            return False
        moved = (positions.detach() - self.positions).norm(dim=-1).max()
        return bool(moved <= 0.5 * skin)

    def node_graph(self) -> Tensor:
        """Replica of each node (R·N,)."""
        num_rep, n = self.positions.shape[:2]
        return torch.arange(num_rep, device=self.positions.device).repeat_interleave(n)


def potential_from_config(config: dict[str, Any], state: dict[str, Tensor] | None = None) -> Potential:
    """Build a :class:`Potential` from a saved model config (``arch``, ``hparams``, ``max_neighbors``)."""
    model = build_model(config["arch"], **config.get("hparams", {}))
    if state is not None:
        model.load_state_dict(state)
    return Potential(model, max_neighbors=config.get("max_neighbors", DEFAULT_MAX_NEIGHBORS))


def load_potential(
    path_or_name: str | os.PathLike[str], device: str | torch.device = "cpu", root: str | None = None
) -> Potential:
    """Load a saved model from the registry (a directory path, or a name under ``root``) for inference."""
    from crystalspace.registry import load_entry

    entry = load_entry(path_or_name, root=root)
    pot = potential_from_config(entry.config, entry.state_dict(map_location="cpu"))
    return pot.to(device).eval()
