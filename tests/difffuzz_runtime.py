"""Runtime of the differential fuzzer's programs (see test_differential.py).

A fuzzer program is plain Python source (difffuzz_gen.compile_program
writes it) defining ``program(loop, F, T, H)``: it creates futures ``F[i]``,
tasks ``T[k]`` and handles ``H[k]`` and wires callbacks and coroutines
together.  ``run_program`` runs it on one loop implementation and returns
what it observed; ``check`` runs it on every implementation and compares
with stock asyncio.  A reproducer is the program's source itself: saved in
tests/ and run with the venv's python, it prints each loop's log and the
differences (``main`` below).

What is observed
  * ``log(label, *values)``: the program's own events (callbacks running,
    task steps, results and exceptions), in order;
  * every call of the loop's exception handler, in order, except the
    reports that a destructor makes ("exception was never retrieved",
    "Task was destroyed but it is pending!"): when an object dies depends
    on who held the last reference, which asyncio does not specify, so
    those, unraisable exceptions and warnings are compared as a multiset;
  * the final state of every future, task and handle, before and after the
    pending tasks are cancelled at the end;
  * ``run_forever`` returning early (``loop.stop()``) or raising
    (KeyboardInterrupt, SystemExit out of a callback or task).

Time is virtual: a program names points in time as slots (``at(slot)``,
``delay(slot)``), slot ``s`` being ``(s + 1) * SLOT`` seconds after the
program started.  The generator gives every timer its own slot, so that
timers fire in slot order whatever the machine's speed, as long as the work
one slot starts ends before the next slot (a few hundred microseconds
against SLOT = 2 ms).  ``check`` reruns a program whose logs differ with
slots up to 64 times longer before it calls the difference real.
"""

import asyncio
import collections
import difflib
import gc
import re
import sys
import threading
import warnings

__all__ = [
    "asyncio",
    "gc",
    "log",
    "logged",
    "caught",
    "at",
    "delay",
    "tick",
    "from_thread",
    "main",
]

# The loop implementations a program runs on; the first is the reference.
IMPLS = ("asyncio", "fastloop", "fastloop-types-on-asyncio")
REFERENCE = IMPLS[0]

SLOT = 0.002  # seconds between two slots of virtual time
QUIET = 30
SHOW_CONTEXT = True  # show an exception's implicit __context__  # loop iterations without an event that end a run

# "<class name> exception was never retrieved", "Task was destroyed but it
# is pending!": reports made by a destructor.
_DESTRUCTOR_MESSAGE = re.compile(
    r"^\w+ exception was never retrieved$|^Task was destroyed but it is pending!$"
)

_run = None  # the run in progress


def _native_types(impl):
    import fastloop

    if impl == "asyncio" or impl in EXTRA_IMPLS:
        return asyncio.Future, asyncio.Task
    return fastloop.Future, fastloop.Task


# More implementations by name: {name: function returning a new loop}.
EXTRA_IMPLS = {}


def _new_loop(impl):
    if impl in EXTRA_IMPLS:
        return EXTRA_IMPLS[impl]()
    if impl == "asyncio":
        return asyncio.new_event_loop()
    import fastloop

    if impl == "fastloop":
        return fastloop.new_event_loop()
    # fastloop's Future and Task on asyncio's loop (their generic path).
    # Not through a task factory: asyncio's create_task treats tasks from a
    # factory differently (3.13.0 names them str(None)), and the reference
    # has none.
    loop = asyncio.new_event_loop()
    loop.create_future = lambda: fastloop.Future(loop=loop)
    base_create_task = loop.create_task

    def create_task(coro, **kwargs):
        if loop.get_task_factory() is not None:  # the eager factory
            return base_create_task(coro, **kwargs)
        return fastloop.Task(coro, loop=loop, **kwargs)

    loop.create_task = create_task
    return loop


# ------------------------------------------------------------ showing values

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")


def _norm(text):
    # Addresses differ run to run; default task names come from each
    # implementation's own counter (a documented difference).
    return _DEFAULT_TASK_NAME.sub("Task-?", _ADDRESS.sub("0x?", text))


def _name_of(obj):
    run = _run
    if run is not None:
        if run.names is not None:
            name = run.names.get(id(obj))
            if name is not None:
                return name
        for prefix, table in (("F", run.F), ("T", run.T), ("H", run.H)):
            for key, value in table.items():
                if value is obj:
                    return f"{prefix}{key}"
    return f"<{type(obj).__name__}>"


def show(value):
    """A string for `value` that does not depend on the loop's implementation."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(_norm(value))
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}({', '.join(map(show, value.args))})"
        if value.__cause__ is not None:
            text += f" from {type(value.__cause__).__name__}"
        elif (
            SHOW_CONTEXT
            and value.__context__ is not None
            and not value.__suppress_context__
        ):
            text += f" during {type(value.__context__).__name__}"
        return text
    if isinstance(value, tuple):
        return "(" + ", ".join(map(show, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(show, value)) + "]"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(map(show, value))) + "}"
    if asyncio.isfuture(value):
        return _name_of(value)
    if hasattr(value, "cancelled") and hasattr(value, "cancel"):
        # A handle: its type is not compared (fastloop.Handle is not
        # asyncio's, whose call_soon_threadsafe returns _ThreadSafeHandle
        # on 3.14+, a documented difference).
        name = _name_of(value)
        return "<Handle>" if name.startswith("<") else name
    return f"<{type(value).__name__}>"


def _state(fut):
    """A future's or task's state, read without marking its exception retrieved."""
    state = fut._state
    if state == "FINISHED":
        exc = fut._exception
        state += f" exception={show(exc)}" if exc is not None else f" result={show(fut._result)}"
        state += f" log_traceback={fut._log_traceback}"
    if hasattr(fut, "cancelling"):  # a task (asyncio's, fastloop's, any)
        state += f" cancelling={fut.cancelling()}"
    return state


# -------------------------------------------------- helpers programs call


def log(label, *values):
    """Record an event of the program."""
    if _run is None:
        # After the run (an object that outlived it, as one that leaked
        # would): missing from the run's log, which is what is compared.
        return
    _run.record(" ".join([label, *map(show, values)]))


class logged:
    """``with logged(label):`` records an exception that leaves the block."""

    swallow = False

    def __init__(self, label):
        self.label = label

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, GeneratorExit):
            # A coroutine closed when its pending task is destroyed.
            log(self.label, "closed")
            return False
        log(self.label, "raised", exc)
        return self.swallow


class caught(logged):
    """``with caught(label):`` records and swallows an exception (even
    CancelledError, as careless code does)."""

    swallow = True


def at(slot):
    """The loop time of slot `slot`."""
    return _run.t0 + (slot + 1) * _run.slot


def delay(slot):
    """The delay from now to slot `slot` (negative when it has passed)."""
    return at(slot) - _run.loop.time()


def tick(label, slot):
    """A timer callback that only records that it ran.  Timers with the same
    deadline run in an unspecified order: the generator only gives equal
    deadlines to such callbacks, and consecutive ticks of one slot are
    compared in sorted order."""
    log(label, f"tick@{slot}")


_TICK = re.compile(r"^s\d+ 'tick@(\d+)'$")


def from_thread(fn, *args):
    """Call fn(*args) in another thread and wait for it (so that where the
    call lands in the loop's queue is still deterministic)."""
    box = []

    def target():
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:  # handed back to the caller
            box.append((False, exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


# ---------------------------------------------------------------- one run


class _Run:
    def __init__(self, impl, loop, slot):
        self.impl = impl
        self.loop = loop
        self.slot = slot
        self.t0 = loop.time()
        self.ordered = []
        self.unordered = []
        self.teardown = False
        self.finished = False
        self.seen = -1
        self.quiet = 0
        self.F, self.T, self.H = {}, {}, {}
        self.names = None

    def record(self, entry):
        (self.unordered if self.teardown else self.ordered).append(entry)

    def handler(self, loop, context):
        message = context.get("message")
        parts = ["handler", show(message)]
        for key in sorted(context):
            if key not in ("message", "source_traceback", "handle_traceback"):
                parts.append(f"{key}={show(context[key])}")
        entry = " ".join(parts)
        if isinstance(message, str) and _DESTRUCTOR_MESSAGE.match(message):
            self.unordered.append(entry)
        else:
            self.record(entry)

    def unraisable(self, info):
        self.unordered.append(
            f"unraisable {show(info.exc_value)} {_norm(str(info.err_msg))}"
        )

    def detect_end(self):
        # The program is over when QUIET loop iterations in a row logged
        # nothing (no program has a silent stretch that long).
        seen = len(self.ordered) + len(self.unordered)
        if seen != self.seen:
            self.seen, self.quiet = seen, 0
        else:
            self.quiet += 1
        if self.quiet >= QUIET:
            self.finished = True
            self.loop.stop()
        else:
            self.loop.call_soon(self.detect_end)

    def drive(self):
        self.finished = False
        self.seen, self.quiet = -1, 0
        while not self.finished:
            try:
                self.loop.run_forever()
            except BaseException as exc:
                self.record(f"run_forever raised {show(exc)}")
                continue
            if not self.finished:
                self.record("run_forever returned")

    def final_states(self, tag):
        for prefix, table in (("F", self.F), ("T", self.T)):
            for key in sorted(table):
                self.record(f"{tag} {prefix}{key} {_state(table[key])}")
        for key in sorted(self.H):
            self.record(f"{tag} H{key} cancelled={self.H[key].cancelled()}")


def _canonical(entries):
    """Sort each run of consecutive ticks of one slot (equal deadlines)."""
    out, i = [], 0
    while i < len(entries):
        m = _TICK.match(entries[i])
        j = i + 1
        if m:
            while j < len(entries):
                m2 = _TICK.match(entries[j])
                if not m2 or m2.group(1) != m.group(1):
                    break
                j += 1
        out.extend(sorted(entries[i:j]))
        i = j
    return out


def run_program(program, impl, slots=0, eager=None, slot=SLOT):
    """Run `program` on a new loop of kind `impl`; return what it observed:
    ``{"ordered": [...], "unordered": [...sorted]}``."""
    global _run
    loop = _new_loop(impl)
    run = _run = _Run(impl, loop, slot)
    loop.set_exception_handler(run.handler)
    if eager == "stock":
        loop.set_task_factory(asyncio.eager_task_factory)
    elif eager == "native":
        loop.set_task_factory(asyncio.create_eager_task_factory(_native_types(impl)[1]))
    old_hook = sys.unraisablehook
    sys.unraisablehook = run.unraisable
    # Collect only at the program's gc.collect() and at the end, so that
    # destructors run at the same points on every loop; and leave the
    # objects that exist already out of those collections (fast).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        with warnings.catch_warnings(record=True) as caught_warnings:
            warnings.simplefilter("always")

            def start():
                run.t0 = loop.time()
                if slots:
                    loop.call_at(run.t0 + (slots + 0.5) * slot, run.detect_end)
                else:
                    loop.call_soon(run.detect_end)
                program(loop, run.F, run.T, run.H)

            loop.call_soon(start)
            run.drive()
            run.final_states("end")
            # Cancel what is still pending and let it finish.
            for key in sorted(run.T):
                if not run.T[key].done():
                    run.record(f"end T{key}.cancel() {show(run.T[key].cancel())}")
            loop.call_soon(run.detect_end)
            run.drive()
            run.final_states("after-cancel")
            # Let everything die: destructors report in an unspecified order.
            run.teardown = True
            run.names = {
                id(obj): f"{prefix}{key}"
                for prefix, table in (("F", run.F), ("T", run.T), ("H", run.H))
                for key, obj in table.items()
            }
            loop.close()
            for table in (run.F, run.T, run.H):
                table.clear()
            gc.collect()
            gc.collect()
        for w in caught_warnings:
            run.unordered.append(f"warning {w.category.__name__} {_norm(str(w.message))}")
    finally:
        sys.unraisablehook = old_hook
        _run = None
        gc.unfreeze()
        if gc_was_enabled:
            gc.enable()
        if not loop.is_closed():
            loop.close()
    return {"ordered": _canonical(run.ordered), "unordered": sorted(run.unordered)}


def _lines(result):
    return result["ordered"] + ["--- unordered ---"] + result["unordered"]


def differences(results):
    """Unified diffs of each implementation's log against the reference's."""
    ref = results[REFERENCE]
    out = []
    for impl, result in results.items():
        if result != ref:
            out.append(
                "\n".join(
                    difflib.unified_diff(
                        _lines(ref), _lines(result), REFERENCE, impl, lineterm="", n=4
                    )
                )
            )
    return out


def run_all(program, slots=0, eager=None, slot=SLOT, impls=IMPLS):
    return {impl: run_program(program, impl, slots, eager, slot) for impl in impls}


def compare(program, slots=0, eager=None, impls=IMPLS):
    """(results, differences) of a program on every implementation.

    A difference is confirmed with slots 4, 16 and 64 times longer (twice
    64): a machine too busy to end a slot's work before the next slot is no
    finding, and on a loaded machine a process can stall for tens of ms."""
    global RETRIES
    for factor in (1, 4, 16, 64, 64):
        results = run_all(program, slots, eager, SLOT * factor, impls)
        diffs = differences(results)
        if not diffs:
            break
        RETRIES += 1
    return results, diffs


def check(program, slots=0, eager=None, impls=IMPLS):
    """None if every implementation observes what asyncio does, else a report."""
    diffs = compare(program, slots, eager, impls)[1]
    return "\n\n".join(diffs) if diffs else None


RETRIES = 0  # how many times check() had to rerun with longer slots


def exec_source(source, filename="<difffuzz>"):
    """Execute a program's source; return its namespace."""
    namespace = {"__name__": "difffuzz_program"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def main(program, slots=0, eager=None):
    """Entry point of a reproducer: print each loop's log and the differences."""
    results, diffs = compare(program, slots, eager)
    for impl, result in results.items():
        print(f"===== {impl}")
        print("\n".join(_lines(result)))
    print("=====", "differences:" if diffs else "no differences")
    for diff in diffs:
        print(diff)
    sys.exit(1 if diffs else 0)
