"""Tornado on fastloop: its IOLoop wraps the asyncio loop (add_reader and
add_writer for its IOStreams, call_at for its timeouts), and its futures are
asyncio futures (`tornado.concurrent.is_future` is `isinstance(x,
asyncio.Future)`, so a fastloop.Future/Task must be one)."""

import asyncio
import ssl
from datetime import timedelta

import pytest

from eco import (
    bound_socket,
    check_loop_kind,
    check_task_kind,
    kind_of_loop,
    kind_of_task,
    need,
)

tornado = need("tornado")

from tornado import gen, httpclient, locks, queues, web, websocket  # noqa: E402
from tornado.concurrent import is_future  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.ioloop import IOLoop  # noqa: E402
from tornado.platform.asyncio import AsyncIOLoop  # noqa: E402
from tornado.util import TimeoutError as TornadoTimeoutError  # noqa: E402

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def io_loop(loop):
    """A Tornado IOLoop over the parametrized asyncio loop."""
    io_loop = AsyncIOLoop(asyncio_loop=loop, make_current=False)
    try:
        yield io_loop
    finally:
        io_loop.close(all_fds=True)


class KindHandler(web.RequestHandler):
    def get(self):
        self.write({"loop": kind_of_loop(), "task": kind_of_task()})


class EchoHandler(web.RequestHandler):
    async def post(self):
        await asyncio.sleep(0)
        await gen.sleep(0.001)
        self.set_header("X-Length", str(len(self.request.body)))
        self.write(self.request.body[::-1])


class StreamHandler(web.RequestHandler):
    async def get(self):
        for i in range(5):
            self.write(f"chunk{i};")
            await self.flush()


class FailHandler(web.RequestHandler):
    def get(self):
        raise web.HTTPError(418)


class EchoWebSocket(websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message("echo:" + message)


def make_app():
    return web.Application(
        [
            (r"/kind", KindHandler),
            (r"/echo", EchoHandler),
            (r"/stream", StreamHandler),
            (r"/fail", FailHandler),
            (r"/ws", EchoWebSocket),
        ]
    )


async def start_server(ssl_options=None):
    sock = bound_socket()
    sock.listen(128)
    sock.setblocking(False)
    server = HTTPServer(make_app(), ssl_options=ssl_options)
    server.add_sockets([sock])
    scheme = "https" if ssl_options else "http"
    return server, f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"


def test_http_server_and_client_under_run_sync(io_loop, loop_factory):
    async def main():
        check_loop_kind(loop_factory.name)
        server, base = await start_server()
        client = httpclient.AsyncHTTPClient()
        try:
            kind = await client.fetch(base + "/kind")
            echo = await client.fetch(base + "/echo", method="POST", body=b"hello tornado")
            chunks = []
            stream = await client.fetch(
                base + "/stream", streaming_callback=chunks.append
            )
            with pytest.raises(httpclient.HTTPClientError) as failed:
                await client.fetch(base + "/fail")
            many = await gen.multi(
                [client.fetch(f"{base}/echo", method="POST", body=str(i)) for i in range(10)]
            )
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()
        return {
            "kind": tornado.escape.json_decode(kind.body),
            "echo": (echo.code, echo.body, echo.headers["X-Length"]),
            "stream": (stream.code, b"".join(chunks)),
            "fail": failed.value.code,
            "many": [r.body for r in many],
        }

    result = io_loop.run_sync(main, timeout=20)
    assert result == {
        "kind": {"loop": loop_factory.name, "task": loop_factory.name},
        "echo": (200, b"odanrot olleh", "13"),
        "stream": (200, b"chunk0;chunk1;chunk2;chunk3;chunk4;"),
        "fail": 418,
        "many": [str(i).encode() for i in range(10)],
    }


def test_https_server_and_client(io_loop, loop_factory, tls):
    # Tornado does its own TLS over add_reader/add_writer (SSLIOStream), not
    # asyncio's SSL transport.
    server_ctx, client_ctx = tls

    async def main():
        server, base = await start_server(ssl_options=server_ctx)
        client = httpclient.AsyncHTTPClient()
        try:
            kind = await client.fetch(base + "/kind", ssl_options=client_ctx)
            big = await client.fetch(
                base + "/echo", method="POST", body=b"z" * 300_000, ssl_options=client_ctx
            )
            with pytest.raises(ssl.SSLError):
                await client.fetch(base + "/kind")  # the default CAs: untrusted
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()
        return tornado.escape.json_decode(kind.body), len(big.body)

    assert io_loop.run_sync(main, timeout=20) == (
        {"loop": loop_factory.name, "task": loop_factory.name},
        300_000,
    )


def test_websocket_echo(io_loop, loop_factory):
    async def main():
        server, base = await start_server()
        try:
            conn = await websocket.websocket_connect(base.replace("http", "ws") + "/ws")
            replies = []
            for word in ("one", "two", "three"):
                await conn.write_message(word)
                replies.append(await conn.read_message())
            conn.close()
            # The server side sees the close; the client's read ends with None.
            assert await conn.read_message() is None
        finally:
            server.stop()
            await server.close_all_connections()
        return replies

    assert io_loop.run_sync(main, timeout=20) == ["echo:one", "echo:two", "echo:three"]


def test_add_future_with_asyncio_ensure_future(io_loop, loop_factory):
    seen = []

    async def compute(x):
        await asyncio.sleep(0)
        check_task_kind(loop_factory.name)
        return x * 2

    async def fail():
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def main():
        done = locks.Event()
        current = IOLoop.current()
        assert current is io_loop
        ok = asyncio.ensure_future(compute(21))
        bad = asyncio.ensure_future(fail())
        assert is_future(ok) and is_future(bad)
        check_task_kind(loop_factory.name, ok)

        def callback(future):
            # Called by the IOLoop, on the loop's thread, with the future.
            seen.append((future is ok or future is bad, future.exception() or future.result()))
            if len(seen) == 2:
                done.set()

        current.add_future(ok, callback)
        current.add_future(bad, callback)
        await done.wait()

    io_loop.run_sync(main, timeout=20)
    assert seen[0] == (True, 42)
    assert seen[1][0] is True
    assert isinstance(seen[1][1], ValueError) and str(seen[1][1]) == "boom"


def test_gen_multi_mixes_asyncio_futures_native_and_decorated_coroutines(
    io_loop, loop_factory
):
    @gen.coroutine
    def decorated(x):
        yield gen.sleep(0.001)
        return x + 100

    async def native(x):
        await asyncio.sleep(0.001)
        return x + 200

    async def main():
        loop = asyncio.get_running_loop()
        plain = loop.create_future()
        loop.call_later(0.001, plain.set_result, "plain")
        as_list = await gen.multi(
            [decorated(1), native(2), plain, asyncio.ensure_future(native(3))]
        )
        as_dict = await gen.multi({"a": decorated(4), "b": native(5)})
        with pytest.raises(KeyError):
            await gen.multi([native(6), asyncio.ensure_future(_raise(KeyError("k")))])
        # A Future from the loop's create_future is what tornado expects.
        assert is_future(loop.create_future())
        return as_list, as_dict

    async def _raise(exc):
        raise exc

    assert io_loop.run_sync(main, timeout=20) == (
        [101, 202, "plain", 203],
        {"a": 104, "b": 205},
    )


def test_run_sync_timeout_and_return_value(io_loop):
    async def forever():
        await asyncio.Event().wait()

    async def value():
        await gen.sleep(0)
        return "value"

    with pytest.raises(TornadoTimeoutError):
        io_loop.run_sync(forever, timeout=0.05)
    # The IOLoop (and its asyncio loop) stays usable after the timeout.
    assert io_loop.run_sync(value, timeout=20) == "value"
    # A plain function returning an asyncio future is allowed too.
    assert io_loop.run_sync(lambda: asyncio.ensure_future(value())) == "value"


def test_queue_and_timeouts_between_coroutines(io_loop):
    async def main():
        q = queues.Queue(maxsize=2)
        got = []

        async def consumer():
            async for item in q:
                try:
                    got.append(item)
                finally:
                    q.task_done()

        IOLoop.current().spawn_callback(consumer)
        for i in range(6):
            await q.put(i)
        await q.join(timeout=timedelta(seconds=10))
        # add_timeout and call_later go through the asyncio loop's call_at.
        fired = locks.Event()
        IOLoop.current().call_later(0.001, fired.set)
        handle = IOLoop.current().add_timeout(
            IOLoop.current().time() + 60, lambda: got.append("never")
        )
        IOLoop.current().remove_timeout(handle)
        await fired.wait(timeout=timedelta(seconds=10))
        return got

    assert io_loop.run_sync(main, timeout=20) == [0, 1, 2, 3, 4, 5]


def test_ioloop_current_inside_a_running_loop_wraps_it(arun, loop, loop_factory):
    # Code that only calls IOLoop.current() inside asyncio.run()-style code
    # gets an IOLoop over the running loop (AsyncIOMainLoop).
    async def main():
        current = IOLoop.current()
        assert current.asyncio_loop is asyncio.get_running_loop()
        result = await current.run_in_executor(None, sum, [1, 2, 3])
        fut = asyncio.get_running_loop().create_future()
        current.add_callback(fut.set_result, "cb")
        return result, await fut

    assert arun(main) == (6, "cb")
