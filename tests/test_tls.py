"""TLS over the stream transport: ssl= on servers and connections, and
start_tls, with a certificate the tests make (openssl req, no network).

On fastloop this is asyncio's SSLProtocol over the C transport; each test
runs on fastloop and stock asyncio and asserts what asyncio does.
"""

import asyncio
import atexit
import functools
import os
import shutil
import ssl
import tempfile

import pytest

from nethelpers import Echo, Recorder, make_cert

pytestmark = pytest.mark.timeout(60)


@functools.cache
def _cert_files():
    directory = tempfile.mkdtemp(prefix="fastloop-tls-")
    atexit.register(shutil.rmtree, directory, True)
    return make_cert(directory)


@pytest.fixture
def cert():
    # Made once per session, but a function-scoped fixture: every
    # function-scoped fixture built on a module-scoped one adds a finalizer
    # to it, which --refleak would count as a leak of each repeated test.
    return _cert_files()


@pytest.fixture
def server_ctx(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return ctx


@pytest.fixture
def client_ctx(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert[0])
    return ctx


def run(loop, coro):
    return loop.run_until_complete(coro)


def test_tls_echo_and_extra_info(loop, server_ctx, client_ctx):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(
            lambda: Recorder(), host, port, ssl=client_ctx,
            server_hostname="localhost")
        out = {
            "ssl_object": isinstance(tr.get_extra_info("ssl_object"),
                                     ssl.SSLObject),
            "sslcontext": tr.get_extra_info("sslcontext") is client_ctx,
            "cipher": tr.get_extra_info("cipher") is not None,
            "peercert": "subject" in tr.get_extra_info("peercert"),
            "socket": tr.get_extra_info("socket") is not None,
            "peername": tr.get_extra_info("peername") == (host, port),
        }
        payload = os.urandom(1 << 20)
        tr.write(payload)
        await pr.received(len(payload))
        out["echo"] = bytes(pr.data) == payload
        tr.close()
        out["lost"] = await pr.lost_fut
        server.close()
        await server.wait_closed()
        return out

    assert run(loop, main()) == {
        "ssl_object": True, "sslcontext": True, "cipher": True,
        "peercert": True, "socket": True, "peername": True, "echo": True,
        "lost": None,
    }


def test_tls_streams(loop, server_ctx, client_ctx):
    async def handle(reader, writer):
        data = await reader.readline()
        writer.write(data.upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                            ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        r, w = await asyncio.open_connection(host, port, ssl=client_ctx,
                                             server_hostname="localhost")
        w.write(b"hello tls\n")
        line = await r.readline()
        rest = await r.read()
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        return line, rest

    assert run(loop, main()) == (b"HELLO TLS\n", b"")


def test_start_tls_on_both_sides(loop, server_ctx, client_ctx):
    async def main():
        upgraded = loop.create_future()

        class Server(Recorder):
            def data_received(self, data):
                super().data_received(data)
                if data == b"STARTTLS\n":
                    self.transport.write(b"OK\n")
                    self.transport.pause_reading()
                    asyncio.ensure_future(self.upgrade())

            async def upgrade(self):
                tls = await loop.start_tls(self.transport, self, server_ctx,
                                           server_side=True)
                self.transport = tls
                tls.resume_reading()
                upgraded.set_result(tls)

        class Plain(Server):
            def data_received(self, data):
                if self.transport.get_extra_info("ssl_object") is None:
                    return super().data_received(data)
                self.transport.write(b"secure:" + data)

        server = await loop.create_server(Plain, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(Recorder, host, port)
        tr.write(b"STARTTLS\n")
        await pr.received(3)
        tls = await loop.start_tls(tr, pr, client_ctx,
                                   server_hostname="localhost")
        await upgraded
        pr.data.clear()
        tls.write(b"ping")
        await pr.received(11)
        got = bytes(pr.data)
        version = tls.get_extra_info("ssl_object").version()
        tls.close()
        await pr.lost_fut
        server.close()
        await server.wait_closed()
        return got, version.startswith("TLS")

    assert run(loop, main()) == (b"secure:ping", True)


def test_handshake_timeout(loop, client_ctx):
    async def main():
        # A TCP server that never answers the handshake.
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()
        with pytest.raises(ConnectionAbortedError) as info:
            await loop.create_connection(
                asyncio.Protocol, host, port, ssl=client_ctx,
                server_hostname="localhost", ssl_handshake_timeout=0.2)
        server.close()
        return str(info.value)

    assert "SSL handshake is taking longer than 0.2 seconds" in \
        run(loop, main())


def test_wrong_hostname_fails_verification(loop, server_ctx, client_ctx):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await loop.create_connection(
                asyncio.Protocol, host, port, ssl=client_ctx,
                server_hostname="wrong.example")
        server.close()
        await server.wait_closed()
        return info.value.verify_message

    assert "mismatch" in run(loop, main())


def test_untrusted_certificate_fails(loop, server_ctx):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        ctx = ssl.create_default_context()  # does not trust the test cert
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(asyncio.Protocol, host, port,
                                         ssl=ctx,
                                         server_hostname="localhost")
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_close_sends_close_notify(loop, server_ctx, client_ctx):
    async def main():
        made = loop.create_future()

        class S(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                made.set_result(self)

        server = await loop.create_server(S, "127.0.0.1", 0, ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(
            Recorder, host, port, ssl=client_ctx, server_hostname="localhost")
        sp = await made
        tr.write(b"bye")
        await sp.received(3)
        tr.close()
        server_exc = await sp.lost_fut
        client_exc = await pr.lost_fut
        server.close()
        await server.wait_closed()
        return server_exc, client_exc, sp.eof

    server_exc, client_exc, eof = run(loop, main())
    assert server_exc is None and client_exc is None
    assert eof  # the close_notify reached the server as an EOF


def test_abort_during_tls(loop, server_ctx, client_ctx):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(
            Recorder, host, port, ssl=client_ctx, server_hostname="localhost")
        tr.write(b"x" * 100_000)
        tr.abort()
        exc = await pr.lost_fut
        server.close()
        await server.wait_closed()
        return exc, tr.is_closing()

    assert run(loop, main()) == (None, True)


def test_tls_app_transport_api_and_flow_control(loop, server_ctx, client_ctx):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(1000)
            self.got = bytearray()
            self.transport = None

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]

    async def main():
        made = loop.create_future()

        class S(Recorder):
            def connection_made(self, transport):
                super().connection_made(transport)
                made.set_result(self)

        server = await loop.create_server(S, "127.0.0.1", 0, ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(
            Recorder, host, port, ssl=client_ctx, server_hostname="localhost")
        sp = await made
        out = {}
        with pytest.raises(TypeError):
            tr.write("text")
        tr.write(b"")
        tr.write(bytearray(b"ab"))
        tr.write(memoryview(b"cd"))
        tr.writelines([b"e", b"f"])
        await sp.received(6)
        out["data"] = bytes(sp.data)
        # The server stops reading: the client's writes pile up until it
        # is told to pause, then drain when the server reads again.
        sp.transport.pause_reading()
        tr.set_write_buffer_limits(high=64 * 1024)
        total = 6
        while "pause" not in pr.events:
            tr.write(b"p" * 65536)
            total += 65536
            await asyncio.sleep(0)
            assert total < 256 << 20
        sp.transport.resume_reading()
        await sp.received(total)
        while "resume" not in pr.events:
            await asyncio.sleep(0.001)
        out["flow"] = (pr.events.count("pause"), pr.events.count("resume"))
        # A BufferedProtocol behind TLS.
        buffered = Buffered()
        sp.transport.set_protocol(buffered)
        tr.write(b"to the buffered protocol" * 100)
        while len(buffered.got) < 2400:
            await asyncio.sleep(0.001)
        out["buffered"] = bytes(buffered.got) == b"to the buffered protocol" * 100
        tr.close()
        await pr.lost_fut
        server.close()
        await server.wait_closed()
        return out

    assert run(loop, main()) == {"data": b"abcdef", "flow": (1, 1),
                                 "buffered": True}


def test_tls_data_received_closes_and_raises(loop, server_ctx, client_ctx):
    async def main():
        errors = []
        loop.set_exception_handler(lambda l, c: errors.append(c))

        class Bad(Recorder):
            def data_received(self, data):
                super().data_received(data)
                self.transport.write(b"last words")
                self.transport.close()
                raise ValueError("after close")

        server = await loop.create_server(Bad, "127.0.0.1", 0, ssl=server_ctx)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(
            Recorder, host, port, ssl=client_ctx, server_hostname="localhost")
        tr.write(b"hello")
        exc = await asyncio.wait_for(pr.lost_fut, 10)
        server.close()
        await server.wait_closed()
        return errors, exc, bytes(pr.data)

    errors, exc, data = run(loop, main())
    assert [e["message"] for e in errors] == ["Fatal error on SSL protocol"]
    assert isinstance(errors[0]["exception"], ValueError)
    assert data in (b"", b"last words")
