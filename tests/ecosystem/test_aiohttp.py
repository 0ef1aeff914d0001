"""aiohttp on fastloop: a web.Application served from a socket bound to
127.0.0.1 (loop.create_server), and an aiohttp.ClientSession
(loop.create_connection, getaddrinfo) talking to it."""

import asyncio

import pytest

from eco import bound_socket, kind_of_loop, need

aiohttp = need("aiohttp")

from aiohttp import web  # noqa: E402

pytestmark = pytest.mark.timeout(30)


async def kind(request):
    # On 3.12+ aiohttp makes its handler tasks itself, with
    # asyncio.Task(coro, loop=loop, eager_start=True), on any loop: they are
    # asyncio's Tasks on fastloop too (before 3.12, and on 3.14+ where it
    # calls asyncio.create_task, they are the loop's).
    task = asyncio.current_task()
    return web.json_response(
        {
            "loop": kind_of_loop(),
            "task": isinstance(task, asyncio.Task)
            and task.get_loop() is asyncio.get_running_loop(),
        }
    )


async def echo(request):
    body = await request.read()
    return web.Response(
        body=body[::-1],
        headers={"X-Length": str(len(body)), "X-Type": request.content_type},
    )


async def stream(request):
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(5):
        await response.write(f"part{i};".encode())
        await asyncio.sleep(0)
    await response.write_eof()
    return response


async def big(request):
    return web.Response(body=b"0123456789" * 100_000)


async def ws_echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close()
            else:
                await ws.send_str("echo:" + msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


async def slow(request):
    # Answers only when the test lets it (aiohttp does not cancel a handler
    # whose client went away).
    await request.app[RELEASE].wait()
    return web.Response(text="late")


async def upload(request):
    # A chunked request body, read as it arrives.
    total, chunks = 0, 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        chunks += 1
    return web.json_response({"total": total, "chunked": request.headers.get("Transfer-Encoding")})


async def file(request):
    # FileResponse sends with loop.sendfile where the transport allows it.
    return web.FileResponse(request.app[FILE])


async def tls_info(request):
    ssl_object = request.transport.get_extra_info("ssl_object")
    return web.json_response({"secure": request.secure, "version": ssl_object.version()})


RELEASE = web.AppKey("release", asyncio.Event)
FILE = web.AppKey("file", str)


def make_app(path=None):
    app = web.Application()
    app[RELEASE] = asyncio.Event()
    app[FILE] = str(path)
    app.router.add_post("/upload", upload)
    app.router.add_get("/file", file)
    app.router.add_get("/tls", tls_info)
    app.router.add_get("/kind", kind)
    app.router.add_post("/echo", echo)
    app.router.add_get("/stream", stream)
    app.router.add_get("/big", big)
    app.router.add_get("/ws", ws_echo)
    app.router.add_get("/slow", slow)
    return app


class Server:
    def __init__(self, ssl_context=None, file=None):
        self.ssl_context = ssl_context
        self.file = file

    async def __aenter__(self):
        self.runner = web.AppRunner(make_app(self.file))
        await self.runner.setup()
        sock = bound_socket()
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self.runner, sock, ssl_context=self.ssl_context).start()
        return self

    async def __aexit__(self, *exc):
        self.runner.app[RELEASE].set()
        await self.runner.cleanup()


def test_get_post_and_concurrent_requests(arun, loop_factory):
    async def main():
        async with Server() as server, aiohttp.ClientSession(server.url) as session:
            async with session.get("/kind") as resp:
                kind = (resp.status, await resp.json())
            async with session.post(
                "/echo", data=b"hello aiohttp", headers={"Content-Type": "text/plain"}
            ) as resp:
                echoed = (
                    resp.status,
                    await resp.read(),
                    resp.headers["X-Length"],
                    resp.headers["X-Type"],
                )
            async with session.post("/echo", json={"a": 1}) as resp:
                as_json = await resp.read()

            async def one(i):
                async with session.post("/echo", data=str(i).encode()) as resp:
                    return await resp.read()

            many = await asyncio.gather(*(one(i) for i in range(20)))
            async with session.get("/missing") as resp:
                missing = resp.status
            return kind, echoed, as_json, many, missing

    kind, echoed, as_json, many, missing = arun(main)
    assert kind == (200, {"loop": loop_factory.name, "task": True})
    assert echoed == (200, b"ptthoia olleh", "13", "text/plain")
    assert as_json == b'{"a": 1}'[::-1]
    assert many == [str(i).encode()[::-1] for i in range(20)]
    assert missing == 404


def test_streaming_and_large_responses(arun):
    async def main():
        async with Server() as server, aiohttp.ClientSession(server.url) as session:
            async with session.get("/stream") as resp:
                chunks = [c async for c in resp.content.iter_any()]
                streamed = b"".join(chunks)
                encoding = resp.headers.get("Transfer-Encoding")
            async with session.get("/big") as resp:
                total = 0
                async for chunk in resp.content.iter_chunked(65536):
                    total += len(chunk)
            return streamed, encoding, total

    assert arun(main) == (b"part0;part1;part2;part3;part4;", "chunked", 1_000_000)


def test_websocket_echo(arun):
    async def main():
        async with Server() as server, aiohttp.ClientSession(server.url) as session:
            async with session.ws_connect("/ws") as ws:
                replies = []
                for word in ("one", "two"):
                    await ws.send_str(word)
                    replies.append((await ws.receive()).data)
                await ws.send_bytes(b"\x01\x02\x03")
                replies.append((await ws.receive()).data)
                await ws.send_str("close")
                closing = await ws.receive()
            return replies, closing.type, ws.closed

    assert arun(main) == (
        ["echo:one", "echo:two", b"\x03\x02\x01"],
        aiohttp.WSMsgType.CLOSE,
        True,
    )


def test_client_timeout_cancels_the_request(arun):
    async def main():
        async with Server() as server, aiohttp.ClientSession(server.url) as session:
            with pytest.raises(asyncio.TimeoutError):
                async with session.get(
                    "/slow", timeout=aiohttp.ClientTimeout(total=0.05)
                ):
                    pass
            # The session is still usable afterwards.
            async with session.post("/echo", data=b"ab") as resp:
                return await resp.read()

    assert arun(main) == b"ba"


def test_chunked_upload_and_file_response(arun, tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)

    async def body():
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]
            await asyncio.sleep(0)

    async def main():
        async with Server(file=path) as server, aiohttp.ClientSession(server.url) as session:
            async with session.post("/upload", data=body()) as resp:
                uploaded = await resp.json()
            async with session.get("/file") as resp:
                downloaded = await resp.read()
                length = resp.headers["Content-Length"]
            async with session.get("/file", headers={"Range": "bytes=10-19"}) as resp:
                ranged = (resp.status, await resp.read())
            return uploaded, downloaded == payload, length, ranged

    assert arun(main) == (
        {"total": len(payload), "chunked": "chunked"},
        True,
        str(len(payload)),
        (206, payload[10:20]),
    )


def test_https_and_secure_websocket(arun, tls, loop_factory):
    server_ctx, client_ctx = tls

    async def main():
        async with Server(ssl_context=server_ctx) as server, aiohttp.ClientSession(
            server.url, connector=aiohttp.TCPConnector(ssl=client_ctx)
        ) as session:
            async with session.get("/kind") as resp:
                kind = await resp.json()
            async with session.get("/tls") as resp:
                seen_by_server = await resp.json()
            async with session.post("/echo", data=b"x" * 200_000) as resp:
                echoed = len(await resp.read())
            async with session.get("/big") as resp:
                big = len(await resp.read())
            async with session.ws_connect("/ws") as ws:
                await ws.send_str("secure")
                reply = (await ws.receive()).data
            # An untrusting client refuses the self-signed certificate.
            async with aiohttp.ClientSession() as strict:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await strict.get(server.url + "/kind")
            return kind, seen_by_server, echoed, big, reply

    kind, seen_by_server, echoed, big, reply = arun(main)
    assert kind == {"loop": loop_factory.name, "task": True}
    assert seen_by_server == {"secure": True, "version": "TLSv1.3"}
    assert (echoed, big, reply) == (200_000, 1_000_000, "echo:secure")


def test_unix_socket_site_and_connector(arun, tmp_path, loop_factory):
    path = str(tmp_path / "aiohttp.sock")

    async def main():
        runner = web.AppRunner(make_app())
        await runner.setup()
        try:
            await web.UnixSite(runner, path).start()
            async with aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=path)
            ) as session:
                async with session.get("http://unix/kind") as resp:
                    kind = await resp.json()
                async with session.post("http://unix/echo", data=b"over unix") as resp:
                    echoed = await resp.read()
        finally:
            runner.app[RELEASE].set()
            await runner.cleanup()
        return kind, echoed

    assert arun(main) == ({"loop": loop_factory.name, "task": True}, b"xinu revo")
