"""Pages downloaded ahead of their reads, for ``SimpleSalesforceSource(prefetch_pages=True)``.

A *read* is one Bulk 2.0 job's results or one REST query (its query locator, or its first query);
a *page* names one answer of it (a Bulk locator, a ``nextRecordsUrl``). While the caller seals
page N, page N+1 is already on its way; a REST read goes on to N+2 … on its own as each answer
names the next, so a long delta (say 200-record pages of an object with long text fields) is not
one round trip after another.

Bounds: at most ``max_reads`` reads at once, ``depth`` pages ahead per read and ``max_bytes`` of
answers held across reads. A read's chain waits for the reader to take pages before it fetches more
(the next page is registered at once, so a reader asking for it waits for it and it is fetched then,
whatever the bounds); a new read past ``max_reads`` is not fetched ahead at all. Every page fetched ahead is an API call made whether or not
the reader asks for it: use this where reads run to the end.

Nothing here raises: a failed download is ``None``, and the reader does that call itself, with its
retries and error translation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prefetched:
    """One answer fetched ahead: status, headers (case-insensitive, as requests keeps them), the
    body, and for a REST query page its parsed JSON (parsed on the fetching thread)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    data: Any = None


# (url, params, headers) → the answer, or None if the call could not be made or failed in transit
Send = Callable[[str, Mapping[str, Any] | None, Mapping[str, str]], Prefetched | None]
# the answer of a page → (the next page's read, its key, its url, its params), or None when the read
# ends there (a REST read's first page is keyed by its query, the pages after it by its locator)
Follow = Callable[[Prefetched], tuple[str, str, str, Mapping[str, Any] | None] | None]


class PagePrefetcher:
    """Downloads pages ahead on daemon threads and hands each to its reader once (see the module
    docstring). ``send`` makes one GET (and counts it); it returns ``None`` when no call may go out
    now (no session, API budget used up) or the call failed."""

    def __init__(
        self,
        send: Send,
        *,
        max_reads: int = 8,
        depth: int = 4,
        max_bytes: int = 32 << 20,
        timeout: float = 125.0,
    ) -> None:
        self._send = send
        self.max_reads = max_reads
        self.depth = depth
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._lock = threading.Condition()
        # read → page → its download (registered before it starts: a reader asking waits for it)
        self._reads: dict[str, dict[str, Future[Prefetched | None]]] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        self._started: set[tuple[str, str]] = set()  # pages downloading or downloaded, not taken
        self._fetched: dict[str, int] = {}  # the same, counted per read
        # bumped when the reader asks for a page that was not fetched ahead: a chain of that read
        # still running is behind the reader, so it stops (it would fetch pages nobody takes)
        self._generation: dict[str, int] = {}
        self._chains: set[str] = set()  # reads a chain is fetching ahead (at most one each)
        self._wanted: set[tuple[str, str]] = set()  # pages a reader is waiting for
        self.held_bytes = 0

    def reads(self) -> int:
        """Reads with pages fetched (or being fetched) ahead."""
        with self._lock:
            return len(self._reads)

    def pages(self, read: str) -> int:
        """Pages of ``read`` downloading or downloaded ahead, not yet taken."""
        with self._lock:
            return self._fetched.get(read, 0)

    def start(
        self,
        read: str,
        page: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        *,
        follow: Follow | None = None,
        replace: bool = False,
    ) -> None:
        """Fetch ``page`` of ``read`` ahead unless it is already registered, a chain of that read
        will fetch it, or a bound is reached. ``follow``: go on with the page each answer names (a
        chain), while the bounds allow. ``replace``: first forget the read's other pages (a Bulk
        read holds one page ahead)."""
        with self._lock:
            if replace:
                for other in list(self._reads.get(read, {})):
                    self._forget(read, other)
            if read in self._chains:
                return
            pages = self._reads.get(read, {})
            if page in pages or (not pages and len(self._reads) >= self.max_reads):
                return
            if self._fetched.get(read, 0) >= self.depth or self.held_bytes >= self.max_bytes:
                return
            future: Future[Prefetched | None] = Future()
            self._reads.setdefault(read, {})[page] = future
            generation = self._generation.get(read, 0)
            if follow is not None:
                self._chains.add(read)

        def run() -> None:
            key, current, target, query, fut, gen = read, page, url, params, future, generation
            try:
                while True:
                    if not self._wait_for_room(key, current, fut, gen):
                        return
                    try:
                        got = self._send(target, query, headers)
                    except BaseException:  # noqa: BLE001 - the reader does the call again
                        got = None
                    with self._lock:
                        if got is not None and self._reads.get(key, {}).get(current) is fut:
                            self._sizes[(key, current)] = len(got.body)
                            self.held_bytes += len(got.body)
                    fut.set_result(got)
                    if follow is None or got is None or got.status != 200:
                        return
                    step = follow(got)
                    if step is None:
                        return
                    next_key, current, target, query = step
                    with self._lock:
                        if next_key != key:  # the first page's query → its locator: another read
                            if next_key in self._chains:
                                return
                            self._chains.discard(key)
                            self._chains.add(next_key)
                            key, gen = next_key, self._generation.get(next_key, 0)
                        pages = self._reads.get(key, {})
                        if self._generation.get(key, 0) != gen or current in pages:
                            return
                        if not pages and len(self._reads) >= self.max_reads:
                            return
                        fut = Future()
                        self._reads.setdefault(key, {})[current] = fut
            finally:
                with self._lock:
                    if follow is not None:
                        self._chains.discard(key)
                    if not fut.done():  # given up before its download: a reader waiting reads it
                        if self._reads.get(key, {}).get(current) is fut:
                            self._forget(key, current)
                        fut.set_result(None)

        threading.Thread(target=run, name="orgvault-prefetch", daemon=True).start()

    def take(self, read: str, page: str) -> Prefetched | None:
        """The answer of ``page`` of ``read`` if it was fetched ahead (or registered to be), once its
        download has ended (it is forgotten here); ``None`` when it was not, or its download
        failed: the reader then reads it itself."""
        with self._lock:
            future = self._reads.get(read, {}).get(page)
            if future is None:
                self._generation[read] = self._generation.get(read, 0) + 1
                for stale in list(self._reads.get(read, {})):
                    self._forget(read, stale)
                return None
            self._wanted.add((read, page))
            self._lock.notify_all()
        try:
            got = future.result(timeout=self.timeout)
        except Exception:  # noqa: BLE001 - timed out: read it the ordinary way
            got = None
        with self._lock:
            self._wanted.discard((read, page))
            if self._reads.get(read, {}).get(page) is future:
                self._forget(read, page)
        return got

    # --- under the lock, or taking it ------------------------------------------------------------

    def _wait_for_room(
        self, read: str, page: str, future: Future[Prefetched | None], generation: int
    ) -> bool:
        """Whether ``page`` may be downloaded now: it is still registered with ``future``, the reader
        did not get ahead of it, and the read is less than ``depth`` pages ahead with less than
        ``max_bytes`` held — or a reader is waiting for it. Waits (at most ``timeout``) for room."""
        with self._lock:
            while True:
                if (
                    self._generation.get(read, 0) != generation
                    or self._reads.get(read, {}).get(page) is not future
                ):
                    return False
                room = self._fetched.get(read, 0) < self.depth and self.held_bytes < self.max_bytes
                if room or (read, page) in self._wanted:
                    self._started.add((read, page))
                    self._fetched[read] = self._fetched.get(read, 0) + 1
                    return True
                if not self._lock.wait(timeout=self.timeout):
                    return False

    def _forget(self, read: str, page: str) -> None:
        pages = self._reads.get(read, {})
        pages.pop(page, None)
        if not pages:
            self._reads.pop(read, None)
        if (read, page) in self._started:
            self._started.discard((read, page))
            self._fetched[read] -= 1
            if not self._fetched[read]:
                del self._fetched[read]
        self.held_bytes -= self._sizes.pop((read, page), 0)
        self._lock.notify_all()
