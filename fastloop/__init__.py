"""fastloop: a drop-in, faster asyncio event loop written in C on libev.

Use it with ``fastloop.run(main())``, ``fastloop.install()`` or
``asyncio.set_event_loop_policy(fastloop.EventLoopPolicy())``, or run an
unchanged script with ``python -m fastloop script.py``.
"""

import asyncio as _asyncio
from asyncio import events as _events

from ._core import Future, Handle, Task, TimerHandle
from ._loop import Loop, new_event_loop

__all__ = [
    "Loop",
    "EventLoopPolicy",
    "Future",
    "Task",
    "Handle",
    "TimerHandle",
    "new_event_loop",
    "install",
    "run",
]

__version__ = "0.1.0"


class EventLoopPolicy(_asyncio.DefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops are fastloop loops."""

    _loop_factory = Loop

    def __repr__(self):
        return f"<{self.__class__.__name__}>"


def install():
    """Make fastloop the loop asyncio creates from now on."""
    _asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run coroutine ``main`` on a new fastloop loop, as asyncio.run()."""
    if _events._get_running_loop() is not None:
        raise RuntimeError(
            "fastloop.run() cannot be called from a running event loop"
        )
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
