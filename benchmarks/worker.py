"""Measure one benchmark on one loop, in this (fresh) process.

    python -m benchmarks.worker BENCH LOOP --mode time  [--target SEC] [--runs K]
    python -m benchmarks.worker BENCH LOOP --mode instr --ops N

The runner starts one worker process per measurement, so every measurement
gets a fresh interpreter, heap and loop.  The worker prints one JSON object
on the last line of its stdout.

time mode:  create the loop, run the benchmark's setup, warm up, then find
            an op count n for which one run takes about --target seconds of
            the chosen clock and time --runs runs of n ops.  Only run(n) is
            inside the timed region: loop creation, setup, warm-up,
            garbage collection between runs and teardown are not.
instr mode: meant to run under callgrind with --instr-atstart=no.  Create
            the loop, set up and warm up uninstrumented, then switch
            instrumentation on (client request through _callgrind.c) and
            run N ops, dump the count, run 2N ops, dump the count.  The
            runner divides the difference of the two counts by N, so the
            fixed cost of a run (run_until_complete, task creation...)
            cancels out and what remains is the cost of N ops.
"""

import argparse
import asyncio
import ctypes
import gc
import json
import os
import sys
import time
import traceback

from . import loops
from .suite import all_benchmarks

# Path of the compiled _callgrind.c, set by the runner in instr mode.
CALLGRIND_LIB_ENV = "FASTLOOP_BENCH_CALLGRIND_LIB"

CLOCKS = {
    # CPU time of this process: what the loop costs, without the time the
    # process spends waiting for a core on a shared machine (or sleeping:
    # timers_firing sleeps on purpose).
    "cpu": time.process_time_ns,
    "wall": time.perf_counter_ns,
}


def timed(run, n, split=None):
    """Run n ops; return (cpu_ns, wall_ns) of that run alone.  `split`, a
    list, gets (user_ns, kernel_ns) of the run appended."""
    gc.collect()
    t0 = os.times()
    cpu0 = time.process_time_ns()
    wall0 = time.perf_counter_ns()
    run(n)
    wall1 = time.perf_counter_ns()
    cpu1 = time.process_time_ns()
    t1 = os.times()
    if split is not None:
        split.append((round((t1.user - t0.user) * 1e9),
                      round((t1.system - t0.system) * 1e9)))
    return cpu1 - cpu0, wall1 - wall0


def round_ops(bench, n):
    """n rounded up to whole batches of the benchmark."""
    g = bench.granule
    return max(g, -(-n // g) * g)


def warm_up(bench, run):
    run(bench.warmup_ops)
    # Freeze what start-up and warm-up left on the heap: a full collection
    # during a measured run then only scans objects the benchmark created,
    # not the interpreter's and the imports' (whose number has nothing to do
    # with the loop being measured).
    gc.collect()
    gc.freeze()


def measure_time(bench, run, clock, target, runs):
    which = 0 if clock == "cpu" else 1
    target_ns = target * 1e9
    warm_up(bench, run)
    # Calibrate: grow n until a run takes a measurable fraction of the
    # target, then scale to the target.
    n = round_ops(bench, bench.warmup_ops)
    while True:
        took = timed(run, n)[which]
        if took >= target_ns / 5 or n >= 1 << 30:
            break
        n *= 4 if took < target_ns / 50 else 2
    n = round_ops(bench, round(n * target_ns / max(took, 1)))
    cpu, wall, split = [], [], []
    for _ in range(runs):
        c, w = timed(run, n, split)
        cpu.append(c)
        wall.append(w)
    # User and kernel CPU time (os.times(): clock ticks, so coarse).
    return {"ops": n, "cpu_ns": cpu, "wall_ns": wall,
            "user_ns": [u for u, _ in split], "sys_ns": [k for _, k in split]}


def measure_instr(bench, run, ops, lib):
    """Run `ops` ops, then 2 * `ops` ops, with a callgrind dump after each:
    the runner reads the two counts from the dump files."""
    warm_up(bench, run)
    lib.bench_start()
    run(ops)
    lib.bench_dump(b"N")
    # Both runs start with the youngest generation empty (as in time mode):
    # otherwise a collection lands in one run or the other by accident, and
    # moves the difference by its cost divided by `ops`.
    lib.bench_stop()
    gc.collect()
    lib.bench_start()
    run(2 * ops)
    lib.bench_dump(b"2N")
    lib.bench_stop()
    return {"ops": ops}


def load_callgrind_lib():
    path = os.environ.get(CALLGRIND_LIB_ENV)
    if not path:
        raise RuntimeError(f"instr mode needs {CALLGRIND_LIB_ENV} (the "
                           "runner sets it; use python -m benchmarks "
                           "--instructions)")
    lib = ctypes.CDLL(path)
    lib.bench_dump.argtypes = [ctypes.c_char_p]
    return lib


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("bench")
    parser.add_argument("loop", choices=loops.LOOP_NAMES)
    parser.add_argument("--mode", choices=("time", "instr"), default="time")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu")
    parser.add_argument("--target", type=float, default=0.2,
                        help="seconds per timed run (time mode)")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs in this process (time mode)")
    parser.add_argument("--ops", type=int, default=None,
                        help="ops to run (instr mode)")
    args = parser.parse_args(argv)

    result = {"bench": args.bench, "loop": args.loop, "mode": args.mode}
    try:
        bench = all_benchmarks()[args.bench]
        loop = loops.new_loop(args.loop)
        try:
            asyncio.set_event_loop(loop)
            result.update(loops.describe(loop))
            run, close = bench.make(loop)
            try:
                if args.mode == "time":
                    result.update(measure_time(bench, run, args.clock,
                                               args.target, args.runs))
                else:
                    ops = args.ops if args.ops is not None else bench.instr_ops
                    result.update(measure_instr(bench, run, ops,
                                                load_callgrind_lib()))
            finally:
                close()
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    except BaseException as exc:  # report, never hang the runner
        result["error"] = "".join(
            traceback.format_exception_only(type(exc), exc)).strip()
        result["traceback"] = traceback.format_exc()
        print(json.dumps(result))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
