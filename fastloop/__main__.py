"""python -m fastloop script.py [args]: run an asyncio script on fastloop.

The script runs as ``__main__`` with fastloop installed as asyncio's event
loop policy, with the ``sys.argv``, ``sys.path[0]``, exit status and
traceback that ``python script.py`` would give it.
"""

import os
import runpy
import signal
import sys

import fastloop

USAGE = "usage: python -m fastloop script.py [args ...]"


def _script_frames(tb, script):
    """Drop the traceback entries above the script's own first frame."""
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    return tb


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    script = argv[0]
    if not os.path.exists(script):
        print(
            f"{sys.executable}: can't open file {script!r}: "
            f"[Errno 2] No such file or directory",
            file=sys.stderr,
        )
        return 2
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    fastloop.install()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:
        tb = _script_frames(exc.__traceback__, os.path.abspath(script))
        if tb is None:
            tb = _script_frames(exc.__traceback__, script) or exc.__traceback__
        exc.__traceback__ = tb
        sys.excepthook(type(exc), exc, tb)
        if isinstance(exc, KeyboardInterrupt):
            # Die by SIGINT, as the interpreter does for an uncaught Ctrl-C.
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
