/* stream.h: the stream transport (TCP and Unix sockets).
 *
 * stream.c owns fastloop._core.SocketTransport: asyncio's Transport API
 * over a connected stream socket, in C, on the C watch API (io.h).  The
 * type subclasses asyncio's transports._FlowControlMixin (hence
 * asyncio.Transport), so isinstance checks and asyncio's sendfile and TLS
 * code accept it.  server.c creates these for accepted connections;
 * fastloop/_loop.py's _make_socket_transport for the rest.
 */
#ifndef FL_STREAM_H
#define FL_STREAM_H

#include "loop.h"

/* The type, made at module init from a spec over _FlowControlMixin. */

/* A new transport for the connected socket `sock` (whose fd is `fd`), as
 * asyncio's _SelectorSocketTransport(loop, sock, protocol, waiter, extra,
 * server): registered in loop._transports, attached to `server`,
 * connection_made and the first read queued.  `waiter`, `extra`, `server`
 * and `context` may be NULL (None); `extra` is used and filled in, as
 * asyncio does.  Protocol callbacks run in `context`, or in a copy of the
 * current context when NULL.  New reference, or NULL with an exception
 * set. */
PyObject *fl_stream_new(FLLoop *loop, PyObject *sock, int fd,
                        PyObject *protocol, PyObject *waiter, PyObject *extra,
                        PyObject *server, PyObject *context);

/* transport.write(data) of a SocketTransport (tls.c's ciphertext). */
PyObject *fl_stream_write(PyObject *transport, PyObject *data);

/* tls.c: fastloop's SSLProtocol subclass (set by fastloop._sslproto), and
 * its get_buffer/buffer_updated, which the transport calls directly. */
PyObject *fl_tls_get_buffer(PyObject *protocol, PyObject *sizehint);
PyObject *fl_tls_buffer_updated(PyObject *protocol, PyObject *nbytes);

/* Shared with server.c. */

#endif /* FL_STREAM_H */
