"""Storage for every artefact the project writes (lakes, saved models, MD checkpoints, maps): local
paths and object-store URIs through ``pyarrow.fs``, atomic writes, listings and checksums, and
messages that never show credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from crystalspace.errors import UserError


class StorageError(UserError, RuntimeError):
    """A path or URI that cannot be opened or written as asked."""


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path for a local path or URI (``s3://bucket/lake``, ``gs://…``, ``file://…``).

    Object-store options can ride in the URI, as pyarrow reads them, e.g.
    ``s3://KEY:SECRET@bucket/lake?endpoint_override=127.0.0.1:9000&scheme=http``; without them
    credentials come from the usual environment variables, config files or instance roles.
    """
    try:
        fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot open {redact(uri)}: {first_line(exc)}") from None
    return fs, path.rstrip("/")


def is_remote(uri: str) -> bool:
    """True for an object-store URI (``s3://``, ``gs://``, …), False for a local path or ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def join_uri(uri: str, *parts: str) -> str:
    """``uri/part/…`` with any query string (object-store options) kept at the end."""
    base, sep, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def redact(uri: str) -> str:
    """``uri`` without credentials (``key:secret@``) or query string, for messages."""
    scheme, sep, rest = uri.split("?", 1)[0].partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else scheme


_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s'\"]*@", re.I)
_SECRET_OPTIONS = re.compile(
    r"([?&](?:access_key|secret_key|session_token|[a-z_]*secret[a-z_]*)=)[^&\s'\"]*", re.I
)


def scrub(text: str) -> str:
    """``text`` with any ``scheme://user:secret@`` credentials and secret URI options removed."""
    return _SECRET_OPTIONS.sub(r"\1***", _CREDENTIALS.sub(r"\1", text))


def find_os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc``: itself, one of its causes, or, for an error a Ray worker
    raised (which reaches the driver as text), the last ``[Errno N] …`` line of its message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    found = re.findall(r"^\s*\w*(?:Error|Exception): \[Errno (\d+)\] ?(.*)$", str(exc), flags=re.M)
    if found:
        errno, message = found[-1]
        return OSError(int(errno), message.strip())
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.errno and exc.strerror:
        text = f"[Errno {exc.errno}] {exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return text.splitlines()[0] if text else type(exc).__name__


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename: readers see old or new."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except BaseException:
        remove_quietly(fs, tmp)  # a failed write or rename leaves nothing behind
        raise


def write_folder(uri: str, files: dict[str, bytes]) -> None:
    """Write the folder ``uri`` (file name -> content) so that readers see all of it or none.

    Locally the files go into a temporary sibling folder that is renamed into place (replacing any
    folder there); a failure removes it and leaves the old folder as it was. In an object store,
    which has no folders to rename, each file is written atomically in the order given, so the
    last one marks a complete folder.
    """
    if is_remote(uri):
        fs, base = resolve(uri)
        for name, data in files.items():
            write_atomic(fs, f"{base}/{name}", data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside local ``path`` (same suffix, so writers that go by it still do) to
    write a file or folder to; renamed onto ``path`` when the block ends, removed if it fails.
    Readers see the old ``path`` or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_quietly(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.delete_file(path)


def read_json(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    """The JSON object at ``path``; None when there is no file."""
    try:
        with fs.open_input_stream(path) as f:
            return dict(json.loads(f.read()))
    except FileNotFoundError:
        return None


def list_files(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    """Every file under ``root``: path relative to it -> size in bytes."""
    selector = pafs.FileSelector(root, allow_not_found=True, recursive=True)
    return {
        info.path[len(root) + 1 :]: int(info.size or 0)
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File
    }


def file_sha256(fs: pafs.FileSystem, path: str) -> str:
    """SHA-256 of a file (read in 8 MB blocks; hashing releases the GIL, so threads help)."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
