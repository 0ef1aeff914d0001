"""fastloop._core as a module: loaded once per process, main interpreter only.

The C module keeps process-wide state (see docs/ARCHITECTURE.md, "Module
structure"), so it declares that it cannot be loaded in a subinterpreter
and refuses a second module object in the same process with ImportError.
These are properties of fastloop's extension module, so they are not run
on stock asyncio.  Each test runs in a child process: loading the module
again must never crash, and must not disturb the one the suite uses.
"""

import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.timeout(60), pytest.mark.backend_independent]

PY_VERSION = sys.version_info[:2]


def run_child(child_env, source, preamble=""):
    source = textwrap.dedent(preamble) + textwrap.dedent(source)
    result = subprocess.run([sys.executable, "-c", source],
                            env=child_env, capture_output=True, text=True,
                            timeout=50)
    assert result.returncode == 0, result.stderr
    return result.stdout


# A loop of the module that is loaded still works: a task awaits a future
# that a timer completes.
WORKS = """
def works(core):
    import asyncio, fastloop
    async def main():
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.001, fut.set_result, 42)
        return await asyncio.ensure_future(fut)
    assert fastloop.run(main()) == 42
    assert type(fastloop.new_event_loop()).__mro__[1] is core.Loop
"""


def test_type_modules(child_env):
    out = run_child(child_env, """
        import fastloop._core as core
        spec = core.__spec__
        print(type(core.__loader__).__name__, spec.name,
              core.Loop.__module__, core.Future.__module__)
    """)
    assert out.split() == ["ExtensionFileLoader", "fastloop._core",
                           "fastloop._core", "fastloop"]


def test_reload_keeps_the_module(child_env):
    # importlib.reload() of an extension module with module state does not
    # run its exec function again: the same module, still working.
    out = run_child(child_env, preamble=WORKS, source="""
        import importlib, fastloop._core as core
        loop_type = core.Loop
        again = importlib.reload(core)
        assert again is core and again.Loop is loop_type
        works(core)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_second_module_object_is_refused(child_env):
    # A fresh import after removing the module from sys.modules would make
    # a second module object: ImportError, and the first keeps working.
    out = run_child(child_env, preamble=WORKS, source="""
        import sys, fastloop._core as core
        del sys.modules["fastloop._core"]
        for attempt in range(2):
            try:
                import fastloop._core
            except ImportError as exc:
                print("ImportError:", exc)
            else:
                print("imported")
        sys.modules["fastloop._core"] = core
        works(core)
        print("ok")
    """)
    lines = out.strip().splitlines()
    assert lines[-1] == "ok"
    assert len(lines) == 3
    for line in lines[:2]:
        assert line.startswith("ImportError: fastloop._core is already "
                               "loaded in this process"), line


SUBINTERPRETER_IMPORT = """\
try:
    import fastloop._core
except ImportError as exc:
    print("ImportError:", exc)
else:
    print("imported")
"""


def interpreters_module():
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            return __import__(name)
        except ImportError:
            pass
    return None


@pytest.mark.skipif(interpreters_module() is None,
                    reason="this Python has neither _interpreters nor "
                           "_xxsubinterpreters to make a subinterpreter with")
def test_subinterpreter_is_refused(child_env):
    # 3.12+: Py_mod_multiple_interpreters says "not supported" and the
    # import system refuses; 3.11: the module's exec function does.  The
    # subinterpreter prints what its import raised to the child's stdout.
    out = run_child(child_env, preamble=WORKS, source="""
        import fastloop._core as core
        for name in ("_interpreters", "_xxsubinterpreters"):
            try:
                interpreters = __import__(name)
                break
            except ImportError:
                pass
        code = %r
        interp = interpreters.create()
        try:
            interpreters.run_string(interp, code)
        finally:
            interpreters.destroy(interp)
        works(core)
        print("ok")
    """ % SUBINTERPRETER_IMPORT)
    lines = out.strip().splitlines()
    assert lines[-1] == "ok"
    assert len(lines) == 2
    assert lines[0].startswith("ImportError:"), lines[0]
    assert "fastloop._core" in lines[0]
    assert "subinterpreter" in lines[0]


@pytest.mark.skipif(PY_VERSION < (3, 13),
                    reason="Py_mod_gil exists from 3.13")
def test_gil_declared_used(child_env):
    # The module relies on the GIL (see its Py_mod_gil slot).  On a
    # free-threaded build importing it enables the GIL; on a default build
    # the GIL is always there.
    out = run_child(child_env, """
        import sys, warnings
        warnings.simplefilter("ignore")
        import fastloop._core
        is_enabled = getattr(sys, "_is_gil_enabled", lambda: True)
        print(is_enabled())
    """)
    assert out.strip() == "True"


def test_loop_methods_come_from_the_c_type():
    # module.c lists every method of _core.Loop, create_future and
    # create_task among them; fastloop.Loop inherits them, ahead of
    # asyncio's.
    import fastloop
    import fastloop._core as core
    for name in ("call_soon", "add_reader", "create_future", "create_task"):
        assert name in core.Loop.__dict__, name
        assert getattr(fastloop.Loop, name) is core.Loop.__dict__[name]
    assert not hasattr(core, "_loop_create_future")
    assert not hasattr(core, "_loop_create_task")
