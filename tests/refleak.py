"""``--refleak=W:N``: CPython's ``-R`` for pytest, on a debug build of CPython.

Each selected test runs W + N times in a row (its function-scoped fixtures
set up and torn down every time).  After each run the plugin collects
garbage and reads ``sys.gettotalrefcount()`` and
``sys.getallocatedblocks()``.  A test leaks when every one of the last N
runs left more references (or more memory blocks) than the run before it:
a leak grows on every run, while a cache fills once and a warm-up run
absorbs it.  This is the rule of CPython's own ``regrtest -R``.

Only fastloop is checked: a test's stock-asyncio parametrisation
(``[asyncio]``) is deselected, since it says nothing about fastloop's
references.  Tests that use ``child_env`` (they run fastloop in child
processes) or pytest's ``tmp_path`` (which registers an atexit callback for
every directory it makes) run once, unrepeated: the parent's counts would
only measure pytest.  So do tests marked ``refleak_once`` (too long to
repeat).  Timeouts are scaled for the debug build.

Used by ``make test-debug`` (tests/conftest.py imports the hooks).
"""

import array
import gc
import sys

import pytest

# The debug build runs several times slower, and a test runs W + N times.
TIMEOUT_SCALE = 4


def pytest_addoption(parser):
    parser.addoption(
        "--refleak", metavar="W:N", default=None,
        help="run each fastloop test W+N times and fail the session if "
             "the last N runs all grew the total reference count or the "
             "allocated blocks (needs a debug build of CPython)")


def _spec(config):
    value = config.getoption("refleak", None)
    if not value:
        return None
    warmup, runs = (int(part) for part in value.split(":"))
    if not hasattr(sys, "gettotalrefcount"):
        raise pytest.UsageError("--refleak needs a debug build of CPython "
                                "(sys.gettotalrefcount)")
    if warmup < 1 or runs < 1:
        raise pytest.UsageError("--refleak=W:N needs W >= 1 and N >= 1")
    return warmup, runs


def pytest_configure(config):
    if _spec(config):
        config.refleak_leaks = []


def _checks_stock_asyncio(item):
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "asyncio" in callspec.params.values()


def pytest_collection_modifyitems(config, items):
    if not _spec(config):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if _checks_stock_asyncio(item) else kept).append(item)
    items[:] = kept
    config.hook.pytest_deselected(items=dropped)
    try:
        default = config.getini("timeout")  # pytest-timeout's setting
    except ValueError:
        default = None
    for item in kept:
        marker = item.get_closest_marker("timeout")
        seconds = marker.args[0] if marker and marker.args else default
        if seconds:
            item.add_marker(pytest.mark.timeout(float(seconds) * TIMEOUT_SCALE))


# 3.13 renames the type-cache reset (the old name warns from 3.14 on).
_clear_caches = getattr(sys, "_clear_internal_caches", None) or \
    getattr(sys, "_clear_type_cache")


UNREPEATED_FIXTURES = {"child_env", "tmp_path", "tmp_path_factory", "tmpdir"}


def _runs_once(item):
    return (item.get_closest_marker("refleak_once") is not None
            or not UNREPEATED_FIXTURES.isdisjoint(
                getattr(item, "fixturenames", ())))


def _snapshot(refs, blocks, i):
    # Stored into preallocated C arrays: keeping the counts as Python
    # objects would itself add references and blocks on every run.
    gc.collect()
    _clear_caches()
    refs[i] = sys.gettotalrefcount()
    blocks[i] = sys.getallocatedblocks()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    spec = _spec(item.config)
    if spec is None:
        return None
    from _pytest.runner import runtestprotocol

    warmup, runs = spec
    total = 1 if _runs_once(item) else warmup + runs
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid,
                                       location=item.location)
    refs = array.array("q", bytes(8 * total))
    blocks = array.array("q", bytes(8 * total))
    for i in range(total):
        last = i == total - 1
        # Between repetitions tear down the test itself but keep its
        # module's and the session's fixtures: they are not its references.
        reports = runtestprotocol(item, log=False,
                                  nextitem=nextitem if last else item.parent)
        failed = any(report.failed for report in reports)
        ended = failed or any(report.skipped for report in reports)
        if not ended:
            # pytest keeps each run's captured-output sections on the item.
            item._report_sections.clear()
            _snapshot(refs, blocks, i)
        if last or ended:
            for report in reports:
                item.ihook.pytest_runtest_logreport(report=report)
        if ended:
            if not last:
                # This run kept the module's fixtures for the next one.
                item.session._setupstate.teardown_exact(nextitem)
            break
    else:
        if total > 1:
            _judge(item, refs[-(runs + 1):], blocks[-(runs + 1):])
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid,
                                        location=item.location)
    return True


def _judge(item, refs, blocks):
    ref_deltas = [b - a for a, b in zip(refs, refs[1:])]
    block_deltas = [b - a for a, b in zip(blocks, blocks[1:])]
    if all(d > 0 for d in ref_deltas) or all(d > 0 for d in block_deltas):
        item.config.refleak_leaks.append(
            (item.nodeid, ref_deltas, block_deltas))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _spec(config):
        return
    leaks = config.refleak_leaks
    warmup, runs = _spec(config)
    terminalreporter.section(f"reference leaks (--refleak={warmup}:{runs})")
    if not leaks:
        terminalreporter.write_line("no test leaked references or blocks")
        return
    for nodeid, refs, blocks in leaks:
        terminalreporter.write_line(
            f"LEAK {nodeid}: references {refs}, memory blocks {blocks}")


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _spec(config) and config.refleak_leaks and exitstatus == 0:
        session.exitstatus = 1
