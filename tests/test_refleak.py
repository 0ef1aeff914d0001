"""tests/refleak.py (``--refleak=W:N``, make test-debug) finds a leak and
passes clean tests.  It needs a debug build of CPython."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.skipif(not hasattr(sys, "gettotalrefcount"),
                       reason="reference counts need a debug build of CPython"),
    pytest.mark.timeout(120),
]

LEAKY_TESTS = """
kept = []

def test_leaks_one_object_per_run():
    kept.append(object())

def test_clean():
    [object() for _ in range(100)]

def test_fills_a_cache_once():
    if not kept:
        kept.append(object())
"""


def test_a_leaking_test_fails_the_session_and_is_named(tmp_path, child_env):
    (tmp_path / "conftest.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})\n"
        "from refleak import *\n")
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY_TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--refleak=2:3", "test_leaky.py"],
        cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=100)
    assert result.returncode == 1, result.stdout + result.stderr
    leaks = [line for line in result.stdout.splitlines() if line.startswith("LEAK ")]
    assert len(leaks) == 1, result.stdout
    assert "test_leaky.py::test_leaks_one_object_per_run" in leaks[0]
    assert "3 passed" in result.stdout
