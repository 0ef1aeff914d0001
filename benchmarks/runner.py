"""Run the suite: one fresh worker process per measurement, loops
interleaved, several repetitions; then report.

    python -m benchmarks [--loops L,L] [--only B,B] [--repeat N] [--quick]
                         [--out DIR] [--instructions] [--list]

See benchmarks/README.md for what the modes measure and how to read the
table.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from . import loops as loopmod
from .suite import all_benchmarks

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # the repository root: benchmarks' parent
DEFAULT_OUT = os.path.join(HERE, "results")

# Time mode: seconds of CPU per timed run, timed runs per worker process.
TIME_TARGET, TIME_RUNS, TIME_REPEAT = 0.2, 3, 5
QUICK_TARGET, QUICK_RUNS, QUICK_REPEAT = 0.05, 2, 3
# Instruction mode is deterministic: one repetition unless asked for more.
INSTR_REPEAT = 1
QUICK_INSTR_DIVISOR = 4  # --quick counts N/4 ops (rounded to whole batches)

WORKER_TIMEOUT = {"time": 600, "instr": 1800}  # seconds, per process


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark fastloop against stock asyncio and uvloop.")
    parser.add_argument(
        "--loops", default=",".join(loopmod.LOOP_NAMES),
        help="comma-separated loops to compare (default: %(default)s)")
    parser.add_argument(
        "--only", metavar="NAME[,NAME]",
        help="run only these benchmarks (see --list)")
    parser.add_argument(
        "--repeat", type=int, default=None,
        help=f"fresh processes per (benchmark, loop) (default "
             f"{TIME_REPEAT}; {QUICK_REPEAT} with --quick; {INSTR_REPEAT} "
             f"with --instructions)")
    parser.add_argument(
        "--quick", action="store_true",
        help="shorter runs and fewer repetitions: a smoke test, not a result")
    parser.add_argument(
        "--out", default=DEFAULT_OUT,
        help="directory for JSON, Markdown and PNG results "
             "(default: benchmarks/results)")
    parser.add_argument(
        "--instructions", action="store_true",
        help="count instructions per op under valgrind's callgrind instead "
             "of timing")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu",
        help="time mode clock: process CPU time (default) or wall time")
    parser.add_argument(
        "--list", action="store_true",
        help="list the benchmarks and what one op is, then exit")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def log(message):
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- selection

def select_loops(spec):
    wanted = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in loopmod.LOOP_NAMES]
    if unknown:
        raise SystemExit(f"unknown loop(s): {', '.join(unknown)}; choose "
                         f"from {', '.join(loopmod.LOOP_NAMES)}")
    chosen = []
    for name in loopmod.LOOP_NAMES:  # display order
        if name not in wanted:
            continue
        if loopmod.importable(name):
            chosen.append(name)
        elif name == "uvloop":
            print("uvloop is not importable: continuing without it "
                  "(pip install uvloop to compare against it)")
        else:
            raise SystemExit(
                f"{name} is not importable from {ROOT}: build it first "
                f"(make build), or leave it out with --loops")
    if not chosen:
        raise SystemExit("no loop left to benchmark")
    return chosen


def select_benchmarks(spec):
    benches = all_benchmarks()
    if not spec:
        return list(benches.values())
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in benches]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; "
                         f"see python -m benchmarks --list")
    return [benches[name] for name in benches if name in names]


# ------------------------------------------------------------------ workers

def worker_env(extra=None):
    env = dict(os.environ)
    # The repository root first: `benchmarks` and an in-place built
    # fastloop import from there.
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # Same hashes in every process: dict and set layouts, and so
    # instruction counts, repeat exactly.
    env["PYTHONHASHSEED"] = "0"
    for var in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
                "PYTHONMALLOC", "PYTHONWARNINGS"):
        env.pop(var, None)
    env.update(extra or {})
    return env


def run_worker(cmd, env, timeout):
    """Run one worker; return (result dict, stderr text)."""
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}, ""
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = proc.stderr.strip().splitlines()[-3:]
        result = {"error": f"worker exited with status {proc.returncode}: "
                           + " | ".join(tail)}
    if proc.returncode and "error" not in result:
        result["error"] = f"worker exited with status {proc.returncode}"
    return result, proc.stderr


def worker_cmd(bench, loop, *extra):
    return [sys.executable, "-m", "benchmarks.worker", bench.name, loop,
            *extra]


def measure_time(bench, loop, args):
    cmd = worker_cmd(bench, loop, "--mode", "time", "--clock", args.clock,
                     "--target", str(args.target), "--runs", str(args.runs))
    result, _ = run_worker(cmd, worker_env(), WORKER_TIMEOUT["time"])
    if "error" not in result:
        key = "cpu_ns" if args.clock == "cpu" else "wall_ns"
        # The best run of the process: noise on a shared machine only ever
        # adds time.
        result["value"] = min(result[key]) / result["ops"]
    return result


def instr_ops(bench, quick):
    n = bench.instr_ops // QUICK_INSTR_DIVISOR if quick else bench.instr_ops
    g = bench.granule
    return max(g, -(-n // g) * g)


CALLGRIND_TOTAL = re.compile(r"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def callgrind_total(path):
    with open(path) as f:
        match = CALLGRIND_TOTAL.search(f.read())
    if not match:
        raise ValueError(f"no totals line in {path}")
    return int(match.group(1))


def measure_instr(bench, loop, args, lib, scratch):
    n = instr_ops(bench, args.quick)
    out = os.path.join(scratch, f"{bench.name}.{loop}.out")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
           "--dump-instr=no", "--cache-sim=no", "--branch-sim=no",
           f"--callgrind-out-file={out}"]
    cmd += worker_cmd(bench, loop, "--mode", "instr", "--ops", str(n))
    from .worker import CALLGRIND_LIB_ENV
    result, stderr = run_worker(cmd, worker_env({CALLGRIND_LIB_ENV: lib}),
                                WORKER_TIMEOUT["instr"])
    try:
        if "error" not in result:
            # Dump 1 covers the run of N ops, dump 2 the run of 2N ops.
            first = callgrind_total(out + ".1")
            second = callgrind_total(out + ".2")
            result["instr_n"] = first
            result["instr_2n"] = second
            result["value"] = (second - first) / n
    except (OSError, ValueError) as exc:
        result["error"] = f"reading callgrind output: {exc}"
        result["valgrind_stderr"] = stderr[-2000:]
    finally:
        for name in os.listdir(scratch):
            if name.startswith(os.path.basename(out)):
                os.unlink(os.path.join(scratch, name))
    return result


def build_callgrind_lib(scratch):
    """Compile _callgrind.c into scratch; return the library's path."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind "
                         "(apt-get install valgrind)")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("--instructions needs a C compiler to build "
                         "benchmarks/_callgrind.c")
    lib = os.path.join(scratch, "_callgrind.so")
    proc = subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", lib,
         os.path.join(HERE, "_callgrind.c")],
        capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit("cannot build benchmarks/_callgrind.c (it needs "
                         "valgrind/callgrind.h, shipped with valgrind):\n"
                         + proc.stderr)
    return lib


# ------------------------------------------------------------------ running

def run_suite(benches, loops, args):
    """Interleave: for each repetition, each benchmark, each loop (the loop
    order rotating between repetitions) one fresh worker process.  Returns
    {bench: {loop: [result per repetition]}}."""
    mode = "instr" if args.instructions else "time"
    samples = {b.name: {loop: [] for loop in loops} for b in benches}
    def applies(bench, loop):
        return loop != loopmod.CEILING or bench.ceiling

    total = args.repeat * sum(applies(b, loop) for b in benches
                              for loop in loops)
    done = 0
    scratch = tempfile.mkdtemp(prefix="fastloop-bench-")
    try:
        lib = build_callgrind_lib(scratch) if mode == "instr" else None
        for rep in range(args.repeat):
            order = loops[rep % len(loops):] + loops[:rep % len(loops)]
            for bench in benches:
                for loop in order:
                    if not applies(bench, loop):
                        continue
                    started = time.monotonic()
                    if mode == "instr":
                        result = measure_instr(bench, loop, args, lib,
                                               scratch)
                    else:
                        result = measure_time(bench, loop, args)
                    result["rep"] = rep
                    samples[bench.name][loop].append(result)
                    done += 1
                    took = time.monotonic() - started
                    if "error" in result:
                        shown = "ERROR " + result["error"].splitlines()[0]
                    else:
                        shown = fmt_value(result["value"], mode)
                    log(f"[{done}/{total}] rep {rep + 1} {bench.name:<18} "
                        f"{loop:<9} {shown}  ({took:.1f} s)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return samples


# ---------------------------------------------------------------- analysis

def summarize(benches, loops, samples, mode):
    """Per benchmark and loop: median of the per-process values and their
    spread; per benchmark: ratios between loops."""
    summary = {}
    for bench in benches:
        per_loop = {}
        for loop in loops:
            values = [r["value"] for r in samples[bench.name][loop]
                      if "error" not in r]
            errors = [r["error"] for r in samples[bench.name][loop]
                      if "error" in r]
            entry = {"values": values, "errors": errors}
            if values:
                med = statistics.median(values)
                entry["median"] = med
                entry["spread"] = (max(values) - min(values)) / med if med else 0
                if mode == "time":
                    entry["ops_per_sec"] = 1e9 / med if med else None
            per_loop[loop] = entry
        ratios = {}
        if bench.ceiling and loopmod.CEILING in loops \
                and loopmod.SUBJECT in loops:
            ratio = paired_ratio(samples[bench.name][loopmod.SUBJECT],
                                 samples[bench.name][loopmod.CEILING])
            if ratio is not None:
                ratios[f"{loopmod.SUBJECT}/{loopmod.CEILING}"] = ratio
        for loop in loops:
            if loop == loopmod.CEILING:
                continue
            for ref in loopmod.REFERENCES:
                if loop == ref or ref not in loops:
                    continue
                if loop in loopmod.REFERENCES and ref == "uvloop":
                    continue  # asyncio vs uvloop: uvloop vs asyncio says it
                ratio = paired_ratio(samples[bench.name][loop],
                                     samples[bench.name][ref])
                if ratio is not None:
                    ratios[f"{loop}/{ref}"] = ratio
        target = None
        wanted = bench.target if mode == "instr" else bench.time_target
        if wanted is not None:
            achieved = ratios.get(f"{loopmod.SUBJECT}/uvloop")
            target = {"max_ratio_vs_uvloop": wanted,
                      "achieved": achieved,
                      "met": None if achieved is None
                      else achieved <= wanted}
        summary[bench.name] = {
            "group": bench.group, "op": bench.op, "doc": bench.doc,
            "loops": per_loop, "ratios": ratios, "target": target}
    return summary


def paired_ratio(results, refs):
    """Median over repetitions of value(loop) / value(ref) taken within the
    same repetition: the two ran back to back, so a slow phase of the
    machine affects both and mostly cancels."""
    by_rep = {r["rep"]: r["value"] for r in refs if "error" not in r}
    ratios = [r["value"] / by_rep[r["rep"]] for r in results
              if "error" not in r and by_rep.get(r["rep"])]
    return statistics.median(ratios) if ratios else None


# ---------------------------------------------------------------- reporting

def fmt_value(value, mode):
    if value is None:
        return "-"
    if mode == "instr":
        return f"{value:,.0f}"
    if value >= 1e6:
        return f"{value / 1e6:.2f} ms"
    if value >= 1e3:
        return f"{value / 1e3:.2f} µs"
    return f"{value:.0f} ns"


def markdown(summary, loops, meta):
    mode = meta["mode"]
    lines = []
    if mode == "instr":
        lines.append("### Instructions per op (callgrind; lower is better)")
    else:
        lines.append(f"### {meta['clock'].upper()} time per op "
                     "(lower is better)")
    lines.append("")
    lines.append(meta_line(meta))
    lines.append("")
    ratio_keys = []
    for entry in summary.values():
        for key in entry["ratios"]:
            if key not in ratio_keys:
                ratio_keys.append(key)
    has_target = any(e["target"] for e in summary.values())
    header = ["benchmark", "one op"] + loops + \
        [key.replace("/", " / ") for key in ratio_keys]
    if has_target:
        header.append(f"target {loopmod.SUBJECT} / uvloop")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(
        ["---", "---"] + ["--:"] * (len(loops) + len(ratio_keys)) +
        (["---"] if has_target else [])) + "|")
    for name, entry in summary.items():
        row = [name, entry["op"]]
        for loop in loops:
            cell = entry["loops"][loop]
            if "median" not in cell:
                row.append("error" if cell["errors"] else "-")
                continue
            text = fmt_value(cell["median"], mode)
            if len(cell["values"]) > 1:
                if mode == "instr":
                    text += f" ±{cell['spread'] / 2 * 1e6:.1f}ppm"
                else:
                    text += f" ±{cell['spread'] / 2 * 100:.0f}%"
            row.append(text)
        for key in ratio_keys:
            ratio = entry["ratios"].get(key)
            row.append("-" if ratio is None else f"{ratio:.2f}x")
        if has_target:
            target = entry["target"]
            if target is None:
                row.append("")
            elif target["met"] is None:
                row.append(f"≤ {target['max_ratio_vs_uvloop']:.2f}x (n/a)")
            else:
                verdict = "met" if target["met"] else "**UNMET**"
                row.append(f"≤ {target['max_ratio_vs_uvloop']:.2f}x {verdict}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if mode == "instr":
        lines.append(
            "Instructions per op = (I(2N) - I(N)) / N, counted by callgrind "
            "over a run of N ops and a run of 2N ops in one process after "
            "warm-up.  ± is half the spread across repetitions in parts per "
            "million.  Ratios are loop / reference: below 1.00x means fewer "
            "instructions than the reference.")
    else:
        lines.append(
            f"Median over {meta['repeat']} fresh processes of each process's "
            "best run; ± is half the spread of those values.  Ratios are "
            "medians of per-repetition ratios (loop / reference, measured "
            "back to back): below 1.00x means faster than the reference.  "
            "Time targets: the loop-core benchmarks must beat uvloop "
            "(< 1.00x); the Future/Task ones need 1.3x uvloop's throughput "
            "(<= 0.77x).  Instruction targets are in the --instructions "
            "table.")
    lines.append("")
    split = split_table(summary, loops, meta)
    if split:
        lines.extend(split)
    for loop in loops:
        info = meta["loops"].get(loop, {})
        if info:
            lines.append(f"- {loop} {info.get('version') or ''}: "
                         f"{info.get('loop_type')}, "
                         f"Future {info.get('future_type')}, "
                         f"Task {info.get('task_type')}")
    errors = [(name, loop, err) for name, e in summary.items()
              for loop, cell in e["loops"].items() for err in cell["errors"]]
    if errors:
        lines.append("")
        lines.append("Errors:")
        for name, loop, err in errors:
            lines.append(f"- {name} on {loop}: {err.splitlines()[0]}")
    return "\n".join(lines) + "\n"


def split_table(summary, loops, meta):
    """Time mode, network benchmarks: the server's user and kernel CPU time
    and its wall time per request (medians over processes of the fastest
    run), and requests per second of wall time."""
    if meta["mode"] != "time" or "_samples" not in meta:
        return []
    samples = meta["_samples"]
    names = [n for n, e in summary.items() if e["group"] == "network"]
    if not names:
        return []
    out = ["#### Network: server CPU (user + kernel) and wall time per "
           "request", "",
           "| benchmark | " + " | ".join(
               f"{loop} user / kernel / wall (req/s)" for loop in loops) +
           " |",
           "|---|" + "--:|" * len(loops)]
    for name in names:
        row = [name]
        for loop in loops:
            good = [r for r in samples[name][loop]
                    if "error" not in r and "user_ns" in r]
            if not good:
                row.append("-")
                continue
            def med(key):
                return statistics.median(
                    min(r[key]) / r["ops"] for r in good)
            wall = med("wall_ns")
            row.append(f"{med('user_ns') / 1e3:.1f} / "
                       f"{med('sys_ns') / 1e3:.1f} / {wall / 1e3:.1f} µs "
                       f"({1e9 / wall:,.0f})")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("User and kernel times come from os.times() (clock ticks: "
               "coarse for short runs).")
    out.append("")
    return out


def meta_line(meta):
    parts = [f"Python {meta['python']}", meta["machine"],
             f"{meta['cpus']} CPUs", meta["date"]]
    if meta["mode"] == "instr":
        parts.append(f"repeat {meta['repeat']}")
    else:
        parts.append(f"{meta['repeat']} processes x {meta['runs']} runs of "
                     f"~{meta['target']} s")
    if meta["quick"]:
        parts.append("QUICK (smoke test)")
    return "; ".join(parts)


def chart(summary, loops, meta, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)")
        return False
    names = list(summary)
    base = "asyncio" if "asyncio" in loops else loops[0]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(names) * len(loops) + 1.6))
    height = 0.8 / len(loops)
    colors = {"fastloop": "tab:green", "asyncio": "tab:gray",
              "uvloop": "tab:blue"}
    for i, loop in enumerate(loops):
        ys, widths = [], []
        for j, name in enumerate(names):
            if loop == base:
                value = 1.0 if "median" in summary[name]["loops"][base] \
                    else None
            else:
                value = summary[name]["ratios"].get(f"{loop}/{base}")
            if value is not None:
                ys.append(j + (i - (len(loops) - 1) / 2) * height)
                widths.append(value)
        bars = ax.barh(ys, widths, height=height, label=loop,
                       color=colors.get(loop))
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    # Where the target puts fastloop, drawn on its bar.
    if loopmod.SUBJECT in loops and "uvloop" in loops and base == "asyncio":
        i = loops.index(loopmod.SUBJECT)
        for j, name in enumerate(names):
            target = summary[name]["target"]
            uv = summary[name]["ratios"].get("uvloop/asyncio")
            if target and uv is not None:
                y = j + (i - (len(loops) - 1) / 2) * height
                ax.plot([target["max_ratio_vs_uvloop"] * uv] * 2,
                        [y - height / 2, y + height / 2], color="black",
                        linewidth=2)
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, ax.get_xlim()[1] * 1.08)  # room for the bar labels
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    what = "instructions" if meta["mode"] == "instr" else \
        f"{meta['clock']} time"
    ax.set_xlabel(f"{what} per op relative to {base} (lower is better; "
                  "black tick: target)")
    ax.set_title(f"fastloop benchmarks: {what} per op"
                 + (" (quick)" if meta["quick"] else ""))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -------------------------------------------------------------------- main

def collect_meta(args, loops, samples):
    loop_info = {}
    for loop in loops:
        info = {"version": loopmod.version(loop)}
        for per_bench in samples.values():
            for result in per_bench[loop]:
                for key in ("loop_type", "future_type", "task_type"):
                    if key in result:
                        info.setdefault(key, result[key])
        loop_info[loop] = info
    return {
        "mode": "instr" if args.instructions else "time",
        "clock": args.clock,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
        "repeat": args.repeat,
        "runs": None if args.instructions else args.runs,
        "target": None if args.instructions else args.target,
        "quick": args.quick,
        "loops": loop_info,
        "argv": sys.argv[1:],
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def list_benchmarks():
    for bench in all_benchmarks().values():
        target = (f"  [target <= {bench.target}x uvloop in instructions"
                  + (f", <= {bench.time_target}x in time"
                     if bench.time_target else "") + "]"
                  if bench.target else "")
        print(f"{bench.name:<18} {bench.group:<12} op = {bench.op}{target}")
        for line in bench.doc.splitlines():
            print(f"    {line}")
        print()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        list_benchmarks()
        return 0
    if args.repeat is None:
        args.repeat = (INSTR_REPEAT if args.instructions else
                       QUICK_REPEAT if args.quick else TIME_REPEAT)
    args.target = QUICK_TARGET if args.quick else TIME_TARGET
    args.runs = QUICK_RUNS if args.quick else TIME_RUNS
    loops = select_loops(args.loops)
    benches = select_benchmarks(args.only)
    mode = "instr" if args.instructions else "time"
    log(f"{len(benches)} benchmarks x {len(loops)} loops "
        f"({', '.join(loops)}) x {args.repeat} repetitions, "
        f"{'instruction counts' if mode == 'instr' else args.clock + ' time'}")

    samples = run_suite(benches, loops, args)
    summary = summarize(benches, loops, samples, mode)
    meta = collect_meta(args, loops, samples)
    meta["_samples"] = samples  # for the markdown; not written twice

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "instructions" if mode == "instr" else "time")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": {k: v for k, v in meta.items()
                            if k != "_samples"},
                   "benchmarks": summary, "samples": samples}, f, indent=1)
    table = markdown(summary, loops, meta)
    with open(stem + ".md", "w") as f:
        f.write(table)
    print(flush=True)
    print(table, flush=True)
    written = [stem + ".json", stem + ".md"]
    if chart(summary, loops, meta, stem + ".png"):
        written.append(stem + ".png")
    print("wrote " + ", ".join(os.path.relpath(p) for p in written))
    failed = any(cell["errors"] for e in summary.values()
                 for cell in e["loops"].values())
    return 1 if failed else 0
