"""Servers and connections: asyncio's selector transports on the loop's fd
watching (loop._add_reader/_add_writer, call_soon).

https://docs.python.org/3/library/asyncio-eventloop.html#creating-network-servers
"""

import asyncio
import contextvars
import sys

import pytest

pytestmark = pytest.mark.timeout(10)


async def _echo_once(loop, protocol_factory, var):
    """Serve one connection with protocol_factory; var differs per phase."""
    var.set("at create_server")
    server = await loop.create_server(protocol_factory, "127.0.0.1", 0)
    var.set("at open_connection")
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await writer.drain()
    assert await reader.read() == b"pong"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


def test_a_server_protocol_sees_every_callback_in_order(loop):
    seen = []

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append("made")
            self.transport = transport

        def data_received(self, data):
            seen.append(data)
            self.transport.write(b"pong")
            self.transport.close()

        def connection_lost(self, exc):
            seen.append(("lost", exc))

    var = contextvars.ContextVar("var")
    loop.run_until_complete(_echo_once(loop, Proto, var))
    assert seen == ["made", b"ping", ("lost", None)]


@pytest.mark.skipif(
    sys.version_info < (3, 15),
    reason="3.15 runs a server's protocol callbacks in the context captured "
    "when the server was created (gh-140947)")
def test_a_server_protocol_runs_in_the_context_of_create_server(loop):
    # The connection's transport passes that context to every callback it
    # schedules, its reads and writes included (loop._add_reader(...,
    # context=...)).
    var = contextvars.ContextVar("var", default="none")
    seen = []

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append(("made", var.get()))
            self.transport = transport

        def data_received(self, data):
            seen.append(("data", var.get()))
            self.transport.write(b"pong")
            self.transport.close()

        def connection_lost(self, exc):
            seen.append(("lost", var.get()))

    loop.run_until_complete(_echo_once(loop, Proto, var))
    assert seen == [("made", "at create_server"), ("data", "at create_server"),
                    ("lost", "at create_server")]
