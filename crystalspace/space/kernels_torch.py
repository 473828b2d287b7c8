"""SMACT filter count on torch (GPU, or CPU for testing): same rule and tables as the numba kernel.

A batch of element tuples (a contiguous rank range) is processed in three vectorised steps:

1. **Unrank** the tuples on the device with cumulative binomial tables and ``searchsorted``.
2. **Enumerate assignments** (one oxidation state per element) level by level, as ragged rows
   ``(tuple, partial charge index, max cation EN rank, min anion EN rank)``. After each level a
   row is dropped as soon as it can no longer pass: the Pauling order is already broken, or it
   has cations but no later element can supply an anion more electronegative than all of them
   (and symmetrically for anions). Neutrality needs both signs (or all-zero charges), so these
   cuts are exact; they keep the rows far below the full product of state lists (up to 10^4 per
   quaternary). Rows whose final charge tuple admits no neutral vector are dropped too.
3. **OR-reduce** the neutral-vector bitmasks (int64 view of the uint64 words) of the surviving
   assignments per tuple. Tuples are bucketed by their number of assignments ``m`` into widths
   ``w = 2^ceil(log2 m)``; each bucket is gathered as a dense ``[tuples, w, words]`` block
   (padding points at an all-zero mask row) and folded in halves with ``bitwise_or``. The
   allowed count of a tuple is the popcount of its union.

Electronegativities are replaced by their integer ranks (ties kept), so comparisons are exact.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from crystalspace.space.kernels import FilterTables

log = logging.getLogger(__name__)

BATCH_TUPLES = 1 << 19  # element tuples per batch on CUDA (quaternary: 9 batches, ~6 GB peak)
BATCH_TUPLES_CPU = 1 << 16  # on the CPU: keeps host memory near 1 GB
GATHER_ROWS = 1 << 22  # mask rows gathered at once in the OR-reduction (x words x 8 bytes)

_M1 = 0x5555555555555555
_M2 = 0x3333333333333333
_M4 = 0x0F0F0F0F0F0F0F0F


@dataclass(frozen=True)
class _DeviceTables:
    """:class:`FilterTables` moved to one device, in the shapes the torch kernel wants."""

    n: int
    k: int
    qmin: int
    radix: int
    cum: torch.Tensor  # int64 [k, n+1]: cum[i, x] = sum_{y<x} C(n-y-1, k-i-1)
    states: torch.Tensor  # int64 [N, S]
    n_states: torch.Tensor  # int64 [N]
    valid: torch.Tensor  # bool [N]: has states and a Pauling value
    en: torch.Tensor  # int64 [N]: electronegativity rank (ties equal)
    en_anion: torch.Tensor  # int64 [N]: en if the element has a negative state else -1
    en_cation: torch.Tensor  # int64 [N]: en if the element has a positive state else BIG
    nonempty: torch.Tensor  # bool [R**k]
    masks: torch.Tensor  # int64 [R**k + 1, W]; last row all zero (padding)


_BIG = 1 << 30
_CACHE: dict[tuple[int, str], tuple[FilterTables, _DeviceTables]] = {}


def _device_tables(tables: FilterTables, device: torch.device) -> _DeviceTables:
    key = (id(tables), str(device))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is tables:
        return hit[1]
    n, k = len(tables.pool), tables.arity
    cum = np.zeros((k, n + 1), dtype=np.int64)
    for i in range(k):
        cum[i, 1:] = np.cumsum([math.comb(n - y - 1, k - i - 1) for y in range(n)])
    pauling = tables.pauling
    valid = (tables.n_states > 0) & ~np.isnan(pauling)
    levels = np.unique(pauling[valid])
    en = np.where(valid, np.searchsorted(levels, np.nan_to_num(pauling)), 0).astype(np.int64)
    width = tables.states.shape[1]
    filled = np.arange(width)[None, :] < tables.n_states[:, None]
    has_neg = ((tables.states < 0) & filled).any(axis=1)
    has_pos = ((tables.states > 0) & filled).any(axis=1)
    masks = np.concatenate([tables.masks, np.zeros((1, tables.masks.shape[1]), np.uint64)])

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    dev = _DeviceTables(
        n=n,
        k=k,
        qmin=tables.qmin,
        radix=tables.radix,
        cum=put(cum),
        states=put(tables.states.astype(np.int64)),
        n_states=put(tables.n_states.astype(np.int64)),
        valid=put(valid),
        en=put(en),
        en_anion=put(np.where(has_neg, en, -1)),
        en_cation=put(np.where(has_pos, en, _BIG)),
        nonempty=put(tables.nonempty),
        masks=put(masks.view(np.int64)),
    )
    if len(_CACHE) >= 8:
        _CACHE.clear()
    _CACHE[key] = (tables, dev)
    return dev


def _unrank(dt: _DeviceTables, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Pool indices ``int64 [stop-start, k]`` of the tuples with ranks ``[start, stop)``."""
    rest = torch.arange(start, stop, dtype=torch.int64, device=device)
    nxt = torch.zeros_like(rest)  # smallest pool index allowed at the current position
    out = torch.empty((stop - start, dt.k), dtype=torch.int64, device=device)
    for i in range(dt.k):
        target = rest + dt.cum[i][nxt]
        x = torch.searchsorted(dt.cum[i], target, right=True) - 1
        rest = target - dt.cum[i][x]
        out[:, i] = x
        nxt = x + 1
    return out


def _popcount(x: torch.Tensor) -> torch.Tensor:
    """Set bits per row of ``int64 [T, W]`` -> ``int64 [T]``."""
    x = x - ((x >> 1) & _M1)
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4  # every byte now holds its own bit count
    return x.view(torch.uint8).sum(dim=1, dtype=torch.int64)


def _assignments(dt: _DeviceTables, combos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Surviving assignments of ``combos [T, k]``: tuple index and charge-tuple index, both
    ``int64 [P]`` and sorted by tuple index."""
    device = combos.device
    tid = torch.nonzero(dt.valid[combos].all(dim=1)).squeeze(1)
    code = torch.zeros_like(tid)
    top = torch.full_like(tid, -1)  # max EN rank over cations so far
    low = torch.full_like(tid, _BIG)  # min EN rank over anions so far
    # best anion / cation still to come after position i: suffix max / min over later elements
    an_after = torch.full_like(combos, -1)
    cat_after = torch.full_like(combos, _BIG)
    for i in range(dt.k - 2, -1, -1):
        an_after[:, i] = torch.maximum(an_after[:, i + 1], dt.en_anion[combos[:, i + 1]])
        cat_after[:, i] = torch.minimum(cat_after[:, i + 1], dt.en_cation[combos[:, i + 1]])
    for i in range(dt.k):
        elem = combos[tid, i]
        count = dt.n_states[elem]
        offsets = torch.cumsum(count, 0) - count
        total = int(count.sum())
        row = torch.repeat_interleave(torch.arange(len(tid), device=device), count, output_size=total)
        slot = torch.arange(total, device=device) - offsets[row]
        tid, elem, code, top, low = tid[row], elem[row], code[row], top[row], low[row]
        q = dt.states[elem, slot]
        en = dt.en[elem]
        code = code * dt.radix + (q - dt.qmin)
        top = torch.where(q > 0, torch.maximum(top, en), top)
        low = torch.where(q < 0, torch.minimum(low, en), low)
        has_cat, has_an = top >= 0, low < _BIG
        keep = top < low
        keep &= ~(has_cat & ~has_an & (top >= an_after[tid, i]))
        keep &= ~(has_an & ~has_cat & (low <= cat_after[tid, i]))
        if i == dt.k - 1:
            keep &= dt.nonempty[code]
        sel = torch.nonzero(keep).squeeze(1)
        tid, code, top, low = tid[sel], code[sel], top[sel], low[sel]
    return tid, code


def _count_batch(dt: _DeviceTables, combos: torch.Tensor, gather_rows: int) -> torch.Tensor:
    """Allowed compositions per tuple of ``combos [T, k]`` -> ``int64 [T]``."""
    n_tuples = combos.shape[0]
    tid, code = _assignments(dt, combos)
    counts = torch.zeros(n_tuples, dtype=torch.int64, device=combos.device)
    if tid.numel() == 0:
        return counts
    per = torch.bincount(tid, minlength=n_tuples)
    slot = torch.arange(tid.numel(), device=tid.device) - (torch.cumsum(per, 0) - per)[tid]
    width_log = torch.ceil(torch.log2(per.clamp(min=1).double())).long()
    width_log[per == 0] = -1
    pad = dt.masks.shape[0] - 1
    words = dt.masks.shape[1]
    for j in torch.unique(width_log[per > 0]).tolist():
        w = 1 << j
        members = torch.nonzero(width_log == j).squeeze(1)
        where = torch.full((n_tuples,), -1, dtype=torch.int64, device=tid.device)
        where[members] = torch.arange(len(members), device=tid.device)
        rows = torch.nonzero(width_log[tid] == j).squeeze(1)
        index = torch.full((len(members) * w,), pad, dtype=torch.int64, device=tid.device)
        index[where[tid[rows]] * w + slot[rows]] = code[rows]
        step = max(1, gather_rows // w)
        for lo in range(0, len(members), step):
            hi = min(lo + step, len(members))
            block = dt.masks[index[lo * w : hi * w]].view(hi - lo, w, words)
            half = w
            while half > 1:
                half //= 2
                block = block[:, :half] | block[:, half : 2 * half]
            counts[members[lo:hi]] = _popcount(block[:, 0])
    return counts


def _resolve(device: str | torch.device | None) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def allowed_per_tuple_torch(
    tables: FilterTables,
    start: int = 0,
    stop: int | None = None,
    device: str | torch.device | None = None,
    batch_tuples: int | None = None,
    gather_rows: int = GATHER_ROWS,
) -> torch.Tensor:
    """Allowed compositions of every element tuple with rank in ``[start, stop)``.

    Returns ``int64 [stop - start]`` on ``device`` (default: CUDA when available, else CPU).
    ``batch_tuples`` (default :data:`BATCH_TUPLES` on CUDA, :data:`BATCH_TUPLES_CPU` on CPU)
    bounds memory; ``gather_rows`` bounds the mask rows gathered at once in the OR-reduction.
    """
    dev = _resolve(device)
    if batch_tuples is None:
        batch_tuples = BATCH_TUPLES if dev.type == "cuda" else BATCH_TUPLES_CPU
    dt = _device_tables(tables, dev)
    if stop is None:
        stop = int(tables.binom[dt.n, dt.k])
    out = torch.zeros(max(0, stop - start), dtype=torch.int64, device=dev)
    for lo in range(start, stop, batch_tuples):
        hi = min(lo + batch_tuples, stop)
        out[lo - start : hi - start] = _count_batch(dt, _unrank(dt, lo, hi, dev), gather_rows)
        log.debug("torch count: tuples %d..%d of %d..%d", lo, hi, start, stop)
    return out


def count_allowed_torch(
    tables: FilterTables,
    start: int = 0,
    stop: int | None = None,
    device: str | torch.device | None = None,
    batch_tuples: int | None = None,
) -> int:
    """Number of allowed compositions among element tuples ``[start, stop)`` (by rank).

    Same result as :func:`crystalspace.space.kernels.count_allowed`, computed with torch on
    ``device`` (default: CUDA when available, else CPU).
    """
    per = allowed_per_tuple_torch(tables, start, stop, device=device, batch_tuples=batch_tuples)
    return int(per.sum())
