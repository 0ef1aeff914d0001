"""Differential fuzzer: fastloop against stock asyncio.

Hypothesis generates programs of loop, Future, Task and asyncio-helper
operations (difffuzz_gen: call_soon/call_later/call_at/call_soon_threadsafe
and handle cancellation; set_result/set_exception/cancel(msg), done
callbacks that complete, cancel or add callbacks to futures, result() and
exception() in every state; tasks created every way, cancelled, uncancelled,
awaiting futures, other tasks, sleep(0) and sleep(d); gather, wait,
wait_for, shield, asyncio.timeout/timeout_at/reschedule, TaskGroup, the
eager task factory on 3.12+, gc.collect(), loop.stop(), KeyboardInterrupt
and SystemExit out of callbacks and tasks).  Each program runs on stock
asyncio, on fastloop, and with fastloop's Future and Task on asyncio's loop;
the logs of what each observed must be equal (difffuzz_runtime says what is
logged and what is compared unordered).  Delays are virtual: timers fire in
an order fixed by the program, not by the machine's speed.

A failure prints the shrunk program as the Python source that reproduces
it: save it as tests/repro_fuzz.py and run it with the venv's python.

    make test                         FASTLOOP_FUZZ_EXAMPLES (default 400)
                                      examples, the same ones on every run
    make fuzz                         5000 new examples, from a random seed
                                      that it prints
    make fuzz FUZZ_EXAMPLES=20000 FUZZ_SEED=123 PYTHON=python3.13
"""

import asyncio
import os
import subprocess
import sys
from asyncio import futures

import pytest
from hypothesis import HealthCheck, given, seed, settings

import difffuzz_gen as gen
import difffuzz_runtime as rt
from conftest import ROOT

EXAMPLES = int(os.environ.get("FASTLOOP_FUZZ_EXAMPLES", "400"))
SEED = os.environ.get("FASTLOOP_FUZZ_SEED")

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # Without a seed the examples are the same on every run (CI); a seed
    # (make fuzz) explores new ones.
    derandomize=SEED is None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


def check_program(program):
    source, nslots = gen.compile_program(program)
    namespace = rt.exec_source(source)
    report = rt.check(namespace["program"], nslots, program.eager)
    if report:
        raise AssertionError(
            "fastloop observes something else than asyncio in this program:\n\n"
            + source
            + "\n"
            + report
        )


@pytest.mark.timeout(300 + EXAMPLES // 5)
@pytest.mark.backend_independent
@pytest.mark.refleak_once
@FUZZ_SETTINGS
@given(gen.programs)
def test_fastloop_observes_what_asyncio_observes(program):
    check_program(program)


if SEED is not None:
    test_fastloop_observes_what_asyncio_observes = seed(int(SEED))(
        test_fastloop_observes_what_asyncio_observes
    )


# ---------------------------------------------- the fuzzer's own checks

PROGRAM = """\
from difffuzz_runtime import *

def program(loop, F, T, H):
    F[0] = loop.create_future()

    def cb1(*args):
        log('cb1', *args)

    def cb2(*args):
        log('cb2', *args)

    async def c3():
        log('c3', 'start')
        with caught('s1'): log('s1', await F[0])

    with caught('s2'): log('s2', F[0].add_done_callback(cb1))
    with caught('s3'): log('s3', F[0].add_done_callback(cb2))
    with caught('s4'): T[4] = loop.create_task(c3(), name='T4')
    with caught('s5'): H[5] = loop.call_at(at(1), tick, 's5', 1)
    with caught('s6'): H[6] = loop.call_later(delay(0), F[0].set_result, 's6')

if __name__ == '__main__':
    main(program, slots=2)
"""


class _ReversingFuture(futures._PyFuture):
    """asyncio's pure-Python Future with a bug: callbacks run last first."""

    def _Future__schedule_callbacks(self):
        callbacks = self._callbacks[:]
        self._callbacks[:] = []
        for callback, ctx in reversed(callbacks):
            self._loop.call_soon(callback, self, context=ctx)


_ReversingFuture.__name__ = _ReversingFuture.__qualname__ = "Future"


def _mutant_loop():
    loop = asyncio.new_event_loop()
    loop.create_future = lambda: _ReversingFuture(loop=loop)
    return loop


def test_the_comparison_sees_callbacks_run_in_another_order():
    program = rt.exec_source(PROGRAM)["program"]
    rt.EXTRA_IMPLS["mutant"] = _mutant_loop
    try:
        report = rt.check(program, slots=2, impls=("asyncio", "mutant"))
        mutant = rt.run_program(program, "mutant", slots=2)["ordered"]
    finally:
        del rt.EXTRA_IMPLS["mutant"]
    assert report is not None and "+++ mutant" in report
    assert mutant.index("cb2 F0") < mutant.index("cb1 F0")
    assert rt.check(program, slots=2) is None


def test_a_program_logs_timers_in_slot_order():
    program = rt.exec_source(PROGRAM)["program"]
    # Long slots: one callback's work ends before the next slot on any machine.
    result = rt.run_program(program, "asyncio", slots=2, slot=0.05)
    ordered = result["ordered"]
    # s6 (slot 0) completes F0: its callbacks and the task run before the
    # tick of slot 1.
    assert ordered[:6] == [
        "s2 None",
        "s3 None",
        "c3 'start'",
        "cb1 F0",
        "cb2 F0",
        "s1 's6'",
    ]
    assert ordered[6] == "s5 'tick@1'"


def test_a_reproducer_runs_on_its_own(tmp_path):
    path = ROOT / "tests" / f"repro_fuzz_selftest_{os.getpid()}.py"
    path.write_text(PROGRAM)
    try:
        proc = subprocess.run(
            [sys.executable, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        path.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "===== fastloop\ns2 None\ns3 None\nc3 'start'\ncb1 F0" in proc.stdout
    assert proc.stdout.rstrip().endswith("no differences")


def test_generated_programs_compile():
    @settings(max_examples=50, deadline=None, database=None, derandomize=True)
    @given(gen.programs)
    def compiles(program):
        source, nslots = gen.compile_program(program)
        compile(source, "<difffuzz>", "exec")
        assert source.count("def program(loop, F, T, H):") == 1
        assert nslots >= 0

    compiles()
