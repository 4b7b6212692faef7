"""``PagePrefetcher``: pages fetched ahead of their reader, within bounds, each handed over once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from orgvault.adapters.salesforce_prefetch import PagePrefetcher, Prefetched


class FakeServer:
    """Pages ``p0`` … ``p{last}`` of one read, ``size`` bytes each; counts the calls."""

    def __init__(self, last: int = 50, size: int = 100) -> None:
        self.last, self.size = last, size
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.fail: set[str] = set()

    def send(self, url: str, params: Any, headers: Any) -> Prefetched | None:
        with self.lock:
            self.calls.append(url)
        if url in self.fail:
            raise ConnectionError("dropped")
        n = int(url[1:])
        return Prefetched(200, {}, b"x" * self.size, {"next": n + 1 if n < self.last else None})

    @staticmethod
    def follow(got: Prefetched) -> tuple[str, str, str, None] | None:
        nxt = got.data["next"]
        return ("r", f"p{nxt}", f"p{nxt}", None) if nxt is not None else None


def wait_for(cond: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
    time.sleep(0.05)  # room for a step too many, if a bound did not hold


def test_a_chain_stays_within_its_depth_and_every_page_is_handed_over_once() -> None:
    server = FakeServer(last=12)
    ahead = PagePrefetcher(server.send, depth=3)
    ahead.start("r", "p1", "p1", None, {}, follow=server.follow)
    wait_for(lambda: ahead.pages("r") == 3)
    assert server.calls == ["p1", "p2", "p3"] and ahead.held_bytes == 300
    for n in range(1, 13):
        got = ahead.take("r", f"p{n}")
        assert got is not None and got.data["next"] == (n + 1 if n < 12 else None)
        assert ahead.pages("r") <= 3
        if n < 12:  # what the reader does with each page's next: it is already there or on its way
            ahead.start("r", f"p{n + 1}", f"p{n + 1}", None, {}, follow=server.follow)
    wait_for(lambda: ahead.reads() == 0)
    assert server.calls == [f"p{n}" for n in range(1, 13)]  # each page fetched once, none past the end
    assert ahead.held_bytes == 0


def test_a_reader_that_reads_a_page_itself_stops_the_chain_behind_it() -> None:
    """The reader asks for a page not fetched ahead (say the chain is still waiting for room): it
    reads it the ordinary way, so the chain must not fetch it (nor anything after it) later."""
    server = FakeServer()
    ahead = PagePrefetcher(server.send, depth=2)
    ahead.start("r", "p1", "p1", None, {}, follow=server.follow)
    wait_for(lambda: ahead.pages("r") == 2)
    assert ahead.take("r", "p5") is None  # the reader is elsewhere: what is held is stale
    assert ahead.reads() == 0 and ahead.held_bytes == 0
    calls = len(server.calls)
    time.sleep(0.1)
    assert len(server.calls) == calls  # the waiting chain gave up


def test_bytes_and_reads_are_bounded() -> None:
    server = FakeServer(size=1000)
    ahead = PagePrefetcher(server.send, depth=10, max_bytes=2500, max_reads=2)
    ahead.start("r", "p1", "p1", None, {}, follow=server.follow)
    wait_for(lambda: ahead.held_bytes >= 2500)
    assert ahead.pages("r") == 3  # the third page crossed the byte bound; no fourth
    ahead.start("a", "p100", "p100", None, {})  # no follow: one page
    ahead.start("b", "p200", "p200", None, {})  # a third read: no room
    assert ahead.reads() == 1  # the byte bound refuses "a" too
    assert ahead.take("b", "p200") is None and "p200" not in server.calls
    assert ahead.take("r", "p1") is not None  # room again: the chain goes on
    wait_for(lambda: ahead.pages("r") == 3 and ahead.held_bytes >= 2500)
    assert server.calls == ["p1", "p2", "p3", "p4"]


def test_a_failed_download_is_none_and_ends_the_chain() -> None:
    server = FakeServer()
    server.fail.add("p2")
    ahead = PagePrefetcher(server.send)
    ahead.start("r", "p1", "p1", None, {}, follow=server.follow)
    assert ahead.take("r", "p1") is not None
    assert ahead.take("r", "p2") is None  # the reader does that call itself
    time.sleep(0.05)
    assert server.calls == ["p1", "p2"] and ahead.reads() == 0


def test_a_bulk_read_holds_one_page_ahead() -> None:
    server = FakeServer()
    ahead = PagePrefetcher(server.send)
    ahead.start("bulk", "p1", "p1", None, {}, replace=True)
    ahead.start("bulk", "p2", "p2", None, {}, replace=True)  # the reader moved on: p1 is dropped
    assert ahead.pages("bulk") == 1
    assert ahead.take("bulk", "p2") is not None
    wait_for(lambda: ahead.reads() == 0)
    assert ahead.held_bytes == 0
