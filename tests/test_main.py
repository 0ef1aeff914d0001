"""`python -m fastloop script.py [args]` runs an unchanged asyncio script on fastloop.

The script must see what it would see under plain `python script.py [args]`
(argv, __name__, sys.path[0], exit status, tracebacks), except that the
loop is a fastloop.Loop.  Each check runs the script both ways.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(30)

REPORT_SCRIPT = """
import asyncio
import json
import os
import sys

import helper  # a module next to the script, found through sys.path[0]


async def main():
    loop = asyncio.get_running_loop()
    fastloop = sys.modules.get("fastloop")
    return {
        "argv": sys.argv,
        "name": __name__,
        "file": os.path.abspath(__file__),
        "path0": os.path.abspath(sys.path[0]),
        "helper": helper.VALUE,
        "main_module_is_script": sys.modules["__main__"].__dict__ is globals(),
        "fastloop_loop": fastloop is not None and isinstance(loop, fastloop.Loop),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
"""


@pytest.fixture
def script_dir(tmp_path):
    (tmp_path / "helper.py").write_text("VALUE = 'helper imported'\n")
    return tmp_path


def write_script(directory, source, name="script.py"):
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def run(args, child_env, cwd):
    return subprocess.run(
        [sys.executable, *args], env=child_env, cwd=cwd,
        capture_output=True, text=True, timeout=30,
    )


def test_script_runs_with_a_fastloop_loop_and_sees_what_plain_python_gives_it(
        script_dir, child_env, tmp_path_factory):
    script = write_script(script_dir, REPORT_SCRIPT)
    # Run from another directory, with the script named by a relative path.
    cwd = tmp_path_factory.mktemp("cwd")
    relative = os.path.relpath(script, cwd)

    plain = run([relative, "arg1"], child_env, cwd)
    fast = run(["-m", "fastloop", relative, "arg1"], child_env, cwd)
    assert plain.returncode == 0, plain.stderr
    assert fast.returncode == 0, fast.stderr
    plain_report = json.loads(plain.stdout)
    fast_report = json.loads(fast.stdout)

    assert fast_report["fastloop_loop"] is True
    assert plain_report["fastloop_loop"] is False
    del plain_report["fastloop_loop"], fast_report["fastloop_loop"]
    assert fast_report == plain_report
    assert fast_report["argv"] == [relative, "arg1"]
    assert fast_report["name"] == "__main__"
    assert fast_report["path0"] == str(script_dir)


def test_script_given_by_absolute_path_gets_it_as_argv_0(script_dir, child_env):
    script = write_script(script_dir, REPORT_SCRIPT)
    result = run(["-m", "fastloop", str(script), "a", "--flag", "b"], child_env, script_dir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["argv"] == [str(script), "a", "--flag", "b"]


def test_script_exit_status_propagates(script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio
        import sys

        async def main():
            await asyncio.sleep(0)
            sys.exit(3)

        asyncio.run(main())
    """)
    assert run([str(script)], child_env, script_dir).returncode == 3
    assert run(["-m", "fastloop", str(script)], child_env, script_dir).returncode == 3


def test_script_uncaught_exception_prints_a_traceback_and_exits_1(script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio

        async def failing_main():
            await asyncio.sleep(0)
            raise ValueError("boom from the script")

        asyncio.run(failing_main())
    """)
    for args in ([str(script)], ["-m", "fastloop", str(script)]):
        result = run(args, child_env, script_dir)
        assert result.returncode == 1
        assert result.stderr.startswith("Traceback (most recent call last):")
        assert str(script) in result.stderr
        assert "in failing_main" in result.stderr
        assert result.stderr.rstrip().endswith("ValueError: boom from the script")


def test_script_classes_can_be_pickled(script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio
        import pickle

        class Message:
            def __init__(self, text):
                self.text = text

        async def main():
            return pickle.loads(pickle.dumps(Message("pickled"))).text

        print(asyncio.run(main()))
    """)
    result = run(["-m", "fastloop", str(script)], child_env, script_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pickled\n"


def test_script_sees_the_fastloop_policy_installed(script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio
        import fastloop

        policy = asyncio.get_event_loop_policy()
        print(isinstance(policy, fastloop.EventLoopPolicy))
        loop = asyncio.new_event_loop()
        print(isinstance(loop, fastloop.Loop))
        loop.close()
    """)
    result = run(["-m", "fastloop", str(script)], child_env, script_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\nTrue\n"


def test_traceback_starts_at_the_script_like_plain_python(script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio

        async def failing_main():
            raise ValueError("boom")

        asyncio.run(failing_main())
    """)
    for args in ([str(script)], ["-m", "fastloop", str(script)]):
        stderr = run(args, child_env, script_dir).stderr
        first_frame = next(line for line in stderr.splitlines() if line.lstrip().startswith("File "))
        assert first_frame.strip().startswith(f'File "{script}", line 7, in <module>'), stderr


def test_missing_script_exits_2_like_plain_python(script_dir, child_env):
    missing = str(script_dir / "missing.py")
    plain = run([missing], child_env, script_dir)
    fast = run(["-m", "fastloop", missing], child_env, script_dir)
    assert plain.returncode == fast.returncode == 2
    for result in (plain, fast):
        assert "can't open file" in result.stderr
        assert "missing.py" in result.stderr
        assert "[Errno 2] No such file or directory" in result.stderr


def test_ctrl_c_ends_the_script_like_plain_python(script_dir, child_env):
    import signal
    import time

    script = write_script(script_dir, """
        import asyncio

        async def main():
            print("ready", flush=True)
            await asyncio.get_running_loop().create_future()

        asyncio.run(main())
    """)
    for args in ([str(script)], ["-m", "fastloop", str(script)]):
        proc = subprocess.Popen([sys.executable, *args], env=child_env, cwd=script_dir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 2.0
        assert proc.returncode == -signal.SIGINT, err
        assert err.startswith("Traceback (most recent call last):")
        assert err.rstrip().endswith("KeyboardInterrupt")
