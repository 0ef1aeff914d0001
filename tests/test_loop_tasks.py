"""Creating futures and tasks, and the task factory.

https://docs.python.org/3/library/asyncio-eventloop.html#creating-futures-and-tasks
"""

import asyncio
import contextvars
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(10)


async def answer():
    await asyncio.sleep(0)
    return 42


def test_create_future_returns_a_pending_future_of_this_loop(loop):
    fut = loop.create_future()
    assert asyncio.isfuture(fut)
    assert fut.get_loop() is loop
    assert not fut.done()


def test_create_future_returns_a_new_future_each_time(loop):
    assert loop.create_future() is not loop.create_future()


def test_create_task_schedules_the_coroutine(loop):
    task = loop.create_task(answer())
    assert asyncio.isfuture(task)
    assert task.get_loop() is loop
    assert not task.done()
    assert loop.run_until_complete(task) == 42


def test_create_task_does_not_run_the_coroutine_until_the_loop_runs(loop):
    events = []

    async def coro():
        events.append("started")

    task = loop.create_task(coro())
    assert events == []
    loop.run_until_complete(task)
    assert events == ["started"]


def test_create_task_sets_the_name(loop):
    task = loop.create_task(answer(), name="the answer")
    assert task.get_name() == "the answer"
    loop.run_until_complete(task)


def test_create_task_runs_the_coroutine_in_the_given_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")

    async def coro():
        return var.get()

    task = loop.create_task(coro(), context=ctx)
    assert loop.run_until_complete(task) == "in ctx"


def test_get_task_factory_is_none_by_default(loop):
    assert loop.get_task_factory() is None


def test_set_task_factory_then_get_task_factory_returns_it(loop):
    def factory(lp, coro, **kwargs):
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None


def test_create_task_uses_the_task_factory(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append(lp)
        task = asyncio.Task(coro, loop=lp, **kwargs)
        task.made_by_factory = True
        return task

    loop.set_task_factory(factory)
    task = loop.create_task(answer())
    assert calls == [loop]
    assert task.made_by_factory
    assert loop.run_until_complete(task) == 42


def test_create_task_with_a_task_factory_still_sets_the_name(loop):
    loop.set_task_factory(lambda lp, coro, **kw: asyncio.Task(coro, loop=lp, **kw))
    task = loop.create_task(answer(), name="named")
    assert task.get_name() == "named"
    loop.run_until_complete(task)


def test_run_until_complete_with_a_coroutine_uses_the_task_factory(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append(coro)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.run_until_complete(answer()) == 42
    assert len(calls) == 1


def test_set_task_factory_with_a_non_callable_raises_type_error(loop):
    with pytest.raises(TypeError):
        loop.set_task_factory("not callable")
    assert loop.get_task_factory() is None


def test_create_task_inside_a_coroutine_is_seen_by_all_tasks(loop):
    async def main():
        task = loop.create_task(asyncio.sleep(0))
        tasks = asyncio.all_tasks()
        await task
        return task, tasks, asyncio.current_task()

    task, tasks, current = loop.run_until_complete(main())
    assert task in tasks
    assert current in tasks


def test_create_task_passes_the_context_to_the_task_factory(loop):
    received = []

    def factory(lp, coro, **kwargs):
        received.append(kwargs.get("context"))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()
    loop.run_until_complete(loop.create_task(answer(), context=ctx))
    assert received == [ctx]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_eager_task_factory_starts_the_coroutine_inside_create_task(loop):
    events = []

    async def coro():
        events.append("started")
        await asyncio.sleep(0)
        events.append("resumed")
        return "done"

    async def main():
        task = loop.create_task(coro())
        events.append("create_task returned")
        return await task

    loop.set_task_factory(asyncio.eager_task_factory)
    assert loop.run_until_complete(main()) == "done"
    assert events == ["started", "create_task returned", "resumed"]


def test_current_task_in_a_plain_callback_is_none(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.current_task()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [None]


def test_current_task_in_a_coroutine_is_its_task(loop):
    async def main():
        return asyncio.current_task()

    task = loop.create_task(main())
    assert loop.run_until_complete(task) is task


def test_task_factory_receives_the_keywords_create_task_passes(loop):
    received = []

    def factory(lp, coro, **kwargs):
        received.append(sorted(kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    loop.run_until_complete(loop.create_task(answer()))
    loop.run_until_complete(loop.create_task(answer(), context=None))
    ctx = contextvars.copy_context()
    loop.run_until_complete(loop.create_task(answer(), context=ctx))
    if sys.version_info >= (3, 14):
        # 3.14 passes exactly the caller's keywords through (gh-128307).
        assert received == [[], ["context"], ["context"]]
    else:
        # Earlier versions pass context only when it is not None.
        assert received == [[], [], ["context"]]


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="create_task(**kwargs) is new in 3.14"
)
def test_create_task_passes_any_keyword_to_the_task_factory(loop):
    received = []

    def factory(lp, coro, *, tag, **kwargs):
        received.append(tag)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.run_until_complete(loop.create_task(answer(), tag="x")) == 42
    assert received == ["x"]


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="create_task(**kwargs) is new in 3.14"
)
def test_create_task_without_a_factory_rejects_unknown_keywords(loop):
    coro = answer()
    with pytest.raises(TypeError, match="unexpected keyword argument 'tag'"):
        loop.create_task(coro, tag="x")
    coro.close()


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="3.14 passes keywords on to Task"
)
def test_create_task_rejects_keywords_other_than_name_and_context(loop):
    coro = answer()
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        loop.create_task(coro, tag="x")
    coro.close()


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="3.14 passes eager_start on to Task"
)
def test_create_task_rejects_eager_start_before_3_14(loop):
    coro = answer()
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        loop.create_task(coro, eager_start=True)
    coro.close()


def test_a_two_argument_task_factory_and_create_task_with_a_name(loop):
    # Up to 3.13 create_task calls a factory with (loop, coro) and names the
    # task itself; 3.14 passes name= on to the factory, which must take it.
    loop.set_task_factory(lambda lp, coro: asyncio.Task(coro, loop=lp))
    coro = answer()
    if sys.version_info >= (3, 14):
        with pytest.raises(TypeError, match="name"):
            loop.create_task(coro, name="named")
        coro.close()
    else:
        task = loop.create_task(coro, name="named")
        assert task.get_name() == "named"
        assert loop.run_until_complete(task) == 42


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="create_task(eager_start=) is new in 3.14"
)
def test_create_task_with_eager_start_runs_the_first_step_at_once(loop):
    events = []

    async def coro():
        events.append("started")
        await asyncio.sleep(0)
        events.append("resumed")
        return asyncio.current_task()

    async def main():
        task = asyncio.create_task(coro(), eager_start=True)
        events.append("create_task returned")
        assert asyncio.current_task() is not task
        return task, await task

    task, current = loop.run_until_complete(main())
    assert events == ["started", "create_task returned", "resumed"]
    assert current is task


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="create_task(eager_start=) is new in 3.14"
)
def test_an_eager_task_that_finishes_at_once_is_done_when_created(loop):
    async def coro():
        return asyncio.current_task()

    async def main():
        task = loop.create_task(coro(), eager_start=True, name="eager")
        return task, task.done(), task.result(), asyncio.current_task()

    task, done, current_inside, outer = loop.run_until_complete(main())
    assert done
    assert current_inside is task
    assert outer is not task
    assert task.get_name() == "eager"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_all_tasks_sees_an_eager_task_while_it_runs_its_first_step(loop):
    async def coro():
        return asyncio.current_task() in asyncio.all_tasks()

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        return await loop.create_task(coro())

    assert loop.run_until_complete(main()) is True


def test_timeout_and_task_group_work_inside_a_task(loop):
    async def child():
        await asyncio.sleep(0)
        return "child"

    async def main():
        async with asyncio.timeout(10):
            async with asyncio.TaskGroup() as tg:
                t = tg.create_task(child())
        return asyncio.current_task() is not None, t.result()

    assert loop.run_until_complete(main()) == (True, "child")


@pytest.mark.timeout(60)
def test_a_task_subclass_whose_del_skips_the_finalizer_is_freed_safely(
        loop_factory, child_env):
    # A subclass's __del__ replaces the Task's finalizer.  Freed pending, such
    # a task must still leave asyncio's list of tasks (3.14+ links tasks into
    # a per-thread list through the C Task's storage): all_tasks() later walks
    # that list.  In a child process: the bug is a use-after-free.
    source = textwrap.dedent(f"""
        import asyncio, gc, weakref
        async def sleeper():
            await asyncio.sleep(10)
        loop = {loop_factory.new_loop_source}
        probe = loop.create_task(sleeper())
        class Quiet(type(probe)):
            def __del__(self):
                pass
        probe.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        coros, refs = [], []
        for _ in range(3):
            coros.append(sleeper())
            task = Quiet(coros[-1], loop=loop)
            task._log_destroy_pending = False
            refs.append(weakref.ref(task))
            del task
        loop.close()    # drops the scheduled first steps: freed pending
        gc.collect()
        assert not any(ref() for ref in refs)
        # Reuse the freed memory, so that a stale link points at garbage.
        junk = [b"\\xff" * n for n in range(480, 1200, 8) for _ in range(2)]
        other = {loop_factory.new_loop_source}
        print(asyncio.all_tasks(other))
        other.close()
        for coro in coros:
            coro.close()
    """)
    result = subprocess.run([sys.executable, "-c", source], env=child_env,
                            capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "set()\n"
