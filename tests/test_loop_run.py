"""Running and stopping the loop, closing it, and argument checking.

https://docs.python.org/3/library/asyncio-eventloop.html#running-and-stopping-the-loop
"""

import asyncio
import concurrent.futures
import gc
import logging
import socket
import threading

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)


# run_forever / stop ----------------------------------------------------------


def test_run_forever_returns_none_after_stop(loop):
    loop.call_soon(loop.stop)
    assert loop.run_forever() is None


def test_run_forever_can_be_called_again_after_stop(loop):
    calls = []
    for i in range(3):
        loop.call_soon(calls.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert calls == [0, 1, 2]


def test_stop_from_a_timer_ends_run_forever(loop):
    calls = []
    loop.call_later(0.01, calls.append, "timer")
    run_for(loop, 0.02)
    assert calls == ["timer"]


def test_is_running_is_true_only_while_running(loop):
    seen = []
    assert loop.is_running() is False
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True]
    assert loop.is_running() is False


def test_run_forever_inside_a_callback_raises_runtime_error(loop):
    errors = []

    def callback():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert errors == ["This event loop is already running"]


# run_until_complete ----------------------------------------------------------


def test_run_until_complete_returns_the_future_result(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 42)
    assert loop.run_until_complete(fut) == 42


def test_run_until_complete_raises_the_future_exception(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_exception, ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(fut)


def test_run_until_complete_runs_a_coroutine_and_returns_its_result(loop):
    async def coro(x):
        await asyncio.sleep(0)
        return x * 2

    assert loop.run_until_complete(coro(21)) == 42


def test_run_until_complete_raises_the_coroutine_exception(loop):
    async def coro():
        await asyncio.sleep(0)
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        loop.run_until_complete(coro())


def test_run_until_complete_accepts_an_awaitable(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


def test_tasks_run_with_asyncio_pure_python_running_loop_functions(loop, monkeypatch):
    # What CPython's TestPyGetEventLoop does: asyncio's running-loop
    # functions, Task and Future replaced by their pure-Python versions.
    # The loop's own tasks must still run, and see the loop as running.
    from asyncio import events, futures, tasks

    for name in ("_get_running_loop", "_set_running_loop", "get_running_loop",
                 "get_event_loop"):
        impl = getattr(events, "_py_" + name)
        monkeypatch.setattr(events, name, impl)
        monkeypatch.setattr(asyncio, name, impl)
    monkeypatch.setattr(tasks, "Task", tasks._PyTask)
    monkeypatch.setattr(asyncio, "Task", tasks._PyTask)
    monkeypatch.setattr(futures, "Future", futures._PyFuture)
    monkeypatch.setattr(asyncio, "Future", futures._PyFuture)

    async def main():
        assert asyncio.get_running_loop() is loop
        assert asyncio._get_running_loop() is loop
        await asyncio.sleep(0)
        assert asyncio.get_running_loop() is loop
        return "done"

    assert loop.run_until_complete(main()) == "done"
    assert asyncio._get_running_loop() is None


def test_run_until_complete_with_a_done_future_returns_at_once(loop):
    fut = loop.create_future()
    fut.set_result("done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_stops_when_the_future_is_done(loop):
    calls = []
    fut = loop.create_future()
    loop.call_soon(fut.set_result, None)
    loop.call_later(0.05, calls.append, "after")
    loop.run_until_complete(fut)
    assert calls == []
    assert not loop.is_running()


def test_run_until_complete_with_a_future_of_another_loop_raises_value_error(loop, loop_factory):
    other = loop_factory()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_run_until_complete_while_running_raises_runtime_error(loop):
    errors = []

    def callback():
        fut = loop.create_future()
        try:
            loop.run_until_complete(fut)
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert errors == ["This event loop is already running"]


def test_run_until_complete_stopped_before_the_future_is_done_raises_runtime_error(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="^Event loop stopped before Future completed.$"):
        loop.run_until_complete(fut)
    assert not fut.done()


def test_run_until_complete_cancelled_future_raises_cancelled_error(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_propagates_keyboard_interrupt_from_the_coroutine(loop):
    async def coro():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(coro())
    assert not loop.is_running()


# close ---------------------------------------------------------------------


def test_is_closed_is_true_only_after_close(loop):
    assert loop.is_closed() is False
    loop.close()
    assert loop.is_closed() is True


def test_close_is_idempotent(loop):
    loop.close()
    loop.close()
    assert loop.is_closed()


def test_close_while_running_raises_runtime_error(loop):
    errors = []

    def callback():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def _call_soon(loop):
    loop.call_soon(print)


def _call_later(loop):
    loop.call_later(1, print)


def _call_at(loop):
    loop.call_at(loop.time() + 1, print)


def _call_soon_threadsafe(loop):
    loop.call_soon_threadsafe(print)


def _run_forever(loop):
    loop.run_forever()


def _run_until_complete_future(loop):
    loop.run_until_complete(loop.create_future())


def _run_until_complete_coroutine(loop):
    coro = asyncio.sleep(0)
    try:
        loop.run_until_complete(coro)
    finally:
        coro.close()


def _create_task(loop):
    coro = asyncio.sleep(0)
    try:
        loop.create_task(coro)
    finally:
        coro.close()


def _run_in_executor(loop):
    loop.run_in_executor(None, print)


def _add_reader(loop):
    a, b = socket.socketpair()
    with a, b:
        loop.add_reader(a.fileno(), print)


def _add_writer(loop):
    a, b = socket.socketpair()
    with a, b:
        loop.add_writer(a.fileno(), print)


CLOSED_LOOP_CALLS = [
    _call_soon,
    _call_later,
    _call_at,
    _call_soon_threadsafe,
    _run_forever,
    _run_until_complete_future,
    _run_until_complete_coroutine,
    _create_task,
    _run_in_executor,
    _add_reader,
    _add_writer,
]


@pytest.mark.parametrize("call", CLOSED_LOOP_CALLS, ids=lambda f: f.__name__.lstrip("_"))
def test_method_of_a_closed_loop_raises_runtime_error(loop, call):
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        call(loop)


def test_close_shuts_down_the_default_executor(loop):
    workers = []

    def job():
        workers.append(threading.current_thread())

    loop.run_until_complete(loop.run_in_executor(None, job))
    loop.close()
    # close() calls shutdown(wait=False): the worker exits soon after.
    workers[0].join(timeout=5)
    assert not workers[0].is_alive()


def test_close_shuts_down_an_executor_set_as_default(loop):
    calls = []

    class Executor(concurrent.futures.ThreadPoolExecutor):
        def shutdown(self, *args, **kwargs):
            calls.append("shutdown")
            super().shutdown(*args, **kwargs)

    loop.set_default_executor(Executor(max_workers=1))
    loop.close()
    assert calls == ["shutdown"]


# wrong arguments --------------------------------------------------------------


async def _coroutine_function():
    pass


def _named(name, fn, debug=False):
    """A bad call; `debug`: asyncio checks it only in debug mode."""
    fn.__name__ = name
    fn.debug = debug
    return fn


def _call_soon_coroutine(loop):
    coro = _coroutine_function()
    try:
        loop.call_soon(coro)
    finally:
        coro.close()


BAD_CALLS = [
    _named("call_soon_keyword_argument", lambda loop: loop.call_soon(print, end="")),
    _named("call_later_delay_none", lambda loop: loop.call_later(None, print)),
    _named("call_later_delay_str", lambda loop: loop.call_later("1", print)),
    _named("call_at_when_none", lambda loop: loop.call_at(None, print)),
    _named("run_until_complete_not_awaitable", lambda loop: loop.run_until_complete(1)),
    _named("create_task_not_coroutine", lambda loop: loop.create_task(1)),
    _named("set_exception_handler_not_callable", lambda loop: loop.set_exception_handler(1)),
    _named("set_task_factory_not_callable", lambda loop: loop.set_task_factory(1)),
    _named("add_reader_bad_file_object", lambda loop: loop.add_reader("x", print)),
    _named("add_reader_negative_fd", lambda loop: loop.add_reader(-1, print)),
    _named("add_writer_bad_file_object", lambda loop: loop.add_writer(object(), print)),
    _named("remove_reader_bad_file_object", lambda loop: loop.remove_reader(1.5)),
    _named("remove_writer_negative_fd", lambda loop: loop.remove_writer(-1)),
    # Debug mode adds callback checks to the scheduling methods.
    _named("debug_call_soon_not_callable", lambda loop: loop.call_soon(1), debug=True),
    _named("debug_call_soon_coroutine_function",
           lambda loop: loop.call_soon(_coroutine_function), debug=True),
    _named("debug_call_soon_coroutine", _call_soon_coroutine, debug=True),
    _named("debug_call_later_not_callable", lambda loop: loop.call_later(1, 1), debug=True),
    _named("debug_call_later_coroutine_function",
           lambda loop: loop.call_later(1, _coroutine_function), debug=True),
    _named("debug_call_at_not_callable", lambda loop: loop.call_at(1, 1), debug=True),
    _named("debug_call_soon_threadsafe_not_callable",
           lambda loop: loop.call_soon_threadsafe(1), debug=True),
    _named("debug_run_in_executor_not_callable",
           lambda loop: loop.run_in_executor(None, 1), debug=True),
]


def _raised(call, loop):
    loop.set_debug(call.debug)
    try:
        call(loop)
    except Exception as exc:
        return type(exc)
    return None


@pytest.mark.parametrize("call", BAD_CALLS, ids=lambda f: f.__name__)
def test_wrong_arguments_raise_the_exception_type_of_the_stock_loop(loop, call):
    reference = asyncio.new_event_loop()
    try:
        expected = _raised(call, reference)
    finally:
        reference.close()
    assert expected is not None, "the stock asyncio loop accepted the call"
    assert _raised(call, loop) is expected


# Interrupted batches ------------------------------------------------------------


def test_callbacks_left_in_a_batch_cut_by_keyboard_interrupt_run_on_the_next_run(loop):
    order = []

    def interrupt():
        order.append("interrupt")
        raise KeyboardInterrupt

    loop.call_soon(order.append, "before")
    loop.call_soon(interrupt)
    loop.call_soon(order.append, "after")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert order == ["before", "interrupt"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["before", "interrupt", "after"]


def test_timers_left_in_a_batch_cut_by_system_exit_run_on_the_next_run(loop):
    order = []

    def leave():
        order.append("exit")
        raise SystemExit(0)

    now = loop.time()
    loop.call_at(now - 3, leave)
    loop.call_at(now - 2, order.append, "second")
    loop.call_at(now - 1, order.append, "third")
    with pytest.raises(SystemExit):
        loop.run_forever()
    assert order == ["exit"]
    run_for(loop, 0.01)
    assert order == ["exit", "second", "third"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_from_the_exception_handler_propagate_out_of_run_forever(
        loop, exc_type):
    def handler(lp, ctx):
        raise exc_type

    def failing():
        raise ValueError

    loop.set_exception_handler(handler)
    loop.call_soon(failing)
    loop.call_later(2, loop.stop)  # ends the test if the exception is lost
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()


def test_stop_before_run_until_complete_of_a_pending_future_raises_runtime_error(loop):
    fut = loop.create_future()
    loop.stop()
    with pytest.raises(RuntimeError, match="^Event loop stopped before Future completed.$"):
        loop.run_until_complete(fut)


def test_a_hundred_thousand_callbacks_scheduled_before_running_run_in_order(loop):
    order = []
    for i in range(100_000):
        loop.call_soon(order.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == list(range(100_000))


def test_callbacks_scheduled_while_a_large_batch_runs_keep_fifo_order(loop):
    # The ready queue grows while it is being consumed.
    order = []

    def spawn(i):
        order.append(("batch", i))
        loop.call_soon(order.append, ("next", i))

    for i in range(5000):
        loop.call_soon(spawn, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == [("batch", i) for i in range(5000)]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order[5000:] == [("next", i) for i in range(5000)]


def test_cancelling_a_pending_timer_after_close_is_harmless(loop):
    handle = loop.call_later(3600, print)
    soon = loop.call_soon(print)
    loop.close()
    handle.cancel()
    soon.cancel()
    assert handle.cancelled()
    assert soon.cancelled()


# What run_until_complete leaves behind ------------------------------------------


def _asyncio_errors(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.levelno >= logging.ERROR]


def test_run_until_complete_of_a_failing_coroutine_logs_nothing(loop, caplog):
    async def failing():
        raise ValueError("raised to the caller")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(ValueError):
            loop.run_until_complete(failing())
        gc.collect()
    assert _asyncio_errors(caplog) == []


def test_run_until_complete_stopped_early_does_not_report_its_task_destroyed(loop, caplog):
    async def forever():
        await loop.create_future()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(loop.stop)
        with pytest.raises(RuntimeError, match="^Event loop stopped before Future completed.$"):
            loop.run_until_complete(forever())
        gc.collect()
    assert _asyncio_errors(caplog) == []


def test_run_until_complete_returns_when_the_callback_completing_the_future_also_stops(loop):
    fut = loop.create_future()

    def complete_and_stop():
        fut.set_result("done")
        loop.stop()

    loop.call_soon(complete_and_stop)
    assert loop.run_until_complete(fut) == "done"
