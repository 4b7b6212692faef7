"""Salesforce record ids: 15-character case-sensitive and 18-character case-insensitive forms.

The 3-character suffix of an 18-character id encodes, for each 5-character chunk of the 15-character
id, which characters are upper-case letters (bit i set = character i upper case), as an index into
``A-Z0-5``.
"""

from __future__ import annotations

import hashlib
import re

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID15 = re.compile(r"^[0-9A-Za-z]{15}$")
_ID18 = re.compile(r"^[0-9A-Za-z]{15}[A-Za-z0-5]{3}$")


def _checksum(id15: str) -> str:
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = 0
        for i, ch in enumerate(chunk):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def to_18(id15: str) -> str:
    """The 18-character form of a 15-character id (an 18-character id is returned unchanged).

    Raises ValueError for anything that is not a syntactically valid id."""
    if len(id15) == 18:
        return to_18(to_15(id15))
    if not _ID15.match(id15):
        raise ValueError(f"not a Salesforce id: {id15!r}")
    return id15 + _checksum(id15)


def to_15(id18: str) -> str:
    """The case-sensitive 15-character form. An 18-character id may arrive in any letter case: the
    suffix restores the case. Raises ValueError when the id or its checksum is invalid."""
    if len(id18) == 15:
        if not _ID15.match(id18):
            raise ValueError(f"not a Salesforce id: {id18!r}")
        return id18
    if not _ID18.match(id18):
        raise ValueError(f"not a Salesforce id: {id18!r}")
    chars = []
    for chunk in range(3):
        bits = _SUFFIX.index(id18[15 + chunk].upper())
        for i in range(5):
            ch = id18[chunk * 5 + i]
            if bits & (1 << i):
                if not ch.isalpha():
                    raise ValueError(f"bad id checksum: {id18!r}")
                chars.append(ch.upper())
            else:
                chars.append(ch.lower())
    return "".join(chars)


def is_valid_id(s: object) -> bool:
    """True for a well-formed 15-character id or an 18-character id whose checksum is consistent."""
    if not isinstance(s, str) or len(s) not in (15, 18):
        return False
    try:
        to_15(s)
    except ValueError:
        return False
    if len(s) == 18:
        # An 18-character id is case-insensitive, but a mixed-case one must agree with its checksum.
        head = s[:15]
        if head != head.lower() and head != head.upper():
            return head == to_15(s)
    return True


def normalize_id(s: str) -> str:
    """Canonical 18-character form of a 15- or 18-character id; ValueError if invalid."""
    return to_18(to_15(s))


def _b62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    s = "".join(reversed(out))
    if len(s) > width:
        raise OverflowError("id counter exhausted")
    return s.rjust(width, "0")


class IdFactory:
    """Mints 18-character ids with valid checksums, deterministic for a given seed.

    An id is ``key prefix (3) + pod (2, from the seed) + counter (10, base 62)`` plus the checksum.
    ``counters`` lets a reopened org continue where it stopped (see :attr:`counters`)."""

    def __init__(self, seed: int = 1, counters: dict[str, int] | None = None):
        digest = hashlib.sha256(f"orgvault-emulator-{seed}".encode()).digest()
        self.pod = _B62[digest[0] % 10] + _B62[10 + digest[1] % 52]
        self.counters: dict[str, int] = dict(counters or {})

    def new_id(self, key_prefix: str) -> str:
        """A fresh, never-before-issued id for the object with ``key_prefix``."""
        return self.new_ids(key_prefix, 1)[0]

    def new_ids(self, key_prefix: str, n: int) -> list[str]:
        """``n`` fresh ids (fast path for the generator)."""
        if len(key_prefix) != 3:
            raise ValueError(f"key prefix must have 3 characters: {key_prefix!r}")
        start = self.counters.get(key_prefix, 0) + 1
        self.counters[key_prefix] = start + n - 1
        head = key_prefix + self.pod
        tri = _tri()
        tri_bits = _tri_bits()
        out = []
        append = out.append
        upper = None
        mid = ""
        ck12 = ""
        bits2 = 0
        suffix = _SUFFIX
        for c in range(start, start + n):
            hi, lo = divmod(c, 238328)
            if hi != upper:
                upper = hi
                mid = head + _b62(hi, 7)  # 12 characters: chunk 1, chunk 2 and 2 chars of chunk 3
                ck12 = _SUFFIX[_bits(mid[0:5])] + _SUFFIX[_bits(mid[5:10])]
                bits2 = _bits(mid[10:12])  # chunk 3 = these 2 characters + the 3 of tri[lo]
            append(mid + tri[lo] + ck12 + suffix[bits2 | tri_bits[lo] << 2])
        return out


_TRI: list[str] = []
_TRI_BITS: list[int] = []


def _tri() -> list[str]:
    """All 3-character base-62 strings in order (cached)."""
    if not _TRI:
        _TRI.extend(a + b + c for a in _B62 for b in _B62 for c in _B62)
    return _TRI


def _tri_bits() -> list[int]:
    """``_bits`` of every 3-character base-62 string, in ``_tri`` order (cached)."""
    if not _TRI_BITS:
        up = [1 if "A" <= ch <= "Z" else 0 for ch in _B62]
        _TRI_BITS.extend(a | b << 1 | c << 2 for a in up for b in up for c in up)
    return _TRI_BITS


def _bits(chunk: str) -> int:
    bits = 0
    for i, ch in enumerate(chunk):
        if "A" <= ch <= "Z":
            bits |= 1 << i
    return bits
