"""fastloop's two I/O backends: its own epoll set, and libev's ev_io watchers.

On Linux a loop reports fd readiness from an epoll set of its own (libev
watches that set for blocking polls); FASTLOOP_IO_BACKEND=libev, or a system
without epoll, gives one libev watcher per fd instead.  These tests check
that machinery itself, so they run on fastloop only, once per backend; the
behaviour tests (test_loop_io.py and the rest) compare fastloop with asyncio.
"""

import asyncio
import os
import socket
import sys
import time

import pytest

import fastloop

from conftest import run_for

pytestmark = pytest.mark.timeout(10)

BACKENDS = ["epoll", "libev"] if sys.platform == "linux" else ["libev"]


@pytest.fixture(params=BACKENDS)
def backend_loop(request, monkeypatch):
    if request.param == "libev":
        monkeypatch.setenv("FASTLOOP_IO_BACKEND", "libev")
    else:
        monkeypatch.delenv("FASTLOOP_IO_BACKEND", raising=False)
    loop = fastloop.new_event_loop()
    yield loop
    loop.close()


def test_the_backend_is_chosen_when_the_loop_is_made(backend_loop, request):
    assert backend_loop._io_backend == request.node.callspec.params["backend_loop"]


def test_a_reused_fd_number_is_not_woken_by_the_file_it_used_to_name(backend_loop):
    # A reader's fd is closed without remove_reader() while a duplicate keeps
    # its file open, and the number then names another socket.  The old file
    # stays in the kernel's epoll set under that number; its events must not
    # reach the new reader.  (Stock asyncio's selector loop does deliver them:
    # this is fastloop's own bookkeeping, checked on both backends.)
    loop = backend_loop
    old_r, old_w = socket.socketpair()
    new_r, new_w = socket.socketpair()
    number = old_r.fileno()
    keep_old_file = os.dup(number)
    calls = []
    try:
        loop.add_reader(number, calls.append, "old")
        loop.run_until_complete(asyncio.sleep(0.01))
        os.dup2(new_r.fileno(), number)  # closes `number`, then reuses it
        loop.add_reader(number, lambda: calls.append(os.read(number, 10)))
        old_w.send(b"to the old file")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert calls == []
        new_w.send(b"new")
        run_for(loop, 0.05)
        assert calls == [b"new"]
    finally:
        loop.remove_reader(number)
        os.close(keep_old_file)
        old_r.close()  # closes `number`, which now names the new socket
        for s in (old_w, new_r, new_w):
            s.close()


def test_a_reader_added_by_a_callback_of_a_busy_loop_is_watched(backend_loop):
    loop = backend_loop
    a, b = socket.socketpair()
    got = []

    def spin():
        if not got:
            loop.call_soon(spin)  # keep every poll non-blocking

    def add():
        loop.add_reader(a.fileno(), lambda: got.append(a.recv(10)))
        b.send(b"x")

    try:
        loop.call_soon(spin)
        loop.call_soon(add)
        loop.run_until_complete(asyncio.wait_for(_until(lambda: got), 2))
        assert got == [b"x"]
    finally:
        loop.remove_reader(a.fileno())
        a.close()
        b.close()


async def _until(condition):
    while not condition():
        await asyncio.sleep(0)


def test_a_closed_fd_left_in_the_kernel_set_does_not_keep_the_loop_awake(backend_loop):
    # As above, but the reader is then removed: nothing is watched, while
    # the kernel still holds the old file under the closed number.  Its
    # events must not turn an idle loop into a busy one.
    loop = backend_loop
    r, w = socket.socketpair()
    number = r.fileno()
    keep_file = os.dup(number)
    try:
        loop.add_reader(number, lambda: None)
        loop.run_until_complete(asyncio.sleep(0.01))
        r.close()
        loop.remove_reader(number)
        w.send(b"x")
        started = time.process_time()
        loop.run_until_complete(asyncio.sleep(0.3))
        assert time.process_time() - started < 0.15
    finally:
        os.close(keep_file)
        w.close()
