"""Watching file descriptors: add_reader, remove_reader, add_writer, remove_writer.

https://docs.python.org/3/library/asyncio-eventloop.html#watching-file-descriptors
"""

import asyncio
import os
import socket

import pytest

from conftest import run_for

pytestmark = pytest.mark.timeout(10)


class FileLike:
    """Not a socket: just an object with a fileno() method."""

    def __init__(self, fd):
        self._fd = fd

    def fileno(self):
        return self._fd


def test_add_reader_returns_none(loop, sockets):
    a, _ = sockets
    assert loop.add_reader(a.fileno(), print) is None
    loop.remove_reader(a.fileno())


def test_add_writer_returns_none(loop, sockets):
    a, _ = sockets
    assert loop.add_writer(a.fileno(), print) is None
    loop.remove_writer(a.fileno())


def test_reader_is_called_with_its_arguments_when_data_arrives(loop, sockets):
    a, b = sockets
    received = []

    def on_readable(sock, tag):
        received.append((tag, sock.recv(100)))
        loop.stop()

    loop.add_reader(a.fileno(), on_readable, a, "tag")
    loop.call_soon(b.send, b"hello")
    loop.run_forever()
    assert received == [("tag", b"hello")]
    assert loop.remove_reader(a.fileno()) is True


def test_reader_is_not_called_before_data_arrives(loop, sockets):
    a, _ = sockets
    calls = []
    loop.add_reader(a.fileno(), calls.append, "readable")
    run_for(loop, 0.02)
    assert calls == []
    loop.remove_reader(a.fileno())


def test_reader_is_called_again_while_data_remains(loop, sockets):
    a, b = sockets
    calls = []

    def on_readable():
        calls.append(a.recv(1))
        if len(calls) == 3:
            loop.stop()

    b.send(b"xyz")
    loop.add_reader(a, on_readable)
    loop.run_forever()
    assert calls == [b"x", b"y", b"z"]
    loop.remove_reader(a)


def test_add_reader_accepts_an_object_with_fileno(loop, sockets):
    a, b = sockets
    received = []

    def on_readable():
        received.append(a.recv(100))
        loop.stop()

    loop.add_reader(FileLike(a.fileno()), on_readable)
    b.send(b"data")
    loop.run_forever()
    assert received == [b"data"]
    # The registration is by file descriptor: either form removes it.
    assert loop.remove_reader(a.fileno()) is True


def test_add_reader_accepts_a_socket(loop, sockets):
    a, b = sockets
    received = []

    def on_readable():
        received.append(a.recv(100))
        loop.stop()

    loop.add_reader(a, on_readable)
    b.send(b"data")
    loop.run_forever()
    assert received == [b"data"]
    assert loop.remove_reader(a) is True


def test_remove_reader_returns_true_when_a_reader_was_registered(loop, sockets):
    a, _ = sockets
    loop.add_reader(a.fileno(), print)
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False


def test_remove_reader_returns_false_when_no_reader_was_registered(loop, sockets):
    a, _ = sockets
    assert loop.remove_reader(a.fileno()) is False
    loop.add_writer(a.fileno(), print)
    assert loop.remove_reader(a.fileno()) is False
    loop.remove_writer(a.fileno())


def test_remove_writer_returns_true_when_a_writer_was_registered(loop, sockets):
    a, _ = sockets
    loop.add_writer(FileLike(a.fileno()), print)
    assert loop.remove_writer(FileLike(a.fileno())) is True
    assert loop.remove_writer(a.fileno()) is False


def test_remove_writer_returns_false_when_no_writer_was_registered(loop, sockets):
    a, _ = sockets
    assert loop.remove_writer(a.fileno()) is False
    loop.add_reader(a.fileno(), print)
    assert loop.remove_writer(a.fileno()) is False
    loop.remove_reader(a.fileno())


def test_removed_reader_is_not_called(loop, sockets):
    a, b = sockets
    calls = []
    loop.add_reader(a.fileno(), calls.append, "reader")
    loop.remove_reader(a.fileno())
    b.send(b"data")
    run_for(loop, 0.02)
    assert calls == []


def test_add_reader_again_replaces_the_reader(loop, sockets):
    a, b = sockets
    calls = []

    def second():
        calls.append("second")
        a.recv(100)
        loop.stop()

    loop.add_reader(a.fileno(), calls.append, "first")
    loop.add_reader(a.fileno(), second)
    b.send(b"data")
    loop.run_forever()
    assert calls == ["second"]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False


def test_writer_is_called_with_its_arguments_when_writable(loop, sockets):
    a, b = sockets
    calls = []

    def on_writable(sock, tag):
        calls.append(tag)
        sock.send(b"written")
        loop.remove_writer(sock.fileno())
        loop.stop()

    loop.add_writer(a.fileno(), on_writable, a, "tag")
    loop.run_forever()
    assert calls == ["tag"]
    assert b.recv(100) == b"written"


def test_add_writer_again_replaces_the_writer(loop, sockets):
    a, _ = sockets
    calls = []

    def second():
        calls.append("second")
        loop.remove_writer(a.fileno())
        loop.stop()

    loop.add_writer(a.fileno(), calls.append, "first")
    loop.add_writer(a.fileno(), second)
    loop.run_forever()
    assert calls == ["second"]


def test_writer_is_not_called_while_the_socket_buffer_is_full(loop, sockets):
    a, b = sockets
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    calls = []
    loop.add_writer(a.fileno(), calls.append, "writable")
    run_for(loop, 0.02)
    assert calls == []
    loop.remove_writer(a.fileno())


def test_reader_and_writer_on_the_same_fd_are_independent(loop, sockets):
    a, b = sockets
    events = []

    def on_writable():
        events.append("writable")
        loop.remove_writer(a.fileno())
        b.send(b"ping")

    def on_readable():
        events.append(("readable", a.recv(100)))
        loop.stop()

    loop.add_reader(a.fileno(), on_readable)
    loop.add_writer(a.fileno(), on_writable)
    loop.run_forever()
    assert events == ["writable", ("readable", b"ping")]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_writer(a.fileno()) is False


def test_removing_the_writer_keeps_the_reader(loop, sockets):
    a, b = sockets
    received = []

    def on_readable():
        received.append(a.recv(100))
        loop.stop()

    loop.add_reader(a.fileno(), on_readable)
    loop.add_writer(a.fileno(), print)
    assert loop.remove_writer(a.fileno()) is True
    b.send(b"still read")
    loop.run_forever()
    assert received == [b"still read"]
    loop.remove_reader(a.fileno())


def test_exception_in_reader_reaches_the_exception_handler(loop, sockets):
    a, b = sockets
    contexts = []

    def handler(lp, ctx):
        contexts.append((ctx, repr(ctx["handle"])))
        loop.remove_reader(a.fileno())
        loop.stop()

    def failing_reader():
        raise ZeroDivisionError

    loop.set_exception_handler(handler)
    loop.add_reader(a.fileno(), failing_reader)
    b.send(b"data")
    # The reader stays readable: if the handler is never called, only this
    # timer ends the test (an exception raised by pytest-timeout inside a
    # callback would itself be swallowed by the loop).
    run_for(loop, 5)
    assert len(contexts) == 1
    context, handle_repr = contexts[0]
    assert isinstance(context["exception"], ZeroDivisionError)
    assert "failing_reader" in handle_repr


def test_remove_reader_on_a_closed_loop_returns_false(loop, sockets):
    a, _ = sockets
    loop.add_reader(a.fileno(), print)
    loop.close()
    assert loop.remove_reader(a.fileno()) is False
    assert loop.remove_writer(a.fileno()) is False


def test_close_unregisters_readers_and_writers_without_closing_the_fd(loop, sockets):
    a, b = sockets
    loop.add_reader(a.fileno(), print)
    loop.add_writer(b.fileno(), print)
    loop.close()
    # The sockets still work: the loop did not close them.
    b.send(b"ok")
    assert a.recv(10) == b"ok"


def test_reader_removed_by_an_earlier_callback_of_the_same_iteration_is_not_called(loop, sockets):
    # The data is there before the loop polls, so the reader becomes ready
    # in the same iteration as `remove`, which was scheduled first and runs
    # first: the ready reader callback must then be dropped.
    a, b = sockets
    calls = []
    b.send(b"data")
    loop.add_reader(a.fileno(), calls.append, "reader")
    loop.call_soon(lambda: calls.append(("removed", loop.remove_reader(a.fileno()))))
    run_for(loop, 0.02)
    assert calls == [("removed", True)]


def test_writer_removed_by_an_earlier_callback_of_the_same_iteration_is_not_called(loop, sockets):
    a, _ = sockets
    calls = []
    loop.add_writer(a.fileno(), calls.append, "writer")
    loop.call_soon(lambda: calls.append(("removed", loop.remove_writer(a.fileno()))))
    run_for(loop, 0.02)
    assert calls == [("removed", True)]


def test_reader_replaced_by_an_earlier_callback_of_the_same_iteration_calls_only_the_new_one(loop, sockets):
    a, b = sockets
    calls = []

    def new_reader():
        calls.append("new")
        a.recv(100)
        loop.remove_reader(a.fileno())

    b.send(b"data")
    loop.add_reader(a.fileno(), calls.append, "old")
    loop.call_soon(loop.add_reader, a.fileno(), new_reader)
    run_for(loop, 0.02)
    assert calls == ["new"]


def test_keyboard_interrupt_from_the_exception_handler_for_a_reader_propagates(loop, sockets):
    a, b = sockets

    def handler(lp, ctx):
        raise KeyboardInterrupt

    def failing_reader():
        a.recv(100)
        raise ValueError

    loop.set_exception_handler(handler)
    loop.add_reader(a.fileno(), failing_reader)
    b.send(b"data")
    loop.call_later(2, loop.stop)  # ends the test if the interrupt is lost
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    loop.remove_reader(a.fileno())


def _raised(call):
    try:
        call()
    except Exception as exc:
        return type(exc)
    return None


def _closed_fd():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


def test_remove_reader_and_writer_of_a_large_unregistered_fd_return_false(loop):
    assert loop.remove_reader(99_999) is False
    assert loop.remove_writer(99_999) is False


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_watching_a_closed_fd_raises_like_the_stock_loop(loop, method):
    fd = _closed_fd()
    stock = asyncio.new_event_loop()
    try:
        expected = _raised(lambda: getattr(stock, method)(fd, print))
    finally:
        stock.close()
    assert expected is not None and issubclass(expected, OSError)
    try:
        assert _raised(lambda: getattr(loop, method)(fd, print)) is expected
    finally:
        getattr(loop, method.replace("add", "remove"))(fd)


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_watching_a_regular_file_raises_like_the_stock_loop(loop, method, tmp_path):
    # epoll refuses regular files (EPERM): asyncio's selector loop raises
    # PermissionError rather than reporting the file as always ready.
    with open(tmp_path / "file", "wb") as f:
        stock = asyncio.new_event_loop()
        try:
            expected = _raised(lambda: getattr(stock, method)(f.fileno(), print))
        finally:
            stock.close()
        assert expected is PermissionError
        try:
            assert _raised(lambda: getattr(loop, method)(f.fileno(), print)) is expected
        finally:
            getattr(loop, method.replace("add", "remove"))(f.fileno())


def test_reader_on_a_pipe_is_called_when_data_arrives(loop):
    r, w = os.pipe()
    try:
        received = []

        def on_readable():
            received.append(os.read(r, 100))
            loop.stop()

        loop.add_reader(r, on_readable)
        loop.call_soon(os.write, w, b"through a pipe")
        loop.run_forever()
        assert received == [b"through a pipe"]
        assert loop.remove_reader(r) is True
    finally:
        os.close(r)
        os.close(w)


def test_reader_is_called_when_the_peer_closes(loop, sockets):
    a, b = sockets
    received = []

    def on_readable():
        received.append(a.recv(100))
        loop.stop()

    loop.add_reader(a.fileno(), on_readable)
    loop.call_soon(b.close)
    loop.run_forever()
    assert received == [b""]
    loop.remove_reader(a.fileno())


def test_one_iteration_runs_the_readers_that_are_ready(loop, sockets):
    # asyncio's idiom for "run one iteration": call_soon(stop), run_forever.
    # The iteration polls, so a reader whose data is already waiting runs.
    a, b = sockets
    calls = []
    loop.add_reader(a, lambda: calls.append(a.recv(10)))
    b.send(b"x")
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.remove_reader(a)
    assert calls == [b"x"]


def test_every_ready_reader_runs_in_the_same_iteration_even_with_many_fds(loop):
    if getattr(loop, "_io_backend", None) == "libev":
        pytest.skip("libev's epoll backend reports at most 64 fds per poll "
                    "until it has grown its buffer (FASTLOOP_IO_BACKEND=libev)")
    pairs = [socket.socketpair() for _ in range(100)]
    try:
        called = []
        for i, (a, b) in enumerate(pairs):
            loop.add_reader(a.fileno(), called.append, i)
            b.send(b"x")
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert sorted(called) == list(range(100))
    finally:
        for a, b in pairs:
            loop.remove_reader(a.fileno())
            a.close()
            b.close()
