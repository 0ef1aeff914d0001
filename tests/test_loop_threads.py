"""The running loop, one loop per thread, and fork().

https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.get_running_loop
"""

import asyncio
import os
import threading

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)


def test_get_running_loop_in_a_callback_returns_the_loop(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    loop.call_later(0, lambda: seen.append(asyncio.get_running_loop()))
    run_for(loop, 0.01)
    assert seen == [loop, loop]


def test_get_running_loop_in_a_coroutine_returns_the_loop(loop):
    async def main():
        return asyncio.get_running_loop()

    assert loop.run_until_complete(main()) is loop


def test_get_event_loop_in_a_callback_returns_the_running_loop(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_event_loop()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [loop]


def test_get_running_loop_outside_the_loop_raises_runtime_error(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()


def test_running_loop_is_reset_when_run_forever_raises(loop):
    def callback():
        raise KeyboardInterrupt

    loop.call_soon(callback)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# One attempt per test: on Python 3.13.0 a refused run_forever() of a stock
# loop clears the running loop of the thread as it fails.
RUNS = {
    "run_forever": lambda other: other.run_forever(),
    "run_until_complete": lambda other: other.run_until_complete(other.create_future()),
}


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
@pytest.mark.parametrize("other_kind", ["same", "stock"])
def test_running_a_loop_while_another_runs_in_the_same_thread_raises_runtime_error(
        loop, loop_factory, other_kind, run):
    other = loop_factory() if other_kind == "same" else asyncio.new_event_loop()
    errors = []

    def callback():
        try:
            run(other)
        except RuntimeError as exc:
            errors.append(str(exc))

    try:
        loop.call_soon(callback)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        other.close()
    assert errors == ["Cannot run the event loop while another loop is running"]


def test_loop_runs_inside_a_stock_loop_callback_raise_runtime_error(loop):
    # The other direction: a stock asyncio loop is running, and this loop
    # must see it.
    stock = asyncio.new_event_loop()
    errors = []

    def callback():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))

    try:
        stock.call_soon(callback)
        stock.call_soon(stock.stop)
        stock.run_forever()
    finally:
        stock.close()
    assert errors == ["Cannot run the event loop while another loop is running"]


@pytest.mark.timeout(20)
def test_loops_run_in_several_threads_at_once(loop_factory):
    threads = 4
    barrier = threading.Barrier(threads)
    results = [None] * threads

    async def main(index):
        loop = asyncio.get_running_loop()
        # Every thread's loop is running when each passes the barrier.
        await loop.run_in_executor(None, barrier.wait, 5)
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, index)
        value = await fut
        return (value, asyncio.get_running_loop() is loop, threading.get_ident())

    def in_thread(index):
        loop = loop_factory()
        try:
            results[index] = loop.run_until_complete(main(index))
        finally:
            loop.close()

    workers = [threading.Thread(target=in_thread, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert [r[0] for r in results] == list(range(threads))
    assert all(r[1] for r in results)
    assert len({r[2] for r in results}) == threads


def test_loop_created_in_one_thread_can_run_in_another(loop):
    results = []

    def in_thread():
        loop.call_soon(lambda: results.append(threading.current_thread()))
        loop.call_soon(loop.stop)
        loop.run_forever()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert results == [thread]


# Worker threads of earlier tests may still be exiting; the child below only
# uses a loop it creates itself.
FORK_WARNING = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning")


def _in_child(body):
    """Run body() in a forked child; return its exit status (0: passed)."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = 0 if body() else 3
        except BaseException:
            import traceback

            traceback.print_exc()
            status = 2
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


@FORK_WARNING
def test_child_of_fork_can_create_and_run_a_new_loop(loop, loop_factory):
    # The parent's loop has run before the fork.
    loop.run_until_complete(asyncio.sleep(0))

    def body():
        child_loop = loop_factory()
        try:
            async def main():
                await asyncio.sleep(0.01)
                return "child ran"

            return child_loop.run_until_complete(main()) == "child ran"
        finally:
            child_loop.close()

    assert _in_child(body) == 0
    # And the parent's loop still works.
    assert loop.run_until_complete(asyncio.sleep(0, "parent")) == "parent"


@FORK_WARNING
def test_child_of_fork_can_use_timers_and_threadsafe_calls(loop_factory):
    def body():
        child_loop = loop_factory()
        try:
            calls = []

            def from_thread():
                child_loop.call_soon_threadsafe(calls.append, "threadsafe")
                child_loop.call_soon_threadsafe(child_loop.call_later, 0.01, child_loop.stop)

            child_loop.call_soon(lambda: threading.Thread(target=from_thread).start())
            child_loop.run_forever()
            return calls == ["threadsafe"]
        finally:
            child_loop.close()

    assert _in_child(body) == 0
