"""One wrapper for every model: energies, forces (−∂E/∂r) and stress (1/V ∂E/∂ε) by autograd.

:class:`Potential` evaluates a batch of periodic graphs. For conservative models forces and stress
come from one backward pass through the edge vectors (positions and a symmetric strain applied to
positions and cell); direct-force models return their own forces (and no stress).

The batched force provider used by MD is :meth:`Potential.batched`::

    pot = load_potential("runs/registry/schnet-lgps-v1", device="cuda")
    energy, forces = pot.batched(numbers, positions, cell)   # (R,), (R, N, 3)

with ``numbers`` (N,) atomic numbers, ``positions`` (R, N, 3) Å and ``cell`` (R, 3, 3) Å (rows are
lattice vectors) as torch tensors or numpy arrays. Neighbour lists are rebuilt on every call
(vesin, on the tensors' device).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crystalspace.atoms.graph import DEFAULT_MAX_NEIGHBORS, edge_vectors, neighbor_list
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

    def __init__(self, model: ForceField, max_neighbors: int | None = DEFAULT_MAX_NEIGHBORS) -> None:
        super().__init__()
        self.model = model
        self.max_neighbors = max_neighbors

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
        cell0 = batch.cell.to(batch.pos.dtype)
        num_graphs = int(cell0.shape[0])
        want_stress = stress and self.conservative
        need_grad = (forces and self.conservative) or want_stress
        with torch.enable_grad() if (need_grad or training) else torch.no_grad():
            leaf = batch.pos.detach().requires_grad_(need_grad)
            pos, cell, strain = leaf, cell0, None
            if want_stress:
                strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                pos = leaf + torch.einsum("ni,nij->nj", leaf, sym[idx])
                cell = cell0 + torch.bmm(cell0, sym)
            vec = edge_vectors(pos, cell, batch.edge_index, batch.shift, idx)
            g = GraphInput(batch.z, pos, vec, batch.edge_index, idx, num_graphs, batch.shift)
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
        out = self.forward(self.graphs(z, pos, box), forces=True, stress=stress)
        assert out.forces is not None
        energy, forces = out.energy.detach(), out.forces.detach().reshape(pos.shape)
        if stress:
            s = out.stress.detach() if out.stress is not None else torch.full_like(box, float("nan"))
            return energy, forces, s
        return energy, forces


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
