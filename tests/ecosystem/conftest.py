"""Helpers for the ecosystem matrix: third-party asyncio libraries, unchanged,
on fastloop and on stock asyncio.

Each scenario runs once per kind of loop (the `loop_factory` and `loop`
fixtures of tests/conftest.py) and asserts the same observable results on
both; it also checks that it really ran on the kind of loop it was given.
A package that is not installed on the running Python skips its module
(`pytest.importorskip`, reason naming the package).  `make ecosystem`
installs them (the `ecosystem` extra in pyproject.toml).

Fixtures
  arun       run a coroutine function to completion on `loop`, as asyncio.run
             does (remaining tasks cancelled, async generators and the
             default executor shut down), under a timeout
  on_kind    the coroutine-side check: asserts that the running loop (and
             the current task) are of the parametrized kind
"""

import asyncio

import pytest

from eco import SCENARIO_TIMEOUT, check_loop_kind, check_task_kind


@pytest.fixture
def on_kind(loop_factory):
    """Call inside a coroutine: checks the running loop and current task."""

    def check():
        check_loop_kind(loop_factory.name)
        check_task_kind(loop_factory.name)

    return check


@pytest.fixture
def arun(loop):
    def run(main, *args, timeout=SCENARIO_TIMEOUT):
        async def bounded():
            return await asyncio.wait_for(main(*args), timeout)

        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            return runner.run(bounded())

    return run


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """(server_context, client_context) trusting a fresh self-signed
    certificate for 127.0.0.1."""
    from eco import make_tls_contexts

    return make_tls_contexts(tmp_path_factory.mktemp("tls"))
