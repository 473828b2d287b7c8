"""Storage: atomic writes that leave nothing behind, listings, checksums, credential-free messages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from crystalspace.storage import (
    StorageError,
    file_sha256,
    list_files,
    read_json,
    redact,
    resolve,
    scrub,
    write_atomic,
)


def test_atomic_write_replaces_whole_or_leaves_the_old(tmp_path: Path) -> None:
    fs, root = resolve(str(tmp_path))
    write_atomic(fs, f"{root}/a/b.json", b'{"v": 1}')
    assert read_json(fs, f"{root}/a/b.json") == {"v": 1}
    assert read_json(fs, f"{root}/a/none.json") is None

    (tmp_path / "a" / "dir.json").mkdir()  # a rename onto a folder fails after the data is written
    with pytest.raises(IsADirectoryError):
        write_atomic(fs, f"{root}/a/dir.json", b"{}")
    assert sorted(list_files(fs, root)) == ["a/b.json"]  # no temporary file left


def test_listing_and_checksum(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f.bin").write_bytes(b"abc" * 1000)
    fs, root = resolve(str(tmp_path))
    assert list_files(fs, root) == {"x/f.bin": 3000}
    assert file_sha256(fs, f"{root}/x/f.bin") == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert list_files(fs, f"{root}/missing") == {}
    assert isinstance(fs, pafs.LocalFileSystem)


def test_credentials_never_reach_a_message() -> None:
    uri = "s3://AKIAKEY:SeCrEt@bucket/lake?endpoint_override=h:9000&secret_key=SeCrEt2&scheme=http"
    assert redact(uri) == "s3://bucket/lake"
    text = scrub(f"cannot open {uri} (via gs://user:pw@b/x)")
    assert "SeCrEt" not in text
    assert "AKIAKEY" not in text
    assert "pw@" not in text
    assert "s3://bucket/lake" in text
    with pytest.raises(StorageError) as exc:
        resolve("s3://AKIAKEY:SeCrEt@bucket/lake?scheme=nonsense&endpoint_override=:::")
    assert "SeCrEt" not in str(exc.value)


def test_redact_drops_credentials_and_options():
    assert redact("s3://k:s@bucket/lake?endpoint_override=h:1") == "s3://bucket/lake"
    assert redact("/local/lake") == "/local/lake"
