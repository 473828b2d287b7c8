"""LeftNet (Du et al. 2023): local frames scalarise vector features; invariant and vector messages.

Written here from the paper (no installed package provides it). Per atom ``i`` there are scalars
``s_i`` (H) and vectors ``v_i`` (3, H).

* Radial: an exp-normal basis of the distance times the cosine envelope, and an MLP of it.
* Local substructure: ``S_i = Σ_j R(r_ij) φ(s_j) r̂_ij``, a vector summary of each neighbourhood.
* Edge frame: from the positions of the two atoms and their cross product, as the paper builds it,
  but with positions taken from a local origin so that the frame needs no global one (a periodic cell
  has none): the origin is the centre's neighbourhood centroid ``x_i + m_i``,
  ``m_i = Σ_j fc_ij r_ij / (1 + Σ_j fc_ij)``. The frame is ``e1 = r̂_ij``, ``e2 = c/√(|c|² + ε²)``
  with ``c = (x_i − o) × (x_j − o) = r_ij × m_i``, and ``e3 = e1 × e2``. Where ``c`` vanishes — a
  centrosymmetric site (``m_i = 0``), an atom with one neighbour, a neighbour collinear with the
  centroid — ``e2`` and ``e3`` shrink smoothly to zero rather than pointing anywhere, so those
  projections fade out and the energy stays smooth and exactly invariant; only the ``e1`` projection
  remains. ``c`` is a pseudovector, so the projection on ``e2`` changes sign under a mirror: it enters
  through a smooth absolute value ``√(x² + δ²) − δ`` and the energy is E(3)-invariant.
* Scalarisation: ``S_i`` and ``S_j`` projected on the frame of edge ``ij``, mixed over the three axes,
  give the invariant edge features that weight every message.
* Each layer: an equivariant message (scalar update; vector update from ``v_j`` and ``r̂_ij``, weighted
  by the edge features and the envelope), then a node update mixing ``s`` with ``|v|`` and ``v·v'``
  (the paper's frame-transition block without its node frame, which only its unused output needs).

Energy = Σ atoms of a linear readout of ``s``; forces by autograd.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import MAX_Z, ForceField, GraphInput, cosine_cutoff, scatter_sum


class _ExpNormalBasis(nn.Module):
    """Gaussians in ``exp(−d)`` (PhysNet), times the cosine envelope."""

    means: Tensor

    def __init__(self, cutoff: float, num: int) -> None:
        super().__init__()
        start = math.exp(-cutoff)
        self.register_buffer("means", torch.linspace(start, 1.0, num))
        self.beta = (2.0 / num * (1.0 - start)) ** -2
        self.cutoff = cutoff

    def forward(self, dist: Tensor) -> Tensor:
        d = dist.unsqueeze(-1)
        gauss = torch.exp(-self.beta * (torch.exp(-d) - self.means.to(d.dtype)) ** 2)
        return cosine_cutoff(d, self.cutoff) * gauss


def _smooth_abs(x: Tensor, delta: float) -> Tensor:
    """``√(x² + δ²) − δ``: even, zero at zero, twice differentiable."""
    return torch.sqrt(x * x + delta * delta) - delta


class _Edges:
    """Per-edge geometry shared by all layers."""

    def __init__(self, g: GraphInput, cutoff: float) -> None:
        self.src, self.dst = g.edge_index  # neighbour j, centre i
        self.num_nodes = g.z.shape[0]
        self.dist = g.dist
        self.unit = g.vec / self.dist.unsqueeze(-1)
        self.fc = cosine_cutoff(self.dist, cutoff)


def _edge_frames(g: GraphInput, e: _Edges, eps: float) -> Tensor:
    """(E, 3, 3) frames, columns ``e1, e2, e3`` (``e2``, ``e3`` soft-normalised, see the module doc)."""
    fc = e.fc.unsqueeze(-1)
    centroid = scatter_sum(fc * g.vec, e.dst, e.num_nodes) / (1.0 + scatter_sum(fc, e.dst, e.num_nodes))
    cross = torch.linalg.cross(g.vec, centroid[e.dst], dim=-1)
    e2 = cross / torch.sqrt((cross * cross).sum(-1, keepdim=True) + eps * eps)
    e3 = torch.linalg.cross(e.unit, e2, dim=-1)
    return torch.stack([e.unit, e2, e3], dim=-1)


class _Scalarise(nn.Module):
    """Vectors (E, 3, H) in an edge frame → invariants (E, H): projections, mixed over the axes."""

    def __init__(self, hidden: int, delta: float) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            nn.Linear(3, max(hidden // 4, 1)), nn.SiLU(), nn.Linear(max(hidden // 4, 1), 1)
        )
        self.delta = delta

    def forward(self, vectors: Tensor, frames: Tensor) -> Tensor:
        proj = torch.einsum("eah,eak->ehk", vectors, frames)  # (E, H, 3)
        proj = torch.stack([proj[..., 0], _smooth_abs(proj[..., 1], self.delta), proj[..., 2]], dim=-1)
        return self.mix(proj).squeeze(-1) + proj[..., 0]


class _Message(nn.Module):
    """Equivariant message: ``ds`` and ``dv = v_j·a + r̂_ij·b`` from ``s_j``, radial and frame features."""

    def __init__(self, hidden: int, num_radial: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.edge_proj = nn.Sequential(
            nn.Linear(3 * hidden + num_radial, 3 * hidden), nn.SiLU(), nn.Linear(3 * hidden, 3 * hidden)
        )
        self.node_proj = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))
        self.rbf_proj = nn.Linear(num_radial, 3 * hidden)

    def forward(
        self, s: Tensor, v: Tensor, e: _Edges, rbf: Tensor, edge_feat: Tensor
    ) -> tuple[Tensor, Tensor]:
        w = self.rbf_proj(rbf) * self.edge_proj(edge_feat) * e.fc.unsqueeze(-1)
        ds, a, b = torch.split(self.node_proj(s)[e.src] * w, self.hidden, dim=-1)
        dv = (v[e.src] * a.unsqueeze(1) / math.sqrt(3.0) + e.unit.unsqueeze(-1) * b.unsqueeze(1)) / math.sqrt(
            self.hidden
        )
        return s + scatter_sum(ds, e.dst, e.num_nodes), v + scatter_sum(dv, e.dst, e.num_nodes)


class _Update(nn.Module):
    """Node update: ``s`` with ``|U v|`` and ``U v · V v``; ``v`` gated by scalars."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.vec_proj = nn.Linear(hidden, 2 * hidden, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        v1, v2 = torch.split(self.vec_proj(v), self.hidden, dim=-1)
        norm = torch.sqrt((v1 * v1).sum(dim=1) + 1e-8)
        dot = (v1 * v2).sum(dim=1) / math.sqrt(self.hidden)
        a, b, c = torch.split(self.mlp(torch.cat([s, norm], dim=-1)), self.hidden, dim=-1)
        return s + (a + b * dot) / math.sqrt(2.0), v + c.unsqueeze(1) * v2


class LeftNet(ForceField):
    """LeftNet energy model: ``hidden`` scalar and vector channels, ``layers`` message/update pairs.

    Args:
        hidden: channels of scalars and of vectors.
        layers: message-passing layers.
        num_radial: exp-normal radial basis functions.
        frame_eps: ε (Å²) of the soft normalisation of the frame's cross-product axis.
        abs_delta: δ of the smooth absolute value of the mirror-odd projection.
    """

    arch = "leftnet"
    symmetry = "SE(3)/E(3)-equivariant"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 4, "num_radial": 32}
    study_params = 2.12e6

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 4,
        num_radial: int = 32,
        frame_eps: float = 0.1,
        abs_delta: float = 0.1,
    ) -> None:
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            num_radial=num_radial,
            frame_eps=frame_eps,
            abs_delta=abs_delta,
        )
        self.check_hparams(self.hparams)
        self.frame_eps = frame_eps
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.neighbour_embed = nn.Embedding(MAX_Z, hidden)
        self.basis = _ExpNormalBasis(cutoff, num_radial)
        self.radial = nn.Sequential(nn.Linear(num_radial, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.substructure = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
        self.scalarise = _Scalarise(hidden, abs_delta)
        self.messages = nn.ModuleList(_Message(hidden, num_radial) for _ in range(layers))
        self.updates = nn.ModuleList(_Update(hidden) for _ in range(layers))
        self.readout = nn.Linear(hidden, 1)

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        for name in ("hidden", "layers", "num_radial"):
            if name in hparams and int(hparams[name]) < 1:
                raise ValueError(f"{name} must be at least 1, got {hparams[name]}")
        for name in ("frame_eps", "abs_delta"):
            if name in hparams and not float(hparams[name]) > 0:
                raise ValueError(f"{name} must be positive, got {hparams[name]}")

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        e = _Edges(g, self.cutoff)
        rbf = self.basis(e.dist)
        radial = self.radial(rbf) * e.fc.unsqueeze(-1)
        s = self.embed(g.z) + scatter_sum(radial * self.neighbour_embed(g.z)[e.src], e.dst, e.num_nodes)
        # local substructure vectors S_i and their invariants in every edge frame
        sub = radial.unsqueeze(1) * e.unit.unsqueeze(-1) * self.substructure(s)[e.src].unsqueeze(1)
        sub = scatter_sum(sub, e.dst, e.num_nodes)
        frames = _edge_frames(g, e, self.frame_eps)
        frame_feat = torch.cat([self.scalarise(sub[e.dst], frames), self.scalarise(sub[e.src], frames)], -1)
        edge_feat = torch.cat([frame_feat * e.fc.unsqueeze(-1), radial, rbf], dim=-1)
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        for message, update in zip(self.messages, self.updates, strict=True):
            s, v = message(s, v, e, rbf, edge_feat)
            s, v = update(s, v)
        return scatter_sum(self.readout(s).squeeze(-1), g.batch, g.num_graphs), None
