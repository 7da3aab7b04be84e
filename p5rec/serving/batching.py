"""Micro-batching: concurrent requests share one model call.

A request waits at most ``max_wait_ms`` for others to join it, a batch holds at most
``max_batch`` requests, and while the model runs a batch the next one gathers, so under
load the batches fill up and throughput grows with the number of clients. The model runs
in one worker thread (never two batches at once); the event loop stays free to accept
requests and answer health checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Collects ``submit``-ted items into batches for ``fn(items) -> results`` (same order).

    If a batch fails, its items are retried one by one, so one bad item fails alone.
    """

    def __init__(
        self,
        fn: Callable[[Sequence[Any]], list[Any]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.batch_sizes: Counter[int] = Counter()  # batch size -> number of model calls
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p5rec-model")

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._executor.shutdown(wait=True)

    async def submit(self, item: Any) -> Any:
        """The result of ``item`` once its batch has run (``fn``'s exception if it failed)."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())  # already waiting: no wait at all
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            items = [item for item, _ in batch]
            self.batch_sizes[len(items)] += 1
            try:
                results = await loop.run_in_executor(self._executor, self.fn, items)
                outcomes = [(True, r) for r in results]
            except Exception as err:
                if len(items) == 1:
                    outcomes = [(False, err)]
                else:
                    outcomes = [await self._one(loop, item) for item in items]
            for (_, future), (ok, value) in zip(batch, outcomes):
                if future.done():  # the client went away
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _one(self, loop, item) -> tuple[bool, Any]:
        self.batch_sizes[1] += 1
        try:
            return True, (await loop.run_in_executor(self._executor, self.fn, [item]))[0]
        except Exception as err:
            return False, err
