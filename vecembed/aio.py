"""Async without blocking the event loop: sync work on a few worker threads, async clients from those threads.

Embedding is CPU work in native code (ONNX Runtime, torch) that releases the GIL,
and the stores' engine is synchronous; so the async API of providers, stores and
the LangChain / LlamaIndex classes runs the sync call on a :class:`Worker` — at
most ``concurrency`` calls at once per owner, the rest wait in the executor's
queue, never on the event loop. A :class:`Worker` is loop-agnostic: the same
provider can serve several event loops (or ``asyncio.run`` called many times).

A store opened on a native async client (``qdrant_client.AsyncQdrantClient``,
chromadb's ``AsyncHttpClient``) keeps that one engine: its adapter wraps the
client in a :class:`LoopBridge`, whose calls run as coroutines on the client's
own event loop while the worker thread that made them waits. The loop is never
blocked, the client is only ever used on its loop, and no code exists twice.
:func:`run_on_thread` is how :func:`vecembed.aopen_store` tells the adapter which
loop that is.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from vecembed.errors import EventLoopError, InvalidInputError

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["LoopBridge", "Worker", "bridge_async_client", "refuse_on_loop", "run_on_thread"]

T = TypeVar("T")

#: Seconds between checks that the loop still runs, while a thread waits for a call on it: a loop that stops
#: with the call unfinished raises instead of leaving the thread waiting forever. Not a limit on the call.
_LOOP_CHECK_S = 0.5

# The event loop that awaits aopen_store, as the thread that opens the store sees it (only there).
_OPENING_LOOP: contextvars.ContextVar[AbstractEventLoop | None] = contextvars.ContextVar(
    "vecembed_opening_loop", default=None
)


class Worker:
    """A lazily started pool of at most ``concurrency`` threads that async methods hand their sync work to."""

    def __init__(self, concurrency: int = 2, *, name: str = "vecembed-async") -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(f"concurrency must be a positive int, got {concurrency!r}")
        self.concurrency = concurrency
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=self._name)
            return self._executor

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread; the event loop stays free while it runs."""
        import asyncio  # here, not at the top: `import vecembed` stays free of asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the threads once their queued work is done (without waiting here). A later call starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)


# -- native async clients under the sync engine ----------------------------------------------------


async def run_on_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a thread, where :func:`bridge_async_client` finds the running event loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # a copy: the caller's own context is left as it was
    context.run(_OPENING_LOOP.set, loop)
    return await loop.run_in_executor(None, functools.partial(context.run, fn, *args, **kwargs))


def bridge_async_client(client: Any, *, db: str, wrap: tuple[type, ...] = ()) -> LoopBridge:
    """``client`` (an async client) as a :class:`LoopBridge` on the loop that opens the store.

    Raises :class:`~vecembed.errors.EventLoopError` outside :func:`vecembed.aopen_store`: a sync
    ``open_store`` has no event loop to run the client's coroutines on.
    """
    loop = _OPENING_LOOP.get()
    if loop is None:
        raise EventLoopError(
            f"{type(client).__name__} is an async client: open the store with "
            f"`store = await vecembed.aopen_store({db!r}, collection, provider, client=client)` in the event loop "
            "the client belongs to (its calls then run there), or pass a sync client to open_store; "
            "nothing was written"
        )
    return LoopBridge(client, loop, wrap=wrap)


def refuse_on_loop(loop: AbstractEventLoop, call: str, instead: str = "") -> None:
    """Raise :class:`~vecembed.errors.EventLoopError` when this thread is running ``loop``.

    A sync call there would wait for a coroutine that the same loop has to run: it would wait forever.
    ``instead``: the async call to name in the message (default: the store's async methods).
    """
    import asyncio

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # no loop runs on this thread
        return
    if running is loop:
        instead = instead or (
            "the store's async methods (await store.aingest, asearch, asearch_many, acount, adelete, ahealth_check)"
        )
        raise EventLoopError(
            f"{call} was called on the event loop that the store's async client belongs to: it would wait for "
            f"that loop while blocking it. Use {instead} instead; it runs the call on a worker thread"
        )


class LoopBridge:
    """A sync view of an async client: each method call runs on the client's event loop; the caller waits.

    Meant for threads other than the loop's (the store's workers, the engine's writer). A call's
    coroutine — and a plain method too, so the client is only touched on its loop — runs on
    ``loop`` by :func:`asyncio.run_coroutine_threadsafe`; the calling thread waits for its result,
    however long the database takes. Attributes that are not callable are read as they are; a
    result that is an instance of one of ``wrap`` (e.g. chromadb's ``AsyncCollection``) comes back
    bridged too. Calling from the loop's own thread, or once the loop stopped, raises
    :class:`~vecembed.errors.EventLoopError` instead of waiting forever.
    """

    __slots__ = ("_target", "_wrap", "loop")

    def __init__(self, target: Any, loop: AbstractEventLoop, *, wrap: tuple[type, ...] = ()) -> None:
        self._target = target
        self._wrap = wrap
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        method: Callable[..., Any] = value

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(method, *args, **kwargs)

        return call

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the loop (awaited when it returns an awaitable); its result here."""
        import asyncio
        import concurrent.futures
        import inspect

        name = getattr(fn, "__qualname__", repr(fn))
        refuse_on_loop(self.loop, f"the database call {name}()")
        self._check_running(name)

        async def on_loop() -> Any:
            result = fn(*args, **kwargs)
            return (await result) if inspect.isawaitable(result) else result

        coroutine = on_loop()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # closed between the check and the call
            coroutine.close()
            self._check_running(name)
            raise
        # Not future.result(timeout): a TimeoutError raised by the call itself would look like our own.
        while not concurrent.futures.wait([future], timeout=_LOOP_CHECK_S).done:
            if not self.loop.is_running() and not future.done():  # stopped with the call unfinished
                if not self.loop.is_closed():
                    future.cancel()  # the task is cancelled if the loop ever runs again
                self._check_running(name)
        try:
            result = future.result()
        except concurrent.futures.CancelledError:
            raise EventLoopError(
                f"{name} was cancelled on its event loop (the loop is shutting down?); nothing more was sent"
            ) from None
        if self._wrap and isinstance(result, self._wrap):
            return LoopBridge(result, self.loop, wrap=self._wrap)
        return result

    def _check_running(self, name: str) -> None:
        if self.loop.is_closed() or not self.loop.is_running():
            state = "closed" if self.loop.is_closed() else "not running"
            raise EventLoopError(
                f"{name}: the event loop the store's async client belongs to is {state}; open the store again "
                "(await vecembed.aopen_store(...)) in a loop that runs, and use it while that loop runs"
            )

    def __repr__(self) -> str:
        return f"<LoopBridge {type(self._target).__name__} on {self.loop!r}>"
