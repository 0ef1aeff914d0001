"""loop.sock_* coroutines and sendfile, on fastloop and on stock asyncio.

fastloop's are C (src/sock.c) over its watch API; asyncio's selector loop
is the specification.  Every socket is a socketpair, a Unix socket in a
temporary directory, or TCP/UDP on 127.0.0.1.
"""

import asyncio
import gc
import io
import os
import socket
import ssl
import tempfile

import pytest


@pytest.fixture
def pair(sockets):
    return sockets


@pytest.fixture
def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


async def tick(n=3):
    for _ in range(n):
        await asyncio.sleep(0)


# ---- sock_recv ----------------------------------------------------------


def test_sock_recv_returns_data_already_there(loop, pair):
    a, b = pair
    b.send(b"hello")
    assert run(loop, loop.sock_recv(a, 100)) == b"hello"


def test_sock_recv_waits_for_data(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        assert not task.done()
        b.send(b"late")
        return await task

    assert run(loop, main()) == b"late"


def test_sock_recv_at_most_n_bytes(loop, pair):
    a, b = pair
    b.send(b"0123456789")
    assert run(loop, loop.sock_recv(a, 4)) == b"0123"
    assert run(loop, loop.sock_recv(a, 100)) == b"456789"


def test_sock_recv_returns_empty_bytes_at_eof(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        b.shutdown(socket.SHUT_WR)
        return await task

    assert run(loop, main()) == b""


def test_sock_recv_is_a_coroutine(loop, pair):
    a, b = pair
    coro = loop.sock_recv(a, 1)
    assert asyncio.iscoroutine(coro)
    b.send(b"x")
    assert run(loop, coro) == b"x"


def test_sock_recv_negative_size_raises_value_error(loop, pair):
    a, _ = pair
    with pytest.raises(ValueError, match="negative buffersize"):
        run(loop, loop.sock_recv(a, -1))


def test_sock_recv_non_integer_size_raises_type_error(loop, pair):
    a, _ = pair
    with pytest.raises(TypeError):
        run(loop, loop.sock_recv(a, 1.5))


def test_sock_recv_on_closed_socket_raises_os_error(loop, pair):
    a, _ = pair
    a.close()
    with pytest.raises(OSError):
        run(loop, loop.sock_recv(a, 10))


def test_sock_recv_peer_reset_raises_connection_error(loop, listener):
    async def main():
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, listener.getsockname())
        conn, _ = await loop.sock_accept(listener)
        task = asyncio.ensure_future(loop.sock_recv(client, 100))
        await tick()
        # An RST: SO_LINGER with a zero timeout, then close.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()
        try:
            return await task
        finally:
            client.close()

    with pytest.raises(ConnectionResetError):
        run(loop, main())


def test_sock_recv_calls_overridden_recv_of_a_socket_subclass(loop):
    calls = []

    class Sock(socket.socket):
        def recv(self, n, *args):
            calls.append(n)
            return super().recv(n, *args)

    a = Sock(socket.AF_UNIX, socket.SOCK_STREAM)
    b = Sock(socket.AF_UNIX, socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s")
        b.bind(path)
        b.listen(1)
        a.connect(path)
        c, _ = b.accept()
        a.setblocking(False)
        try:
            async def main():
                task = asyncio.ensure_future(loop.sock_recv(a, 7))
                await tick()
                c.send(b"sub")
                return await task

            assert run(loop, main()) == b"sub"
            # Tried at once (would block), then again when readable.
            assert calls == [7, 7]
        finally:
            a.close()
            b.close()
            c.close()


def test_sock_recv_cancelled_stops_watching_the_fd(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()
        # Nothing watches the fd any more: removing its reader finds none.
        assert loop.remove_reader(a.fileno()) is False
        b.send(b"after")
        return await loop.sock_recv(a, 100)

    assert run(loop, main()) == b"after"


def test_sock_recv_cancelled_after_data_arrived_leaves_data(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        task.cancel()
        b.send(b"kept")
        with pytest.raises(asyncio.CancelledError):
            await task
        return await loop.sock_recv(a, 100)

    assert run(loop, main()) == b"kept"


def test_second_sock_recv_on_the_same_fd_replaces_the_first(loop, pair):
    a, b = pair

    async def main():
        first = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        second = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        b.send(b"data")
        assert await second == b"data"
        await tick()
        # The first one's watch was replaced: it never completes.
        assert not first.done()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    run(loop, main())


def test_cancelling_a_replaced_sock_recv_keeps_the_new_watch(loop, pair):
    a, b = pair

    async def main():
        first = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        second = asyncio.ensure_future(loop.sock_recv(a, 100))
        await tick()
        first.cancel()
        await tick()
        b.send(b"second")
        return await second

    assert run(loop, main()) == b"second"


def test_sock_recv_and_sock_sendall_wait_on_one_fd_together(loop, pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = b"y" * 2**20

    async def main():
        recv = asyncio.ensure_future(loop.sock_recv(a, 100))
        send = asyncio.ensure_future(loop.sock_sendall(a, data))
        await tick()
        assert not recv.done() and not send.done()
        b.send(b"both")
        assert await recv == b"both"
        got = await read_all(loop, b, len(data))
        await send
        return got

    assert run(loop, main()) == data


def test_sock_recv_on_a_transport_fd_raises_runtime_error(loop, pair):
    a, b = pair

    async def main():
        transport, _ = await loop.connect_accepted_socket(
            asyncio.Protocol, a)
        try:
            with pytest.raises(RuntimeError, match="is used by transport"):
                await loop.sock_recv(a, 10)
        finally:
            transport.close()
            await tick()

    run(loop, main())


def test_sock_recv_pending_when_its_socket_is_closed_can_be_cancelled(
        loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await tick()
        a.close()
        await tick()
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()

    run(loop, main())


def test_pending_sock_recv_when_the_loop_closes_does_not_leak(loop_factory):
    a, b = socket.socketpair()
    a.setblocking(False)
    loop = loop_factory()
    try:
        task = loop.create_task(loop.sock_recv(a, 10))
        loop.run_until_complete(asyncio.sleep(0))
        assert not task.done()
    finally:
        loop.close()
        a.close()
        b.close()
    del task
    gc.collect()


# ---- sock_recv_into -------------------------------------------------


def test_sock_recv_into_fills_the_buffer(loop, pair):
    a, b = pair
    b.send(b"abc")
    buf = bytearray(10)
    assert run(loop, loop.sock_recv_into(a, buf)) == 3
    assert buf[:3] == b"abc"


def test_sock_recv_into_waits_for_data(loop, pair):
    a, b = pair
    buf = bytearray(10)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await tick()
        b.send(b"xyz")
        return await task

    assert run(loop, main()) == 3
    assert buf[:3] == b"xyz"


def test_sock_recv_into_a_memoryview_slice_writes_there(loop, pair):
    a, b = pair
    b.send(b"0123456789")
    buf = bytearray(b"." * 10)
    assert run(loop, loop.sock_recv_into(a, memoryview(buf)[2:5])) == 3
    assert buf == b"..012....."


def test_sock_recv_into_does_not_lock_the_buffer_while_waiting(loop, pair):
    a, b = pair
    buf = bytearray(4)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await tick()
        buf.extend(b"....")  # no export held while waiting
        b.send(b"12345678")
        return await task

    assert run(loop, main()) == 8
    assert buf == b"12345678"


def test_sock_recv_into_bytes_raises_type_error(loop, pair):
    a, b = pair
    b.send(b"x")
    with pytest.raises(TypeError):
        run(loop, loop.sock_recv_into(a, b"immutable"))


# ---- sock_sendall ------------------------------------------------------


def test_sock_sendall_small(loop, pair):
    a, b = pair
    assert run(loop, loop.sock_sendall(a, b"ping")) is None
    assert b.recv(10) == b"ping"


def test_sock_sendall_empty_returns_none(loop, pair):
    a, _ = pair
    assert run(loop, loop.sock_sendall(a, b"")) is None


def test_sock_sendall_big_with_a_slow_reader(loop, pair):
    a, b = pair
    data = os.urandom(4 * 1024 * 1024)

    async def reader():
        got = bytearray()
        while len(got) < len(data):
            chunk = await loop.sock_recv(b, 4096)
            assert chunk
            got += chunk
            await asyncio.sleep(0)
        return bytes(got)

    async def main():
        r = asyncio.ensure_future(reader())
        await loop.sock_sendall(a, data)
        return await r

    assert run(loop, main()) == data


def test_sock_sendall_accepts_any_bytes_like(loop, pair):
    a, b = pair

    async def main():
        await loop.sock_sendall(a, bytearray(b"ba"))
        await loop.sock_sendall(a, memoryview(b"mv"))
        await loop.sock_sendall(a, memoryview(b"xsliced")[1:])

    run(loop, main())
    assert b.recv(100) == b"bamvsliced"


def test_sock_sendall_holds_the_buffer_while_waiting(loop, pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = bytearray(2 * 1024 * 1024)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, data))
        await tick()
        assert not task.done()
        with pytest.raises(BufferError):
            data.extend(b"x")  # memoryview(data) is held, as asyncio does
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()
        data.extend(b"x")  # released once the operation is over

    run(loop, main())


def test_sock_sendall_str_raises_type_error(loop, pair):
    a, _ = pair
    with pytest.raises(TypeError):
        run(loop, loop.sock_sendall(a, "text"))


def test_sock_sendall_cancelled_stops_watching_the_fd(loop, pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, b"x" * 2**22))
        await tick()
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()
        assert loop.remove_writer(a.fileno()) is False

    run(loop, main())


def test_sock_sendall_to_a_closed_peer_raises_connection_error(loop, pair):
    a, b = pair
    b.close()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        run(loop, loop.sock_sendall(a, b"x" * 2**20))


def test_sock_sendall_peer_closing_midway_raises(loop, pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, b"x" * 2**22))
        await tick()
        assert not task.done()
        b.close()
        await task

    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        run(loop, main())


# ---- UDP: sock_recvfrom, sock_recvfrom_into, sock_sendto -----------------


def test_sock_sendto_and_sock_recvfrom(loop, udp_pair):
    a, b = udp_pair

    async def main():
        n = await loop.sock_sendto(a, b"dgram", b.getsockname())
        data, addr = await loop.sock_recvfrom(b, 100)
        return n, data, addr

    assert run(loop, main()) == (5, b"dgram", a.getsockname())


def test_sock_recvfrom_waits_for_a_datagram(loop, udp_pair):
    a, b = udp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await tick()
        assert not task.done()
        a.sendto(b"late", b.getsockname())
        return await task

    assert run(loop, main()) == (b"late", a.getsockname())


def test_sock_recvfrom_truncates_to_bufsize(loop, udp_pair):
    a, b = udp_pair
    a.sendto(b"0123456789", b.getsockname())
    assert run(loop, loop.sock_recvfrom(b, 4)) == (b"0123", a.getsockname())


def test_sock_recvfrom_into_nbytes_zero_means_the_whole_buffer(loop, udp_pair):
    a, b = udp_pair
    buf = bytearray(8)

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom_into(b, buf))
        await tick()
        a.sendto(b"0123456789", b.getsockname())
        return await task

    assert run(loop, main()) == (8, a.getsockname())
    assert buf == b"01234567"


def test_sock_recvfrom_into_nbytes_limits_the_read(loop, udp_pair):
    a, b = udp_pair
    buf = bytearray(b"." * 8)
    a.sendto(b"0123456789", b.getsockname())
    assert run(loop, loop.sock_recvfrom_into(b, buf, 3)) == (
        3, a.getsockname())
    assert buf == b"012....."


def test_sock_recvfrom_into_nbytes_beyond_the_buffer_raises(loop, udp_pair):
    a, b = udp_pair
    a.sendto(b"x", b.getsockname())
    with pytest.raises(ValueError, match="nbytes is greater"):
        run(loop, loop.sock_recvfrom_into(b, bytearray(2), 10))


def test_sock_recvfrom_cancelled_stops_watching_the_fd(loop, udp_pair):
    _, b = udp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await tick()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()
        assert loop.remove_reader(b.fileno()) is False

    run(loop, main())


def test_sock_sendto_bad_address_raises(loop, udp_pair):
    a, _ = udp_pair
    with pytest.raises(TypeError):
        run(loop, loop.sock_sendto(a, b"x", "not an address"))


# ---- sock_connect and sock_accept ---------------------------------------


def test_sock_connect_and_sock_accept_tcp(loop, listener):
    async def main():
        client = socket.socket()
        client.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, addr = await accept
        try:
            assert addr == client.getsockname()
            assert conn.gettimeout() == 0  # made non-blocking
            await loop.sock_sendall(client, b"hi")
            return await loop.sock_recv(conn, 10)
        finally:
            conn.close()
            client.close()

    assert run(loop, main()) == b"hi"


def test_sock_accept_returns_a_waiting_connection_at_once(loop, listener):
    client = socket.create_connection(listener.getsockname())
    try:
        conn, addr = run(loop, loop.sock_accept(listener))
        conn.close()
        assert addr == client.getsockname()
    finally:
        client.close()


def test_sock_accept_cancelled_stops_watching_the_fd(loop, listener):
    async def main():
        task = asyncio.ensure_future(loop.sock_accept(listener))
        await tick()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()
        assert loop.remove_reader(listener.fileno()) is False

    run(loop, main())


def test_sock_accept_on_a_non_listening_socket_raises(loop):
    sock = socket.socket()
    sock.setblocking(False)
    try:
        with pytest.raises(OSError):
            run(loop, loop.sock_accept(sock))
    finally:
        sock.close()


def test_sock_connect_resolves_a_host_name(loop, listener):
    port = listener.getsockname()[1]

    async def main():
        client = socket.socket(socket.AF_INET)
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("localhost", port))
            return client.getpeername()
        finally:
            client.close()

    assert run(loop, main()) == ("127.0.0.1", port)


def test_sock_connect_refused_raises_connection_refused(loop):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()  # nobody listens there now

    async def main():
        client = socket.socket()
        client.setblocking(False)
        try:
            await loop.sock_connect(client, address)
        finally:
            client.close()

    with pytest.raises(ConnectionRefusedError):
        run(loop, main())


def test_sock_connect_unix(loop):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        server.setblocking(False)
        client = socket.socket(socket.AF_UNIX)
        client.setblocking(False)
        try:
            async def main():
                await loop.sock_connect(client, path)
                conn, _ = await loop.sock_accept(server)
                conn.close()

            run(loop, main())
        finally:
            client.close()
            server.close()


def test_sock_connect_bad_address_raises(loop):
    client = socket.socket(socket.AF_UNIX)
    client.setblocking(False)
    try:
        with pytest.raises(TypeError):
            run(loop, loop.sock_connect(client, 12))
    finally:
        client.close()


# ---- checks every sock_* method makes -------------------------------------

OPS = {
    "sock_recv": lambda loop, s: loop.sock_recv(s, 10),
    "sock_recv_into": lambda loop, s: loop.sock_recv_into(s, bytearray(10)),
    "sock_recvfrom": lambda loop, s: loop.sock_recvfrom(s, 10),
    "sock_recvfrom_into": lambda loop, s: loop.sock_recvfrom_into(
        s, bytearray(10)),
    "sock_sendall": lambda loop, s: loop.sock_sendall(s, b"x"),
    "sock_sendto": lambda loop, s: loop.sock_sendto(
        s, b"x", ("127.0.0.1", 9)),
    "sock_connect": lambda loop, s: loop.sock_connect(s, ("127.0.0.1", 9)),
    "sock_accept": lambda loop, s: loop.sock_accept(s),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_debug_mode_refuses_a_blocking_socket(loop, op):
    loop.set_debug(True)
    sock = socket.socket()
    try:
        with pytest.raises(ValueError, match="the socket must be "
                                             "non-blocking"):
            run(loop, OPS[op](loop, sock))
    finally:
        sock.close()


@pytest.mark.parametrize("op", sorted(OPS))
def test_ssl_socket_is_refused(loop, op):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sock = ctx.wrap_socket(socket.socket(), server_hostname="x",
                           do_handshake_on_connect=False)
    try:
        with pytest.raises(TypeError, match="Socket cannot be of type "
                                            "SSLSocket"):
            run(loop, OPS[op](loop, sock))
    finally:
        sock.close()


# ---- sendfile ---------------------------------------------------------------

DATA = os.urandom(1024 * 1024) + b"end"


@pytest.fixture
def datafile(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as f:
        yield f


async def read_all(loop, sock, n):
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_sock_sendfile_whole_file(loop, pair, datafile):
    a, b = pair

    async def main():
        r = asyncio.ensure_future(read_all(loop, b, len(DATA)))
        n = await loop.sock_sendfile(a, datafile)
        return n, await r

    assert run(loop, main()) == (len(DATA), DATA)
    assert datafile.tell() == len(DATA)


def test_sock_sendfile_offset_and_count(loop, pair, datafile):
    a, b = pair

    async def main():
        r = asyncio.ensure_future(read_all(loop, b, 3000))
        n = await loop.sock_sendfile(a, datafile, 1000, 3000)
        return n, await r

    assert run(loop, main()) == (3000, DATA[1000:4000])
    assert datafile.tell() == 4000


def test_sock_sendfile_empty_file_sends_nothing(loop, pair, tmp_path):
    a, _ = pair
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert run(loop, loop.sock_sendfile(a, f)) == 0
        assert f.tell() == 0


def test_sock_sendfile_offset_past_the_end_sends_nothing(loop, pair,
                                                          datafile):
    a, _ = pair
    assert run(loop, loop.sock_sendfile(a, datafile, len(DATA) + 10)) == 0


def test_sock_sendfile_falls_back_for_a_non_regular_file(loop, pair):
    a, b = pair
    f = io.BytesIO(b"from memory")

    async def main():
        r = asyncio.ensure_future(read_all(loop, b, 11))
        n = await loop.sock_sendfile(a, f)
        return n, await r

    assert run(loop, main()) == (11, b"from memory")
    assert f.tell() == 11


def test_sock_sendfile_without_fallback_raises_not_available(loop, pair):
    a, _ = pair
    with pytest.raises(asyncio.SendfileNotAvailableError):
        run(loop, loop.sock_sendfile(a, io.BytesIO(b"x"), fallback=False))


def test_sock_sendfile_text_file_raises_value_error(loop, pair, tmp_path):
    a, _ = pair
    path = tmp_path / "t.txt"
    path.write_text("text")
    with open(path) as f:
        with pytest.raises(ValueError, match="binary mode"):
            run(loop, loop.sock_sendfile(a, f))


def test_sock_sendfile_datagram_socket_raises_value_error(loop, udp_pair,
                                                          datafile):
    a, _ = udp_pair
    with pytest.raises(ValueError, match="SOCK_STREAM"):
        run(loop, loop.sock_sendfile(a, datafile))


def test_sock_sendfile_bad_count_raises(loop, pair, datafile):
    a, _ = pair
    with pytest.raises(ValueError, match="count must be a positive"):
        run(loop, loop.sock_sendfile(a, datafile, 0, 0))
    with pytest.raises(TypeError, match="offset must be a non-negative"):
        run(loop, loop.sock_sendfile(a, datafile, "0"))


def test_sock_sendfile_peer_closing_midway_raises(loop, pair, datafile):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendfile(a, datafile))
        await tick()
        assert not task.done()
        b.close()
        await task

    with pytest.raises(ConnectionError):
        run(loop, main())
    assert 0 < datafile.tell() < len(DATA)


def test_sock_sendfile_cancelled_stops_watching_the_fd(loop, pair, datafile):
    a, _ = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendfile(a, datafile))
        await tick()
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await tick()
        assert loop.remove_writer(a.fileno()) is False

    run(loop, main())


class Collect(asyncio.Protocol):
    def __init__(self, n):
        self.data = bytearray()
        self.n = n
        self.done = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.n and not self.done.done():
            self.done.set_result(bytes(self.data))


def test_loop_sendfile_over_a_tcp_transport(loop, datafile):
    async def main():
        proto = Collect(len(DATA) + 8)
        server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(
            asyncio.Protocol, *server.sockets[0].getsockname())
        transport.write(b"head")
        n = await loop.sendfile(transport, datafile)
        transport.write(b"tail")
        got = await proto.done
        transport.close()
        server.close()
        await server.wait_closed()
        return n, got

    n, got = run(loop, main())
    assert n == len(DATA)
    assert got == b"head" + DATA + b"tail"
    assert datafile.tell() == len(DATA)


def test_loop_sendfile_with_offset_and_count(loop, datafile):
    async def main():
        proto = Collect(100)
        server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(
            asyncio.Protocol, *server.sockets[0].getsockname())
        n = await loop.sendfile(transport, datafile, 10, 100)
        got = await proto.done
        transport.close()
        server.close()
        await server.wait_closed()
        return n, got

    assert run(loop, main()) == (100, DATA[10:110])
    assert datafile.tell() == 110


def test_loop_sendfile_refuses_writes_while_sending(loop, datafile):
    class Paused(Collect):
        def connection_made(self, transport):
            self.transport = transport
            transport.pause_reading()  # the sender cannot finish

    async def main():
        proto = Paused(len(DATA))
        server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(
            asyncio.Protocol, *server.sockets[0].getsockname())
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        task = asyncio.ensure_future(loop.sendfile(transport, datafile))
        await tick()
        assert not task.done()
        with pytest.raises(RuntimeError, match="sendfile is in progress"):
            transport.write(b"x")
        proto.transport.resume_reading()
        n = await task
        await proto.done
        transport.close()
        server.close()
        await server.wait_closed()
        return n

    assert run(loop, main()) == len(DATA)


def test_loop_sendfile_uses_the_native_path(loop, datafile):
    calls = []
    native = loop._sock_sendfile_native

    async def spy(*args):
        calls.append(args[2:])
        return await native(*args)

    loop._sock_sendfile_native = spy

    async def main():
        proto = Collect(len(DATA))
        server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(
            asyncio.Protocol, *server.sockets[0].getsockname())
        n = await loop.sendfile(transport, datafile)
        await proto.done
        transport.close()
        server.close()
        await server.wait_closed()
        return n

    assert run(loop, main()) == len(DATA)
    assert calls == [(0, None)]
