"""Hostile callers: objects and callbacks that re-enter the loop.

Everywhere fastloop calls out to Python -- done callbacks, handles, fd
readers and writers, task steps, exception handlers, timers,
call_soon_threadsafe, and the hidden call-outs: ``__eq__``, ``__hash__``,
``fileno()``, and the ``__del__`` of whatever a dropped reference frees (a
value in a handle's context, a future, an exception) -- the Python code may
close the loop, remove watches, complete futures, re-enter the loop or
raise.  Each test runs on fastloop and stock asyncio and asserts what stock
asyncio does.  Tests that would crash the interpreter on a regression run
their program in a child process, so a crash fails one test, not the run.
"""

import asyncio
import contextvars
import gc
import math
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import fastloop

from conftest import run_for

PY_VERSION = sys.version_info[:2]


def run_child(loop_factory, child_env, body, timeout=60, env=None):
    """Run `body` (Python source) in a child process in which `loop` is a
    fresh loop of the parametrized kind and `FL` is true on fastloop.
    Returns the child's stdout; fails on a crash or a non-zero exit."""
    source = (
        "import asyncio, sys, gc\n"
        f"loop = {loop_factory.new_loop_source}\n"
        f"FL = {loop_factory.name == 'fastloop'!r}\n"
        + textwrap.dedent(body)
    )
    result = subprocess.run(
        [sys.executable, "-c", source],
        env={**child_env, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, (
        f"child exited with {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def outcome(fn, *args, **kwargs):
    """What a call did: ('ok', value) or (exception type name, message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - recorded, compared by the test
        return (type(exc).__name__, str(exc))


# ---- a Loop whose __init__ never ran; a closed loop ---------------------

UNINITIALISED_PROGRAM = """
import socket
a, b = socket.socketpair()
fd = a.fileno()
raw = type(loop).__new__(type(loop))
loop.close()
def cb(*args):
    pass
async def coro():
    pass
calls = {
    "_run_once": lambda: raw._run_once(),
    "_run_forever_core": lambda: raw._run_forever_core(),
    "call_soon": lambda: raw.call_soon(cb),
    "call_soon_threadsafe": lambda: raw.call_soon_threadsafe(cb),
    "call_later": lambda: raw.call_later(1, cb),
    "call_at": lambda: raw.call_at(1, cb),
    "_call_soon": lambda: raw._call_soon(cb, (), None),
    "_add_callback": lambda: raw._add_callback(None),
    "_add_callback_signalsafe": lambda: raw._add_callback_signalsafe(None),
    "_write_to_self": lambda: raw._write_to_self(),
    "_process_events": lambda: raw._process_events([]),
    "_check_thread": lambda: raw._check_thread(),
    "add_reader": lambda: raw.add_reader(fd, cb),
    "add_writer": lambda: raw.add_writer(fd, cb),
    "_add_reader": lambda: raw._add_reader(fd, cb),
    "_add_writer": lambda: raw._add_writer(fd, cb),
    "remove_reader": lambda: raw.remove_reader(fd),
    "remove_writer": lambda: raw.remove_writer(fd),
    "_remove_reader": lambda: raw._remove_reader(fd),
    "_remove_writer": lambda: raw._remove_writer(fd),
    "_io_events": lambda: raw._io_events(fd),
    "_close_core": lambda: raw._close_core(),
    "create_future": lambda: raw.create_future(),
    "create_task": lambda: raw.create_task(c),
    "stop": lambda: raw.stop(),
    "is_running": lambda: raw.is_running(),
    "is_closed": lambda: raw.is_closed(),
    "time": lambda: raw.time(),
    "get_debug": lambda: raw.get_debug(),
    "run_until_complete": lambda: raw.run_until_complete(c),
    "close": lambda: raw.close(),
}
for name, call in calls.items():
    c = coro()
    try:
        call()
        result = "ok"
    except AttributeError as exc:
        # asyncio's own methods meet the missing attributes (and fastloop's
        # core has no such method where asyncio's has one: _run_forever_core).
        result = "AttributeError"
    except RuntimeError as exc:
        result = "RuntimeError"
    except Exception as exc:
        result = type(exc).__name__
    c.close()
    print(name, result)
"""


def test_methods_of_an_uninitialised_loop_raise_instead_of_crashing(
        loop_factory, child_env):
    # Loop.__new__(Loop) without __init__: asyncio's methods fail on missing
    # attributes; fastloop's C methods must refuse it (no libev loop), not
    # crash.
    out = run_child(loop_factory, child_env, UNINITIALISED_PROGRAM)
    results = dict(line.split() for line in out.splitlines())
    assert len(results) == 31
    if loop_factory.name == "fastloop":
        # Every method raises (RuntimeError from the C core; AttributeError
        # where asyncio's Python code meets a missing attribute first).
        assert "ok" not in results.values(), results
        from fastloop import _core
        core_methods = [name for name in results
                        if name in vars(_core.Loop)]
        assert len(core_methods) >= 25
        for name in core_methods:
            assert results[name] == "RuntimeError", (name, results[name])
    else:
        # Stock asyncio still answers the ones that touch no state.
        assert results["time"] == "ok"


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning")
def test_uninitialised_loop_error_message():
    # (Its __del__, asyncio's, meets the refusal too: reported unraisable,
    # as asyncio's own uninitialised loop's AttributeError is.)
    from fastloop import _core
    raw = _core.Loop.__new__(_core.Loop)
    with pytest.raises(RuntimeError, match="not initialized"):
        raw._run_once()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="not initialized"):
        fastloop.Task(coro, loop=raw)
    coro.close()
    raw2 = fastloop.Loop.__new__(fastloop.Loop)
    with pytest.raises(RuntimeError, match="not initialized"):
        raw2.call_soon(print)


CLOSED_PROGRAM = """
import socket
a, b = socket.socketpair()
fd = a.fileno()
H = type(loop.call_soon(print))
loop.close()
def cb(*args):
    pass
async def coro():
    pass
calls = {
    "call_soon": lambda: loop.call_soon(cb),
    "call_later": lambda: loop.call_later(1, cb),
    "call_at": lambda: loop.call_at(1, cb),
    "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(cb),
    "_call_soon": lambda: loop._call_soon(cb, (), None),
    "_add_callback": lambda: loop._add_callback(H(cb, (), loop)),
    "_add_callback_signalsafe":
        lambda: loop._add_callback_signalsafe(H(cb, (), loop)),
    "_write_to_self": lambda: loop._write_to_self(),
    "run_forever": lambda: loop.run_forever(),
    "run_until_complete": lambda: loop.run_until_complete(c),
    "stop": lambda: loop.stop(),
    "is_running": lambda: loop.is_running(),
    "is_closed": lambda: loop.is_closed(),
    "time": lambda: type(loop.time()).__name__,
    "get_debug": lambda: loop.get_debug(),
    "add_reader": lambda: loop.add_reader(fd, cb),
    "add_writer": lambda: loop.add_writer(fd, cb),
    "_add_reader": lambda: loop._add_reader(fd, cb),
    "_add_writer": lambda: loop._add_writer(fd, cb),
    "remove_reader": lambda: loop.remove_reader(fd),
    "remove_writer": lambda: loop.remove_writer(fd),
    "_remove_reader": lambda: loop._remove_reader(fd),
    "_remove_writer": lambda: loop._remove_writer(fd),
    "create_future": lambda: type(loop.create_future()).__name__,
    "create_task": lambda: loop.create_task(c),
    "_process_events": lambda: loop._process_events([]),
    "close": lambda: loop.close(),
}
for name, call in calls.items():
    c = coro()
    try:
        r = call()
        out = type(r).__name__ if hasattr(r, "cancel") else repr(r)
    except Exception as exc:
        out = f"{type(exc).__name__}: {exc}"
    c.close()
    print(f"{name} -> {out}")
# Not asyncio's, but never a crash: asyncio fails on its closed selector.
try:
    loop._run_once()
except Exception as exc:
    print("_run_once raised")
"""


def test_methods_of_a_closed_loop_do_what_asyncio_does(loop_factory,
                                                      child_env):
    out = run_child(loop_factory, child_env, CLOSED_PROGRAM)
    closed = "RuntimeError: Event loop is closed"
    expected = {
        "call_soon": closed, "call_later": closed, "call_at": closed,
        "call_soon_threadsafe": closed, "_call_soon": "Handle",
        "_add_callback": "None", "_add_callback_signalsafe": "None",
        "_write_to_self": "None", "run_forever": closed,
        "run_until_complete": closed, "stop": "None", "is_running": "False",
        "is_closed": "True", "time": "'float'", "get_debug": "False",
        "add_reader": closed, "add_writer": closed, "_add_reader": closed,
        "_add_writer": closed, "remove_reader": "False",
        "remove_writer": "False", "_remove_reader": "False",
        "_remove_writer": "False", "create_future": "'Future'",
        "create_task": closed, "_process_events": "None", "close": "None",
    }
    lines = out.splitlines()
    assert lines[-1] == "_run_once raised"
    assert dict(line.split(" -> ") for line in lines[:-1]) == expected


# ---- fd watches: a dropped handle's last reference runs code -----------

DROPPED_HANDLE_PROGRAM = """
import contextvars, socket
action, cancelled = ACTION, CANCELLED
a, b = socket.socketpair()
a.setblocking(False)
fd = a.fileno()
var = contextvars.ContextVar("v")
log = []

class Evil:
    # Lives only in the context of the handle that gets cancelled: it dies
    # when the loop unregisters that handle, i.e. while the loop is handling
    # the fd's events.
    def __del__(self):
        if action == "remove_writer":
            log.append(("del", loop._remove_writer(fd)))
        elif action == "remove_reader":
            log.append(("del", loop._remove_reader(fd)))
        elif action == "remove_both":
            log.append(("del", loop._remove_reader(fd),
                        loop._remove_writer(fd)))
        elif action == "add_writer":
            loop._add_writer(fd, log.append, "w2")
            log.append("del")
        elif action == "stop":
            loop.stop()
            log.append("del")

def register(add, tag):
    var.set(Evil())
    return add(fd, log.append, tag)

ctx = contextvars.copy_context()
if cancelled == "reader":
    h = ctx.run(register, loop._add_reader, "r")
    loop._add_writer(fd, log.append, "w")
else:
    loop._add_reader(fd, log.append, "r")
    h = ctx.run(register, loop._add_writer, "w")
del ctx
h.cancel()
del h
gc.collect()
b.send(b"x")            # readable and writable: both directions at once
for _ in range(3):
    loop.call_soon(loop.stop)
    loop.run_forever()
print(log)
"""

DROPPED_HANDLE_CASES = {
    ("remove_writer", "reader"): [("del", True)],
    ("remove_writer", "writer"): [("del", False), "r", "r", "r"],
    ("remove_reader", "reader"): [("del", False), "w", "w", "w"],
    ("remove_reader", "writer"): [("del", True)],
    ("remove_both", "reader"): [("del", False, True)],
    ("remove_both", "writer"): [("del", True, False)],
    ("add_writer", "reader"): ["del", "w2", "w2"],
    ("add_writer", "writer"): ["del", "r", "r", "w2", "r", "w2"],
    ("stop", "reader"): ["del", "w", "w", "w"],
    ("stop", "writer"): ["del", "r", "r", "r"],
}


@pytest.mark.parametrize("action,cancelled", sorted(DROPPED_HANDLE_CASES))
def test_del_run_by_a_dropped_fd_handle_changes_the_watches(
        loop_factory, child_env, action, cancelled):
    # A cancelled reader (or writer) found ready is unregistered, which
    # drops the loop's last reference to it; that can run any code (here a
    # __del__ of a value in the handle's context) that changes the fd's
    # watches while the loop is handling the fd's events.  (fastloop freed
    # the watch and read it for the other direction: a crash under
    # PYTHONMALLOC=debug.)
    program = DROPPED_HANDLE_PROGRAM.replace("ACTION", repr(action)).replace(
        "CANCELLED", repr(cancelled))
    out = run_child(loop_factory, child_env, program,
                    env={"PYTHONMALLOC": "debug"})
    assert out == f"{DROPPED_HANDLE_CASES[action, cancelled]!r}\n"


# ---- NaN and infinite deadlines ---------------------------------------

def test_sleep_nan_returns_at_once_or_raises_value_error(loop_factory,
                                                         child_env):
    # asyncio.sleep(nan): 3.11/3.12 schedule call_later(nan), which runs at
    # once when it is the earliest timer; 3.13 raises ValueError.  fastloop
    # hung (a NaN poll timeout).
    out = run_child(loop_factory, child_env, """
        try:
            print(loop.run_until_complete(asyncio.sleep(float("nan"), "r")))
        except ValueError as exc:
            print("ValueError", exc)
    """, timeout=30)
    if PY_VERSION >= (3, 13):
        assert out == "ValueError Invalid delay: NaN (not a number)\n"
    else:
        assert out == "r\n"


@pytest.mark.parametrize("first", ["nan", "stop"])
@pytest.mark.parametrize("method", ["call_later", "call_at"])
def test_nan_timer_runs_and_does_not_block_the_loop(loop_factory, child_env,
                                                    first, method):
    # A NaN timer that was the earliest blocked the loop forever (even an
    # earlier call_later(stop) never fired); one that was not never ran.
    # asyncio: NaN compares false with everything, so a NaN timer stays
    # where its heap put it -- at the top when the heap was empty -- and
    # runs as soon as it is at the top (scheduled behind an earlier timer,
    # it runs when that one does).  3.13+ asyncio computes its poll timeout
    # from a NaN at the top of the heap of an idle loop: run_forever raises
    # ValueError.
    out = run_child(loop_factory, child_env, f"""
        log = []
        nan = float("nan")
        def schedule_nan():
            h = loop.{method}(nan, log.append, "nan")
            log.append(("when", repr(h.when())))
        if {first!r} == "nan":
            schedule_nan()
        loop.call_later(0.01, loop.stop)
        if {first!r} == "stop":
            schedule_nan()
        try:
            loop.run_forever()
        except ValueError as exc:
            log.append(str(exc))
        print(log)
    """, timeout=30)
    if first == "nan" and PY_VERSION >= (3, 13):
        assert out == ("[('when', 'nan'), "
                       "'cannot convert float NaN to integer']\n")
    else:
        assert out == "[('when', 'nan'), 'nan']\n"


def test_nan_timer_runs_at_once_on_a_busy_loop(loop):
    # With callbacks ready the poll does not wait (no timeout computed):
    # the NaN timer at the top of the heap runs in that iteration.
    log = []
    loop.call_later(float("nan"), log.append, "nan")
    loop.call_soon(log.append, "soon")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert log == ["soon", "nan"]


def test_nan_timer_handle_compares_as_asyncios(loop):
    nan = loop.call_later(float("nan"), lambda: None)
    soon = loop.call_later(0, lambda: None)
    try:
        assert math.isnan(nan.when())
        assert "when=nan" in repr(nan)
        assert not nan < soon and not nan > soon
        assert not soon < nan and not soon > nan
        assert nan != soon
        # asyncio's __eq__ compares the deadlines first: NaN != NaN, even
        # for the same handle.
        assert not nan == nan and nan != nan
    finally:
        nan.cancel()
        soon.cancel()


def test_infinite_and_minus_infinite_deadlines(loop):
    inf = float("inf")
    log = []
    never = loop.call_later(inf, log.append, "inf")
    loop.call_later(0.01, log.append, "early")
    loop.call_at(-inf, log.append, "-inf")
    loop.call_later(-inf, log.append, "later -inf")
    loop.call_soon(log.append, "soon")
    run_for(loop, 0.05)
    assert log == ["soon", "-inf", "later -inf", "early"]
    assert never.when() == inf and not never.cancelled()
    never.cancel()


def test_loop_waiting_for_an_infinite_timer_wakes_for_threadsafe_calls(loop):
    # The poll for a timer at +inf waits (a bounded time, asyncio: one day
    # at a time) and still wakes for call_soon_threadsafe.
    handle = loop.call_later(float("inf"), lambda: None)
    started = threading.Event()
    loop.call_soon(started.set)
    thread = threading.Thread(
        target=lambda: started.wait(10) and loop.call_soon_threadsafe(
            loop.stop))
    thread.start()
    loop.run_forever()
    thread.join(10)
    handle.cancel()
    assert started.is_set()


@pytest.mark.parametrize("duration", [float("nan"), float("inf")])
def test_nan_or_infinite_slow_callback_duration_logs_nothing(loop, caplog,
                                                             duration):
    import logging
    import time
    loop.set_debug(True)
    loop.slow_callback_duration = duration

    def slow_callback():
        # Busy work standing in for a callback that blocks the loop.
        deadline = time.monotonic() + 0.02
        while time.monotonic() < deadline:
            pass

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(slow_callback)
        run_for(loop, 0)
    assert [r for r in caplog.records if "Executing" in r.getMessage()] == []


# ---- exception types of bad arguments ---------------------------------

class RaisingFileno:
    def fileno(self):
        raise RuntimeError("fileno() failed")


@pytest.mark.parametrize("method", ["add_reader", "add_writer",
                                    "_add_reader", "_add_writer"])
def test_add_watch_without_a_callback_is_a_type_error(loop, method):
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(TypeError, match="callback"):
            getattr(loop, method)(a.fileno())
        with pytest.raises(TypeError):
            getattr(loop, method)()
        # The argument error comes first, before fileno() is called.
        with pytest.raises(TypeError, match="callback"):
            getattr(loop, method)(RaisingFileno())
        with pytest.raises(RuntimeError, match="fileno"):
            getattr(loop, method)(RaisingFileno(), print)


@pytest.mark.parametrize("fd", [2**31, 2**63, 2**64, 2**100])
@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_add_watch_of_an_fd_no_c_int_holds_is_an_overflow_error(loop, method,
                                                                 fd):
    with pytest.raises(OverflowError):
        getattr(loop, method)(fd, print)


@pytest.mark.parametrize("fd", [-1, -2**63, -2**100])
def test_negative_fds_are_value_errors(loop, fd):
    with pytest.raises(ValueError, match="Invalid file descriptor"):
        loop.add_reader(fd, print)
    with pytest.raises(ValueError, match="Invalid file descriptor"):
        loop.remove_writer(fd)


@pytest.mark.parametrize("fd", [2**31, 2**63, 2**64, 2**100, 10**6])
@pytest.mark.parametrize("method", ["remove_reader", "remove_writer",
                                    "_remove_reader", "_remove_writer"])
def test_removing_an_fd_that_cannot_be_watched_returns_false(loop, method,
                                                             fd):
    assert getattr(loop, method)(fd) is False


def test_remove_reader_propagates_a_raising_fileno(loop):
    with pytest.raises(RuntimeError, match="fileno"):
        loop.remove_reader(RaisingFileno())


def _handle_types(loop_factory):
    if loop_factory.name == "fastloop":
        return fastloop.Handle, fastloop.TimerHandle
    return asyncio.Handle, asyncio.TimerHandle


@pytest.mark.parametrize("not_a_loop", [123, None, object()])
def test_handle_refuses_what_is_not_a_loop(loop_factory, not_a_loop):
    # asyncio's Handle.__init__ asks its loop for get_debug().
    handle_type, timer_type = _handle_types(loop_factory)
    with pytest.raises(AttributeError, match="get_debug"):
        handle_type(print, (), not_a_loop)
    with pytest.raises(AttributeError, match="get_debug"):
        timer_type(1.0, print, (), not_a_loop)


def test_handle_made_by_hand_remembers_where_in_debug_mode(loop_factory):
    handle_type, timer_type = _handle_types(loop_factory)
    for loop in (fastloop.new_event_loop(), asyncio.new_event_loop()):
        try:
            loop.set_debug(True)
            handle = handle_type(print, (), loop)
            timer = timer_type(1.0, print, (), loop)
            for h in (handle, timer):
                frame = h._source_traceback[-1]
                assert frame.name == (
                    "test_handle_made_by_hand_remembers_where_in_debug_mode")
            handle.cancel()
            assert repr(handle).startswith("<Handle cancelled print() "
                                           "created at ")
            loop.set_debug(False)
            assert handle_type(print, (), loop)._source_traceback is None
        finally:
            loop.close()


def test_cancelling_a_timer_the_gc_cleared_does_not_crash(loop_factory,
                                                          child_env):
    # The garbage collector may clear a TimerHandle (its tp_clear drops its
    # reference to the loop) while the handle is still in the loop's heap,
    # and code running during that collection may still cancel it.  Pure
    # Python cannot order a collection that way, so the child calls the
    # type's tp_clear itself (through ctypes), then cancels the timer.
    out = run_child(loop_factory, child_env, """
        import ctypes
        get_slot = ctypes.pythonapi.PyType_GetSlot
        get_slot.restype = ctypes.c_void_p
        get_slot.argtypes = [ctypes.py_object, ctypes.c_int]
        Py_tp_clear = 51
        timer = loop.call_later(10, print, "never")
        clear = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object)(
            get_slot(type(timer), Py_tp_clear))
        clear(timer)
        try:
            timer.cancel()
            print("cancelled", timer.cancelled())
        except AttributeError:
            print("AttributeError")     # asyncio's: its __dict__ is gone
        loop.close()
        print("survived")
    """)
    if loop_factory.name == "fastloop":
        assert out == "cancelled True\nsurvived\n"
    else:
        assert out.endswith("survived\n")


def test_an_error_scheduling_callbacks_from_set_exception_is_raised(loop):
    fut = loop.create_future()
    fut.add_done_callback(lambda f: None)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        fut.set_exception(ValueError("x"))
    # Finished all the same, and (as asyncio's) not logged as unretrieved.
    assert fut.done() and not fut._log_traceback


def test_an_error_scheduling_a_failed_tasks_callbacks_is_reported(
        loop_factory):
    # The task's coroutine raised; scheduling its done callbacks failed:
    # that error reaches the exception handler; the task holds its result.
    base = fastloop.Loop if loop_factory.name == "fastloop" else \
        asyncio.SelectorEventLoop

    class FailingLoop(base):
        fail = False

        def call_soon(self, callback, *args, context=None):
            if self.fail and getattr(callback, "__name__", "") == "done":
                raise ZeroDivisionError("no scheduling")
            return super().call_soon(callback, *args, context=context)

    loop = FailingLoop()
    reports = []
    loop.set_exception_handler(
        lambda lp, context: reports.append(context.get("exception")))

    async def failing():
        await asyncio.sleep(0)
        loop.fail = True
        raise ValueError("coroutine error")

    def done(task):
        reports.append("done ran")

    try:
        task = loop.create_task(failing())
        task.add_done_callback(done)
        run_for(loop, 0.01)
        assert len(reports) == 1
        assert isinstance(reports[0], ZeroDivisionError)
        with pytest.raises(ValueError, match="coroutine error"):
            task.result()
    finally:
        loop.fail = False
        loop.close()


# ---- remove_done_callback: an __eq__ that changes the callbacks --------

def test_remove_done_callback_whose_eq_completes_the_future(loop):
    fut = loop.create_future()
    calls = []

    class Evil:
        def __eq__(self, other):
            if not fut.done():
                fut.set_result(1)
            return False
        __hash__ = object.__hash__

    for i in range(4):
        fut.add_done_callback(lambda f, i=i: calls.append(i))
    assert fut.remove_done_callback(Evil()) == 0
    run_for(loop, 0)
    assert calls == [0, 1, 2, 3]


def test_callback_added_by_an_eq_runs_after_the_older_ones(loop):
    fut = loop.create_future()
    calls = []

    class Evil:
        added = False

        def __eq__(self, other):
            if not Evil.added:
                Evil.added = True
                fut.add_done_callback(lambda f: calls.append("new"))
            return other is first

        __hash__ = object.__hash__

    def first(f):
        calls.append("first")

    fut.add_done_callback(first)
    for i in range(2):
        fut.add_done_callback(lambda f, i=i: calls.append(i))
    assert fut.remove_done_callback(Evil()) == 1
    fut.set_result(None)
    run_for(loop, 0)
    assert calls == [0, 1, "new"]


def test_remove_done_callback_with_an_eq_that_matches_a_task_waiter(loop):
    # A waiting task's wakeup is one of the future's callbacks in asyncio;
    # an __eq__ that says True to everything removes it, and the task is
    # never woken.
    fut = loop.create_future()

    async def waiter():
        await fut

    task = loop.create_task(waiter())
    run_for(loop, 0)

    class Always:
        def __eq__(self, other):
            return True
        __hash__ = object.__hash__

    assert fut.remove_done_callback(Always()) == 1
    fut.set_result(None)
    run_for(loop, 0.01)
    assert not task.done()
    # Nothing will ever step it again (cancel() finds its future done).
    task._log_destroy_pending = False
    task.get_coro().close()


REMOVE_ACTIONS = [None, "finish", "add", "remove_first", "remove_last",
                  "cancel"]


def _remove_scenario(loop, ncallbacks, plan):
    """Run remove_done_callback(Evil()) where the k-th comparison does
    plan[k] = (action, answer); return what can be observed."""
    fut = loop.create_future()
    calls, callbacks, count = [], [], [0]

    def make(tag):
        def callback(f):
            calls.append(tag)
        callback.tag = tag
        return callback

    for i in range(ncallbacks):
        callbacks.append(make(i))
        fut.add_done_callback(callbacks[-1])

    class Evil:
        def __eq__(self, other):
            k = count[0]
            count[0] += 1
            action, answer = plan.get(k, (None, False))
            if action == "finish" and not fut.done():
                fut.set_result(1)
            elif action == "add":
                fut.add_done_callback(make(f"new{k}"))
            elif action == "remove_first":
                fut.remove_done_callback(callbacks[0])
            elif action == "remove_last":
                fut.remove_done_callback(callbacks[-1])
            elif action == "cancel":
                fut.cancel()
            return answer

        __hash__ = object.__hash__

    removed = fut.remove_done_callback(Evil())
    left = fut._callbacks
    left = None if left is None else [c[0].tag for c in left]
    if not fut.done():
        fut.set_result(2)
    run_for(loop, 0)
    run_for(loop, 0)
    return removed, left, calls, count[0]


@pytest.mark.parametrize("ncallbacks", range(5))
def test_remove_done_callback_matches_asyncios_c_future(loop, ncallbacks):
    # Every combination of: which comparison acts, what it does, what it
    # answers, and what the other comparisons answer -- against asyncio's
    # own C Future on a stock loop.
    reference = asyncio.new_event_loop()
    try:
        for k in range(4):
            for action in REMOVE_ACTIONS:
                for answer in (False, True):
                    for others in (False, True):
                        plan = {i: (None, others) for i in range(12)}
                        plan[k] = (action, answer)
                        got = _remove_scenario(loop, ncallbacks, plan)
                        want = _remove_scenario(reference, ncallbacks, plan)
                        assert got == want, (k, action, answer, others)
    finally:
        reference.close()


# ---- a Loop subclass's scheduling methods are consulted ----------------

def _loop_base(loop_factory):
    return (fastloop.Loop if loop_factory.name == "fastloop"
            else asyncio.SelectorEventLoop)


def _kind(callback):
    text = getattr(callback, "__name__", type(callback).__name__)
    for kind in ("step", "wakeup"):
        if kind in text.lower():
            return kind
    return text


def test_subclass_call_soon_sees_future_callbacks_and_task_steps(
        loop_factory):
    log = []

    class TracingLoop(_loop_base(loop_factory)):
        def call_soon(self, callback, *args, context=None):
            log.append(_kind(callback))
            return super().call_soon(callback, *args, context=context)

    loop = TracingLoop()

    async def child():
        await asyncio.sleep(0)
        return 5

    async def main():
        fut = loop.create_future()
        fut.add_done_callback(lambda f: log.append("callback ran"))
        loop.call_soon(fut.set_result, 1)
        await fut
        return await loop.create_task(child())

    try:
        assert loop.run_until_complete(main()) == 5
    finally:
        loop.close()
    assert log == ["step", "set_result", "<lambda>", "wakeup",
                   "callback ran", "step", "step", "wakeup",
                   "_run_until_complete_cb"]


def test_call_soon_override_added_to_the_class_later_is_seen(loop_factory):
    log = []

    class LaterLoop(_loop_base(loop_factory)):
        pass

    loop = LaterLoop()
    try:
        fut = loop.create_future()
        fut.add_done_callback(lambda f: log.append("first"))
        fut.set_result(None)
        run_for(loop, 0)

        def call_soon(self, callback, *args, context=None):
            log.append("override")
            return super(LaterLoop, self).call_soon(callback, *args,
                                                    context=context)

        LaterLoop.call_soon = call_soon
        fut = loop.create_future()
        fut.add_done_callback(lambda f: log.append("second"))
        fut.set_result(None)
        run_for(loop, 0)

        del LaterLoop.call_soon
        fut = loop.create_future()
        fut.add_done_callback(lambda f: log.append("third"))
        fut.set_result(None)
        run_for(loop, 0)
    finally:
        loop.close()
    assert log == ["first", "override", "second", "third"]


# ---- what code run between task steps sees as the current task -------

def _future_type(loop_factory):
    return fastloop.Future if loop_factory.name == "fastloop" else \
        asyncio.Future


def _current_name():
    task = asyncio.current_task()
    return None if task is None else task.get_name()


def test_future_del_after_the_step_sees_no_current_task(loop_factory):
    # The wakeup entry holds the awaited future until the step is over;
    # its __del__ then runs outside any task (asyncio: current_task() is
    # None).  fastloop showed the finished task (3.11-3.13).
    loop = loop_factory()
    seen = []

    class F(_future_type(loop_factory)):
        def __del__(self):
            seen.append(("del", _current_name()))

    async def main():
        fut = F(loop=loop)
        loop.call_soon(fut.set_result, 1)
        await fut
        del fut
        seen.append(("step", _current_name()))

    async def other():
        await asyncio.sleep(0)

    async def both():
        await asyncio.gather(loop.create_task(main(), name="main"),
                             loop.create_task(other(), name="other"))

    try:
        loop.run_until_complete(both())
    finally:
        loop.close()
    assert seen == [("step", "main"), ("del", None)]


def test_result_del_between_back_to_back_steps(loop_factory):
    # Two tasks woken in the same iteration: the first one's future (and
    # its result) dies between the two steps.  The __del__ sees no current
    # task, and the second step sees itself.
    loop = loop_factory()
    log = []

    class Value:
        def __del__(self):
            log.append(("del", _current_name()))

    async def first(fut):
        await fut
        log.append(("first", _current_name()))

    async def second(fut):
        await fut
        log.append(("second", _current_name()))

    def resolve(f1, f2):
        f1.set_result(Value())
        f2.set_result(None)

    try:
        f1, f2 = loop.create_future(), loop.create_future()
        t1 = loop.create_task(first(f1), name="first")
        t2 = loop.create_task(second(f2), name="second")
        run_for(loop, 0)
        loop.call_soon(resolve, f1, f2)
        del f1, f2
        loop.run_until_complete(asyncio.gather(t1, t2))
    finally:
        loop.close()
    assert log == [("first", "first"), ("del", None), ("second", "second")]


def test_foreign_future_result_runs_outside_the_task(loop_factory):
    # A task waking up on a foreign future calls its result() before the
    # step: asyncio shows no current task there.
    loop = loop_factory()
    log = []

    class Foreign(asyncio.Future):
        def result(self):
            log.append(("result", _current_name()))
            return super().result()

    async def waiter(fut):
        await fut
        log.append(("step", _current_name()))

    async def other():
        for _ in range(3):
            await asyncio.sleep(0)

    try:
        fut = Foreign(loop=loop)
        t1 = loop.create_task(other(), name="other")
        t2 = loop.create_task(waiter(fut), name="waiter")
        run_for(loop, 0)
        fut.set_result(1)
        loop.run_until_complete(asyncio.gather(t1, t2))
    finally:
        loop.close()
    assert ("result", None) in log
    assert log[-1] == ("step", "waiter")


@pytest.mark.skipif(PY_VERSION < (3, 12), reason="eager tasks are 3.12+")
def test_eager_task_started_by_a_del_between_steps(loop_factory):
    # Code run between two steps may start an eager asyncio Task: it runs
    # as the current task, and the next step still sees itself.
    loop = loop_factory()
    log = []

    async def eager():
        log.append(("eager", _current_name()))

    class F(_future_type(loop_factory)):
        def __del__(self):
            t = asyncio.Task(eager(), loop=loop, eager_start=True,
                             name="eager")
            log.append(("del", _current_name(), t.done()))

    async def first():
        fut = F(loop=loop)
        loop.call_soon(fut.set_result, None)
        await fut
        del fut

    async def second():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        log.append(("second", _current_name()))

    try:
        loop.run_until_complete(asyncio.gather(
            loop.create_task(first(), name="first"),
            loop.create_task(second(), name="second")))
    finally:
        loop.close()
    assert log == [("eager", "eager"), ("del", None, True),
                   ("second", "second")]


# ---- cancelling tasks that await each other ---------------------------

def test_cancelling_tasks_that_await_each_other_raises_recursion_error(
        loop_factory, child_env):
    # Task.cancel() cancels the task it waits for, which cancels the one it
    # waits for...: asyncio's method calls hit the recursion limit
    # (RecursionError); fastloop's C calls must too, not overflow the stack.
    out = run_child(loop_factory, child_env, """
        ts = []
        async def w(i):
            await asyncio.sleep(0)
            await ts[1 - i]
        ts += [loop.create_task(w(0)), loop.create_task(w(1))]
        loop.run_until_complete(asyncio.sleep(0.01))
        try:
            ts[0].cancel()
        except RecursionError:
            print("RecursionError")
        loop.run_until_complete(asyncio.sleep(0.01))
        for t in ts:
            t._log_destroy_pending = False
            print(t.done(), t.cancelling() > 0)
        loop.close()
    """)
    assert out == "RecursionError\nFalse True\nFalse True\n"


@pytest.mark.backend_independent
def test_cancelling_the_end_of_a_long_chain_of_tasks(loop_factory,
                                                     child_env):
    out = run_child(loop_factory, child_env, """
        N = 300_000
        async def first():
            await asyncio.sleep(3600)
        async def link(prev):
            await prev
        tasks = [loop.create_task(first())]
        for _ in range(N):
            tasks.append(loop.create_task(link(tasks[-1])))
        loop.run_until_complete(asyncio.sleep(0))
        try:
            tasks[-1].cancel()
        except RecursionError:
            print("RecursionError")
        # The chain still unwinds once its first task is cancelled.
        tasks[0].cancel()
        loop.run_until_complete(asyncio.gather(*tasks,
                                               return_exceptions=True))
        print(sum(t.cancelled() for t in tasks) == N + 1)
        loop.close()
    """, timeout=120)
    assert out == "RecursionError\nTrue\n"


# ---- done callbacks ------------------------------------------------------

def _record_handler(loop):
    errors = []
    loop.set_exception_handler(
        lambda lp, context: errors.append(
            (context["message"].split(" ")[0],
             type(context.get("exception")).__name__)))
    return errors


def test_done_callback_removing_an_already_scheduled_one_does_not_stop_it(
        loop):
    fut = loop.create_future()
    log = []

    def first(f):
        log.append("first")
        assert f.remove_done_callback(second) == 0  # already scheduled
        f.add_done_callback(third)                  # done: scheduled now

    def second(f):
        log.append("second")

    def third(f):
        log.append("third")

    fut.add_done_callback(first)
    fut.add_done_callback(second)
    fut.set_result(None)
    run_for(loop, 0.01)
    assert log == ["first", "second", "third"]


def test_done_callback_that_raises_or_reenters_the_loop(loop):
    errors = _record_handler(loop)
    fut = loop.create_future()
    log = []

    def raises(f):
        raise ZeroDivisionError

    def reenters(f):
        coro = asyncio.sleep(0)
        try:
            loop.run_until_complete(coro)
        except RuntimeError as exc:
            log.append(str(exc))
        finally:
            coro.close()

    def closes(f):
        try:
            loop.close()
        except RuntimeError as exc:
            log.append(str(exc))

    def stops(f):
        loop.stop()
        log.append("stop")

    for cb in (raises, reenters, closes, stops):
        fut.add_done_callback(cb)
    fut.set_result(None)
    loop.run_forever()
    assert log == ["This event loop is already running",
                   "Cannot close a running event loop", "stop"]
    assert errors == [("Exception", "ZeroDivisionError")]


def test_done_callback_cancelling_and_completing_other_futures(loop):
    a, b, c = (loop.create_future() for _ in range(3))
    log = []
    a.add_done_callback(lambda f: (b.set_result(1), c.cancel(),
                                   log.append("a")))
    b.add_done_callback(lambda f: log.append(("b", f.result())))
    c.add_done_callback(lambda f: log.append(("c", f.cancelled())))
    a.set_result(None)
    run_for(loop, 0.01)
    assert log == ["a", ("b", 1), ("c", True)]


# ---- handles -------------------------------------------------------------

def test_callback_cancelling_the_next_ready_handle(loop):
    log = []
    handles = []

    def first():
        log.append("first")
        handles[1].cancel()
        handles[2].cancel()
        handles[2].cancel()

    handles.append(loop.call_soon(first))
    handles.append(loop.call_soon(log.append, "second"))
    handles.append(loop.call_soon(log.append, "third"))
    loop.call_soon(log.append, "fourth")
    run_for(loop, 0)
    assert log == ["first", "fourth"]
    assert [h.cancelled() for h in handles] == [False, True, True]


def test_callback_object_whose_del_schedules_more(loop):
    log = []

    class Callback:
        def __call__(self):
            log.append("called")

        def __del__(self):
            loop.call_soon(log.append, "from __del__")

    loop.call_soon(Callback())
    run_for(loop, 0.01)
    assert log == ["called", "from __del__"]


def test_context_value_del_cancels_a_timer_and_schedules(loop):
    var = contextvars.ContextVar("v")
    log = []
    timer = loop.call_later(3600, log.append, "timer")

    class Value:
        def __del__(self):
            timer.cancel()
            loop.call_soon(log.append, "from __del__")
            loop.call_soon(loop.stop)

    ctx = contextvars.copy_context()
    ctx.run(var.set, Value())
    loop.call_soon(log.append, "callback", context=ctx)
    del ctx
    loop.run_forever()
    assert log == ["callback", "from __del__"]
    assert timer.cancelled()


def test_callback_args_whose_del_cancels_other_handles(loop):
    log = []
    later = loop.call_soon(log.append, "later")
    timer = loop.call_later(0, log.append, "timer")

    class Arg:
        def __del__(self):
            later.cancel()
            timer.cancel()

    handle = loop.call_soon(log.append, Arg())
    handle.cancel()     # drops the argument now: its __del__ runs here
    run_for(loop, 0.01)
    assert log == []


# ---- timers --------------------------------------------------------------

def test_timer_callback_cancelling_timers_due_in_the_same_iteration(loop):
    # All due by the time the loop first polls (distinct deadlines: asyncio
    # does not order equal ones).
    log = []
    timers = []
    when = loop.time() - 1

    def first():
        log.append("first")
        for t in timers[1:3]:
            t.cancel()
        timers.append(loop.call_at(when + 0.5, log.append, "added"))
        loop.call_at(when + 0.6, loop.stop)

    timers.append(loop.call_at(when, first))
    timers.append(loop.call_at(when + 0.1, log.append, "second"))
    timers.append(loop.call_at(when + 0.2, log.append, "third"))
    timers.append(loop.call_at(when + 0.3, log.append, "fourth"))
    loop.run_forever()
    # "added" is due at once, in the next iteration.
    assert log == ["first", "fourth", "added"]


def test_timer_callback_whose_del_at_cancel_cancels_another_timer(loop):
    log = []
    other = []

    class Callback:
        def __call__(self):
            log.append("never")

        def __del__(self):
            for t in other:
                t.cancel()
            log.append("del")

    timer = loop.call_later(0.001, Callback())
    other.append(loop.call_later(0.001, log.append, "other"))
    other.append(loop.call_later(0.002, log.append, "other 2"))
    keep = loop.call_later(0.001, log.append, "keep")
    timer.cancel()
    run_for(loop, 0.02)
    assert log == ["del", "keep"]
    assert keep.when() <= loop.time()


def test_timer_handle_eq_with_args_that_cancel(loop_factory):
    # TimerHandle.__eq__ compares the arguments: their __eq__ may cancel
    # either handle (dropping its arguments) mid-comparison.
    loop = loop_factory()
    try:
        handles = []

        class Arg:
            def __eq__(self, other):
                for h in handles:
                    h.cancel()
                return True
            __hash__ = object.__hash__

        when = loop.time() + 10
        handles.append(loop.call_at(when, print, Arg()))
        handles.append(loop.call_at(when, print, Arg()))
        # asyncio: callbacks and args equal; the cancelled flags are read
        # after the comparison (both True now).
        assert (handles[0] == handles[1]) is True
        assert all(h.cancelled() for h in handles)
    finally:
        loop.close()


# ---- readers and writers ---------------------------------------------------

def test_reader_removing_the_writer_queued_in_the_same_iteration(loop):
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        log = []

        def reader():
            log.append("reader")
            assert loop.remove_writer(a.fileno()) is True
            loop.remove_reader(a.fileno())

        loop.add_reader(a.fileno(), reader)
        loop.add_writer(a.fileno(), log.append, "writer")
        b.send(b"x")
        run_for(loop, 0.02)
        assert log == ["reader"]


def test_reader_closing_its_fd_and_watching_a_new_one(loop):
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d:
        log = []

        def reader():
            log.append("a readable")
            loop.remove_reader(a.fileno())
            a.close()
            loop.add_reader(c.fileno(), on_c)

        def on_c():
            log.append("c readable")
            loop.remove_reader(c.fileno())

        loop.add_reader(a.fileno(), reader)
        b.send(b"x")
        d.send(b"y")
        run_for(loop, 0.05)
        assert log == ["a readable", "c readable"]


def test_reader_that_raises_keeps_being_called(loop):
    errors = _record_handler(loop)
    a, b = socket.socketpair()
    with a, b:
        calls = []

        def reader():
            calls.append(1)
            if len(calls) == 3:
                loop.remove_reader(a.fileno())
                loop.stop()
            raise ValueError

        loop.add_reader(a.fileno(), reader)
        b.send(b"x")
        loop.run_forever()
        assert len(calls) == 3
        assert errors == [("Exception", "ValueError")] * 3


def test_fileno_that_closes_the_loop(loop_factory):
    # fileno() runs Python code after the closed check: the loop it closes
    # must not be registered with (asyncio fails on its closed selector).
    loop = loop_factory()
    a, b = socket.socketpair()
    with a, b:
        class Closing:
            def fileno(self):
                loop.close()
                return a.fileno()

        with pytest.raises((RuntimeError, AttributeError)):
            loop.add_reader(Closing(), print)
        assert loop.is_closed()


CLOSED_BEFORE_POLL_PROGRAM = """
import socket
a, b = socket.socketpair()
a.setblocking(False)
fd = a.fileno()
loop.add_reader(fd, print, "never")
a.close()
loop.run_until_complete(asyncio.sleep(0))
print("survived", loop.remove_reader(fd))
loop.close()
b.close()
"""


def test_a_watched_fd_closed_before_the_next_poll(loop_factory, child_env):
    # libev registers a started watcher only in its next poll; asyncio's
    # selector at once, so closing the fd first is harmless there.
    out = run_child(loop_factory, child_env, CLOSED_BEFORE_POLL_PROGRAM)
    assert out == "survived True\n"


SOCK_RECV_CLOSED_PROGRAM = """
import socket
a, b = socket.socketpair()
a.setblocking(False)
async def main():
    task = asyncio.ensure_future(loop.sock_recv(a, 10))
    await asyncio.sleep(0)
    a.close()
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled")
loop.run_until_complete(main())
loop.close()
b.close()
"""


def test_sock_recv_whose_socket_is_closed_while_waiting(loop_factory,
                                                        child_env):
    out = run_child(loop_factory, child_env, SOCK_RECV_CLOSED_PROGRAM)
    assert out == "cancelled\n"


# ---- task steps -------------------------------------------------------------

def test_coroutine_closing_stopping_and_cancelling_from_its_step(loop):
    log = []

    async def hostile():
        try:
            loop.close()
        except RuntimeError as exc:
            log.append(str(exc))
        asyncio.current_task().cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            log.append("cancelled")
        loop.stop()
        log.append("stop requested")
        await asyncio.sleep(0)
        log.append("resumed")
        return "done"

    task = loop.create_task(hostile())
    loop.run_forever()
    assert log == ["Cannot close a running event loop", "cancelled",
                   "stop requested"]
    assert loop.run_until_complete(task) == "done"
    assert log[-1] == "resumed"


def test_task_done_callback_that_cancels_the_task_waiting_on_it(loop):
    log = []

    async def inner():
        await asyncio.sleep(0)
        return 1

    async def outer(t):
        try:
            return await t
        except asyncio.CancelledError:
            log.append("outer cancelled")
            raise

    inner_task = loop.create_task(inner())
    outer_task = loop.create_task(outer(inner_task))
    inner_task.add_done_callback(lambda t: outer_task.cancel())
    loop.run_until_complete(asyncio.wait([outer_task]))
    # The cancel comes after the wakeup was scheduled: the outer task got
    # its result (asyncio: cancel() of a task whose wakeup is queued sets
    # must_cancel; it ends cancelled).
    assert inner_task.result() == 1
    assert outer_task.cancelled()
    assert log == ["outer cancelled"]


class _HashRaisingLoopMixin:
    def __hash__(self):
        raise TypeError("unhashable loop")

    __eq__ = object.__eq__


def test_loop_whose_hash_raises_fails_task_steps_as_asyncio(loop_factory):
    # asyncio's current-task registry is keyed by the loop: its hash runs
    # at every step (fastloop caches it).
    base = _loop_base(loop_factory)
    loop = type("HashRaisingLoop", (_HashRaisingLoopMixin, base), {})()
    errors = _record_handler(loop)
    try:
        async def coro():
            return 1

        task = loop.create_task(coro())
        run_for(loop, 0.01)
        if PY_VERSION >= (3, 14):
            # The current task lives on the thread state: no hash taken.
            assert task.result() == 1 and errors == []
        else:
            assert not task.done()
            assert errors and errors[0][1] == "TypeError"
            task._log_destroy_pending = False
            task.get_coro().close()
    finally:
        loop.close()


# ---- exception handlers ---------------------------------------------------

def test_exception_handler_that_raises_is_logged(loop, caplog):
    import logging

    def handler(lp, context):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(handler)
    loop.call_soon(lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_for(loop, 0.01)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Unhandled error in exception handler" in m for m in messages)


def test_exception_handler_that_stops_reschedules_and_interrupts(loop):
    log = []

    def handler(lp, context):
        log.append(type(context["exception"]).__name__)
        if len(log) == 1:
            lp.call_soon(lambda: 1 / 0)     # another error, next iteration
        elif len(log) == 2:
            lp.stop()
        else:
            raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    loop.call_soon(lambda: 1 / 0)
    loop.run_forever()
    assert log == ["ZeroDivisionError", "ZeroDivisionError"]
    loop.call_soon(lambda: [][1])
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert log[-1] == "IndexError"


def test_exception_handler_closing_nothing_while_running(loop):
    log = []

    def handler(lp, context):
        try:
            lp.close()
        except RuntimeError as exc:
            log.append(str(exc))
        lp.stop()

    loop.set_exception_handler(handler)
    fut = loop.create_future()
    fut.add_done_callback(lambda f: 1 / 0)
    fut.set_result(None)
    loop.run_forever()
    assert log == ["Cannot close a running event loop"]


# ---- call_soon_threadsafe ---------------------------------------------------

def test_threadsafe_callbacks_that_cancel_reschedule_and_stop(loop):
    log = []
    ready = threading.Event()
    pending = []

    def from_thread():
        ready.wait(10)
        loop.call_soon_threadsafe(first)

    def first():
        # Scheduled from here, threadsafe: cancelled before its turn.
        pending.append(loop.call_soon_threadsafe(log.append, "cancelled"))
        loop.call_soon_threadsafe(again)
        pending[0].cancel()

    def again():
        log.append("again")
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=from_thread)
    thread.start()
    loop.call_soon(ready.set)
    loop.run_forever()
    thread.join(10)
    assert log == ["again"]


def test_threadsafe_call_on_a_loop_closed_meanwhile_raises(loop_factory):
    loop = loop_factory()
    loop.close()
    outcomes = []

    def from_thread():
        try:
            loop.call_soon_threadsafe(print)
        except RuntimeError as exc:
            outcomes.append(str(exc))

    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join(10)
    assert outcomes == ["Event loop is closed"]
