"""Programs for the differential fuzzer: model, compiler, hypothesis strategies.

A program (``Program``) is a tree of small frozen dataclasses that
hypothesis generates and shrinks; ``compile_program`` turns it into the
Python source that runs (difffuzz_runtime), which is also what a failure
prints.  References between the parts of a program are small integers
resolved at compile time (``n % number of candidates``), so that any
program hypothesis makes, and any it shrinks to, compiles.

Shape of the source::

    def program(loop, F, T, H):
        F[0] = loop.create_future()           # futures first
        def cb1(*args): ...                   # units: callbacks and coroutines
        async def c2(): ...
        ...                                   # the main body, run in a callback

Every statement carries a label ``sN`` (``N`` is its position in the
source); a task or handle that statement ``sN`` makes is ``T[N]``/``H[N]``,
and the task's name is ``TN``.

The rules that keep programs deterministic and finite:

* A unit (callback or coroutine) only triggers units after it (schedules,
  adds as a done callback, runs as a task): no unbounded chains.
* A coroutine only awaits tasks whose coroutine comes after its own, so no
  two tasks wait for each other.  (Cancelling tasks that await each other
  recurses without bound: a known fastloop bug, see the brief, fixed
  elsewhere; a cycle of awaits is not generated.)
* Every timer gets a slot of virtual time of its own (difffuzz_runtime),
  so a unit that sets a timer runs at most once (its second trigger is
  dropped): two timers set by two runs of the same code would share a
  deadline.  The only shared deadlines are explicit ties: ``tick``
  callbacks that only log, sorted when compared, since asyncio leaves the
  order of timers with equal deadlines unspecified.
* No NaN or infinite delays (a known bug, fixed elsewhere), no objects with
  hostile ``__eq__`` (known bug), no Loop subclasses (known bug), no
  ``current_task()`` from ``__del__`` (known bug).
"""

import sys
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Optional, Tuple, Union

from hypothesis import strategies as st

PY = sys.version_info[:2]
HAS_EAGER = PY >= (3, 12)


# ------------------------------------------------------------------ model

@dataclass(frozen=True)
class Delay:
    """A point in virtual time; ranks order the slots, ties share one."""

    rank: int
    tie: bool = False


# A timeout or delay: None, "0", "-1" (a deadline already passed) or a Delay.
Time = Union[None, str, Delay]


@dataclass(frozen=True)
class Fut:
    i: int


@dataclass(frozen=True)
class Tsk:
    k: int


@dataclass(frozen=True)
class Me:
    """The current task (in a coroutine)."""


Target = Union[Fut, Tsk, Me]


# awaitables
@dataclass(frozen=True)
class AFut:
    i: int


@dataclass(frozen=True)
class ATask:
    k: int


@dataclass(frozen=True)
class ASleep:
    when: Time


@dataclass(frozen=True)
class AMe:
    pass


@dataclass(frozen=True)
class AGather:
    args: tuple
    return_exceptions: bool


@dataclass(frozen=True)
class AShield:
    arg: object


@dataclass(frozen=True)
class AWaitFor:
    arg: object
    timeout: Time


@dataclass(frozen=True)
class AWait:
    args: tuple  # of AFut / ATask
    timeout: Time
    return_when: str


# statements
@dataclass(frozen=True)
class Op:
    """target.method(arg) on a future or task."""

    target: Target
    method: str
    arg: object = None  # a value label, an exception kind, a message, a unit ref
    swallow: bool = True


@dataclass(frozen=True)
class HandleOp:
    k: int
    method: str
    swallow: bool = True


@dataclass(frozen=True)
class Schedule:
    how: str  # soon later at threadsafe thread
    cb: int
    when: Time = None
    swallow: bool = True


@dataclass(frozen=True)
class Tick:
    how: str  # later at
    when: Time
    swallow: bool = True


@dataclass(frozen=True)
class CreateTask:
    how: str  # loop asyncio stock ensure eager
    coro: int
    swallow: bool = True


@dataclass(frozen=True)
class Current:
    swallow: bool = True


@dataclass(frozen=True)
class Collect:
    swallow: bool = True


@dataclass(frozen=True)
class Stop:
    swallow: bool = True


@dataclass(frozen=True)
class Raise:
    kind: str
    swallow: bool = False


@dataclass(frozen=True)
class Await:
    expr: object
    swallow: bool = False


@dataclass(frozen=True)
class TimeoutBlock:
    kind: str  # timeout_at timeout reschedule
    when: Time
    body: tuple
    swallow: bool = False


@dataclass(frozen=True)
class TaskGroupBlock:
    children: tuple  # unit refs
    body: tuple
    swallow: bool = False


@dataclass(frozen=True)
class Callback:
    body: tuple
    raises: Optional[str] = None


@dataclass(frozen=True)
class Coro:
    body: tuple
    end: Optional[str] = None  # None, "return" or an exception kind


@dataclass(frozen=True)
class Program:
    futures: tuple  # "loop" (loop.create_future()) or "stock" (asyncio.Future)
    units: tuple
    main: tuple
    eager: Optional[str] = None  # None, "stock", "native" (3.12+)


EXCEPTIONS = {
    "ValueError": "ValueError({label!r})",
    "KeyError": "KeyError({label!r})",
    "CancelledError": "asyncio.CancelledError({label!r})",
    "TimeoutError": "TimeoutError({label!r})",
    "RuntimeError": "RuntimeError({label!r})",
    "StopIteration": "StopIteration({label!r})",
    "KeyboardInterrupt": "KeyboardInterrupt({label!r})",
    "SystemExit": "SystemExit({label!r})",
    "class": "ValueError",
}


# --------------------------------------------------------------- compiler


class _Dropped(Exception):
    """A statement or expression whose references resolve to nothing."""


def _walk(body, path):
    """(path, statement) for every statement of body, nested blocks included."""
    for i, stmt in enumerate(body):
        p = path + (i,)
        yield p, stmt
        if isinstance(stmt, (TimeoutBlock, TaskGroupBlock)):
            yield from _walk(stmt.body, p)


def _has_delay(obj):
    if isinstance(obj, Delay):
        return True
    if isinstance(obj, tuple):
        return any(_has_delay(x) for x in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        if isinstance(obj, (TimeoutBlock, TaskGroupBlock)):
            # nested statements are walked on their own
            return _has_delay(obj.when) if isinstance(obj, TimeoutBlock) else False
        return any(_has_delay(getattr(obj, f.name)) for f in fields(obj))
    return False


class Compiler:
    def __init__(self, prog):
        self.prog = prog
        self.units = prog.units
        self.nfut = len(prog.futures)

    # -- unit references: unit u triggers only units after it
    def unit(self, u, ref, kind):
        cands = [v for v in range(u + 1, len(self.units)) if isinstance(self.units[v], kind)]
        return cands[ref % len(cands)] if cands else None

    def triggers(self, u, stmt):
        """(j, unit) for the units statement `stmt` of unit `u` makes run;
        j numbers the triggers of one statement (TaskGroup children)."""
        if isinstance(stmt, Schedule):
            v = self.unit(u, stmt.cb, Callback)
        elif isinstance(stmt, Op) and stmt.method == "add_done_callback":
            v = self.unit(u, stmt.arg, Callback)
        elif isinstance(stmt, CreateTask):
            v = self.unit(u, stmt.coro, Coro)
        elif isinstance(stmt, TaskGroupBlock):
            pairs = ((j, self.unit(u, c, Coro)) for j, c in enumerate(stmt.children))
            return [(j, v) for j, v in pairs if v is not None]
        else:
            return []
        return [(0, v)] if v is not None else []

    def body_of(self, u):
        return self.prog.main if u < 0 else self.units[u].body

    def analyse(self):
        n = len(self.units)
        # timed[u]: running unit u sets a timer (itself or through what it triggers)
        self.timed = [False] * n
        for u in reversed(range(n)):
            t = False
            for _, stmt in _walk(self.units[u].body, ()):
                if _has_delay(stmt) or any(self.timed[v] for _, v in self.triggers(u, stmt)):
                    t = True
            self.timed[u] = t
        # Reachability from the main body; a timed unit is triggered once.
        self.reached = set()
        self.dropped = set()  # (u, path, index of trigger within the statement)
        triggered = set()
        queue = [-1]
        while queue:
            u = queue.pop(0)
            for path, stmt in _walk(self.body_of(u), ()):
                for j, v in self.triggers(u, stmt):
                    if self.timed[v] and v in triggered:
                        self.dropped.add((u, path, j))
                        continue
                    triggered.add(v)
                    if v not in self.reached:
                        self.reached.add(v)
                        queue.append(v)
        # Task-making sites of reached code, in source order: (u, path, j, coro unit)
        self.sites = []
        for u in [-1] + sorted(self.reached):
            for path, stmt in _walk(self.body_of(u), ()):
                if isinstance(stmt, (CreateTask, TaskGroupBlock)):
                    for j, v in self.triggers(u, stmt):
                        if (u, path, j) not in self.dropped:
                            self.sites.append((u, path, j, v))

    # -- emission
    def compile(self):
        self.analyse()
        self.counter = 0
        self.labels = {}  # (u, path, j) -> statement number, for task/handle keys
        self.delays = []  # [(rank, order, tie, owner_exact_cb, holder)] holders get slots
        self.handle_sites = []
        # Number statements in source order first: units, then main.
        order = sorted(self.reached) + [-1]
        for u in order:
            self._number(u, self.body_of(u), ())
        self.site_keys = [self.labels[(u, path, j)] for (u, path, j, v) in self.sites]
        self.site_units = [v for (u, path, j, v) in self.sites]
        lines = ["def program(loop, F, T, H):"]
        for i, kind in enumerate(self.prog.futures):
            ctor = "loop.create_future()" if kind == "loop" else "asyncio.Future(loop=loop)"
            lines.append(f"    F[{i}] = {ctor}")
        body_lines = []
        removed_refs = set()
        for u in sorted(self.reached):
            body_lines.append("")
            body_lines.extend(self._unit(u, removed_refs))
        main = self._body(-1, self.prog.main, (), 1, removed_refs)
        # callbacks only named by remove_done_callback never run: define them
        stubs = []
        for v in sorted(removed_refs - self.reached):
            stubs += ["", f"    def cb{v}(*args):  # never runs", f"        log('cb{v}', *args)"]
        lines += stubs + body_lines
        lines.append("")
        lines += main if main else ["    pass"]
        nslots = self._assign_slots()
        source = "\n".join(lines) + "\n"
        source = self._fill_slots(source)
        return source, nslots

    def _number(self, u, body, path):
        for i, stmt in enumerate(body):
            p = path + (i,)
            self.counter += 1
            n = self.counter
            self.labels[(u, p, 0)] = n
            if isinstance(stmt, TimeoutBlock):
                self._number(u, stmt.body, p)
            elif isinstance(stmt, TaskGroupBlock):
                # children are statements of their own (T[N] = tg.create_task(...))
                for j in range(1, len(stmt.children)):
                    self.counter += 1
                    self.labels[(u, p, j)] = self.counter
                self._number(u, stmt.body, p)

    def _unit(self, u, removed_refs):
        unit = self.units[u]
        if isinstance(unit, Callback):
            out = [f"    def cb{u}(*args):", f"        log('cb{u}', *args)"]
            out += self._body(u, unit.body, (), 2, removed_refs)
            if unit.raises:
                out.append("        raise " + EXCEPTIONS[unit.raises].format(label=f"cb{u}"))
            return out
        out = [f"    async def c{u}():", f"        log('c{u}', 'start')"]
        out += self._body(u, unit.body, (), 2, removed_refs)
        if unit.end == "return":
            out.append(f"        return 'c{u}'")
        elif unit.end:
            out.append("        raise " + EXCEPTIONS[unit.end].format(label=f"c{u}"))
        return out

    def _body(self, u, body, path, depth, removed_refs):
        out = []
        for i, stmt in enumerate(body):
            p = path + (i,)
            try:
                out += self._stmt(u, stmt, p, depth, removed_refs)
            except _Dropped:
                pass
        return out

    # -- references
    def fut(self, i):
        if not self.nfut:
            raise _Dropped
        return f"F[{i % self.nfut}]"

    def task_key(self, u, k, awaiting):
        """T[...] for a task reference; awaiting: only tasks of later units."""
        keys = [
            key
            for key, v in zip(self.site_keys, self.site_units)
            if not awaiting or v > u
        ]
        if not keys:
            raise _Dropped
        return f"T[{keys[k % len(keys)]}]"

    def target(self, u, target, awaiting=False):
        if isinstance(target, Fut):
            return self.fut(target.i)
        if isinstance(target, Tsk):
            return self.task_key(u, target.k, awaiting)
        return "asyncio.current_task()"

    def when(self, when, holder, exact, owner_cb=False):
        """Source for a delay (exact: a loop time) and its slot bookkeeping."""
        if when is None:
            return "None"
        if when == "0":
            return "loop.time()" if exact else "0"
        if when == "-1":
            return "loop.time() - 1" if exact else "-1"
        marker = f"@SLOT{len(self.delays)}@"
        self.delays.append((when.rank, len(self.delays), when.tie, owner_cb))
        return f"at({marker})" if exact else f"delay({marker})"

    def _assign_slots(self):
        order = sorted(range(len(self.delays)), key=lambda d: self.delays[d][:2])
        self.slot_of = {}
        slot = -1
        prev_owner_cb = True
        for d in order:
            rank, _, tie, owner_cb = self.delays[d]
            if tie and slot >= 0 and not prev_owner_cb:
                self.slot_of[d] = slot
                continue
            slot += 1
            self.slot_of[d] = slot
            prev_owner_cb = owner_cb
        return slot + 1

    def _fill_slots(self, source):
        for d, s in self.slot_of.items():
            source = source.replace(f"@SLOT{d}@", str(s))
        return source

    # -- expressions
    def expr(self, u, e):
        if isinstance(e, AFut):
            return self.fut(e.i)
        if isinstance(e, ATask):
            return self.task_key(u, e.k, awaiting=True)
        if isinstance(e, AMe):
            return "asyncio.current_task()"
        if isinstance(e, ASleep):
            if e.when is None or e.when == "0":
                return "asyncio.sleep(0)"
            return f"asyncio.sleep({self.when(e.when, e, exact=False)})"
        if isinstance(e, AGather):
            args = []
            for a in e.args:
                try:
                    args.append(self.expr(u, a))
                except _Dropped:
                    pass
            if e.return_exceptions:
                args.append("return_exceptions=True")
            return f"asyncio.gather({', '.join(args)})"
        if isinstance(e, AShield):
            return f"asyncio.shield({self.expr(u, e.arg)})"
        if isinstance(e, AWaitFor):
            inner = self.expr(u, e.arg)
            return f"asyncio.wait_for({inner}, {self.when(e.timeout, e, exact=False)})"
        if isinstance(e, AWait):
            args = []
            for a in e.args:
                try:
                    args.append(self.expr(u, a))
                except _Dropped:
                    pass
            extra = ""
            if e.timeout is not None:
                extra += f", timeout={self.when(e.timeout, e, exact=False)}"
            if e.return_when != "ALL_COMPLETED":
                extra += f", return_when=asyncio.{e.return_when}"
            return f"asyncio.wait([{', '.join(args)}]{extra})"
        raise AssertionError(e)

    # -- statements
    def _stmt(self, u, stmt, p, depth, removed_refs):
        ind = "    " * depth
        n = self.labels[(u, p, 0)]
        label = f"s{n}"
        guard = "caught" if stmt.swallow else "logged"
        head = f"{ind}with {guard}({label!r}):"

        def one(code):
            return [f"{head} {code}"]

        if isinstance(stmt, Op):
            target = self.target(u, stmt.target)
            m = stmt.method
            if m == "set_result":
                return one(f"log({label!r}, {target}.set_result({label!r}))")
            if m == "set_exception":
                exc = EXCEPTIONS[stmt.arg].format(label=label)
                return one(f"log({label!r}, {target}.set_exception({exc}))")
            if m == "cancel":
                msg = "" if stmt.arg is None else repr(f"m{n}")
                return one(f"log({label!r}, {target}.cancel({msg}))")
            if m in ("add_done_callback", "remove_done_callback"):
                if m == "add_done_callback" and (u, p, 0) in self.dropped:
                    raise _Dropped
                v = self.unit(u, stmt.arg, Callback)
                if v is None:
                    raise _Dropped
                if m == "remove_done_callback":
                    removed_refs.add(v)
                return one(f"log({label!r}, {target}.{m}(cb{v}))")
            return one(f"log({label!r}, {target}.{m}())")
        if isinstance(stmt, HandleOp):
            keys = self.handle_keys()
            if not keys:
                raise _Dropped
            key = keys[stmt.k % len(keys)]
            return one(f"log({label!r}, H[{key}].{stmt.method}())")
        if isinstance(stmt, Schedule):
            if (u, p, 0) in self.dropped:
                raise _Dropped
            v = self.unit(u, stmt.cb, Callback)
            if v is None:
                raise _Dropped
            args = f"cb{v}, {label!r}"
            if stmt.how == "soon":
                call = f"loop.call_soon({args})"
            elif stmt.how == "later":
                call = f"loop.call_later({self.when(stmt.when or '0', stmt, False)}, {args})"
            elif stmt.how == "at":
                w = self.when(stmt.when or "0", stmt, True, owner_cb=True)
                call = f"loop.call_at({w}, {args})"
            elif stmt.how == "threadsafe":
                call = f"loop.call_soon_threadsafe({args})"
            else:
                call = f"from_thread(loop.call_soon_threadsafe, {args})"
            return one(f"H[{n}] = {call}")
        if isinstance(stmt, Tick):
            when = stmt.when or "0"
            if stmt.how == "at":
                w = self.when(when, stmt, True)
                call = f"loop.call_at({w}, tick, {label!r}, @TICK@)"
            else:
                w = self.when(replace(when, tie=False) if isinstance(when, Delay) else when, stmt, False)
                call = f"loop.call_later({w}, tick, {label!r}, @TICK@)"
            # the tick logs its slot (or -1 for a deadline that has passed)
            tick_slot = f"@SLOT{len(self.delays) - 1}@" if isinstance(when, Delay) else "-1"
            return one(f"H[{n}] = {call.replace('@TICK@', tick_slot)}")
        if isinstance(stmt, CreateTask):
            if (u, p, 0) in self.dropped:
                raise _Dropped
            v = self.unit(u, stmt.coro, Coro)
            if v is None:
                raise _Dropped
            name = f"name='T{n}'"
            if stmt.how == "loop":
                call = f"loop.create_task(c{v}(), {name})"
            elif stmt.how == "asyncio":
                call = f"asyncio.create_task(c{v}(), {name})"
            elif stmt.how == "stock":
                call = f"asyncio.Task(c{v}(), loop=loop, {name})"
            elif stmt.how == "eager" and HAS_EAGER:
                call = f"asyncio.Task(c{v}(), loop=loop, {name}, eager_start=True)"
            else:
                call = f"asyncio.ensure_future(c{v}(), loop=loop)"
            return one(f"T[{n}] = {call}")
        if isinstance(stmt, Current):
            return one(f"log({label!r}, asyncio.current_task())")
        if isinstance(stmt, Collect):
            return one("gc.collect()")
        if isinstance(stmt, Stop):
            return one("loop.stop()")
        if isinstance(stmt, Raise):
            return one("raise " + EXCEPTIONS[stmt.kind].format(label=label))
        if isinstance(stmt, Await):
            return one(f"log({label!r}, await {self.expr(u, stmt.expr)})")
        if isinstance(stmt, TimeoutBlock):
            cm = f"cm{n}"
            if stmt.kind == "timeout_at":
                ctor = f"asyncio.timeout_at({self.when(stmt.when, stmt, True)})"
            elif stmt.kind == "timeout":
                ctor = f"asyncio.timeout({self.when(stmt.when, stmt, False)})"
            else:
                ctor = "asyncio.timeout(None)"
            out = [f"{ind}{cm} = {ctor}", head, f"{ind}    async with {cm}:"]
            if stmt.kind == "reschedule":
                out.append(f"{ind}        {cm}.reschedule({self.when(stmt.when, stmt, True)})")
            inner = self._body(u, stmt.body, p, depth + 2, removed_refs)
            out += inner or [f"{ind}        pass"]
            out.append(f"{ind}log({label!r}, 'expired', {cm}.expired())")
            return out
        if isinstance(stmt, TaskGroupBlock):
            tg = f"tg{n}"
            out = [head, f"{ind}    async with asyncio.TaskGroup() as {tg}:"]
            inner = []
            for j, c in enumerate(stmt.children):
                v = self.unit(u, c, Coro)
                if v is None or (u, p, j) in self.dropped:
                    continue
                key = self.labels[(u, p, j)]
                inner.append(f"{ind}        T[{key}] = {tg}.create_task(c{v}(), name='T{key}')")
            inner += self._body(u, stmt.body, p, depth + 2, removed_refs)
            return out + (inner or [f"{ind}        pass"])
        raise AssertionError(stmt)

    def handle_keys(self):
        if not hasattr(self, "_handle_keys"):
            keys = []
            for u in [-1] + sorted(self.reached):
                for path, stmt in _walk(self.body_of(u), ()):
                    if isinstance(stmt, Tick) or (
                        isinstance(stmt, Schedule) and (u, path, 0) not in self.dropped
                    ):
                        keys.append(self.labels[(u, path, 0)])
            self._handle_keys = sorted(keys)
        return self._handle_keys


def compile_program(prog):
    """(source, number of slots) of a Program."""
    body, nslots = Compiler(prog).compile()
    header = [
        f"# fastloop differential fuzzer program (Python {PY[0]}.{PY[1]})",
        "# Reproduce: save as tests/repro_fuzz.py, run .venv/bin/python tests/repro_fuzz.py",
        "from difffuzz_runtime import *",
        "",
        "",
    ]
    footer = [
        "",
        "",
        "if __name__ == '__main__':",
        f"    main(program, slots={nslots}, eager={prog.eager!r})",
    ]
    return "\n".join(header) + body + "\n".join(footer) + "\n", nslots


# ------------------------------------------------------------- strategies


def weighted(*pairs):
    """one_of with weights; shrinks towards the first branch."""
    table = [strategy for weight, strategy in pairs for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


small = st.integers(0, 7)
swallow = st.booleans()
delays = st.builds(Delay, rank=st.integers(0, 3), tie=st.just(False))
times = weighted((1, st.none()), (1, st.sampled_from(["0", "-1"])), (3, delays))
exc_kinds = weighted(
    (4, st.sampled_from(["ValueError", "KeyError", "CancelledError", "class"])),
    (1, st.sampled_from(list(EXCEPTIONS))),
)
futs = st.builds(Fut, small)
tasks = st.builds(Tsk, small)


def _ops(in_coro):
    targets = st.one_of(futs, tasks, st.just(Me())) if in_coro else st.one_of(futs, tasks)
    task_targets = st.one_of(tasks, st.just(Me())) if in_coro else tasks
    return weighted(
        (3, st.builds(Op, futs, st.just("set_result"), swallow=swallow)),
        (2, st.builds(Op, futs, st.just("set_exception"), exc_kinds, swallow=swallow)),
        (3, st.builds(Op, targets, st.just("cancel"), st.sampled_from([None, "msg"]), swallow=swallow)),
        (2, st.builds(Op, targets, st.sampled_from(["result", "exception", "done", "cancelled"]), swallow=swallow)),
        (3, st.builds(Op, targets, st.just("add_done_callback"), small, swallow=swallow)),
        (1, st.builds(Op, targets, st.just("remove_done_callback"), small, swallow=swallow)),
        (2, st.builds(Op, task_targets, st.sampled_from(["uncancel", "cancelling"]), swallow=swallow)),
        (1, st.builds(Op, tasks, st.just("set_result"), swallow=swallow)),
    )


TASK_HOWS = ["loop", "asyncio", "stock", "ensure"] + (["eager"] if HAS_EAGER else [])
schedules = st.builds(
    Schedule,
    st.sampled_from(["soon", "later", "at", "soon", "threadsafe", "thread"]),
    small,
    times,
    swallow=swallow,
)
create_tasks = st.builds(CreateTask, st.sampled_from(TASK_HOWS), small)
ticks = st.builds(
    Tick,
    st.sampled_from(["at", "later"]),
    st.one_of(st.sampled_from(["0", "-1"]), st.builds(Delay, st.integers(0, 3), st.booleans())),
)


def sync_statements(in_coro, nested=False):
    return weighted(
        (8, _ops(in_coro)),
        (3, schedules),
        (3, create_tasks),
        (1, ticks),
        (1, st.builds(HandleOp, small, st.sampled_from(["cancel", "cancelled"]))),
        (1, st.builds(Current)),
        (1, st.builds(Collect)),
        (1, st.builds(Stop)),
        # a coroutine's own end raises; a raise inside a block ends the block
        (1 if nested else 0, st.builds(Raise, exc_kinds)),
    )


def awaitables(depth):
    base = weighted(
        (3, st.builds(AFut, small)),
        (3, st.builds(ATask, small)),
        (2, st.builds(ASleep, times)),
    )
    if depth <= 0:
        return base
    sub = awaitables(depth - 1)
    refs = st.one_of(st.builds(AFut, small), st.builds(ATask, small))
    return weighted(
        (4, base),
        (2, st.builds(AGather, st.lists(sub, max_size=3).map(tuple), st.booleans())),
        (1, st.builds(AShield, sub)),
        (2, st.builds(AWaitFor, sub, times)),
        (
            1,
            # wait() keeps its arguments in a set, whose order (object
            # addresses) decides which done future's exception() it reads,
            # which clears that future's "never retrieved" report: with two
            # distinct arguments even asyncio differs run to run.  So one
            # argument, maybe repeated, or none.
            st.builds(
                AWait,
                st.tuples(refs, st.integers(0, 2)).map(lambda r: (r[0],) * r[1]),
                times,
                st.sampled_from(["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"]),
            ),
        ),
    )


def async_statements(depth, nested=False):
    simple = weighted(
        (5, st.builds(Await, awaitables(2), swallow=swallow)),
        # awaiting itself: only directly (gather(current_task()) in the task
        # cancels itself without bound, the known recursion bug)
        (1, st.builds(Await, st.just(AMe()), swallow=swallow)),
        (5, sync_statements(in_coro=True, nested=nested)),
    )
    if depth <= 0:
        return simple
    inner = st.lists(async_statements(depth - 1, nested=True), min_size=1, max_size=3).map(tuple)
    return weighted(
        (8, simple),
        (1, st.builds(TimeoutBlock, st.sampled_from(["timeout_at", "timeout", "reschedule"]), times, inner, swallow=swallow)),
        # One child: a TaskGroup that aborts cancels its children in the
        # order of a set (object addresses), unspecified even in asyncio.
        (1, st.builds(TaskGroupBlock, st.tuples(small), inner, swallow=swallow)),
    )


callbacks = st.builds(
    Callback,
    st.lists(sync_statements(in_coro=False), max_size=4).map(tuple),
    weighted((4, st.none()), (1, exc_kinds)),
)
coros = st.builds(
    Coro,
    st.lists(async_statements(1), min_size=1, max_size=5).map(tuple),
    weighted((2, st.none()), (2, st.just("return")), (1, exc_kinds)),
)
# The main body mostly starts things.
main_statements = weighted(
    (3, create_tasks),
    (2, schedules),
    (1, st.builds(Op, futs, st.just("add_done_callback"), small, swallow=swallow)),
    (2, sync_statements(in_coro=False)),
)

programs = st.builds(
    Program,
    st.lists(st.sampled_from(["loop", "loop", "stock"]), min_size=1, max_size=4).map(tuple),
    st.lists(weighted((3, coros), (2, callbacks)), min_size=1, max_size=6).map(tuple),
    st.lists(main_statements, min_size=2, max_size=10).map(tuple),
    st.sampled_from([None, "stock", "native"]) if HAS_EAGER else st.none(),
)
