"""Directional message passing on periodic graphs: k → j → i triplets and the DimeNet family's body.

torch-geometric's ``DimeNet`` and ``DimeNetPlusPlus`` need ``torch_sparse`` for their triplets and a
non-periodic radius graph. :class:`TripletForceField` keeps their radial/spherical bases, embedding,
interaction and output blocks (both models share that forward pass) and builds the triplets with
argsort/bincount/repeat_interleave (:func:`periodic_triplets`). Under periodic boundaries k may
equal i as a *different image*; only the exact reverse image of j → i is dropped.

Memory grows with the number of triplets (≈ edges × neighbours: about 10⁵ per 50-atom LGPS cell at
6 Å, a few KB each with autograd). :meth:`TripletForceField.edge_work` reports them so that
:meth:`crystalspace.mlff.potential.Potential.batched` evaluates large replica batches in chunks
of at most ``Potential.max_work`` triplets (exact: replicas are independent).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from crystalspace.mlff.models.base import ForceField, GraphInput, scatter_sum

if TYPE_CHECKING:
    from torch_geometric.nn.models import DimeNet as PygDimeNet


def periodic_triplets(edge_index: Tensor, shift: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Edge pairs (k → j, j → i) sharing atom j, without the reverse image of j → i.

    Returns ``idx_kj`` and ``idx_ji`` (T,), indices into the edge list.
    """
    src, tgt = edge_index
    order = torch.argsort(tgt, stable=True)
    deg = torch.bincount(tgt, minlength=num_nodes)
    start = torch.cumsum(deg, 0) - deg
    counts = deg[src]  # for edge j→i: edges arriving at j
    idx_ji = torch.repeat_interleave(torch.arange(src.numel(), device=src.device), counts)
    offset = torch.arange(idx_ji.numel(), device=src.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    idx_kj = order[start[src[idx_ji]] + offset]
    reverse = (src[idx_kj] == tgt[idx_ji]) & (shift[idx_kj] == -shift[idx_ji]).all(dim=-1)
    return idx_kj[~reverse], idx_ji[~reverse]


def share_symbolic_bases() -> None:
    """Derive torch-geometric's symbolic DimeNet bases once per process.

    Every ``SphericalBasisLayer`` derives the spherical Bessel functions and their zeros with sympy
    (tens of seconds on a loaded CPU), though they depend only on (num_spherical, num_radial): the
    two pure functions it calls are memoised, so DimeNet and DimeNet++ models share one derivation.
    """
    from torch_geometric.nn.models import dimenet_utils

    for name in ("bessel_basis", "real_sph_harm"):
        fn = getattr(dimenet_utils, name)
        if not hasattr(fn, "cache_info"):
            setattr(dimenet_utils, name, cache(fn))


class TripletForceField(ForceField):
    """An energy model running a torch-geometric DimeNet-family network ``net`` on periodic triplets.

    Subclasses build ``self.net`` (``torch_geometric.nn.models.DimeNet`` or ``DimeNetPlusPlus``)
    after ``super().__init__``.
    """

    net: PygDimeNet

    def __init__(self, cutoff: float, **hparams: Any) -> None:
        super().__init__(cutoff, **hparams)
        share_symbolic_bases()

    def edge_work(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Triplets of each edge j → i (edges arriving at j), which dominate the memory."""
        deg = torch.bincount(edge_index[1], minlength=num_nodes)
        return deg[edge_index[0]].to(torch.float32) + 1.0

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        assert g.shift is not None, f"{self.arch} needs edge shifts"
        net, n = self.net, g.z.numel()
        i = g.edge_index[1]
        idx_kj, idx_ji = periodic_triplets(g.edge_index, g.shift, n)
        dist = g.dist
        v_ji, v_kj = g.vec[idx_ji], g.vec[idx_kj]
        angle = torch.atan2(torch.cross(v_ji, v_kj, dim=-1).norm(dim=-1), (v_ji * v_kj).sum(-1))
        rbf = net.rbf(dist)
        sbf = net.sbf(dist, angle, idx_kj)
        x = net.emb(g.z, rbf, i, g.edge_index[0])
        p = net.output_blocks[0](x, rbf, i, num_nodes=n)
        for block, out in zip(net.interaction_blocks, net.output_blocks[1:], strict=True):
            x = block(x, rbf, sbf, idx_kj, idx_ji)
            p = p + out(x, rbf, i, num_nodes=n)
        return scatter_sum(p.reshape(n), g.batch, g.num_graphs), None
