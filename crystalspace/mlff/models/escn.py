"""eSCN (Passaro & Zitnick 2023, "Reducing SO(3) Convolutions to SO(2) for Efficient Equivariant GNNs").

Node features are ``hidden`` spherical channels: spherical-harmonic coefficients up to ``lmax``. Each
layer rotates the source and target embeddings of every edge into the edge's frame (the edge along
the polar axis; :class:`~crystalspace.mlff.models.spherical.EdgeFrame`), keeps the orders
|m| ≤ ``mmax`` and applies two SO(2) convolutions: per order m, a linear map across degrees and
channels (complex for m > 0) whose hidden units are modulated by an embedding of the distance and
both species. The sum passes an edge-frame non-linearity, is rotated back, and the messages are
summed onto the target atom and combined with its embedding by a point-wise MLP; every layer but
the first is residual.

Forces are direct, as in the study: its parameter counts (Table 1) are fairchem's eSCN with its
direct force block, fairchem's eSCN has no gradient-force path, and the study saw whole-cell drift in
eSCN dynamics. So the model is flagged ``conservative = False``. The energy is an MLP of the l = 0
channels and the forces the l = 1 coefficients weighted by an MLP of the l = 0 channels.

Exactly SO(3) equivariant, unlike the reference, which samples the sphere on a grid for its
non-linearities and output blocks: here the grid activations are gates by invariant coefficients
(:func:`~crystalspace.mlff.models.spherical.edge_gate`, :class:`SphericalMLP`) and the output blocks
read the l = 0 and l = 1 coefficients. A cosine envelope on every message makes the energy smooth
at the cutoff, messages are divided by √``avg_neighbors``, and linear layers start variance
preserving (:func:`~crystalspace.mlff.models.spherical.reset_linears`). Design and default sizes
follow fairchem's MIT implementation (``models/escn``); built on e3nn's Wigner-D matrices.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from crystalspace.mlff.models.base import MAX_Z, ForceField, GraphInput, cosine_cutoff, scatter_sum
from crystalspace.mlff.models.spherical import (
    EdgeEmbedding,
    EdgeFrame,
    ScalarHead,
    SphericalMLP,
    VectorHead,
    check_orders,
    edge_gate,
    merge_orders,
    num_gaussians,
    reset_linears,
    spherical_edge_work,
    split_orders,
)


class _SO2Convolution(nn.Module):
    """Per-order linear maps of reduced edge-frame coefficients with distance-modulated hidden units."""

    def __init__(self, channels: int, hidden: int, edge_channels: int, lmax: int, mmax: int) -> None:
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.dist0 = nn.Linear(edge_channels, hidden)
        self.down0 = nn.Linear((lmax + 1) * channels, hidden, bias=False)
        self.up0 = nn.Linear(hidden, (lmax + 1) * channels, bias=False)
        sizes = [(lmax - m + 1) * channels for m in range(1, mmax + 1)]
        self.dist = nn.ModuleList(nn.Linear(edge_channels, 2 * hidden) for _ in sizes)
        self.down_real = nn.ModuleList(nn.Linear(n, hidden, bias=False) for n in sizes)
        self.down_imag = nn.ModuleList(nn.Linear(n, hidden, bias=False) for n in sizes)
        self.up_real = nn.ModuleList(nn.Linear(hidden, n, bias=False) for n in sizes)
        self.up_imag = nn.ModuleList(nn.Linear(hidden, n, bias=False) for n in sizes)

    def forward(self, x: Tensor, edge: Tensor) -> Tensor:
        x0, parts = split_orders(x, self.lmax, self.mmax)
        e, c = x0.shape[0], x0.shape[-1]
        h0 = self.down0(x0.flatten(1)) * nn.functional.silu(self.dist0(edge))
        out0 = self.up0(h0).reshape(e, self.lmax + 1, c)
        outs = []
        for m, z in enumerate(parts):
            gate_r, gate_i = nn.functional.silu(self.dist[m](edge)).unsqueeze(1).chunk(2, dim=-1)
            flat = z.flatten(2)
            # the real- and imaginary-weight paths, each applied to both parts of z: a complex product
            zr = self.up_real[m](self.down_real[m](flat) * gate_r)
            zi = self.up_imag[m](self.down_imag[m](flat) * gate_i)
            out = torch.stack([zr[:, 0] - zi[:, 1], zr[:, 1] + zi[:, 0]], dim=1)
            outs.append(out.reshape(z.shape))
        return merge_orders(out0, outs)


class _Layer(nn.Module):
    def __init__(self, channels: int, lmax: int, mmax: int, cutoff: float, gaussians: int) -> None:
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.edge = EdgeEmbedding(cutoff, gaussians, channels)
        self.source = _SO2Convolution(channels, 2 * channels, channels, lmax, mmax)
        self.target = _SO2Convolution(channels, 2 * channels, channels, lmax, mmax)
        self.update = SphericalMLP([2 * channels, channels, channels, channels], bias=False)

    def forward(self, x: Tensor, g: GraphInput, frame: Tensor, envelope: Tensor, norm: float) -> Tensor:
        src, tgt = g.edge_index
        edge = self.edge(g.dist, g.z[src], g.z[tgt])
        msg = self.source(frame @ x[src], edge) + self.target(frame @ x[tgt], edge)
        msg = frame.transpose(1, 2) @ edge_gate(msg, self.lmax, self.mmax)
        agg = scatter_sum(msg * envelope[:, None, None], tgt, x.shape[0]) / norm
        return self.update(torch.cat([x, agg], dim=-1))


class ESCN(ForceField):
    """eSCN with direct forces: ``hidden`` spherical channels up to ``lmax``, SO(2) convolutions of
    the orders |m| ≤ ``mmax``, ``layers`` message-passing layers (fairchem's default is 8)."""

    arch = "escn"
    conservative = False
    symmetry = "SO(2)-equivariant"
    study_hparams: ClassVar[dict[str, Any]] = {"hidden": 128, "layers": 8, "lmax": 6, "mmax": 2}
    study_params = 34.28e6

    def __init__(
        self,
        cutoff: float = 6.0,
        hidden: int = 128,
        layers: int = 8,
        lmax: int = 2,
        mmax: int = 2,
        distance_resolution: float = 0.02,
        avg_neighbors: float = 30.0,
    ) -> None:
        check_orders(type(self), {"lmax": lmax, "mmax": mmax})
        super().__init__(
            cutoff,
            hidden=hidden,
            layers=layers,
            lmax=lmax,
            mmax=mmax,
            distance_resolution=distance_resolution,
            avg_neighbors=avg_neighbors,
        )
        self.lmax, self.mmax, self.norm = lmax, mmax, avg_neighbors**0.5
        gaussians = num_gaussians(cutoff, distance_resolution)
        self.embed = nn.Embedding(MAX_Z, hidden)
        self.frame = EdgeFrame(lmax, mmax)
        self.blocks = nn.ModuleList(_Layer(hidden, lmax, mmax, cutoff, gaussians) for _ in range(layers))
        self.energy = ScalarHead([hidden, hidden, hidden], bias_out=False)
        self.force = VectorHead([hidden, hidden, hidden])
        reset_linears(self)

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        check_orders(cls, hparams)

    def edge_work(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Per-edge work: spherical-channel tensors per layer (see :func:`spherical_edge_work`)."""
        hp = self.hparams
        return spherical_edge_work(edge_index, hp["layers"], hp["lmax"], hp["hidden"])

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        frame = self.frame(g.vec)
        envelope = cosine_cutoff(g.dist, self.cutoff)
        emb = self.embed(g.z)
        x = emb.new_zeros(emb.shape[0], (self.lmax + 1) ** 2, emb.shape[1])
        x = torch.cat([emb.unsqueeze(1), x[:, 1:]], dim=1)
        for i, block in enumerate(self.blocks):
            update = block(x, g, frame, envelope, self.norm)
            x = update if i == 0 else x + update
        return scatter_sum(self.energy(x), g.batch, g.num_graphs), self.force(x)
