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


# 3.14 deprecates the policy functions (removal in 3.16); asyncio's own code
# uses the private, silent ones, and so do these tests.
if sys.version_info >= (3, 14):
    get_policy = asyncio.events._get_event_loop_policy
    set_policy = asyncio.events._set_event_loop_policy
    PolicyBase = asyncio.events._AbstractEventLoopPolicy
else:
    get_policy = asyncio.get_event_loop_policy
    set_policy = asyncio.set_event_loop_policy
    PolicyBase = asyncio.AbstractEventLoopPolicy


@pytest.fixture
def restore_policy():
    policy = get_policy()
    yield
    set_policy(policy)
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
    assert isinstance(fastloop.EventLoopPolicy(), PolicyBase)


def test_install_sets_the_event_loop_policy(fastloop, restore_policy):
    fastloop.install()
    assert isinstance(get_policy(), fastloop.EventLoopPolicy)
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
    policy = get_policy()

    async def main():
        pass

    fastloop.run(main())
    assert get_policy() is policy


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


def run_child(child_env, source, *python_args):
    return subprocess.run([sys.executable, *python_args, "-c", source],
                          env=child_env, capture_output=True, text=True,
                          timeout=30)


WARNINGS_ARE_ERRORS = ("-W", "error", "-X", "dev")


def test_import_gives_no_warning(child_env):
    result = run_child(child_env, "import fastloop, fastloop.__main__",
                       *WARNINGS_ARE_ERRORS)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_run_in_debug_mode_gives_no_warning(child_env):
    # Debug mode checks call_soon's callback with asyncio's coroutine
    # function test, which 3.14 deprecates under its public name.
    source = (
        "import asyncio, fastloop\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    done = loop.create_future()\n"
        "    loop.call_soon(done.set_result, 1)\n"
        "    await asyncio.wait_for(done, 1)\n"
        "    async with asyncio.timeout(1):\n"
        "        await asyncio.sleep(0)\n"
        "    return loop.get_debug()\n"
        "print(fastloop.run(main(), debug=True))\n"
    )
    result = run_child(child_env, source, *WARNINGS_ARE_ERRORS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"
    assert result.stderr == ""


def test_install_gives_no_warning(child_env):
    source = (
        "import asyncio, fastloop\n"
        "fastloop.install()\n"
        "async def main():\n"
        "    return type(asyncio.get_running_loop()).__name__\n"
        "print(asyncio.run(main()))\n"
    )
    result = run_child(child_env, source, *WARNINGS_ARE_ERRORS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Loop\n"
    assert result.stderr == ""


def test_asyncio_runner_with_fastloop_as_loop_factory(fastloop):
    async def main():
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=fastloop.new_event_loop) as runner:
        loop = runner.run(main())
    assert isinstance(loop, fastloop.Loop)
    assert loop.is_closed()


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="asyncio.run() takes loop_factory from 3.12 on")
def test_asyncio_run_with_fastloop_as_loop_factory(fastloop):
    async def main():
        return asyncio.get_running_loop()

    loop = asyncio.run(main(), loop_factory=fastloop.new_event_loop)
    assert isinstance(loop, fastloop.Loop)
    assert loop.is_closed()


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="asyncio's policies are neither deprecated nor "
                           "going away before 3.14")
def test_without_asyncio_policies_install_raises_and_run_works(child_env):
    # Python 3.16 removes the policy system: stand in for it by removing
    # what fastloop would use of it before fastloop is imported.
    source = (
        "import asyncio, asyncio.events, asyncio.unix_events\n"
        "del asyncio.unix_events._DefaultEventLoopPolicy\n"
        "del asyncio.events._set_event_loop_policy\n"
        "import fastloop\n"
        "assert not hasattr(fastloop, 'EventLoopPolicy')\n"
        "try:\n"
        "    fastloop.install()\n"
        "except RuntimeError as exc:\n"
        "    print('install:', exc)\n"
        "async def main():\n"
        "    return type(asyncio.get_running_loop()).__name__\n"
        "print(fastloop.run(main()))\n"
        "print(asyncio.run(main(), loop_factory=fastloop.new_event_loop))\n"
    )
    result = run_child(child_env, source, *WARNINGS_ARE_ERRORS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "install: fastloop.install(): asyncio has no event loop policies on "
        "this Python; use fastloop.run(main()) or "
        "asyncio.run(main(), loop_factory=fastloop.new_event_loop)",
        "Loop",
        "Loop",
    ]
