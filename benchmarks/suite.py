"""The benchmark registry.

A benchmark is a *setup function* ``setup(loop)`` registered with
:func:`benchmark`.  Setup does the untimed preparation (sockets, constant
tables) and returns ``run`` or ``(run, close)``:

* ``run(n)`` performs exactly ``n`` (>= 1) operations on ``loop`` (it drives the loop
  itself, normally with ``loop.run_until_complete``) and returns nothing;
* ``close()`` releases what setup acquired.

The worker times ``run(n)`` only, so loop creation, setup, warm-up and
teardown stay outside the measurement.  The setup function's docstring says
what one operation ("op") is; its first line is shown by ``--list``.

Benchmarks use public asyncio APIs only, so that they run unchanged on every
loop being compared.
"""

import dataclasses
import inspect


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    group: str
    op: str               # what one operation is, for the table
    setup: object         # setup(loop) -> run | (run, close)
    instr_ops: int        # N for instruction counting (runs N and 2N)
    warmup_ops: int       # ops run before anything is measured
    target: float = None  # wanted instructions/op ratio vs uvloop (<=)
    granule: int = 1      # ops per batch; op counts are rounded to it
    time_target: float = None  # wanted time/op ratio vs uvloop (<=)
    ceiling: bool = False  # also measured on the pure-C server (c-libev)

    @property
    def doc(self):
        return inspect.cleandoc(self.setup.__doc__ or "")

    def make(self, loop):
        """Run setup; always return (run, close)."""
        made = self.setup(loop)
        run, close = made if isinstance(made, tuple) else (made, None)

        def run_n(n):
            # run(n) may assume n >= 1 (a chain counting down from 0 would
            # never end); zero ops is simply nothing to do.
            if n > 0:
                run(n)

        return run_n, (close or (lambda: None))


BENCHMARKS = {}


def benchmark(name, *, group, op, instr_ops, warmup_ops, target=None,
              granule=1, time_target=None, ceiling=False):
    """Register the decorated setup function as benchmark `name`."""

    def register(setup):
        if name in BENCHMARKS:
            raise ValueError(f"duplicate benchmark name {name!r}")
        BENCHMARKS[name] = Benchmark(
            name=name, group=group, op=op, setup=setup,
            instr_ops=instr_ops, warmup_ops=warmup_ops, target=target,
            granule=granule, time_target=time_target, ceiling=ceiling)
        return setup

    return register


def all_benchmarks():
    """Every benchmark, in suite order (loop core, Future/Task, network)."""
    # Importing the modules registers their benchmarks.
    from . import bench_loop, bench_tasks, bench_net  # noqa: F401, I001
    return dict(BENCHMARKS)
