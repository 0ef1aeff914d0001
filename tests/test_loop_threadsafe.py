"""call_soon_threadsafe: scheduling callbacks from other threads.

https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.call_soon_threadsafe
"""

import contextvars
import subprocess
import sys
import textwrap
import threading
import time

import pytest

THREADS = 8
CALLS_PER_THREAD = 10_000


@pytest.mark.timeout(30)
def test_call_soon_threadsafe_from_many_threads_loses_no_callback(loop):
    total = THREADS * CALLS_PER_THREAD
    count = 0
    per_thread = [0] * THREADS
    barrier = threading.Barrier(THREADS)

    def increment(index):
        nonlocal count
        count += 1
        per_thread[index] += 1
        if count == total:
            loop.stop()

    def hammer(index):
        barrier.wait()
        for _ in range(CALLS_PER_THREAD):
            loop.call_soon_threadsafe(increment, index)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]

    def start():
        # The loop is running and has no timers: between batches it blocks
        # in its poll, and only the threads' calls can wake it up.
        for thread in threads:
            thread.start()

    loop.call_soon(start)
    loop.run_forever()
    for thread in threads:
        thread.join(10)
    assert count == total
    assert per_thread == [CALLS_PER_THREAD] * THREADS


@pytest.mark.timeout(10)
def test_call_soon_threadsafe_wakes_up_a_loop_blocked_in_run_forever(loop):
    running = threading.Event()
    woken = []

    def in_thread():
        running.wait(5)
        # Give the loop time to go from its last callback into a poll that
        # blocks without a timeout: only the wakeup can end it.
        time.sleep(0.1)
        woken.append(time.monotonic())
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=in_thread)
    thread.start()
    loop.call_soon(running.set)
    loop.run_forever()
    stopped = time.monotonic()
    thread.join(5)
    assert len(woken) == 1
    assert stopped - woken[0] < 1.0


@pytest.mark.timeout(10)
def test_call_soon_threadsafe_preserves_order_from_one_thread(loop):
    order = []
    done = threading.Event()

    def in_thread():
        for i in range(1000):
            loop.call_soon_threadsafe(order.append, i)
        loop.call_soon_threadsafe(loop.stop)
        done.set()

    loop.call_soon(lambda: threading.Thread(target=in_thread).start())
    loop.run_forever()
    assert done.wait(5)
    assert order == list(range(1000))


@pytest.mark.timeout(10)
def test_call_soon_threadsafe_before_the_loop_runs_is_run_by_it(loop):
    calls = []
    thread = threading.Thread(target=loop.call_soon_threadsafe, args=(calls.append, "early"))
    thread.start()
    thread.join(5)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["early"]


@pytest.mark.timeout(10)
def test_call_soon_threadsafe_returns_a_cancellable_handle(loop):
    calls = []
    handle = loop.call_soon_threadsafe(calls.append, "cancelled")
    handle.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == []
    assert handle.cancelled()


@pytest.mark.timeout(10)
def test_call_soon_threadsafe_runs_callback_in_the_given_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen = []
    loop.call_soon_threadsafe(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["in ctx"]


@pytest.mark.timeout(30)
def test_call_soon_threadsafe_racing_close_raises_runtime_error_and_nothing_breaks(
        loop_factory, child_env):
    # In a child process: a crash must fail this test, not the test run.
    source = textwrap.dedent(f"""
        import asyncio, threading
        outcomes = []
        for _ in range(5):
            loop = {loop_factory.new_loop_source}
            def hammer():
                while True:
                    try:
                        loop.call_soon_threadsafe(lambda: None)
                    except RuntimeError as exc:
                        outcomes.append(str(exc))
                        return
            threads = [threading.Thread(target=hammer) for _ in range(4)]
            for thread in threads:
                thread.start()
            loop.call_later(0.005, loop.stop)
            loop.run_forever()
            loop.close()
            for thread in threads:
                thread.join(5)
        print(sorted(set(outcomes)), len(outcomes))
    """)
    result = subprocess.run([sys.executable, "-c", source], env=child_env,
                            capture_output=True, text=True, timeout=25)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['Event loop is closed'] 20\n"


# asyncio's call_soon_threadsafe handles (events._ThreadSafeHandle, 3.14+,
# gh-128340) hold a lock across the callback, so that
# another thread's cancel() or cancelled() waits for a running callback to
# return; the loop's own thread is not blocked by it.
needs_thread_safe_handles = pytest.mark.skipif(
    not hasattr(__import__("asyncio").events, "_ThreadSafeHandle"),
    reason="this asyncio's call_soon_threadsafe handles take no lock "
    "(events._ThreadSafeHandle is new in 3.14)")


def _run_with_other_thread(loop, other):
    thread = threading.Thread(target=other)
    thread.start()
    try:
        loop.run_forever()
    finally:
        thread.join(10)


@needs_thread_safe_handles
@pytest.mark.timeout(30)
def test_cancel_from_another_thread_waits_for_the_running_callback(loop):
    started, cancelling, finished = (threading.Event() for _ in range(3))
    seen = []

    def callback():
        started.set()
        cancelling.wait(10)
        finished.set()

    def other():
        handle = loop.call_soon_threadsafe(callback)
        started.wait(10)
        cancelling.set()
        handle.cancel()
        seen.append((finished.is_set(), handle.cancelled()))
        loop.call_soon_threadsafe(loop.stop)

    _run_with_other_thread(loop, other)
    assert seen == [(True, True)]


@needs_thread_safe_handles
@pytest.mark.timeout(30)
def test_cancelled_from_another_thread_waits_for_the_running_callback(loop):
    started, asking, finished = (threading.Event() for _ in range(3))
    seen = []

    def callback():
        started.set()
        asking.wait(10)
        finished.set()

    def other():
        handle = loop.call_soon_threadsafe(callback)
        started.wait(10)
        asking.set()
        cancelled = handle.cancelled()
        seen.append((finished.is_set(), cancelled))
        loop.call_soon_threadsafe(loop.stop)

    _run_with_other_thread(loop, other)
    assert seen == [(True, False)]


@pytest.mark.timeout(30)
def test_a_callback_cancelling_its_own_thread_safe_handle_runs_to_the_end(loop):
    handles, seen = [], []

    def callback():
        handles[0].cancel()
        seen.append(handles[0].cancelled())
        loop.stop()

    handles.append(loop.call_soon_threadsafe(callback))
    loop.run_forever()
    assert seen == [True]
    assert handles[0].cancelled()


@pytest.mark.timeout(30)
def test_a_thread_safe_handle_cancelled_from_another_thread_before_it_runs_does_not_run(
        loop):
    ran, cancelled = [], threading.Event()

    def other():
        handle = loop.call_soon_threadsafe(ran.append, "ran")
        handle.cancel()
        cancelled.set()
        loop.call_soon_threadsafe(loop.stop)

    # The loop is busy (waiting for the cancel) when the callback arrives.
    loop.call_soon(cancelled.wait, 10)
    _run_with_other_thread(loop, other)
    assert ran == []
