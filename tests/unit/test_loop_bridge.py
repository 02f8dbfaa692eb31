"""The bridge from the sync store engine to a native async client: calls run on the client's loop, never a hang."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import vecembed
from vecembed.aio import LoopBridge, bridge_async_client, run_on_thread


class Child:
    """What an async client's method returns and the bridge wraps (like chromadb's AsyncCollection)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def count(self) -> tuple[int, int]:
        return 3, threading.get_ident()


class FakeAsyncClient:
    """An async client: coroutine methods, a plain method, an attribute; it notes the threads it runs on."""

    def __init__(self) -> None:
        self.version = "1.2"
        self.threads: list[int] = []
        self.release = threading.Event()

    async def add(self, a: int, *, b: int) -> int:
        self.threads.append(threading.get_ident())
        await asyncio.sleep(0)
        return a + b

    def plain(self) -> int:
        self.threads.append(threading.get_ident())
        return 7

    async def child(self, name: str) -> Child:
        return Child(name)

    async def fail(self, exc: BaseException) -> None:
        raise exc

    async def hang(self) -> None:
        self.release.set()
        await asyncio.Event().wait()  # never set: only the loop stopping ends the wait


def test_calls_run_on_the_clients_loop_and_results_come_back(loop_thread: Any) -> None:
    client = FakeAsyncClient()
    bridge = LoopBridge(client, loop_thread.loop, wrap=(Child,))
    assert bridge.add(2, b=3) == 5
    assert bridge.plain() == 7  # a plain method also runs on the loop: the client is touched only there
    assert client.threads == [loop_thread.thread.ident] * 2
    assert bridge.version == "1.2"  # attributes are read as they are
    child = bridge.child("docs")
    assert isinstance(child, LoopBridge) and child.name == "docs"  # a wrapped type comes back bridged
    assert child.count() == (3, loop_thread.thread.ident)
    with ThreadPoolExecutor(4) as pool:  # several threads at once, as the engine's writer and its caller
        assert list(pool.map(lambda i: bridge.add(i, b=1), range(20))) == list(range(1, 21))


def test_errors_of_the_call_propagate_unchanged(loop_thread: Any) -> None:
    bridge = LoopBridge(FakeAsyncClient(), loop_thread.loop)
    with pytest.raises(ConnectionResetError, match="peer"):  # retries see the client's own error types
        bridge.fail(ConnectionResetError("reset by peer"))
    with pytest.raises(TimeoutError, match="server took too long"):  # not taken for the bridge's own wait
        bridge.fail(TimeoutError("server took too long"))


def test_a_call_on_the_loops_own_thread_is_refused_not_a_deadlock(loop_thread: Any) -> None:
    client = FakeAsyncClient()
    bridge = LoopBridge(client, loop_thread.loop)

    async def on_the_loop() -> None:
        bridge.add(1, b=2)

    with pytest.raises(vecembed.EventLoopError, match=r"FakeAsyncClient\.add\(\).*would wait for that loop"):
        loop_thread.run(on_the_loop())
    assert client.threads == []  # nothing was started


def test_a_stopped_or_closed_loop_raises_at_once() -> None:
    loop = asyncio.new_event_loop()
    bridge = LoopBridge(FakeAsyncClient(), loop)
    with pytest.raises(vecembed.EventLoopError, match="is not running"):
        bridge.add(1, b=2)
    loop.close()
    with pytest.raises(vecembed.EventLoopError, match="is closed"):
        bridge.add(1, b=2)


def test_a_loop_that_stops_during_a_call_ends_the_wait(loop_thread: Any) -> None:
    client = FakeAsyncClient()
    bridge = LoopBridge(client, loop_thread.loop)
    outcome: list[BaseException] = []

    def wait_for_hang() -> None:
        try:
            bridge.hang()
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_hang, daemon=True)  # daemon: a hang fails the test, not the run
    waiter.start()
    assert client.release.wait(timeout=30)  # the call runs on the loop
    loop_thread.loop.call_soon_threadsafe(loop_thread.loop.stop)
    waiter.join(timeout=30)  # a bound on the test, not on the bridge: without the check it waits forever
    assert not waiter.is_alive(), "the call still waits for a loop that stopped"
    assert len(outcome) == 1 and isinstance(outcome[0], vecembed.EventLoopError) and "not running" in str(outcome[0])


def test_the_loop_is_found_only_where_aopen_store_opens() -> None:
    with pytest.raises(vecembed.EventLoopError, match=r"await vecembed\.aopen_store\('qdrant'"):
        bridge_async_client(FakeAsyncClient(), db="qdrant")
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    async def main() -> tuple[LoopBridge, asyncio.AbstractEventLoop, str]:
        marker.set("caller")
        bridge = await run_on_thread(lambda: (marker.set("thread"), bridge_async_client(FakeAsyncClient(), db="x"))[1])
        return bridge, asyncio.get_running_loop(), marker.get()

    bridge, loop, seen = asyncio.run(main())
    assert bridge.loop is loop
    assert seen == "caller"  # the thread worked on a copy of the caller's context
    with pytest.raises(vecembed.EventLoopError, match="closed"):  # asyncio.run closed that loop
        bridge.add(1, b=1)


def test_sync_open_store_refuses_an_async_qdrant_client_and_creates_nothing() -> None:
    pytest.importorskip("qdrant_client", reason="pip install 'vecembed[qdrant]'")
    from qdrant_client import AsyncQdrantClient

    client = AsyncQdrantClient(":memory:")
    with vecembed.load_provider("mock", dimension=8) as provider:
        with pytest.raises(vecembed.EventLoopError, match="AsyncQdrantClient is an async client") as err:
            vecembed.open_store("qdrant", "docs", provider, client=client)
        assert isinstance(err.value, RuntimeError)

    async def exists() -> bool:
        found = await client.collection_exists("docs")
        await client.close()
        return bool(found)

    assert asyncio.run(exists()) is False
