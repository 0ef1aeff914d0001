"""Tests of the compatibility runner itself (run.py), not of fastloop.

The leak-check tests run in a subprocess: installing the target loop replaces
asyncio's default policy class and asyncio.EventLoop, which must not leak
into the pytest process.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run  # noqa: E402


def pattern(text):
    return run.Pattern(text, '', 'test')


def test_pattern_matches_its_id_and_everything_below_it():
    p = pattern('test_events.HandleTests')
    assert p.matches('test_events.HandleTests')
    assert p.matches('test_events.HandleTests.test_handle')
    assert not p.matches('test_events.HandleTestsMore.test_handle')


def test_pattern_wildcards_match_test_names():
    p = pattern('test_events.LoopEventLoopTests.test_call_soon*')
    assert p.matches(
        'test_events.LoopEventLoopTests.test_call_soon_threadsafe')
    assert not p.matches('test_events.LoopEventLoopTests.test_call_later')


def test_first_matching_line_wins_so_plus_lines_reinclude(tmp_path):
    path = tmp_path / 'exclusions.txt'
    path.write_text('+mod.Cls.test_a  # runs on the loop under test\n'
                    'mod.Cls  # private\n')
    pats = run.load_patterns(str(path), need_reason=True, signs='+')
    assert run.first_match(pats, 'mod.Cls.test_a').include
    assert not run.first_match(pats, 'mod.Cls.test_b').include


def test_exclusion_without_reason_is_rejected(tmp_path):
    path = tmp_path / 'exclusions.txt'
    path.write_text('mod.Cls\n')
    with pytest.raises(SystemExit):
        run.load_patterns(str(path), need_reason=True, signs='+')


def test_version_terms_limit_a_line_to_some_pythons(tmp_path):
    path = tmp_path / 'gate.txt'
    path.write_text('mod_old  py<3.0\nmod_now  py>=3.0\n')
    pats = run.load_patterns(str(path), need_reason=False, signs='-')
    assert [p.text for p in pats] == ['mod_now']


def test_every_exclusion_line_has_a_reason():
    pats = run.load_patterns(run.EXCLUSIONS, need_reason=True, signs='+')
    assert pats and all(p.reason for p in pats)


LEAKY_TESTS = '''
import asyncio, json, sys, threading, time, unittest
sys.path.insert(0, {here!r})
import run
run.install_target('asyncio')

class T(unittest.TestCase):
    def test_leaves_loop_open(self):
        self.loop = asyncio.new_event_loop()
    def test_leaves_loop_open_after_a_policy_reset(self):
        # As the suites reset it: 3.14+ through the private setter.
        getattr(asyncio.events, '_set_event_loop_policy',
                asyncio.events.set_event_loop_policy)(None)
        self.loop = asyncio.new_event_loop()
    def test_leaves_event_loop_open(self):
        # asyncio.EventLoop (3.13+), as loop_factory=asyncio.EventLoop makes.
        self.loop = getattr(asyncio, 'EventLoop', asyncio.new_event_loop)()
    def test_leaves_thread_running(self):
        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
    def test_clean(self):
        asyncio.run(asyncio.sleep(0))

class A(unittest.IsolatedAsyncioTestCase):
    async def test_async_clean(self):
        await asyncio.sleep(0)

events = []
result = run.Recorder(events.append, timeout=60, thread_grace=0.2)
unittest.TestSuite([T('test_leaves_loop_open'),
                    T('test_leaves_loop_open_after_a_policy_reset'),
                    T('test_leaves_event_loop_open'),
                    T('test_leaves_thread_running'),
                    T('test_clean'), A('test_async_clean')]).run(result)
result.finish_pending()
final = {{}}
for e in events:
    if e['ev'] in ('result', 'amend'):
        final[e['id'].rsplit('.', 1)[1]] = e['outcome']
print(json.dumps(final))
'''


@pytest.fixture(scope='module')
def leak_outcomes():
    proc = subprocess.run(
        [sys.executable, '-c', LEAKY_TESTS.format(here=HERE)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_test_leaving_a_loop_open_fails(leak_outcomes):
    assert leak_outcomes['test_leaves_loop_open'] == 'fail'


def test_a_loop_made_after_a_policy_reset_or_by_asyncio_event_loop_is_checked(
        leak_outcomes):
    assert leak_outcomes['test_leaves_loop_open_after_a_policy_reset'] == 'fail'
    assert leak_outcomes['test_leaves_event_loop_open'] == 'fail'


def test_a_test_leaving_a_thread_running_fails(leak_outcomes):
    assert leak_outcomes['test_leaves_thread_running'] == 'fail'


def test_clean_tests_pass_including_isolated_asyncio_test_cases(leak_outcomes):
    assert leak_outcomes['test_clean'] == 'pass'
    assert leak_outcomes['test_async_clean'] == 'pass'


HANG_AND_CRASH_TESTS = '''
import os, signal, time, unittest

class T(unittest.TestCase):
    def test_1_passes(self):
        pass
    def test_2_hangs(self):
        time.sleep(60)
    def test_3_crashes(self):
        os.kill(os.getpid(), signal.SIGSEGV)
    def test_4_passes_after_both(self):
        pass
'''


def run_selftest_unit(tmp_path, name, source, *options):
    """Run a unittest file through run.py on stock asyncio: each test's
    outcome, by method name."""
    unit = tmp_path / f'{name}.py'
    unit.write_text(source)
    results = tmp_path / 'results'
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, 'run.py'), '--loop', 'asyncio',
         *options, '--results-dir', str(results), str(unit)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [report] = results.glob('results-asyncio-*-partial.json')
    data = json.loads(report.read_text())['units'][name]
    return {tid.rsplit('.', 1)[1]: rec['outcome']
            for tid, rec in data['tests'].items()}


def test_a_hang_or_a_crash_costs_one_test_and_the_rest_still_runs(tmp_path):
    outcomes = run_selftest_unit(tmp_path, 'compat_selftest_units',
                                 HANG_AND_CRASH_TESTS, '--test-timeout', '2')
    assert outcomes == {'test_1_passes': 'pass', 'test_2_hangs': 'timeout',
                        'test_3_crashes': 'crash',
                        'test_4_passes_after_both': 'pass'}


EXITS_1_TESTS = '''
import os, unittest

class T(unittest.TestCase):
    def test_1_exits_1(self):
        os._exit(1)
    def test_2_passes(self):
        pass
'''


def test_a_worker_exiting_1_without_faulthandlers_dump_is_a_crash(tmp_path):
    # faulthandler's timeout also exits 1; so does ASan after a SEGV report.
    outcomes = run_selftest_unit(tmp_path, 'compat_selftest_exit1',
                                 EXITS_1_TESTS)
    assert outcomes == {'test_1_exits_1': 'crash', 'test_2_passes': 'pass'}


FASTLOOP_EVERYWHERE = '''
import asyncio, sys, unittest
sys.path.insert(0, {here!r})
import run, fastloop
run.install_target('fastloop')
getattr(asyncio.events, '_set_event_loop_policy',
        asyncio.events.set_event_loop_policy)(None)
loops = [asyncio.new_event_loop()]
if hasattr(asyncio, 'EventLoop'):
    loops.append(asyncio.EventLoop())
seen = []
class A(unittest.IsolatedAsyncioTestCase):
    async def test_loop(self):
        seen.append(asyncio.get_running_loop())
unittest.TestSuite([A('test_loop')]).run(unittest.TestResult())
async def main():
    seen.append(asyncio.get_running_loop())
if hasattr(asyncio, 'EventLoop'):
    asyncio.run(main(), loop_factory=asyncio.EventLoop)
else:
    asyncio.run(main())
print(all(isinstance(l, fastloop.Loop) for l in loops + seen), len(seen))
for l in loops:
    l.close()
'''


def test_every_way_a_suite_makes_its_loops_gives_a_fastloop_loop():
    proc = subprocess.run(
        [sys.executable, '-c', FASTLOOP_EVERYWHERE.format(here=HERE)],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['True', '2']
