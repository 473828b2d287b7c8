"""Saved-model registry: one directory per model, ``<arch>-<dataset>-<version>/``.

Each entry holds ``config.json`` (what builds the model: ``arch``, ``hparams``, anything else the
owner needs), ``model.pt`` (the state dict), ``metrics.json`` and ``card.md`` (a human-readable
model card). Entries are written to a temporary directory and renamed into place, so a crash never
leaves a half-written entry. Pipelines (MD, CSP, generation) load entries, never raw training
checkpoints.

A registry root may also be an object-store URI (``s3://bucket/registry``, ``gs://…``, anything
``pyarrow.fs`` opens): an entry is then built locally, uploaded file by file with ``config.json``
last (an entry without it is incomplete, so readers never see half an entry), and read back
into a local cache directory (``$CRYSTALSPACE_CACHE`` or the system temp dir) when loaded.
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
from crystalspace.storage import is_remote, join_uri, redact, resolve

FILES = ("config.json", "model.pt", "metrics.json", "card.md")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+]*$")


class RegistryError(UserError, ValueError):
    """A registry entry that is missing, incomplete or would be overwritten."""


class UnsafeFileError(UserError, ValueError):
    """A tensor file that ``torch.load(weights_only=True)`` refuses (it is never loaded otherwise)."""


def load_tensors(path: str | os.PathLike[str], map_location: Any = "cpu", remedy: str = "") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, plain containers, numbers and strings only.

    A file that needs anything else (a Python object from an older save, or a crafted file that
    would run code when unpacked) is refused with one :class:`UnsafeFileError` line, ending in
    ``remedy`` when given. Every weights or checkpoint file in crystalspace is read through here.
    """
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # torch's refusal (an unpickling error) or a corrupt file
        text = str(exc).strip()
        m = re.search(r"GLOBAL ([\w.]+)", text)
        why = f"it holds the Python object {m[1]}" if m else (text.splitlines() or [type(exc).__name__])[0]
        tail = f"; {remedy}" if remedy else ""
        raise UnsafeFileError(
            f"{path} cannot be read with torch.load(weights_only=True): {why}{tail}"
        ) from None


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
        state: dict[str, Any] = load_tensors(self.path / "model.pt", map_location)
        return state

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
    """The first unused ``v<k>`` for ``arch``/``dataset`` under ``root`` (a path or URI)."""
    k = 1
    while _exists(root, entry_name(arch, dataset, f"v{k}")):
        k += 1
    return f"v{k}"


def _is_uri(root: str | os.PathLike[str] | None) -> bool:
    return isinstance(root, str) and is_remote(root)


def _exists(root: str | os.PathLike[str], name: str) -> bool:
    if not _is_uri(root):
        return (Path(root) / name).exists()
    import pyarrow.fs as pafs

    fs, base = resolve(str(root))
    return bool(fs.get_file_info(f"{base}/{name}").type != pafs.FileType.NotFound)


def _cache_dir(uri: str) -> Path:
    import hashlib

    base = os.environ.get("CRYSTALSPACE_CACHE") or tempfile.gettempdir()
    return Path(base) / "crystalspace-registry" / hashlib.sha256(redact(uri).encode()).hexdigest()[:16]


def _upload(local: Path, root: str) -> None:
    """Copy a finished local entry to ``root/<name>/``, ``config.json`` last."""
    import pyarrow.fs as pafs

    fs, base = resolve(root)
    dest = f"{base}/{local.name}"
    fs.create_dir(dest, recursive=True)
    for name in [f for f in FILES if f != "config.json"] + ["config.json"]:
        pafs.copy_files(
            str(local / name),
            f"{dest}/{name}",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=fs,
        )


def _download(uri: str) -> Path:
    """Fetch the entry at ``uri`` into the local cache and return the local directory."""
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    local = _cache_dir(uri) / path.rsplit("/", 1)[-1]
    tmp = Path(tempfile.mkdtemp(prefix=f".{local.name}.tmp-", dir=_mkdir(local.parent)))
    try:
        for name in FILES:
            try:
                pafs.copy_files(
                    f"{path}/{name}",
                    str(tmp / name),
                    source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem(),
                )
            except FileNotFoundError:
                raise RegistryError(
                    f"{redact(uri)}: incomplete or missing registry entry (no {name})"
                ) from None
            except OSError as exc:
                raise RegistryError(f"{redact(uri)}: cannot read registry entry ({exc})") from None
        shutil.rmtree(local, ignore_errors=True)
        tmp.rename(local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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

    ``root`` may be an object-store URI; the returned path is then the entry's local copy.

    Raises :class:`RegistryError` if the entry exists (unless ``overwrite``) or metrics are not JSON.
    """
    import torch

    if _is_uri(root):
        uri = str(root)
        version = version or next_version(uri, arch, dataset)
        if _exists(uri, f"{entry_name(arch, dataset, version)}/config.json") and not overwrite:
            raise RegistryError(f"{entry_name(arch, dataset, version)}: registry entry exists in {uri}")
        local = save_entry(
            _cache_dir(uri), arch, dataset, state_dict, config, metrics, card, version, overwrite=True
        )
        _upload(local, uri)
        return local
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
    """An entry by directory path or URI, or by name under ``root`` (default ``$CRYSTALSPACE_REGISTRY``).

    Entries in an object store (``s3://…/<name>``, or a name under a URI ``root``) are fetched into
    the local cache first.
    """
    base = root or os.environ.get("CRYSTALSPACE_REGISTRY")
    if _is_uri(path_or_name):
        path_or_name = _download(str(path_or_name))
    elif _is_uri(base) and not Path(path_or_name).is_dir():
        path_or_name = _download(join_uri(str(base), str(path_or_name)))
    path = Path(path_or_name)
    if not path.is_dir():
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
