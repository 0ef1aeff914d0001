"""Unix signals: add_signal_handler, remove_signal_handler, and Ctrl-C.

https://docs.python.org/3/library/asyncio-eventloop.html#unix-signals
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)


def test_signal_handler_is_called_when_the_signal_arrives(loop):
    calls = []

    def on_signal(*args):
        calls.append(args)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "arg", 2)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_forever()
    assert calls == [("arg", 2)]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_signal_from_another_thread_wakes_up_a_blocked_loop(loop):
    calls = []
    running = threading.Event()

    def on_signal():
        calls.append(signal.SIGUSR1)
        loop.stop()

    def in_thread():
        running.wait(5)
        # Let the loop block in its poll (no timers, nothing ready).
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGUSR1)

    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    thread = threading.Thread(target=in_thread)
    thread.start()
    loop.call_soon(running.set)
    loop.run_forever()
    thread.join(5)
    assert calls == [signal.SIGUSR1]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_signal_handler_runs_as_a_loop_callback_not_inside_the_signal_handler(loop):
    seen = []

    def on_signal():
        seen.append(asyncio.get_running_loop())
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_forever()
    assert seen == [loop]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_exception_in_signal_handler_reaches_the_exception_handler(loop):
    contexts = []

    def handler(lp, ctx):
        contexts.append((ctx, repr(ctx.get("handle"))))
        loop.stop()

    def failing_signal_handler():
        raise ZeroDivisionError

    loop.set_exception_handler(handler)
    loop.add_signal_handler(signal.SIGUSR1, failing_signal_handler)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(5, loop.stop)  # ends the test if the handler is never called
    loop.run_forever()
    loop.remove_signal_handler(signal.SIGUSR1)
    assert len(contexts) == 1
    context, handle_repr = contexts[0]
    assert isinstance(context["exception"], ZeroDivisionError)
    assert "failing_signal_handler" in handle_repr


def test_signal_handler_can_remove_itself(loop):
    results = []

    def on_signal():
        results.append(loop.remove_signal_handler(signal.SIGUSR1))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_forever()
    assert results == [True]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_signal_arriving_while_the_loop_is_not_running_is_handled_by_the_next_run(loop):
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "handled")
    os.kill(os.getpid(), signal.SIGUSR1)
    assert calls == []
    run_for(loop, 0.05)
    assert calls == ["handled"]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_handlers_for_two_signals_are_each_called(loop):
    calls = []

    def on_signal(name):
        calls.append(name)
        if len(calls) == 2:
            loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "USR1")
    loop.add_signal_handler(signal.SIGUSR2, on_signal, "USR2")
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
    run_for(loop, 5)
    assert sorted(calls) == ["USR1", "USR2"]
    loop.remove_signal_handler(signal.SIGUSR1)
    loop.remove_signal_handler(signal.SIGUSR2)


def test_add_signal_handler_again_replaces_the_handler(loop):
    calls = []

    def second():
        calls.append("second")
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, calls.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, second)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_forever()
    assert calls == ["second"]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_remove_signal_handler_returns_true_when_a_handler_was_registered(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_remove_signal_handler_returns_false_when_no_handler_was_registered(loop):
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


def test_remove_signal_handler_restores_the_default_action(loop):
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_remove_signal_handler_for_sigint_restores_keyboard_interrupt(loop):
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, print)
        assert loop.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_close_removes_the_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_removed_signal_handler_is_not_called(loop):
    calls = []
    loop.add_signal_handler(signal.SIGUSR2, calls.append, "handler")
    loop.remove_signal_handler(signal.SIGUSR2)
    # The default action of SIGUSR2 would kill us: ignore it for this test.
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        run_for(loop, 0.02)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == []


async def coroutine_function():
    pass


def test_add_signal_handler_with_a_coroutine_function_raises_type_error(loop):
    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, coroutine_function)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_add_signal_handler_with_a_coroutine_raises_type_error(loop):
    coro = coroutine_function()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()


BAD_SIGNALS = [
    ("out_of_range", signal.NSIG + 1),
    ("zero", 0),
    ("negative", -1),
    ("not_an_int", "SIGUSR1"),
    ("sigkill", signal.SIGKILL),
    ("sigstop", signal.SIGSTOP),
]


def _raised(call):
    try:
        call()
    except Exception as exc:
        return type(exc)
    return None


@pytest.mark.parametrize("sig", [s for _, s in BAD_SIGNALS], ids=[n for n, _ in BAD_SIGNALS])
def test_add_signal_handler_with_an_invalid_signal_raises_like_the_stock_loop(loop, sig):
    reference = asyncio.new_event_loop()
    try:
        expected = _raised(lambda: reference.add_signal_handler(sig, print))
    finally:
        reference.close()
    assert expected in (ValueError, RuntimeError, TypeError)
    assert _raised(lambda: loop.add_signal_handler(sig, print)) is expected


@pytest.mark.parametrize("sig", [signal.NSIG + 1, 0, "SIGUSR1"], ids=["out_of_range", "zero", "not_an_int"])
def test_remove_signal_handler_with_an_invalid_signal_raises_like_the_stock_loop(loop, sig):
    reference = asyncio.new_event_loop()
    try:
        expected = _raised(lambda: reference.remove_signal_handler(sig))
    finally:
        reference.close()
    assert expected in (ValueError, TypeError)
    assert _raised(lambda: loop.remove_signal_handler(sig)) is expected


def test_add_signal_handler_on_a_closed_loop_raises_runtime_error(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, print)


def test_add_signal_handler_outside_the_main_thread_raises_runtime_error(loop_factory):
    raised = []

    def in_thread():
        loop = loop_factory()
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except Exception as exc:
            raised.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert len(raised) == 1
    assert type(raised[0]) is RuntimeError
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


# Ctrl-C in a child process ------------------------------------------------


def _start_child(source, child_env):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert line == "ready\n", proc.communicate(timeout=5)
    return proc


def _interrupt(proc):
    """Send SIGINT; return (seconds until exit, stdout, stderr)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child did not exit on SIGINT; stderr: {err}")
    elapsed = time.monotonic() - sent
    out, err = proc.communicate()
    return elapsed, out, err


@pytest.mark.parametrize("timer", [False, True], ids=["no-timers", "far-timer"])
def test_sigint_interrupts_run_forever_with_keyboard_interrupt(loop_factory, child_env, timer):
    proc = _start_child(f"""
        import asyncio
        loop = {loop_factory.new_loop_source}
        if {timer}:
            loop.call_later(3600, print)
        loop.call_soon(lambda: print("ready", flush=True))
        try:
            loop.run_forever()
        finally:
            loop.close()
    """, child_env)
    elapsed, out, err = _interrupt(proc)
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("KeyboardInterrupt")
    # Like plain Python: an uncaught KeyboardInterrupt ends the process
    # by SIGINT.
    assert proc.returncode == -signal.SIGINT
    assert elapsed < 1.0


def test_sigint_interrupts_a_running_callback_with_keyboard_interrupt(loop_factory, child_env):
    proc = _start_child(f"""
        import asyncio
        loop = {loop_factory.new_loop_source}
        def spin():
            print("ready", flush=True)
            while True:
                pass
        loop.call_soon(spin)
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            print("caught", loop.is_running(), flush=True)
            raise
        finally:
            loop.close()
    """, child_env)
    elapsed, out, err = _interrupt(proc)
    assert out == "caught False\n"
    assert err.rstrip().endswith("KeyboardInterrupt")
    assert proc.returncode == -signal.SIGINT
    assert elapsed < 1.0


def test_sigint_cancels_the_main_task_of_run_and_raises_keyboard_interrupt(loop_factory, child_env):
    proc = _start_child(f"""
        import asyncio
        async def main():
            print("ready", flush=True)
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                print("main cancelled", flush=True)
                raise
        run = {loop_factory.run_source}
        run(main())
    """, child_env)
    elapsed, out, err = _interrupt(proc)
    assert out == "main cancelled\n"
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("KeyboardInterrupt")
    assert proc.returncode == -signal.SIGINT
    assert elapsed < 1.0


def test_sigint_with_a_signal_handler_calls_it_instead_of_raising(loop_factory, child_env):
    proc = _start_child(f"""
        import asyncio, signal
        loop = {loop_factory.new_loop_source}
        def on_sigint():
            print("handled", flush=True)
            loop.stop()
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        loop.call_soon(lambda: print("ready", flush=True))
        loop.run_forever()
        loop.close()
        print("exited", flush=True)
    """, child_env)
    elapsed, out, err = _interrupt(proc)
    assert out == "handled\nexited\n"
    assert proc.returncode == 0, err
    assert elapsed < 1.0


def test_loop_interrupted_by_sigint_can_run_again(loop_factory, child_env):
    proc = _start_child(f"""
        import asyncio
        loop = {loop_factory.new_loop_source}
        async def wait_forever():
            # "ready" comes from a plain callback, so a SIGINT that lands
            # while it runs interrupts the loop, not the task's coroutine.
            loop.call_soon(lambda: print("ready", flush=True))
            await loop.create_future()
        task = loop.create_task(wait_forever())
        try:
            loop.run_until_complete(task)
        except KeyboardInterrupt:
            print("interrupted", loop.is_running(), task.done(), flush=True)
        task.cancel()
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            print("task cancelled", flush=True)
        print(loop.run_until_complete(asyncio.sleep(0.01, "ran again")), flush=True)
        loop.close()
    """, child_env)
    elapsed, out, err = _interrupt(proc)
    assert out == "interrupted False False\ntask cancelled\nran again\n", err
    assert proc.returncode == 0, err


# The wakeup fd belongs to the application between runs ---------------------------


def _current_wakeup_fd():
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def test_running_the_loop_leaves_no_wakeup_fd_behind(loop):
    assert _current_wakeup_fd() == -1
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert _current_wakeup_fd() == -1


def test_running_the_loop_keeps_the_applications_wakeup_fd(loop):
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        signal.set_wakeup_fd(a.fileno())
        try:
            loop.call_soon(loop.stop)
            loop.run_forever()
            assert _current_wakeup_fd() == a.fileno()
        finally:
            signal.set_wakeup_fd(-1)


def test_removing_the_last_signal_handler_leaves_no_wakeup_fd_behind(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.remove_signal_handler(signal.SIGUSR1)
    assert _current_wakeup_fd() == -1
