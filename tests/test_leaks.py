"""Memory: scheduling and cancelling callbacks leaks nothing, and cycles die.

tracemalloc sees every Python object allocation, including those of C
extension types, so a reference leaked per callback shows up as growth.
"""

import gc
import os
import tracemalloc
import weakref

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(30)

# Growth tolerated over a whole run: allocator free lists and caches, not a
# per-callback leak (100,000 cycles x even 8 bytes would be 800 kB).
TOLERANCE = 150_000


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def noop(*args):
    pass


def _traced_growth(loop, batch, batches=100, warmup=3):
    """Traced memory growth over `batches` calls of batch(loop) + one iteration."""
    # Debug mode (the default under -X dev) keeps creation tracebacks.
    loop.set_debug(False)
    tracemalloc.start()
    try:
        for _ in range(warmup):
            batch(loop)
            run_once(loop)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(batches):
            batch(loop)
            run_once(loop)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def test_call_soon_call_later_and_cancel_cycles_leave_traced_memory_flat(loop):
    # 100 batches x 1,000 = 100,000 cycles.
    def batch(loop):
        # Ints above 256 are fresh objects: a leaked argument reference
        # leaks memory.
        for i in range(1000, 2000):
            loop.call_soon(noop, i)
            loop.call_later(3600, noop, i).cancel()

    assert _traced_growth(loop, batch) < TOLERANCE


def test_timers_that_run_leave_traced_memory_flat(loop):
    def batch(loop):
        for i in range(1000):
            loop.call_at(loop.time() - 1, noop, [i])

    assert _traced_growth(loop, batch, batches=20) < TOLERANCE


def test_cancelled_call_soon_cycles_leave_traced_memory_flat(loop):
    def batch(loop):
        for i in range(1000):
            loop.call_soon(noop, [i]).cancel()

    assert _traced_growth(loop, batch, batches=20) < TOLERANCE


def test_call_soon_threadsafe_cycles_leave_traced_memory_flat(loop):
    def batch(loop):
        for i in range(1000):
            loop.call_soon_threadsafe(noop, [i])

    assert _traced_growth(loop, batch, batches=20) < TOLERANCE


def test_failing_callbacks_leave_traced_memory_flat(loop):
    loop.set_exception_handler(lambda lp, ctx: None)

    def failing(arg):
        raise ValueError(arg)

    def batch(loop):
        for i in range(200):
            loop.call_soon(failing, [i])

    assert _traced_growth(loop, batch, batches=20) < TOLERANCE


def test_run_until_complete_cycles_leave_traced_memory_flat(loop):
    def batch(loop):
        for i in range(100):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, [i])
            loop.run_until_complete(fut)

    assert _traced_growth(loop, batch, batches=20) < TOLERANCE


def test_add_and_remove_reader_cycles_leave_traced_memory_flat(loop):
    import socket

    a, b = socket.socketpair()
    with a, b:
        def batch(loop):
            for i in range(1000, 1500):
                loop.add_reader(a.fileno(), noop, i)
                loop.add_writer(a.fileno(), noop, i)
                loop.remove_reader(a.fileno())
                loop.remove_writer(a.fileno())

        assert _traced_growth(loop, batch, batches=20) < TOLERANCE


def test_reader_callbacks_leave_traced_memory_flat(loop):
    import socket

    a, b = socket.socketpair()
    with a, b:
        b.send(b"x")  # stays readable: the reader runs every iteration
        loop.add_reader(a.fileno(), noop, "reader")

        def batch(loop):
            for _ in range(200):
                run_once(loop)

        growth = _traced_growth(loop, batch, batches=20)
        loop.remove_reader(a.fileno())
    assert growth < TOLERANCE


class Callback:
    def __call__(self, *args):
        pass


def test_cycle_through_a_handle_and_its_callback_is_collected(loop):
    callback = Callback()
    handle = loop.call_soon(callback)
    callback.handle = handle  # callback -> handle -> callback
    run_once(loop)
    callback_ref, handle_ref = weakref.ref(callback), weakref.ref(handle)
    del callback, handle
    gc.collect()
    assert callback_ref() is None
    assert handle_ref() is None


def test_cycle_through_a_handle_and_its_arguments_is_collected(loop):
    box = Callback()
    handle = loop.call_soon(noop, box)
    box.handle = handle  # handle -> args -> box -> handle
    run_once(loop)
    box_ref, handle_ref = weakref.ref(box), weakref.ref(handle)
    del box, handle
    gc.collect()
    assert box_ref() is None
    assert handle_ref() is None


def test_cycle_through_a_timer_handle_is_collected(loop):
    callback = Callback()
    handle = loop.call_later(0, callback)
    callback.handle = handle
    run_for(loop, 0.01)
    callback_ref, handle_ref = weakref.ref(callback), weakref.ref(handle)
    del callback, handle
    gc.collect()
    assert callback_ref() is None
    assert handle_ref() is None


def test_closed_loop_with_pending_callbacks_is_collected(loop_factory):
    loop = loop_factory()
    # Pending callbacks that refer back to the loop: loop -> handle -> loop.
    loop.call_soon(noop, loop)
    loop.call_later(3600, noop, loop)
    loop.close()
    loop_ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert loop_ref() is None


def test_unclosed_loop_warns_when_collected(loop_factory):
    loop = loop_factory()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del loop
        gc.collect()


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_closed_loops_release_their_file_descriptors(loop_factory):
    before = _open_fds()
    for _ in range(200):
        loop = loop_factory()
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.close()
    del loop
    gc.collect()
    assert _open_fds() == before


def test_loops_with_readers_and_signal_handlers_release_their_file_descriptors(loop_factory):
    import signal
    import socket

    a, b = socket.socketpair()
    with a, b:
        before = _open_fds()
        for _ in range(50):
            loop = loop_factory()
            loop.add_reader(a.fileno(), noop)
            loop.add_signal_handler(signal.SIGUSR1, noop)
            loop.call_soon(loop.stop)
            loop.run_forever()
            loop.close()
        del loop
        gc.collect()
        assert _open_fds() == before
