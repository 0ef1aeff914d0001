"""uvicorn on fastloop: `--loop fastloop:new_event_loop` (uvicorn >= 0.36
takes a `module:callable` loop factory; `Config(loop=...)` is the same
setting), with the httptools protocol (and h11, uvicorn's pure-Python one).

Served in-process in a thread (ready: the Server's startup has finished, an
event) and as `python -m uvicorn` in a child process (ready: its "Uvicorn
running on" line, which names the port it bound).  Clients are the
stdlib's http.client, so the server side is all that is under test.
"""

import http.client
import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest

from eco import bound_socket, need

uvicorn = need("uvicorn")
need("httptools")

import asgi_app  # noqa: E402

pytestmark = pytest.mark.timeout(30)

HERE = pathlib.Path(__file__).resolve().parent
HTTP_IMPLEMENTATIONS = ["httptools", "h11"]


def loop_setting(kind):
    """What uvicorn's --loop / Config(loop=...) is given for this kind."""
    return "fastloop:new_event_loop" if kind == "fastloop" else "asyncio"


def exercise(port):
    """The client's side: the same requests against either server."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        results = {}
        conn.request("GET", "/kind")
        resp = conn.getresponse()
        results["kind"] = (resp.status, json.loads(resp.read()))
        # The same (kept-alive) connection for the next requests.
        conn.request("POST", "/echo", body=b"hello uvicorn")
        resp = conn.getresponse()
        results["echo"] = (resp.status, resp.read())
        conn.request("POST", "/echo", body=iter([b"ab", b"cd", b"ef"]),
                     encode_chunked=True)
        resp = conn.getresponse()
        results["chunked_echo"] = (resp.status, resp.read())
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        results["stream"] = (
            resp.status, resp.getheader("transfer-encoding"), resp.read()
        )
        conn.request("GET", "/nope")
        resp = conn.getresponse()
        results["missing"] = (resp.status, resp.read())
        return results
    finally:
        conn.close()


def expected(kind, lifespan):
    return {
        "kind": (
            200,
            {"loop": kind, "task": kind, "http_version": "1.1", "lifespan": lifespan},
        ),
        "echo": (200, b"nrocivu olleh"),
        "chunked_echo": (200, b"fedcba"),
        "stream": (200, "chunked", b"bit0;bit1;bit2;bit3;bit4;"),
        "missing": (404, b"not found"),
    }


class ReadyServer(uvicorn.Server):
    """A uvicorn Server that says when it is listening."""

    def __init__(self, config):
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        self.ready.set()


@pytest.mark.parametrize("http_impl", HTTP_IMPLEMENTATIONS)
def test_served_in_process_from_a_thread(loop_factory, http_impl):
    if http_impl == "h11":
        need("h11")
    events = []
    config = uvicorn.Config(
        asgi_app.make_app(events),
        loop=loop_setting(loop_factory.name),
        http=http_impl,
        ws="none",
        lifespan="on",
        log_level="warning",
    )
    server = ReadyServer(config)
    sock = bound_socket()
    port = sock.getsockname()[1]
    failure = []

    def serve():
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported by the test, not lost
            failure.append(exc)
            server.ready.set()

    thread = threading.Thread(target=serve, name="uvicorn")
    thread.start()
    try:
        assert server.ready.wait(15), "uvicorn did not start"
        assert not failure, failure
        results = exercise(port)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
    assert not thread.is_alive()
    assert not failure, failure
    assert results == expected(loop_factory.name, ["startup"])
    assert events == [("startup", loop_factory.name), ("shutdown", loop_factory.name)]


@pytest.mark.parametrize("http_impl", HTTP_IMPLEMENTATIONS)
def test_uvicorn_command_line_with_loop_option(loop_factory, http_impl, child_env):
    if http_impl == "h11":
        need("h11")
    env = dict(child_env)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env["PYTHONPATH"]])
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "asgi_app:app",
            "--host", "127.0.0.1", "--port", "0",
            "--loop", loop_setting(loop_factory.name),
            "--http", http_impl, "--ws", "none", "--lifespan", "on",
            "--no-access-log", "--log-level", "info",
        ],
        cwd=HERE,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = queue.Queue()
    log = []

    def read_stderr():
        for line in proc.stderr:
            log.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        port = None
        while port is None:
            line = lines.get(timeout=15)
            assert line is not None, "uvicorn exited early:\n" + "".join(log)
            match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
        results = exercise(port)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            returncode = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(5)
        proc.stderr.close()
    output = "".join(log)
    assert returncode == 0, output
    assert results == expected(loop_factory.name, ["startup"])
    assert "Application startup complete." in output
    assert "Application shutdown complete." in output
    assert "Traceback" not in output, output
