/* _callgrind.c: callgrind client requests for the instruction-count mode.
 *
 * The runner compiles this into a small shared library (it is not part of
 * fastloop) and the worker calls it through ctypes.  Valgrind runs the
 * worker with --instr-atstart=no, so interpreter start-up, imports, loop
 * creation and warm-up run uninstrumented (several times faster than
 * instrumented); bench_start() switches instrumentation on right before the
 * measured runs and bench_dump() writes the instruction count collected
 * since the previous dump to its own callgrind output file.  Outside
 * valgrind every request is a no-op.
 */
#include <valgrind/callgrind.h>

void
bench_start(void)
{
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_ZERO_STATS;
}

void
bench_dump(const char *label)
{
    CALLGRIND_DUMP_STATS_AT(label);
}

void
bench_stop(void)
{
    CALLGRIND_STOP_INSTRUMENTATION;
}
