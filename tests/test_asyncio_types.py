"""fastloop's Future and Task are asyncio's own types.

fastloop.Future subclasses asyncio's C Future and fastloop.Task asyncio's C
Task, so that libraries checking ``isinstance(x, asyncio.Future)`` (Tornado,
``asyncio.capture_call_graph``) accept them.  fastloop keeps its own state
after the base types' storage; the tests below pin down that no asyncio
method reads that (unused) storage through a fastloop object, and that
asyncio's own functions that do write it (3.14's task list and awaited-by
links) keep working.
"""

import asyncio
import concurrent.futures
import gc
import io
import subprocess
import sys
import textwrap
import weakref

import pytest

import fastloop

pytestmark = pytest.mark.timeout(30)


async def _answer():
    await asyncio.sleep(0)
    return 42


def test_create_future_returns_an_asyncio_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert isinstance(fut, (asyncio.Future, concurrent.futures.Future))
    assert asyncio.isfuture(fut)
    fut.cancel()


def test_create_task_returns_an_asyncio_task(loop):
    task = loop.create_task(_answer())
    assert isinstance(task, asyncio.Task)
    assert isinstance(task, asyncio.Future)
    assert loop.run_until_complete(task) == 42


def test_ensure_future_of_a_coroutine_is_an_asyncio_task(loop):
    async def main():
        task = asyncio.ensure_future(_answer())
        return isinstance(task, asyncio.Task), await task

    assert loop.run_until_complete(main()) == (True, 42)


def test_gather_returns_an_asyncio_future(loop):
    async def main():
        outer = asyncio.gather()
        return isinstance(outer, asyncio.Future), await outer

    assert loop.run_until_complete(main()) == (True, [])


def test_fastloop_types_are_subclasses_of_asyncios():
    assert issubclass(fastloop.Future, asyncio.Future)
    assert issubclass(fastloop.Task, asyncio.Task)
    assert issubclass(fastloop.Task, asyncio.Future)


@pytest.mark.parametrize("base, ours", [
    (asyncio.Future, fastloop.Future), (asyncio.Task, fastloop.Task)],
    ids=["Future", "Task"])
def test_every_asyncio_attribute_is_fastloops_own(base, ours):
    # An attribute inherited from asyncio's C type would read the base's
    # storage, which fastloop objects leave unused.
    shared = set()
    if sys.version_info >= (3, 14):
        # Written by asyncio's own future_add_to_awaited_by(), which
        # accepts any subclass: the base's getter reads what it wrote.
        shared.add("_asyncio_awaited_by")
    for name in set(vars(base)) - {"__doc__", "__module__"} - shared:
        owner = next(k for k in ours.__mro__ if name in vars(k))
        assert owner is ours, f"{ours.__name__}.{name} comes from {owner}"


def test_a_task_factory_may_return_fastloop_tasks_on_asyncios_loop():
    loop = asyncio.new_event_loop()
    try:
        loop.set_task_factory(
            lambda lp, coro, **kw: fastloop.Task(coro, loop=lp, **kw))
        task = loop.create_task(_answer())
        assert isinstance(task, asyncio.Task)
        assert loop.run_until_complete(task) == 42
    finally:
        loop.close()


def test_an_asyncio_task_awaits_a_fastloop_future_on_a_fastloop_loop():
    loop = fastloop.new_event_loop()
    try:
        fut = loop.create_future()

        async def waiter():
            return await fut

        task = asyncio.Task(waiter(), loop=loop)
        loop.call_soon(fut.set_result, "done")
        assert loop.run_until_complete(task) == "done"
    finally:
        loop.close()


def test_instance_attributes_and_weak_references_work(loop):
    fut = loop.create_future()
    fut.tag = "mine"
    ref = weakref.ref(fut)
    assert fut.tag == "mine"
    assert ref() is fut
    del fut
    gc.collect()
    assert ref() is None


def test_a_future_in_a_reference_cycle_through_its_attributes_is_collected(
        loop):
    fut = loop.create_future()
    fut.me = fut
    ref = weakref.ref(fut)
    del fut
    gc.collect()
    assert ref() is None


# asyncio's own methods called unbound on fastloop objects (as
# ``asyncio.Future.done(fut)`` would be) see a Future that was never
# initialised: they raise, or answer as for such a future, and never crash.
_UNBOUND_PROGRAM = textwrap.dedent("""
    import asyncio, gc, sys, fastloop
    loop = fastloop.new_event_loop()

    async def coro():
        await asyncio.sleep(0)

    def objects():
        pending = loop.create_future()
        done = loop.create_future(); done.set_result(1)
        failed = loop.create_future(); failed.set_exception(ValueError())
        failed.exception()
        cancelled = loop.create_future(); cancelled.cancel()
        task = loop.create_task(coro())
        return [pending, done, failed, cancelled, task]

    outcomes = set()
    for base in (asyncio.Future, asyncio.Task):
        for name, attr in sorted(vars(base).items()):
            for obj in objects():
                if not isinstance(obj, base):
                    continue
                for args in ((), (1,), (lambda f: None,), (ValueError(),)):
                    try:
                        if callable(attr):
                            attr(obj, *args)
                        elif hasattr(attr, "__get__"):
                            attr.__get__(obj, type(obj))
                        outcomes.add("ok")
                    except Exception as exc:
                        outcomes.add(type(exc).__name__)
                obj.cancel()
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    gc.collect()
    print(sorted(outcomes))
""")


def test_asyncios_methods_called_unbound_on_fastloop_objects_do_not_crash(
        child_env):
    proc = subprocess.run([sys.executable, "-c", _UNBOUND_PROGRAM],
                          env=child_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_asyncio_future_result_called_unbound_raises_invalid_state():
    loop = fastloop.new_event_loop()
    try:
        fut = loop.create_future()
        fut.set_result(1)
        with pytest.raises(asyncio.InvalidStateError,
                           match="not initialized"):
            asyncio.Future.result(fut)
        with pytest.raises(RuntimeError):
            asyncio.Future.set_result(fut, 2)
        assert fut.result() == 1
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="call graphs are new in 3.14")
def test_capture_call_graph_shows_who_awaits_a_task(loop):
    async def leaf():
        return asyncio.capture_call_graph()

    async def middle():
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(leaf(), name="leaf")
        return t.result()

    async def main():
        return await asyncio.create_task(middle(), name="middle")

    graph = loop.run_until_complete(main())

    def names(g):
        return (g.future.get_name(), [names(p) for p in g.awaited_by])

    assert names(graph)[0] == "leaf"
    assert names(graph)[1][0][0] == "middle"
    assert any(e.frame.f_code.co_name == "leaf" for e in graph.call_stack)


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="call graphs are new in 3.14")
def test_print_call_graph_names_the_awaiting_tasks(loop):
    out = io.StringIO()

    async def leaf():
        asyncio.print_call_graph(file=out)

    async def main():
        await asyncio.create_task(leaf(), name="the-leaf")

    loop.run_until_complete(loop.create_task(main(), name="the-main"))
    text = out.getvalue()
    assert "the-leaf" in text
    assert "the-main" in text


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="call graphs are new in 3.14")
def test_a_future_awaited_by_a_task_knows_it(loop):
    fut = loop.create_future()
    seen = []

    async def waiter():
        await fut

    async def main():
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        seen.append(fut._asyncio_awaited_by)
        fut.set_result(None)
        await task
        seen.append(fut._asyncio_awaited_by)
        return task

    task = loop.run_until_complete(main())
    assert seen[0] == frozenset({task})
    assert not seen[1]


def test_all_tasks_sees_pending_tasks_only(loop):
    async def main():
        done = [asyncio.create_task(asyncio.sleep(0)) for _ in range(50)]
        await asyncio.gather(*done)
        pending = asyncio.create_task(asyncio.sleep(10))
        tasks = asyncio.all_tasks()
        pending.cancel()
        return tasks, pending, done

    tasks, pending, done = loop.run_until_complete(main())
    assert pending in tasks
    assert not set(done) & tasks


def test_a_finished_task_registered_again_is_freed_safely(loop):
    if not isinstance(loop, fastloop.Loop) and hasattr(sys, "gettotalrefcount"):
        pytest.skip("a debug build's asyncio asserts a finished task is "
                    "never registered again (release builds go on)")

    async def main():
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        asyncio.tasks._register_task(task)
        ref = weakref.ref(task)
        del task
        gc.collect()
        return ref, [t.done() for t in asyncio.all_tasks()]

    ref, done = loop.run_until_complete(main())
    assert ref() is None
    assert done == [False]


PS_PROGRAM = """
import asyncio
async def leaf():
    await asyncio.sleep(60)
async def branch():
    await asyncio.gather(leaf(), leaf())
async def main():
    async with asyncio.TaskGroup() as tg:
        tg.create_task(branch(), name="branch-1")
        tg.create_task(branch())
        asyncio.get_running_loop().call_soon(lambda: print("ready", flush=True))
asyncio.run(main(), loop_factory=lambda: %s)
"""


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="python -m asyncio ps/pstree are new in 3.14")
@pytest.mark.parametrize("tool", ["ps", "pstree"])
def test_python_m_asyncio_tools_show_the_tasks_of_another_process(
        loop_factory, child_env, tool):
    import re

    source = PS_PROGRAM % loop_factory.new_loop_source
    child = subprocess.Popen([sys.executable, "-c", source], env=child_env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        result = subprocess.run(
            [sys.executable, "-m", "asyncio", tool, str(child.pid)],
            env=child_env, capture_output=True, text=True, timeout=30)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    if "Operation not permitted" in result.stderr:
        pytest.skip("this environment does not allow reading another "
                    "process's memory (ptrace)")
    assert result.returncode == 0, result.stderr
    # Task ids are addresses and the thread id varies: compare the rest.
    shown = re.sub(r"0x[0-9a-f]+|^\d+ ", "", result.stdout, flags=re.M)
    for name in ("Task-1", "branch-1", "Task-2", "Task-3", "Task-6"):
        assert name in shown
    if tool == "ps":
        rows = [line.split() for line in shown.splitlines()[2:]]
        assert len(rows) == 7
        assert sum("leaf" in line for line in shown.splitlines()) == 4
    else:
        assert shown.count("(T)") == 7
        assert shown.count("sleep") == 4
