"""python -m fastloop: run an unchanged asyncio program on fastloop.

    python -m fastloop script.py [args ...]
    python -m fastloop -m module [args ...]
    python -m fastloop -c command [args ...]

The program runs as ``__main__`` and sees what ``python script.py`` (or
``python -m module``, ``python -c command``) would give it: ``sys.argv``,
``sys.path[0]``, ``__file__``, ``__package__``, exit status and tracebacks,
with no frame of fastloop's or of runpy's in them that plain python would
not show.  The only difference is that the event loops asyncio makes are
fastloop loops.
"""

import builtins
import marshal
import os
import runpy
import signal
import sys
import types
from asyncio import events

import fastloop

HELP = """\
usage: python -m fastloop script.py [args ...]
       python -m fastloop -m module [args ...]
       python -m fastloop -c command [args ...]

Run an asyncio program unchanged with fastloop as its event loop: every
loop asyncio makes for it (asyncio.run, asyncio.Runner,
asyncio.new_event_loop) is a fastloop loop.  The program sees the
sys.argv, sys.path, __main__ module, exit status and tracebacks that plain
python gives it.  Python's own options go before -m fastloop
(python -X dev -m fastloop script.py).

In your own code, prefer:
    fastloop.run(main())
    asyncio.run(main(), loop_factory=fastloop.new_event_loop)
"""

USAGE = HELP.split("\n\n")[0]


def use_fastloop_loops():
    """Make the loops asyncio creates on its own fastloop loops.

    Up to 3.13 this installs fastloop's event loop policy (which also
    covers ``asyncio.get_event_loop()`` creating a loop).  3.14 deprecates
    policies and 3.16 removes them, so there every loop asyncio makes
    without a ``loop_factory`` -- asyncio.run(), Runner, new_event_loop(),
    IsolatedAsyncioTestCase -- is taken from ``asyncio.new_event_loop()``,
    which is replaced by fastloop's.
    """
    if sys.version_info < (3, 14):
        fastloop.install()
        return
    import asyncio

    events.new_event_loop = asyncio.new_event_loop = fastloop.new_event_loop


def fresh_main_module(**attrs):
    """A new ``__main__`` module, put in sys.modules, as python makes one."""
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __builtins__=builtins,
        __doc__=None,
        __package__=None,
        __spec__=None,
        **attrs,
    )
    # The interpreter's own __main__ starts with an empty __annotations__
    # on some versions (3.11-3.13); this module defines none of its own, so
    # its globals show whether this interpreter does.
    if "__annotations__" in globals():
        module.__annotations__ = {}
    sys.modules["__main__"] = module
    return module.__dict__


def script_directory(path):
    """sys.path[0] for a script, as python computes it: the directory of
    the file a chain of symbolic links ends at, made absolute."""
    seen = 0
    while os.path.islink(path) and seen < 40:
        target = os.readlink(path)
        path = os.path.join(os.path.dirname(path), target)
        seen += 1
    return os.path.dirname(os.path.abspath(path))


def is_pyc(path):
    if path.endswith(".pyc"):
        return True
    from importlib.util import MAGIC_NUMBER

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC_NUMBER)) == MAGIC_NUMBER
    except OSError:
        return False


def run_file(path):
    from importlib.machinery import SourceFileLoader, SourcelessFileLoader

    absolute = os.path.abspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if is_pyc(path):
        code = marshal.loads(data[16:])
        loader = SourcelessFileLoader("__main__", absolute)
    else:
        code = compile(data, absolute, "exec", dont_inherit=True)
        loader = SourceFileLoader("__main__", absolute)
    attrs = dict(__file__=absolute, __loader__=loader)
    if sys.version_info < (3, 15):  # 3.15 gives __main__ no __cached__
        attrs["__cached__"] = None
    exec(code, fresh_main_module(**attrs))


def run_command(command):
    from importlib.machinery import BuiltinImporter

    code = compile(command, "<string>", "exec", dont_inherit=True)
    exec(code, fresh_main_module(__loader__=BuiltinImporter))


def set_path0(entry):
    # Where python would not add the program's directory (-P, -I), the
    # entry that `python -m fastloop` got is not there either.
    if not getattr(sys.flags, "safe_path", False) and sys.path:
        sys.path[0] = entry


def program_name():
    orig = getattr(sys, "orig_argv", None)
    return orig[0] if orig else sys.executable


def run_program(argv):
    """Run what argv names; return python's exit status for a failure to
    start (2, 1), or None once the program ran."""
    if argv[0] == "-m":
        if len(argv) < 2:
            print(f"{USAGE}\nArgument expected for the -m option",
                  file=sys.stderr)
            return 2
        sys.argv = ["-m", *argv[2:]]  # runpy puts the module's path first
        set_path0(os.getcwd())
        fresh_main_module()  # runpy runs the module in __main__'s dict
        runpy._run_module_as_main(argv[1], alter_argv=True)
        return None
    if argv[0] == "-c":
        if len(argv) < 2:
            print(f"{USAGE}\nArgument expected for the -c option",
                  file=sys.stderr)
            return 2
        sys.argv = ["-c", *argv[2:]]
        set_path0("")
        run_command(argv[1])
        return None
    if argv[0].startswith("-") and argv[0] != "-":
        print(f"{USAGE}\npython -m fastloop: unknown option {argv[0]}; "
              f"python's own options go before -m fastloop",
              file=sys.stderr)
        return 2
    script = argv[0]
    sys.argv = list(argv)
    if os.path.isdir(script) or (os.path.isfile(script)
                                 and not is_pyc(script)
                                 and _is_zipfile(script)):
        # A directory or zip file with a __main__.py, as python runs it.
        set_path0(os.path.abspath(script))
        fresh_main_module()
        runpy._run_module_as_main("__main__", alter_argv=False)
        return None
    try:
        open(script, "rb").close()
    except OSError as exc:
        print(f"{program_name()}: can't open file {script!r}: "
              f"[Errno {exc.errno}] {exc.strerror}", file=sys.stderr)
        return 2
    set_path0(script_directory(script))
    run_file(script)
    return None


def _is_zipfile(path):
    import zipfile

    return zipfile.is_zipfile(path)


def _without_own_frames(tb):
    """The traceback from the program's first frame on."""
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(
            tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    return tb


def main(argv):
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(HELP, end="")
        return 0
    use_fastloop_loops()
    try:
        return run_program(argv) or 0
    except SystemExit:
        raise
    except BaseException as exc:
        tb = _without_own_frames(exc.__traceback__)
        exc.__traceback__ = tb
        sys.excepthook(type(exc), exc, tb)
        if isinstance(exc, KeyboardInterrupt):
            # Die by SIGINT, as the interpreter does for an uncaught Ctrl-C.
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
