"""Servers and connections: create_server, create_unix_server,
create_connection, connect_accepted_socket and the accept loop behind them.

Each test runs on fastloop (its C accept loop and transports) and on stock
asyncio, and asserts what asyncio does.  The resource-exhaustion and leak
tests run in child processes.
"""

import asyncio
import socket
import sys

import pytest

from nethelpers import Echo, Recorder, errors_of, run_child, unix_path

pytestmark = pytest.mark.timeout(120)

PY = sys.version_info[:2]


def run(loop, coro):
    return loop.run_until_complete(coro)


def test_many_clients_at_once(loop):
    async def client(host, port, i):
        r, w = await asyncio.open_connection(host, port)
        msg = f"client {i}".encode()
        w.write(msg)
        data = await r.readexactly(len(msg))
        w.close()
        await w.wait_closed()
        return data

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=200)
        host, port = server.sockets[0].getsockname()
        results = await asyncio.gather(*(client(host, port, i)
                                         for i in range(150)))
        server.close()
        await server.wait_closed()
        return results

    results = run(loop, main())
    assert results == [f"client {i}".encode() for i in range(150)]


def test_server_api(loop):
    async def main():
        out = {}
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          start_serving=False)
        out["serving_before"] = server.is_serving()
        await server.start_serving()
        out["serving"] = server.is_serving()
        out["loop"] = server.get_loop() is loop
        out["sockets"] = [type(s).__name__ for s in server.sockets]
        async with server:
            host, port = server.sockets[0].getsockname()
            r, w = await asyncio.open_connection(host, port)
            w.write(b"hi")
            out["echo"] = await r.readexactly(2)
            w.close()
            await w.wait_closed()
        out["serving_after"] = server.is_serving()
        out["sockets_after"] = server.sockets
        await server.wait_closed()
        return out

    assert run(loop, main()) == {
        "serving_before": False, "serving": True, "loop": True,
        "sockets": ["TransportSocket"], "echo": b"hi",
        "serving_after": False, "sockets_after": (),
    }


def test_wait_closed_waits_for_the_connections(loop):
    if PY < (3, 12, 1):
        pytest.skip("3.12.1 made wait_closed() wait for the connections "
                    "(before, it returned at once)")

    async def main():
        conns = []

        class P(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                conns.append(transport)

        server = await loop.create_server(P, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(
            *server.sockets[0].getsockname())
        while not conns:
            await asyncio.sleep(0.001)
        server.close()
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.05)
        early = waiter.done()
        conns[0].close()
        await asyncio.wait_for(waiter, 5)
        w.close()
        return early

    assert run(loop, main()) is False


def test_serve_forever_cancelled_closes_the_server(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.01)
        r, w = await asyncio.open_connection(
            *server.sockets[0].getsockname())
        w.write(b"x")
        got = await r.readexactly(1)
        # From 3.12.1 serve_forever's cancellation waits for the
        # connections (3.13 closes them first): end this one.
        w.close()
        await w.wait_closed()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        return got, server.is_serving()

    assert run(loop, main()) == (b"x", False)


def test_unix_server(loop):
    path = unix_path()

    async def main():
        server = await loop.create_unix_server(Echo, path)
        r, w = await asyncio.open_unix_connection(path)
        w.write(b"unix")
        got = await r.readexactly(4)
        peer = w.get_extra_info("peername")
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        return got, peer

    assert run(loop, main()) == (b"unix", path)


def test_accepted_transport_extra_info(loop):
    async def main():
        made = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                made.set_result(transport)

        server = await loop.create_server(P, "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname())
        tr = await made
        out = (tr.get_extra_info("peername") == client.getsockname(),
               tr.get_extra_info("sockname") == client.getpeername(),
               tr.get_extra_info("socket").gettimeout(),
               tr.get_extra_info("socket").getsockopt(
                   socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
        tr.close()
        client.close()
        server.close()
        await server.wait_closed()
        return out

    assert run(loop, main()) == (True, True, 0.0, True)


def test_protocol_factory_errors_drop_the_connection(loop):
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("no protocol")
        return Echo()

    async def main():
        errors = errors_of(loop)
        server = await loop.create_server(factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        r, w = await asyncio.open_connection(*addr)
        first = await r.read()  # closed by the server
        w.close()
        r, w = await asyncio.open_connection(*addr)
        w.write(b"ok")
        second = await r.readexactly(2)
        w.close()
        server.close()
        await server.wait_closed()
        return first, second, errors

    first, second, errors = run(loop, main())
    assert (first, second) == (b"", b"ok")
    assert errors == []  # reported in debug mode only


def test_protocol_factory_errors_in_debug_mode(loop):
    def factory():
        raise ValueError("no protocol")

    async def main():
        loop.set_debug(True)
        errors = errors_of(loop)
        server = await loop.create_server(factory, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(
            *server.sockets[0].getsockname())
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.01)
        w.close()
        server.close()
        await server.wait_closed()
        return errors

    errors = run(loop, main())
    errors[1:] = []  # asyncio may add more for the socket it leaves open
    assert [e["message"] for e in errors] == [
        "Error on transport creation for incoming connection"]
    assert isinstance(errors[0]["exception"], ValueError)


def test_close_clients(loop):
    if PY < (3, 13):
        pytest.skip("Server.close_clients()/abort_clients() are new in 3.13")

    async def main():
        protos = []

        def factory():
            protos.append(Recorder())
            return protos[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        clients = [await asyncio.open_connection(*addr) for _ in range(3)]
        while len(protos) < 3 or not all(p.transport for p in protos):
            await asyncio.sleep(0.001)
        server.close()
        server.close_clients()
        await asyncio.wait_for(server.wait_closed(), 5)
        for r, w in clients:
            assert await r.read() == b""
            w.close()
        return [p.lost_exc for p in protos]

    assert run(loop, main()) == [None, None, None]


EMFILE_PROGRAM = """
import resource, errno
errors = []
loop.set_exception_handler(lambda l, c: errors.append(c))

class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        self.t.write(d)

async def main():
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    addr = server.sockets[0].getsockname()
    first = await asyncio.open_connection(*addr)
    first[1].write(b"a")
    assert await first[0].readexactly(1) == b"a"
    # No fd left for the server's next accept(): the connection waits in
    # the backlog while the loop reports and backs off.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = []
    try:
        while True:
            spare.append(socket.socket())
    except OSError as exc:
        assert exc.errno == errno.EMFILE
    spare.pop().close()   # room for the client's socket only
    client = socket.socket()
    client.setblocking(False)
    try:
        client.connect(addr)
    except BlockingIOError:
        pass
    for _ in range(200):
        if errors:
            break
        await asyncio.sleep(0.01)
    # The established connection is served meanwhile.
    first[1].write(b"b")
    assert await first[0].readexactly(1) == b"b"
    for s in spare:
        s.close()
    # After ACCEPT_RETRY_DELAY the server accepts again.
    r, w = await asyncio.open_connection(sock=client)
    w.write(b"late")
    got = await asyncio.wait_for(r.readexactly(4), 10)
    w.close()
    first[1].close()
    server.close()
    await server.wait_closed()
    print(got.decode(), [c["message"] for c in errors][:1],
          errors[0]["exception"].errno == errno.EMFILE,
          type(errors[0]["socket"]).__name__)

import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
loop.run_until_complete(main())
loop.close()
"""


def test_emfile_on_accept_backs_off_and_recovers(loop_factory, child_env):
    out = run_child(loop_factory, child_env, EMFILE_PROGRAM)
    assert out.split("\n")[0] == (
        "late ['socket.accept() out of system resource'] True "
        "TransportSocket")


LEAK_PROGRAM = """
import resource, tracemalloc

class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        self.t.write(d)

def open_fds():
    return len(os.listdir("/proc/self/fd"))

async def cycles(addr, n):
    for _ in range(n):
        tr, pr = await loop.create_connection(Proto, *addr)
        tr.write(b"ping")
        await pr.got
        tr.close()
        await pr.lost

class Proto(asyncio.Protocol):
    def __init__(self):
        self.got = loop.create_future()
        self.lost = loop.create_future()
    def data_received(self, d):
        if not self.got.done():
            self.got.set_result(d)
    def connection_lost(self, exc):
        self.lost.set_result(exc)

async def main():
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    addr = server.sockets[0].getsockname()
    await cycles(addr, 2000)            # warm up: caches, freelists
    await asyncio.sleep(0.05)
    gc.collect()
    fds0 = open_fds()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    await cycles(addr, 10000)
    await asyncio.sleep(0.05)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    fds1 = open_fds()
    server.close()
    await server.wait_closed()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    print(fds1 - fds0, grown, len(loop._transports), rss)

loop.run_until_complete(main())
loop.close()
"""


def test_connect_echo_close_cycles_do_not_leak(loop_factory, child_env):
    out = run_child(loop_factory, child_env, LEAK_PROGRAM, timeout=300)
    fds, grown, transports, rss_kib = (int(x) for x in out.split())
    assert fds == 0
    assert transports == 0
    assert rss_kib < 16 * 1024, rss_kib  # peak RSS: no growth per cycle
    # Python-level memory: a few KiB of noise at most, nothing per cycle.
    assert grown < 200_000, grown


def test_create_connection_to_a_closed_port_fails(loop):
    async def main():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        addr = s.getsockname()
        s.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, *addr)

    run(loop, main())


def test_create_connection_with_a_sock_and_a_waiter_order(loop):
    order = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            order.append("connection_made")

    async def main():
        a, b = socket.socketpair()
        coro = loop.create_connection(P, sock=a)
        tr, pr = await coro
        order.append("returned")
        tr.close()
        b.close()

    run(loop, main())
    assert order == ["connection_made", "returned"]
