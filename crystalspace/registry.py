"""Saved-model registry: one directory per model, ``<arch>-<dataset>-<version>/``.

Each entry holds ``config.json`` (what builds the model: ``arch``, ``hparams``, anything else the
owner needs), ``model.pt`` (the state dict), ``metrics.json`` and ``card.md`` (a human-readable
model card). Entries are written to a temporary directory and renamed into place, so a crash never
leaves a half-written entry. Pipelines (MD, CSP, generation) load entries, never raw training
checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crystalspace.errors import UserError

FILES = ("config.json", "model.pt", "metrics.json", "card.md")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+]*$")


class RegistryError(UserError, ValueError):
    """A registry entry that is missing, incomplete or would be overwritten."""


@dataclass(frozen=True)
class Entry:
    """One saved model: its directory, config and metrics (weights load on demand)."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    def state_dict(self, map_location: str = "cpu") -> dict[str, Any]:
        """The saved weights."""
        import torch

        return torch.load(self.path / "model.pt", map_location=map_location, weights_only=True)

    def card(self) -> str:
        return (self.path / "card.md").read_text()


def entry_name(arch: str, dataset: str, version: str) -> str:
    """``<arch>-<dataset>-<version>`` (lower case)."""
    parts = [str(p).lower() for p in (arch, dataset, version)]
    for p in parts:
        if not _NAME.match(p):
            raise RegistryError(f"registry name part {p!r} must be lower-case letters, digits, '_', '.', '+'")
    return "-".join(parts)


def next_version(root: str | os.PathLike[str], arch: str, dataset: str) -> str:
    """The first unused ``v<k>`` for ``arch``/``dataset`` under ``root``."""
    root = Path(root)
    k = 1
    while (root / entry_name(arch, dataset, f"v{k}")).exists():
        k += 1
    return f"v{k}"


def save_entry(
    root: str | os.PathLike[str],
    arch: str,
    dataset: str,
    state_dict: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any],
    card: str,
    version: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an entry atomically and return its directory.

    Raises :class:`RegistryError` if the entry exists (unless ``overwrite``) or metrics are not JSON.
    """
    import torch

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    version = version or next_version(root, arch, dataset)
    final = root / entry_name(arch, dataset, version)
    if final.exists() and not overwrite:
        raise RegistryError(f"{final}: registry entry exists (pass a new version or overwrite)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        config = {"arch": arch, "dataset": dataset, "version": version, **config}
        try:
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{final.name}: config/metrics are not JSON-serialisable ({exc})") from None
        torch.save(state_dict, tmp / "model.pt")
        (tmp / "card.md").write_text(card)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_entry(path_or_name: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Entry:
    """An entry by directory path, or by name under ``root`` (default ``$CRYSTALSPACE_REGISTRY``)."""
    path = Path(path_or_name)
    if not path.is_dir():
        base = root or os.environ.get("CRYSTALSPACE_REGISTRY")
        if base is not None and (Path(base) / str(path_or_name)).is_dir():
            path = Path(base) / str(path_or_name)
        else:
            where = f" (looked in {base})" if base else ""
            raise RegistryError(f"{path_or_name}: no such registry entry{where}")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise RegistryError(f"{path}: incomplete registry entry (missing {', '.join(missing)})")
    try:
        config = json.loads((path / "config.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: corrupt registry entry ({exc})") from None
    return Entry(path=path, config=config, metrics=metrics)


def list_entries(root: str | os.PathLike[str]) -> list[Entry]:
    """All complete entries under ``root``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith(".") and all((p / f).is_file() for f in FILES):
            out.append(load_entry(p))
    return out
