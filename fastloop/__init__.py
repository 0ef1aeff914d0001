"""fastloop: a drop-in, faster asyncio event loop written in C on libev.

Run a coroutine on it with ``fastloop.run(main())`` or
``asyncio.run(main(), loop_factory=fastloop.new_event_loop)``; run an
unchanged script with ``python -m fastloop script.py``.  ``install()`` and
``EventLoopPolicy`` use asyncio's event loop policies, which Python 3.14
deprecates and 3.16 removes.
"""

import asyncio as _asyncio
import sys as _sys
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

# asyncio's default policy class, reached without the DeprecationWarning
# that 3.14+ gives for the public name; None where policies are gone (3.16).
if _sys.version_info >= (3, 14):
    from asyncio import unix_events as _unix_events

    _PolicyBase = getattr(_unix_events, "_DefaultEventLoopPolicy", None)
    _set_policy = getattr(_events, "_set_event_loop_policy", None)
else:
    _PolicyBase = _asyncio.DefaultEventLoopPolicy
    _set_policy = _asyncio.set_event_loop_policy

_NO_POLICIES = (
    "asyncio has no event loop policies on this Python; use "
    "fastloop.run(main()) or "
    "asyncio.run(main(), loop_factory=fastloop.new_event_loop)"
)

if _PolicyBase is not None:

    class EventLoopPolicy(_PolicyBase):
        """An asyncio event loop policy whose loops are fastloop loops.

        It is asyncio's default policy with fastloop's loop, and exists
        where asyncio has policies: Python 3.14 deprecates them and 3.16
        removes them.  Prefer ``fastloop.run(main())`` or
        ``asyncio.run(main(), loop_factory=fastloop.new_event_loop)``.
        """

        _loop_factory = Loop

        def __repr__(self):
            return f"<{self.__class__.__name__}>"

else:
    __all__.remove("EventLoopPolicy")


def install():
    """Make fastloop the loop asyncio creates from now on.

    This sets fastloop's ``EventLoopPolicy`` as asyncio's event loop policy,
    so ``asyncio.run()``, ``asyncio.new_event_loop()`` and
    ``asyncio.Runner()`` make fastloop loops.  It relies on asyncio's
    policy system: Python 3.14 deprecates it (install() uses asyncio's own
    non-deprecated setter there, so it gives no warning) and 3.16 removes
    it, where install() raises RuntimeError.  Prefer ``fastloop.run()`` or
    ``asyncio.run(main(), loop_factory=fastloop.new_event_loop)``.
    """
    if _PolicyBase is None or _set_policy is None:
        raise RuntimeError(f"fastloop.install(): {_NO_POLICIES}")
    _set_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run coroutine ``main`` on a new fastloop loop, as asyncio.run()."""
    if _events._get_running_loop() is not None:
        raise RuntimeError(
            "fastloop.run() cannot be called from a running event loop"
        )
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
