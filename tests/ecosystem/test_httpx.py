"""httpx.AsyncClient on fastloop (httpcore over anyio's asyncio backend)
against a small HTTP/1.1 server written on asyncio streams, so that this
scenario needs no other web package."""

import asyncio
import json

import pytest

from eco import bound_socket, kind_of_loop, kind_of_task, need

httpx = need("httpx")

pytestmark = pytest.mark.timeout(30)


class PlainHTTPServer:
    """HTTP/1.1 with keep-alive, Content-Length bodies and chunked replies.

    GET /kind          {"loop": ..., "task": ...} of the server side
    POST /echo         the body reversed
    GET /stream        five chunks, chunked transfer encoding
    GET /hang          never answers (until the server closes)
    """

    def __init__(self, ssl=None):
        self.ssl = ssl

    async def __aenter__(self):
        self.connections = 0
        self.handlers = set()
        self.server = await asyncio.start_server(
            self.handle, sock=bound_socket(), ssl=self.ssl
        )
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        # Handlers still waiting (/hang) end now; then wait_closed has no
        # connection left to wait for (3.12+ waits for them).
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def handle(self, reader, writer):
        self.connections += 1
        self.handlers.add(asyncio.current_task())
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode().split(" ", 2)
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if not await self.respond(method, path, body, writer):
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.handlers.discard(asyncio.current_task())
            writer.close()

    async def respond(self, method, path, body, writer):
        def send(status, payload, ctype="application/octet-stream"):
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
            )

        if method == "GET" and path == "/kind":
            send("200 OK", json.dumps(
                {"loop": kind_of_loop(), "task": kind_of_task()}
            ).encode(), "application/json")
        elif method == "POST" and path == "/echo":
            send("200 OK", body[::-1])
        elif method == "GET" and path == "/stream":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(5):
                chunk = f"piece{i};".encode()
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif path == "/hang":
            await asyncio.Event().wait()
        else:
            send("404 Not Found", b"")
        return True


def test_get_post_stream_and_pooled_concurrency(arun, loop_factory):
    async def main():
        async with PlainHTTPServer() as server, httpx.AsyncClient(
            base_url=server.url, limits=httpx.Limits(max_connections=4)
        ) as client:
            kind = (await client.get("/kind")).json()
            echoed = await client.post("/echo", content=b"hello httpx")
            streamed = []
            async with client.stream("GET", "/stream") as resp:
                async for chunk in resp.aiter_bytes():
                    streamed.append(chunk)
            many = await asyncio.gather(
                *(client.post("/echo", content=str(i).encode()) for i in range(20))
            )
            missing = await client.get("/nothing-here")
            return (
                kind,
                (echoed.status_code, echoed.content, echoed.http_version),
                b"".join(streamed),
                [r.content for r in many],
                missing.status_code,
                server.connections,
            )

    kind, echoed, streamed, many, missing, connections = arun(main)
    assert kind == {"loop": loop_factory.name, "task": loop_factory.name}
    assert echoed == (200, b"xptth olleh", "HTTP/1.1")
    assert streamed == b"piece0;piece1;piece2;piece3;piece4;"
    assert many == [str(i).encode()[::-1] for i in range(20)]
    assert missing == 404
    # Keep-alive: the pool of at most four connections served everything.
    assert 1 <= connections <= 4


def test_https_with_a_trusted_self_signed_certificate(arun, tls, loop_factory):
    server_ctx, client_ctx = tls

    async def main():
        async with PlainHTTPServer(ssl=server_ctx) as server, httpx.AsyncClient(
            base_url=server.url, verify=client_ctx
        ) as client:
            kind = (await client.get("/kind")).json()
            big = await client.post("/echo", content=b"0123456789" * 50_000)
            many = await asyncio.gather(
                *(client.post("/echo", content=b"%d" % i) for i in range(10))
            )
            async with httpx.AsyncClient(base_url=server.url) as strict:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await strict.get("/kind")
            return kind, big.content == (b"0123456789" * 50_000)[::-1], [r.content for r in many]

    assert arun(main) == (
        {"loop": loop_factory.name, "task": loop_factory.name},
        True,
        [(b"%d" % i)[::-1] for i in range(10)],
    )


def test_read_timeout_then_client_still_works(arun):
    async def main():
        async with PlainHTTPServer() as server, httpx.AsyncClient(
            base_url=server.url
        ) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/hang", timeout=httpx.Timeout(5, read=0.05))
            return (await client.post("/echo", content=b"ok")).content

    assert arun(main) == b"ko"


def test_cancelling_a_request_task(arun):
    async def main():
        async with PlainHTTPServer() as server, httpx.AsyncClient(
            base_url=server.url
        ) as client:
            task = asyncio.ensure_future(client.get("/hang"))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await client.post("/echo", content=b"after")).content

    assert arun(main) == b"retfa"


def test_asgi_transport_in_process(arun, loop_factory):
    async def app(scope, receive, send):
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send(
            {"type": "http.response.body", "body": kind_of_loop().encode() + b":" + body}
        )

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            resp = await client.post("/", content=b"payload")
            return resp.status_code, resp.content

    assert arun(main) == (201, loop_factory.name.encode() + b":payload")
