"""fastloop.Loop: the C core plus asyncio's own code for the cold paths.

The hot paths (scheduling, timers, the run loop, fd watching) are C methods
of ``_core.Loop``.  Everything else -- executors, async generator hooks,
exception handler plumbing, signal handler bookkeeping, name resolution and
the selector transports for sockets, pipes and subprocesses -- is inherited
unchanged from asyncio's Unix selector loop, which reaches the C core only
through the methods it overrides.
"""

import asyncio
import io
import os
import selectors
import signal
import socket
import sys
import threading
import warnings
import weakref
from asyncio import base_events, constants, events, exceptions, sslproto
from asyncio import unix_events
from asyncio.log import logger

from . import _core, _sslproto
from ._core import (_SockWait, _sock_accept, _sock_connect, _sock_recv,
                    _sock_recv_into, _sock_recvfrom, _sock_recvfrom_into,
                    _sock_sendall, _sock_sendfile, _sock_sendto)

try:
    from _asyncio import _set_running_loop as _c_set_running_loop
except ImportError:  # an interpreter built without _asyncio
    _c_set_running_loop = events._set_running_loop

__all__ = ["Loop"]


def _set_running_loop(loop):
    # fastloop's tasks are C tasks, and on 3.14+ asyncio's C _enter_task
    # accepts only the loop recorded by the C _set_running_loop.  Code that
    # replaced events._set_running_loop (CPython's tests swap in the
    # pure-Python one) must not leave them without it: set both.
    setter = events._set_running_loop
    if setter is not _c_set_running_loop:
        _c_set_running_loop(loop)
    setter(loop)


class _SelectorView:
    """The part of a selector that asyncio's transports read.

    Transports look up ``loop._selector.get_key(fd)`` to show whether they
    are polling; the C loop answers from its own watcher table.
    """

    def __init__(self, loop):
        self._loop = weakref.ref(loop)

    def get_key(self, fileobj):
        loop = self._loop()
        mask = loop._io_events(fileobj) if loop is not None else 0
        if not mask:
            raise KeyError(f"{fileobj!r} is not registered")
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return selectors.SelectorKey(fileobj, fd, mask, None)

    def close(self):
        pass


class Loop(_core.Loop, unix_events.SelectorEventLoop):
    """An asyncio event loop implemented in C on libev."""

    def __init__(self):
        _core.Loop.__init__(self)
        unix_events.SelectorEventLoop.__init__(self, _SelectorView(self))

    # create_future and create_task are _core.Loop's (fastloop.Future and
    # fastloop.Task), which comes first in the MRO.

    # ---- transports: the C stream transport for TCP and Unix sockets ----

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None, context=None):
        if not isinstance(sock, socket.socket):
            # A socket look-alike (a test's mock, a wrapper): the C
            # transport needs a real socket, asyncio's accepts anything.
            return self._make_python_socket_transport(
                sock, protocol, waiter, extra, server, context)
        if sys.version_info >= (3, 12):
            self._ensure_fd_no_transport(sock)
        return _core.SocketTransport(self, sock, protocol, waiter, extra,
                                     server, context)

    def _make_python_socket_transport(self, sock, protocol, waiter, extra,
                                      server, context):
        # asyncio's own selector transport, as SelectorEventLoop makes it.
        if context is None:
            return super()._make_socket_transport(
                sock, protocol, waiter, extra=extra, server=server)
        return super()._make_socket_transport(
            sock, protocol, waiter, extra=extra, server=server,
            context=context)

    def _start_serving(self, protocol_factory, sock,
                       sslcontext=None, server=None, backlog=100,
                       ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT,
                       context=None):
        # The accept loop in C (server.c); _stop_serving stays asyncio's.
        _core._start_serving(self, protocol_factory, sock, sslcontext,
                             server, backlog, ssl_handshake_timeout,
                             ssl_shutdown_timeout, context)

    def _accept_connection(
            self, protocol_factory, sock,
            sslcontext=None, server=None, backlog=100,
            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT,
            context=None):
        _core._accept_connection(self, protocol_factory, sock, sslcontext,
                                 server, backlog, ssl_handshake_timeout,
                                 ssl_shutdown_timeout, context)

    def _make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter=None,
            *, server_side=False, server_hostname=None,
            extra=None, server=None,
            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT,
            context=None):
        # asyncio's SSLProtocol over the C transport.
        if sys.version_info >= (3, 12):
            self._ensure_fd_no_transport(rawsock)
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter,
            server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        if isinstance(rawsock, socket.socket):
            _core.SocketTransport(self, rawsock, ssl_protocol, None, extra,
                                  server, context)
        else:
            self._make_python_socket_transport(
                rawsock, ssl_protocol, None, extra, server, context)
        return ssl_protocol._app_transport

    # ---- sock_* coroutines: the syscall and the wait are C (src/sock.c) --
    # Each C function tries the operation at once and returns its result,
    # or a _SockWait to await when it would block.

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from the socket (a bytes object)."""
        res = _sock_recv(self, sock, n)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def sock_recv_into(self, sock, buf):
        """Receive data into buf; return the number of bytes written."""
        res = _sock_recv_into(self, sock, buf)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram: (data, address)."""
        res = _sock_recvfrom(self, sock, bufsize)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf: (nbytes, address)."""
        res = _sock_recvfrom_into(self, sock, buf, nbytes)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def sock_sendall(self, sock, data):
        """Send all of data to the connected socket."""
        res = _sock_sendall(self, sock, data)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to address; return the number of bytes sent."""
        res = _sock_sendto(self, sock, data, address)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def sock_connect(self, sock, address):
        """Connect the socket to address."""
        base_events._check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        if sock.family == socket.AF_INET or (
                base_events._HAS_IPv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto,
                loop=self,
            )
            _, _, _, _, address = resolved[0]
        res = _sock_connect(self, sock, address)
        if res.__class__ is _SockWait:
            try:
                return await res
            finally:
                # Breaks the cycles an exception's traceback makes.
                res = None
        return res

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        res = _sock_accept(self, sock)
        if res.__class__ is _SockWait:
            return await res
        return res

    async def _sock_sendfile_native(self, sock, file, offset, count):
        # unix_events' checks; the os.sendfile loop is C.
        try:
            os.sendfile
        except AttributeError:
            raise exceptions.SendfileNotAvailableError(
                "os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise exceptions.SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise exceptions.SendfileNotAvailableError("not a regular file")
        blocksize = count if count else fsize
        if not blocksize:
            return 0  # empty file
        if sys.version_info >= (3, 13):
            # As asyncio (which truncates for 32-bit platforms).
            blocksize = min(blocksize, sys.maxsize // 2 + 1)
        res = _sock_sendfile(self, sock, fileno, offset, count or 0,
                             blocksize)
        if res.__class__ is _SockWait:
            return await res
        return res

    def __repr__(self):
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        old_wakeup_fd = self._install_signal_wakeup()
        try:
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            _set_running_loop(self)
            self._run_forever_core()
        finally:
            _set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)
            self._restore_signal_wakeup(old_wakeup_fd)

    def _install_signal_wakeup(self):
        # In the main thread a signal must end a blocking poll, even one
        # that arrives just before the poll starts: Python's C-level handler
        # writes the signal number to this socket, which the loop watches.
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            return signal.set_wakeup_fd(
                self._csock.fileno(), warn_on_full_buffer=False
            )
        except (ValueError, OSError):
            return None

    def _restore_signal_wakeup(self, old_fd):
        if old_fd is None or self._signal_handlers:
            # add_signal_handler keeps the wakeup fd while handlers exist.
            return
        try:
            signal.set_wakeup_fd(old_fd)
        except (ValueError, OSError):
            pass

    def close(self):
        """Close the loop; pending callbacks are dropped.  Idempotent."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self._signal_handlers:
            if sys.is_finalizing():
                warnings.warn(
                    f"Closing the loop {self!r} on interpreter shutdown "
                    f"stage, skipping signal handlers removal",
                    ResourceWarning,
                    source=self,
                )
                self._signal_handlers.clear()
            else:
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
        if self._debug:
            logger.debug("Close %r", self)
        self._close_self_pipe()
        self._close_core()
        self._selector = None
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)


def new_event_loop():
    """Return a new fastloop event loop."""
    return Loop()
