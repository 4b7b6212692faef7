"""The vault: sealing and storing chunks, file bodies and manifests; reading them back authenticated.

``Vault(store, keys)`` is the policy layer over the pure envelope format: a fresh data key per sealed
object from the :class:`~orgvault.ports.KeyProvider`, generated with the encryption context that
names where the object belongs (``orgvault.domain.layout``); on read, the context is rebuilt from
where the caller expects the object to be, never taken from the object itself. Every read
authenticates before it returns anything (chunks, manifests) or raises at the end of the stream
(file bodies, which may be GBs).

Errors: ``EnvelopeError`` (an ``IntegrityError``; ``.reason`` names the defect: tampered, truncated,
misplaced, hash-mismatch, ...), ``UnknownFormatVersion``, ``ObjectNotFound``, ``KeyUnavailable``,
``VaultUnavailable``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from orgvault.domain import layout
from orgvault.domain.chunks import EncodedChunk, decode_chunk, encode_records
from orgvault.domain.envelope import (
    DEFAULT_SEGMENT_SIZE,
    Compression,
    EnvelopeError,
    EnvelopeHeader,
    Reason,
    check_context,
    new_nonce_prefix,
    open_envelope,
    open_stream,
    seal,
    seal_stream,
)
from orgvault.domain.manifest import ChunkRef, Manifest, manifest_from_bytes
from orgvault.domain.models import ChunkKind, ChunkRecord, FileRecord, SnapshotRecord
from orgvault.errors import (
    IntegrityError,
    KeyUnavailable,
    ObjectExists,
    ObjectNotFound,
    UnknownFormatVersion,
)
from orgvault.ports import KeyProvider, ObjectStore

CONTENT_KEY_FORMAT = "orgvault-content-key"
SPOOL_MEMORY = 32 * 1024 * 1024  # file bodies above this spool to a temporary file while hashing
READ_PART = 1024 * 1024
FILE_GET_PART = 4 * 1024 * 1024  # bounded memory per read; few enough ranged GETs on S3

Record = dict[str, Any]


def _zstd_compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


def _zstd_decompress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def _default_spool() -> IO[bytes]:
    # Bodies above SPOOL_MEMORY roll over to a temporary file (Lambda: /tmp) while being hashed.
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - the caller closes it


@dataclass(frozen=True)
class StoredFile:
    """Where a file body is. ``written`` is False when equal bytes were already stored (dedup); then
    ``sha256`` is empty (its sealed bytes were written by an earlier run)."""

    content_id: str
    key: str
    size: int
    stored_bytes: int
    sha256: str
    written: bool

    def ref(self) -> layout.FileRef:
        return layout.FileRef(self.content_id, self.size)

    def value(self) -> dict[str, Any]:
        """The field value a backed-up record holds for this file: ``{"$file": id, "size": n}``."""
        return self.ref().to_value()


class Vault:
    """Sealed, write-once storage of one or more orgs' backups. Thread-safe."""

    def __init__(
        self,
        store: ObjectStore,
        keys: KeyProvider,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        spool_factory: Callable[[], IO[bytes]] | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.segment_size = segment_size
        self._spool_factory = spool_factory or _default_spool
        self._content_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # --- sealing helpers ------------------------------------------------------------------------

    def _header(
        self, kind: str, key_ref: str, context: Mapping[str, str], compression: Compression
    ) -> tuple[bytes, EnvelopeHeader]:
        dk = self.keys.generate_data_key(key_ref, dict(context))
        header = EnvelopeHeader(
            kind=kind,
            key_ref=dk.key_ref,
            wrapped_key=dk.wrapped,
            nonce_prefix=new_nonce_prefix(),
            context=dict(context),
            compression=compression,
            segment_size=self.segment_size,
        )
        return dk.plaintext, header

    def _resolver(
        self, kind: str, expected: Mapping[str, str], what: str
    ) -> Callable[[EnvelopeHeader], bytes]:
        def resolve(header: EnvelopeHeader) -> bytes:
            if header.kind != kind:
                raise EnvelopeError(
                    f"{what} is a sealed {header.kind!r}, expected {kind!r}", reason=Reason.MISPLACED
                )
            check_context(header, expected, what=what)
            try:
                return self.keys.decrypt_data_key(header.key_ref, header.wrapped_key, dict(expected))
            except KeyUnavailable as exc:
                raise KeyUnavailable(f"cannot unwrap the data key of {what}: {exc}") from exc

        return resolve

    # --- chunks ---------------------------------------------------------------------------------

    def write_chunk(
        self,
        org: str,
        key_ref: str,
        run_id: str,
        object_name: str,
        seq: int,
        kind: ChunkKind,
        chunk: EncodedChunk | Iterable[Mapping[str, Any]],
    ) -> ChunkRecord:
        """Seal and store one chunk (an :class:`EncodedChunk` from the ChunkBuilder, or records that are
        encoded into exactly one chunk). Each call writes a new object under a fresh random key, so a
        retry after a crash never collides; the catalog's ``record_chunk`` decides which one counts.
        Returns the ``ChunkRecord`` to record in the catalog."""
        encoded = chunk if isinstance(chunk, EncodedChunk) else encode_records(chunk)
        kind = ChunkKind(kind)
        key = layout.chunk_key(org, run_id, object_name, seq, str(kind), secrets.token_hex(4))
        data_key, header = self._header(
            "chunk", key_ref, layout.chunk_context(org, run_id, object_name, seq), Compression.ZSTD
        )
        sealed = seal(data_key, header, encoded.payload)
        self.store.put(key, sealed)
        return ChunkRecord(
            org=org,
            run_id=run_id,
            object_name=object_name,
            seq=seq,
            kind=kind,
            key=key,
            records=encoded.records,
            plain_bytes=encoded.plain_bytes,
            stored_bytes=len(sealed),
            sha256=hashlib.sha256(sealed).hexdigest(),
            first_id=encoded.first_id,
            last_id=encoded.last_id,
        )

    def read_chunk_payload(self, org: str, object_name: str, ref: ChunkRef | ChunkRecord) -> bytes:
        """Fetch, authenticate and return a chunk's (compressed) payload. Checks, in order: the object
        exists (``ObjectNotFound``), the envelope version, that it was sealed for (org, ref.run_id,
        object, ref.seq) (``EnvelopeError`` MISPLACED), every segment (TAMPERED/TRUNCATED), and that its
        bytes are those recorded (``ref.sha256``, HASH_MISMATCH)."""
        data = self.store.get(ref.key)
        what = f"chunk {ref.key}"
        expected = layout.chunk_context(org, ref.run_id, object_name, ref.seq)
        header, payload = open_envelope(data, self._resolver("chunk", expected, what), what=what)
        if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256:
            raise EnvelopeError(
                f"{what} is authentic but not the chunk the manifest recorded (sha256 differs)",
                reason=Reason.HASH_MISMATCH,
            )
        if header.compression != Compression.ZSTD:
            raise IntegrityError(f"{what} has unexpected compression {header.compression}")
        return payload

    def read_chunk(self, org: str, object_name: str, ref: ChunkRef | ChunkRecord) -> Iterator[Record]:
        """The records of a chunk, authenticated (see :meth:`read_chunk_payload`) before the first one is
        yielded. Also checks the record count against ``ref.records``."""
        payload = self.read_chunk_payload(org, object_name, ref)
        records = list(decode_chunk(payload))
        if len(records) != ref.records:
            raise EnvelopeError(
                f"chunk {ref.key} holds {len(records)} records, the manifest says {ref.records}",
                reason=Reason.HASH_MISMATCH,
            )
        return iter(records)

    # --- file bodies ----------------------------------------------------------------------------

    def _content_key(self, org: str, key_ref: str, *, create: bool = True) -> bytes:
        with self._lock:
            if org in self._content_keys:
                return self._content_keys[org]
        ctx = layout.content_key_context(org)
        obj_key = layout.content_key_key(org)
        try:
            doc = json.loads(self.store.get(obj_key)) if self.store.exists(obj_key) else None
        except ValueError as exc:
            raise IntegrityError(f"{obj_key} is not a content-id key document") from exc
        if doc is None and not create:
            raise ObjectNotFound(f"{obj_key} is missing: the org's file bodies cannot be checked without it")
        if doc is None:
            dk = self.keys.generate_data_key(key_ref, ctx)
            body = json.dumps(
                {
                    "format": CONTENT_KEY_FORMAT,
                    "v": 1,
                    "key_ref": dk.key_ref,
                    "wrapped": base64.b64encode(dk.wrapped).decode("ascii"),
                    "context": ctx,
                },
                sort_keys=True,
            ).encode()
            try:
                self.store.put(obj_key, body)
                key = dk.plaintext
            except ObjectExists:  # another writer created it first: use theirs
                return self._content_key(org, key_ref)
        else:
            if doc.get("format") != CONTENT_KEY_FORMAT or doc.get("v") != 1:
                raise UnknownFormatVersion(f"{obj_key} has an unknown format; upgrade orgvault")
            if doc.get("context") != ctx:
                raise EnvelopeError(f"{obj_key} belongs to another org", reason=Reason.MISPLACED)
            key = self.keys.decrypt_data_key(doc["key_ref"], base64.b64decode(doc["wrapped"]), ctx)
        with self._lock:
            self._content_keys.setdefault(org, key)
            return self._content_keys[org]

    def content_id(self, org: str, data: bytes | Iterable[bytes], *, key_ref: str = "") -> str:
        """The keyed id of a file body: hex HMAC-SHA256 under the org's content-id key (created on
        first use with ``key_ref``). Equal bytes give equal ids within an org; the id reveals nothing
        about the bytes to someone without the key."""
        mac = hmac.new(self._content_key(org, key_ref), digestmod=hashlib.sha256)
        for part in [data] if isinstance(data, bytes | bytearray) else data:
            mac.update(part)
        return mac.hexdigest()

    def write_file_stream(self, org: str, key_ref: str, parts: Iterable[bytes]) -> StoredFile:
        """Store a file body given as a stream of byte strings, once per distinct content.

        The body is spooled (memory up to 32 MiB, then a temporary file) while its keyed id is
        computed; if ``orgs/{org}/files/{content_id}.ovf`` already exists nothing is written
        (``written=False``). Otherwise it is sealed in segments and streamed to the store. Memory stays
        flat whatever the size. Bodies are stored uncompressed."""
        mac = hmac.new(self._content_key(org, key_ref), digestmod=hashlib.sha256)
        size = 0
        with self._spool_factory() as spool:
            for part in parts:
                mac.update(part)
                spool.write(part)
                size += len(part)
            content_id = mac.hexdigest()
            key = layout.file_key(org, content_id)
            if self.store.exists(key):
                return StoredFile(content_id, key, size, self.store.size(key), "", written=False)
            spool.seek(0)
            data_key, header = self._header(
                "file", key_ref, layout.file_context(org, content_id), Compression.NONE
            )
            digest = hashlib.sha256()

            def sealed() -> Iterator[bytes]:
                for piece in seal_stream(data_key, header, iter(lambda: spool.read(READ_PART), b"")):
                    digest.update(piece)
                    yield piece

            try:
                stored = self.store.put_stream(key, sealed())
            except ObjectExists:  # a concurrent writer stored the same content first
                return StoredFile(content_id, key, size, self.store.size(key), "", written=False)
        return StoredFile(content_id, key, size, stored, digest.hexdigest(), written=True)

    def file_record(self, org: str, source: str, stored: StoredFile, *, source_stamp: str = "") -> FileRecord:
        """The catalog's ``FileRecord`` for a stored body read from ``source``."""
        return FileRecord(
            org=org,
            source=source,
            content_id=stored.content_id,
            key=stored.key,
            size=stored.size,
            stored_bytes=stored.stored_bytes,
            sha256=stored.sha256,
            source_stamp=source_stamp,
        )

    def read_file_stream(
        self, org: str, content_id: str, *, expected_size: int | None = None
    ) -> Iterator[bytes]:
        """Stream a file body's plaintext. Segments are authenticated as they come; at the end the
        keyed id of all bytes (and ``expected_size``) is checked. The iterator raises ``EnvelopeError``
        on any defect, so only a fully consumed stream proves the body intact."""
        key = layout.file_key(org, content_id)
        what = f"file {key}"
        _, body = open_stream(
            self.store.get_stream(key, part_size=FILE_GET_PART),
            self._resolver("file", layout.file_context(org, content_id), what),
            what=what,
        )
        mac = hmac.new(self._content_key(org, "", create=False), digestmod=hashlib.sha256)
        size = 0
        for piece in body:
            mac.update(piece)
            size += len(piece)
            yield piece
        if not hmac.compare_digest(mac.hexdigest(), content_id):
            raise EnvelopeError(
                f"{what} does not hold the content its id names", reason=Reason.CONTENT_MISMATCH
            )
        if expected_size is not None and size != expected_size:
            raise EnvelopeError(
                f"{what} holds {size} bytes, the record says {expected_size}", reason=Reason.CONTENT_MISMATCH
            )

    def verify_file(self, org: str, content_id: str, *, expected_size: int | None = None) -> int:
        """Read a file body to the end, authenticating it; returns its size or raises."""
        return sum(len(p) for p in self.read_file_stream(org, content_id, expected_size=expected_size))

    # --- manifests ------------------------------------------------------------------------------

    def write_manifest(self, key_ref: str, manifest: Manifest) -> tuple[str, str]:
        """Seal and store a manifest (write it LAST, after every chunk it references). Returns
        ``(key, sha256 of the sealed bytes)`` for the catalog's ``SnapshotRecord``. Each call writes a
        new object (random suffix), so a retried finalize never collides with an orphan."""
        key = layout.manifest_key(manifest.org, manifest.snapshot_id, secrets.token_hex(4))
        data_key, header = self._header(
            "manifest", key_ref, layout.manifest_context(manifest.org, manifest.snapshot_id), Compression.ZSTD
        )
        sealed = seal(data_key, header, _zstd_compress(manifest.to_bytes()))
        self.store.put(key, sealed)
        return key, hashlib.sha256(sealed).hexdigest()

    def read_manifest(self, org: str, snapshot_id: str, key: str, expected_sha256: str) -> Manifest:
        """Fetch, check and parse a snapshot's manifest: its sealed bytes must hash to ``expected_sha256``
        (from the catalog; a rolled-back or replaced manifest fails), it must be sealed for
        (org, snapshot_id), authentic, and name that org and snapshot inside."""
        data = self.store.get(key)
        what = f"manifest {key}"
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            raise EnvelopeError(
                f"{what} does not match the hash the catalog recorded for snapshot {snapshot_id} "
                "(rolled back or replaced)",
                reason=Reason.HASH_MISMATCH,
            )
        _, plain = open_envelope(
            data, self._resolver("manifest", layout.manifest_context(org, snapshot_id), what), what=what
        )
        manifest = manifest_from_bytes(_zstd_decompress(plain))
        if manifest.org != org or manifest.snapshot_id != snapshot_id:
            raise EnvelopeError(f"{what} describes another snapshot", reason=Reason.MISPLACED)
        return manifest

    def read_snapshot_manifest(self, snapshot: SnapshotRecord) -> Manifest:
        """:meth:`read_manifest` for a catalog ``SnapshotRecord``."""
        return self.read_manifest(
            snapshot.org, snapshot.snapshot_id, snapshot.manifest_key, snapshot.manifest_sha256
        )
