"""Scheduling callbacks: call_soon, call_later, call_at, loop.time().

https://docs.python.org/3/library/asyncio-eventloop.html#scheduling-callbacks
"""

import contextvars
import random
import socket
import sys
import time
import weakref

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)

MONOTONIC_RESOLUTION = time.get_clock_info("monotonic").resolution


def run_once(loop):
    """Run one iteration of the loop: what is ready now, then return."""
    loop.call_soon(loop.stop)
    loop.run_forever()


# call_soon ---------------------------------------------------------------


def test_call_soon_runs_callbacks_in_fifo_order(loop):
    order = []
    for i in range(100):
        loop.call_soon(order.append, i)
    run_once(loop)
    assert order == list(range(100))


def test_call_soon_passes_positional_arguments(loop):
    calls = []
    loop.call_soon(lambda *args: calls.append(args), 1, "two", None)
    run_once(loop)
    assert calls == [(1, "two", None)]


def test_call_soon_rejects_keyword_arguments_for_the_callback(loop):
    with pytest.raises(TypeError):
        loop.call_soon(print, x=1)


def test_call_soon_runs_callback_in_the_given_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen = []
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    run_once(loop)
    assert seen == ["in ctx"]
    assert var.get() == "default"


def test_call_soon_changes_made_by_callback_stay_in_the_given_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    loop.call_soon(var.set, "set by callback", context=ctx)
    run_once(loop)
    assert ctx[var] == "set by callback"
    assert var.get() == "default"


def test_call_soon_copies_the_current_context_by_default(loop):
    var = contextvars.ContextVar("var", default="default")
    seen = []

    def callback():
        seen.append(var.get())
        var.set("changed by callback")

    def schedule():
        var.set("at call_soon")
        loop.call_soon(callback)
        var.set("after call_soon")

    ctx = contextvars.copy_context()
    ctx.run(schedule)
    run_once(loop)
    # The callback saw the value current when call_soon was called, and its
    # own change went to a copy, not back into the caller's context.
    assert seen == ["at call_soon"]
    assert ctx[var] == "after call_soon"


def test_callbacks_scheduled_while_running_run_in_the_next_iteration(loop):
    # "If stop() is called while run_forever() is running, this will run the
    # current batch of callbacks and then exit.  Note that new callbacks
    # scheduled by callbacks will not run in this case."
    order = []

    def a():
        order.append("A")
        loop.call_soon(order.append, "B")
        loop.stop()

    loop.call_soon(a)
    loop.call_soon(order.append, "C")
    loop.run_forever()
    assert order == ["A", "C"]

    run_once(loop)
    assert order == ["A", "C", "B"]


def test_callback_scheduled_by_a_callback_runs_after_those_already_scheduled(loop):
    order = []

    def a():
        order.append("A")
        loop.call_soon(order.append, "B")

    loop.call_soon(a)
    loop.call_soon(order.append, "C")
    run_for(loop, 0.01)
    assert order == ["A", "C", "B"]


# A callback that reschedules itself runs once per iteration, so timers and
# I/O get their turn.  A loop that ran newly scheduled callbacks in the same
# run step would spin here until the limit (the limit keeps a broken loop
# from hanging the test: an exception raised by pytest-timeout inside a
# callback would be swallowed by the loop).
SPIN_LIMIT = 1_000_000


def test_callback_rescheduling_itself_does_not_starve_timers(loop):
    count = 0
    fired_at = []

    def spin():
        nonlocal count
        count += 1
        if not fired_at and count < SPIN_LIMIT:
            loop.call_soon(spin)

    def on_timer():
        fired_at.append(count)
        loop.stop()

    loop.call_soon(spin)
    loop.call_later(0.01, on_timer)
    loop.run_forever()
    assert 1 <= fired_at[0] < SPIN_LIMIT


def test_callback_rescheduling_itself_does_not_starve_readers(loop):
    count = 0
    read_at = []
    a, b = socket.socketpair()
    with a, b:
        def spin():
            nonlocal count
            count += 1
            if not read_at and count < SPIN_LIMIT:
                loop.call_soon(spin)

        def on_readable():
            read_at.append(count)
            loop.remove_reader(a)
            loop.stop()

        loop.add_reader(a, on_readable)
        loop.call_soon(spin)
        loop.call_soon(b.send, b"x")
        loop.run_forever()
    assert 1 <= read_at[0] < SPIN_LIMIT


def test_stop_called_before_run_forever_runs_ready_callbacks_once(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.stop()
    loop.run_forever()
    assert calls == [1]


# call_later / call_at ----------------------------------------------------


def test_call_later_runs_callbacks_ordered_by_delay(loop):
    order = []
    loop.call_later(0.03, order.append, "c")
    loop.call_later(0.01, order.append, "a")
    loop.call_later(0.02, order.append, "b")
    run_for(loop, 0.04)
    assert order == ["a", "b", "c"]


def test_call_at_runs_callbacks_ordered_by_when(loop):
    order = []
    now = loop.time()
    for delay in (0.05, 0.01, 0.04, 0.02, 0.03):
        loop.call_at(now + delay, order.append, delay)
    loop.call_at(now + 0.06, loop.stop)
    loop.run_forever()
    assert order == [0.01, 0.02, 0.03, 0.04, 0.05]


def test_many_timers_run_in_when_order_and_cancelled_ones_never_run(loop):
    rng = random.Random(20261122)
    now = loop.time()
    # 3,000 distinct deadlines: a third already due, the rest over 10 ms.
    keys = rng.sample(range(1, 300_000), 3000)
    order = []
    handles = {}
    victims = {key: rng.choice(keys) for key in keys}

    def fire(key):
        order.append(key)
        handles[victims[key]].cancel()  # maybe already run: harmless

    for key in keys:
        handles[key] = loop.call_at(now - 0.01 + key * 1e-7, fire, key)
    cancelled = set(rng.sample(keys, 1000))
    for key in cancelled:
        handles[key].cancel()
    loop.call_at(now + 0.05, loop.stop)
    loop.run_forever()

    expected = []
    for key in sorted(keys):
        if key not in cancelled:
            expected.append(key)
            cancelled.add(victims[key])
    assert order == expected


def test_timers_due_in_the_same_iteration_all_run_even_if_one_stops_the_loop(loop):
    order = []
    now = loop.time()
    loop.call_at(now - 2, lambda: (order.append("stopper"), loop.stop()))
    loop.call_at(now - 1, order.append, "second")
    loop.run_forever()
    assert order == ["stopper", "second"]


def test_timer_scheduled_with_zero_delay_by_a_timer_runs_in_a_later_iteration(loop):
    order = []

    def first():
        order.append("first")
        loop.call_later(0, order.append, "scheduled by first")
        loop.stop()

    now = loop.time()
    loop.call_at(now - 2, first)
    loop.call_at(now - 1, order.append, "second")
    loop.run_forever()
    assert order == ["first", "second"]
    run_for(loop, 0.01)
    assert order == ["first", "second", "scheduled by first"]


def test_call_later_never_runs_early(loop):
    results = []

    def record(handle_box):
        results.append((handle_box[0].when(), loop.time(), time.monotonic()))

    for delay in (0.001, 0.005, 0.01, 0.02, 0.03):
        box = []
        box.append(loop.call_later(delay, record, box))
    run_for(loop, 0.05)
    assert len(results) == 5
    for when, loop_now, mono_now in results:
        assert loop_now >= when - MONOTONIC_RESOLUTION
        assert mono_now >= when - MONOTONIC_RESOLUTION


def test_call_later_from_a_slow_callback_counts_the_delay_from_the_call(loop):
    # The delay starts when call_later is called, not when the iteration
    # began (no cached loop time).
    record = {}

    def slow_then_schedule():
        deadline = time.monotonic() + 0.03
        while time.monotonic() < deadline:
            pass
        record["scheduled_at"] = time.monotonic()
        record["handle"] = loop.call_later(0.02, lambda: record.setdefault("ran_at", time.monotonic()))

    loop.call_soon(slow_then_schedule)
    run_for(loop, 0.1)
    assert record["handle"].when() >= record["scheduled_at"] + 0.02 - MONOTONIC_RESOLUTION
    assert record["ran_at"] - record["scheduled_at"] >= 0.02 - MONOTONIC_RESOLUTION


def test_call_later_returns_a_timer_handle_with_the_deadline(loop):
    before = loop.time()
    handle = loop.call_later(10, print)
    after = loop.time()
    assert before + 10 <= handle.when() <= after + 10
    handle.cancel()


def test_call_at_handle_when_is_the_given_time(loop):
    when = loop.time() + 12.5
    handle = loop.call_at(when, print)
    assert handle.when() == when
    handle.cancel()


def test_call_later_with_zero_or_negative_delay_runs_on_next_iteration(loop):
    order = []
    loop.call_later(-1, order.append, "negative")
    loop.call_later(0, order.append, "zero")
    loop.call_at(loop.time() - 5, order.append, "past")
    run_for(loop, 0.01)
    assert sorted(order) == ["negative", "past", "zero"]


@pytest.mark.parametrize("delay", [1e10, float("inf")], ids=["1e10", "inf"])
def test_timer_far_in_the_future_neither_runs_nor_blocks_nearer_ones(loop, delay):
    calls = []
    far = loop.call_later(delay, calls.append, "far")
    assert far.when() > loop.time() + 1e9
    start = time.monotonic()
    loop.call_later(0.01, calls.append, "near")
    run_for(loop, 0.02)
    assert calls == ["near"]
    assert time.monotonic() - start < 1.0
    far.cancel()


def test_timer_far_in_the_past_runs_at_once(loop):
    calls = []
    loop.call_later(-1e10, calls.append, "past")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["past"]


def test_call_later_passes_positional_arguments(loop):
    calls = []
    loop.call_later(0, lambda *a: calls.append(a), "x", 2)
    run_for(loop, 0.01)
    assert calls == [("x", 2)]


def test_call_later_runs_callback_in_the_given_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen = []
    loop.call_later(0, lambda: seen.append(var.get()), context=ctx)
    run_for(loop, 0.01)
    assert seen == ["in ctx"]


def test_ready_timers_run_after_callbacks_already_scheduled(loop):
    order = []
    loop.call_later(0, order.append, "timer")
    loop.call_soon(order.append, "soon")
    run_for(loop, 0.01)
    assert order == ["soon", "timer"]


# time() ------------------------------------------------------------------


def test_time_is_the_clock_of_time_monotonic(loop):
    for _ in range(100):
        before = time.monotonic()
        now = loop.time()
        after = time.monotonic()
        assert before <= now <= after


def test_time_advances_while_a_callback_runs(loop):
    # loop.time() is read fresh, not cached at the start of the iteration.
    seen = []

    def callback():
        first = loop.time()
        deadline = time.monotonic() + 0.01
        while time.monotonic() < deadline:
            pass
        seen.append(loop.time() - first)

    loop.call_soon(callback)
    run_once(loop)
    assert seen[0] >= 0.01 - MONOTONIC_RESOLUTION


def test_call_at_uses_the_time_clock(loop):
    ran_at = []
    start = time.monotonic()
    loop.call_at(loop.time() + 0.05, lambda: ran_at.append(time.monotonic()))
    loop.call_at(loop.time() + 0.06, loop.stop)
    loop.run_forever()
    assert ran_at[0] - start >= 0.05 - MONOTONIC_RESOLUTION


# cancel ------------------------------------------------------------------


def test_cancelled_call_soon_callback_does_not_run(loop):
    calls = []
    handle = loop.call_soon(calls.append, 1)
    handle.cancel()
    run_once(loop)
    assert calls == []
    assert handle.cancelled()


def test_cancelled_call_later_callback_does_not_run(loop):
    calls = []
    handle = loop.call_later(0.01, calls.append, 1)
    handle.cancel()
    run_for(loop, 0.03)
    assert calls == []
    assert handle.cancelled()


def test_callback_cancelled_by_an_earlier_callback_in_the_same_batch_does_not_run(loop):
    calls = []
    victim = []
    loop.call_soon(lambda: victim[0].cancel())
    victim.append(loop.call_soon(calls.append, "victim"))
    run_once(loop)
    assert calls == []
    assert victim[0].cancelled()


def test_due_timer_cancelled_by_an_earlier_due_timer_does_not_run(loop):
    # Both timers are already due on the first iteration, so both have been
    # moved to the ready queue when the first one cancels the second.
    calls = []
    now = loop.time()
    victim = loop.call_at(now - 1, calls.append, "victim")
    loop.call_at(now - 2, victim.cancel)
    run_for(loop, 0.01)
    assert calls == []
    assert victim.cancelled()


def test_callback_can_cancel_its_own_handle_while_running(loop):
    box = []

    def callback():
        box[0].cancel()
        box.append(box[0].cancelled())

    box.append(loop.call_soon(callback))
    run_once(loop)
    assert box[1:] == [True]
    assert box[0].cancelled()


def test_timer_callback_can_cancel_its_own_handle_while_running(loop):
    box = []

    def callback():
        box[0].cancel()
        box.append(box[0].cancelled())

    box.append(loop.call_later(0, callback))
    run_for(loop, 0.01)
    assert box[1:] == [True]


def test_cancel_after_the_callback_ran_is_harmless(loop):
    calls = []
    soon = loop.call_soon(calls.append, "soon")
    later = loop.call_later(0, calls.append, "later")
    run_for(loop, 0.01)
    soon.cancel()
    later.cancel()
    assert soon.cancelled()
    assert later.cancelled()
    assert calls == ["soon", "later"]


def test_cancel_twice_is_harmless(loop):
    handle = loop.call_later(1, print)
    handle.cancel()
    handle.cancel()
    assert handle.cancelled()


def test_cancelled_timer_releases_its_callback_and_arguments(loop):
    class Arg:
        pass

    class Callback:
        def __call__(self, arg):
            pass

    arg, callback = Arg(), Callback()
    arg_ref, callback_ref = weakref.ref(arg), weakref.ref(callback)
    handle = loop.call_later(3600, callback, arg)
    del arg, callback
    handle.cancel()
    # No gc.collect(): cancel() itself drops the references.
    assert arg_ref() is None
    assert callback_ref() is None


# Handle / TimerHandle API --------------------------------------------------


def named_callback():
    pass


def test_handle_cancelled_is_false_until_cancel(loop):
    handle = loop.call_soon(named_callback)
    assert handle.cancelled() is False
    handle.cancel()
    assert handle.cancelled() is True


def test_handle_supports_weak_references(loop):
    soon = loop.call_soon(named_callback)
    later = loop.call_later(1, named_callback)
    assert weakref.ref(soon)() is soon
    assert weakref.ref(later)() is later
    later.cancel()


def test_handle_repr_names_the_callback(loop):
    soon = loop.call_soon(named_callback)
    later = loop.call_later(1, named_callback)
    assert "named_callback" in repr(soon)
    assert "named_callback" in repr(later)
    assert "when=" in repr(later)
    later.cancel()


def test_cancelled_handle_repr_says_cancelled(loop):
    soon = loop.call_soon(named_callback)
    soon.cancel()
    assert "cancelled" in repr(soon)


def test_timer_handle_when_is_a_float(loop):
    handle = loop.call_later(1, named_callback)
    assert isinstance(handle.when(), float)
    handle.cancel()


def test_timer_handles_compare_by_when(loop):
    now = loop.time()
    early = loop.call_at(now + 1, named_callback)
    late = loop.call_at(now + 2, named_callback)
    assert early < late
    assert early <= late
    assert late > early
    assert late >= early
    assert not late < early
    assert early != late
    assert early == early
    assert early <= early
    assert early >= early
    early.cancel()
    late.cancel()


def test_timer_handles_with_equal_when_callback_and_args_are_equal(loop):
    when = loop.time() + 1
    first = loop.call_at(when, named_callback, 1)
    second = loop.call_at(when, named_callback, 1)
    other_args = loop.call_at(when, named_callback, 2)
    assert first == second
    assert first != other_args
    first.cancel()
    assert first != second
    second.cancel()
    other_args.cancel()


def test_timer_handle_is_hashable(loop):
    handle = loop.call_later(1, named_callback)
    assert handle in {handle}
    handle.cancel()


def test_timer_handle_does_not_order_against_other_types(loop):
    handle = loop.call_later(1, named_callback)
    assert handle != 1
    assert not handle == object()
    with pytest.raises(TypeError):
        handle < 1
    with pytest.raises(TypeError):
        handle >= "x"
    handle.cancel()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Handle.get_context is new in 3.12")
def test_handle_get_context_returns_the_callback_context(loop):
    ctx = contextvars.copy_context()
    soon = loop.call_soon(named_callback, context=ctx)
    later = loop.call_later(1, named_callback, context=ctx)
    assert soon.get_context() is ctx
    assert later.get_context() is ctx
    later.cancel()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Handle.get_context is new in 3.12")
def test_handle_get_context_is_a_copy_of_the_current_context_by_default(loop):
    var = contextvars.ContextVar("var")
    token = var.set("value")
    try:
        handle = loop.call_soon(named_callback)
    finally:
        var.reset(token)
    ctx = handle.get_context()
    assert isinstance(ctx, contextvars.Context)
    assert ctx is not contextvars.copy_context()
    assert ctx[var] == "value"
