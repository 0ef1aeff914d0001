"""The event loops being compared, by name.

Each factory imports its module lazily: a worker process imports only the
loop it measures, so one loop's import cost or import failure never touches
another's numbers.
"""

import asyncio
import importlib
import importlib.metadata
import importlib.util
import sys

# Display order; the runner keeps it whatever order --loops names them in.
LOOP_NAMES = ("fastloop", "asyncio", "uvloop", "c-libev")
# Not an event loop: the network benchmarks' pure-C echo server
# (bench_net.py), measured only by benchmarks registered with ceiling=True.
CEILING = "c-libev"
REFERENCES = ("asyncio", "uvloop")  # the loops ratios are taken against
SUBJECT = "fastloop"                # the loop targets apply to


def new_loop(name):
    """A new event loop of the named kind."""
    if name == "fastloop":
        import fastloop
        return fastloop.new_event_loop()
    if name == "asyncio":
        # Stock asyncio: the Python selector loop with the C (_asyncio)
        # Future and Task.  The worker is a fresh process, so no policy
        # has been installed that would change what this returns.
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == CEILING:
        # The worker needs a loop to set up and tear down with; the
        # benchmark runs the C server instead (bench_net.is_ceiling).
        loop = asyncio.new_event_loop()
        loop._bench_c_ceiling = True
        return loop
    raise ValueError(f"unknown loop {name!r}; choose from "
                     f"{', '.join(LOOP_NAMES)}")


def module_name(name):
    return {"fastloop": "fastloop", "asyncio": "asyncio",
            "uvloop": "uvloop", CEILING: "asyncio"}[name]


def importable(name):
    """Whether the loop's module can be found (without importing it)."""
    return importlib.util.find_spec(module_name(name)) is not None


def describe(loop):
    """What the loop really is: its type and the Future/Task types it
    creates, so that results record e.g. whether asyncio ran with the C
    Future."""
    fut = loop.create_future()

    async def nothing():
        pass

    coro = nothing()
    task = loop.create_task(coro)
    task.cancel()
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    fut.cancel()

    def qualname(tp):
        return f"{tp.__module__}.{tp.__qualname__}"

    return {"loop_type": qualname(type(loop)),
            "future_type": qualname(type(fut)),
            "task_type": qualname(type(task))}


def version(name):
    """The loop's package version (Python's for asyncio), or None."""
    if name == "asyncio":
        return sys.version.split()[0]
    if name == CEILING:
        return "libev (C)"
    try:
        return importlib.metadata.version(name)
    except Exception:
        try:
            module = importlib.import_module(module_name(name))
        except Exception:
            return None
        return getattr(module, "__version__", None)

