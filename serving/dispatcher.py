"""The one way requests reach the model: a bounded queue in front of ``Predictor.predict`` and one worker thread.

Why one component: admission (backpressure), cancellation and coalescing all decide what the single worker
embeds next, so they share one lock and one count.

- **Backpressure**: at most ``max_in_flight`` articles queued or being embedded, and (``max_wait_s``) no more
  than the measured throughput clears in that many seconds. A request that would pass either bound is refused at
  once (``Overloaded`` -> 503 with ``Retry-After``) instead of waiting behind everyone: with a CPU-bound model,
  queueing more only makes every answer later (latency = queue / throughput).
- **Cancellation**: a request whose client hung up is marked; the worker drops marked requests before embedding
  them (one already in a forward pass finishes, its answer is discarded).
- **Coalescing**: a worker takes the first queued request, waits up to ``window_s`` for more, and predicts up
  to ``max_batch`` articles in one call, so concurrent single requests share forward passes the way a batch
  request does. Requests for different models (during a hot reload) are never mixed in one call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("serving")


class Overloaded(RuntimeError):
    """More articles in flight than the bound; ``retry_after`` is the estimated wait in whole seconds."""

    def __init__(self, in_flight: int, limit: int, retry_after: int) -> None:
        super().__init__(f"{in_flight} articles are being classified (the limit is {limit})")
        self.in_flight = in_flight
        self.limit = limit
        self.retry_after = retry_after


class Stopped(RuntimeError):
    """The dispatcher was stopped (the app is shutting down): nothing new is accepted."""


class ClientGone(RuntimeError):
    """The client disconnected before its answer was ready; nothing was (or will be) sent."""


@dataclass(eq=False)
class _Job:
    model: Any
    articles: Sequence[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    cancelled: bool = False
    queued_at: float = field(default_factory=time.perf_counter)


def _notify(job: _Job, result: Any = None, error: BaseException | None = None) -> None:
    try:
        job.loop.call_soon_threadsafe(_settle, job.future, result, error)
    except RuntimeError:
        pass  # the event loop has closed (shutdown): nobody is waiting any more


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class InferenceDispatcher:
    """Queue + worker thread around ``predict(model, articles) -> list`` (one result per article, in order)."""

    def __init__(self, predict: Callable[[Any, list[Any]], list[Any]], *, max_in_flight: int, max_batch: int,
                 window_s: float, max_wait_s: float | None = None, workers: int = 1) -> None:
        self._predict = predict
        self.max_in_flight = max_in_flight
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self.in_flight = 0  # articles admitted and not yet answered (queued + in the worker)
        self.dropped = 0  # requests removed because their client had gone
        self.calls = 0  # predict() calls made
        self.articles_done = 0
        self._rate = 0.0  # articles per second of the whole service while busy, smoothed
        self._active = 0  # workers inside predict()
        self._busy_since = 0.0  # when the service last went from idle to busy
        self._last_done = 0.0  # when a predict() call last returned
        self._stopping = False
        # Two workers by default: while one is in a forward pass (serialised by the embedder's lock), the other
        # cleans, tokenises and scores the lexical and sentence heads of its own group.
        self._threads = [threading.Thread(target=self._run, name=f"newsclf-inference-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # --- the event loop's side -------------------------------------------------------------------
    def admit(self, n: int) -> None:
        """Count ``n`` articles in, or raise ``Overloaded``. Separate from ``submit`` so a caller may refuse early."""
        with self._cond:
            if self._stopping:
                raise Stopped("the service is shutting down")
            if self.in_flight > 0:
                if self.in_flight + n > self.max_in_flight:
                    raise Overloaded(self.in_flight, self.max_in_flight, self._retry_after())
                # The wait this request would have, at the throughput measured so far: on a machine that got
                # slower (a busy neighbour), fewer articles are admitted, so answers stay within the target.
                if self.max_wait_s is not None and self._rate and (self.in_flight + n) / self._rate > self.max_wait_s:
                    raise Overloaded(self.in_flight, max(1, int(self._rate * self.max_wait_s)), self._retry_after())
            self.in_flight += n

    async def submit(self, model: Any, articles: Sequence[Any], disconnected: asyncio.Future | None = None) -> list:
        """Predictions for ``articles`` (already admitted with ``admit(len(articles))``).

        ``disconnected``: completes when the client hangs up; the request is then dropped (``ClientGone``).
        """
        loop = asyncio.get_running_loop()
        job = _Job(model, articles, loop, loop.create_future())
        with self._cond:
            if self._stopping:  # the workers may have left already: a queued job would wait for ever
                self.in_flight -= len(articles)
                raise Stopped("the service is shutting down")
            self._queue.append(job)
            self._cond.notify()
        if disconnected is None:
            return await job.future
        done, _ = await asyncio.wait({job.future, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if job.future in done:
            return job.future.result()
        with self._cond:
            job.cancelled = True  # the worker drops it if it has not started it
        raise ClientGone("the client disconnected")

    @property
    def stopped(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Accept nothing new; the workers finish what is queued, then exit."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _retry_after(self) -> int:
        rate = self._rate or 1.0
        return max(1, min(60, math.ceil(self.in_flight / rate)))

    # --- the worker's side -------------------------------------------------------------------------
    def _take(self) -> list[_Job]:
        """The next group: the oldest live request, then (within the window) more for the same model."""
        with self._cond:
            while True:
                while self._queue and self._queue[0].cancelled:
                    self._release(self._queue.popleft(), dropped=True)
                if self._queue or self._stopping:
                    break
                self._cond.wait()
            if not self._queue:
                return []
            first = self._queue.popleft()
            group, size = [first], len(first.articles)
            deadline = time.perf_counter() + self.window_s
            while size < self.max_batch:
                candidate = next((j for j in self._queue if j.model is first.model and not j.cancelled
                                  and size + len(j.articles) <= self.max_batch), None)
                if candidate is not None:
                    self._queue.remove(candidate)
                    group.append(candidate)
                    size += len(candidate.articles)
                    continue
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            return group

    def _release(self, job: _Job, *, dropped: bool = False) -> None:
        # Called with the lock held.
        self.in_flight -= len(job.articles)
        if dropped:
            self.dropped += 1
            _notify(job, None, ClientGone("dropped"))

    def _run(self) -> None:
        while True:
            group = self._take()
            if not group:
                return  # stopping
            with self._cond:
                live = [j for j in group if not j.cancelled]
                for j in group:
                    if j.cancelled:
                        self._release(j, dropped=True)
            if not live:
                continue
            articles = [a for j in live for a in j.articles]
            with self._cond:
                if self._active == 0:
                    self._busy_since = time.perf_counter()
                self._active += 1
            try:
                results = self._predict(live[0].model, articles)
                error = None
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                results, error = None, exc
            with self._cond:
                self.calls += 1
                self.articles_done += len(articles)
                self._active -= 1
                # The service's throughput, not one call's: the time since the previous answer (or since the
                # service got busy). Workers overlap (forward passes are serialised, the rest is not), so one
                # call's own duration would count the time it waited for the other and halve the estimate.
                now = time.perf_counter()
                interval = now - max(self._last_done, self._busy_since)
                self._last_done = now
                rate = len(articles) / max(interval, 1e-3)
                self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate
                start = 0
                for j in live:
                    n = len(j.articles)
                    part = None if results is None else list(results[start:start + n])
                    start += n
                    self._release(j)
                    _notify(j, part, error)


async def wait_disconnect(receive: Callable[[], Any]) -> None:
    """Returns when the ASGI server reports that the client disconnected (the body has been read already).

    uvicorn's receive() blocks until then. A server that answers with anything else (some test transports
    replay an empty body at once) cannot report a disconnection: then this waits until cancelled, rather than
    spinning on receive() and starving the event loop.
    """
    message = await receive()
    if message["type"] == "http.disconnect":
        return
    await asyncio.Event().wait()  # never set: cancelled once the answer is ready
