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


def test_every_loop_asyncio_makes_for_the_script_is_a_fastloop_loop(
        script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio
        import fastloop

        async def main():
            return isinstance(asyncio.get_running_loop(), fastloop.Loop)

        print(asyncio.run(main()))
        with asyncio.Runner() as runner:
            print(runner.run(main()))
        loop = asyncio.new_event_loop()
        print(isinstance(loop, fastloop.Loop))
        loop.close()
    """)
    result = run(["-W", "error", "-m", "fastloop", str(script)], child_env,
                 script_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\nTrue\nTrue\n"
    assert result.stderr == ""


@pytest.mark.skipif(sys.version_info >= (3, 14),
                    reason="3.14 deprecates policies: python -m fastloop "
                           "does not install one there")
def test_script_sees_the_fastloop_policy_installed(script_dir, child_env):
    script = write_script(script_dir, """
        import asyncio
        import fastloop

        policy = asyncio.get_event_loop_policy()
        print(isinstance(policy, fastloop.EventLoopPolicy))
    """)
    result = run(["-m", "fastloop", str(script)], child_env, script_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="before 3.14 python -m fastloop installs a policy")
def test_script_runs_on_fastloop_without_asyncio_policies(script_dir, child_env):
    # Python 3.16 removes the policy system; python -m fastloop must not
    # need it.  Stand in for 3.16 with a policy that refuses to make loops.
    script = write_script(script_dir, """
        import asyncio
        import fastloop

        async def main():
            return isinstance(asyncio.get_running_loop(), fastloop.Loop)

        print(asyncio.run(main()))
    """)
    wrapper = (
        "import asyncio.events, sys\n"
        "class NoLoops(asyncio.events._get_event_loop_policy().__class__):\n"
        "    def new_event_loop(self):\n"
        "        raise AssertionError('a policy made a loop')\n"
        "asyncio.events._set_event_loop_policy(NoLoops())\n"
        "import fastloop.__main__\n"
        "sys.exit(fastloop.__main__.main(sys.argv[1:]))\n"
    )
    result = run(["-c", wrapper, str(script)], child_env, script_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"


def test_help_says_what_it_does_and_points_to_run_and_loop_factory(child_env, tmp_path):
    result = run(["-m", "fastloop", "--help"], child_env, tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m fastloop script.py")
    assert "fastloop.run(main())" in result.stdout
    assert "loop_factory=fastloop.new_event_loop" in result.stdout


def test_no_arguments_print_the_usage_and_exit_2(child_env, tmp_path):
    result = run(["-m", "fastloop"], child_env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m fastloop")


def test_an_option_python_takes_says_where_it_belongs(child_env, tmp_path):
    result = run(["-m", "fastloop", "-X", "dev", "x.py"], child_env, tmp_path)
    assert result.returncode == 2
    assert "unknown option -X; python's own options go before -m fastloop" in result.stderr
    assert "can't open file" not in result.stderr


def same_run(child_env, cwd, *args):
    """Run args under plain python and under python -m fastloop."""
    return (run(list(args), child_env, cwd),
            run(["-m", "fastloop", *args], child_env, cwd))


GLOBALS_REPORT = """
import sys
def shown(v):
    if v is None or isinstance(v, (str, dict)):
        return v
    return (type(v).__name__, getattr(v, "name", None), getattr(v, "origin", None))
print(sorted((k, shown(v)) for k, v in globals().items() if k.startswith("__")))
print(sys.argv)
print(sys.path[0])
print(sys.modules["__main__"].__dict__ is globals())
"""


def test_script_globals_are_those_plain_python_gives(script_dir, child_env):
    write_script(script_dir, GLOBALS_REPORT, name="report.py")
    plain, fast = same_run(child_env, script_dir, "report.py", "x")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout
    assert f"('__file__', '{script_dir / 'report.py'}')" in fast.stdout
    assert "('__package__', None)" in fast.stdout


def test_command_runs_like_python_c(script_dir, child_env):
    plain, fast = same_run(child_env, script_dir, "-c", GLOBALS_REPORT, "x", "-y")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout
    assert "['-c', 'x', '-y']" in fast.stdout


def test_module_runs_like_python_m(script_dir, child_env):
    package = script_dir / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text(GLOBALS_REPORT)
    plain, fast = same_run(child_env, script_dir, "-m", "pkg.tool", "x")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout
    assert "('__package__', 'pkg')" in fast.stdout
    assert f"['{package / 'tool.py'}', 'x']" in fast.stdout


def test_missing_module_fails_like_python_m(script_dir, child_env):
    plain, fast = same_run(child_env, script_dir, "-m", "no_such_module")
    assert plain.returncode == fast.returncode == 1
    assert fast.stderr == plain.stderr
    assert "No module named no_such_module" in fast.stderr


def test_directory_with_main_runs_like_plain_python(script_dir, child_env):
    app = script_dir / "app"
    app.mkdir()
    (app / "__main__.py").write_text(GLOBALS_REPORT)
    plain, fast = same_run(child_env, script_dir, "app", "x")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout


def test_zip_file_with_main_runs_like_plain_python(script_dir, child_env):
    import zipfile

    with zipfile.ZipFile(script_dir / "app.pyz", "w") as archive:
        archive.writestr("__main__.py", GLOBALS_REPORT)
    plain, fast = same_run(child_env, script_dir, "app.pyz")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout


def test_directory_without_main_fails_like_plain_python(script_dir, child_env):
    (script_dir / "empty").mkdir()
    plain, fast = same_run(child_env, script_dir, "empty")
    assert plain.returncode == fast.returncode == 1
    assert fast.stderr == plain.stderr
    assert "can't find '__main__' module" in fast.stderr


def test_syntax_error_is_reported_like_plain_python(script_dir, child_env):
    write_script(script_dir, "x = (\n", name="broken.py")
    plain, fast = same_run(child_env, script_dir, "broken.py")
    assert plain.returncode == fast.returncode == 1
    assert fast.stderr == plain.stderr
    assert "fastloop" not in fast.stderr and "runpy" not in fast.stderr


def test_uncaught_exception_traceback_is_plain_pythons(script_dir, child_env):
    write_script(script_dir, """
        def fail():
            raise KeyError("k")

        fail()
    """, name="fails.py")
    plain, fast = same_run(child_env, script_dir, "fails.py")
    assert plain.returncode == fast.returncode == 1
    assert fast.stderr == plain.stderr


def test_symlinked_script_gets_its_target_directory_as_path_0(script_dir, child_env, tmp_path_factory):
    write_script(script_dir, GLOBALS_REPORT, name="report.py")
    links = tmp_path_factory.mktemp("links")
    (links / "link.py").symlink_to(script_dir / "report.py")
    plain, fast = same_run(child_env, links, "link.py")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout
    assert f"\n{script_dir}\n" in fast.stdout


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
