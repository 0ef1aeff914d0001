"""asyncio's selector socket transports on the loop (streams, protocols).

On 3.15+ they keep the context they were made in and pass it to the loop's
private _add_reader/_add_writer (`context=`); a loop whose private methods
refuse the keyword cannot read from any TCP transport.
"""

import asyncio
import contextvars
import socket
import sys

import pytest

var = contextvars.ContextVar("var", default="unset")


@pytest.mark.timeout(20)
def test_stream_server_and_client_echo(loop):
    async def main():
        async def handle(reader, writer):
            while data := await reader.read(65536):
                writer.write(data.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = []
        # The big message fills the socket buffers: the writes go through
        # the transports' writer callbacks too.
        for message in (b"one", b"two", b"x" * 2_000_000):
            writer.write(message)
            await writer.drain()
            replies.append(await reader.readexactly(len(message)))
        writer.write_eof()
        eof = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return replies, eof

    replies, eof = loop.run_until_complete(asyncio.wait_for(main(), 15))
    assert replies == [b"ONE", b"TWO", b"X" * 2_000_000]
    assert eof == b""


@pytest.mark.timeout(20)
def test_protocol_callbacks_context_of_an_accepted_connection(loop):
    # 3.15+: one context per connection (a copy of the server's), shared by
    # all its protocol callbacks; before: each callback registration copies
    # the context anew, so data_received does not see connection_made's set.
    seen = loop.create_future()

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            var.set("set in connection_made")

        def data_received(self, data):
            if not seen.done():
                seen.set_result(var.get())
            self.transport.close()

    async def main():
        var.set("set before create_server")
        server = await loop.create_server(Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        result = await seen
        await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return result

    result = loop.run_until_complete(asyncio.wait_for(main(), 15))
    if sys.version_info >= (3, 15):
        assert result == "set in connection_made"
    else:
        assert result == "set before create_server"


@pytest.mark.skipif(
    sys.version_info < (3, 15),
    reason="asyncio's private _add_reader/_add_writer take context= from 3.15",
)
@pytest.mark.timeout(10)
def test_private_add_reader_and_writer_run_callback_in_given_context(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        seen = []

        def on_ready(kind):
            seen.append((kind, var.get()))
            if kind == "read":
                loop._remove_reader(a.fileno())
            else:
                loop._remove_writer(a.fileno())
            if len(seen) == 2:
                loop.stop()

        b.send(b"x")
        loop._add_reader(a.fileno(), on_ready, "read", context=ctx)
        loop._add_writer(a.fileno(), on_ready, "write", context=ctx)
        loop.run_forever()
        assert sorted(seen) == [("read", "in ctx"), ("write", "in ctx")]
        with pytest.raises(TypeError):
            loop._add_reader(a.fileno(), on_ready, "read", bogus=1)
    finally:
        a.close()
        b.close()
