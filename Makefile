# Two entry points that do all set-up on a fresh machine:
#   make bench   build, then benchmark fastloop against asyncio and uvloop
#   make test    build, then run the tests
#   make ecosystem  build, install the `ecosystem` extra, run tests/ecosystem
#                (third-party libraries on fastloop and on stock asyncio)
# PYTHON picks the interpreter (default python3.11); a pyenv-installed
# version that is not on PATH (make test PYTHON=python3.12) is found too.

PYTHON ?= python3.11
# Found on PATH, then among pyenv's versions, then (python3.14, python3.15,
# the debug build python3.14d) from Debian unstable in a private root that
# tools/debian-python makes once and caches.
DEBIAN_PYTHONS := $(shell tools/debian-python --list)
PY := $(shell command -v $(PYTHON) >/dev/null 2>&1 && $(PYTHON) -c "" 2>/dev/null && command -v $(PYTHON) || ls $(HOME)/.pyenv/versions/*/bin/$(PYTHON) 2>/dev/null | tail -n 1)
ifeq ($(PY),)
ifneq ($(filter $(PYTHON),$(DEBIAN_PYTHONS)),)
PY := $(shell tools/debian-python $(PYTHON))
ifeq ($(PY),)
$(error $(PYTHON): tools/debian-python could not provide it (see above))
endif
endif
endif
ifeq ($(PY),)
$(error $(PYTHON) not found (on PATH, in pyenv, or as one of: $(DEBIAN_PYTHONS)))
endif
# 3.11, 3.14, 3.14d (a debug build: its own ABI, its own venv)
PYVER := $(shell $(PY) -c "import sys; print('%d.%d%s' % (sys.version_info[:2] + (sys.abiflags,)))")
VENV ?= $(if $(filter 3.11,$(PYVER)),.venv,.venv-$(PYVER))
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.fastloop-installed
# Interpreters whose ensurepip cannot run (Debian's points at the system's
# wheel directory) bootstrap pip from the wheel shipped beside them.
PIP_WHEEL = $(firstword $(wildcard $(dir $(PY))../share/python-wheels/pip-*.whl))
export FASTLOOP_WERROR := 1
# A debug build of CPython (python3.14d): fastloop's asserts on too.
ifneq ($(filter %d,$(PYVER)),)
export FASTLOOP_DEBUG := 1
endif

.PHONY: all build test test-asan test-debug refleak fuzz bench bench-instructions bench-tools compat ecosystem libev clean format

all: build

libev:
	@if [ ! -e /usr/include/ev.h ] && [ ! -e /usr/local/include/ev.h ]; then \
	    echo "installing libev-dev"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libev-dev; \
	fi

$(STAMP): pyproject.toml setup.py | libev
	$(PY) -m venv --without-pip $(VENV)
	$(VPY) -m ensurepip >/dev/null 2>&1 || $(VPY) $(or $(PIP_WHEEL),no-pip-wheel-beside-$(PY))/pip install -q pip
	$(VPY) -m pip install -q --upgrade pip setuptools wheel
	$(VPY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $(STAMP)

build: $(STAMP)
	$(VPY) setup.py -q build_ext --inplace

# tests/ecosystem is `make ecosystem`'s (it needs the ecosystem extra).
# LIBEV_PASS=0 leaves out the second pass: .ci/run runs it on the oldest
# and the newest Python only (io_libev.c calls no Python API that differs
# between versions).
LIBEV_PASS ?= 1
test: build
	$(VPY) -m pytest -q tests --ignore=tests/ecosystem
ifneq ($(LIBEV_PASS),0)
	@echo "=== the same with libev's per-fd watchers (FASTLOOP_IO_BACKEND=libev) ==="
	FASTLOOP_IO_BACKEND=libev $(VPY) -m pytest -q tests --ignore=tests/ecosystem -m "not backend_independent"
endif

# Another extra's requirements (markers and all) straight from
# pyproject.toml, once per venv: installing '.[bench]' would rebuild
# fastloop itself for nothing.
$(VENV)/.fastloop-extra-%: $(STAMP) pyproject.toml
	$(VPY) -c "import tomllib, sys; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies'][sys.argv[1]]))" $* >$(VENV)/$*-requirements.txt
	$(VPY) -m pip install -q -r $(VENV)/$*-requirements.txt
	touch $@
ECO_STAMP := $(VENV)/.fastloop-extra-ecosystem
BENCH_STAMP := $(VENV)/.fastloop-extra-bench

ecosystem: build $(ECO_STAMP)
	@$(VPY) -m pip list --format=freeze 2>/dev/null | grep -iE '^(tornado|anyio|aiohttp|uvicorn|httptools|h11|httpx|pytest-asyncio|pytest)==' | tr '\n' ' '; echo
	$(VPY) -m pytest -q -rs tests/ecosystem
	@echo "=== the same with libev's per-fd watchers (FASTLOOP_IO_BACKEND=libev) ==="
	FASTLOOP_IO_BACKEND=libev $(VPY) -m pytest -q -rs tests/ecosystem

compat: build
	$(VPY) tests/cpython/run.py

# AddressSanitizer + UndefinedBehaviorSanitizer: a copy of the tree whose
# extension is built with both, run with libasan preloaded and CPython's
# allocator off so that ASan sees every block; any report ends the run.
ASAN_TREE := build/asan
ASAN_ENV := PYTHONMALLOC=malloc \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_init_order=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan: build
	rm -rf $(ASAN_TREE) && mkdir -p $(ASAN_TREE)
	cp -r setup.py pyproject.toml README.md src fastloop tests tools $(ASAN_TREE)/
	rm -f $(ASAN_TREE)/fastloop/*.so
	cd $(ASAN_TREE) && FASTLOOP_SANITIZE=1 $(abspath $(VPY)) setup.py -q build_ext --inplace
	cd $(ASAN_TREE) && $(ASAN_ENV) $(abspath $(VPY)) -m pytest -q -p no:cacheprovider tests --ignore=tests/ecosystem
	cd $(ASAN_TREE) && $(ASAN_ENV) $(abspath $(VPY)) tests/cpython/run.py

# Debian's debug build of CPython 3.14 (Py_DEBUG: its own asserts and
# reference checks) with fastloop's asserts on; every fastloop test runs
# 2 + 3 times and must not grow the reference count (tests/refleak.py).
REFLEAK ?= 2:3
test-debug:
	$(MAKE) refleak PYTHON=python3.14d

refleak: build
	$(VPY) -m pytest -q -p no:cacheprovider --refleak=$(REFLEAK) tests --ignore=tests/ecosystem

# The differential fuzzer (tests/test_differential.py) at length: new
# programs from a random seed each run (FUZZ_SEED=N repeats one).
FUZZ_EXAMPLES ?= 5000
fuzz: build
	@seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "differential fuzzer: $(FUZZ_EXAMPLES) examples, FUZZ_SEED=$$seed"; \
	FASTLOOP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FASTLOOP_FUZZ_SEED=$$seed \
	    $(VPY) -m pytest -q -p no:cacheprovider tests/test_differential.py -k observes

# The network benchmarks' load: wrk, and OpenSSL's headers for the C load
# generator's TLS mode (Debian packages).
bench-tools:
	@missing=""; command -v wrk >/dev/null || missing="$$missing wrk"; \
	[ -e /usr/include/openssl/ssl.h ] || missing="$$missing libssl-dev"; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

bench: build bench-tools $(BENCH_STAMP)
	$(VPY) -m benchmarks

bench-instructions: build bench-tools $(BENCH_STAMP)
	@command -v valgrind >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq valgrind; }
	$(VPY) -m benchmarks --instructions

format:
	clang-format -i src/*.c src/*.h

clean:
	rm -rf build fastloop/*.so *.egg-info
