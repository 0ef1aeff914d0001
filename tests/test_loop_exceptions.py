"""Error handling: exceptions in callbacks and the loop's exception handler.

https://docs.python.org/3/library/asyncio-eventloop.html#error-handling-api
"""

import contextvars
import logging
import sys

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def failing_callback():
    raise ZeroDivisionError("in callback")


def test_exception_in_callback_reaches_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append((lp, ctx)))
    handle = loop.call_soon(failing_callback)
    run_once(loop)
    assert len(contexts) == 1
    handler_loop, context = contexts[0]
    assert handler_loop is loop
    assert context["message"].startswith("Exception in callback")
    assert isinstance(context["exception"], ZeroDivisionError)
    assert str(context["exception"]) == "in callback"
    assert context["handle"] is handle


def test_exception_in_timer_callback_reaches_the_exception_handler_with_its_timer_handle(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    handle = loop.call_later(0, failing_callback)
    run_for(loop, 0.01)
    assert [ctx["handle"] for ctx in contexts] == [handle]
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


def test_loop_keeps_running_callbacks_after_one_raises(loop):
    loop.set_exception_handler(lambda lp, ctx: None)
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_soon(failing_callback)
    loop.call_soon(calls.append, 2)
    loop.call_later(0.01, calls.append, 3)
    run_for(loop, 0.02)
    assert calls == [1, 2, 3]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_in_callback_propagate_out_of_run_forever(loop, exc_type):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def callback():
        raise exc_type

    loop.call_soon(callback)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert contexts == []
    assert not loop.is_running()
    # The loop can run again afterwards.
    calls = []
    loop.call_soon(calls.append, "again")
    run_once(loop)
    assert calls == ["again"]


def test_get_exception_handler_is_none_by_default(loop):
    assert loop.get_exception_handler() is None


def test_set_exception_handler_then_get_exception_handler_returns_it(loop):
    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_set_exception_handler_with_a_non_callable_raises_type_error(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler("not callable")
    assert loop.get_exception_handler() is None


def test_call_exception_handler_passes_the_context_to_the_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    context = {"message": "custom", "extra": 1}
    loop.call_exception_handler(context)
    assert contexts == [context]


def test_default_exception_handler_logs_the_message_and_traceback_as_an_error(loop, caplog):
    try:
        raise ValueError("logged")
    except ValueError as exc:
        error = exc
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({"message": "Something failed", "exception": error})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].getMessage().startswith("Something failed")
    assert records[0].exc_info[1] is error


def test_default_exception_handler_logs_other_context_keys(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({"message": "Something failed", "detail": "the detail"})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(messages) == 1
    assert "detail: 'the detail'" in messages[0]


def test_default_exception_handler_without_a_message_uses_a_generic_one(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert messages == ["Unhandled exception in event loop"]


def test_exception_in_callback_without_a_handler_is_logged_with_its_traceback(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(failing_callback)
        run_once(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert message.startswith("Exception in callback")
    assert "failing_callback" in message
    assert "handle: <" in message
    assert records[0].exc_info[0] is ZeroDivisionError
    assert "Traceback" in caplog.text
    assert "ZeroDivisionError: in callback" in caplog.text


def test_failing_exception_handler_is_logged_and_the_loop_continues(loop, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(handler)
    calls = []
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(failing_callback)
        loop.call_soon(calls.append, "after")
        run_once(loop)
    assert calls == ["after"]
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Unhandled error in exception handler")
    assert isinstance(records[0].exc_info[1], RuntimeError)


def test_call_exception_handler_with_a_failing_handler_logs_and_does_not_raise(loop, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(messages) == 1
    assert messages[0].startswith("Unhandled error in exception handler")
    assert "original" in messages[0]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_call_exception_handler_lets_keyboard_interrupt_and_system_exit_from_the_handler_through(
        loop, exc_type):
    def handler(lp, ctx):
        raise exc_type

    loop.set_exception_handler(handler)
    with pytest.raises(exc_type):
        loop.call_exception_handler({"message": "original"})


def test_exception_handler_subclass_override_of_default_exception_handler_is_used(loop_factory):
    # Subclasses (like uvloop users do) may override default_exception_handler;
    # call_exception_handler must go through the override.
    probe = loop_factory()
    base = type(probe)
    probe.close()
    contexts = []

    class Loop(base):
        def default_exception_handler(self, context):
            contexts.append(context)

    loop = Loop()
    try:
        loop.call_soon(failing_callback)
        run_once(loop)
    finally:
        loop.close()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12 runs the handler in the handle's context")
def test_exception_handler_runs_in_the_context_of_the_failing_callback(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback context")
    seen = []
    loop.set_exception_handler(lambda lp, context: seen.append(var.get()))
    loop.call_soon(failing_callback, context=ctx)
    run_once(loop)
    assert seen == ["callback context"]
