"""The fastloop package API: Loop, new_event_loop, EventLoopPolicy, install, run.

These are fastloop's own entry points, so they are not run on stock asyncio;
where one mirrors an asyncio function (run ~ asyncio.run) it is checked
against it.
"""

import asyncio
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def fastloop():
    # Imported here so that a broken build fails these tests, not the
    # collection of the whole suite.
    import fastloop

    return fastloop


@pytest.fixture
def restore_policy():
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)
    asyncio.set_event_loop(None)


def test_loop_is_an_abstract_event_loop(fastloop):
    assert issubclass(fastloop.Loop, asyncio.AbstractEventLoop)


def test_new_event_loop_returns_a_new_fastloop_loop(fastloop):
    first, second = fastloop.new_event_loop(), fastloop.new_event_loop()
    try:
        assert isinstance(first, fastloop.Loop)
        assert first is not second
        assert not first.is_closed()
    finally:
        first.close()
        second.close()


def test_event_loop_policy_new_event_loop_returns_a_fastloop_loop(fastloop):
    loop = fastloop.EventLoopPolicy().new_event_loop()
    try:
        assert isinstance(loop, fastloop.Loop)
    finally:
        loop.close()


def test_event_loop_policy_is_an_abstract_event_loop_policy(fastloop):
    assert isinstance(fastloop.EventLoopPolicy(), asyncio.AbstractEventLoopPolicy)


def test_install_sets_the_event_loop_policy(fastloop, restore_policy):
    fastloop.install()
    assert isinstance(asyncio.get_event_loop_policy(), fastloop.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, fastloop.Loop)
    finally:
        loop.close()


def test_standard_run_function_uses_fastloop_after_install(fastloop, restore_policy):
    fastloop.install()

    async def main():
        return isinstance(asyncio.get_running_loop(), fastloop.Loop)

    assert asyncio.run(main()) is True


def test_run_runs_the_coroutine_on_a_fastloop_loop_and_returns_its_result(fastloop):
    async def main():
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    loop = fastloop.run(main())
    assert isinstance(loop, fastloop.Loop)
    assert loop.is_closed()


def test_run_with_debug_true_runs_in_debug_mode(fastloop):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert fastloop.run(main(), debug=True) is True


def test_run_with_debug_false_runs_without_debug_mode(fastloop):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert fastloop.run(main(), debug=False) is False


def test_run_propagates_the_exception(fastloop):
    async def main():
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        fastloop.run(main())


def test_run_does_not_change_the_event_loop_policy(fastloop):
    policy = asyncio.get_event_loop_policy()

    async def main():
        pass

    fastloop.run(main())
    assert asyncio.get_event_loop_policy() is policy


def test_run_cancels_remaining_tasks_and_finalizes_async_generators(fastloop):
    events = []

    async def agen():
        try:
            yield
        finally:
            events.append("agen finalized")

    async def forever():
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            events.append("task cancelled")
            raise

    async def main():
        asyncio.get_running_loop().create_task(forever())
        gen = agen()
        await gen.__anext__()
        await asyncio.sleep(0)
        main.gen = gen

    fastloop.run(main())
    assert sorted(events) == ["agen finalized", "task cancelled"]


# asyncio.run() of something it cannot run: ValueError("a coroutine was
# expected") up to 3.13; 3.14 accepts any awaitable and raises TypeError for
# the rest (its Runner.run wraps awaitables in a coroutine).
NOT_RUNNABLE = ValueError if sys.version_info < (3, 14) else TypeError


def test_run_with_a_non_coroutine_raises_what_asyncio_run_raises(fastloop):
    with pytest.raises(NOT_RUNNABLE) as stock:
        asyncio.run(1)
    with pytest.raises(NOT_RUNNABLE) as ours:
        fastloop.run(1)
    assert type(ours.value) is type(stock.value)
    assert str(ours.value) == str(stock.value)


class _Awaitable:
    def __await__(self):
        yield from asyncio.sleep(0).__await__()
        return "awaited"


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="asyncio.run() accepts awaitables since 3.14")
def test_run_with_an_awaitable_runs_it_as_asyncio_run_does(fastloop):
    assert asyncio.run(_Awaitable()) == "awaited"
    assert fastloop.run(_Awaitable()) == "awaited"


@pytest.mark.skipif(sys.version_info >= (3, 14),
                    reason="asyncio.run() accepts awaitables since 3.14")
def test_run_with_an_awaitable_that_is_no_coroutine_raises_value_error(
        fastloop):
    with pytest.raises(ValueError, match="a coroutine was expected"):
        asyncio.run(_Awaitable())
    with pytest.raises(ValueError, match="a coroutine was expected"):
        fastloop.run(_Awaitable())


def test_run_inside_a_running_loop_raises_runtime_error(fastloop):
    async def inner():
        pass

    async def main():
        coro = inner()
        try:
            fastloop.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError):
        fastloop.run(main())


@pytest.mark.parametrize("env, expected", [({"PYTHONASYNCIODEBUG": "1"}, "True"), ({}, "False")],
                         ids=["debug-env-var", "plain"])
def test_run_without_debug_argument_follows_the_environment(fastloop, child_env, env, expected):
    source = (
        "import asyncio, fastloop\n"
        "async def main():\n"
        "    return asyncio.get_running_loop().get_debug()\n"
        "print(fastloop.run(main()))\n"
    )
    result = subprocess.run([sys.executable, "-c", source], env={**child_env, **env},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
