"""Per-chunk id indexes: find one record at a point in time without decrypting a whole object.

A snapshot's object is a list of layers (a base full read, then delta layers of changed records and
tombstones). To find id X at a snapshot, walk the layers newest first; in each layer only chunks
whose ``[first_id, last_id]`` range may contain X are candidates (when ranges are min/max), and each
candidate's *id index* (a small sealed object holding the chunk's sorted ids) says whether X is
really there. Only the one
chunk that holds X is decrypted in full (plus a tombstone chunk when X was deleted), so a lookup
decrypts at most 2 data chunks whatever the number of snapshots.

Index payload (format version 1), before sealing: zstd(``"OVIX1\\n" + chunk_sha256 + "\\n" +
"\\n".join(sorted 15-character ids)``). The chunk's sha256 inside binds the index to exactly one
sealed chunk: an index that does not name the chunk it is used for is ignored (the lookup falls
back to decrypting the chunk itself), so a stale or swapped index can cost time, never correctness
— a hit is always confirmed in the decrypted chunk.

The backup may build these as it writes chunks (it already holds the records):
``index_payload(chunk.sha256, records)``; otherwise the reader builds them on first use.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import zstandard

INDEX_MAGIC = b"OVIX1"


def id15(record_id: str) -> str:
    """The case-sensitive 15-character form of a Salesforce id (the key used by indexes)."""
    return record_id[:15]


@dataclass(frozen=True)
class IdIndex:
    """The sorted ids of one chunk."""

    chunk_sha256: str
    ids: tuple[str, ...]

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, str):
            return False
        key = id15(record_id)
        i = bisect.bisect_left(self.ids, key)
        return i < len(self.ids) and self.ids[i] == key

    def __len__(self) -> int:
        return len(self.ids)


def record_ids(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of records (tombstones included: they carry ``Id`` too), skipping rows without one."""
    out = []
    for r in records:
        rid = r.get("Id") or r.get("id")
        if isinstance(rid, str) and rid:
            out.append(rid)
    return out


def index_payload(chunk_sha256: str, ids: Iterable[str]) -> bytes:
    """The plaintext of a chunk's id index (to be sealed by the vault)."""
    body = "\n".join(sorted({id15(i) for i in ids}))
    raw = INDEX_MAGIC + b"\n" + chunk_sha256.encode() + b"\n" + body.encode()
    return zstandard.ZstdCompressor(level=3).compress(raw)


def index_for_chunk(chunk_sha256: str, records: Iterable[Mapping[str, Any]]) -> bytes:
    """What the backup calls right after sealing a chunk: the index payload for its records."""
    return index_payload(chunk_sha256, record_ids(records))


def parse_index(payload: bytes) -> IdIndex:
    """Inverse of :func:`index_payload`. Raises ``ValueError`` on anything else."""
    raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 31)
    magic, _, rest = raw.partition(b"\n")
    if magic != INDEX_MAGIC:
        raise ValueError("not an orgvault id index (bad magic)")
    sha, _, body = rest.partition(b"\n")
    ids = tuple(body.decode().split("\n")) if body else ()
    return IdIndex(chunk_sha256=sha.decode(), ids=ids)


def ref_get(ref: Any, name: str, default: Any = None) -> Any:
    """Read a chunk-ref attribute whether refs are dataclasses or dicts."""
    if isinstance(ref, Mapping):
        return ref.get(name, default)
    return getattr(ref, name, default)


def may_contain(ref: Any, record_id: str) -> bool:
    """Whether the chunk's id range may contain ``record_id``. Without a range: maybe."""
    first, last = ref_get(ref, "first_id") or "", ref_get(ref, "last_id") or ""
    if not first or not last:
        return True
    key = id15(record_id)
    lo, hi = id15(first), id15(last)
    if lo > hi:  # not a min/max range (records were not read in id order): no pruning
        return True
    return lo <= key <= hi


def candidates(chunks: Sequence[Any], record_id: str, *, trust_ranges: bool = False) -> list[Any]:
    """Chunks of one layer that may hold ``record_id``, newest first: chunks apply in ``seq`` order
    (records upsert, tombstones delete), so the highest-seq chunk holding the id decides.

    ``trust_ranges`` prunes by ``[first_id, last_id]``; only valid when the writer records the
    min/max id of each chunk (not merely the first and last read)."""
    hits = [c for c in chunks if not trust_ranges or may_contain(c, record_id)]
    return sorted(hits, key=lambda c: int(ref_get(c, "seq", 0) or 0), reverse=True)
