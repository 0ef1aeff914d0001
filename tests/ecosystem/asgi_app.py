"""A raw ASGI application for the uvicorn scenarios (served in-process and by
`python -m uvicorn asgi_app:app` in a child process).

GET /kind      {"loop", "task", "http_version", "lifespan"} seen by the app
POST /echo     the request body (however many receive() messages) reversed
GET /stream    five body messages with more_body=True, then an empty one
"""

import asyncio
import json

from eco import kind_of_loop, kind_of_task


def make_app(events):
    """An ASGI app that appends its lifespan events to the list `events`."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    events.append(("startup", kind_of_loop()))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    events.append(("shutdown", kind_of_loop()))
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        path = scope["path"]
        if path == "/kind":
            body = json.dumps(
                {
                    "loop": kind_of_loop(),
                    "task": kind_of_task(),
                    "http_version": scope["http_version"],
                    "lifespan": [e[0] for e in events],
                }
            ).encode()
            await respond(send, 200, body, b"application/json")
        elif path == "/echo":
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            await respond(send, 200, b"".join(chunks)[::-1])
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(5):
                await send(
                    {
                        "type": "http.response.body",
                        "body": f"bit{i};".encode(),
                        "more_body": True,
                    }
                )
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
        else:
            await respond(send, 404, b"not found")

    return app


async def respond(send, status, body, ctype=b"application/octet-stream"):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype)],
        }
    )
    await send({"type": "http.response.body", "body": body})


events = []
app = make_app(events)
