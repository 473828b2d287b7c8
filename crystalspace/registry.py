"""Saved models: every trained model (force field, CSP distance network, generator) is one folder.

A folder holds ``config.json`` (what builds the model: ``arch``, ``dataset``, hyper-parameters,
anything else its owner needs, and ``artefacts``, the names of any extra files), ``model.pt`` (the
weights: tensors only, read with :func:`load_tensors`), ``metrics.json``, ``card.md`` (a short
model card: what, data, metrics, how trained) and the declared artefacts (the CSP lattice forests
``lattice.skops``, the generator's ``latents.npz``). Nothing in it is a pickle.

:func:`save_entry` names the folder ``<arch>-<dataset>-<version>/`` under a registry root;
:func:`write_entry` writes one at any path (``crystalspace csp train --model-dir``, the generator's
``model_dir``). Both write through :func:`crystalspace.storage.write_folder`: into a temporary
folder renamed into place, so a crash never leaves a half-written entry. Pipelines (MD, CSP,
generation) load entries, never raw training checkpoints.

A folder may also be an object-store URI (``s3://bucket/registry/<name>``, ``gs://…``, anything
``pyarrow.fs`` opens): its files are then uploaded one by one with ``config.json`` last (an entry
without it is incomplete, so readers never see half an entry), and read back into a local cache
directory (``$CRYSTALSPACE_CACHE`` or the system temp dir) when loaded.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from crystalspace.errors import UserError
from crystalspace.storage import atomic_path, is_remote, join_uri, redact, resolve, write_folder

FILES = ("config.json", "model.pt", "metrics.json", "card.md")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+]*$")
_ARTEFACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class RegistryError(UserError, ValueError):
    """A registry entry that is missing, incomplete or would be overwritten."""


class UnsafeFileError(UserError, ValueError):
    """A tensor file that ``torch.load(weights_only=True)`` refuses (it is never loaded otherwise)."""


def save_tensors(obj: Any, f: str | os.PathLike[str] | IO[bytes]) -> None:
    """``torch.save``: the one place crystalspace writes tensors (model weights and checkpoints).

    ``obj`` must hold only tensors and plain values (dicts, lists, numbers, strings), as it is read
    back with :func:`load_tensors`.
    """
    import torch

    torch.save(obj, f)


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
        raise UnsafeFileError(
            f"{path} cannot be read with torch.load(weights_only=True): {why}{_tail(remedy)}"
        ) from None


def _tail(remedy: str) -> str:
    return f"; {remedy}" if remedy else ""


@dataclass(frozen=True)
class Entry:
    """One saved model: its directory, config and metrics (weights and artefacts load on demand).

    ``remedy`` ends the error line of a file that cannot be read (how to get a new model).
    """

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    remedy: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    def state_dict(self, map_location: Any = "cpu") -> dict[str, Any]:
        """The saved weights."""
        state: dict[str, Any] = load_tensors(self.path / "model.pt", map_location, self.remedy)
        return state

    def artefact(self, name: str) -> Path:
        """The path of an extra file the entry declares in ``config.json`` (``artefacts``)."""
        if name not in self.config.get("artefacts", []):
            raise RegistryError(f"{self.path}: the entry has no {name}{_tail(self.remedy)}")
        return self.path / name

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

    fs, base = resolve(join_uri(str(root), name))
    return bool(fs.get_file_info(base).type != pafs.FileType.NotFound)


def _cache_dir(uri: str) -> Path:
    import hashlib

    base = os.environ.get("CRYSTALSPACE_CACHE") or tempfile.gettempdir()
    return Path(base) / "crystalspace-registry" / hashlib.sha256(redact(uri).encode()).hexdigest()[:16]


def _local_copy(uri: str) -> Path:
    """Where the entry at ``uri`` lives in the local cache."""
    return _cache_dir(uri) / redact(uri).rstrip("/").rsplit("/", 1)[-1]


def _download(uri: str) -> Path:
    """Fetch the entry at ``uri`` (``config.json`` first, then the files it lists) into the cache."""
    fs, path = resolve(uri)
    local = _local_copy(uri)
    with atomic_path(local) as tmp:
        tmp.mkdir()
        _fetch(fs, path, tmp, "config.json", uri)
        for name in [*FILES[1:], *_read_json(tmp / "config.json", tmp).get("artefacts", [])]:
            _fetch(fs, path, tmp, name, uri)
    return local


def _fetch(fs: Any, path: str, local: Path, name: str, uri: str) -> None:
    import pyarrow.fs as pafs

    try:
        pafs.copy_files(
            f"{path}/{name}",
            str(local / name),
            source_filesystem=fs,
            destination_filesystem=pafs.LocalFileSystem(),
        )
    except FileNotFoundError:
        raise RegistryError(f"{redact(uri)}: incomplete or missing registry entry (no {name})") from None
    except OSError as exc:
        raise RegistryError(f"{redact(uri)}: cannot read registry entry ({exc})") from None


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
    artefacts: dict[str, bytes] | None = None,
) -> Path:
    """Write the entry ``<arch>-<dataset>-<version>/`` under ``root`` (see :func:`write_entry`).

    ``version`` defaults to the next free ``v<k>``.
    """
    version = version or next_version(root, arch, dataset)
    name = entry_name(arch, dataset, version)
    dest = join_uri(str(root), name) if _is_uri(root) else Path(root) / name
    config = {"arch": arch, "dataset": dataset, "version": version, **config}
    return write_entry(dest, config, state_dict, metrics, card, artefacts, overwrite)


def write_entry(
    dest: str | os.PathLike[str],
    config: dict[str, Any],
    state_dict: dict[str, Any],
    metrics: dict[str, Any],
    card: str,
    artefacts: dict[str, bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a saved model at ``dest`` (a folder path or URI) atomically and return its directory.

    ``artefacts`` are extra files (name -> content) the model needs; their names go into
    ``config.json``. An object-store ``dest`` is uploaded, and the returned path is its local copy.

    Raises :class:`RegistryError` if the entry exists (unless ``overwrite``), if config or metrics
    are not JSON, or for an artefact name that is not a plain file name; nothing is written then.
    """
    artefacts = artefacts or {}
    bad = [n for n in artefacts if n in FILES or not _ARTEFACT.match(n)]
    if bad:
        raise RegistryError(f"{dest}: artefact names {bad} must be plain file names other than {FILES}")
    config = {**config, "artefacts": sorted(artefacts)}
    files = {
        "model.pt": _tensor_bytes(state_dict),
        "metrics.json": _json_bytes(metrics, dest),
        "card.md": card.encode(),
        **artefacts,
        "config.json": _json_bytes(config, dest),  # last: an object-store entry is complete with it
    }
    if _is_uri(dest):
        uri = str(dest)
        if _exists(uri, "config.json") and not overwrite:
            raise RegistryError(f"{redact(uri)}: registry entry exists (pass a new version or overwrite)")
        local = _local_copy(uri)
        write_folder(str(local), files)
        write_folder(uri, files)
        return local
    path = Path(dest)
    if path.exists() and not overwrite:
        raise RegistryError(f"{path}: registry entry exists (pass a new version or overwrite)")
    write_folder(str(path), files)
    return path


def _tensor_bytes(state_dict: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    save_tensors(state_dict, buffer)
    return buffer.getvalue()


def _json_bytes(obj: Any, dest: str | os.PathLike[str]) -> bytes:
    try:
        return json.dumps(obj, indent=2, sort_keys=True).encode()
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{dest}: config/metrics are not JSON-serialisable ({exc})") from None


def _read_json(path: Path, entry: Path, remedy: str = "") -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{entry}: corrupt registry entry ({exc}){_tail(remedy)}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{entry}: corrupt registry entry ({path.name} is not an object){_tail(remedy)}")
    return data


def load_entry(
    path_or_name: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, remedy: str = ""
) -> Entry:
    """An entry by directory path or URI, or by name under ``root`` (default ``$CRYSTALSPACE_REGISTRY``).

    Entries in an object store (``s3://…/<name>``, or a name under a URI ``root``) are fetched into
    the local cache first. A folder that lacks a file of the format (for instance one written by an
    older crystalspace, with ``weights.pt`` or ``info.json``) is one :class:`RegistryError` line
    ending in ``remedy`` (how to get a new model), as are unreadable weights later.
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
            raise RegistryError(f"{path_or_name}: no such registry entry{where}{_tail(remedy)}")
    config = _read_json(path / "config.json", path, remedy) if (path / "config.json").is_file() else {}
    missing = [f for f in (*FILES, *config.get("artefacts", [])) if not (path / f).is_file()]
    if missing:
        raise RegistryError(
            f"{path}: incomplete registry entry, or one saved by an older crystalspace "
            f"(missing {', '.join(missing)}){_tail(remedy)}"
        )
    metrics = _read_json(path / "metrics.json", path, remedy)
    return Entry(path=path, config=config, metrics=metrics, remedy=remedy)


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
