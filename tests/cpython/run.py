#!/usr/bin/env python3
"""Run CPython's own test_asyncio against fastloop: the compatibility gate.

    python tests/cpython/run.py                      # everything, fastloop
    python tests/cpython/run.py --loop asyncio       # stock asyncio baseline
    python tests/cpython/run.py test_events test_locks.LockTests
    python tests/cpython/run.py --suggest-gate

See tests/cpython/README.md.  In short: every unit (one test_asyncio module, or
futures_tasks.py) runs in its own worker subprocess; each test is timed out
by faulthandler (the worker dies, the parent records the hung test and starts
a new worker that skips what already ran); each test is checked for unclosed
loops and leftover threads.  Tests named in exclusions.txt are not run;
tests named in gate.txt must pass or the run exits 1; the rest are reported as
"not yet built".
"""

import argparse
import concurrent.futures
import fnmatch
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PACKAGE = 'test.test_asyncio'
PYVER = '%d.%d' % sys.version_info[:2]
EXCLUSIONS = os.path.join(HERE, 'exclusions.txt')
GATE = os.path.join(HERE, 'gate.txt')
FUTURES_TASKS = 'futures_tasks'   # tests/cpython/futures_tasks.py, if present

# Outcomes a test can have, in table order.  'xfail' (an expectedFailure that
# failed) counts as a pass; 'xpass' (it unexpectedly passed) as a failure.
PASSING = ('pass', 'xfail')
COLUMNS = ['pass', 'fail', 'error', 'skip', 'excluded', 'timeout', 'crash',
           'notrun']


# --------------------------------------------------------------------------
# Pattern files: exclusions.txt and gate.txt


class Pattern:
    """One line of exclusions.txt or gate.txt.

    A pattern names a module, class or test by its short id
    (``test_events.LoopEventLoopTests.test_call_later``).  It matches that id
    and everything below it (``test_events.HandleTests`` matches all its
    tests); shell wildcards (``*``, ``?``, ``[...]``) are allowed.  An
    optional ``py>=3.12`` / ``py<3.13`` / ``py==3.11`` term limits the line to
    some Python versions.
    """

    def __init__(self, text, reason, where):
        # "+pattern" (exclusions): run what it matches despite a later,
        # broader line.  "-pattern" (gate): leave it out of the gate despite
        # a later, broader line (a known failure, with its reason).
        self.sign = text[0] if text[:1] in '+-' else ''
        self.include = self.sign == '+'
        self.carve = self.sign == '-'
        text = text.lstrip('+-')
        self.text = text
        self.reason = reason
        self.where = where
        self.hits = 0

    def matches(self, test_id):
        p = self.text
        return (test_id == p or test_id.startswith(p + '.')
                or fnmatch.fnmatchcase(test_id, p)
                or fnmatch.fnmatchcase(test_id, p + '.*'))


def _under_asan():
    """Whether this run has AddressSanitizer preloaded (make test-asan)."""
    return 'libasan' in os.environ.get('LD_PRELOAD', '')


def _term_ok(term):
    """A line's term: ``py>=3.12``-style versions, or ``asan`` (the line
    applies only to runs under AddressSanitizer)."""
    if term == 'asan':
        return _under_asan()
    for op in ('>=', '<=', '==', '>', '<'):
        if term.startswith('py' + op):
            want = tuple(int(x) for x in term[2 + len(op):].split('.'))
            have = sys.version_info[:len(want)]
            return {'>=': have >= want, '<=': have <= want,
                    '==': have == want, '>': have > want,
                    '<': have < want}[op]
    raise ValueError(f'bad version term {term!r}')


def load_patterns(path, need_reason, signs='+-'):
    """Parse a pattern file: ``PATTERN [py>=X.Y] [asan] [# reason]``."""
    pats = []
    if not os.path.exists(path):
        return pats
    with open(path, encoding='utf-8') as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith('#'):
                continue
            body, _, reason = line.partition('#')
            reason = reason.strip()
            words = body.split()
            where = f'{os.path.basename(path)}:{lineno}'
            if need_reason and not reason:
                sys.exit(f'{where}: an exclusion needs a "# reason"')
            pattern, terms = words[0], words[1:]
            if pattern[:1] in '+-' and pattern[:1] not in signs:
                sys.exit(f'{where}: "{pattern[0]}" lines are not allowed here')
            if pattern[:1] == '-' and not reason:
                sys.exit(f'{where}: a "-" line needs a "# reason"')
            try:
                if not all(_term_ok(t) for t in terms):
                    continue
            except ValueError as e:
                sys.exit(f'{where}: {e}')
            pats.append(Pattern(pattern, reason, where))
    return pats


def first_match(pats, test_id):
    for p in pats:
        if p.matches(test_id):
            return p
    return None


# --------------------------------------------------------------------------
# Units


def all_units():
    """Every unit for this Python: each test_asyncio module, futures_tasks."""
    import test.test_asyncio as pkg
    d = os.path.dirname(pkg.__file__)
    units = sorted(n[:-3] for n in os.listdir(d)
                   if n.startswith('test_') and n.endswith('.py'))
    if os.path.exists(os.path.join(HERE, FUTURES_TASKS + '.py')):
        units.append(FUTURES_TASKS)
    return units


# Rough cost order so the slowest units start first under -j.
SLOW_FIRST = ['test_tasks', 'test_events', 'test_subprocess', 'test_ssl',
              'test_sendfile', 'test_streams', 'test_base_events',
              FUTURES_TASKS, 'test_sock_lowlevel', 'test_sslproto',
              'test_futures', 'test_unix_events', 'test_waitfor',
              'test_locks', 'test_timeouts']


def short_id(test_id):
    prefix = PACKAGE + '.'
    if test_id.startswith(prefix):
        return test_id[len(prefix):]
    # setUpClass (test.test_asyncio.test_x.Cls) and friends
    return test_id.replace('(' + prefix, '(')


# --------------------------------------------------------------------------
# The worker: runs one unit in this process, reports one JSON line per event


class LoopTracker:
    """Remembers every loop the target creates during the current test."""

    def __init__(self):
        self.loops = {}
        self.created = 0

    def track(self, loop):
        if id(loop) not in self.loops:
            self.loops[id(loop)] = loop
            self.created += 1
        return loop

    def begin(self):
        self.loops.clear()
        self.created = 0

    def unclosed(self):
        """Close and return the loops a test left open."""
        bad = []
        for loop in self.loops.values():
            try:
                closed = loop.is_closed()
            except Exception:       # a broken loop is a leak too
                closed = False
            if not closed:
                bad.append(repr(loop))
                try:
                    if not loop.is_running():
                        loop.close()
                except Exception:
                    pass
        self.loops.clear()
        return bad


TRACKER = LoopTracker()


def _set_policy(policy):
    """Set the event loop policy without 3.14's deprecation warning."""
    import asyncio.events
    setter = getattr(asyncio.events, '_set_event_loop_policy', None)
    if setter is None:                  # 3.11-3.13
        setter = asyncio.events.set_event_loop_policy
    setter(policy)


def install_target(kind):
    """Make ``kind`` the default loop; return a factory for the mixins.

    Every name through which a test suite obtains "the default loop" is
    replaced, not just the current policy:

    * the default policy class, which asyncio instantiates whenever a test
      resets the policy with ``set_event_loop_policy(None)``: on 3.11-3.13
      ``asyncio.DefaultEventLoopPolicy`` (looked up in the asyncio package by
      ``events._init_event_loop_policy``); on 3.14+, where that public name
      is a deprecated alias served by ``asyncio.__getattr__`` and the suites
      reset the policy through the private ``events._set_event_loop_policy``,
      the private ``asyncio.unix_events._DefaultEventLoopPolicy`` that
      ``_init_event_loop_policy`` imports (and ``test_asyncio.utils`` binds
      as its ``DefaultEventLoopPolicy``);
    * ``asyncio.EventLoop`` (3.13+), the class that 3.14's suites pass as
      ``asyncio.run(..., loop_factory=asyncio.EventLoop)`` and set as
      ``IsolatedAsyncioTestCase.loop_factory``.

    The replacements record each loop they make, for the leak check; both
    are subclasses of the target's own class (``fastloop.EventLoopPolicy``,
    ``fastloop.Loop``) named as the stock ones.
    """
    import asyncio
    import asyncio.events
    import asyncio.unix_events
    import warnings
    modern = hasattr(asyncio.unix_events, '_DefaultEventLoopPolicy')
    if kind == 'fastloop':
        with warnings.catch_warnings():
            # fastloop may touch the deprecated policy names at import.
            warnings.simplefilter('ignore', DeprecationWarning)
            import fastloop
        base = fastloop.EventLoopPolicy
        loop_base = fastloop.Loop

        def factory():
            return TRACKER.track(fastloop.new_event_loop())
    else:
        base = (asyncio.unix_events._DefaultEventLoopPolicy if modern
                else asyncio.DefaultEventLoopPolicy)
        loop_base = getattr(asyncio, 'EventLoop', None)
        # What the default policy makes, without asking the current policy
        # (some tests install their own); bound now because loop_mixins
        # patches the asyncio.SelectorEventLoop name during some setUps.
        selector_loop = asyncio.SelectorEventLoop

        def factory():
            return TRACKER.track(selector_loop())

    stock_policy = (asyncio.unix_events._DefaultEventLoopPolicy if modern
                    else asyncio.DefaultEventLoopPolicy)

    class CompatPolicy(base):
        def new_event_loop(self):
            return TRACKER.track(super().new_event_loop())

    CompatPolicy.__name__ = stock_policy.__name__
    CompatPolicy.__qualname__ = stock_policy.__qualname__
    CompatPolicy.__module__ = stock_policy.__module__
    if modern:
        asyncio.unix_events._DefaultEventLoopPolicy = CompatPolicy
    else:
        asyncio.DefaultEventLoopPolicy = CompatPolicy
        asyncio.events.DefaultEventLoopPolicy = CompatPolicy
    stock_loop = getattr(asyncio, 'EventLoop', None)
    if stock_loop is not None:
        class EventLoop(loop_base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                TRACKER.track(self)

        EventLoop.__qualname__ = stock_loop.__qualname__
        EventLoop.__module__ = stock_loop.__module__
        asyncio.EventLoop = EventLoop
        asyncio.unix_events.EventLoop = EventLoop
    _set_policy(None)

    # Prove the switch took: a loop from asyncio is the target's.
    loops = [asyncio.new_event_loop()]
    if stock_loop is not None:
        loops.append(asyncio.EventLoop())
    loops.append(factory())
    try:
        if kind == 'fastloop':
            for loop in loops:
                if not isinstance(loop, fastloop.Loop):
                    raise RuntimeError(f'asyncio gave {loop!r}, not a '
                                       f'fastloop.Loop')
    finally:
        for loop in loops:
            loop.close()
    TRACKER.begin()
    return factory


class Recorder(unittest.TestResult):
    """Reports each test once, after its cleanups and the leak checks."""

    def __init__(self, emit, timeout, thread_grace):
        super().__init__()
        self.emit = emit
        self.timeout = timeout
        self.thread_grace = thread_grace
        self.cur = None
        self.pending = None

    def _arm(self):
        import faulthandler
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def startTest(self, test):
        self.finish_pending()
        super().startTest(test)
        sid = short_id(test.id())
        self.cur = {'id': sid, 'outcome': 'pass', 'msg': '',
                    't0': time.monotonic()}
        self.threads_before = set(threading.enumerate())
        TRACKER.begin()
        self.emit({'ev': 'start', 'id': sid})
        self._arm()

    def _note(self, outcome, msg):
        # The worst outcome wins: error > fail > skip > pass.
        rank = {'pass': 0, 'xfail': 0, 'skip': 1, 'fail': 2, 'error': 3}
        cur = self.cur
        if cur is None:
            return
        if rank[outcome] >= rank[cur['outcome']]:
            if rank[outcome] > rank[cur['outcome']] or not cur['msg']:
                cur['outcome'] = outcome
                cur['msg'] = msg

    def _standalone(self, test, outcome, msg):
        # setUpClass/tearDownModule errors arrive without startTest.
        self.emit({'ev': 'result', 'id': short_id(test.id()),
                   'outcome': outcome, 'msg': msg, 'loops': 0,
                   'time': 0.0})

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._note('fail', self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        msg = self._exc_info_to_string(err, test)
        if isinstance(test, unittest.case._SubTest):
            test = test.test_case
        if self.cur is None or short_id(test.id()) != self.cur['id']:
            self._standalone(test, 'error', msg)
        else:
            self._note('error', msg)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.cur is None or short_id(test.id()) != self.cur['id']:
            self._standalone(test, 'skip', reason)
        else:
            self._note('skip', reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._note('xfail', 'expected failure')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._note('fail', 'unexpected success of an expectedFailure test')

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = 'fail' if issubclass(err[0], test.failureException) \
                else 'error'
            self._note(kind, f'{subtest}:\n'
                       + self._exc_info_to_string(err, test))

    def stopTest(self, test):
        # The outcome is reported now; the leak check waits for the next
        # test (or the end of the run), because IsolatedAsyncioTestCase
        # closes its loop and executor only after stopTest.  A leak found
        # then amends the result.
        cur, self.cur = self.cur, None
        cur['loops'] = TRACKER.created
        self.emit({'ev': 'result', 'id': cur['id'], 'outcome': cur['outcome'],
                   'msg': cur['msg'][-6000:], 'loops': cur['loops'],
                   'time': round(time.monotonic() - cur['t0'], 3)})
        self.pending = (cur, self.threads_before)
        super().stopTest(test)
        # Keep guarding: the class/module fixtures between tests hang too.
        self._arm()

    def finish_pending(self):
        pending, self.pending = self.pending, None
        if pending is None:
            return
        cur, threads_before = pending
        leaks = []
        unclosed = TRACKER.unclosed()
        if unclosed:
            leaks.append('unclosed loop(s): ' + ', '.join(unclosed))
        deadline = time.monotonic() + self.thread_grace
        left = []
        for t in threading.enumerate():
            if t in threads_before or t is threading.current_thread():
                continue
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                left.append(repr(t))
        if left:
            leaks.append('thread(s) left running: ' + ', '.join(left))
        if not leaks:
            return
        if cur['outcome'] in PASSING + ('skip',):
            outcome, msg = 'fail', 'leak check: ' + '; '.join(leaks)
        else:
            outcome = cur['outcome']
            msg = cur['msg'] + '\nleak check: ' + '; '.join(leaks)
        self.emit({'ev': 'amend', 'id': cur['id'], 'outcome': outcome,
                   'msg': msg[-6000:]})


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def load_unit(unit, factory, unit_file=None):
    """Return the list of TestCase instances of one unit, in run order."""
    loader = unittest.TestLoader()
    if unit_file:
        # A unittest file named on the command line: same harness, own ids.
        sys.path.insert(0, os.path.dirname(os.path.abspath(unit_file)))
        mod = importlib.import_module(unit)
        return list(iter_tests(loader.loadTestsFromModule(mod)))
    if unit == FUTURES_TASKS:
        sys.path.insert(0, HERE)
        mod = importlib.import_module(FUTURES_TASKS)
        # Its tests report as futures_tasks.<Class>.<test>.
        return list(iter_tests(loader.loadTestsFromModule(mod)))
    mod = importlib.import_module(f'{PACKAGE}.{unit}')
    tests = list(iter_tests(loader.loadTestsFromModule(mod)))
    import loop_mixins
    for cls in loop_mixins.classes_for(unit, factory):
        tests.extend(iter_tests(loader.loadTestsFromTestCase(cls)))
    return tests


def worker(args):
    fd = os.open(args.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(obj):
        os.write(fd, (json.dumps(obj) + '\n').encode())

    import faulthandler
    faulthandler.enable()
    # Loading and the target's own start-up get one test's worth of time.
    faulthandler.dump_traceback_later(args.test_timeout, exit=True)
    sys.path.insert(0, HERE)
    sys.path.insert(0, ROOT)
    unit_id = args.worker
    try:
        factory = install_target(args.loop)
        tests = load_unit(unit_id, factory, args.unit_file)
    except unittest.SkipTest as e:
        ex = first_match(load_patterns(EXCLUSIONS, True, '+'), unit_id)
        if ex is not None and not ex.include:
            # An excluded module that skips itself on import (Windows only):
            # its tests cannot be counted, so it counts as one.
            emit({'ev': 'plan', 'ids': [],
                  'excluded': [[unit_id, f'{ex.reason} ({ex.where})']]})
            emit({'ev': 'done'})
            return 0
        emit({'ev': 'plan', 'ids': [unit_id], 'excluded': []})
        emit({'ev': 'result', 'id': unit_id, 'outcome': 'skip',
              'msg': f'module skipped: {e}', 'loops': 0, 'time': 0.0})
        emit({'ev': 'done'})
        return 0
    except BaseException:
        emit({'ev': 'plan', 'ids': [unit_id], 'excluded': []})
        emit({'ev': 'result', 'id': unit_id, 'outcome': 'error',
              'msg': 'could not load: ' + traceback.format_exc(),
              'loops': 0, 'time': 0.0})
        emit({'ev': 'done'})
        return 0

    exclusions = load_patterns(EXCLUSIONS, need_reason=True, signs='+')
    selects = args.select or []
    skip = set()
    if args.skip_file and os.path.exists(args.skip_file):
        with open(args.skip_file) as f:
            skip = set(f.read().split())
    plan, excluded, run = [], [], []
    for t in tests:
        sid = short_id(t.id())
        if selects and not any(Pattern(s, '', '').matches(sid)
                               for s in selects):
            continue
        ex = first_match(exclusions, sid)
        if ex is not None and not ex.include:
            excluded.append([sid, f'{ex.reason} ({ex.where})'])
            continue
        plan.append(sid)
        if sid not in skip:
            run.append(t)
    emit({'ev': 'plan', 'ids': plan, 'excluded': excluded})

    result = Recorder(emit, args.test_timeout, args.thread_grace)
    unittest.TestSuite(run).run(result)
    result.finish_pending()
    faulthandler.cancel_dump_traceback_later()
    emit({'ev': 'done'})
    os.close(fd)
    # Skip interpreter teardown: a target that hangs or crashes at exit
    # must not cost the unit its results (they are already written).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------------
# The parent: schedules units, restarts hung workers, writes the report


class UnitResult:
    def __init__(self, unit):
        self.unit = unit
        self.plan = None            # ids planned to run (None: never loaded)
        self.excluded = []          # [id, reason]
        self.results = {}           # id -> record
        self.restarts = 0
        self.elapsed = 0.0
        self.note = ''

    def counts(self):
        c = dict.fromkeys(COLUMNS, 0)
        for r in self.results.values():
            o = r['outcome']
            c['pass' if o == 'xfail' else o] += 1
        c['excluded'] = len(self.excluded)
        if self.plan is not None:
            c['notrun'] = sum(1 for i in self.plan if i not in self.results)
        c['noloop'] = sum(1 for r in self.results.values()
                          if r['outcome'] in PASSING and not r.get('loops'))
        return c


def read_events(path):
    evs = []
    if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    evs.append(json.loads(line))
                except ValueError:
                    pass        # a line cut short by a kill
    return evs


# Worker processes now running, so Ctrl-C on the parent can end them (they
# run in sessions of their own, out of reach of the terminal's SIGINT).
LIVE_WORKERS = set()
LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()


def kill_live_workers():
    STOPPING.set()
    with LIVE_LOCK:
        for proc in list(LIVE_WORKERS):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def run_unit(unit, opts, workdir):
    ur = UnitResult(unit)
    t_start = time.monotonic()
    deadline = t_start + opts.unit_timeout
    events_path = os.path.join(workdir, unit + '.events')
    skip_path = os.path.join(workdir, unit + '.skip')
    log_path = os.path.join(workdir, unit + '.log')
    for p in (events_path, skip_path, log_path):
        if os.path.exists(p):
            os.unlink(p)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT, HERE] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                        if p])
    env.pop('PYTHONASYNCIODEBUG', None)
    while not STOPPING.is_set():
        with open(skip_path, 'w') as f:
            f.write('\n'.join(ur.results))
        cmd = [sys.executable, '-X', 'faulthandler', os.path.abspath(__file__),
               '--worker', unit, '--loop', opts.loop,
               '--events', events_path, '--skip-file', skip_path,
               '--test-timeout', str(opts.test_timeout),
               '--thread-grace', str(opts.thread_grace)]
        for s in opts.unit_selects.get(unit, []):
            cmd += ['--select', s]
        if unit in opts.unit_files:
            cmd += ['--unit-file', opts.unit_files[unit]]
        n_before = len(read_events(events_path))
        with open(log_path, 'a') as log:
            log.write(f'\n===== worker start: {" ".join(cmd)}\n')
            log.flush()
            log_start = log.tell()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    cwd=workdir, start_new_session=True)
            with LIVE_LOCK:
                LIVE_WORKERS.add(proc)
            budget_hit = False
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                budget_hit = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rc = proc.wait()
            # A worker's test may have started children of its own.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            with LIVE_LOCK:
                LIVE_WORKERS.discard(proc)
        evs = read_events(events_path)[n_before:]
        current, done, last = None, False, None
        for ev in evs:
            kind = ev.get('ev')
            if kind == 'plan':
                if ur.plan is None:
                    ur.plan = ev['ids']
                    ur.excluded = ev['excluded']
            elif kind == 'start':
                current = ev['id']
            elif kind == 'result':
                rec = {k: ev[k] for k in ('outcome', 'msg', 'loops', 'time')}
                ur.results[ev['id']] = rec
                if ev['id'] == current:
                    current = None
                last = ev['id']
            elif kind == 'amend':
                rec = ur.results.get(ev['id'])
                if rec is not None:
                    rec['outcome'] = ev['outcome']
                    rec['msg'] = ev['msg']
            elif kind == 'done':
                done = True
        if done:
            break
        # The worker died or was killed: blame the test it was running.
        if budget_hit:
            why = (f'unit budget of {opts.unit_timeout:.0f}s used up '
                   f'(the rest of the unit did not run)')
            outcome = 'timeout'
        elif rc == 1 and current is not None and _faulthandler_fired(
                log_path, log_start):
            why = (f'no result after {opts.test_timeout:.0f}s: killed by '
                   f'faulthandler (traceback in {log_path})')
            outcome = 'timeout'
        else:
            why = (f'worker exited with status {rc} '
                   f'({_signame(rc)}; see {log_path})')
            outcome = 'crash'
        if current is not None:
            ur.results[current] = {'outcome': outcome, 'msg': why,
                                   'loops': 0, 'time': None}
        else:
            fixture = (f'{unit}.<outside any test, after {last}>' if last
                       else f'{unit}.<outside any test, at start>')
            ur.results[fixture] = {'outcome': outcome, 'msg': why,
                                   'loops': 0, 'time': None}
            if ur.plan is not None:
                ur.plan.append(fixture)
        ur.restarts += 1
        progressed = current is not None or any(
            e.get('ev') == 'result' for e in evs)
        if budget_hit or not progressed or ur.restarts > opts.max_restarts:
            if not budget_hit and ur.restarts > opts.max_restarts:
                ur.note = f'gave up after {opts.max_restarts} restarts'
            elif not budget_hit:
                ur.note = 'worker died without progress'
            else:
                ur.note = 'unit budget used up'
            break
    ur.elapsed = time.monotonic() - t_start
    if ur.plan is None:
        ur.plan = [unit]
        ur.results.setdefault(unit, {'outcome': 'crash',
                                     'msg': 'worker never reported a plan '
                                     f'(see {log_path})',
                                     'loops': 0, 'time': None})
    return ur


def _faulthandler_fired(log_path, start):
    """Whether the worker's log, from offset `start`, holds faulthandler's
    timeout dump: exit status 1 alone may also be a sanitizer's report of a
    crash (ASan exits 1 on a SEGV it handles)."""
    with open(log_path, 'rb') as f:
        f.seek(start)
        return b'Timeout (' in f.read()


def _signame(rc):
    if rc is not None and rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f'signal {-rc}'
    return 'exit'


def parse_selection(args_units):
    """Positional args: unit names, ids/patterns inside a unit, or files.

    Returns (units, {unit: [select patterns]}, {unit: file path}).
    """
    units = all_units()
    chosen, selects, files = [], {}, {}
    for a in args_units:
        if a.endswith('.py') and os.path.isfile(a):
            unit = os.path.basename(a)[:-3]
            files[unit] = os.path.abspath(a)
            chosen.append(unit)
            continue
        unit = a.split('.', 1)[0]
        matched = fnmatch.filter(units, unit) if any(
            ch in unit for ch in '*?[') else [unit] if unit in units else []
        if not matched:
            sys.exit(f'unknown unit {unit!r}; units: {" ".join(units)}')
        for u in matched:
            if u not in chosen:
                chosen.append(u)
            if '.' in a:
                selects.setdefault(u, []).append(
                    u + '.' + a.split('.', 1)[1])
    return chosen or units, selects, files


def fmt_table(rows, headers):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = '| ' + ' | '.join(h.ljust(w) for h, w in zip(headers, widths)) \
        + ' |'
    sep = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    out = [line, sep]
    for r in rows:
        out.append('| ' + ' | '.join(
            str(x).rjust(w) if isinstance(x, (int, float)) else str(x).ljust(w)
            for x, w in zip(r, widths)) + ' |')
    return '\n'.join(out)


def evaluate_gate(unit_results, gate):
    """Split run tests into gated / not yet built; find regressions."""
    gated, regress, notbuilt, carved = [], [], {}, []
    for ur in unit_results:
        for tid in ur.plan:
            rec = ur.results.get(tid, {'outcome': 'notrun', 'msg': ''})
            pat = first_match(gate, tid)
            if pat is not None:
                pat.hits += 1
            if pat is not None and pat.carve:
                carved.append((tid, rec['outcome'], pat.reason))
            if pat is not None and not pat.carve:
                gated.append(tid)
                if rec['outcome'] not in PASSING + ('skip',):
                    regress.append((tid, rec['outcome'], rec['msg']))
            else:
                nb = notbuilt.setdefault(ur.unit, dict.fromkeys(
                    ['pass', 'fail', 'error', 'skip', 'timeout', 'crash',
                     'notrun'], 0))
                o = rec['outcome']
                nb['pass' if o == 'xfail' else o] += 1
    return gated, regress, notbuilt, carved


def suggest_gate(unit_results, gate):
    """Passing tests not yet in the gate, collapsed to whole classes."""
    by_class = {}
    for ur in unit_results:
        for tid in ur.plan:
            if '.' not in tid or '<' in tid:
                continue
            cls = tid.rsplit('.', 1)[0]
            rec = ur.results.get(tid, {'outcome': 'notrun'})
            by_class.setdefault(cls, []).append((tid, rec['outcome']))
    lines = []
    for cls, tests in sorted(by_class.items()):
        todo = [(t, o) for t, o in tests
                if (first_match(gate, t) is None
                    or first_match(gate, t).carve)]
        if not todo:
            continue
        good = [t for t, o in todo if o in PASSING]
        if not good:
            continue
        if len(good) == len(todo) and all(
                o in PASSING or o == 'skip' for _, o in tests):
            lines.append(f'{cls}    # {len(good)} tests')
        else:
            lines.extend(good)
    return lines


def report(unit_results, opts, gate, wall):
    headers = ['unit', 'tests', 'pass', 'fail', 'error', 'skip', 'excluded',
               'timeout', 'crash', 'notrun', 'pass w/o loop', 'secs']
    rows, tot = [], dict.fromkeys(headers[1:-1], 0)
    for ur in sorted(unit_results, key=lambda u: u.unit):
        c = ur.counts()
        n = len(ur.plan) + c['excluded']
        row = [ur.unit + (f' ({ur.note})' if ur.note else ''), n] + \
            [c[k] for k in COLUMNS] + [c['noloop'], round(ur.elapsed, 1)]
        rows.append(row)
        for k, v in zip(headers[1:-1], row[1:-1]):
            tot[k] += v
    rows.append(['TOTAL'] + [tot[k] for k in headers[1:-1]]
                + [round(wall, 1)])
    gated, regress, notbuilt, carved = evaluate_gate(unit_results, gate)
    # A pattern naming a unit this checkout does not have yet (futures_tasks
    # before its file lands) waits quietly; any other idle pattern is a typo
    # or a test that moved, and fails a full run.
    units = set(all_units())
    unused = [p for p in gate if p.hits == 0
              and p.text.split('.', 1)[0].rstrip('*') in units]

    md = []
    md.append(f'# test_asyncio on {opts.loop}, Python {sys.version.split()[0]}'
              + (' (partial run)' if opts.partial else ''))
    md.append('')
    md.append(fmt_table(rows, headers))
    md.append('')
    md.append('"pass w/o loop": passed without the loop under test creating '
              'a loop. In test_asyncio modules these exercise only asyncio\'s '
              'own classes (e.g. asyncio.Future on asyncio\'s TestLoop); in '
              'futures_tasks, fastloop\'s Future/Task on asyncio\'s TestLoop.')
    md.append('')
    md.append(f'## Gate ({os.path.relpath(GATE, ROOT)}): {len(gated)} tests, '
              f'{len(regress)} not passing')
    for tid, outcome, msg in regress:
        first = (msg or '').strip().splitlines()[-1:] or ['']
        md.append(f'- {outcome}: {tid}: {first[0][:200]}')
    if carved:
        md.append('')
        md.append('Left out of the gate as known failures ("-" lines):')
        for tid, outcome, reason in carved:
            if outcome in PASSING and opts.loop == 'fastloop':
                reason = 'NOW PASSING: delete its "-" line from gate.txt'
            md.append(f'- {outcome}: {tid}: {reason}')
    if unused and not opts.partial:
        md.append('')
        md.append('Gate patterns that matched no test:')
        for p in unused:
            md.append(f'- {p.text} ({p.where})')
    md.append('')
    md.append('## Not yet built (outside the gate)')
    nb_headers = ['unit', 'pass', 'fail', 'error', 'skip', 'timeout',
                  'crash', 'notrun']
    nb_rows = [[u] + [v[k] for k in nb_headers[1:]]
               for u, v in sorted(notbuilt.items())]
    if nb_rows:
        tot_nb = ['TOTAL'] + [sum(r[i] for r in nb_rows)
                              for i in range(1, len(nb_headers))]
        md.append(fmt_table(nb_rows + [tot_nb], nb_headers))
    else:
        md.append('(none)')
    text = '\n'.join(md) + '\n'

    data = {
        'loop': opts.loop, 'python': sys.version.split()[0],
        'partial': opts.partial, 'wall_seconds': round(wall, 1),
        'gate': {'tests': len(gated),
                 'known_failures': [list(c) for c in carved],
                 'regressions': [list(r[:2]) for r in regress],
                 'unused_patterns': [p.text for p in unused]},
        'units': {ur.unit: {'counts': ur.counts(), 'note': ur.note,
                            'restarts': ur.restarts,
                            'seconds': round(ur.elapsed, 1),
                            'excluded': ur.excluded,
                            'tests': ur.results,
                            'plan': ur.plan}
                  for ur in unit_results},
    }
    return text, data, regress, unused


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('units', nargs='*',
                    help='units (test_events, futures_tasks...), test ids/'
                    'patterns (test_events.HandleTests, test_locks.*.test_'
                    'repr) or unittest files (path/to/test_x.py) to run '
                    'under the same harness; default: all')
    ap.add_argument('--loop', choices=['fastloop', 'asyncio'],
                    default='fastloop',
                    help='loop under test (asyncio: stock baseline)')
    ap.add_argument('-j', '--jobs', type=int, default=2,
                    help='units run in parallel (default 2)')
    ap.add_argument('--test-timeout', type=float, default=30.0,
                    help='seconds one test may take (default 30)')
    ap.add_argument('--unit-timeout', type=float, default=300.0,
                    help='seconds one unit may take in all (default 300)')
    ap.add_argument('--thread-grace', type=float, default=2.0,
                    help='seconds to wait for a test\'s threads to end')
    ap.add_argument('--max-restarts', type=int, default=40)
    ap.add_argument('--suggest-gate', action='store_true',
                    help='print passing tests that are not in gate.txt yet')
    ap.add_argument('--results-dir', default=os.path.join(HERE, 'results'))
    ap.add_argument('--list', action='store_true', help='list units and exit')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='print every failing test with its message')
    # worker mode (internal)
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    ap.add_argument('--events', help=argparse.SUPPRESS)
    ap.add_argument('--skip-file', help=argparse.SUPPRESS)
    ap.add_argument('--select', action='append', help=argparse.SUPPRESS)
    ap.add_argument('--unit-file', help=argparse.SUPPRESS)
    opts = ap.parse_args()

    if opts.worker:
        return worker(opts)

    if opts.list:
        print('\n'.join(all_units()))
        return 0
    units, opts.unit_selects, opts.unit_files = parse_selection(opts.units)
    opts.partial = bool(opts.units)
    order = sorted(units, key=lambda u: (SLOW_FIRST.index(u)
                                         if u in SLOW_FIRST else 99, u))
    tag = f'{opts.loop}-{PYVER}' + ('-partial' if opts.partial else '')
    os.makedirs(opts.results_dir, exist_ok=True)
    workdir = os.path.join(opts.results_dir, 'work-' + tag)
    os.makedirs(workdir, exist_ok=True)
    gate = load_patterns(GATE, need_reason=False, signs='-')
    # Fail early on a bad line.
    load_patterns(EXCLUSIONS, need_reason=True, signs='+')

    print(f'test_asyncio on {opts.loop}, Python {PYVER}: {len(order)} units, '
          f'-j{opts.jobs}, {opts.test_timeout:.0f}s per test', flush=True)
    t0 = time.monotonic()
    results = []
    ex = concurrent.futures.ThreadPoolExecutor(max(1, opts.jobs))
    try:
        futs = {ex.submit(run_unit, u, opts, workdir): u for u in order}
        for fut in concurrent.futures.as_completed(futs):
            ur = fut.result()
            results.append(ur)
            c = ur.counts()
            bad = c['fail'] + c['error'] + c['timeout'] + c['crash']
            print(f'  {ur.unit:<24} {len(ur.plan):4d} run  '
                  f'{c["pass"]:4d} pass  {bad:4d} bad  {c["skip"]:3d} skip  '
                  f'{c["excluded"]:4d} excl  {ur.elapsed:6.1f}s'
                  + (f'  [{ur.note}]' if ur.note else ''), flush=True)
    except KeyboardInterrupt:
        ex.shutdown(wait=False, cancel_futures=True)
        kill_live_workers()
        print('interrupted: workers killed, no report written')
        return 130
    ex.shutdown()
    wall = time.monotonic() - t0

    text, data, regress, unused = report(results, opts, gate, wall)
    md_path = os.path.join(opts.results_dir, f'results-{tag}.md')
    js_path = os.path.join(opts.results_dir, f'results-{tag}.json')
    with open(md_path, 'w') as f:
        f.write(text)
    with open(js_path, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
    print()
    print(text)
    if opts.verbose:
        for ur in sorted(results, key=lambda u: u.unit):
            for tid in ur.plan:
                rec = ur.results.get(tid, {'outcome': 'notrun', 'msg': ''})
                if rec['outcome'] not in PASSING + ('skip',):
                    print(f'--- {rec["outcome"]}: {tid}')
                    print((rec['msg'] or '').rstrip())
    if opts.suggest_gate:
        print('## Passing tests not in the gate (candidates for gate.txt)')
        for line in suggest_gate(results, gate):
            print(line)
    print(f'results: {os.path.relpath(md_path)} and .json; worker logs in '
          f'{os.path.relpath(workdir)}')
    if regress:
        print(f'GATE FAILED: {len(regress)} gated test(s) not passing')
        return 1
    if unused and not opts.partial:
        print(f'GATE FAILED: {len(unused)} gate pattern(s) matched no test')
        return 1
    print('gate passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
