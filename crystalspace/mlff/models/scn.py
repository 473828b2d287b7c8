"""SCN (Zitnick et al. 2022, "Spherical Channels for Modeling Atomic Interactions").

Node features are ``hidden`` spherical channels: spherical-harmonic coefficients up to ``lmax``. For
every edge the source and target embeddings are rotated into the edge's frame (the edge along the
polar axis; :class:`~crystalspace.mlff.models.spherical.EdgeFrame`) and their orders |m| ≤ ``mmax``
go through one per-edge MLP that mixes all degrees, orders, channels and both atoms (SCN's
restricted message passing, not eSCN's per-order SO(2) convolutions), modulated by an embedding of
the distance and both species. The message is rotated back and summed onto the target atom; a
point-wise MLP combines it with the atom's embedding, and every layer but the first is residual.
As in SCN, near neighbours use a finer message block (``lmax``, 2·``hidden`` hidden units) and far
ones a coarser one (degree ``max(4, lmax − 2)`` capped at ``lmax``, a quarter of the hidden units).

Forces are direct, as in the study: its parameter counts (Table 1) are fairchem's SCN with its
direct force block, fairchem's SCN has no gradient-force path, and the study saw whole-cell drift in
SCN dynamics. So the model is flagged ``conservative = False``. The energy is an MLP of the l = 0
channels and the forces the l = 1 coefficients weighted by an MLP of the l = 0 channels.

Departures from the reference, all for exact SO(3) equivariance and a smooth energy:

- SCN's frame is random about the edge and its MLP sees the ±m coefficients as plain numbers, so it
  is only approximately equivariant (it averages four frames about the edge). Here the per-edge MLP
  commutes with rotations about the edge: the m = 0 coefficients and the squared moduli of
  complex-linear projections of each ±m pair feed the invariant hidden units, the ±m pairs go
  through complex-linear maps scaled by sigmoid gates of those units, and no frame averaging is
  needed.
- The sphere-grid aggregation and output blocks are replaced by gates by invariant coefficients
  (:class:`~crystalspace.mlff.models.spherical.SphericalMLP`) and l = 0 / l = 1 read-outs.
- The two resolutions are chosen by distance, not by neighbour rank (which jumps): edges shorter than
  ``near_cutoff`` − 0.5 Å use the fine block, longer than ``near_cutoff`` + 0.5 Å the coarse one, and
  between them both with cosine weights. A cosine envelope takes every message to zero at the
  cutoff, messages are divided by √``avg_neighbors``, and linear layers start variance preserving
  (:func:`~crystalspace.mlff.models.spherical.reset_linears`).

Design and default sizes follow fairchem's MIT implementation (``models/scn``); built on e3nn's
Wigner-D matrices.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import MAX_Z, ForceField, GraphInput, cosine_cutoff, scatter_sum
from crystalspace.mlff.models.spherical import (
    ComplexLinear,
    EdgeEmbedding,
    EdgeFrame,
    ScalarHead,
    SphericalMLP,
    VectorHead,
    check_orders,
    edge_gate,
    hparam,
    merge_orders,
    num_gaussians,
    reset_linears,
    spherical_edge_work,
    split_orders,
)

SWITCH_HALF_WIDTH = 0.5
"""Half the width (Å) of the distance window over which the fine and coarse message blocks blend."""


class _Resolution(NamedTuple):
    lmax: int
    mmax: int
    hidden: int


class _Edges(NamedTuple):
    """The edges one message block sees: their indices, edge-frame rotations and weights."""

    ids: Tensor
    frame: Tensor
    weight: Tensor


class _Message(nn.Module):
    """SCN's per-edge MLP on the reduced edge-frame coefficients of both atoms, made to commute with
    rotations about the edge (see the module docstring)."""

    def __init__(self, channels: int, basis: int, res: _Resolution) -> None:
        super().__init__()
        self.lmax, self.mmax = res.lmax, res.mmax
        sizes = [(res.lmax - m + 1) * channels for m in range(1, res.mmax + 1)]
        self.dist = nn.Linear(basis, res.hidden)
        self.proj0 = nn.Linear(2 * (res.lmax + 1) * channels, res.hidden)
        self.proj = nn.ModuleList(ComplexLinear(2 * n, res.hidden) for n in sizes)
        self.hidden = nn.Linear(res.hidden, res.hidden)
        self.out0 = nn.Linear(res.hidden, (res.lmax + 1) * channels)
        self.out = nn.ModuleList(ComplexLinear(res.hidden, n) for n in sizes)

    def forward(self, source: Tensor, target: Tensor, edge: Tensor) -> Tensor:
        (s0, s_parts), (t0, t_parts) = (split_orders(v, self.lmax, self.mmax) for v in (source, target))
        e, c = s0.shape[0], s0.shape[-1]
        pairs = [
            proj(torch.cat([s, t], dim=2).flatten(2))
            for proj, s, t in zip(self.proj, s_parts, t_parts, strict=True)
        ]
        pre = self.proj0(torch.cat([s0, t0], dim=1).flatten(1))
        for z in pairs:
            pre = pre + z.square().sum(dim=1)
        radial = nn.functional.silu(self.dist(edge))
        mid = self.hidden(nn.functional.silu(pre) * radial)
        gate = (torch.sigmoid(pre) * radial * torch.sigmoid(mid)).unsqueeze(1)
        out0 = self.out0(nn.functional.silu(mid)).reshape(e, self.lmax + 1, c)
        outs = [
            out(z * gate).reshape(e, 2, self.lmax - m + 1, c)
            for m, (out, z) in enumerate(zip(self.out, pairs, strict=True), start=1)
        ]
        return edge_gate(merge_orders(out0, outs), self.lmax, self.mmax)


class _Interaction(nn.Module):
    def __init__(self, channels: int, resolutions: list[_Resolution], cutoff: float, gaussians: int) -> None:
        super().__init__()
        self.edge = EdgeEmbedding(cutoff, gaussians, channels)
        self.messages = nn.ModuleList(_Message(channels, channels, res) for res in resolutions)
        self.update = SphericalMLP([2 * channels, 2 * channels, 2 * channels, channels], bias=True)

    def forward(self, x: Tensor, g: GraphInput, groups: list[_Edges], norm: float) -> Tensor:
        src, tgt = g.edge_index
        edge = self.edge(g.dist, g.z[src], g.z[tgt])
        agg = torch.zeros_like(x)
        for message, (ids, frame, weight) in zip(self.messages, groups, strict=True):
            s, t, n = src[ids], tgt[ids], frame.shape[-1]
            msg = frame.transpose(1, 2) @ message(frame @ x[s, :n], frame @ x[t, :n], edge[ids])
            msg = nn.functional.pad(msg * weight[:, None, None], (0, 0, 0, x.shape[1] - n))
            agg = agg.index_add(0, t, msg)
        return self.update(torch.cat([x, agg / norm], dim=-1))


class SCN(ForceField):
    """SCN with direct forces: ``hidden`` spherical channels up to ``lmax``, per-edge MLPs on the
    orders |m| ≤ ``mmax`` in the edge frame, ``layers`` interaction blocks (fairchem's default 8)
    and one or two message resolutions."""

    arch = "scn"
    conservative = False
    symmetry = "SO(3)-equivariant"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 8, "lmax": 6, "mmax": 1}
    study_params = 20.44e6

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 8,
        lmax: int = 2,
        mmax: int = 1,
        resolutions: int = 2,
        near_cutoff: float = 4.0,
        distance_resolution: float = 0.02,
        avg_neighbors: float = 30.0,
    ) -> None:
        self.check_hparams(
            {"lmax": lmax, "mmax": mmax, "resolutions": resolutions, "near_cutoff": near_cutoff}
        )
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            lmax=lmax,
            mmax=mmax,
            resolutions=resolutions,
            near_cutoff=near_cutoff,
            distance_resolution=distance_resolution,
            avg_neighbors=avg_neighbors,
        )
        self.lmax, self.near_cutoff, self.norm = lmax, near_cutoff, avg_neighbors**0.5
        levels = [_Resolution(lmax, mmax, 2 * hidden)]
        if resolutions == 2:
            coarse = min(lmax, max(4, lmax - 2))
            levels.append(_Resolution(coarse, min(mmax, coarse), max(1, hidden // 2)))
        self.frames = nn.ModuleList(EdgeFrame(res.lmax, res.mmax) for res in levels)
        gaussians = num_gaussians(cutoff, distance_resolution)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.blocks = nn.ModuleList(_Interaction(hidden, levels, cutoff, gaussians) for _ in range(layers))
        self.energy = ScalarHead([hidden, hidden, hidden], bias_out=True)
        self.force = VectorHead([hidden, hidden, hidden])
        reset_linears(self)

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        check_orders(cls, hparams)
        resolutions, near = hparam(cls, hparams, "resolutions"), hparam(cls, hparams, "near_cutoff")
        if resolutions not in (1, 2):
            raise ValueError(f"resolutions must be 1 or 2, got {resolutions}")
        if float(near) <= SWITCH_HALF_WIDTH:
            raise ValueError(f"near_cutoff must exceed {SWITCH_HALF_WIDTH} Å, got {near}")

    def _edge_groups(self, g: GraphInput) -> list[_Edges]:
        """Edges of each resolution with their frames and weights (envelope × resolution switch)."""
        d = g.dist
        envelope = cosine_cutoff(d, self.cutoff)
        if len(self.frames) == 1:
            return [_Edges(torch.arange(d.shape[0], device=d.device), self.frames[0](g.vec), envelope)]
        lo, hi = self.near_cutoff - SWITCH_HALF_WIDTH, self.near_cutoff + SWITCH_HALF_WIDTH
        t = ((d - lo) / (hi - lo)).clamp(0.0, 1.0)
        near = 0.5 * (torch.cos(math.pi * t) + 1.0)
        groups = []
        for frame, weight, mask in ((self.frames[0], near, d < hi), (self.frames[1], 1.0 - near, d > lo)):
            ids = mask.nonzero().squeeze(-1)
            groups.append(_Edges(ids, frame(g.vec[ids]), (weight * envelope)[ids]))
        return groups

    def edge_work(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Per-edge work: spherical-channel tensors per layer (see :func:`spherical_edge_work`)."""
        hp = self.hparams
        return spherical_edge_work(edge_index, hp["layers"], hp["lmax"], hp["hidden"])

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        groups = self._edge_groups(g)
        emb = self.embed(g.z)
        x = torch.cat(
            [emb.unsqueeze(1), emb.new_zeros(emb.shape[0], (self.lmax + 1) ** 2 - 1, emb.shape[1])], 1
        )
        for i, block in enumerate(self.blocks):
            update = block(x, g, groups, self.norm)
            x = update if i == 0 else x + update
        return scatter_sum(self.energy(x), g.batch, g.num_graphs), self.force(x)
