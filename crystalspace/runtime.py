"""Ray start-up (embedded local cluster by default, or join one) and progress reporting."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SHARED_DATA_ENV = "CRYSTALSPACE_DATA"


def shared_data(*parts: str) -> str:
    """Path of a large input under the shared data folder: ``$CRYSTALSPACE_DATA`` or ``../shared/data``."""
    return str(Path(os.environ.get(SHARED_DATA_ENV, "../shared/data")).joinpath(*parts))


def check_ray_target(address: str | None = None, num_cpus: int | None = None) -> None:
    """Refuse in seconds, with one line, a CPU count below 1 or a cluster address (``host:port``,
    ``ray://host:port``; default ``$RAY_ADDRESS``) where nothing answers, before anything starts."""
    import socket

    from crystalspace.errors import UserError

    if num_cpus is not None and num_cpus < 1:
        raise UserError(f"--num-cpus must be at least 1, got {num_cpus}")
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r}: expected host:port, ray://host:port, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {address}: {exc.strerror or exc}") from None


ADDRESS_TIMEOUT_S = 5.0


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True) -> None:
    """Start an embedded Ray (or join ``address`` / ``$RAY_ADDRESS``) unless already running."""
    import ray

    if ray.is_initialized():
        return
    check_ray_target(address, num_cpus)
    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not quiet}
    if quiet:
        kwargs["logging_level"] = logging.ERROR
        logging.getLogger("ray").setLevel(logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local-only cluster
    # "local" always starts a fresh embedded cluster, never another user's `ray start` head.
    ray.init(address="local", num_cpus=num_cpus, **kwargs)


def quiet_ray_data() -> None:
    """Turn off Ray Data's own progress bars; crystalspace prints its own."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_progress = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-dataset "execution finished" lines


class Progress:
    """A progress bar (rich) on a terminal; periodic log lines otherwise (CI, files)."""

    def __init__(self, total: int, label: str, unit: str = "rows", step: str = "shards") -> None:
        """``total`` steps (``step`` names them: shards, epochs...), each covering some ``unit`` items."""
        self.total, self.label, self.unit, self.step = total, label, unit, step
        self.done = 0
        self.amount = 0
        self.start = time.perf_counter()
        self._last_log = 0.0
        self._bar: Any = None
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as Bar,
            )

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(f"{step}  {{task.fields[rate]}}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="")

    @property
    def rate(self) -> float:
        return self.amount / max(time.perf_counter() - self.start, 1e-9)

    def advance(self, amount: int) -> None:
        """One more unit of work done, covering ``amount`` items (rows)."""
        self.done += 1
        self.amount += amount
        r = self.rate
        number = f"{r:,.0f}" if r >= 10 else f"{r:.2g}"
        rate = f"{number} {self.unit}/s"
        if self._bar is not None:
            self._bar.update(self._task, advance=1, rate=rate)
        elif time.perf_counter() - self._last_log > 10 or self.done == self.total:
            self._last_log = time.perf_counter()
            print(f"{self.label}: {self.done}/{self.total} {self.step}, {rate}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def progress(total: int, label: str, unit: str = "rows", step: str = "shards") -> Iterator[Progress]:
    """A :class:`Progress` closed on exit."""
    bar = Progress(total, label, unit, step)
    try:
        yield bar
    finally:
        bar.close()


def actors_that_fit(wanted: int) -> int:
    """How many one-CPU actors to start: ``wanted``, capped by the CPUs Ray has free now (at least 1).
    ``ActorPool.map`` hands items to every actor in turn and yields in order, so an actor that can
    never be scheduled (its CPU held by another pool) would stall it for ever."""
    import ray

    return max(1, min(wanted, int(ray.available_resources().get("CPU", 0))))


def map_actors(
    actors: list[Any],
    submit: Callable[[Any, Any], Any],
    items: Sequence[Any],
    label: str,
    unit: str,
    step: str,
) -> Iterator[Any]:
    """``ActorPool.map`` (results in order, each item to whichever actor is free) with progress
    over the items when there are more of them than actors; ``len(result)`` counts its ``unit``s,
    or 1 when the result has no length."""
    from ray.util import ActorPool

    results = ActorPool(actors).map(submit, list(items))
    if len(items) <= len(actors):
        yield from results
        return
    with progress(len(items), label, unit, step) as bar:
        for result in results:
            bar.advance(len(result) if isinstance(result, list) else 1)
            yield result


def as_completed(
    futures: dict[Any, Any], label: str, unit: str, amount: Callable[[Any, Any], int], step: str = "tasks"
) -> Iterator[tuple[Any, Any]]:
    """``(key, result)`` of Ray ``futures`` (ref → key) as each finishes, with progress advanced by
    ``amount(key, result)`` ``unit``s."""
    import ray

    pending = list(futures)
    with progress(len(pending), label, unit, step) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            key, result = futures[done[0]], ray.get(done[0])
            bar.advance(amount(key, result))
            yield key, result
