"""Shared fixtures: every behaviour test runs on fastloop and on stock asyncio.

Stock asyncio is the specification.  A test that passes on fastloop but fails
on asyncio is testing a fastloop bug, not asyncio behaviour.

Fixtures
  loop_factory  a callable making a fresh loop of the parametrized kind; its
                ``name`` is "fastloop" or "asyncio" and ``new_loop_source``
                is the Python source that makes such a loop in a child process
  loop          a fresh loop from ``loop_factory``; closed after the test
  child_env     environment for child processes that must import fastloop
                from this tree (no asyncio debug or dev mode inherited)
"""

import asyncio
import os
import pathlib
import socket

import pytest

# --refleak=W:N (make test-debug); the hooks live in tests/refleak.py.
from refleak import (  # noqa: F401
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_protocol,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent

LOOP_KINDS = ["fastloop", "asyncio"]


class LoopFactory:
    """Make new event loops of one kind: fastloop's or stock asyncio's."""

    def __init__(self, name):
        self.name = name

    def __call__(self):
        if self.name == "fastloop":
            import fastloop

            return fastloop.new_event_loop()
        return asyncio.new_event_loop()

    @property
    def new_loop_source(self):
        """Source of an expression making such a loop (after `import asyncio`)."""
        if self.name == "fastloop":
            return "__import__('fastloop').new_event_loop()"
        return "asyncio.new_event_loop()"

    @property
    def run_source(self):
        """Source of a function like asyncio.run for this kind of loop."""
        if self.name == "fastloop":
            return "__import__('fastloop').run"
        return "asyncio.run"

    def __repr__(self):
        return f"LoopFactory({self.name!r})"


@pytest.fixture(params=LOOP_KINDS, ids=LOOP_KINDS)
def loop_factory(request):
    return LoopFactory(request.param)


@pytest.fixture
def loop(loop_factory):
    loop = loop_factory()
    try:
        yield loop
    finally:
        if loop.is_running():
            # A test that failed inside a callback can leave it running only
            # if it escaped run_forever abnormally; stop it so it can close.
            loop.stop()
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def sockets():
    """A connected pair of non-blocking stream sockets, closed after."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p
    )
    for var in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONWARNINGS"):
        env.pop(var, None)
    return env


def run_for(loop, seconds):
    """Run `loop` for about `seconds`, then stop it."""
    loop.call_later(seconds, loop.stop)
    loop.run_forever()
