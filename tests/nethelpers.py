"""Helpers of the network tests (test_stream, test_server, test_tls).

Every server binds 127.0.0.1 or a Unix socket in a temporary directory;
nothing reaches the network.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest


class Recorder(asyncio.Protocol):
    """A protocol that records every call, and can be told to act."""

    def __init__(self, loop=None):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = asyncio.Event() if loop is None else None
        self.lost = None
        self.lost_exc = "not called"
        self.eof = False
        self.eof_result = None
        self.loop = loop
        self.lost_fut = None
        self.got = {}

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.lost_fut = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.events.append("data")
        self.data += data
        for n, fut in list(self.got.items()):
            if len(self.data) >= n and not fut.done():
                fut.set_result(None)

    def eof_received(self):
        self.events.append("eof")
        self.eof = True
        return self.eof_result

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_exc = exc
        if self.lost_fut is not None and not self.lost_fut.done():
            self.lost_fut.set_result(exc)

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    async def received(self, n):
        """Wait until at least n bytes came in."""
        if len(self.data) >= n:
            return
        fut = asyncio.get_running_loop().create_future()
        self.got[n] = fut
        await fut


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self, size=65536):
        self.buf = bytearray(size)

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.transport.write(bytes(self.buf[:nbytes]))


async def tcp_pair(loop, server_protocol, client_protocol):
    """A server on 127.0.0.1 and one connection to it: (server,
    client transport, client protocol, server protocol)."""
    made = []

    def factory():
        proto = server_protocol()
        made.append(proto)
        return proto

    server = await loop.create_server(factory, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    tr, pr = await loop.create_connection(client_protocol, host, port)
    for _ in range(100):
        if made and getattr(made[0], "transport", None) is not None:
            break
        await asyncio.sleep(0.001)
    return server, tr, pr, made[0]


def unix_path():
    return os.path.join(tempfile.mkdtemp(prefix="fastloop-test-"), "sock")


def errors_of(loop):
    """Collect exception handler calls instead of logging them."""
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def run_child(loop_factory, child_env, body, timeout=120, preamble=""):
    """Run `body` in a child process where `loop` is a fresh loop of the
    parametrized kind; return its stdout (fails on a crash)."""
    source = (
        "import asyncio, sys, gc, os, socket\n"
        + textwrap.dedent(preamble)
        + f"loop = {loop_factory.new_loop_source}\n"
        + f"FL = {loop_factory.name == 'fastloop'!r}\n"
        + textwrap.dedent(body)
    )
    result = subprocess.run([sys.executable, "-c", source], env=child_env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"child exited with {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


def make_cert(directory):
    """A self-signed certificate for localhost/127.0.0.1 made with the
    openssl command: (certfile, keyfile)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", key, "-out", cert],
            check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("the openssl command is not installed (it makes the "
                    "test certificate)")
    return cert, key
