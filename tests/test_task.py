"""fastloop.Task behaves as asyncio.Task, and asyncio's tools work with it.

https://docs.python.org/3/library/asyncio-task.html

Each test runs three ways (the `impl` fixture of test_future.py): fastloop's
Task on a fastloop loop (steps and wakeups through the C ready queue),
asyncio's Task on asyncio's loop (the specification), and fastloop's Task on
asyncio's loop (the generic path through loop.call_soon).
"""

import asyncio
import concurrent.futures
import contextvars
import gc
import io
import re
import sys
import threading
import tracemalloc
import weakref

import pytest

import fastloop

from conftest import run_for
from test_future import IMPLS, Impl, collect_exception_contexts

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=IMPLS)
def impl(request):
    impl = Impl(request.param)
    try:
        yield impl
    finally:
        impl.loop.close()
        asyncio.set_event_loop(None)


async def answer():
    await asyncio.sleep(0)
    return 42


# -------------------------------------------------------------------- basics


def test_task_runs_its_coroutine_to_the_result(impl):
    task = impl.Task(answer(), loop=impl.loop)
    assert not task.done()
    assert impl.loop.run_until_complete(task) == 42
    assert task.done()
    assert task.result() == 42


def test_task_does_not_start_before_the_loop_runs(impl):
    started = []

    async def coro():
        started.append(True)

    task = impl.Task(coro(), loop=impl.loop)
    assert started == []
    impl.loop.run_until_complete(task)
    assert started == [True]


def test_task_exception_becomes_the_task_exception(impl):
    async def fail():
        raise KeyError("k")

    task = impl.Task(fail(), loop=impl.loop)
    with pytest.raises(KeyError):
        impl.loop.run_until_complete(task)
    assert isinstance(task.exception(), KeyError)


def test_task_requires_a_coroutine(impl):
    with pytest.raises(TypeError, match="a coroutine was expected"):
        impl.Task(42, loop=impl.loop)


@pytest.mark.skipif(sys.version_info < (3, 15),
                    reason="3.15 checks Task's context argument at once "
                    "(gh-157301)")
def test_task_with_a_context_that_is_no_context_raises_type_error(impl):
    coro = answer()
    with pytest.raises(TypeError, match="a contextvars.Context was expected"):
        impl.Task(coro, loop=impl.loop, context="not a context")
    coro.close()


@pytest.mark.skipif(sys.version_info < (3, 15),
                    reason="3.15 initialises a Task only once")
def test_initialising_a_task_again_raises_runtime_error(impl):
    task = impl.Task(answer(), loop=impl.loop)
    coro = answer()
    with pytest.raises(RuntimeError, match="object is already initialized"):
        task.__init__(coro, loop=impl.loop)
    coro.close()
    assert impl.loop.run_until_complete(task) == 42


def test_task_is_an_asyncio_task_and_future(impl):
    task = impl.Task(answer(), loop=impl.loop)
    assert isinstance(task, asyncio.Task)
    assert isinstance(task, asyncio.Future)
    assert asyncio.isfuture(task)
    impl.loop.run_until_complete(task)


def test_set_result_and_set_exception_are_not_supported(impl):
    task = impl.Task(answer(), loop=impl.loop)
    with pytest.raises(RuntimeError, match="set_result"):
        task.set_result(1)
    with pytest.raises(RuntimeError, match="set_exception"):
        task.set_exception(ValueError())
    impl.loop.run_until_complete(task)


def test_get_coro_returns_the_coroutine(impl):
    coro = answer()
    task = impl.Task(coro, loop=impl.loop)
    assert task.get_coro() is coro
    impl.loop.run_until_complete(task)


# --------------------------------------------------------------------- names


def test_default_names_are_task_and_a_rising_number(impl):
    t1 = impl.Task(answer(), loop=impl.loop)
    t2 = impl.Task(answer(), loop=impl.loop)
    n1 = int(re.fullmatch(r"Task-(\d+)", t1.get_name()).group(1))
    n2 = int(re.fullmatch(r"Task-(\d+)", t2.get_name()).group(1))
    assert n2 == n1 + 1
    impl.loop.run_until_complete(asyncio.gather(t1, t2))


def test_name_is_converted_to_str(impl):
    task = impl.Task(answer(), loop=impl.loop, name=123)
    assert task.get_name() == "123"
    task.set_name(("a", 1))
    assert task.get_name() == "('a', 1)"
    impl.loop.run_until_complete(task)


def test_repr_has_asyncio_format(impl):
    async def wait_on(fut):
        await fut

    fut = impl.future()
    task = impl.Task(wait_on(fut), loop=impl.loop, name="waiter")
    assert re.fullmatch(
        r"<Task pending name='waiter' coro=<test_repr_has_asyncio_format"
        r"\.<locals>\.wait_on\(\) running at .*:\d+>>", repr(task))
    impl.run_once()
    assert "wait_for=<Future pending cb=[" in repr(task)
    fut.set_result(None)
    impl.loop.run_until_complete(task)
    assert re.fullmatch(
        r"<Task finished name='waiter' coro=<.*wait_on\(\) done, defined at "
        r".*:\d+> result=None>", repr(task))


# ------------------------------------------------------------------- context


def test_task_runs_in_a_copy_of_the_current_context(impl):
    var = contextvars.ContextVar("var", default="default")

    async def read():
        value = var.get()
        var.set("changed in task")
        return value

    token = var.set("outer")
    try:
        assert impl.run(read()) == "outer"
        assert var.get() == "outer"
    finally:
        var.reset(token)  # leaves the caller's context as it was


def test_task_runs_in_the_given_context(impl):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")

    async def read():
        await asyncio.sleep(0)
        return var.get()

    task = impl.Task(read(), loop=impl.loop, context=ctx)
    assert impl.loop.run_until_complete(task) == "given"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="new in 3.12")
def test_get_context_returns_the_task_context(impl):
    ctx = contextvars.copy_context()
    task = impl.Task(answer(), loop=impl.loop, context=ctx)
    assert task.get_context() is ctx
    impl.loop.run_until_complete(task)


# -------------------------------------------------------------------- stacks


def test_get_stack_of_a_suspended_task_shows_its_frame(impl):
    fut = impl.future()

    async def waiting():
        await fut

    task = impl.Task(waiting(), loop=impl.loop)
    impl.run_once()
    [frame] = task.get_stack()
    assert frame.f_code.co_name == "waiting"
    assert task.get_stack(limit=1) == [frame]
    fut.set_result(None)
    impl.loop.run_until_complete(task)
    assert task.get_stack() == []


def test_print_stack_writes_to_the_given_file(impl):
    async def fail():
        raise ValueError("printed")

    task = impl.Task(fail(), loop=impl.loop)
    with pytest.raises(ValueError):
        impl.loop.run_until_complete(task)
    out = io.StringIO()
    task.print_stack(limit=5, file=out)
    assert "Traceback for <Task finished" in out.getvalue()
    assert "ValueError: printed" in out.getvalue()


# -------------------------------------------------------------- cancellation


def test_cancel_delivers_cancelled_error_into_the_awaiting_coroutine(impl):
    fut = impl.future()
    seen = []

    async def waiting():
        try:
            await fut
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    task = impl.Task(waiting(), loop=impl.loop)
    impl.run_once()
    assert task.cancel("reason") is True
    assert fut.cancelled()
    with pytest.raises(asyncio.CancelledError):
        impl.loop.run_until_complete(task)
    assert seen == [("reason",)]
    assert task.cancelled()


def test_cancel_message_by_keyword(impl):
    async def waiting():
        await asyncio.sleep(10)

    task = impl.Task(waiting(), loop=impl.loop)
    impl.run_once()
    task.cancel(msg="kw")
    with pytest.raises(asyncio.CancelledError) as info:
        impl.loop.run_until_complete(task)
    assert info.value.args == ("kw",)


def test_cancel_before_the_first_step_never_runs_the_body(impl):
    ran = []

    async def body():
        ran.append(True)

    task = impl.Task(body(), loop=impl.loop)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        impl.loop.run_until_complete(task)
    assert ran == []
    assert task.cancelled()


def test_coroutine_that_swallows_cancellation_finishes_normally(impl):
    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "kept going"

    task = impl.Task(stubborn(), loop=impl.loop)
    impl.run_once()
    task.cancel()
    assert impl.loop.run_until_complete(task) == "kept going"
    assert not task.cancelled()
    assert task.cancelling() == 1


def test_cancel_of_a_done_task_returns_false(impl):
    task = impl.Task(answer(), loop=impl.loop)
    impl.loop.run_until_complete(task)
    assert task.cancel() is False
    assert task.cancelling() == 0


def test_cancelling_counts_requests_and_uncancel_decrements(impl):
    async def waiting():
        await asyncio.sleep(10)

    task = impl.Task(waiting(), loop=impl.loop)
    impl.run_once()
    task.cancel()
    task.cancel()
    assert task.cancelling() == 2
    assert task.uncancel() == 1
    assert task.uncancel() == 0
    assert task.uncancel() == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        impl.loop.run_until_complete(task)


def test_uncancel_to_zero_before_the_first_step(impl):
    task = impl.Task(answer(), loop=impl.loop)
    task.cancel()
    assert task.uncancel() == 0
    if sys.version_info >= (3, 13):
        # 3.13: uncancel() back to zero withdraws the pending cancellation.
        assert impl.loop.run_until_complete(task) == 42
    else:
        with pytest.raises(asyncio.CancelledError):
            impl.loop.run_until_complete(task)


def test_cancelling_the_awaited_task_cancels_the_inner_task(impl):
    async def inner():
        await asyncio.sleep(10)

    async def outer(t):
        await t

    t_inner = impl.Task(inner(), loop=impl.loop)
    t_outer = impl.Task(outer(t_inner), loop=impl.loop)
    impl.run_once()
    impl.run_once()
    t_outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        impl.loop.run_until_complete(t_outer)
    assert t_inner.cancelled()


def test_cancel_while_waiting_for_a_future_keeps_the_future_as_waiter(impl):
    fut = impl.future()

    async def waiting():
        await fut

    task = impl.Task(waiting(), loop=impl.loop)
    impl.run_once()
    assert task._fut_waiter is fut
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        impl.loop.run_until_complete(task)


def test_result_of_a_cancelled_task_keeps_raising_cancelled_error(impl):
    async def waiting():
        await asyncio.sleep(10)

    task = impl.Task(waiting(), loop=impl.loop)
    impl.run_once()
    task.cancel("m")
    with pytest.raises(asyncio.CancelledError) as first:
        impl.loop.run_until_complete(task)
    assert first.value.args == ("m",)
    # The saved error is handed out once; later calls make a fresh one.
    with pytest.raises(asyncio.CancelledError):
        task.result()
    with pytest.raises(asyncio.CancelledError):
        task.exception()


# ---------------------------------------------------------------- bad awaits


def test_task_cannot_await_itself(impl):
    async def selfish():
        await asyncio.sleep(0)
        await task

    task = impl.Task(selfish(), loop=impl.loop)
    with pytest.raises(RuntimeError, match="Task cannot await on itself"):
        impl.loop.run_until_complete(task)


def test_bad_yield_is_thrown_back_into_the_coroutine(impl):
    @asyncio.coroutines.types.coroutine
    def bad():
        yield "not a future"

    async def main():
        await bad()

    with pytest.raises(RuntimeError,
                       match="Task got bad yield: 'not a future'"):
        impl.run(main())


def test_future_of_another_loop_is_rejected(impl):
    other = asyncio.new_event_loop()
    try:
        fut = impl.Future(loop=other)

        async def main():
            await fut

        with pytest.raises(RuntimeError, match="attached to a different loop"):
            impl.run(main())
    finally:
        other.close()


def test_keyboard_interrupt_propagates_out_of_the_loop(impl):
    async def interrupt():
        raise KeyboardInterrupt

    task = impl.Task(interrupt(), loop=impl.loop)
    with pytest.raises(KeyboardInterrupt):
        impl.loop.run_until_complete(task)
    assert task.done()


# ---------------------------------------------------------------- scheduling


def test_bare_yields_interleave_tasks_round_robin(impl):
    order = []

    async def worker(name):
        for i in range(3):
            order.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(worker("a"), worker("b"))

    impl.run(main())
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1),
                     ("a", 2), ("b", 2)]


def test_wakeups_keep_fifo_order_with_call_soon(impl):
    order = []
    fut = impl.future()

    async def waiter():
        await fut
        order.append("task woke")

    async def main():
        t = impl.Task(waiter(), loop=impl.loop)
        await asyncio.sleep(0)
        impl.loop.call_soon(order.append, "first")
        fut.set_result(None)
        impl.loop.call_soon(order.append, "last")
        await t

    impl.run(main())
    assert order == ["first", "task woke", "last"]


def test_future_ping_pong_between_tasks(impl):
    async def ping(n):
        total = 0
        for i in range(n):
            fut = impl.loop.create_future()
            impl.loop.call_soon(fut.set_result, i)
            total += await fut
        return total

    assert impl.run(ping(1000)) == sum(range(1000))


# ---------------------------------------------------------- asyncio registry


def test_current_task_is_the_running_task(impl):
    async def main():
        return asyncio.current_task()

    task = impl.Task(main(), loop=impl.loop)
    assert impl.loop.run_until_complete(task) is task
    assert asyncio.current_task(impl.loop) is None


def test_each_of_two_interleaved_tasks_sees_itself_as_current(impl):
    seen = []

    async def worker(name):
        for _ in range(3):
            seen.append((name, asyncio.current_task().get_name()))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(
            impl.Task(worker("a"), loop=impl.loop, name="a"),
            impl.Task(worker("b"), loop=impl.loop, name="b"),
        )

    impl.run(main())
    assert seen == [("a", "a"), ("b", "b")] * 3


def test_callback_between_two_task_steps_sees_no_current_task(impl):
    seen = []

    async def worker():
        await asyncio.sleep(0)
        impl.loop.call_soon(lambda: seen.append(asyncio.current_task()))
        await asyncio.sleep(0)

    async def main():
        await asyncio.gather(
            impl.Task(worker(), loop=impl.loop),
            impl.Task(worker(), loop=impl.loop),
        )

    impl.run(main())
    assert seen == [None, None]


def test_no_current_task_after_the_loop_stops_between_steps(impl):
    async def spin():
        while True:
            await asyncio.sleep(0)

    tasks = [impl.Task(spin(), loop=impl.loop) for _ in range(3)]
    run_for(impl.loop, 0.01)
    assert asyncio.current_task(impl.loop) is None
    for t in tasks:
        t.cancel()
    impl.loop.run_until_complete(asyncio.wait(tasks))


def _replace_current_task(loop, task):
    """Make `task` the loop's current task behind the running task's back."""
    if sys.version_info >= (3, 14):
        # The current task lives on the thread state.
        asyncio.tasks._swap_current_task(loop, task)
    elif task is None:
        asyncio.tasks._current_tasks.pop(loop, None)
    else:
        asyncio.tasks._current_tasks[loop] = task


def test_a_step_that_replaces_its_current_task_entry_is_reported(impl):
    contexts = []

    def handler(loop, context):
        contexts.append(context)
        # Undo the damage so that the task's next step can enter.
        _replace_current_task(loop, None)

    impl.loop.set_exception_handler(handler)
    impostor = impl.future()

    async def meddle():
        _replace_current_task(impl.loop, impostor)
        await asyncio.sleep(0)
        return "done"

    task = impl.Task(meddle(), loop=impl.loop)
    assert impl.loop.run_until_complete(task) == "done"
    [context] = contexts
    assert isinstance(context["exception"], RuntimeError)
    if sys.version_info >= (3, 14):
        expected = "Invalid attempt to leave task"
    else:
        expected = "does not match the current task"
    assert expected in str(context["exception"])
    assert asyncio.current_task(impl.loop) is None


def test_all_tasks_includes_pending_tasks(impl):
    fut = impl.future()

    async def waiting():
        await fut

    async def main():
        t = impl.Task(waiting(), loop=impl.loop)
        tasks = asyncio.all_tasks()
        fut.set_result(None)
        await t
        return t, tasks

    t, tasks = impl.run(main())
    assert t in tasks
    assert asyncio.current_task(impl.loop) is None


# 3.11-3.13 keep every task in a weakref.WeakSet (fastloop adds to it and
# removes from it in C, as the WeakSet's own Python methods do); 3.14 links
# C tasks and their subclasses in a per-thread list instead.
REGISTRY = getattr(asyncio.tasks, "_all_tasks", None)
if sys.version_info >= (3, 12):
    REGISTRY = getattr(asyncio.tasks, "_scheduled_tasks", None)
needs_weakset_registry = pytest.mark.skipif(
    sys.version_info >= (3, 14) or not isinstance(REGISTRY, weakref.WeakSet),
    reason="asyncio keeps its C tasks in a WeakSet up to 3.13 only")


@needs_weakset_registry
def test_a_dead_task_leaves_the_registry(impl):
    gc.collect()
    before = len(REGISTRY.data)
    tasks = [impl.Task(answer(), loop=impl.loop) for _ in range(5)]
    assert len(REGISTRY.data) == before + 5
    assert all(t in REGISTRY for t in tasks)
    impl.run(_wait_all(tasks))
    del tasks
    gc.collect()
    assert len(REGISTRY.data) == before
    assert REGISTRY._pending_removals == []


async def _wait_all(tasks):
    for t in tasks:
        await t


@needs_weakset_registry
def test_a_task_dying_while_the_registry_is_iterated_is_removed_after(impl):
    gc.collect()
    tasks = [impl.Task(answer(), loop=impl.loop) for _ in range(2)]
    impl.run(_wait_all(tasks))
    before = len(REGISTRY.data)
    it = iter(REGISTRY)
    first = next(it)  # the WeakSet is being iterated: removals wait
    # The iterator holds what it yielded: let another task die.
    tasks = [t for t in tasks if t is not first]
    assert len(tasks) == 1
    del tasks
    gc.collect()
    assert len(REGISTRY.data) == before
    assert len(REGISTRY._pending_removals) == 1
    it.close()  # the iteration ends: the removal is done
    assert len(REGISTRY.data) == before - 1
    assert REGISTRY._pending_removals == []
    # A registration commits removals left pending first, as add() does.
    kept = first  # alive while `first` is rebound below
    other = impl.Task(answer(), loop=impl.loop)
    impl.run(_wait_all([other]))
    it = iter(REGISTRY)
    first = next(it)
    if first is other:
        first = next(it)
    assert first is not other
    del other
    gc.collect()
    assert len(REGISTRY._pending_removals) == 1
    guards = set(REGISTRY._iterating)
    REGISTRY._iterating.clear()  # as if the iteration had ended elsewhere
    third = impl.Task(answer(), loop=impl.loop)
    REGISTRY._iterating.update(guards)
    assert REGISTRY._pending_removals == []
    assert third in REGISTRY
    impl.run(_wait_all([third]))
    it.close()
    del kept


def test_pending_task_destroyed_is_reported(impl):
    contexts = collect_exception_contexts(impl.loop)

    async def forever():
        await impl.future()

    task = impl.Task(forever(), loop=impl.loop)
    impl.run_once()
    del task
    gc.collect()
    messages = [c["message"] for c in contexts]
    assert "Task was destroyed but it is pending!" in messages


def test_log_destroy_pending_false_silences_the_report(impl):
    contexts = collect_exception_contexts(impl.loop)

    async def forever():
        await impl.future()

    task = impl.Task(forever(), loop=impl.loop)
    impl.run_once()
    task._log_destroy_pending = False
    del task
    gc.collect()
    assert contexts == []


def test_unretrieved_task_exception_is_reported(impl):
    contexts = collect_exception_contexts(impl.loop)

    async def fail():
        raise ValueError("unseen")

    task = impl.Task(fail(), loop=impl.loop)
    impl.run_once()
    assert task.done()
    del task
    gc.collect()
    assert [c["message"] for c in contexts] == [
        "Task exception was never retrieved"]


def test_tasks_support_weak_references(impl):
    task = impl.Task(answer(), loop=impl.loop)
    ref = weakref.ref(task)
    impl.loop.run_until_complete(task)
    del task
    gc.collect()
    assert ref() is None


def test_task_uses_a_future_subclass_add_done_callback(impl):
    calls = []

    class Recording(impl.Future):
        def add_done_callback(self, fn, *, context=None):
            calls.append(fn)
            super().add_done_callback(fn, context=context)

    fut = Recording(loop=impl.loop)

    async def main():
        impl.loop.call_soon(fut.set_result, "sub")
        return await fut

    assert impl.run(main()) == "sub"
    assert len(calls) == 1


# ------------------------------------------------------------- asyncio tools


def test_gather(impl):
    async def main():
        return await asyncio.gather(answer(), answer())

    assert impl.run(main()) == [42, 42]


def test_timeout_cancels_the_body(impl):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        return asyncio.current_task().cancelling()

    assert impl.run(main()) == 0


def test_wait_for_times_out(impl):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        return await asyncio.wait_for(answer(), 1)

    assert impl.run(main()) == 42


def test_task_group_runs_children_and_propagates_errors(impl):
    async def fail():
        await asyncio.sleep(0)
        raise ValueError("child")

    async def main():
        results = []
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(answer())
        results.append(t.result())
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fail())
                tg.create_task(asyncio.sleep(10))
        return results

    assert impl.run(main()) == [42]


def test_shield_protects_the_inner_task(impl):
    async def main():
        inner = asyncio.ensure_future(answer())
        outer = asyncio.ensure_future(asyncio.shield(inner))
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return await inner

    assert impl.run(main()) == 42


def test_wait_and_as_completed(impl):
    async def main():
        tasks = [asyncio.ensure_future(answer()) for _ in range(3)]
        done, pending = await asyncio.wait(tasks)
        assert len(done) == 3 and not pending
        results = [await f for f in asyncio.as_completed(
            [asyncio.ensure_future(answer()) for _ in range(2)])]
        return results

    assert impl.run(main()) == [42, 42]


def test_queue_lock_event_semaphore_condition(impl):
    async def main():
        queue = asyncio.Queue()
        lock = asyncio.Lock()
        event = asyncio.Event()
        sem = asyncio.Semaphore(1)
        cond = asyncio.Condition()
        got = []

        async def consumer():
            got.append(await queue.get())
            async with lock, sem:
                await event.wait()
            async with cond:
                await cond.wait()
            got.append("notified")

        c = asyncio.ensure_future(consumer())
        await queue.put("item")
        await asyncio.sleep(0)
        event.set()
        for _ in range(5):
            await asyncio.sleep(0)
        async with cond:
            cond.notify_all()
        await c
        return got

    assert impl.run(main()) == ["item", "notified"]


def test_to_thread(impl):
    async def main():
        return await asyncio.to_thread(threading.get_ident)

    assert impl.run(main()) != threading.get_ident()
    impl.loop.run_until_complete(impl.loop.shutdown_default_executor())


def test_wrap_future_of_a_concurrent_future(impl):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cf = pool.submit(lambda: "from thread")

        async def main():
            return await asyncio.wrap_future(cf)

        assert impl.run(main()) == "from thread"


def test_awaiting_an_asyncio_future_from_a_task(impl):
    fut = asyncio.Future(loop=impl.loop)
    impl.loop.call_soon(fut.set_result, "foreign")

    async def main():
        return await fut

    assert impl.run(main()) == "foreign"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="new in 3.12")
def test_eager_task_factory_runs_the_first_step_at_once(impl):
    impl.loop.set_task_factory(asyncio.create_eager_task_factory(impl.Task))
    steps = []

    async def child():
        steps.append("child started")
        await asyncio.sleep(0)
        return "child"

    async def main():
        t = asyncio.ensure_future(child())
        steps.append("after create")
        assert asyncio.current_task() is not t
        return await t

    task = impl.loop.create_task(main())
    assert impl.loop.run_until_complete(task) == "child"
    assert steps == ["child started", "after create"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="new in 3.12")
def test_eager_task_that_finishes_at_once_is_done_on_return(impl):
    async def quick():
        return "quick"

    async def main():
        t = impl.Task(quick(), loop=impl.loop, eager_start=True)
        assert t.done()
        return t.result()

    assert impl.run(main()) == "quick"


# ------------------------------------------------------------------- runners


@pytest.mark.parametrize("kind", ["fastloop", "asyncio"])
def test_asyncio_runner_with_fastloop_loop(kind):
    factory = fastloop.new_event_loop if kind == "fastloop" \
        else asyncio.new_event_loop

    async def main():
        return type(asyncio.current_task()).__module__, await answer()

    with asyncio.Runner(loop_factory=factory) as runner:
        module, value = runner.run(main())
    assert value == 42
    assert module == ("fastloop" if kind == "fastloop" else "_asyncio")


def test_fastloop_run_uses_fastloop_tasks():
    async def main():
        return type(asyncio.current_task())

    assert fastloop.run(main()) is fastloop.Task


# -------------------------------------------------------------------- memory


@pytest.mark.timeout(180)
def test_create_await_cancel_cycles_do_not_leak():
    loop = fastloop.new_event_loop()

    async def sleeper(fut):
        await fut

    async def cycle(n):
        for _ in range(n):
            fut = loop.create_future()
            t = loop.create_task(sleeper(fut))
            await asyncio.sleep(0)
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass
            done = loop.create_future()
            loop.call_soon(done.set_result, None)
            await done

    try:
        loop.run_until_complete(cycle(2000))  # warm up caches and freelists
        gc.collect()
        tracemalloc.start()
        loop.run_until_complete(cycle(50_000))
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        loop.run_until_complete(cycle(50_000))
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        loop.close()
    assert second - first < 64 * 1024
