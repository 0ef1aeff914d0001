"""Text the loop shows users matches stock asyncio's: handle reprs, exception
messages, log lines.

Each test makes the same call on the loop under test and on a stock asyncio
loop, from the same source line, and compares the text.
"""

import asyncio
import functools
import logging
import re
import socket
import time

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)


def callback(*args):
    pass


def failing_callback(*args):
    raise ZeroDivisionError("in callback")


class Obj:
    def method(self):
        pass


@pytest.fixture
def stock():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def schedule(loop, kind, fn, *args):
    # One source line for both loops: debug reprs show where handles were
    # created.
    return loop.call_soon(fn, *args) if kind == "soon" else loop.call_later(3600, fn, *args)


def normalise(text):
    """Drop what legitimately differs between two loops: deadlines."""
    return re.sub(r"when=[0-9.]+", "when=<when>", text)


CALLBACKS = {
    "function": (callback, ()),
    "function_with_args": (callback, (1, "two", None)),
    "partial": (functools.partial(callback, 1), ("x", 2)),
    "bound_method": (Obj().method, ()),
    "builtin": (print, ("text",)),
    "lambda": (lambda: None, ()),
    "long_argument": (callback, ("a" * 200,)),
}


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
@pytest.mark.parametrize("kind", ["soon", "later"])
@pytest.mark.parametrize("name", CALLBACKS)
def test_handle_repr_matches_the_stock_loop(loop, stock, name, kind, debug):
    fn, args = CALLBACKS[name]
    loop.set_debug(debug)
    stock.set_debug(debug)
    handles = [schedule(lp, kind, fn, *args) for lp in (loop, stock)]
    mine, expected = (normalise(repr(h)) for h in handles)
    assert mine == expected
    for handle in handles:
        handle.cancel()


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
@pytest.mark.parametrize("kind", ["soon", "later"])
def test_cancelled_handle_repr_matches_the_stock_loop(loop, stock, kind, debug):
    loop.set_debug(debug)
    stock.set_debug(debug)
    handles = [schedule(lp, kind, callback, 1) for lp in (loop, stock)]
    for handle in handles:
        handle.cancel()
    mine, expected = (normalise(repr(h)) for h in handles)
    assert mine == expected


def _exception_context(lp, kind):
    contexts = []
    lp.set_exception_handler(lambda _, ctx: contexts.append(ctx))
    handle = lp.call_soon(failing_callback, 1) if kind == "soon" else lp.call_later(0, failing_callback, 1)
    run_for(lp, 0.01)
    assert len(contexts) == 1
    return handle, contexts[0]


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
@pytest.mark.parametrize("kind", ["soon", "later"])
def test_callback_exception_context_matches_the_stock_loop(loop, stock, kind, debug):
    loop.set_debug(debug)
    stock.set_debug(debug)
    (handle, mine), (_, expected) = (_exception_context(lp, kind) for lp in (loop, stock))
    assert sorted(mine) == sorted(expected)
    assert normalise(mine["message"]) == normalise(expected["message"])
    assert mine["handle"] is handle
    assert type(mine["exception"]) is type(expected["exception"])
    if debug:
        assert [(f.name, f.lineno) for f in mine["source_traceback"]][-1] == \
            [(f.name, f.lineno) for f in expected["source_traceback"]][-1]


def _logged(lp, caplog, action):
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        action(lp)
    return [(r.levelno, normalise(r.getMessage()), r.exc_info[0] if r.exc_info else None)
            for r in caplog.records if r.name == "asyncio"]


def test_log_of_an_unhandled_callback_exception_matches_the_stock_loop(loop, stock, caplog):
    def action(lp):
        lp.set_debug(False)  # debug mode (the default under -X dev) is tested below
        lp.call_soon(failing_callback, 1)
        run_once(lp)

    assert _logged(loop, caplog, action) == _logged(stock, caplog, action)


def test_log_of_a_failing_exception_handler_matches_the_stock_loop(loop, stock, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler failed")

    def action(lp):
        lp.set_exception_handler(handler)
        lp.call_soon(failing_callback, 1)
        run_once(lp)

    mine, expected = _logged(loop, caplog, action), _logged(stock, caplog, action)
    # The log names the failing context, whose handle repr has a source
    # location: compare all but the handle's identity.
    assert [(lvl, exc) for lvl, _, exc in mine] == [(lvl, exc) for lvl, _, exc in expected]
    assert [m.splitlines()[0] for _, m, _ in mine] == [m.splitlines()[0] for _, m, _ in expected]


def test_log_of_default_exception_handler_matches_the_stock_loop(loop, stock, caplog):
    try:
        raise ValueError("logged")
    except ValueError as exc:
        error = exc

    def action(lp):
        lp.default_exception_handler({
            "message": "Something failed", "exception": error,
            "future": "a future", "extra": [1, 2],
        })

    assert _logged(loop, caplog, action) == _logged(stock, caplog, action)


def slow_callback(*args):
    deadline = time.monotonic() + 0.03
    while time.monotonic() < deadline:
        pass


def _schedule_slow(lp, kind, sock):
    if kind == "soon":
        lp.call_soon(slow_callback)
    elif kind == "later":
        lp.call_later(0, slow_callback)
    else:
        def reader():
            lp.remove_reader(sock.fileno())
            slow_callback()

        lp.add_reader(sock.fileno(), reader)


@pytest.mark.parametrize("kind", ["soon", "later", "reader"])
def test_slow_callback_warning_matches_the_stock_loop(loop, stock, caplog, kind):
    a, b = socket.socketpair()
    b.send(b"x")

    def action(lp):
        lp.set_debug(True)
        lp.slow_callback_duration = 0.01
        _schedule_slow(lp, kind, a)
        run_for(lp, 0.05)

    def shape(records):
        shaped = []
        for lvl, msg, _ in records:
            if "Executing" not in msg:
                continue
            msg = re.sub(r"took [0-9.]+ seconds", "took <t> seconds", msg)
            # The stock reader handle was created inside asyncio itself;
            # where inside the implementation is no part of the behaviour.
            msg = re.sub(r" created at \S*/asyncio/\S*:\d+", "", msg)
            shaped.append((lvl, msg))
        return shaped

    with a, b:
        mine = shape(_logged(loop, caplog, action))
        expected = shape(_logged(stock, caplog, action))
    assert len(expected) == 1
    assert mine == expected


def test_loop_repr_shows_running_closed_and_debug_like_the_stock_loop(loop):
    name = type(loop).__name__
    loop.set_debug(False)
    assert repr(loop) == f"<{name} running=False closed=False debug=False>"
    seen = []
    loop.set_debug(True)
    loop.call_soon(lambda: seen.append(repr(loop)))
    run_once(loop)
    assert seen == [f"<{name} running=True closed=False debug=True>"]
    loop.close()
    assert repr(loop) == f"<{name} running=False closed=True debug=True>"


def _deep(depth, lp, method):
    if depth:
        return _deep(depth - 1, lp, method)
    if method == "call_soon":
        return lp.call_soon(failing_callback)
    if method == "call_later":
        return lp.call_later(0, failing_callback)
    return lp.call_at(lp.time(), failing_callback)


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_debug_source_traceback_of_a_deep_call_matches_the_stock_loop(loop, stock, method):
    # asyncio keeps DEBUG_STACK_DEPTH frames and then drops its own
    # call_soon/call_at frames: the caller sees fewer than 10 of its frames.
    frames = {}
    for name, lp in (("mine", loop), ("stock", stock)):
        contexts = []
        lp.set_debug(True)
        lp.set_exception_handler(lambda _, ctx: contexts.append(ctx))
        _deep(20, lp, method)
        run_for(lp, 0.01)
        frames[name] = [(f.name, f.lineno) for f in contexts[0]["source_traceback"]]
    assert frames["mine"] == frames["stock"]
