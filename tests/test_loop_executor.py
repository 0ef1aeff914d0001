"""Executors and async generators.

https://docs.python.org/3/library/asyncio-eventloop.html#executing-code-in-thread-or-process-pools
https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.shutdown_asyncgens
"""

import asyncio
import concurrent.futures
import gc
import sys
import threading

import pytest

pytestmark = pytest.mark.timeout(10)


# run_in_executor ------------------------------------------------------------


def test_run_in_executor_runs_the_function_in_another_thread(loop):
    def job(a, b):
        return a + b, threading.current_thread()

    result, thread = loop.run_until_complete(loop.run_in_executor(None, job, 1, 2))
    assert result == 3
    assert thread is not threading.current_thread()


def test_run_in_executor_returns_an_awaitable_future_of_this_loop(loop):
    fut = loop.run_in_executor(None, int, "7")
    assert asyncio.isfuture(fut)
    assert fut.get_loop() is loop
    assert loop.run_until_complete(fut) == 7


def test_run_in_executor_propagates_the_exception(loop):
    def job():
        raise LookupError("from thread")

    with pytest.raises(LookupError, match="from thread"):
        loop.run_until_complete(loop.run_in_executor(None, job))


def test_run_in_executor_uses_the_given_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="given") as executor:
        name = loop.run_until_complete(
            loop.run_in_executor(executor, lambda: threading.current_thread().name))
    assert name.startswith("given")


def test_set_default_executor_is_used_by_run_in_executor_with_none(loop):
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="default")
    loop.set_default_executor(executor)
    name = loop.run_until_complete(
        loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("default")
    loop.run_until_complete(loop.shutdown_default_executor())


def test_shutdown_default_executor_joins_the_worker_threads(loop):
    thread = loop.run_until_complete(loop.run_in_executor(None, threading.current_thread))
    loop.run_until_complete(loop.shutdown_default_executor())
    assert not thread.is_alive()


def test_shutdown_default_executor_waits_for_running_jobs(loop):
    started = threading.Event()
    release = threading.Event()
    finished = []

    def job():
        started.set()
        release.wait(5)
        finished.append(True)

    async def main():
        job_future = loop.run_in_executor(None, job)
        await loop.run_in_executor(None, started.wait, 5)
        shutdown = loop.create_task(loop.shutdown_default_executor())
        await asyncio.sleep(0.01)
        assert not shutdown.done()
        release.set()
        await shutdown
        assert finished == [True]
        await job_future

    loop.run_until_complete(main())


def test_shutdown_default_executor_without_an_executor_returns(loop):
    assert loop.run_until_complete(loop.shutdown_default_executor()) is None


def test_run_in_executor_after_shutdown_default_executor_raises_runtime_error(loop):
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, int)


# Async generators ------------------------------------------------------------


def test_asyncgen_hooks_are_installed_only_while_running(loop):
    before = sys.get_asyncgen_hooks()
    inside = []
    loop.call_soon(lambda: inside.append(sys.get_asyncgen_hooks()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert inside[0].firstiter is not None
    assert inside[0].finalizer is not None
    assert inside[0] != before
    assert sys.get_asyncgen_hooks() == before


def test_shutdown_asyncgens_finalizes_a_suspended_async_generator(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("finalized")

    async def main():
        gen = agen()
        assert await gen.__anext__() == 1
        return gen

    gen = loop.run_until_complete(main())
    assert events == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == ["finalized"]
    del gen


def test_shutdown_asyncgens_reports_a_failing_aclose_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def agen():
        try:
            yield 1
        finally:
            raise ValueError("in finally")

    async def main():
        gen = agen()
        await gen.__anext__()
        return gen

    gen = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ValueError)
    assert contexts[0]["asyncgen"] is gen


def test_garbage_collected_async_generator_is_closed_by_the_loop(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            events.append("finalized")

    async def main():
        gen = agen()
        await gen.__anext__()
        del gen
        gc.collect()
        # The finalizer hook schedules aclose() as a task on this loop.
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == ["finalized"]


def test_async_generator_first_iterated_after_shutdown_asyncgens_warns(loop):
    async def agen():
        yield 1

    async def main():
        gen = agen()
        with pytest.warns(ResourceWarning):
            await gen.__anext__()
        await gen.aclose()

    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(main())


def test_asyncgen_hooks_are_restored_when_run_forever_raises(loop):
    before = sys.get_asyncgen_hooks()

    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert sys.get_asyncgen_hooks() == before
