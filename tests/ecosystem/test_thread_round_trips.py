"""asyncio.to_thread and asyncio.run_coroutine_threadsafe round trips, the
way libraries that mix threads and a loop use them (a blocking API calling
back into the loop, a loop in a background thread serving a sync caller)."""

import asyncio
import concurrent.futures
import contextvars
import threading

import pytest

from eco import check_loop_kind, check_task_kind

pytestmark = pytest.mark.timeout(30)

request_id = contextvars.ContextVar("request_id", default=None)


def test_to_thread_runs_in_a_worker_with_the_callers_context(arun):
    async def main():
        request_id.set("req-1")
        loop_thread = threading.get_ident()

        def work(x, *, y):
            return x + y, request_id.get(), threading.get_ident() != loop_thread

        result = await asyncio.to_thread(work, 1, y=2)
        with pytest.raises(KeyError, match="missing"):
            await asyncio.to_thread(lambda: {}["missing"])
        many = await asyncio.gather(*(asyncio.to_thread(pow, i, 2) for i in range(10)))
        return result, many

    assert arun(main) == ((3, "req-1", True), [i * i for i in range(10)])


def test_to_thread_calls_back_into_the_loop_with_run_coroutine_threadsafe(
    arun, loop_factory
):
    async def main():
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        async def on_loop(x):
            check_loop_kind(loop_factory.name)
            check_task_kind(loop_factory.name)
            await asyncio.sleep(0)
            return x * 10, threading.get_ident() == loop_thread

        async def fails():
            await asyncio.sleep(0)
            raise LookupError("from the loop")

        def blocking_api():
            # A worker thread drives coroutines on the loop and blocks on them.
            first = asyncio.run_coroutine_threadsafe(on_loop(4), loop)
            assert isinstance(first, concurrent.futures.Future)
            value = first.result(timeout=10)
            bad = asyncio.run_coroutine_threadsafe(fails(), loop)
            try:
                bad.result(timeout=10)
            except LookupError as exc:
                error = str(exc)
            return value, error

        return await asyncio.to_thread(blocking_api)

    assert arun(main) == ((40, True), "from the loop")


def test_cancelling_the_concurrent_future_cancels_the_task(arun):
    async def main():
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        outcome = loop.create_future()

        async def forever():
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcome.set_result("task cancelled")
                raise

        def from_thread():
            fut = asyncio.run_coroutine_threadsafe(forever(), loop)
            asyncio.run_coroutine_threadsafe(started.wait(), loop).result(timeout=10)
            fut.cancel()
            try:
                fut.result(timeout=10)
            except concurrent.futures.CancelledError:
                return "future cancelled"

        in_thread = await asyncio.to_thread(from_thread)
        return in_thread, await outcome

    assert arun(main) == ("future cancelled", "task cancelled")


def test_loop_in_a_background_thread_serves_a_sync_caller(loop, loop_factory):
    ready = threading.Event()

    def run_loop():
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    async def add(a, b):
        check_loop_kind(loop_factory.name)
        await asyncio.sleep(0.001)
        return a + b

    thread = threading.Thread(target=run_loop, name="loop")
    thread.start()
    try:
        assert ready.wait(10)
        futures = [asyncio.run_coroutine_threadsafe(add(i, i), loop) for i in range(20)]
        results = [f.result(timeout=10) for f in futures]
        # A coroutine that itself hops to a worker thread and back.
        nested = asyncio.run_coroutine_threadsafe(
            asyncio.to_thread(sum, range(5)), loop
        ).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert not thread.is_alive()
    assert results == [2 * i for i in range(20)]
    assert nested == 10
    # The loop stopped cleanly and can shut its executor down.
    loop.run_until_complete(loop.shutdown_default_executor())
