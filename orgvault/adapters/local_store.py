"""FilesystemObjectStore: the ObjectStore port on a local directory (local mode).

A key ``a/b/c.ovc`` is the file ``{root}/a/b/c.ovc``. Writes go to a temporary file under
``{root}/.tmp/`` which is fsynced and then hard-linked to its final name (``os.link`` fails if the name
exists), so a crash never leaves a partial object at a final key and two writers never both win.
Writing the same bytes again is a no-op; different bytes raise ``ObjectExists``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from orgvault.errors import ConfigError, ObjectExists, ObjectNotFound, VaultUnavailable

_TMP = ".tmp"
_BLOCK = 1024 * 1024


def _check_key(key: str) -> list[str]:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"invalid object key: {key!r}")
    if "\x00" in key or "\\" in key:
        raise ValueError(f"invalid object key: {key!r}")
    return parts


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


class FilesystemObjectStore:
    """Write-once objects in a directory. Safe for several threads and processes on one machine."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        try:
            (self.root / _TMP).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot use {self.root} as a vault directory: {exc.strerror}") from exc

    def __repr__(self) -> str:
        return f"FilesystemObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key))

    def _fsync_dir(self, path: Path) -> None:
        if not self.fsync:
            return
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, key: str, parts: Iterable[bytes]) -> int:
        final = self._path(key)
        tmp = self.root / _TMP / f"{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("xb") as f:
                for part in parts:
                    f.write(part)
                    digest.update(part)
                    size += len(part)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, final)
            except FileExistsError:
                if _file_sha256(final) != digest.hexdigest():
                    raise ObjectExists(
                        f"{key} already exists with different content (objects are write-once)"
                    ) from None
                return size
            self._fsync_dir(final.parent)
            return size
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
                raise VaultUnavailable(f"cannot write {key} under {self.root}: {exc.strerror}") from exc
            raise VaultUnavailable(f"cannot write {key} under {self.root}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, key: str, data: bytes) -> None:
        """Write-once. Same bytes again: no-op. Different bytes: ``ObjectExists``."""
        final = self._path(key)
        if final.exists():
            if final.stat().st_size != len(data) or _file_sha256(final) != hashlib.sha256(data).hexdigest():
                raise ObjectExists(f"{key} already exists with different content (objects are write-once)")
            return
        self._write(key, [data])

    def put_stream(self, key: str, parts: Iterable[bytes]) -> int:
        """Write-once from a stream (flat memory); returns the size written."""
        self._path(key)
        return self._write(key, parts)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key} in the vault at {self.root}") from None
        except OSError as exc:
            raise VaultUnavailable(f"cannot read {key}: {exc.strerror}") from exc

    def get_stream(self, key: str, *, part_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """Open now (``ObjectNotFound`` raised by this call), then yield parts of ``part_size``."""
        try:
            f = self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key} in the vault at {self.root}") from None
        except OSError as exc:
            raise VaultUnavailable(f"cannot read {key}: {exc.strerror}") from exc

        def parts() -> Iterator[bytes]:
            with f:
                yield from iter(lambda: f.read(part_size), b"")

        return parts()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            path = self._path(key)
            if not path.is_file():
                raise FileNotFoundError
            return path.stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key} in the vault at {self.root}") from None

    def list(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix), in lexicographic order."""
        head, _, _ = prefix.rpartition("/")
        if any(p in ("..", ".") for p in head.split("/")) or prefix.startswith("/"):
            return iter(())
        start = self.root.joinpath(*head.split("/")) if head else self.root
        keys: list[str] = []
        if start.is_dir():
            for dirpath, dirnames, filenames in os.walk(start):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if name.startswith("."):
                        continue
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        keys.sort()
        return iter(keys)

    def delete(self, key: str) -> None:
        """Remove an object (garbage collection, crypto-shredding only). Missing: no error."""
        self._path(key).unlink(missing_ok=True)
