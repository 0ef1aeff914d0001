"""pytest-asyncio with the fastloop loop: a small pytest project, run by
`python -m pytest` in a child process, whose conftest hands pytest-asyncio
the loop factory through its `pytest_asyncio_loop_factories` hook (added in
pytest-asyncio 1.4, which deprecated overriding `event_loop_policy`).

Its tests check that they, their async fixtures (function- and
module-scoped loops) and their tasks run on the loop kind they were given.
"""

import re
import subprocess
import sys
import textwrap

import pytest

from eco import need

pytest_asyncio = need("pytest_asyncio")

pytestmark = pytest.mark.timeout(60)

CONFTEST = """
import asyncio
import os

import fastloop

KIND = os.environ["ECO_LOOP_KIND"]


def pytest_asyncio_loop_factories(config, item):
    if KIND == "fastloop":
        return {"fastloop": fastloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
"""

TESTS = """
import asyncio
import threading

import pytest
import pytest_asyncio

import fastloop
from conftest import KIND

FASTLOOP = KIND == "fastloop"


def on_expected_kind():
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    return (
        isinstance(loop, fastloop.Loop) == FASTLOOP
        and isinstance(task, asyncio.Task)
        and isinstance(task, fastloop.Task) == FASTLOOP
    )


@pytest_asyncio.fixture
async def function_loop():
    assert on_expected_kind()
    yield asyncio.get_running_loop()
    # Teardown runs on the same loop, after the test.
    assert on_expected_kind()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def module_loop():
    assert on_expected_kind()
    return asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_runs_on_the_configured_loop(function_loop):
    assert on_expected_kind()
    assert function_loop is asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_tasks_timeouts_and_threads():
    assert on_expected_kind()
    results = await asyncio.gather(*(asyncio.sleep(0, result=i) for i in range(5)))
    assert results == [0, 1, 2, 3, 4]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()
    worker = await asyncio.to_thread(threading.get_ident)
    assert worker != threading.get_ident()


@pytest.mark.asyncio
async def test_streams_on_loopback():
    async def handle(reader, writer):
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    assert on_expected_kind()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\\n")
    assert await reader.readline() == b"PING\\n"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_first(module_loop):
    assert on_expected_kind()
    assert module_loop is asyncio.get_running_loop()


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_second(module_loop):
    assert on_expected_kind()
    assert module_loop is asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_a_failing_test_is_reported_as_failed():
    await asyncio.sleep(0)
    raise AssertionError("expected failure")
"""

PYPROJECT = """
[tool.pytest.ini_options]
asyncio_mode = "strict"
asyncio_default_fixture_loop_scope = "function"
asyncio_default_test_loop_scope = "function"
"""


def test_pytest_asyncio_project_runs_on_the_given_loop(tmp_path, loop_factory, child_env):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    env = dict(child_env, ECO_LOOP_KIND=loop_factory.name)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
            "-W", "error::pytest.PytestDeprecationWarning",
            "--timeout", "30", "--rootdir", str(tmp_path), str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    out = proc.stdout + proc.stderr
    outcomes = dict(re.findall(r"test_inner\.py::(\w+)(?:\[[^]]*\])? (PASSED|FAILED)", out))
    assert outcomes == {
        "test_runs_on_the_configured_loop": "PASSED",
        "test_tasks_timeouts_and_threads": "PASSED",
        "test_streams_on_loopback": "PASSED",
        "test_module_scope_first": "PASSED",
        "test_module_scope_second": "PASSED",
        "test_a_failing_test_is_reported_as_failed": "FAILED",
    }, out
    assert "expected failure" in out
    assert proc.returncode == 1, out  # pytest's "some tests failed"
    assert re.search(r"\b1 failed, 5 passed\b", out), out
