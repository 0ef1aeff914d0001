"""The stream transport: TCP and Unix sockets through Protocols,
BufferedProtocols and streams.

Each test runs on fastloop (its C SocketTransport) and on stock asyncio
(_SelectorSocketTransport), and asserts what asyncio does.
"""

import asyncio
import gc
import os
import socket
import sys
import warnings

import pytest

from nethelpers import (BufferedEcho, Echo, Recorder, errors_of, tcp_pair,
                        unix_path)

pytestmark = pytest.mark.timeout(60)

PY = sys.version_info[:2]


def run(loop, coro):
    return loop.run_until_complete(coro)


async def close_server(server):
    server.close()
    await server.wait_closed()


# ---- echo ------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [Echo, BufferedEcho])
def test_tcp_echo_with_a_protocol(loop, protocol):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, protocol, Recorder)
        for size in (1, 100, 4096, 100_000):
            start = len(pr.data)
            tr.write(b"x" * size)
            await pr.received(start + size)
        assert bytes(pr.data) == b"x" * (1 + 100 + 4096 + 100_000)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return pr.events

    events = run(loop, main())
    assert events[0] == "made" and events[-1] == "lost"
    assert set(events[1:-1]) == {"data"}


@pytest.mark.parametrize("protocol", [Echo, BufferedEcho])
def test_unix_echo_with_a_protocol(loop, protocol):
    path = unix_path()

    async def main():
        server = await loop.create_unix_server(protocol, path)
        tr, pr = await loop.create_unix_connection(Recorder, path)
        assert tr.get_extra_info("peername") == path
        assert tr.get_extra_info("socket").family == socket.AF_UNIX
        tr.write(b"hello unix")
        await pr.received(10)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return bytes(pr.data)

    assert run(loop, main()) == b"hello unix"


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_streams_echo(loop, family):
    path = unix_path()

    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        if family == "tcp":
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            r, w = await asyncio.open_connection(
                *server.sockets[0].getsockname())
        else:
            server = await asyncio.start_unix_server(handle, path)
            r, w = await asyncio.open_unix_connection(path)
        for i in range(20):
            msg = bytes([i]) * (i * 1000 + 1)
            w.write(msg)
            await w.drain()
            assert await r.readexactly(len(msg)) == msg
        w.write_eof()
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("size", [1 << 20, 16 << 20])
@pytest.mark.parametrize("protocol", [Echo, BufferedEcho])
def test_large_transfer(loop, size, protocol):
    payload = os.urandom(1 << 16) * (size >> 16)

    async def main():
        server, tr, pr, _ = await tcp_pair(loop, protocol, Recorder)
        tr.write(payload)
        await pr.received(size)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return bytes(pr.data)

    assert run(loop, main()) == payload


def test_many_small_writes_arrive_in_order(loop):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Echo, Recorder)
        parts = [str(i).encode() + b"," for i in range(20_000)]
        for part in parts:
            tr.write(part)
        tr.write(bytearray(b"end"))
        tr.write(memoryview(b"!!"))
        expected = b"".join(parts) + b"end!!"
        await pr.received(len(expected))
        tr.close()
        await close_server(server)
        return bytes(pr.data), expected

    got, expected = run(loop, main())
    assert got == expected


def test_writelines(loop):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Echo, Recorder)
        tr.writelines([b"a", bytearray(b"bc"), memoryview(b"def")])
        tr.writelines([])
        await pr.received(6)
        tr.close()
        await close_server(server)
        return bytes(pr.data)

    assert run(loop, main()) == b"abcdef"


def test_writelines_skips_empty_chunks(loop_factory):
    if loop_factory.name == "asyncio" and PY < (3, 14):
        pytest.skip("asyncio before 3.14 queues an empty chunk and then "
                    "never drains it (gh-155888)")
    loop = loop_factory()

    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Echo, Recorder)
        tr.writelines([b"", b"x", b""])
        await pr.received(1)
        size = tr.get_write_buffer_size()
        tr.close()
        await close_server(server)
        return bytes(pr.data), size

    try:
        assert run(loop, main()) == (b"x", 0)
    finally:
        loop.close()


def test_a_mutated_bytearray_after_write_changes_nothing_sent(loop_factory):
    if loop_factory.name == "asyncio" and PY >= (3, 12):
        pytest.skip("asyncio 3.12+ queues a reference to the bytearray: "
                    "what is changed after write() is sent; fastloop "
                    "copies it, as asyncio 3.11 does")
    loop = loop_factory()
    try:
        _mutated_bytearray(loop)
    finally:
        loop.close()


def _mutated_bytearray(loop):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Echo, Recorder)
        tr.set_write_buffer_limits(high=1 << 30)
        data = bytearray(b"a" * (4 << 20))
        tr.write(data)  # more than the socket takes at once
        data[:] = b"b" * len(data)
        await pr.received(4 << 20)
        tr.close()
        await close_server(server)
        return bytes(pr.data)

    assert run(loop, main()) == b"a" * (4 << 20)


# ---- the Transport API -----------------------------------------------------

def test_transport_api(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        out = {}
        out["isinstance"] = isinstance(tr, asyncio.Transport)
        sock = tr.get_extra_info("socket")
        out["socket"] = type(sock).__name__
        out["sockname"] = tr.get_extra_info("sockname") == sock.getsockname()
        out["peername"] = (tr.get_extra_info("peername")
                           == server.sockets[0].getsockname())
        out["server_peer"] = (spr.transport.get_extra_info("peername")
                              == tr.get_extra_info("sockname"))
        out["missing"] = tr.get_extra_info("no such key", "dflt")
        out["missing_kw"] = tr.get_extra_info(name="nope", default=3)
        out["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP,
                                         socket.TCP_NODELAY) != 0
        out["limits"] = tr.get_write_buffer_limits()
        tr.set_write_buffer_limits(high=1000)
        out["limits_high"] = tr.get_write_buffer_limits()
        tr.set_write_buffer_limits(low=100)
        out["limits_low"] = tr.get_write_buffer_limits()
        tr.set_write_buffer_limits(high=50, low=20)
        out["limits_both"] = tr.get_write_buffer_limits()
        with pytest.raises(ValueError) as info:
            tr.set_write_buffer_limits(high=1, low=2)
        out["limits_error"] = str(info.value)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=-1, low=-2)
        out["size"] = tr.get_write_buffer_size()
        out["can_write_eof"] = tr.can_write_eof()
        out["reading"] = tr.is_reading()
        tr.pause_reading()
        out["paused"] = tr.is_reading()
        tr.pause_reading()
        tr.resume_reading()
        out["resumed"] = tr.is_reading()
        tr.resume_reading()
        out["protocol"] = tr.get_protocol() is pr
        other = Recorder()
        tr.set_protocol(other)
        out["set_protocol"] = tr.get_protocol() is other
        tr.set_protocol(pr)
        out["closing"] = tr.is_closing()
        with pytest.raises(TypeError) as info:
            tr.write("text")
        out["type_error"] = "str" in str(info.value)
        with pytest.raises(TypeError):
            tr.write(123)
        out["repr"] = "fd=" in repr(tr)
        tr.close()
        out["closing_after"] = tr.is_closing()
        out["reading_after"] = tr.is_reading()
        out["repr_closing"] = "closing" in repr(tr)
        await pr.lost_fut
        out["repr_closed"] = "closed" in repr(tr)
        out["lost_exc"] = pr.lost_exc
        await close_server(server)
        return out

    out = run(loop, main())
    assert out == {
        "isinstance": True, "socket": "TransportSocket", "sockname": True,
        "peername": True, "server_peer": True, "missing": "dflt",
        "missing_kw": 3, "nodelay": True, "limits": (16384, 65536),
        "limits_high": (250, 1000), "limits_low": (100, 400),
        "limits_both": (20, 50),
        "limits_error": "high (1) must be >= low (2) must be >= 0",
        "size": 0, "can_write_eof": True, "reading": True, "paused": False,
        "resumed": True, "protocol": True, "set_protocol": True,
        "closing": False, "type_error": True, "repr": True,
        "closing_after": True, "reading_after": False, "repr_closing": True,
        "repr_closed": True, "lost_exc": None,
    }


def test_transport_fd_is_refused_to_add_reader(loop):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Echo, Recorder)
        fd = tr.get_extra_info("socket").fileno()
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(fd, lambda: None)
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.remove_writer(fd)
        tr.close()
        await pr.lost_fut
        await close_server(server)

    run(loop, main())


def test_write_after_write_eof_raises(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        tr.write(b"before")
        tr.write_eof()
        tr.write_eof()  # twice is nothing
        with pytest.raises(RuntimeError, match="write_eof"):
            tr.write(b"after")
        with pytest.raises(RuntimeError):
            tr.writelines([b"after"])
        await spr.received(6)
        while not spr.eof:
            await asyncio.sleep(0.001)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return bytes(spr.data)

    assert run(loop, main()) == b"before"


def test_half_close_keeps_the_other_direction(loop):
    # The server's eof_received returns True: the connection stays open
    # for writing; the client reads the reply after its own write_eof.
    class Replier(Recorder):
        def eof_received(self):
            super().eof_received()
            self.transport.write(b"reply:" + bytes(self.data))
            self.transport.close()
            return True

    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Replier, Recorder)
        tr.write(b"question")
        tr.write_eof()
        exc = await pr.lost_fut
        await close_server(server)
        return bytes(pr.data), pr.events, exc

    data, events, exc = run(loop, main())
    assert data == b"reply:question"
    assert events[-2:] == ["eof", "lost"] and exc is None


def test_eof_received_false_closes(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        tr.write_eof()
        await spr.lost_fut
        exc = await pr.lost_fut
        await close_server(server)
        return spr.events, spr.lost_exc, exc, pr.events

    sevents, sexc, exc, events = run(loop, main())
    assert sevents == ["made", "eof", "lost"] and sexc is None
    assert exc is None and events == ["made", "eof", "lost"]


def test_abort_drops_the_buffer(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=1 << 30)
        tr.write(b"x" * (16 << 20))  # more than the kernel takes
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.get_write_buffer_size() == 0
        assert tr.is_closing()
        exc = await pr.lost_fut
        tr.abort()  # again: nothing
        spr.transport.resume_reading()
        await spr.lost_fut
        await close_server(server)
        return exc, pr.events.count("lost")

    assert run(loop, main()) == (None, 1)


def test_close_flushes_the_buffer_before_connection_lost(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        tr.set_write_buffer_limits(high=1 << 30)
        tr.write(b"y" * (8 << 20))
        tr.close()
        tr.close()
        assert not pr.lost_fut.done()
        exc = await pr.lost_fut
        assert tr.get_write_buffer_size() == 0
        await spr.lost_fut
        await close_server(server)
        return exc, len(spr.data), pr.events.count("lost")

    assert run(loop, main()) == (None, 8 << 20, 1)


def test_writes_after_close_are_dropped_and_counted(loop, caplog):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Recorder, Recorder)
        tr.close()
        await pr.lost_fut
        for _ in range(10):
            tr.write(b"late")
        stock = type(tr).__module__ == "asyncio.selector_events"
        if PY >= (3, 14) or not stock:
            # asyncio 3.12 and 3.13 raise TypeError here (their close()
            # leaves writelines without a _write_ready to call).
            tr.writelines([b"late"])
        tr.close()
        tr.abort()
        await close_server(server)

    with caplog.at_level("WARNING", logger="asyncio"):
        run(loop, main())
    warnings_logged = [r for r in caplog.records
                       if "socket.send() raised exception" in r.getMessage()]
    assert warnings_logged


def test_pause_and_resume_writing_at_the_water_marks(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        chunk = b"z" * 65536
        sent = 0
        while "pause" not in pr.events:
            tr.write(chunk)
            sent += len(chunk)
            assert sent < 200 << 20
        assert tr.get_write_buffer_size() > 64 * 1024
        tr.write(chunk)  # paused already: no second pause_writing
        sent += len(chunk)
        assert pr.events.count("pause") == 1
        spr.transport.resume_reading()
        while "resume" not in pr.events:
            await asyncio.sleep(0.001)
        assert tr.get_write_buffer_size() <= 16 * 1024
        await spr.received(sent)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return pr.events.count("pause"), pr.events.count("resume"), \
            len(spr.data) == sent

    assert run(loop, main()) == (1, 1, True)


def test_raising_the_high_water_mark_needs_no_resume(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=0)
        tr.write(b"a" * (8 << 20))
        paused = pr.events.count("pause")
        tr.set_write_buffer_limits(high=1 << 30)
        spr.transport.resume_reading()
        await spr.received(8 << 20)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return paused, pr.events.count("resume")

    assert run(loop, main()) == (1, 1)


def test_set_write_buffer_limits_pauses_at_once(loop):
    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        spr.transport.pause_reading()
        tr.write(b"b" * (8 << 20))
        before = pr.events.count("pause")
        tr.set_write_buffer_limits(high=1)
        after = pr.events.count("pause")
        tr.abort()
        await pr.lost_fut
        spr.transport.abort()
        await close_server(server)
        return before, after

    assert run(loop, main()) == (1, 1)


def test_peer_reset_mid_write_reports_to_connection_lost(loop):
    async def main():
        errors = errors_of(loop)
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        sock = spr.transport.get_extra_info("socket")
        # Reset: SO_LINGER 0 then close sends RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=1 << 30)
        tr.write(b"r" * (16 << 20))
        spr.transport.abort()
        exc = await asyncio.wait_for(pr.lost_fut, 10)
        for _ in range(5):
            tr.write(b"more")
        await close_server(server)
        return exc, errors

    exc, errors = run(loop, main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert errors == []  # an OSError is only logged in debug mode


def test_unclosed_transport_warns(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, pr = await loop.create_connection(
            Recorder, *server.sockets[0].getsockname())
        tr.pause_reading()  # the loop no longer holds it
        sock = tr.get_extra_info("socket")
        return server, tr, sock

    server, tr, tsock = run(loop, main())
    fd = tsock.fileno()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del tr
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning)
               and "unclosed transport" in str(w.message) for w in caught)
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the warning transport
    run(loop, close_server(server))


def test_connection_made_runs_before_data_and_waiter(loop):
    order = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            order.append("made")

        def data_received(self, data):
            order.append("data")

    async def main():
        a, b = socket.socketpair()
        b.sendall(b"early")
        tr, pr = await loop.create_connection(P, sock=a)
        order.append("awaited")
        await asyncio.sleep(0.05)
        tr.close()
        b.close()

    run(loop, main())
    assert order[:2] == ["made", "awaited"] and "data" in order


def test_connection_made_error_is_reported_and_reading_goes_on(loop):
    class P(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise ZeroDivisionError("in connection_made")

    async def main():
        errors = errors_of(loop)
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"data")
        await pr.received(4)
        tr.close()
        b.close()
        return errors

    errors = run(loop, main())
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"].startswith("Exception in callback")


@pytest.mark.parametrize("method,message", [
    ("data_received", "Fatal error: protocol.data_received() call failed."),
    ("eof_received", "Fatal error: protocol.eof_received() call failed."),
])
def test_protocol_errors_are_fatal(loop, method, message):
    class P(Recorder):
        pass

    def boom(self, *args):
        raise ValueError("boom")

    setattr(P, method, boom)

    async def main():
        errors = errors_of(loop)
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"x")
        b.shutdown(socket.SHUT_WR)
        exc = await pr.lost_fut
        b.close()
        return errors, exc

    errors, exc = run(loop, main())
    assert [e["message"] for e in errors] == [message]
    assert isinstance(errors[0]["exception"], ValueError)
    assert errors[0]["transport"] is not None
    assert isinstance(exc, ValueError)


@pytest.mark.parametrize("case", ["raises", "empty"])
def test_buffered_protocol_get_buffer_errors(loop, case):
    class P(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.lost = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint):
            if case == "raises":
                raise KeyError("no buffer")
            return bytearray()

        def buffer_updated(self, nbytes):
            pass

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        errors = errors_of(loop)
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"x")
        exc = await pr.lost
        b.close()
        return errors, exc

    errors, exc = run(loop, main())
    assert [e["message"] for e in errors] == [
        "Fatal error: protocol.get_buffer() call failed."]
    assert type(exc) is (KeyError if case == "raises" else RuntimeError)


def test_buffered_protocol_sees_data_and_eof(loop):
    class P(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(7)
            self.got = bytearray()
            self.done = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint):
            assert sizehint == -1
            return memoryview(self.buf)[2:]

        def buffer_updated(self, nbytes):
            self.got += self.buf[2:2 + nbytes]

        def eof_received(self):
            self.got += b"<eof>"

        def connection_lost(self, exc):
            self.done.set_result(exc)

    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"0123456789" * 3)
        b.shutdown(socket.SHUT_WR)
        await pr.done
        b.close()
        return bytes(pr.got)

    assert run(loop, main()) == b"0123456789" * 3 + b"<eof>"


def test_set_protocol_switches_between_buffered_and_plain(loop):
    class Buf(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(100)
            self.got = bytearray()

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, n):
            self.got += self.buf[:n]

    async def main():
        a, b = socket.socketpair()
        tr, plain = await loop.create_connection(Recorder, sock=a)
        b.sendall(b"one")
        await plain.received(3)
        buffered = Buf()
        tr.set_protocol(buffered)
        b.sendall(b"two")
        while not buffered.got:
            await asyncio.sleep(0.001)
        tr.set_protocol(plain)
        b.sendall(b"three")
        await plain.received(8)
        tr.close()
        b.close()
        return bytes(plain.data), bytes(buffered.got)

    assert run(loop, main()) == (b"onethree", b"two")


def test_contextvars_in_protocol_callbacks(loop):
    import contextvars
    var = contextvars.ContextVar("var", default="unset")

    class P(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.seen = var.get()
            var.set("set in data_received")

    async def main():
        a, b = socket.socketpair()
        var.set("creator")
        tr, pr = await loop.create_connection(P, sock=a)
        var.set("changed later")
        b.sendall(b"x")
        await pr.received(1)
        outside = var.get()
        tr.close()
        b.close()
        return pr.seen, outside

    seen, outside = run(loop, main())
    assert seen == "creator"  # a copy of the creator's context
    assert outside == "changed later"  # nothing leaks out


def test_start_tls_needs_start_tls_compatible(loop):
    async def main():
        server, tr, pr, _ = await tcp_pair(loop, Echo, Recorder)
        compatible = getattr(tr, "_start_tls_compatible", False)
        tr.close()
        await close_server(server)
        return compatible

    assert run(loop, main()) is True


def test_sendfile_over_the_transport(loop, tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"sendfile!" * 100_000)

    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, Recorder)
        with open(path, "rb") as f:
            sent = await loop.sendfile(tr, f)
        tr.write(b"after")
        await spr.received(900_005)
        tr.close()
        await pr.lost_fut
        await close_server(server)
        return sent, bytes(spr.data)

    sent, data = run(loop, main())
    assert sent == 900_000 and data == b"sendfile!" * 100_000 + b"after"


def test_connect_accepted_socket(loop):
    async def main():
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        tr, pr = await loop.connect_accepted_socket(Echo, conn)
        client.sendall(b"ping")
        client.setblocking(False)
        data = await loop.sock_recv(client, 100)
        tr.close()
        client.close()
        listener.close()
        return data

    assert run(loop, main()) == b"ping"


class SocketLookAlike:
    """Not a socket.socket: every attribute comes from the wrapped one."""

    def __init__(self, sock):
        self.sock = sock

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_connect_accepted_socket_takes_a_socket_look_alike(loop):
    async def main():
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        conn.setblocking(False)
        tr, pr = await loop.connect_accepted_socket(
            Echo, SocketLookAlike(conn))
        client.sendall(b"ping")
        client.setblocking(False)
        data = await loop.sock_recv(client, 100)
        peer_ok = tr.get_extra_info("peername") == client.getsockname()
        tr.close()
        await asyncio.sleep(0)
        client.close()
        listener.close()
        return data, peer_ok

    assert run(loop, main()) == (b"ping", True)


# ---- hostile protocols -----------------------------------------------------

def test_data_received_closes_then_writes(loop):
    class P(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.transport.close()
            self.transport.write(b"after close")  # dropped: conn_lost set
            self.transport.close()

    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"x")
        exc = await pr.lost_fut
        b.setblocking(False)
        got = b""
        while True:
            try:
                chunk = await loop.sock_recv(b, 100)
            except ConnectionError:
                break
            if not chunk:
                break
            got += chunk
        b.close()
        return exc, got, pr.events

    exc, got, events = run(loop, main())
    assert exc is None and events == ["made", "data", "lost"]
    assert got == b""  # close() with nothing queued: connection lost


def test_data_received_aborts_and_writes(loop):
    class P(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.transport.abort()
            self.transport.write(b"dropped")
            self.transport.abort()

    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"x" * 10)
        exc = await pr.lost_fut
        b.close()
        return exc, pr.events

    assert run(loop, main()) == (None, ["made", "data", "lost"])


def test_connection_lost_raises_and_writes(loop):
    class P(Recorder):
        def connection_lost(self, exc):
            super().connection_lost(exc)
            self.transport.write(b"from connection_lost")
            self.transport.close()
            raise RuntimeError("from connection_lost")

    async def main():
        errors = errors_of(loop)
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        sock = tr.get_extra_info("socket")
        tr.close()
        await pr.lost_fut
        await asyncio.sleep(0)
        b.close()
        return errors, sock.fileno(), tr.is_closing()

    errors, fileno, closing = run(loop, main())
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], RuntimeError)
    assert fileno == -1 and closing  # the socket is closed all the same


def test_pause_writing_writes_and_resume_writing_closes(loop):
    class P(Recorder):
        def pause_writing(self):
            super().pause_writing()
            self.transport.write(b"p" * 1000)  # re-entered from write()

        def resume_writing(self):
            super().resume_writing()
            self.transport.write(b"end")
            self.transport.close()

    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, P)
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=1024, low=0)
        total = 0
        while "pause" not in pr.events:
            tr.write(b"w" * 65536)
            total += 65536
        total += 1000
        spr.transport.resume_reading()
        exc = await pr.lost_fut
        await spr.received(total + 3)
        await close_server(server)
        return exc, pr.events.count("lost"), bytes(spr.data[-3:])

    assert run(loop, main()) == (None, 1, b"end")


def test_resume_writing_aborts(loop):
    class P(Recorder):
        def resume_writing(self):
            super().resume_writing()
            self.transport.abort()

    async def main():
        server, tr, pr, spr = await tcp_pair(loop, Recorder, P)
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=1024, low=512)
        while "pause" not in pr.events:
            tr.write(b"w" * 65536)
        spr.transport.resume_reading()
        exc = await pr.lost_fut
        await close_server(server)
        return exc, pr.events.count("lost")

    assert run(loop, main()) == (None, 1)


def test_pause_writing_raising_is_reported(loop):
    class P(Recorder):
        def pause_writing(self):
            raise ValueError("pause")

        def resume_writing(self):
            raise KeyError("resume")

    async def main():
        errors = errors_of(loop)
        server, tr, pr, spr = await tcp_pair(loop, Recorder, P)
        spr.transport.pause_reading()
        tr.set_write_buffer_limits(high=1, low=0)
        tr.write(b"q" * (4 << 20))
        spr.transport.resume_reading()
        await spr.received(4 << 20)
        for _ in range(100):
            if len(errors) == 2:
                break
            await asyncio.sleep(0.01)
        tr.close()
        await close_server(server)
        return [(e["message"], type(e["exception"])) for e in errors]

    assert run(loop, main()) == [
        ("protocol.pause_writing() failed", ValueError),
        ("protocol.resume_writing() failed", KeyError)]


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_fatal_exceptions_leave_the_loop(loop, exc_type):
    class P(Recorder):
        def data_received(self, data):
            raise exc_type()

    a, b = socket.socketpair()
    transports = []

    async def main():
        tr, pr = await loop.create_connection(P, sock=a)
        transports.append(tr)
        b.sendall(b"x")
        await asyncio.sleep(10)

    with pytest.raises(exc_type):
        run(loop, main())
    transports[0].close()
    b.close()
    run(loop, asyncio.sleep(0))  # connection_lost closes the socket


def test_pause_reading_inside_data_received(loop):
    class P(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.transport.pause_reading()

    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(P, sock=a)
        b.sendall(b"first")
        await pr.received(5)
        b.sendall(b"second")
        await asyncio.sleep(0.05)
        stalled = len(pr.data)
        tr.resume_reading()
        await pr.received(11)
        tr.close()
        b.close()
        return stalled

    assert run(loop, main()) == 5


def test_closing_the_loop_with_live_transports(loop_factory, child_env):
    # Pending writes, a scheduled connection_lost and a reader when the
    # loop is closed: no crash, and the sockets are closed (with
    # ResourceWarnings) when the transports go.
    from nethelpers import run_child
    out = run_child(loop_factory, child_env, """
        import warnings
        warnings.simplefilter("ignore")
        class P(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
            def data_received(self, data):
                self.tr.write(data * 100000)
                loop.stop()
        a, b = socket.socketpair()
        b2, c = socket.socketpair()
        tr, pr = loop.run_until_complete(loop.create_connection(P, sock=a))
        tr2, pr2 = loop.run_until_complete(loop.create_connection(P, sock=b2))
        b.sendall(b"x" * 1000)
        loop.run_forever()
        tr2.close()  # connection_lost scheduled, never run
        loop.close()
        fds = [tr.get_extra_info("socket").fileno(),
               tr2.get_extra_info("socket").fileno()]
        del tr, pr, tr2, pr2
        gc.collect()
        closed = 0
        for fd in fds:
            try:
                os.fstat(fd)
            except OSError:
                closed += 1
        print("closed", closed)
    """)
    assert out.split() == ["closed", "2"]


def test_transport_of_fastloop_is_the_c_transport(loop_factory):
    if loop_factory.name != "fastloop":
        pytest.skip("what fastloop's loop makes (asyncio's is its own)")
    import fastloop
    loop = loop_factory()
    try:
        async def main():
            a, b = socket.socketpair()
            tr, pr = await loop.create_connection(asyncio.Protocol, sock=a)
            kind = type(tr)
            tr.close()
            b.close()
            return kind

        assert run(loop, main()) is fastloop._core.SocketTransport
    finally:
        loop.close()


def test_large_reads_kept_or_hashed_by_the_protocol_stay_intact(loop):
    # Large messages: some protocols keep the bytes they get, some hash
    # them; whatever a transport does to save copies must not show.
    class Keeper(asyncio.Protocol):
        def __init__(self):
            self.kept = []
            self.total = 0
            self.hashes = {}
            self.done = asyncio.get_running_loop().create_future()

        def data_received(self, data):
            self.total += len(data)
            if len(self.kept) % 2:
                self.kept.append(data)  # kept as it is
            else:
                self.kept.append(bytes(bytearray(data)))  # a copy
                self.hashes[hash(data)] = len(data)  # hashed, not kept
            if self.total >= 32 << 20 and not self.done.done():
                self.done.set_result(None)

    payload = b"".join(bytes([i]) * 65536 for i in range(256)) * 2

    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(Keeper, sock=a)
        b.setblocking(False)
        await loop.sock_sendall(b, payload)
        await pr.done
        tr.close()
        b.close()
        return pr

    pr = run(loop, main())
    assert b"".join(pr.kept) == payload
    assert all(type(c) is bytes for c in pr.kept)
    assert all(hash(c) == hash(bytes(bytearray(c))) for c in pr.kept)


def test_medium_reads_kept_or_hashed_by_the_protocol_stay_intact(loop):
    # Messages of about 1 KiB, one per read: a transport may reuse the
    # bytes object of a read nobody kept; a kept one must never change, and
    # a hashed one must not keep its old hash when reused.
    sizes = [1024, 1024, 700, 1000, 2000, 600, 1024, 4096, 1500, 1024] * 3

    class Keeper(asyncio.Protocol):
        def __init__(self):
            self.kept = []
            self.hashes = []
            self.got = 0
            self.arrived = None

        def data_received(self, data):
            self.got += len(data)
            if len(self.hashes) % 3 == 0:
                self.kept.append(data)  # kept as it is
            else:
                self.kept.append(bytes(bytearray(data)))  # a copy
            self.hashes.append(hash(data))  # hashed in every case
            if self.arrived is not None and not self.arrived.done():
                self.arrived.set_result(None)

    async def main():
        a, b = socket.socketpair()
        tr, pr = await loop.create_connection(Keeper, sock=a)
        b.setblocking(False)
        sent = []
        for i, size in enumerate(sizes):
            message = bytes([i % 251]) * size
            sent.append(message)
            expected = pr.got + size
            pr.arrived = loop.create_future()
            await loop.sock_sendall(b, message)
            while pr.got < expected:
                await pr.arrived
                pr.arrived = loop.create_future()
        tr.close()
        b.close()
        return pr, sent

    pr, sent = run(loop, main())
    assert b"".join(pr.kept) == b"".join(sent)
    assert all(type(c) is bytes for c in pr.kept)
    assert all(hash(c) == h for c, h in zip(pr.kept, pr.hashes))
