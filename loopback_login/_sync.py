"""Between synchronous and asynchronous code: a coroutine run from sync code, a blocking call
run off the loop.

A coroutine from synchronous code, even inside a running event loop:

In Jupyter or IPython a loop is already running in the main thread, so
``asyncio.run`` fails there and nesting loops (nest_asyncio) breaks libraries.
The coroutine runs instead on a fresh loop in a worker thread; an interrupt
(Ctrl-C, a kernel interrupt) cancels it there and waits for its cleanup, so a
listening port is released before control returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Worker(threading.Thread):
    def __init__(self, coroutine: Coroutine[Any, Any, T]) -> None:
        super().__init__(name="loopback-login-sync", daemon=True)
        self._coroutine = coroutine
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._task = self._loop.create_task(self._coroutine)
            self._started.set()
            self.result = self._loop.run_until_complete(self._task)
        except BaseException as exc:  # handed to the calling thread
            self.error = exc
        finally:
            self._started.set()
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()

    def cancel(self) -> None:
        self._started.wait()
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    worker = _Worker(coroutine)
    worker.start()
    try:
        worker.join()
    except BaseException:
        worker.cancel()
        worker.join()
        raise
    if worker.error is not None:
        raise worker.error
    return worker.result  # type: ignore[no-any-return]


async def in_daemon_thread(function: Callable[[], T]) -> T:
    """Run a blocking call (the paste prompt) off the loop, in a daemon thread.

    Not the default executor: ``asyncio.run`` joins it at exit, so a prompt
    nobody answers would hold the program open after a timeout.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (function(), None)
        except BaseException as exc:
            outcome = (None, exc)
        # The loop may be gone by now (timed out and closed): nobody is waiting then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="loopback-login-prompt", daemon=True).start()
    return await future
