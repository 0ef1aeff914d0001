"""Network benchmarks: servers on the loop under test, load from another
process.

The measured process runs a server on the loop (an echo Protocol, a
streams handler, a sock_* loop, an HTTP/1.1 server) and nothing else; the
load generator (``loadgen.c``, or ``wrk`` for ``http_wrk``) is a separate
process, so its work never counts.  One op is one request: a message
echoed back in full, or one HTTP request answered.  The connections are
opened during setup and warm-up, so what is measured is the steady state
of serving requests (instruction mode: (I(2N) - I(N)) / N cancels the
connection set-up).

``c-libev`` is a pure-C echo server on libev (``echo_libev.c``), loaded in
the measured process in place of a loop: the same system calls per request
and nothing else, the ceiling no Python loop can pass.
"""

import asyncio
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from .suite import benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.path.join(tempfile.gettempdir(), f"fastloop-bench-{os.getuid()}")


def _build(source, output, *flags):
    """Compile benchmarks/<source> once (again when the source changes)."""
    os.makedirs(BUILD_DIR, exist_ok=True)
    src = os.path.join(HERE, source)
    out = os.path.join(BUILD_DIR, output)
    if (not os.path.exists(out)
            or os.path.getmtime(out) < os.path.getmtime(src)):
        cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
        tmp = f"{out}.{os.getpid()}"
        proc = subprocess.run([cc, "-O2", "-o", tmp, src, *flags],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"cannot build {source}:\n{proc.stderr}")
        os.replace(tmp, out)
    return out


def _loadgen():
    return _build("loadgen.c", "loadgen", "-lssl", "-lcrypto")


def _ceiling_lib():
    return ctypes.CDLL(_build("echo_libev.c", "echo_libev.so", "-shared",
                              "-fPIC", "-lev"))


def is_ceiling(loop):
    """Whether this worker measures the pure-C server instead of a loop."""
    return getattr(loop, "_bench_c_ceiling", False)


class LoadGen:
    """The load generator process: ``run(n)`` makes it send n requests."""

    def __init__(self, mode, address, conns, size):
        self.proc = subprocess.Popen(
            [_loadgen(), mode, address, str(conns), str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.fd = self.proc.stdout.fileno()
        self._ready = False

    def wait_ready(self):
        if not self._ready:
            line = self._readline()
            if line != b"ready":
                raise RuntimeError(f"loadgen did not start: {line!r}")
            self._ready = True

    def _readline(self):
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(self.fd, 64)
            if not chunk:
                raise RuntimeError("loadgen exited (see its stderr)")
            data += chunk
        return data.strip()

    def start(self, n):
        self.proc.stdin.write(f"{n}\n".encode())
        self.proc.stdin.flush()

    def finish(self):
        line = self._readline()
        if not line.startswith(b"done"):
            raise RuntimeError(f"loadgen: {line!r}")

    def close(self):
        try:
            self.proc.stdin.write(b"q\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _drive(loop, gen, n):
    """Run the loop until the load generator has made n requests."""
    fut = loop.create_future()

    def on_done():
        loop.remove_reader(gen.fd)
        try:
            gen.finish()
        except Exception as exc:  # reported by run_until_complete
            fut.set_exception(exc)
        else:
            fut.set_result(None)

    loop.add_reader(gen.fd, on_done)
    gen.start(n)
    loop.run_until_complete(fut)


# ---------------------------------------------------------------- servers

class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def _streams_handler(size):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.readexactly(size)
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
    return handle


async def _sock_server(loop, listener):
    async def serve(conn):
        try:
            while True:
                data = await loop.sock_recv(conn, 262144)
                if not data:
                    break
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass
        finally:
            conn.close()

    tasks = set()
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(serve(conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


HELLO = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 13\r\n\r\nHello, World!")


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive over httptools: one fixed response per request
    (the minimal server of uvloop's and others' HTTP benchmarks)."""

    def __init__(self):
        import httptools
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:
            self.transport.close()

    def on_message_complete(self):
        self.transport.write(HELLO)
        if not self.parser.should_keep_alive():
            self.transport.close()


def _listen_tcp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _address(sock):
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


# ------------------------------------------------------------ benchmark kit

def _echo_setup(loop, kind, size, conns):
    """Start an echo server of `kind` and the load generator."""
    closers = []
    if is_ceiling(loop):
        if kind != "proto":
            raise RuntimeError("c-libev has only the echo server")
        listener = _listen_tcp()
        lib = _ceiling_lib()
        if lib.ceiling_open(listener.fileno()) < 0:
            raise RuntimeError("ceiling_open failed")
        gen = LoadGen("echo", _address(listener), conns, size)
        lib.ceiling_run.argtypes = [ctypes.c_longlong]

        def run(n):
            gen.start(n)
            lib.ceiling_run(n * size)
            gen.finish()

        # connect() completes in the kernel's backlog; accept on first run.
        gen.wait_ready()

        def close():
            gen.close()
            lib.ceiling_close()
            listener.close()

        return run, close

    if kind == "unix":
        path = os.path.join(tempfile.mkdtemp(prefix="fastloop-bench-"), "s")
        server = loop.run_until_complete(
            loop.create_unix_server(EchoProtocol, path))
        address = f"unix:{path}"
        closers.append(lambda: os.path.exists(path) and os.unlink(path))
    elif kind == "tls":
        server, address = _tls_server(loop)
    elif kind == "proto":
        server = loop.run_until_complete(
            loop.create_server(EchoProtocol, "127.0.0.1", 0))
        address = _address(server.sockets[0])
    elif kind == "streams":
        server = loop.run_until_complete(
            asyncio.start_server(_streams_handler(size), "127.0.0.1", 0))
        address = _address(server.sockets[0])
    elif kind == "sock":
        listener = _listen_tcp()
        listener.setblocking(False)
        server_task = loop.create_task(_sock_server(loop, listener))
        address = _address(listener)
        server = None

        def stop_sock_server():
            server_task.cancel()
            try:
                loop.run_until_complete(server_task)
            except asyncio.CancelledError:
                pass
            listener.close()
        closers.append(stop_sock_server)
    else:
        raise ValueError(kind)
    gen = LoadGen("tls" if kind == "tls" else "echo", address, conns, size)
    gen.wait_ready()

    def run(n):
        _drive(loop, gen, n)

    def close():
        gen.close()
        if server is not None:
            server.close()
            loop.run_until_complete(server.wait_closed())
        # Let the transports see the load generator go.
        loop.run_until_complete(asyncio.sleep(0.05))
        for closer in closers:
            closer()

    return run, close


def _tls_server(loop):
    import ssl
    from . import certs
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs.server_cert())
    server = loop.run_until_complete(
        loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=ctx))
    return server, _address(server.sockets[0])


SIZES = {"64": 64, "1k": 1024, "64k": 65536}
# Instruction counts per op of these sizes are stable with few requests.
INSTR_OPS = {"64": 2_000, "1k": 2_000, "64k": 200}
WARMUP = {"64": 2_000, "1k": 2_000, "64k": 400}

# Instruction targets (issue: fastloop vs uvloop, 1 KiB x 10 connections).
TARGETS = {"proto": 0.7, "streams": 0.8, "sock": 0.5}

for _kind, _what in (("proto", "Protocol"), ("streams", "streams"),
                     ("sock", "sock_*")):
    for _size_name, _size in SIZES.items():
        for _conns in (1, 10):
            def _make(kind=_kind, size=_size, conns=_conns):
                def setup(loop):
                    return _echo_setup(loop, kind, size, conns)
                return setup

            _setup = _make()
            _setup.__doc__ = (
                f"One op = one {_size}-byte message echoed back in full by a "
                f"{_what} echo server, {_conns} connection(s) from a C load "
                f"generator in another process, each with one message in "
                f"flight.")
            _target = (TARGETS[_kind] if _size_name == "1k" and _conns == 10
                       else None)
            benchmark(f"echo_{_kind}_{_size_name}_c{_conns}", group="network",
                      op="one request", instr_ops=INSTR_OPS[_size_name],
                      warmup_ops=WARMUP[_size_name], target=_target,
                      ceiling=_kind == "proto")(_setup)


@benchmark("echo_unix_1k_c10", group="network", op="one request",
           instr_ops=2_000, warmup_ops=2_000)
def echo_unix(loop):
    """One op = one 1 KiB message echoed back by a Protocol echo server on a
    Unix socket, 10 connections from the C load generator."""
    return _echo_setup(loop, "unix", 1024, 10)


@benchmark("echo_tls_1k_c10", group="network", op="one request",
           instr_ops=1_000, warmup_ops=1_000, target=1.0)
def echo_tls(loop):
    """One op = one 1 KiB message echoed back over TLS 1.3 by a Protocol
    echo server (create_server(ssl=...)), 10 connections from the C load
    generator (OpenSSL)."""
    return _echo_setup(loop, "tls", 1024, 10)


def _http_setup(loop, app, conns):
    if app == "httptools":
        server = loop.run_until_complete(
            loop.create_server(HttpProtocol, "127.0.0.1", 0))
        address = _address(server.sockets[0])

        def stop():
            server.close()
            loop.run_until_complete(server.wait_closed())
    else:
        from aiohttp import web

        async def hello(request):
            return web.Response(text="Hello, World!")

        webapp = web.Application()
        webapp.router.add_get("/", hello)
        runner = web.AppRunner(webapp, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        address = _address(site._server.sockets[0])

        def stop():
            loop.run_until_complete(runner.cleanup())
    gen = LoadGen("http", address, conns, 0)
    gen.wait_ready()

    def run(n):
        _drive(loop, gen, n)

    def close():
        gen.close()
        loop.run_until_complete(asyncio.sleep(0.05))
        stop()

    return run, close


@benchmark("http_proto_c10", group="network", op="one request",
           instr_ops=2_000, warmup_ops=2_000, target=0.75)
def http_proto(loop):
    """One op = one HTTP/1.1 keep-alive GET answered by a Protocol server
    parsing with httptools (a fixed "Hello, World!" response), 10
    connections from the C load generator."""
    return _http_setup(loop, "httptools", 10)


@benchmark("http_aiohttp_c10", group="network", op="one request",
           instr_ops=500, warmup_ops=1_000, target=0.9)
def http_aiohttp(loop):
    """One op = one HTTP/1.1 keep-alive GET answered by an aiohttp.web
    application with one "Hello, World!" route, 10 connections from the C
    load generator."""
    return _http_setup(loop, "aiohttp", 10)


def _wrk():
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk; "
                           "make bench does it)")
    return path


class CountingHttpProtocol(HttpProtocol):
    """HttpProtocol that tells when the run's last request was answered."""

    answered = 0
    target = None  # (count, future)

    def on_message_complete(self):
        super().on_message_complete()
        cls = CountingHttpProtocol
        cls.answered += 1
        if cls.target is not None and cls.answered >= cls.target[0]:
            fut = cls.target[1]
            cls.target = None
            fut.set_result(None)


@benchmark("http_wrk_c10", group="network", op="one request",
           instr_ops=2_000, warmup_ops=2_000)
def http_wrk(loop):
    """One op = one HTTP/1.1 keep-alive GET answered by the httptools
    Protocol server, under wrk (-t1 -c10, started for each run and stopped
    with SIGINT once the server has answered N requests: each run also
    accepts and closes wrk's 10 connections)."""
    import signal
    wrk = _wrk()
    server = loop.run_until_complete(
        loop.create_server(CountingHttpProtocol, "127.0.0.1", 0))
    host, port = server.sockets[0].getsockname()[:2]

    def run(n):
        done = loop.create_future()
        CountingHttpProtocol.target = (CountingHttpProtocol.answered + n,
                                       done)
        proc = subprocess.Popen(
            [wrk, "-t1", "-c10", "-d600s", f"http://{host}:{port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            loop.run_until_complete(done)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait()

    def close():
        server.close()
        loop.run_until_complete(server.wait_closed())

    return run, close
