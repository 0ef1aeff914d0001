"""Divergences from asyncio that the differential fuzzer found
(test_differential.py), each minimised to a test on both loops."""

import contextvars
import sys

import pytest

pytestmark = pytest.mark.timeout(10)


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def collect_contexts(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    return contexts


# A done callback that raises: asyncio runs it through a Handle, and the
# exception handler's context names that handle.  fastloop runs the done
# callbacks of its own futures straight from the C ready queue, without a
# Handle, and its context had no "handle".


def failing_done_callback(fut):
    raise ValueError("in done callback")


def test_a_failing_done_callback_is_reported_with_the_handle_that_ran_it(loop):
    contexts = collect_contexts(loop)
    fut = loop.create_future()
    fut.add_done_callback(failing_done_callback)
    fut.set_result(1)
    run_once(loop)
    [context] = contexts
    assert sorted(context) == ["exception", "handle", "message"]
    assert isinstance(context["exception"], ValueError)
    handle = context["handle"]
    assert not handle.cancelled()
    # (3.13 leaves the arguments out unless in debug mode)
    assert context["message"].startswith("Exception in callback failing_done_callback(")
    # The handle shows the callback and its argument, as the message does.
    assert repr(handle) == "<Handle " + context["message"][len("Exception in callback "):] + ">"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Handle.get_context() is new in 3.12")
def test_the_handle_of_a_failing_done_callback_has_the_callbacks_context(loop):
    contexts = collect_contexts(loop)
    fut = loop.create_future()
    ctx = contextvars.copy_context()
    fut.add_done_callback(failing_done_callback, context=ctx)
    fut.set_exception(KeyError("k"))
    run_once(loop)
    [context] = contexts
    assert context["handle"].get_context() is ctx
    assert fut.exception().args == ("k",)


def test_the_exception_handler_of_a_failing_done_callback_runs_outside_the_callbacks_context(loop):
    # asyncio reports the error after the callback's context was left; 3.12+
    # then runs the handler in the handle's context (entering it again).
    var = contextvars.ContextVar("var", default="loop's")
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback's")
    fut = loop.create_future()
    fut.add_done_callback(failing_done_callback, context=ctx)
    fut.set_result(None)
    run_once(loop)
    assert seen == (["callback's"] if sys.version_info >= (3, 12) else ["loop's"])


# A callback that cancels its own handle, then raises: asyncio's cancel()
# drops the handle's callback and arguments, so the report reads
# "Exception in callback None()"; fastloop showed the handle's repr.


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
@pytest.mark.parametrize("kind", ["call_soon", "call_later", "call_at"])
def test_a_callback_that_cancelled_its_own_handle_then_raised_is_reported_as_asyncio_does(
    loop, kind, debug
):
    loop.set_debug(debug)
    contexts = collect_contexts(loop)
    handles = []

    def callback():
        handles[0].cancel()
        raise ValueError("after cancel")

    if kind == "call_soon":
        handles.append(loop.call_soon(callback))
    elif kind == "call_later":
        handles.append(loop.call_later(0, callback))
    else:
        handles.append(loop.call_at(loop.time(), callback))
    run_once(loop)
    [context] = contexts
    assert context["message"] == "Exception in callback None()"
    assert context["handle"] is handles[0]
    assert context["handle"].cancelled()
    assert isinstance(context["exception"], ValueError)
