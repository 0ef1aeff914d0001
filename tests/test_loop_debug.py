"""Debug mode.

https://docs.python.org/3/library/asyncio-dev.html#debug-mode
"""

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.timeout(10)


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def named_callback():
    pass


def _debug_from_environment():
    # What asyncio.coroutines._is_debug_mode() computes.
    return bool(sys.flags.dev_mode or (
        not sys.flags.ignore_environment and os.environ.get("PYTHONASYNCIODEBUG")))


def test_get_debug_defaults_to_the_environment_setting(loop):
    assert loop.get_debug() is _debug_from_environment()


def test_set_debug_then_get_debug_returns_it(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


@pytest.mark.parametrize(
    "env, flags, expected",
    [({"PYTHONASYNCIODEBUG": "1"}, [], True), ({}, [], False), ({}, ["-X", "dev"], True)],
    ids=["debug-env-var", "plain", "dev-mode"],
)
def test_new_loop_in_a_child_process_takes_debug_mode_from_the_environment(
        loop_factory, child_env, env, flags, expected):
    source = (
        "import asyncio\n"
        f"loop = {loop_factory.new_loop_source}\n"
        "print(loop.get_debug())\n"
        "loop.close()\n"
    )
    result = subprocess.run(
        [sys.executable, *flags, "-c", source],
        env={**child_env, **env}, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)


def test_slow_callback_duration_defaults_to_a_tenth_of_a_second(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


def test_slow_callback_is_logged_in_debug_mode(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow_callback():
        # Busy work standing in for a callback that blocks the loop.
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            pass

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(slow_callback)
        run_once(loop)
    messages = [r.getMessage() for r in caplog.records
                if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(messages) == 1
    assert messages[0].startswith("Executing <")
    assert "slow_callback" in messages[0]
    assert " took " in messages[0]
    assert messages[0].endswith(" seconds")


def test_fast_callback_is_not_logged_in_debug_mode(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.call_soon(named_callback)
        run_once(loop)
    assert not [r for r in caplog.records if "Executing" in r.getMessage()]


def test_slow_callback_is_not_logged_without_debug_mode(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.0
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.call_soon(time.sleep, 0.01)
        run_once(loop)
    assert not [r for r in caplog.records if "Executing" in r.getMessage()]


def _from_another_thread(loop, method):
    """Call `method(loop)` in a new thread while `loop` runs; return what it raised."""
    raised = []
    done = threading.Event()

    def in_thread():
        try:
            method(loop)
        except Exception as exc:
            raised.append(exc)
        finally:
            done.set()
            loop.call_soon_threadsafe(loop.stop)

    def start():
        threading.Thread(target=in_thread).start()

    loop.call_soon(start)
    loop.run_forever()
    assert done.wait(5)
    return raised


@pytest.mark.parametrize("method", [
    lambda loop: loop.call_soon(named_callback),
    lambda loop: loop.call_later(1, named_callback),
    lambda loop: loop.call_at(loop.time() + 1, named_callback),
], ids=["call_soon", "call_later", "call_at"])
def test_non_threadsafe_call_from_another_thread_raises_runtime_error_in_debug_mode(loop, method):
    loop.set_debug(True)
    raised = _from_another_thread(loop, method)
    assert len(raised) == 1
    assert isinstance(raised[0], RuntimeError)
    assert "Non-thread-safe operation" in str(raised[0])


def test_call_soon_threadsafe_from_another_thread_is_allowed_in_debug_mode(loop):
    loop.set_debug(True)
    calls = []
    raised = _from_another_thread(loop, lambda lp: lp.call_soon_threadsafe(calls.append, 1))
    assert raised == []
    run_once(loop)
    assert calls == [1]


def test_call_soon_from_another_thread_is_allowed_in_debug_mode_when_not_running(loop):
    loop.set_debug(True)
    raised = []

    def in_thread():
        try:
            loop.call_soon(named_callback)
        except Exception as exc:
            raised.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert raised == []


async def coroutine_function():
    pass


def test_call_soon_with_a_coroutine_raises_type_error_in_debug_mode(loop):
    loop.set_debug(True)
    coro = coroutine_function()
    try:
        with pytest.raises(TypeError, match=r"^coroutines cannot be used with call_soon\(\)$"):
            loop.call_soon(coro)
    finally:
        coro.close()


def test_call_later_with_a_coroutine_function_raises_type_error_in_debug_mode(loop):
    loop.set_debug(True)
    # asyncio names call_at (which call_later calls); naming call_later is
    # as good.
    with pytest.raises(TypeError, match=r"^coroutines cannot be used with call_(at|later)\(\)$"):
        loop.call_later(1, coroutine_function)


def test_call_soon_with_a_non_callable_raises_type_error_in_debug_mode(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError, match=r"^a callable object was expected by call_soon\(\), got 1$"):
        loop.call_soon(1)


def test_cancelled_handle_repr_keeps_the_callback_in_debug_mode(loop):
    loop.set_debug(True)
    handle = loop.call_soon(named_callback)
    handle.cancel()
    assert "cancelled" in repr(handle)
    assert "named_callback" in repr(handle)


def test_exception_context_has_the_source_traceback_in_debug_mode(loop):
    loop.set_debug(True)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def failing():
        raise ValueError

    loop.call_soon(failing)
    run_once(loop)
    assert len(contexts) == 1
    frames = contexts[0]["source_traceback"]
    # The traceback of where call_soon was called, ending in this test.
    assert frames[-1].name == "test_exception_context_has_the_source_traceback_in_debug_mode"


def test_debug_mode_tracks_coroutine_origins_while_running(loop):
    reference = asyncio.new_event_loop()
    try:
        depths = {}
        for name, lp in (("mine", loop), ("stock", reference)):
            lp.set_debug(True)
            lp.call_soon(lambda n=name: depths.setdefault(n, sys.get_coroutine_origin_tracking_depth()))
            run_once(lp)
    finally:
        reference.close()
    assert depths["stock"] > 0
    assert depths["mine"] == depths["stock"]
    assert sys.get_coroutine_origin_tracking_depth() == 0
