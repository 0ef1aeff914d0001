"""Build fastloop._core from src/*.c against the system's libev.

libev is found with pkg-config when it ships a .pc file, otherwise in the
standard include and library directories.  When it cannot be found the build
stops with one line that names the package to install.
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup

MISSING_LIBEV = (
    "fastloop: libev not found; install it first "
    "(Debian/Ubuntu: apt-get install libev-dev, Fedora: dnf install "
    "libev-devel, macOS: brew install libev)"
)

STANDARD_PREFIXES = ["/usr", "/usr/local", "/opt/homebrew", "/opt/local"]


def pkg_config_libev():
    if shutil.which("pkg-config") is None:
        return None
    try:
        cflags = subprocess.run(
            ["pkg-config", "--cflags", "libev"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        libs = subprocess.run(
            ["pkg-config", "--libs", "libev"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
    except subprocess.CalledProcessError:
        return None
    return {
        "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
        "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
    }


def search_libev():
    extra = [
        p for v in ("CPATH", "C_INCLUDE_PATH")
        for p in os.environ.get(v, "").split(os.pathsep) if p
    ]
    include_dirs = extra + [p + "/include" for p in STANDARD_PREFIXES]
    for inc in include_dirs:
        if os.path.exists(os.path.join(inc, "ev.h")):
            prefix = os.path.dirname(inc)
            lib_dirs = [
                d for d in glob.glob(prefix + "/lib*") + glob.glob(prefix + "/lib/*-linux-gnu")
                if glob.glob(d + "/libev.*")
            ]
            if not inc.startswith("/usr/include"):
                return {"include_dirs": [inc], "library_dirs": lib_dirs}
            return {"include_dirs": [], "library_dirs": lib_dirs}
    return None


def find_libev():
    # "egg_info", "sdist" and "--help" need no compiler and no libev.
    if not any(cmd.startswith(("build", "install", "develop", "bdist", "editable_wheel"))
               for cmd in sys.argv[1:]):
        return {"include_dirs": [], "library_dirs": []}
    found = pkg_config_libev() or search_libev()
    if found is None:
        sys.exit(MISSING_LIBEV)
    return found


def compile_args():
    # -fvisibility=hidden: only PyInit__core (which CPython marks for
    # export) leaves the library, so the module state pointer and the other
    # globals are reached without a GOT load on hot paths.
    args = ["-std=c11", "-O3", "-fno-strict-aliasing", "-fvisibility=hidden"]
    if os.environ.get("FASTLOOP_WERROR"):
        # The two -Wno- flags are the ones CPython's own build adds to
        # -Wextra: C-API callbacks have fixed signatures, and type slots are
        # left zero on purpose.
        args += ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
                 "-Wno-missing-field-initializers"]
    if os.environ.get("FASTLOOP_DEBUG"):
        args += ["-O0", "-g", "-UNDEBUG"]
    return args + sanitizer_args()


def sanitizer_args():
    """FASTLOOP_SANITIZE=1: AddressSanitizer and UndefinedBehaviorSanitizer
    (make test-asan), any report fatal."""
    if not os.environ.get("FASTLOOP_SANITIZE"):
        return []
    return ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-O1", "-g", "-fno-omit-frame-pointer", "-UNDEBUG"]


def asyncio_layout_macros():
    """The size of asyncio's C Task on the interpreter we build for.

    fastloop.Future and fastloop.Task subclass asyncio's C Future and Task
    and keep their own fields after the bases' storage, whose size is not
    in CPython's headers.  The module checks it again when imported.
    """
    try:
        import _asyncio
    except ImportError:
        sys.exit("fastloop: this Python has no _asyncio (asyncio's C "
                 "accelerator); fastloop's Future and Task subclass its types")
    return [("FL_ASYNCIO_TASK_BASICSIZE", str(_asyncio.Task.__basicsize__))]


def python_include_shim():
    """Debian's Python headers outside /usr (tools/debian-python).

    Debian's pyconfig.h includes <x86_64-linux-gnu/python3.X/pyconfig.h>.
    For an interpreter unpacked into a private root that header lies under
    the root's include directory, which cannot go on the search path whole:
    its newer libc headers clash with the system compiler's.  A directory
    holding only a link to the one subdirectory is put there instead.
    """
    multiarch = sysconfig.get_config_var("MULTIARCH")
    include = sysconfig.get_paths()["include"]
    parent, name = os.path.split(include)
    real = os.path.join(parent, multiarch or "", name)
    if not multiarch or parent == "/usr/include" or not os.path.isdir(real):
        return []
    shim = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build",
                        "include-" + name)
    link = os.path.join(shim, multiarch, name)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(real):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(real, link)
    return [shim]


libev = find_libev()

setup(
    ext_modules=[
        Extension(
            "fastloop._core",
            sources=sorted(glob.glob("src/*.c")),
            depends=sorted(glob.glob("src/*.h")),
            include_dirs=["src"] + libev["include_dirs"] + python_include_shim(),
            library_dirs=libev["library_dirs"],
            libraries=["ev"],
            define_macros=asyncio_layout_macros(),
            extra_compile_args=compile_args(),
            extra_link_args=sanitizer_args(),
        )
    ],
)
