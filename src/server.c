/* server.c: listening sockets: the accept loop behind asyncio's Server.
 *
 * asyncio's Server object (base_events.Server: close, wait_closed,
 * serve_forever, async with) stays as it is; it asks the loop to
 * _start_serving(protocol_factory, sock, ...) each listening socket, and
 * _stop_serving(sock) removes the reader and closes it.  Here
 * _start_serving watches the socket with the C watch API and, each time it
 * is readable, accepts up to `backlog` connections (asyncio's
 * _accept_connection): a plain connection gets its protocol from the
 * factory and a C SocketTransport at once, with no Task; a TLS one goes
 * through asyncio's _accept_connection2 as in the stock loop.  Running out
 * of fds (EMFILE, ENFILE) or memory on accept is reported, and accepting
 * pauses for ACCEPT_RETRY_DELAY while established connections carry on.
 */
#include "server.h"
#include "stream.h"
#include "io.h"

#include <errno.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD FLLoop *loop;
    PyObject *protocol_factory;
    PyObject *sock; /* the listening socket.socket */
    PyObject *sslcontext;
    PyObject *server;
    PyObject *backlog_obj;
    PyObject *handshake_timeout;
    PyObject *shutdown_timeout;
    PyObject *context; /* 3.15's context=, or None */
    /* Where accepting runs: asyncio's accept callback is a Handle, which
     * runs in a copy of the context current when serving started. */
    PyObject *serve_context;
    Py_ssize_t backlog;
    int fd;
    int family, type, proto; /* given to the accepted sockets */
} FLAcceptor;

/* ---- addresses -------------------------------------------------------- */

/* The address accept() gave, as socket.accept() returns it (CPython's
 * makesockaddr for the families a stream server listens on); other
 * families ask the socket.  New reference or NULL. */
static PyObject *
make_address(const struct sockaddr_storage *ss, socklen_t len, PyObject *conn)
{
    char host[INET6_ADDRSTRLEN];
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("si", host, ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("siII", host, ntohs(a->sin6_port),
                             ntohl(a->sin6_flowinfo), a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
#ifdef __linux__
        if (n > 0 && a->sun_path[0] == 0) { /* the abstract namespace */
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)n);
        }
#endif
        return PyUnicode_DecodeFSDefaultAndSize(
            a->sun_path, (Py_ssize_t)strnlen(a->sun_path, n));
    }
    default:
        return PyObject_CallMethod(conn, "getpeername", NULL);
    }
}

/* ---- accepting -------------------------------------------------------- */

static int accept_ready(PyObject *self, PyObject *unused);

/* A Python call that must not fail quietly: reported to the loop. */
static int
report_accept_error(FLAcceptor *a, const char *message)
{
    if (fl_is_fatal_error()) {
        return -1;
    }
    PyObject *exc = fl_err_fetch();
    PyObject *tsock =
        PyObject_CallOneArg(fl_state->transport_socket_type, a->sock);
    if (tsock == NULL) {
        PyErr_Clear();
    }
    fl_loop_report_quietly((PyObject *)a->loop, message, exc,
                           fl_state->str_socket, tsock, NULL);
    Py_XDECREF(tsock);
    Py_DECREF(exc);
    return 0;
}

/* Out of fds or memory: report, stop accepting, and start again after
 * ACCEPT_RETRY_DELAY through loop._start_serving, as asyncio does. */
static int
accept_back_off(FLAcceptor *a)
{
    PyObject *exc = fl_err_fetch();
    PyObject *tsock =
        PyObject_CallOneArg(fl_state->transport_socket_type, a->sock);
    if (tsock == NULL) {
        PyErr_WriteUnraisable((PyObject *)a);
    }
    fl_loop_report_quietly((PyObject *)a->loop,
                           "socket.accept() out of system resource", exc,
                           fl_state->str_socket, tsock, NULL);
    Py_XDECREF(tsock);
    Py_DECREF(exc);
    if (fl_io_stop(a->loop, a->fd, FL_IO_READ, accept_ready, (PyObject *)a) <
        0) {
        return report_accept_error(a, "Exception in callback "
                                      "_accept_connection()");
    }
    PyObject *start =
        PyObject_GetAttr((PyObject *)a->loop, fl_state->str_start_serving);
    if (start == NULL) {
        return report_accept_error(a, "Exception in callback "
                                      "_accept_connection()");
    }
    PyObject *args[] = {(PyObject *)a->loop,
                        fl_state->accept_retry_delay,
                        start,
                        a->protocol_factory,
                        a->sock,
                        a->sslcontext,
                        a->server,
                        a->backlog_obj,
                        a->handshake_timeout,
                        a->shutdown_timeout,
                        a->context};
    size_t nargs = 10;
#if PY_VERSION_HEX >= 0x030F0000
    nargs = 11;
#endif
    PyObject *res =
        PyObject_VectorcallMethod(fl_state->str_call_later, args, nargs, NULL);
    Py_DECREF(start);
    if (res == NULL) {
        return report_accept_error(a, "Exception in callback "
                                      "_accept_connection()");
    }
    Py_DECREF(res);
    return 0;
}

/* A TLS connection: asyncio's own _accept_connection2 in a task. */
static int
accept_tls(FLAcceptor *a, PyObject *conn, PyObject *extra)
{
    PyObject *conn_context = Py_None;
    if (a->context != Py_None) {
        conn_context =
            PyObject_CallMethodNoArgs(a->context, fl_state->str_copy);
        if (conn_context == NULL) {
            return -1;
        }
    } else {
        Py_INCREF(conn_context);
    }
    PyObject *args[] = {(PyObject *)a->loop,
                        a->protocol_factory,
                        conn,
                        extra,
                        a->sslcontext,
                        a->server,
                        a->handshake_timeout,
                        a->shutdown_timeout,
                        conn_context};
    size_t nargs = 8;
    PyObject *kwnames = NULL;
#if PY_VERSION_HEX >= 0x030F0000
    kwnames = PyTuple_Pack(1, fl_state->str_context);
    if (kwnames == NULL) {
        Py_DECREF(conn_context);
        return -1;
    }
#endif
    PyObject *coro = PyObject_VectorcallMethod(
        fl_state->str_accept_connection2, args, nargs, kwnames);
    PyObject *task = NULL;
    if (coro != NULL) {
        PyObject *targs[] = {(PyObject *)a->loop, coro, conn_context};
        task = PyObject_VectorcallMethod(fl_state->str_create_task, targs, 2,
                                         kwnames);
        Py_DECREF(coro);
    }
    Py_XDECREF(kwnames);
    Py_DECREF(conn_context);
    if (task == NULL) {
        return -1;
    }
    Py_DECREF(task);
    return 0;
}

/* In debug mode asyncio reports a connection it could not set up;
 * otherwise it drops it silently.  The connection is closed. */
static int
drop_connection(FLAcceptor *a, PyObject *conn, PyObject *protocol)
{
    if (fl_is_fatal_error()) {
        return -1;
    }
    PyObject *exc = fl_err_fetch();
    if (a->loop->debug) {
        fl_loop_report_quietly(
            (PyObject *)a->loop,
            "Error on transport creation for incoming connection", exc,
            fl_state->str_protocol, protocol, NULL);
    }
    Py_DECREF(exc);
    PyObject *res = PyObject_CallMethodNoArgs(conn, fl_state->str_close);
    if (res == NULL) {
        PyErr_WriteUnraisable(conn);
    }
    Py_XDECREF(res);
    return 0;
}

/* A plain connection: its protocol and transport, now. */
static int
accept_plain(FLAcceptor *a, PyObject *conn, int fd, PyObject *extra)
{
    PyObject *conn_context = NULL;
    PyObject *protocol;
#if PY_VERSION_HEX >= 0x030F0000
    if (a->context != Py_None) {
        conn_context =
            PyObject_CallMethodNoArgs(a->context, fl_state->str_copy);
        if (conn_context == NULL) {
            return drop_connection(a, conn, NULL);
        }
        PyObject *args[] = {conn_context, a->protocol_factory};
        protocol = PyObject_VectorcallMethod(
            fl_state->str_run, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    } else
#endif
    {
        protocol = PyObject_CallNoArgs(a->protocol_factory);
    }
    if (protocol == NULL) {
        Py_XDECREF(conn_context);
        return drop_connection(a, conn, NULL);
    }
    PyObject *transport = fl_stream_new(a->loop, conn, fd, protocol, NULL,
                                        extra, a->server, conn_context);
    Py_XDECREF(conn_context);
    int rc = 0;
    if (transport == NULL) {
        rc = drop_connection(a, conn, protocol);
    }
    Py_XDECREF(transport);
    Py_DECREF(protocol);
    return rc;
}

/* asyncio's _accept_connection: up to `backlog` connections per readiness
 * (one more from 3.12 on).  0, or -1 for SystemExit/KeyboardInterrupt. */
static int
accept_connections(FLAcceptor *a)
{
#if PY_VERSION_HEX >= 0x030C0000
    Py_ssize_t rounds = a->backlog + 1;
#else
    Py_ssize_t rounds = a->backlog;
#endif
    for (Py_ssize_t i = 0; i < rounds; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        int fd = accept4(a->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
                return 0; /* the accept queue is empty (or a signal) */
            }
            if (err == ECONNABORTED) {
#if PY_VERSION_HEX >= 0x030C0000
                continue; /* aborted before accept(): discarded */
#else
                return 0;
#endif
            }
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
                err == ENOMEM) {
                return accept_back_off(a);
            }
            /* asyncio lets it propagate: the loop logs it. */
            return report_accept_error(
                a, "Exception in callback BaseSelectorEventLoop."
                   "_accept_connection()");
        }
        PyObject *conn = PyObject_CallFunction(
            fl_state->socket_class, "iiii", a->family, a->type, a->proto, fd);
        if (conn == NULL) {
            close(fd);
            if (report_accept_error(a, "Exception in callback "
                                       "_accept_connection()") < 0) {
                return -1;
            }
            continue;
        }
        /* As socket.accept() then asyncio's conn.setblocking(False). */
        PyObject *res = PyObject_CallMethodOneArg(
            conn, fl_state->str_setblocking, Py_False);
        PyObject *addr = res ? make_address(&ss, len, conn) : NULL;
        Py_XDECREF(res);
        if (addr != NULL && a->loop->debug) {
            PyObject *r = PyObject_CallMethod(
                fl_state->logger, "debug", "sOOO",
                "%r got a new connection from %r: %r", a->server, addr, conn);
            if (r == NULL) {
                PyErr_WriteUnraisable((PyObject *)a);
            }
            Py_XDECREF(r);
        }
        PyObject *extra = addr ? PyDict_New() : NULL;
        if (extra != NULL &&
            PyDict_SetItem(extra, fl_state->str_peername, addr) < 0) {
            Py_CLEAR(extra);
        }
        Py_XDECREF(addr);
        int rc;
        if (extra == NULL) {
            rc = drop_connection(a, conn, NULL);
        } else if (a->sslcontext != Py_None) {
            rc = accept_tls(a, conn, extra);
            if (rc < 0) {
                rc = drop_connection(a, conn, NULL);
            }
        } else {
            rc = accept_plain(a, conn, fd, extra);
        }
        Py_XDECREF(extra);
        Py_DECREF(conn);
        if (rc < 0) {
            return -1;
        }
        /* The protocol factory or a transport may have stopped serving
         * (Server.close) or closed the loop. */
        if (!fl_loop_usable(a->loop) ||
            !fl_io_is_watching(a->loop, a->fd, FL_IO_READ, accept_ready,
                               (PyObject *)a)) {
            return 0;
        }
    }
    return 0;
}

static int
accept_ready(PyObject *self, PyObject *Py_UNUSED(unused))
{
    FLAcceptor *a = (FLAcceptor *)self;
    if (!fl_loop_usable(a->loop) ||
        !fl_io_is_watching(a->loop, a->fd, FL_IO_READ, accept_ready, self)) {
        return 0; /* stopped since the poll */
    }
    if (PyContext_Enter(a->serve_context) < 0) {
        return -1;
    }
    int rc = accept_connections(a);
    PyObject *exc = rc < 0 ? fl_err_fetch() : NULL;
    if (PyContext_Exit(a->serve_context) < 0) {
        PyErr_WriteUnraisable(self);
    }
    fl_err_restore(exc);
    return rc;
}

/* ---- the module functions ------------------------------------------- */

static int
int_attr(PyObject *obj, const char *name, int *out)
{
    PyObject *v = PyObject_GetAttrString(obj, name);
    long r = v ? PyLong_AsLong(v) : -1;
    Py_XDECREF(v);
    if (r == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int)r;
    return 0;
}

/* The arguments of _start_serving/_accept_connection, as an acceptor. */
static FLAcceptor *
acceptor_new(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"loop",
                                        "protocol_factory",
                                        "sock",
                                        "sslcontext",
                                        "server",
                                        "backlog",
                                        "ssl_handshake_timeout",
                                        "ssl_shutdown_timeout",
                                        "context"};
    enum { N = 9 };
    PyObject *v[N] = {NULL, NULL,    NULL,    Py_None, Py_None,
                      NULL, Py_None, Py_None, Py_None};
    if (nargs > N) {
        PyErr_SetString(PyExc_TypeError, "_start_serving(): too many "
                                         "arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        v[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
        int found = 0;
        for (int i = 0; i < N; i++) {
            if (PyUnicode_CompareWithASCIIString(kw, names[i]) == 0) {
                v[i] = args[nargs + k];
                found = 1;
            }
        }
        if (!found) {
            PyErr_Format(PyExc_TypeError,
                         "_start_serving() got an unexpected keyword "
                         "argument '%U'",
                         kw);
            return NULL;
        }
    }
    if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "_start_serving() missing loop, protocol_factory or "
                        "sock");
        return NULL;
    }
    if (!FLLoop_Check(v[0])) {
        PyErr_SetString(PyExc_TypeError, "_start_serving() needs a fastloop "
                                         "loop");
        return NULL;
    }
    if (fl_loop_check_closed((FLLoop *)v[0]) < 0) {
        return NULL;
    }
    FLAcceptor *a = PyObject_GC_New(FLAcceptor, fl_state->acceptor_type);
    if (a == NULL) {
        return NULL;
    }
    a->loop = (FLLoop *)Py_NewRef(v[0]);
    a->protocol_factory = Py_NewRef(v[1]);
    a->sock = Py_NewRef(v[2]);
    a->sslcontext = Py_NewRef(v[3]);
    a->server = Py_NewRef(v[4]);
    a->backlog_obj = v[5] ? Py_NewRef(v[5]) : PyLong_FromLong(100);
    a->handshake_timeout = Py_NewRef(v[6]);
    a->shutdown_timeout = Py_NewRef(v[7]);
    a->context = Py_NewRef(v[8]);
    a->serve_context = PyContext_CopyCurrent();
    a->fd = -1;
    PyObject_GC_Track(a);
    if (a->serve_context == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    if (a->backlog_obj == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    a->backlog = PyNumber_AsSsize_t(a->backlog_obj, PyExc_OverflowError);
    if (a->backlog == -1 && PyErr_Occurred()) {
        Py_DECREF(a);
        return NULL;
    }
    PyObject *fd = PyObject_CallMethodNoArgs(a->sock, fl_state->str_fileno);
    long fdv = fd ? PyLong_AsLong(fd) : -1;
    Py_XDECREF(fd);
    if (fdv == -1 && PyErr_Occurred()) {
        Py_DECREF(a);
        return NULL;
    }
    if (fdv < 0 || fdv > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fdv);
        Py_DECREF(a);
        return NULL;
    }
    a->fd = (int)fdv;
    if (int_attr(a->sock, "family", &a->family) < 0 ||
        int_attr(a->sock, "type", &a->type) < 0 ||
        int_attr(a->sock, "proto", &a->proto) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* _start_serving(loop, protocol_factory, sock, sslcontext=None,
 * server=None, backlog=100, ssl_handshake_timeout=...,
 * ssl_shutdown_timeout=..., context=None) */
PyObject *
fl_server_start_serving(PyObject *module, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames)
{
    FLAcceptor *a = acceptor_new(args, nargs, kwnames);
    if (a == NULL) {
        return NULL;
    }
    int rc =
        fl_io_start(a->loop, a->fd, FL_IO_READ, accept_ready, (PyObject *)a);
    Py_DECREF(a);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _accept_connection(loop, ...): one accept round, as asyncio's method
 * (which its tests call directly). */
PyObject *
fl_server_accept_connection(PyObject *module, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames)
{
    FLAcceptor *a = acceptor_new(args, nargs, kwnames);
    if (a == NULL) {
        return NULL;
    }
    int rc = accept_connections(a);
    Py_DECREF(a);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- the acceptor type ------------------------------------------------ */

static int
acceptor_traverse(FLAcceptor *a, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(a));
    Py_VISIT(a->loop);
    Py_VISIT(a->protocol_factory);
    Py_VISIT(a->sock);
    Py_VISIT(a->sslcontext);
    Py_VISIT(a->server);
    Py_VISIT(a->backlog_obj);
    Py_VISIT(a->handshake_timeout);
    Py_VISIT(a->shutdown_timeout);
    Py_VISIT(a->context);
    Py_VISIT(a->serve_context);
    return 0;
}

static int
acceptor_clear(FLAcceptor *a)
{
    Py_CLEAR(a->loop);
    Py_CLEAR(a->protocol_factory);
    Py_CLEAR(a->sock);
    Py_CLEAR(a->sslcontext);
    Py_CLEAR(a->server);
    Py_CLEAR(a->backlog_obj);
    Py_CLEAR(a->handshake_timeout);
    Py_CLEAR(a->shutdown_timeout);
    Py_CLEAR(a->context);
    Py_CLEAR(a->serve_context);
    return 0;
}

static void
acceptor_dealloc(FLAcceptor *a)
{
    PyTypeObject *type = Py_TYPE(a);
    PyObject_GC_UnTrack(a);
    acceptor_clear(a);
    PyObject_GC_Del(a);
    Py_DECREF(type);
}

static PyObject *
acceptor_repr(FLAcceptor *a)
{
    return PyUnicode_FromFormat("<fastloop acceptor fd=%d server=%R>", a->fd,
                                a->server ? a->server : Py_None);
}

static PyType_Slot acceptor_slots[] = {
    {Py_tp_doc, "A listening socket's accept loop (internal)."},
    {Py_tp_dealloc, acceptor_dealloc},
    {Py_tp_traverse, acceptor_traverse},
    {Py_tp_clear, acceptor_clear},
    {Py_tp_repr, acceptor_repr},
    {0, NULL},
};

static PyType_Spec acceptor_spec = {
    .name = "fastloop._core._Acceptor",
    .basicsize = sizeof(FLAcceptor),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = acceptor_slots,
};

int
fl_server_init(PyObject *module)
{
    PyObject *socket_mod = PyImport_ImportModule("socket");
    if (socket_mod == NULL) {
        return -1;
    }
    fl_state->socket_class = PyObject_GetAttrString(socket_mod, "socket");
    Py_DECREF(socket_mod);
    PyObject *constants = PyImport_ImportModule("asyncio.constants");
    if (fl_state->socket_class == NULL || constants == NULL) {
        Py_XDECREF(constants);
        return -1;
    }
    fl_state->accept_retry_delay =
        PyObject_GetAttrString(constants, "ACCEPT_RETRY_DELAY");
    Py_DECREF(constants);
    if (fl_state->accept_retry_delay == NULL) {
        return -1;
    }
    /* Not added to the module: only _start_serving makes acceptors. */
    fl_state->acceptor_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &acceptor_spec, NULL);
    return fl_state->acceptor_type == NULL ? -1 : 0;
}
