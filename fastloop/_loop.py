"""fastloop.Loop: the C core plus asyncio's own code for the cold paths.

The hot paths (scheduling, timers, the run loop, fd watching) are C methods
of ``_core.Loop``.  Everything else -- executors, async generator hooks,
exception handler plumbing, signal handler bookkeeping, name resolution and
the selector transports for sockets, pipes and subprocesses -- is inherited
unchanged from asyncio's Unix selector loop, which reaches the C core only
through the methods it overrides.
"""

import asyncio
import selectors
import signal
import sys
import threading
import warnings
import weakref
from asyncio import constants, events, sslproto, unix_events
from asyncio.log import logger

from . import _core, _sslproto

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
        if sys.version_info >= (3, 12):
            self._ensure_fd_no_transport(sock)
        return _core.SocketTransport(self, sock, protocol, waiter, extra,
                                     server, context)

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
        _core.SocketTransport(self, rawsock, ssl_protocol, None, extra,
                              server, context)
        return ssl_protocol._app_transport

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
