/* sock.c: the loop's sock_* operations in C, on the C watch API.
 *
 * Owns the syscall-and-wait part of sock_recv, sock_recv_into,
 * sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto,
 * sock_connect, sock_accept and of sock_sendfile's native path
 * (os.sendfile, zero-copy), and the _SockWait object that waits.
 * fastloop/_loop.py keeps the coroutines (`async def`, as asyncio's) and
 * what C adds nothing to (sock_connect's name resolution, sendfile's
 * argument checks); each calls one of the module functions here.
 *
 * Each operation is tried at once, as asyncio's selector loop does; only
 * when it would block (EAGAIN, or BlockingIOError / InterruptedError from
 * the socket's method) a future is made (loop.create_future()) and a
 * _SockWait watches the fd (fl_io_start).  Readiness retries the
 * operation; when it is over the waiter stops its watch and lets go of
 * its buffers before it calls out to Python (set_result and friends).
 * The future's done callback (the waiter itself) stops the watch when the
 * future is finished some other way (cancelled).  A second operation on
 * the same fd and direction replaces the first one's watch, as asyncio's
 * _add_reader does: the first never completes (until cancelled).
 *
 * For a plain socket.socket, recv, recv_into and sendall are system calls
 * made here (MSG_DONTWAIT: the fd's blocking mode does not matter);
 * everything else, and any other socket class, goes through the socket's
 * methods exactly as asyncio calls them.  Behaviour (checks, their order,
 * exceptions and messages) follows selector_events.py and unix_events.py
 * of the running Python version.
 */
#include "sock.h"
#include "future.h"
#include "io.h"
#include "stream.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

enum {
    K_RECV,
    K_RECV_INTO,
    K_RECVFROM,
    K_RECVFROM_INTO,
    K_SENDALL,
    K_SENDTO,
    K_CONNECT,
    K_ACCEPT,
    K_SENDFILE,
};

typedef struct {
    PyObject_HEAD FLLoop *loop;
    PyObject *fut;
    PyObject *sock;
    PyObject *a;    /* recv*: n / buf; send*: data; connect: address */
    PyObject *b;    /* recvfrom_into: nbytes; sendto: address */
    Py_buffer view; /* sendall: the data (held while waiting) */
    int has_view;
    Py_ssize_t n;   /* recv: the size */
    Py_ssize_t pos; /* sendall: bytes sent */
    int fd;
    int fd_known; /* fd is sock.fileno() (read before the first try) */
    int kind;
    int events;
    int direct; /* a plain socket.socket: system calls here */
    /* sendfile */
    int in_fd;
    int calls; /* sendfile() calls made */
    long long offset, count, blocksize, total_sent;
} FLSockWait;

/* ---- futures: fastloop's own fast, any other through its methods ---- */

static int
fut_is_done(PyObject *fut)
{
    if (FLFuture_CheckExact(fut)) {
        return ((FLFuture *)fut)->state != FL_PENDING;
    }
    PyObject *r = PyObject_CallMethodNoArgs(fut, fl_state->str_done);
    if (r == NULL) {
        return -1;
    }
    int done = PyObject_IsTrue(r);
    Py_DECREF(r);
    return done;
}

static int
fut_set(PyObject *fut, PyObject *result, PyObject *exc)
{
    if (FLFuture_CheckExact(fut)) {
        return exc ? fl_future_set_exception((FLFuture *)fut, exc)
                   : fl_future_set_result((FLFuture *)fut, result);
    }
    PyObject *r = PyObject_CallMethodOneArg(
        fut, exc ? fl_state->str_set_exception : fl_state->str_set_result,
        exc ? exc : result);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* ---- checks ----------------------------------------------------------- */

/* base_events._check_ssl_socket, then (debug mode) the non-blocking
 * check, in asyncio's order (sock_sendfile checks the other way round,
 * in asyncio's Python). */
static int
check_sock(FLLoop *loop, PyObject *sock, int *direct)
{
    *direct = Py_IS_TYPE(sock, ((PyTypeObject *)fl_state->socket_class)) ||
              Py_IS_TYPE(sock, fl_state->c_socket_type);
    if (!*direct && fl_state->ssl_socket_type != NULL) {
        int r = PyObject_IsInstance(sock, fl_state->ssl_socket_type);
        if (r < 0) {
            return -1;
        }
        if (r) {
            PyErr_SetString(PyExc_TypeError,
                            "Socket cannot be of type SSLSocket");
            return -1;
        }
    }
    if (loop->debug) {
        PyObject *t =
            PyObject_CallMethodNoArgs(sock, fl_state->str_gettimeout);
        if (t == NULL) {
            return -1;
        }
        int ne = PyObject_RichCompareBool(t, fl_state->int_zero, Py_NE);
        Py_DECREF(t);
        if (ne < 0) {
            return -1;
        }
        if (ne) {
            PyErr_SetString(PyExc_ValueError,
                            "the socket must be non-blocking");
            return -1;
        }
    }
    return 0;
}

static int
check_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want,
           const char *name)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)",
                     name, want, nargs);
        return -1;
    }
    if (!FLLoop_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s() needs a fastloop loop", name);
        return -1;
    }
    return fl_loop_check_init((FLLoop *)args[0]);
}

/* sock.fileno() as a C int (-1 for a closed socket).  -2 on error. */
static int
sock_fileno(PyObject *sock)
{
    PyObject *r = PyObject_CallMethodNoArgs(sock, fl_state->str_fileno);
    if (r == NULL) {
        return -2;
    }
    long fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd == -1 && PyErr_Occurred()) {
        return -2;
    }
    if (fd < -1 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -2;
    }
    return (int)fd;
}

/* An exception that means "not now": BlockingIOError, InterruptedError. */
static int
would_block_exc(void)
{
    return PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
           PyErr_ExceptionMatches(PyExc_InterruptedError);
}

static int
would_block_errno(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* ---- the operations ---------------------------------------------------- */

/* Tries w's operation once.  1: over, with *result (a new reference) or,
 * when *result is NULL, the exception to give the future set; 0: it would
 * block (nothing set); -1: SystemExit or KeyboardInterrupt, to propagate
 * (asyncio re-raises those). */
static int attempt(FLSockWait *w, PyObject **result);

static PyObject *
call_sock(FLSockWait *w, PyObject *name, PyObject *x, PyObject *y)
{
    PyObject *args[] = {w->sock, x, y};
    size_t n = 1 + (x != NULL) + (y != NULL);
    return PyObject_VectorcallMethod(name, args,
                                     n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The result of a socket method call: over, or would block. */
static int
method_result(PyObject *r, PyObject **result)
{
    *result = r;
    if (r != NULL) {
        return 1;
    }
    if (would_block_exc()) {
        PyErr_Clear();
        return 0;
    }
    return fl_is_fatal_error() ? -1 : 1;
}

static int
errno_result(int err, PyObject **result)
{
    *result = NULL;
    if (would_block_errno(err)) {
        return 0;
    }
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return 1;
}

static int
attempt_recv(FLSockWait *w, PyObject **result)
{
    if (!w->direct) {
        return method_result(call_sock(w, fl_state->str_recv, w->a, NULL),
                             result);
    }
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, w->n);
    if (bytes == NULL) {
        *result = NULL;
        return fl_is_fatal_error() ? -1 : 1;
    }
    ssize_t got =
        recv(w->fd, PyBytes_AS_STRING(bytes), (size_t)w->n, MSG_DONTWAIT);
    if (got < 0) {
        int err = errno;
        Py_DECREF(bytes);
        return errno_result(err, result);
    }
    if (got != w->n && _PyBytes_Resize(&bytes, got) < 0) {
        *result = NULL;
        return 1;
    }
    *result = bytes;
    return 1;
}

static int
attempt_recv_into(FLSockWait *w, PyObject **result)
{
    Py_buffer view;
    if (!w->direct || PyObject_GetBuffer(w->a, &view, PyBUF_WRITABLE) < 0) {
        /* The socket's own method raises what it raises for a bad buffer. */
        PyErr_Clear();
        return method_result(call_sock(w, fl_state->str_recv_into, w->a, NULL),
                             result);
    }
    ssize_t got = recv(w->fd, view.buf, (size_t)view.len, MSG_DONTWAIT);
    int err = errno;
    PyBuffer_Release(&view);
    if (got < 0) {
        return errno_result(err, result);
    }
    *result = PyLong_FromSsize_t(got);
    return 1;
}

static int
attempt_sendall(FLSockWait *w, PyObject **result)
{
    Py_ssize_t left = w->view.len - w->pos;
    ssize_t sent;
    if (w->direct) {
        sent = send(w->fd, (char *)w->view.buf + w->pos, (size_t)left,
                    MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            return errno_result(errno, result);
        }
    } else {
        /* asyncio: sock.send(view[start:]) */
        PyObject *mv = PyMemoryView_FromMemory((char *)w->view.buf + w->pos,
                                               left, PyBUF_READ);
        if (mv == NULL) {
            *result = NULL;
            return 1;
        }
        PyObject *r = call_sock(w, fl_state->str_send, mv, NULL);
        Py_DECREF(mv);
        int rc = method_result(r, result);
        if (rc != 1 || *result == NULL) {
            return rc;
        }
        sent = PyLong_AsSsize_t(r);
        Py_CLEAR(*result);
        if (sent == -1 && PyErr_Occurred()) {
            return 1;
        }
    }
    w->pos += sent;
    if (w->pos >= w->view.len) {
        *result = Py_NewRef(Py_None);
        return 1;
    }
    return 0;
}

static int
attempt_connect_cb(FLSockWait *w, PyObject **result)
{
    /* asyncio's _sock_connect_cb: the outcome is SO_ERROR. */
    int err = 0;
    socklen_t len = sizeof(err);
    *result = NULL;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        return errno_result(errno, result);
    }
    if (err != 0) {
        PyObject *msg = PyUnicode_FromFormat("Connect call failed %S", w->a);
        if (msg != NULL) {
            PyObject *exc =
                PyObject_CallFunction(PyExc_OSError, "iO", err, msg);
            Py_DECREF(msg);
            if (exc != NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                Py_DECREF(exc);
            }
        }
        return fl_is_fatal_error() ? -1 : 1;
    }
    *result = Py_NewRef(Py_None);
    return 1;
}

static int
attempt_accept(FLSockWait *w, PyObject **result)
{
    /* conn, address = sock.accept(); conn.setblocking(False) */
    PyObject *pair = call_sock(w, fl_state->str_accept, NULL, NULL);
    int rc = method_result(pair, result);
    if (rc != 1 || pair == NULL) {
        return rc;
    }
    PyObject *conn = NULL;
    if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
        conn = PyTuple_GET_ITEM(pair, 0);
    } else {
        PyObject *seq = PySequence_Tuple(pair);
        if (seq == NULL || PyTuple_GET_SIZE(seq) != 2) {
            if (seq != NULL) {
                PyErr_SetString(PyExc_ValueError,
                                "accept() did not return a (conn, address) "
                                "pair");
            }
            Py_XDECREF(seq);
            Py_CLEAR(*result);
            return fl_is_fatal_error() ? -1 : 1;
        }
        Py_SETREF(*result, seq);
        conn = PyTuple_GET_ITEM(seq, 0);
    }
    PyObject *r =
        PyObject_CallMethodOneArg(conn, fl_state->str_setblocking, Py_False);
    if (r == NULL) {
        Py_CLEAR(*result);
        if (would_block_exc()) {
            PyErr_Clear();
            return 0;
        }
        return fl_is_fatal_error() ? -1 : 1;
    }
    Py_DECREF(r);
    return 1;
}

/* After this, the file's position is where sending stopped (3.14+: always;
 * before: only when something was sent). */
static int
sendfile_update_filepos(FLSockWait *w)
{
#if PY_VERSION_HEX < 0x030E0000
    if (w->total_sent <= 0) {
        return 0;
    }
#endif
    if (lseek(w->in_fd, (off_t)w->offset, SEEK_SET) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* unix_events._sock_sendfile_native_impl, sending again at once after a
 * successful call (asyncio waits for writability first). */
static int
attempt_sendfile(FLSockWait *w, PyObject **result)
{
    *result = NULL;
    for (;;) {
        if (w->count) {
            w->blocksize = w->count - w->total_sent;
            if (w->blocksize <= 0) {
                if (sendfile_update_filepos(w) < 0) {
                    return fl_is_fatal_error() ? -1 : 1;
                }
                *result = PyLong_FromLongLong(w->total_sent);
                return 1;
            }
        }
        off_t off = (off_t)w->offset;
        int first = w->calls++ == 0;
        ssize_t sent = sendfile(w->fd, w->in_fd, &off, (size_t)w->blocksize);
        if (sent < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                return 0;
            }
            if (err == EINTR) {
                /* os.sendfile runs the signal handlers and retries. */
                if (PyErr_CheckSignals() < 0) {
                    if (fl_is_fatal_error()) {
                        return -1;
                    }
                    PyObject *exc = fl_err_fetch();
                    if (sendfile_update_filepos(w) < 0) {
                        Py_DECREF(exc);
                        return fl_is_fatal_error() ? -1 : 1;
                    }
                    fl_err_restore(exc);
                    return 1;
                }
                continue;
            }
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            if (!first && err == ENOTCONN) {
                /* The peer went away in the middle: ConnectionError, as
                 * asyncio normalizes it. */
                PyObject *cause = fl_err_fetch();
                PyObject *exc =
                    PyObject_CallFunction(PyExc_ConnectionError, "si",
                                          "socket is not connected", ENOTCONN);
                if (exc == NULL) {
                    Py_DECREF(cause);
                    return 1;
                }
                PyException_SetCause(exc, cause);
                PyErr_SetObject(PyExc_ConnectionError, exc);
                Py_DECREF(exc);
            }
            if (w->total_sent == 0) {
                PyErr_Clear();
                PyErr_SetString(fl_state->sendfile_not_available,
                                "os.sendfile call failed");
            }
            PyObject *exc = fl_err_fetch();
            if (sendfile_update_filepos(w) < 0) {
                Py_DECREF(exc);
                return 1;
            }
            fl_err_restore(exc);
            return 1;
        }
        if (sent == 0) { /* EOF */
            if (sendfile_update_filepos(w) < 0) {
                return 1;
            }
            *result = PyLong_FromLongLong(w->total_sent);
            return 1;
        }
        w->offset += sent;
        w->total_sent += sent;
    }
}

static int
attempt(FLSockWait *w, PyObject **result)
{
    switch (w->kind) {
    case K_RECV:
        return attempt_recv(w, result);
    case K_RECV_INTO:
        return attempt_recv_into(w, result);
    case K_RECVFROM:
        return method_result(call_sock(w, fl_state->str_recvfrom, w->a, NULL),
                             result);
    case K_RECVFROM_INTO:
        return method_result(
            call_sock(w, fl_state->str_recvfrom_into, w->a, w->b), result);
    case K_SENDALL:
        return attempt_sendall(w, result);
    case K_SENDTO: {
        /* asyncio retries with sock.sendto(data, 0, address) */
        PyObject *args[] = {w->sock, w->a, fl_state->int_zero, w->b};
        return method_result(PyObject_VectorcallMethod(
                                 fl_state->str_sendto, args,
                                 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL),
                             result);
    }
    case K_CONNECT:
        return attempt_connect_cb(w, result);
    case K_ACCEPT:
        return attempt_accept(w, result);
    case K_SENDFILE:
        return attempt_sendfile(w, result);
    }
    Py_UNREACHABLE();
}

/* ---- waiting ---------------------------------------------------------- */

static int sock_ready(PyObject *self, PyObject *unused);

/* An operation starts in a FLSockWait on the C stack (its fields only: no
 * object header, no allocation for what completes at once); wait_heap()
 * moves it into an object when it must wait.  The fields hold strong
 * references either way (op_clear() releases a stack one's). */
static void
wait_init(FLSockWait *w, FLLoop *loop, PyObject *sock, int kind, int direct)
{
    w->loop = (FLLoop *)Py_NewRef(loop);
    w->fut = NULL;
    w->sock = Py_NewRef(sock);
    w->a = w->b = NULL;
    w->has_view = 0;
    w->n = w->pos = 0;
    w->fd = -1;
    w->fd_known = 0;
    w->kind = kind;
    w->events = kind == K_SENDALL || kind == K_SENDTO || kind == K_CONNECT ||
                        kind == K_SENDFILE
                    ? FL_IO_WRITE
                    : FL_IO_READ;
    w->direct = direct;
    w->in_fd = -1;
    w->calls = 0;
    w->offset = w->count = w->blocksize = w->total_sent = 0;
}

static void
release_view(FLSockWait *w)
{
    if (w->has_view) {
        w->has_view = 0;
        PyBuffer_Release(&w->view);
    }
}

static int wait_clear(FLSockWait *w);

/* Releases what a stack operation holds. */
static void
op_clear(FLSockWait *w)
{
    wait_clear(w);
}

/* The stack operation `op` as a new _SockWait (its references and buffer
 * move over), or NULL with op released and an exception set. */
static FLSockWait *
wait_heap(FLSockWait *op)
{
    FLSockWait *w = PyObject_GC_New(FLSockWait, fl_state->sock_wait_type);
    if (w == NULL) {
        op_clear(op);
        return NULL;
    }
    const size_t start = offsetof(FLSockWait, loop);
    memcpy((char *)w + start, (char *)op + start, sizeof(FLSockWait) - start);
    PyObject_GC_Track(w);
    return w;
}

/* The operation would block: make the future, check the fd is no
 * transport's (asyncio: only now), watch it, and return the waiter for
 * the coroutine to await (a new reference), or NULL with an exception. */
static PyObject *wait_start(FLSockWait *w);

/* The stack operation `op` would block: wait for it (op is consumed). */
static PyObject *
wait_now(FLSockWait *op)
{
    FLSockWait *w = wait_heap(op);
    if (w == NULL) {
        return NULL;
    }
    PyObject *res = wait_start(w);
    if (res == NULL) {
        release_view(w);
    }
    Py_DECREF(w);
    return res;
}

/* w->fd = sock.fileno(), read when asyncio reads it.  0, or -1 with an
 * exception set. */
static int
read_fd(FLSockWait *w)
{
    int fd = sock_fileno(w->sock);
    if (fd == -2) {
        return -1;
    }
    w->fd = fd;
    w->fd_known = 1;
    return 0;
}

static PyObject *
wait_start(FLSockWait *w)
{
    FLLoop *loop = w->loop;
    PyObject *fut = PyObject_CallMethodNoArgs((PyObject *)loop,
                                              fl_state->str_create_future);
    if (fut == NULL) {
        return NULL;
    }
    w->fut = fut;
    /* asyncio reads fd = sock.fileno() here. */
    if (!w->fd_known && read_fd(w) < 0) {
        return NULL;
    }
    PyObject *fdobj = PyLong_FromLong(w->fd);
    if (fdobj == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethodOneArg(
        (PyObject *)loop, fl_state->str_ensure_fd_no_transport, fdobj);
    Py_DECREF(fdobj);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    if (w->fd < 0) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %d", w->fd);
        return NULL;
    }
    if (fl_io_start(loop, w->fd, w->events, sock_ready, (PyObject *)w) < 0) {
        return NULL;
    }
    r = PyObject_CallMethodOneArg(fut, fl_state->str_add_done_callback,
                                  (PyObject *)w);
    if (r == NULL) {
        fl_io_stop(loop, w->fd, w->events, sock_ready, (PyObject *)w);
        return NULL;
    }
    Py_DECREF(r);
    return Py_NewRef((PyObject *)w);
}

/* Stops w's watch (if it still has it) and lets go of its buffer: the
 * bookkeeping before any call out. */
static void
wait_stop(FLSockWait *w)
{
    if (w->loop != NULL &&
        fl_io_stop(w->loop, w->fd, w->events, sock_ready, (PyObject *)w) < 0) {
        PyErr_WriteUnraisable((PyObject *)w);
    }
    release_view(w);
}

/* The ready-queue callback: the fd is ready for w's operation. */
static int
sock_ready(PyObject *self, PyObject *Py_UNUSED(unused))
{
    FLSockWait *w = (FLSockWait *)self;
    if (w->loop == NULL || !fl_loop_usable(w->loop) ||
        !fl_io_is_watching(w->loop, w->fd, w->events, sock_ready, self)) {
        return 0; /* finished, replaced or stopped since the poll */
    }
    int done = fut_is_done(w->fut);
    if (done != 0) {
        /* Cancelled, say: its done callback will come; stop now. */
        wait_stop(w);
        return done < 0 ? -1 : 0;
    }
    PyObject *result = NULL;
    int rc = attempt(w, &result);
    if (rc <= 0) {
        return rc; /* not yet; or SystemExit/KeyboardInterrupt */
    }
    PyObject *exc = result == NULL ? fl_err_fetch() : NULL;
    PyObject *fut = Py_NewRef(w->fut);
    wait_stop(w);
    /* The operation's own Python calls may have finished the future. */
    done = fut_is_done(fut);
    if (done == 0 && fut_set(fut, result, exc) < 0) {
        done = -1;
    }
    Py_XDECREF(result);
    Py_XDECREF(exc);
    Py_DECREF(fut);
    return done < 0 ? -1 : 0;
}

/* The future's done callback: stop watching whatever finished it. */
static PyObject *
wait_call(FLSockWait *w, PyObject *args, PyObject *kwargs)
{
    wait_stop(w);
    Py_RETURN_NONE;
}

static PyObject *
wait_await(FLSockWait *w)
{
    if (w->fut == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_SockWait is not waiting");
        return NULL;
    }
    PyAsyncMethods *am = Py_TYPE(w->fut)->tp_as_async;
    if (am == NULL || am->am_await == NULL) {
        return PyObject_CallMethod(w->fut, "__await__", NULL);
    }
    return am->am_await(w->fut);
}

static int
wait_traverse(FLSockWait *w, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(w));
    Py_VISIT(w->loop);
    Py_VISIT(w->fut);
    Py_VISIT(w->sock);
    Py_VISIT(w->a);
    Py_VISIT(w->b);
    return 0;
}

static int
wait_clear(FLSockWait *w)
{
    release_view(w);
    Py_CLEAR(w->loop);
    Py_CLEAR(w->fut);
    Py_CLEAR(w->sock);
    Py_CLEAR(w->a);
    Py_CLEAR(w->b);
    return 0;
}

static void
wait_dealloc(FLSockWait *w)
{
    PyTypeObject *type = Py_TYPE(w);
    PyObject_GC_UnTrack(w);
    wait_clear(w);
    PyObject_GC_Del(w);
    Py_DECREF(type);
}

static PyObject *
wait_repr(FLSockWait *w)
{
    static const char *names[] = {
        "sock_recv",          "sock_recv_into", "sock_recvfrom",
        "sock_recvfrom_into", "sock_sendall",   "sock_sendto",
        "sock_connect",       "sock_accept",    "sock_sendfile"};
    return PyUnicode_FromFormat("<_SockWait %s fd=%d>", names[w->kind], w->fd);
}

static PyType_Slot wait_slots[] = {
    {Py_tp_doc, "A sock_* operation waiting for its fd (internal): await it."},
    {Py_tp_dealloc, wait_dealloc},
    {Py_tp_traverse, wait_traverse},
    {Py_tp_clear, wait_clear},
    {Py_tp_repr, wait_repr},
    {Py_tp_call, wait_call},
    {Py_am_await, wait_await},
    {0, NULL},
};

static PyType_Spec wait_spec = {
    .name = "fastloop._core._SockWait",
    .basicsize = sizeof(FLSockWait),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = wait_slots,
};

/* ---- the module functions --------------------------------------------- */

/* Runs the stack operation w's first attempt: the result, or the waiter
 * when it would block, or NULL with the exception (raised from the
 * coroutine, as asyncio's first call's).  Consumes w. */
static PyObject *
run_first(FLSockWait *w)
{
    PyObject *result = NULL;
    int rc = attempt(w, &result);
    if (rc == 0) {
        return wait_now(w);
    }
    op_clear(w);
    return result;
}

/* The start shared by every function: args[0] the loop, args[1] the
 * socket.  -1 with an exception set, else 0 and `w` (a stack operation)
 * ready. */
static int
begin(FLSockWait *w, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want,
      const char *name, int kind)
{
    if (check_args(args, nargs, want, name) < 0) {
        return -1;
    }
    FLLoop *loop = (FLLoop *)args[0];
    int direct;
    if (check_sock(loop, args[1], &direct) < 0) {
        return -1;
    }
    wait_init(w, loop, args[1], kind, direct);
    return 0;
}

/* The fd for a direct system call (sock.fileno()); -1 for a closed
 * socket, whose calls fail with EBADF as the socket's methods do. */
static int
direct_fd(FLSockWait *w)
{
    return w->direct ? read_fd(w) : 0;
}

/* The first try through the socket's own method (sock.name(x[, y])): its
 * result or error, or the waiter when it would block.  Consumes w. */
static PyObject *
call_or_wait(FLSockWait *w, PyObject *name, PyObject *x, PyObject *y)
{
    PyObject *r = call_sock(w, name, x, y);
    if (r != NULL || !would_block_exc()) {
        op_clear(w);
        return r;
    }
    PyErr_Clear();
    return wait_now(w);
}

/* direct_fd, then run_first: the end of the functions whose first try
 * may be a direct system call.  Consumes w. */
static PyObject *
run_first_direct(FLSockWait *w)
{
    if (direct_fd(w) < 0) {
        op_clear(w);
        return NULL;
    }
    return run_first(w);
}

PyObject *
fl_sock_recv(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 3, "_sock_recv", K_RECV) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    if (w->direct) {
        w->n = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
        if (w->n < 0) {
            /* The socket's method raises what it raises for it. */
            PyErr_Clear();
            w->direct = 0;
        }
    }
    return run_first_direct(w);
}

PyObject *
fl_sock_recv_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 3, "_sock_recv_into", K_RECV_INTO) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    return run_first_direct(w);
}

PyObject *
fl_sock_recvfrom(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 3, "_sock_recvfrom", K_RECVFROM) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    return run_first(w);
}

PyObject *
fl_sock_recvfrom_into(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 4, "_sock_recvfrom_into", K_RECVFROM_INTO) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    /* if not nbytes: nbytes = len(buf) */
    int empty = PyObject_Not(args[3]);
    if (empty < 0) {
        op_clear(w);
        return NULL;
    }
    if (empty) {
        Py_ssize_t len = PyObject_Length(args[2]);
        w->b = len < 0 ? NULL : PyLong_FromSsize_t(len);
        if (w->b == NULL) {
            op_clear(w);
            return NULL;
        }
    } else {
        w->b = Py_NewRef(args[3]);
    }
    return run_first(w);
}

PyObject *
fl_sock_sendall(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 3, "_sock_sendall", K_SENDALL) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    if (!w->direct ||
        PyObject_GetBuffer(args[2], &w->view, PyBUF_SIMPLE) < 0) {
        /* asyncio: n = sock.send(data) (which raises for bad data). */
        PyErr_Clear();
        w->direct = 0;
        PyObject *r = call_sock(w, fl_state->str_send, args[2], NULL);
        Py_ssize_t n = 0;
        if (r == NULL) {
            if (!would_block_exc()) {
                op_clear(w);
                return NULL;
            }
            PyErr_Clear();
        } else {
            n = PyLong_AsSsize_t(r);
            Py_DECREF(r);
            if (n == -1 && PyErr_Occurred()) {
                op_clear(w);
                return NULL;
            }
        }
        /* view = memoryview(data), as asyncio holds it while waiting */
        if (PyObject_GetBuffer(args[2], &w->view, PyBUF_SIMPLE) < 0) {
            op_clear(w);
            return NULL;
        }
        w->has_view = 1;
        w->pos = n;
        if (w->pos >= w->view.len) {
            op_clear(w);
            Py_RETURN_NONE;
        }
        return wait_now(w);
    }
    w->has_view = 1;
    return run_first_direct(w);
}

PyObject *
fl_sock_sendto(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 4, "_sock_sendto", K_SENDTO) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    w->b = Py_NewRef(args[3]);
    /* asyncio's first call: sock.sendto(data, address) */
    return call_or_wait(w, fl_state->str_sendto, w->a, w->b);
}

PyObject *
fl_sock_connect(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* The address is resolved already (fastloop/_loop.py). */
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 3, "_sock_connect", K_CONNECT) < 0) {
        return NULL;
    }
    w->a = Py_NewRef(args[2]);
    /* asyncio: fd = sock.fileno(), then sock.connect(address) */
    if (read_fd(w) < 0) {
        op_clear(w);
        return NULL;
    }
    /* EINPROGRESS (or EINTR): the outcome comes with writability. */
    return call_or_wait(w, fl_state->str_connect, w->a, NULL);
}

PyObject *
fl_sock_accept(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    FLSockWait op, *w = &op;
    if (begin(w, args, nargs, 2, "_sock_accept", K_ACCEPT) < 0) {
        return NULL;
    }
    /* asyncio reads fd = sock.fileno() before trying */
    if (read_fd(w) < 0) {
        op_clear(w);
        return NULL;
    }
    return run_first(w);
}

/* (loop, sock, fileno, offset, count, blocksize): what
 * unix_events._sock_sendfile_native does once fastloop/_loop.py has
 * checked the file (count 0: to the end). */
PyObject *
fl_sock_sendfile(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args(args, nargs, 6, "_sock_sendfile") < 0) {
        return NULL;
    }
    long in_fd = PyLong_AsLong(args[2]);
    long long offset = PyLong_AsLongLong(args[3]);
    long long count = PyLong_AsLongLong(args[4]);
    long long blocksize = PyLong_AsLongLong(args[5]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (in_fd < 0 || in_fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", in_fd);
        return NULL;
    }
    FLSockWait op, *w = &op;
    wait_init(w, (FLLoop *)args[0], args[1], K_SENDFILE, 1);
    w->in_fd = (int)in_fd;
    w->offset = offset;
    w->count = count;
    w->blocksize = blocksize;
    if (read_fd(w) < 0) {
        op_clear(w);
        return NULL;
    }
    return run_first(w);
}

/* ---- init ------------------------------------------------------------- */

/* Reads `attr` of module `module_name` into *slot (a new reference).  -1
 * with an exception set on failure. */
static int
import_into(PyObject **slot, const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return -1;
    }
    *slot = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return *slot == NULL ? -1 : 0;
}

int
fl_sock_init(PyObject *module)
{
    fl_state->int_zero = PyLong_FromLong(0);
    if (fl_state->int_zero == NULL ||
        import_into(&fl_state->sendfile_not_available, "asyncio.exceptions",
                    "SendfileNotAvailableError") < 0) {
        return -1;
    }
    if (!PyType_Check(fl_state->socket_class)) {
        PyErr_SetString(PyExc_ImportError, "socket.socket is not a type");
        return -1;
    }
    /* asyncio's _check_ssl_socket: only where ssl exists. */
    if (import_into(&fl_state->ssl_socket_type, "ssl", "SSLSocket") < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) {
            return -1;
        }
        PyErr_Clear();
    }
    fl_state->sock_wait_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &wait_spec, NULL);
    if (fl_state->sock_wait_type == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "_SockWait",
                                 (PyObject *)fl_state->sock_wait_type);
}
