"""Shared helpers of the ecosystem matrix (fixtures are in conftest.py)."""

import asyncio
import socket

import pytest

import fastloop

# A scenario that takes longer than this inside the loop is hung.
SCENARIO_TIMEOUT = 20


def need(name, minversion=None):
    """pytest.importorskip, with a reason that names the package."""
    return pytest.importorskip(
        name,
        minversion=minversion,
        reason=f"{name} is not installed on this Python "
        "(`make ecosystem` installs the ecosystem extra where it installs)",
    )


def bound_socket():
    """A listening-ready TCP socket bound to 127.0.0.1 on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def check_loop_kind(kind, loop=None):
    """Assert `loop` (default: the running loop) is of the given kind."""
    if loop is None:
        loop = asyncio.get_running_loop()
    if kind == "fastloop":
        assert isinstance(loop, fastloop.Loop), loop
    else:
        assert not isinstance(loop, fastloop.Loop), loop
        assert isinstance(loop, asyncio.BaseEventLoop), loop


def check_task_kind(kind, task=None):
    """Assert `task` (default: the current task) is of the given kind."""
    if task is None:
        task = asyncio.current_task()
    assert isinstance(task, asyncio.Task), task
    assert isinstance(task, fastloop.Task) == (kind == "fastloop"), task


def kind_of_loop(loop=None):
    """"fastloop" or "asyncio": which kind of loop `loop` (default: the
    running loop) is; what servers under test report to their clients."""
    if loop is None:
        loop = asyncio.get_running_loop()
    return "fastloop" if isinstance(loop, fastloop.Loop) else "asyncio"


def kind_of_task(task=None):
    """"fastloop" or "asyncio": which kind of Task `task` (default: the
    current task) is."""
    if task is None:
        task = asyncio.current_task()
    return "fastloop" if isinstance(task, fastloop.Task) else "asyncio"


def make_tls_contexts(directory):
    """(server_context, client_context) for TLS on 127.0.0.1, from a
    self-signed certificate that `openssl` makes in `directory`."""
    import shutil
    import ssl
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
