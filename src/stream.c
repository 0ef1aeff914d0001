/* stream.c: the stream transport: asyncio's Transport over a connected
 * TCP or Unix stream socket, in C.
 *
 * One engine (libuv's stream.c is the model, uvloop's handles/ for the
 * Python side): reading is a readiness callback on the C watch API that
 * recv()s into a buffer shared by every transport of the process, then
 * hands the protocol data_received(bytes) (or, for a BufferedProtocol,
 * get_buffer/buffer_updated with recv_into the protocol's own buffer).
 * Writing tries send() at once and queues only what the kernel did not
 * take, without copying bytes objects; the queue is flushed with sendmsg()
 * when the socket is writable.  Water marks drive pause_writing and
 * resume_writing; connection_lost runs exactly once, from the ready
 * queue, after the queue is flushed (close) or dropped (abort, errors).
 *
 * Behaviour follows asyncio's _SelectorSocketTransport of the running
 * Python version (selector_events.py): the same checks in the same order,
 * the same messages and exception-handler contexts, the same debug logs.
 * Protocol callbacks the loop makes run in one context per transport (the
 * `context` given, else a copy of the one current when the transport was
 * made), as uvloop's do and as 3.15's asyncio does with `context=`.
 *
 * Every callback into Python can re-enter the transport (close, abort,
 * write, set_protocol) or anything else: state is updated before the call
 * and checked again after it.
 */
#include "stream.h"
#include "io.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <structmember.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* asyncio's _SelectorTransport.max_size: what one recv() asks for. */
#define FL_READ_SIZE (256 * 1024)
/* A read at least this large makes the transport's next read go straight
 * into a bytes object (read_large). */
#define FL_LARGE_READ (32 * 1024)
/* iovecs per sendmsg(). */
#define FL_IOV_BATCH 128

static Py_ssize_t log_threshold_connlost_writes;
static Py_ssize_t extra_offset; /* BaseTransport's _extra slot */
static char *read_buffer;       /* FL_READ_SIZE bytes, made on first use */
/* Large reads (see read_large): fl_state->spare_bytes, a bytes object of
 * FL_READ_SIZE bytes that recv() fills directly, handed to data_received()
 * shrunk to what came in, and taken back when nobody kept it.  NULL when in
 * use or not made.
 * Medium reads (from pymalloc's limit up to FL_LARGE_READ) are copied into
 * a bytes object that the C library's malloc() provides: a malloc() and a
 * free() per read, some 600 instructions for a 1 KiB message (glibc keeps
 * no per-thread cache for blocks that large).  The bytes object of the
 * last such read, when data_received() did not keep it, is kept in
 * fl_state->spare_medium with its allocation (fl_state->spare_medium_cap
 * bytes) and reused, shrunk to size, for the next read of at most that
 * size and at least half of it.  NULL when in use or not made. */
/* Below this, bytes objects come from pymalloc (cheap) or are singletons. */
#define FL_SPARE_MEDIUM_MIN 512

/* The storage of the __slots__ of _FlowControlMixin and BaseTransport
 * (_extra, _loop, _protocol_paused, _high_water, _low_water), in the
 * order CPython lays them out.  `_extra` holds the extra-info dict; the
 * others stay NULL: this type's own descriptors shadow them. */
#define FL_STREAM_BASE_SLOTS 5

typedef struct {
    PyObject *owner; /* exact bytes object holding the data (strong) */
    const char *ptr; /* first byte not sent yet */
    Py_ssize_t len;  /* bytes not sent yet */
} fl_wchunk;

typedef struct {
    PyObject_HEAD PyObject *base_slots[FL_STREAM_BASE_SLOTS];
    FLLoop *loop;           /* NULL once connection_lost has run */
    PyObject *sock;         /* socket.socket; NULL once closed */
    PyObject *protocol;     /* NULL once connection_lost has run */
    PyObject *server;       /* asyncio Server, or NULL */
    PyObject *context;      /* contextvars.Context of protocol callbacks */
    PyObject *empty_waiter; /* sendfile's, or NULL */
    PyObject *high_obj;     /* the water marks as given (for the getter) */
    PyObject *low_obj;
    PyObject *dict;
    PyObject *weakreflist;
    /* Write queue: a ring of chunks, capacity a power of two. */
    fl_wchunk *wq;
    Py_ssize_t wq_head, wq_len, wq_cap;
    Py_ssize_t wq_size; /* bytes queued */
    Py_ssize_t high_water, low_water;
    Py_ssize_t conn_lost; /* asyncio's _conn_lost counter */
    int fd;
    char closing;         /* close() or a fatal error: no more reading */
    char eof;             /* write_eof() */
    char paused;          /* pause_reading() */
    char protocol_paused; /* pause_writing() called, resume not yet */
    char buffered;        /* the protocol is a BufferedProtocol */
    char lost_done;       /* connection_lost has run (or is running) */
    char large_reads;     /* the last read was at least FL_LARGE_READ */
} FLStream;

#define STREAM_EXTRA(t) (*(PyObject **)((char *)(t) + extra_offset))

/* ---- helpers ---------------------------------------------------------- */

/* logger.debug(fmt, *args, [exc_info=exc]); errors are unraisable. */
static void
log_debug(PyObject *exc, const char *fmt, PyObject *a, PyObject *b)
{
    PyObject *saved = fl_err_fetch();
    PyObject *text = PyUnicode_FromString(fmt);
    PyObject *res = NULL;
    if (text != NULL) {
        PyObject *args[4] = {fl_state->logger, text, a, b};
        size_t nargs = 2 + (a != NULL) + (b != NULL);
        if (exc != NULL) {
            PyObject *kwnames = PyTuple_Pack(1, fl_state->str_exc_info);
            if (kwnames != NULL) {
                PyObject *kwargs[5] = {args[0], args[1], args[2], args[3]};
                kwargs[nargs] = exc;
                res = PyObject_VectorcallMethod(fl_state->str_debug, kwargs,
                                                nargs, kwnames);
                Py_DECREF(kwnames);
            }
        } else {
            res = PyObject_VectorcallMethod(fl_state->str_debug, args, nargs,
                                            NULL);
        }
        Py_DECREF(text);
    }
    if (res == NULL) {
        PyErr_WriteUnraisable(fl_state->logger);
    }
    Py_XDECREF(res);
    fl_err_restore(saved);
}

/* Enters the transport's context for a callback the loop makes.  Returns
 * whether it was entered: a context already entered further up (shared
 * with another transport whose callback is running) is used as it is. */
static inline int
ctx_enter(FLStream *t)
{
    if (PyContext_Enter(t->context) < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static inline void
ctx_exit(FLStream *t, int entered)
{
    if (entered) {
        PyObject *exc = PyErr_Occurred() ? fl_err_fetch() : NULL;
        if (PyContext_Exit(t->context) < 0) {
            PyErr_WriteUnraisable((PyObject *)t);
        }
        fl_err_restore(exc);
    }
}

/* protocol.<name>(arg) (arg NULL: no argument), holding the protocol while
 * it runs (the callback may replace it).  New reference or NULL. */
static inline PyObject *
call_protocol(FLStream *t, PyObject *name, PyObject *arg)
{
    PyObject *protocol = t->protocol;
    if (protocol == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(protocol);
    PyObject *args[2] = {protocol, arg};
    PyObject *res = PyObject_VectorcallMethod(
        name, args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(protocol);
    return res;
}

/* ---- the write queue ---------------------------------------------- */

static int
wq_grow(FLStream *t)
{
    Py_ssize_t cap = t->wq_cap ? t->wq_cap * 2 : 8;
    fl_wchunk *wq = PyMem_Malloc(cap * sizeof(fl_wchunk));
    if (wq == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->wq_len; i++) {
        wq[i] = t->wq[(t->wq_head + i) & (t->wq_cap - 1)];
    }
    PyMem_Free(t->wq);
    t->wq = wq;
    t->wq_cap = cap;
    t->wq_head = 0;
    return 0;
}

/* Queues `len` bytes at `ptr`, which live in `data` (borrowed).  An exact
 * bytes object is kept as it is; anything else (mutable, or a subclass
 * whose release could run code) is copied.  0 or -1 (MemoryError). */
static int
wq_push(FLStream *t, PyObject *data, const char *ptr, Py_ssize_t len)
{
    assert(len > 0);
    if (t->wq_len == t->wq_cap && wq_grow(t) < 0) {
        return -1;
    }
    PyObject *owner;
    if (PyBytes_CheckExact(data)) {
        owner = Py_NewRef(data);
    } else {
        owner = PyBytes_FromStringAndSize(ptr, len);
        if (owner == NULL) {
            return -1;
        }
        ptr = PyBytes_AS_STRING(owner);
    }
    fl_wchunk *c = &t->wq[(t->wq_head + t->wq_len) & (t->wq_cap - 1)];
    c->owner = owner;
    c->ptr = ptr;
    c->len = len;
    t->wq_len++;
    t->wq_size += len;
    return 0;
}

/* Drops everything queued.  Releasing exact bytes objects runs no Python
 * code. */
static void
wq_clear(FLStream *t)
{
    for (Py_ssize_t i = 0; i < t->wq_len; i++) {
        Py_DECREF(t->wq[(t->wq_head + i) & (t->wq_cap - 1)].owner);
    }
    t->wq_head = t->wq_len = 0;
    t->wq_size = 0;
}

/* Removes the first `n` bytes of the queue. */
static void
wq_consume(FLStream *t, Py_ssize_t n)
{
    t->wq_size -= n;
    while (n > 0) {
        assert(t->wq_len > 0);
        fl_wchunk *c = &t->wq[t->wq_head];
        if (c->len > n) {
            c->ptr += n;
            c->len -= n;
            return;
        }
        n -= c->len;
        Py_DECREF(c->owner);
        t->wq_head = (t->wq_head + 1) & (t->wq_cap - 1);
        t->wq_len--;
    }
}

/* sendmsg() of the queue until it is empty or the socket is full.  0, or
 * -1 with OSError set. */
static int
wq_send(FLStream *t)
{
    struct iovec iov[FL_IOV_BATCH];
    while (t->wq_len > 0) {
        int cnt = t->wq_len < FL_IOV_BATCH ? (int)t->wq_len : FL_IOV_BATCH;
        Py_ssize_t total = 0;
        for (int i = 0; i < cnt; i++) {
            fl_wchunk *c = &t->wq[(t->wq_head + i) & (t->wq_cap - 1)];
            iov[i].iov_base = (void *)c->ptr;
            iov[i].iov_len = (size_t)c->len;
            total += c->len;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        Py_ssize_t n = sendmsg(t->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        wq_consume(t, n);
        if (n < total) {
            return 0; /* the socket's buffer is full */
        }
    }
    return 0;
}

/* ---- watching --------------------------------------------------------- */

static int read_ready(PyObject *self, PyObject *unused);
static int write_ready(PyObject *self, PyObject *unused);

static inline int
start_reading(FLStream *t)
{
    return fl_io_start(t->loop, t->fd, FL_IO_READ, read_ready, (PyObject *)t);
}

static inline void
stop_watching(FLStream *t, int events)
{
    if (t->loop == NULL) {
        return;
    }
    int rc = 0;
    if (events & FL_IO_READ) {
        rc |=
            fl_io_stop(t->loop, t->fd, FL_IO_READ, read_ready, (PyObject *)t);
    }
    if (events & FL_IO_WRITE) {
        rc |= fl_io_stop(t->loop, t->fd, FL_IO_WRITE, write_ready,
                         (PyObject *)t);
    }
    if (rc < 0) {
        /* The watch is gone all the same; nothing to tell the caller. */
        PyErr_WriteUnraisable((PyObject *)t);
    }
}

static inline int
is_reading(FLStream *t)
{
    return !t->closing && !t->paused;
}

/* ---- closing ---------------------------------------------------------- */

static int connection_lost_ready(PyObject *self, PyObject *exc);

/* asyncio's call_soon(self._call_connection_lost, exc).  0 or -1 (the
 * loop is closed: RuntimeError, as call_soon raises). */
static int
schedule_connection_lost(FLStream *t, PyObject *exc)
{
    if (t->loop == NULL || fl_loop_check_closed(t->loop) < 0) {
        if (t->loop == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        }
        return -1;
    }
    return fl_loop_enqueue(t->loop, connection_lost_ready, (PyObject *)t,
                           exc == Py_None ? NULL : exc);
}

/* asyncio's _force_close(exc): drop the write queue, stop reading, and
 * schedule connection_lost(exc), once.  0 or -1. */
static int
force_close(FLStream *t, PyObject *exc)
{
    if (t->conn_lost) {
        return 0;
    }
    if (t->wq_len > 0) {
        wq_clear(t);
        stop_watching(t, FL_IO_WRITE);
    }
    if (!t->closing) {
        t->closing = 1;
        stop_watching(t, FL_IO_READ);
    }
    t->conn_lost++;
    return schedule_connection_lost(t, exc);
}

/* asyncio's _fatal_error(exc, message): OSErrors are only logged in debug
 * mode, anything else goes to the exception handler; then force_close.
 * `exc` borrowed.  0 or -1. */
static int
fatal_error(FLStream *t, PyObject *exc, const char *message)
{
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        if (t->loop != NULL && t->loop->debug) {
            PyObject *m = PyUnicode_FromString(message);
            if (m != NULL) {
                log_debug(exc, "%r: %s", (PyObject *)t, m);
                Py_DECREF(m);
            } else {
                PyErr_WriteUnraisable((PyObject *)t);
            }
        }
    } else {
        fl_loop_report_quietly((PyObject *)t->loop, message, exc,
                               fl_state->str_transport, (PyObject *)t,
                               fl_state->str_protocol, t->protocol, NULL);
    }
    return force_close(t, exc);
}

/* The current exception as a fatal error.  SystemExit and
 * KeyboardInterrupt stay set (-1: they leave the loop); anything else is
 * consumed (0, or -1 when closing failed). */
static int
fatal_current(FLStream *t, const char *message)
{
    if (fl_is_fatal_error()) {
        return -1;
    }
    PyObject *exc = fl_err_fetch();
    int rc = fatal_error(t, exc, message);
    Py_DECREF(exc);
    return rc;
}

/* A fatal error inside a readiness callback: whatever fatal_current could
 * not hand on is reported as the loop reports callback errors. */
static int report_callback_error(FLStream *t, const char *what);

static int
fatal_in_callback(FLStream *t, const char *message)
{
    if (fatal_current(t, message) < 0) {
        if (fl_is_fatal_error()) {
            return -1;
        }
        return report_callback_error(t, "_read_ready()");
    }
    return 0;
}

static int
stream_close_impl(FLStream *t)
{
    if (t->closing) {
        return 0;
    }
    t->closing = 1;
    stop_watching(t, FL_IO_READ);
    if (t->wq_len == 0) {
        t->conn_lost++;
        stop_watching(t, FL_IO_WRITE);
        return schedule_connection_lost(t, NULL);
    }
    return 0;
}

/* Calls `method` of `obj` with `arg` (may be NULL); errors unraisable. */
static void
call_quietly(PyObject *obj, PyObject *method, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    PyObject *res = PyObject_VectorcallMethod(
        method, args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (res == NULL) {
        PyErr_WriteUnraisable(obj);
    }
    Py_XDECREF(res);
}

/* server._detach(), with the transport from 3.13 on. */
static int
server_detach(PyObject *server, PyObject *t)
{
    PyObject *args[2] = {server, t};
#if PY_VERSION_HEX >= 0x030D0000
    size_t nargs = 2;
#else
    size_t nargs = 1;
#endif
    PyObject *res = PyObject_VectorcallMethod(
        fl_state->str_detach, args, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Ends the transport after connection_lost: the socket closed, the loop,
 * protocol and server let go, sendfile's waiter failed.  Detaches
 * everything first, then calls out.  0, or -1 with an exception set. */
static int
finish_lost(FLStream *t)
{
    PyObject *sock = t->sock, *protocol = t->protocol;
    PyObject *loop = (PyObject *)t->loop, *server = t->server;
    PyObject *waiter = t->empty_waiter;
    t->sock = t->protocol = t->server = t->empty_waiter = NULL;
    t->loop = NULL;
    int rc = 0;
    PyObject *err = NULL;
    if (sock != NULL) {
        PyObject *res = PyObject_CallMethodNoArgs(sock, fl_state->str_close);
        if (res == NULL) {
            err = fl_err_fetch();
        }
        Py_XDECREF(res);
    }
    if (server != NULL && server_detach(server, (PyObject *)t) < 0) {
        if (err == NULL) {
            err = fl_err_fetch();
        } else {
            PyErr_WriteUnraisable((PyObject *)t);
        }
    }
    if (err != NULL) {
        fl_err_restore(err);
        rc = -1;
    }
    if (waiter != NULL) {
        PyObject *exc = fl_err_fetch();
        PyObject *err = PyObject_CallOneArg(
            PyExc_ConnectionError, fl_state->str_connection_closed_msg);
        if (err != NULL) {
            call_quietly(waiter, fl_state->str_set_exception, err);
            Py_DECREF(err);
        } else {
            PyErr_WriteUnraisable((PyObject *)t);
        }
        fl_err_restore(exc);
    }
    Py_XDECREF(sock);
    Py_XDECREF(protocol);
    Py_XDECREF(loop);
    Py_XDECREF(server);
    Py_XDECREF(waiter);
    return rc;
}

/* Reports an error of one of the loop's callbacks, as asyncio's Handle
 * does for the transport's methods ("Exception in callback ..."). */
static int
report_callback_error(FLStream *t, const char *what)
{
    if (fl_is_fatal_error()) {
        return -1;
    }
    PyObject *exc = fl_err_fetch();
    PyObject *msg = PyUnicode_FromFormat("Exception in callback %s.%s",
                                         Py_TYPE(t)->tp_name, what);
    if (msg == NULL) {
        PyErr_WriteUnraisable((PyObject *)t);
    } else {
        fl_loop_report_quietly(
            (PyObject *)t->loop ? (PyObject *)t->loop : NULL,
            PyUnicode_AsUTF8(msg), exc, fl_state->str_transport, (PyObject *)t,
            fl_state->str_protocol, t->protocol, NULL);
        Py_DECREF(msg);
    }
    Py_XDECREF(exc);
    return 0;
}

/* asyncio's _call_connection_lost(exc): protocol.connection_lost(exc),
 * then the socket is closed whatever it did. */
static int
call_connection_lost(FLStream *t, PyObject *exc)
{
    if (t->lost_done) {
        return 0;
    }
    t->lost_done = 1;
    /* Held: the ready entry that got here holds it too, but
     * write_ready calls this directly. */
    Py_INCREF(t);
    FLLoop *loop = t->loop;
    Py_XINCREF(loop);
    int entered = ctx_enter(t);
    PyObject *res =
        call_protocol(t, fl_state->str_connection_lost, exc ? exc : Py_None);
    ctx_exit(t, entered);
    PyObject *err = res == NULL ? fl_err_fetch() : NULL;
    Py_XDECREF(res);
    int rc = finish_lost(t);
    if (err != NULL) {
        if (rc < 0) {
            PyErr_WriteUnraisable((PyObject *)t);
        }
        fl_err_restore(err);
        rc = -1;
    }
    if (rc < 0) {
        /* Reported to the loop the transport had. */
        FLLoop *saved = t->loop;
        t->loop = loop;
        rc = report_callback_error(t, "_call_connection_lost()");
        t->loop = saved;
    }
    Py_XDECREF(loop);
    Py_DECREF(t);
    return rc;
}

static int
connection_lost_ready(PyObject *self, PyObject *exc)
{
    return call_connection_lost((FLStream *)self, exc);
}

/* ---- flow control ----------------------------------------------------- */

/* asyncio's _maybe_pause_protocol.  0, or -1 (SystemExit and
 * KeyboardInterrupt only: other errors go to the exception handler). */
static int
maybe_pause_protocol(FLStream *t)
{
    if (t->wq_size <= t->high_water || t->protocol_paused) {
        return 0;
    }
    t->protocol_paused = 1;
    PyObject *res = call_protocol(t, fl_state->str_pause_writing, NULL);
    if (res == NULL) {
        if (fl_is_fatal_error()) {
            return -1;
        }
        PyObject *exc = fl_err_fetch();
        fl_loop_report_quietly((PyObject *)t->loop,
                               "protocol.pause_writing() failed", exc,
                               fl_state->str_transport, (PyObject *)t,
                               fl_state->str_protocol, t->protocol, NULL);
        Py_DECREF(exc);
        return 0;
    }
    Py_DECREF(res);
    return 0;
}

static int
maybe_resume_protocol(FLStream *t)
{
    if (!t->protocol_paused || t->wq_size > t->low_water) {
        return 0;
    }
    t->protocol_paused = 0;
    PyObject *res = call_protocol(t, fl_state->str_resume_writing, NULL);
    if (res == NULL) {
        if (fl_is_fatal_error()) {
            return -1;
        }
        PyObject *exc = fl_err_fetch();
        fl_loop_report_quietly((PyObject *)t->loop,
                               "protocol.resume_writing() failed", exc,
                               fl_state->str_transport, (PyObject *)t,
                               fl_state->str_protocol, t->protocol, NULL);
        Py_DECREF(exc);
        return 0;
    }
    Py_DECREF(res);
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

static int
on_eof(FLStream *t)
{
    if (t->loop->debug) {
        log_debug(NULL, "%r received EOF", (PyObject *)t, NULL);
    }
    int entered = ctx_enter(t);
    PyObject *res = call_protocol(t, fl_state->str_eof_received, NULL);
    int keep_open = res ? PyObject_IsTrue(res) : -1;
    Py_XDECREF(res);
    ctx_exit(t, entered);
    if (keep_open < 0) {
        return fatal_in_callback(
            t, "Fatal error: protocol.eof_received() call failed.");
    }
    if (keep_open) {
        /* The protocol may still write; nothing more can be read. */
        stop_watching(t, FL_IO_READ);
        return 0;
    }
    if (stream_close_impl(t) < 0) {
        return report_callback_error(t, "_read_ready()");
    }
    return 0;
}

/* recv() that retries EINTR.  n >= 0, or -1 with errno set. */
static inline Py_ssize_t
recv_retry(int fd, void *buf, size_t len)
{
    for (;;) {
        Py_ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0 || errno != EINTR) {
            return n;
        }
    }
}

static int
read_buffered(FLStream *t)
{
    int entered = ctx_enter(t);
    /* fastloop's SSLProtocol: its C methods, without a method call. */
    int tls = Py_TYPE(t->protocol) == fl_state->tls_protocol_type;
    PyObject *minus_one = PyLong_FromLong(-1);
    PyObject *buf =
        minus_one == NULL ? NULL
        : tls             ? fl_tls_get_buffer(t->protocol, minus_one)
              : call_protocol(t, fl_state->str_get_buffer, minus_one);
    Py_XDECREF(minus_one);
    Py_ssize_t size = buf ? PyObject_Size(buf) : -1;
    if (size == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
    }
    if (size <= 0) {
        Py_XDECREF(buf);
        ctx_exit(t, entered);
        return fatal_in_callback(
            t, "Fatal error: protocol.get_buffer() call failed.");
    }
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        ctx_exit(t, entered);
        return fatal_in_callback(t, "Fatal read error on socket transport");
    }
    Py_ssize_t n = recv_retry(t->fd, view.buf, (size_t)view.len);
    int err = errno;
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (n < 0) {
        ctx_exit(t, entered);
        if (err == EAGAIN || err == EWOULDBLOCK) {
            return 0;
        }
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return fatal_in_callback(t, "Fatal read error on socket transport");
    }
    if (n == 0) {
        ctx_exit(t, entered);
        return on_eof(t);
    }
    PyObject *nbytes = PyLong_FromSsize_t(n);
    PyObject *res = NULL;
    if (nbytes != NULL && tls && t->protocol != NULL &&
        Py_TYPE(t->protocol) == fl_state->tls_protocol_type) {
        PyObject *protocol = Py_NewRef(t->protocol);
        res = fl_tls_buffer_updated(protocol, nbytes);
        Py_DECREF(protocol);
    } else if (nbytes != NULL) {
        res = call_protocol(t, fl_state->str_buffer_updated, nbytes);
    }
    Py_XDECREF(nbytes);
    ctx_exit(t, entered);
    if (res == NULL) {
        return fatal_in_callback(
            t, "Fatal error: protocol.buffer_updated() call failed.");
    }
    Py_DECREF(res);
    return 0;
}

/* Sets the length of a bytes object only this code holds (its
 * allocation stays FL_READ_SIZE bytes), as _PyBytes_Resize would without
 * moving it. */
static void
set_bytes_size(PyObject *b, Py_ssize_t n)
{
    assert(PyBytes_CheckExact(b) && Py_REFCNT(b) == 1 && n <= FL_READ_SIZE);
    Py_SET_SIZE(b, n);
    PyBytes_AS_STRING(b)[n] = '\0';
    _Py_COMP_DIAG_PUSH _Py_COMP_DIAG_IGNORE_DEPR_DECLS((PyBytesObject *)b)
        ->ob_shash = -1; /* no hash of other contents */
    _Py_COMP_DIAG_POP
}

/* A bytes object holding buf[0:n], for data_received().  *cap is set to
 * the size of its allocation when it may be reused (release_medium), else
 * to 0.  New reference, or NULL with an exception set. */
static PyObject *
medium_bytes(const char *buf, Py_ssize_t n, Py_ssize_t *cap)
{
    *cap = 0;
    if (n < FL_SPARE_MEDIUM_MIN || n >= FL_LARGE_READ) {
        return PyBytes_FromStringAndSize(buf, n);
    }
    PyObject *b = fl_state->spare_medium;
    if (b != NULL && n <= fl_state->spare_medium_cap &&
        n >= fl_state->spare_medium_cap / 2) {
        assert(PyBytes_CheckExact(b) && Py_REFCNT(b) == 1);
        fl_state->spare_medium = NULL;
        *cap = fl_state->spare_medium_cap;
        set_bytes_size(b, n);
        memcpy(PyBytes_AS_STRING(b), buf, (size_t)n);
        return b;
    }
    b = PyBytes_FromStringAndSize(buf, n);
    if (b != NULL) {
        *cap = n;
    }
    return b;
}

/* Releases what medium_bytes() returned: kept as the spare when nobody
 * else holds it (the protocol did not keep it). */
static void
release_medium(PyObject *b, Py_ssize_t cap)
{
    if (cap == 0 || Py_REFCNT(b) != 1) {
        Py_DECREF(b);
        return;
    }
    PyObject *old = fl_state->spare_medium;
    fl_state->spare_medium = b;
    fl_state->spare_medium_cap = cap;
    /* A bytes object: freeing it runs no Python code. */
    Py_XDECREF(old);
}

/* Gives the spare back (or drops it when the protocol kept it). */
static void
release_spare(PyObject *b)
{
    if (Py_REFCNT(b) == 1 && fl_state->spare_bytes == NULL) {
        set_bytes_size(b, FL_READ_SIZE);
        fl_state->spare_bytes = b;
    } else {
        Py_DECREF(b);
    }
}

/* A read after a large one: recv() straight into a bytes object, which a
 * large message then reaches data_received() in without being copied, and
 * which is used again for the next read when the protocol did not keep it
 * (no allocation per read either: asyncio allocates FL_READ_SIZE bytes for
 * every recv(), which costs it an mmap or a heap trim per read past
 * malloc's thresholds).  A small message is copied out as usual. */
static int
read_large(FLStream *t)
{
    PyObject *buf = fl_state->spare_bytes;
    fl_state->spare_bytes = NULL;
    if (buf == NULL) {
        buf = PyBytes_FromStringAndSize(NULL, FL_READ_SIZE);
        if (buf == NULL) {
            return fatal_in_callback(t,
                                     "Fatal read error on socket transport");
        }
    }
    Py_ssize_t n = recv_retry(t->fd, PyBytes_AS_STRING(buf), FL_READ_SIZE);
    if (n < 0) {
        int err = errno;
        release_spare(buf);
        if (err == EAGAIN || err == EWOULDBLOCK) {
            return 0;
        }
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return fatal_in_callback(t, "Fatal read error on socket transport");
    }
    if (n == 0) {
        release_spare(buf);
        return on_eof(t);
    }
    t->large_reads = n >= FL_LARGE_READ;
    PyObject *data;
    Py_ssize_t cap = 0;
    if (t->large_reads) {
        set_bytes_size(buf, n);
        data = buf;
        buf = NULL;
    } else {
        data = medium_bytes(PyBytes_AS_STRING(buf), n, &cap);
        release_spare(buf);
        if (data == NULL) {
            return fatal_in_callback(t,
                                     "Fatal read error on socket transport");
        }
    }
    int entered = ctx_enter(t);
    PyObject *res = call_protocol(t, fl_state->str_data_received, data);
    ctx_exit(t, entered);
    if (Py_SIZE(data) >= FL_LARGE_READ) {
        release_spare(data);
    } else {
        release_medium(data, cap);
    }
    if (res == NULL) {
        return fatal_in_callback(
            t, "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(res);
    return 0;
}

/* The socket is readable (a ready-queue entry holds the transport). */
static int
read_ready(PyObject *self, PyObject *Py_UNUSED(unused))
{
    FLStream *t = (FLStream *)self;
    /* Stopped since the poll found it ready (asyncio's handle would be
     * cancelled): nothing to do. */
    if (t->conn_lost || t->loop == NULL ||
        !fl_io_is_watching(t->loop, t->fd, FL_IO_READ, read_ready, self)) {
        return 0;
    }
    if (t->buffered) {
        return read_buffered(t);
    }
    if (t->large_reads) {
        return read_large(t);
    }
    if (read_buffer == NULL) {
        read_buffer = PyMem_RawMalloc(FL_READ_SIZE);
        if (read_buffer == NULL) {
            PyErr_NoMemory();
            return fatal_in_callback(t,
                                     "Fatal read error on socket transport");
        }
    }
    Py_ssize_t n = recv_retry(t->fd, read_buffer, FL_READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return fatal_in_callback(t, "Fatal read error on socket transport");
    }
    if (n == 0) {
        return on_eof(t);
    }
    t->large_reads = n >= FL_LARGE_READ;
    Py_ssize_t cap;
    PyObject *data = medium_bytes(read_buffer, n, &cap);
    if (data == NULL) {
        return fatal_in_callback(t, "Fatal read error on socket transport");
    }
    int entered = ctx_enter(t);
    PyObject *res = call_protocol(t, fl_state->str_data_received, data);
    ctx_exit(t, entered);
    release_medium(data, cap);
    if (res == NULL) {
        return fatal_in_callback(
            t, "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(res);
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

/* The queue is empty again: what asyncio's _write_ready does then. */
static int
on_drained(FLStream *t)
{
    stop_watching(t, FL_IO_WRITE);
    if (t->empty_waiter != NULL) {
        PyObject *waiter = Py_NewRef(t->empty_waiter);
        PyObject *args[2] = {waiter, Py_None};
        PyObject *res = PyObject_VectorcallMethod(
            fl_state->str_set_result, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
            NULL);
        Py_DECREF(waiter);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    if (t->closing) {
        if (!t->conn_lost) {
            t->conn_lost++;
            return call_connection_lost(t, NULL);
        }
    } else if (t->eof) {
        if (shutdown(t->fd, SHUT_WR) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return 0;
}

/* asyncio's _write_ready body: flush what the socket takes, then resume
 * the protocol or finish closing.  0, or -1 with an exception set (for the
 * caller to report or raise). */
static int
flush(FLStream *t)
{
    if (wq_send(t) < 0) {
        stop_watching(t, FL_IO_WRITE);
        wq_clear(t);
        if (fl_is_fatal_error()) {
            return -1;
        }
        PyObject *exc = fl_err_fetch();
        int rc = fatal_error(t, exc, "Fatal write error on socket transport");
        if (rc == 0 && t->empty_waiter != NULL) {
            PyObject *waiter = Py_NewRef(t->empty_waiter);
            PyObject *args[2] = {waiter, exc};
            PyObject *res = PyObject_VectorcallMethod(
                fl_state->str_set_exception, args,
                2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(waiter);
            rc = res ? 0 : -1;
            Py_XDECREF(res);
        }
        Py_DECREF(exc);
        return rc;
    }
    if (maybe_resume_protocol(t) < 0) { /* may queue more, or close */
        return -1;
    }
    if (t->conn_lost) {
        return 0; /* resume_writing aborted it: connection_lost follows */
    }
    if (t->wq_len == 0) {
        return on_drained(t);
    }
    return 0;
}

/* The socket is writable (a ready-queue entry holds the transport). */
static int
write_ready(PyObject *self, PyObject *Py_UNUSED(unused))
{
    FLStream *t = (FLStream *)self;
    if (t->conn_lost || t->loop == NULL ||
        !fl_io_is_watching(t->loop, t->fd, FL_IO_WRITE, write_ready, self)) {
        return 0;
    }
    if (t->wq_len == 0) {
        stop_watching(t, FL_IO_WRITE);
        return 0;
    }
    int entered = ctx_enter(t);
    int rc = flush(t);
    ctx_exit(t, entered);
    if (rc < 0) {
        return report_callback_error(t, "_write_ready()");
    }
    return 0;
}

/* What write() and writelines() check first (asyncio's order). */
static int
check_writable(FLStream *t, const char *method)
{
    if (t->eof) {
        PyErr_Format(PyExc_RuntimeError, "Cannot call %s() after write_eof()",
                     method);
        return -1;
    }
    if (t->empty_waiter != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "unable to %s; sendfile is in progress", method);
        return -1;
    }
    return 0;
}

/* A write after the connection was lost: counted, and logged once the
 * count reaches asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES. */
static void
count_lost_write(FLStream *t)
{
    if (t->conn_lost >= log_threshold_connlost_writes) {
        PyObject *res = PyObject_CallMethod(fl_state->logger, "warning", "s",
                                            "socket.send() raised exception.");
        if (res == NULL) {
            PyErr_WriteUnraisable((PyObject *)t);
        }
        Py_XDECREF(res);
    }
    t->conn_lost++;
}

static PyObject *
stream_write(FLStream *t, PyObject *data)
{
    const char *buf;
    Py_ssize_t len;
    Py_buffer view;
    view.obj = NULL;
    if (PyBytes_CheckExact(data)) {
        buf = PyBytes_AS_STRING(data);
        len = PyBytes_GET_SIZE(data);
    } else if (PyBytes_Check(data) || PyByteArray_Check(data) ||
               PyMemoryView_Check(data)) {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            /* A memoryview that is not contiguous: asyncio's send()
             * raises, which is a fatal write error. */
            if (t->eof || t->empty_waiter != NULL || t->conn_lost) {
                return NULL;
            }
            if (fatal_current(t, "Fatal write error on socket transport") <
                0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        buf = view.buf;
        len = view.len;
    } else {
        PyErr_Format(PyExc_TypeError,
#if PY_VERSION_HEX >= 0x030E0000
                     "data argument must be a bytes, bytearray, or "
                     "memoryview object, not '%.100s'",
#else
                     "data argument must be a bytes-like object, "
                     "not '%.100s'",
#endif
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    PyObject *result = NULL;
    if (check_writable(t, "write") < 0) {
        goto done;
    }
    if (len == 0) {
        goto ok;
    }
    if (t->conn_lost) {
        count_lost_write(t);
        goto ok;
    }
    if (t->wq_len == 0) {
        /* Try to send now. */
        Py_ssize_t n;
        do {
            n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                PyErr_SetFromErrno(PyExc_OSError);
                if (fatal_current(t, "Fatal write error on socket "
                                     "transport") < 0) {
                    goto done;
                }
                goto ok;
            }
            n = 0;
        }
        if (n == len) {
            goto ok;
        }
        /* Not all was sent: watch for writability. */
        if (fl_io_start(t->loop, t->fd, FL_IO_WRITE, write_ready,
                        (PyObject *)t) < 0) {
            goto done;
        }
        buf += n;
        len -= n;
    }
    if (wq_push(t, data, buf, len) < 0 || maybe_pause_protocol(t) < 0) {
        goto done;
    }
ok:
    result = Py_NewRef(Py_None);
done:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return result;
}

PyObject *
fl_stream_write(PyObject *transport, PyObject *data)
{
    return stream_write((FLStream *)transport, data);
}

static PyObject *
stream_writelines(FLStream *t, PyObject *list_of_data)
{
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11: WriteTransport.writelines: b''.join(list_of_data), written. */
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL) {
        return NULL;
    }
    PyObject *data =
        PyObject_CallMethodOneArg(empty, fl_state->str_join, list_of_data);
    Py_DECREF(empty);
    if (data == NULL) {
        return NULL;
    }
    PyObject *res = stream_write(t, data);
    Py_DECREF(data);
    return res;
#else
    if (check_writable(t, "writelines") < 0) {
        return NULL;
    }
    int nonempty = PyObject_IsTrue(list_of_data);
    if (nonempty <= 0) {
        return nonempty < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (t->conn_lost) {
        count_lost_write(t);
        Py_RETURN_NONE;
    }
    PyObject *it = PyObject_GetIter(list_of_data);
    if (it == NULL) {
        return NULL;
    }
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        Py_buffer view;
        int rc = PyObject_GetBuffer(item, &view, PyBUF_SIMPLE);
        if (rc < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError) &&
                !PyObject_CheckBuffer(item)) {
                PyErr_Format(PyExc_TypeError,
                             "memoryview: a bytes-like object is required, "
                             "not '%.100s'",
                             Py_TYPE(item)->tp_name);
            }
            Py_DECREF(item);
            Py_DECREF(it);
            return NULL;
        }
        /* gh-155888: an empty chunk can never be drained. */
        rc = view.len > 0 ? wq_push(t, item, view.buf, view.len) : 0;
        PyBuffer_Release(&view);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred() || t->wq_len == 0) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    if (flush(t) < 0) {
        return NULL;
    }
    if (t->wq_len > 0 && !t->conn_lost) {
        if (fl_io_start(t->loop, t->fd, FL_IO_WRITE, write_ready,
                        (PyObject *)t) < 0 ||
            maybe_pause_protocol(t) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
#endif
}

/* ---- the Python API --------------------------------------------------- */

static PyObject *
stream_write_eof(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    if (t->closing || t->eof) {
        Py_RETURN_NONE;
    }
    t->eof = 1;
    if (t->wq_len == 0 && shutdown(t->fd, SHUT_WR) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_can_write_eof(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

static PyObject *
stream_close(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    if (stream_close_impl(t) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_abort(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    if (force_close(t, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_force_close_meth(FLStream *t, PyObject *exc)
{
    if (force_close(t, exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_is_closing(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(t->closing);
}

static PyObject *
stream_is_reading(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(is_reading(t));
}

static PyObject *
stream_pause_reading(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    if (!is_reading(t)) {
        Py_RETURN_NONE;
    }
    t->paused = 1;
    stop_watching(t, FL_IO_READ);
    if (t->loop != NULL && t->loop->debug) {
        log_debug(NULL, "%r pauses reading", (PyObject *)t, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_resume_reading(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    if (t->closing || !t->paused) {
        Py_RETURN_NONE;
    }
    t->paused = 0;
    if (t->loop == NULL || start_reading(t) < 0) {
        if (t->loop == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        }
        return NULL;
    }
    if (t->loop->debug) {
        log_debug(NULL, "%r resumes reading", (PyObject *)t, NULL);
    }
    Py_RETURN_NONE;
}

/* A water mark as a C size: floats are floored (the comparisons with
 * integer sizes are the same), huge values clamped. */
static int
water_mark(PyObject *v, Py_ssize_t *out)
{
    if (PyFloat_Check(v)) {
        double d = floor(PyFloat_AS_DOUBLE(v));
        *out = d >= (double)PY_SSIZE_T_MAX   ? PY_SSIZE_T_MAX
               : d <= (double)PY_SSIZE_T_MIN ? PY_SSIZE_T_MIN
                                             : (Py_ssize_t)d;
        return 0;
    }
    PyObject *i = PyNumber_Index(v);
    if (i == NULL) {
        return -1;
    }
    *out = PyNumber_AsSsize_t(i, NULL); /* clamps */
    Py_DECREF(i);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* asyncio's _set_write_buffer_limits(high, low): NULL means None. */
static int
set_limits(FLStream *t, PyObject *high, PyObject *low)
{
    PyObject *h = NULL, *l = NULL;
    int rc = -1;
    if (high == NULL || high == Py_None) {
        if (low == NULL || low == Py_None) {
            h = PyLong_FromLong(64 * 1024);
        } else {
            PyObject *four = PyLong_FromLong(4);
            h = four ? PyNumber_Multiply(four, low) : NULL;
            Py_XDECREF(four);
        }
    } else {
        h = Py_NewRef(high);
    }
    if (h == NULL) {
        goto done;
    }
    if (low == NULL || low == Py_None) {
        PyObject *four = PyLong_FromLong(4);
        l = four ? PyNumber_FloorDivide(h, four) : NULL;
        Py_XDECREF(four);
    } else {
        l = Py_NewRef(low);
    }
    if (l == NULL) {
        goto done;
    }
    /* `not high >= low >= 0` */
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        goto done;
    }
    int ok = PyObject_RichCompareBool(h, l, Py_GE);
    if (ok > 0) {
        ok = PyObject_RichCompareBool(l, zero, Py_GE);
    }
    Py_DECREF(zero);
    if (ok < 0) {
        goto done;
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError,
                     "high (%R) must be >= low (%R) must be >= 0", h, l);
        goto done;
    }
    Py_ssize_t hv, lv;
    if (water_mark(h, &hv) < 0 || water_mark(l, &lv) < 0) {
        goto done;
    }
    t->high_water = hv;
    t->low_water = lv;
    Py_XSETREF(t->high_obj, h);
    Py_XSETREF(t->low_obj, l);
    h = l = NULL;
    rc = 0;
done:
    Py_XDECREF(h);
    Py_XDECREF(l);
    return rc;
}

static PyObject *
stream_set_write_buffer_limits(FLStream *t, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_write_buffer_limits",
                                     kwlist, &high, &low)) {
        return NULL;
    }
    if (set_limits(t, high, low) < 0 || maybe_pause_protocol(t) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_get_write_buffer_limits(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    return PyTuple_Pack(2, t->low_obj, t->high_obj);
}

static PyObject *
stream_get_write_buffer_size(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(t->wq_size);
}

static PyObject *
stream_get_protocol(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(t->protocol ? t->protocol : Py_None);
}

static int
set_protocol_impl(FLStream *t, PyObject *protocol)
{
    int buffered =
        PyObject_IsInstance(protocol, fl_state->buffered_protocol_type);
    if (buffered < 0) {
        return -1;
    }
    t->buffered = (char)buffered;
    Py_XSETREF(t->protocol, Py_NewRef(protocol));
    return 0;
}

static PyObject *
stream_set_protocol(FLStream *t, PyObject *protocol)
{
    if (set_protocol_impl(t, protocol) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stream_get_extra_info(FLStream *t, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    static const char *const names[] = {"name", "default"};
    PyObject *name = NULL, *dflt = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "get_extra_info() takes from 2 to 3 positional "
                     "arguments but %zd were given",
                     nargs + 1);
        return NULL;
    }
    if (nargs >= 1) {
        name = args[0];
    }
    if (nargs >= 2) {
        dflt = args[1];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, i);
        int which = -1;
        for (int j = 0; j < 2; j++) {
            if (PyUnicode_CompareWithASCIIString(kw, names[j]) == 0) {
                which = j;
            }
        }
        if (which < 0 || which < nargs) {
            PyErr_Format(PyExc_TypeError,
                         which < 0 ? "get_extra_info() got an unexpected "
                                     "keyword argument '%U'"
                                   : "get_extra_info() got multiple values "
                                     "for argument '%U'",
                         kw);
            return NULL;
        }
        if (which == 0) {
            name = args[nargs + i];
        } else {
            dflt = args[nargs + i];
        }
    }
    if (name == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "get_extra_info() missing 1 required positional "
                        "argument: 'name'");
        return NULL;
    }
    PyObject *extra = STREAM_EXTRA(t);
    if (extra == NULL) {
        return Py_NewRef(dflt);
    }
    if (PyDict_CheckExact(extra)) {
        PyObject *v = PyDict_GetItemWithError(extra, name);
        if (v != NULL) {
            return Py_NewRef(v);
        }
        return PyErr_Occurred() ? NULL : Py_NewRef(dflt);
    }
    return PyObject_CallMethod(extra, "get", "OO", name, dflt);
}

static PyObject *
stream_make_empty_waiter(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    if (t->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    if (t->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    PyObject *waiter = PyObject_CallMethodNoArgs((PyObject *)t->loop,
                                                 fl_state->str_create_future);
    if (waiter == NULL) {
        return NULL;
    }
    Py_XSETREF(t->empty_waiter, Py_NewRef(waiter));
    if (t->wq_len == 0) {
        PyObject *res = PyObject_CallMethodOneArg(
            waiter, fl_state->str_set_result, Py_None);
        if (res == NULL) {
            Py_DECREF(waiter);
            return NULL;
        }
        Py_DECREF(res);
    }
    return waiter;
}

static PyObject *
stream_reset_empty_waiter(FLStream *t, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(t->empty_waiter);
    Py_RETURN_NONE;
}

static PyObject *
stream_repr(FLStream *t)
{
    const char *name = Py_TYPE(t)->tp_name;
    const char *dot = strrchr(name, '.');
    name = dot ? dot + 1 : name;
    const char *state =
        t->sock == NULL ? " closed" : (t->closing ? " closing" : "");
    if (t->loop == NULL || !fl_loop_usable(t->loop)) {
        return PyUnicode_FromFormat("<%s%s fd=%d>", name, state, t->fd);
    }
    int reading = fl_io_is_watching(t->loop, t->fd, FL_IO_READ, NULL, NULL);
    int writing = fl_io_is_watching(t->loop, t->fd, FL_IO_WRITE, NULL, NULL);
    return PyUnicode_FromFormat("<%s%s fd=%d read=%s write=<%s, bufsize=%zd>>",
                                name, state, t->fd,
                                reading ? "polling" : "idle",
                                writing ? "polling" : "idle", t->wq_size);
}

/* ---- attributes asyncio's code and its users read ------------------- */

static PyObject *
get_sock(FLStream *t, void *c)
{
    return Py_NewRef(t->sock ? t->sock : Py_None);
}

static PyObject *
get_sock_fd(FLStream *t, void *c)
{
    return PyLong_FromLong(t->fd);
}

static PyObject *
get_loop(FLStream *t, void *c)
{
    return Py_NewRef(t->loop ? (PyObject *)t->loop : Py_None);
}

static PyObject *
get_protocol_attr(FLStream *t, void *c)
{
    return Py_NewRef(t->protocol ? t->protocol : Py_None);
}

static PyObject *
get_server(FLStream *t, void *c)
{
    return Py_NewRef(t->server ? t->server : Py_None);
}

static PyObject *
get_empty_waiter(FLStream *t, void *c)
{
    return Py_NewRef(t->empty_waiter ? t->empty_waiter : Py_None);
}

static PyObject *
get_closing(FLStream *t, void *c)
{
    return PyBool_FromLong(t->closing);
}

static PyObject *
get_eof(FLStream *t, void *c)
{
    return PyBool_FromLong(t->eof);
}

static PyObject *
get_paused(FLStream *t, void *c)
{
    return PyBool_FromLong(t->paused);
}

static PyObject *
get_protocol_paused(FLStream *t, void *c)
{
    return PyBool_FromLong(t->protocol_paused);
}

static PyObject *
get_conn_lost(FLStream *t, void *c)
{
    return PyLong_FromSsize_t(t->conn_lost);
}

static PyObject *
get_high_water(FLStream *t, void *c)
{
    return Py_NewRef(t->high_obj);
}

static PyObject *
get_low_water(FLStream *t, void *c)
{
    return Py_NewRef(t->low_obj);
}

static PyGetSetDef stream_getset[] = {
    {"_sock", (getter)get_sock, NULL, NULL, NULL},
    {"_sock_fd", (getter)get_sock_fd, NULL, NULL, NULL},
    {"_loop", (getter)get_loop, NULL, NULL, NULL},
    {"_protocol", (getter)get_protocol_attr, NULL, NULL, NULL},
    {"_server", (getter)get_server, NULL, NULL, NULL},
    {"_empty_waiter", (getter)get_empty_waiter, NULL, NULL, NULL},
    {"_closing", (getter)get_closing, NULL, NULL, NULL},
    {"_eof", (getter)get_eof, NULL, NULL, NULL},
    {"_paused", (getter)get_paused, NULL, NULL, NULL},
    {"_protocol_paused", (getter)get_protocol_paused, NULL, NULL, NULL},
    {"_conn_lost", (getter)get_conn_lost, NULL, NULL, NULL},
    {"_high_water", (getter)get_high_water, NULL, NULL, NULL},
    {"_low_water", (getter)get_low_water, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define FASTCALL_KW(fn) (PyCFunction)(void (*)(void))(fn)

static PyMethodDef stream_methods[] = {
    {"write", (PyCFunction)stream_write, METH_O,
     "Write bytes; what the socket does not take now is queued."},
    {"writelines", (PyCFunction)stream_writelines, METH_O,
     "Write an iterable of bytes-like objects."},
    {"write_eof", (PyCFunction)stream_write_eof, METH_NOARGS,
     "Shut down writing once the queue is flushed."},
    {"can_write_eof", (PyCFunction)stream_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)stream_close, METH_NOARGS,
     "Close once the queue is flushed; connection_lost(None) follows."},
    {"abort", (PyCFunction)stream_abort, METH_NOARGS,
     "Close now, dropping the queue."},
    {"is_closing", (PyCFunction)stream_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)stream_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)stream_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)stream_resume_reading, METH_NOARGS, NULL},
    {"set_write_buffer_limits", FASTCALL_KW(stream_set_write_buffer_limits),
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits", (PyCFunction)stream_get_write_buffer_limits,
     METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)stream_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"get_protocol", (PyCFunction)stream_get_protocol, METH_NOARGS, NULL},
    {"set_protocol", (PyCFunction)stream_set_protocol, METH_O, NULL},
    {"get_extra_info", FASTCALL_KW(stream_get_extra_info),
     METH_FASTCALL | METH_KEYWORDS,
     "get_extra_info(name, default=None): 'socket', 'sockname', "
     "'peername'..."},
    {"_force_close", (PyCFunction)stream_force_close_meth, METH_O, NULL},
    {"_make_empty_waiter", (PyCFunction)stream_make_empty_waiter, METH_NOARGS,
     NULL},
    {"_reset_empty_waiter", (PyCFunction)stream_reset_empty_waiter,
     METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- construction ----------------------------------------------------- */

/* The connection_made entry: protocol.connection_made(transport) (bound
 * when the transport was made, as asyncio's call_soon does), then reading
 * starts, then the waiter is woken. */
static int
start_ready(PyObject *self, PyObject *bound_and_waiter)
{
    FLStream *t = (FLStream *)self;
    PyObject *connection_made = PyTuple_GET_ITEM(bound_and_waiter, 0);
    PyObject *waiter = PyTuple_GET_ITEM(bound_and_waiter, 1);
#if PY_VERSION_HEX >= 0x030F0000
    int entered = ctx_enter(t);
    PyObject *res = PyObject_CallOneArg(connection_made, self);
    ctx_exit(t, entered);
#else
    /* Before 3.15 asyncio schedules connection_made with a copy of the
     * context of its own, so what it sets is not seen by data_received. */
    PyObject *res = NULL;
    PyObject *ctx = PyContext_Copy(t->context);
    if (ctx != NULL && PyContext_Enter(ctx) == 0) {
        res = PyObject_CallOneArg(connection_made, self);
        PyObject *exc = PyErr_Occurred() ? fl_err_fetch() : NULL;
        if (PyContext_Exit(ctx) < 0) {
            PyErr_WriteUnraisable(self);
        }
        fl_err_restore(exc);
    }
    Py_XDECREF(ctx);
#endif
    if (res == NULL) {
        if (fl_is_fatal_error()) {
            return -1;
        }
        /* As asyncio's Handle reports it. */
        PyObject *exc = fl_err_fetch();
        PyObject *args = PyTuple_Pack(1, self);
        PyObject *src = args ? PyObject_CallFunctionObjArgs(
                                   fl_state->format_callback_source,
                                   connection_made, args, NULL)
                             : NULL;
        PyObject *msg =
            src ? PyUnicode_FromFormat("Exception in callback %U", src) : NULL;
        if (msg != NULL) {
            fl_loop_report_quietly(t->loop ? (PyObject *)t->loop : NULL,
                                   PyUnicode_AsUTF8(msg), exc,
                                   fl_state->str_transport, self,
                                   fl_state->str_protocol, t->protocol, NULL);
        } else {
            PyErr_WriteUnraisable(self);
        }
        Py_XDECREF(args);
        Py_XDECREF(src);
        Py_XDECREF(msg);
        Py_DECREF(exc);
    }
    Py_XDECREF(res);
    if (t->loop != NULL && is_reading(t) && !t->conn_lost &&
        start_reading(t) < 0) {
        if (report_callback_error(t, "_add_reader()") < 0) {
            return -1;
        }
    }
    if (waiter != Py_None) {
        /* futures._set_result_unless_cancelled(waiter, None) */
        PyObject *cancelled =
            PyObject_CallMethodNoArgs(waiter, fl_state->str_cancelled);
        int is_cancelled = cancelled ? PyObject_IsTrue(cancelled) : -1;
        Py_XDECREF(cancelled);
        if (is_cancelled == 0) {
            res = PyObject_CallMethodOneArg(waiter, fl_state->str_set_result,
                                            Py_None);
            is_cancelled = res ? 0 : -1;
            Py_XDECREF(res);
        }
        if (is_cancelled < 0) {
            if (fl_is_fatal_error()) {
                return -1;
            }
            PyObject *exc = fl_err_fetch();
            fl_loop_report_quietly(t->loop ? (PyObject *)t->loop : NULL,
                                   "Exception in callback "
                                   "_set_result_unless_cancelled()",
                                   exc, NULL);
            Py_XDECREF(exc);
        }
    }
    return 0;
}

/* sock.<method>() for sockname/peername: None when it raises OSError. */
static PyObject *
sock_address(PyObject *sock, PyObject *method)
{
    PyObject *addr = PyObject_CallMethodNoArgs(sock, method);
    if (addr == NULL && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        addr = Py_NewRef(Py_None);
    }
    return addr;
}

/* An int attribute of the socket (family, type, proto) as _socket.socket
 * stores it; -1 with an exception set if it has none. */
static long
sock_int_attr(PyObject *sock, int which)
{
    PyObject *v;
    if (PyObject_TypeCheck(sock, fl_state->c_socket_type)) {
        PyObject *d = fl_state->socket_type_descr[which];
        v = Py_TYPE(d)->tp_descr_get(d, sock, (PyObject *)Py_TYPE(sock));
    } else {
        PyObject *names[3] = {fl_state->str_family, fl_state->str_type,
                              fl_state->str_proto};
        v = PyObject_GetAttr(sock, names[which]);
    }
    if (v == NULL) {
        return -1;
    }
    long r = PyLong_AsLong(v);
    Py_DECREF(v);
    return r;
}

/* base_events._set_nodelay: TCP_NODELAY on TCP sockets (as asyncio
 * decides it: from the socket object's family, type and proto). */
static int
set_nodelay(PyObject *sock, int fd)
{
    long family = sock_int_attr(sock, 0);
    long type = family >= 0 ? sock_int_attr(sock, 1) : -1;
    long proto = type >= 0 ? sock_int_attr(sock, 2) : -1;
    if (PyErr_Occurred()) {
        return -1;
    }
    if ((family == AF_INET || family == AF_INET6) && type == SOCK_STREAM &&
        proto == IPPROTO_TCP) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return 0;
}

static int
server_attach(PyObject *server, PyObject *t)
{
    PyObject *args[2] = {server, t};
#if PY_VERSION_HEX >= 0x030D0000
    size_t nargs = 2;
#else
    size_t nargs = 1;
#endif
    PyObject *res = PyObject_VectorcallMethod(
        fl_state->str_attach, args, nargs | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

static FLStream *
stream_alloc(PyTypeObject *type)
{
    FLStream *t = (FLStream *)type->tp_alloc(type, 0);
    if (t == NULL) {
        return NULL;
    }
    t->fd = -1;
    return t;
}

/* What asyncio's _SelectorSocketTransport.__init__ does, in its order. */
static int
stream_setup(FLStream *t, FLLoop *loop, PyObject *sock, int fd,
             PyObject *protocol, PyObject *waiter, PyObject *extra,
             PyObject *server, PyObject *context)
{
    /* _FlowControlMixin.__init__ */
    PyObject *dict = extra ? Py_NewRef(extra) : PyDict_New();
    if (dict == NULL) {
        return -1;
    }
    Py_XSETREF(STREAM_EXTRA(t), dict);
    Py_XSETREF(t->loop, (FLLoop *)Py_NewRef(loop));
    if (set_limits(t, NULL, NULL) < 0) {
        return -1;
    }
    if (context != NULL && context != Py_None) {
        if (!PyContext_CheckExact(context)) {
            PyErr_Format(PyExc_TypeError,
                         "context must be a contextvars.Context, not %.100s",
                         Py_TYPE(context)->tp_name);
            return -1;
        }
        Py_XSETREF(t->context, Py_NewRef(context));
    } else {
        Py_XSETREF(t->context, PyContext_CopyCurrent());
        if (t->context == NULL) {
            return -1;
        }
    }
    /* _SelectorTransport.__init__ */
    PyObject *tsock =
        PyObject_CallOneArg(fl_state->transport_socket_type, sock);
    if (tsock == NULL ||
        PyObject_SetItem(dict, fl_state->str_socket, tsock) < 0) {
        Py_XDECREF(tsock);
        return -1;
    }
    Py_DECREF(tsock);
    PyObject *addr = sock_address(sock, fl_state->str_getsockname);
    if (addr == NULL ||
        PyObject_SetItem(dict, fl_state->str_sockname, addr) < 0) {
        Py_XDECREF(addr);
        return -1;
    }
    Py_DECREF(addr);
    int has_peer = PySequence_Contains(dict, fl_state->str_peername);
    if (has_peer < 0) {
        return -1;
    }
    if (!has_peer) {
        addr = sock_address(sock, fl_state->str_getpeername);
        if (addr == NULL ||
            PyObject_SetItem(dict, fl_state->str_peername, addr) < 0) {
            Py_XDECREF(addr);
            return -1;
        }
        Py_DECREF(addr);
    }
    Py_XSETREF(t->sock, Py_NewRef(sock));
    if (fd < 0) {
        PyObject *fdobj =
            PyObject_CallMethodNoArgs(sock, fl_state->str_fileno);
        long v = fdobj ? PyLong_AsLong(fdobj) : -1;
        Py_XDECREF(fdobj);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (v < 0 || v > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", v);
            return -1;
        }
        fd = (int)v;
    }
    t->fd = fd;
    if (set_protocol_impl(t, protocol) < 0) {
        return -1;
    }
    if (server != NULL && server != Py_None) {
        if (server_attach(server, (PyObject *)t) < 0) {
            return -1;
        }
        /* Attached: detached again if the rest fails (stream_unsetup). */
        Py_XSETREF(t->server, Py_NewRef(server));
    }
    PyObject *transports =
        PyObject_GetAttr((PyObject *)loop, fl_state->str_transports);
    PyObject *fdobj = transports ? PyLong_FromLong(fd) : NULL;
    int rc = fdobj ? PyObject_SetItem(transports, fdobj, (PyObject *)t) : -1;
    Py_XDECREF(fdobj);
    Py_XDECREF(transports);
    if (rc < 0) {
        return -1;
    }
    /* _SelectorSocketTransport.__init__ */
    if (set_nodelay(sock, fd) < 0) {
        return -1;
    }
    PyObject *connection_made =
        PyObject_GetAttr(protocol, fl_state->str_connection_made);
    if (connection_made == NULL) {
        return -1;
    }
    PyObject *entry =
        PyTuple_Pack(2, connection_made, waiter != NULL ? waiter : Py_None);
    Py_DECREF(connection_made);
    if (entry == NULL) {
        return -1;
    }
    rc = fl_loop_check_closed(loop) < 0
             ? -1
             : fl_loop_enqueue(loop, start_ready, (PyObject *)t, entry);
    Py_DECREF(entry);
    return rc;
}

/* A transport whose setup failed: detached from its server, and its
 * socket left to the caller (no "unclosed transport" warning).  The
 * current exception is kept. */
static void
stream_unsetup(FLStream *t, int keep_sock)
{
    PyObject *exc = fl_err_fetch();
    if (t->server != NULL) {
        PyObject *server = t->server;
        t->server = NULL;
        if (server_detach(server, (PyObject *)t) < 0) {
            PyErr_WriteUnraisable((PyObject *)t);
        }
        Py_DECREF(server);
    }
    if (!keep_sock) {
        Py_CLEAR(t->sock);
    }
    fl_err_restore(exc);
}

PyObject *
fl_stream_new(FLLoop *loop, PyObject *sock, int fd, PyObject *protocol,
              PyObject *waiter, PyObject *extra, PyObject *server,
              PyObject *context)
{
    FLStream *t = stream_alloc(fl_state->stream_type);
    if (t == NULL) {
        return NULL;
    }
    if (stream_setup(t, loop, sock, fd, protocol, waiter, extra, server,
                     context) < 0) {
        stream_unsetup(t, 0);
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static PyObject *
stream_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop",  "sock",   "protocol", "waiter",
                             "extra", "server", "context",  NULL};
    PyObject *loop, *sock, *protocol, *waiter = Py_None, *extra = Py_None,
                                      *server = Py_None, *context = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|OOOO:SocketTransport",
                                     kwlist, &loop, &sock, &protocol, &waiter,
                                     &extra, &server, &context)) {
        return NULL;
    }
    if (!FLLoop_Check(loop)) {
        PyErr_Format(PyExc_TypeError,
                     "SocketTransport needs a fastloop loop, not %.100s",
                     Py_TYPE(loop)->tp_name);
        return NULL;
    }
    if (fl_loop_check_closed((FLLoop *)loop) < 0) {
        return NULL;
    }
    FLStream *t = stream_alloc(type);
    if (t == NULL) {
        return NULL;
    }
    if (stream_setup(t, (FLLoop *)loop, sock, -1, protocol,
                     waiter == Py_None ? NULL : waiter,
                     extra == Py_None ? NULL : extra, server, context) < 0) {
        /* As asyncio's: the socket is the transport's now, and closed
         * (with a ResourceWarning) when it goes. */
        stream_unsetup(t, 1);
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

/* __new__ makes the transport whole; this only keeps _FlowControlMixin's
 * __init__ from running on it. */
static int
stream_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    return 0;
}

/* ---- object protocol -------------------------------------------------- */

/* asyncio's __del__: an unclosed transport warns and closes its socket. */
static void
stream_finalize(FLStream *t)
{
    if (t->sock == NULL) {
        return;
    }
    PyObject *exc = fl_err_fetch();
    if (PyErr_ResourceWarning((PyObject *)t, 1, "unclosed transport %R",
                              (PyObject *)t) < 0) {
        PyErr_WriteUnraisable((PyObject *)t);
    }
    PyObject *sock = t->sock;
    t->sock = NULL;
    call_quietly(sock, fl_state->str_close, NULL);
    Py_DECREF(sock);
#if PY_VERSION_HEX >= 0x030D0000
    if (t->server != NULL) {
        PyObject *server = t->server;
        t->server = NULL;
        if (server_detach(server, (PyObject *)t) < 0) {
            PyErr_WriteUnraisable((PyObject *)t);
        }
        Py_DECREF(server);
    }
#endif
    fl_err_restore(exc);
}

static int
stream_traverse(FLStream *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t));
    for (int i = 0; i < FL_STREAM_BASE_SLOTS; i++) {
        Py_VISIT(t->base_slots[i]);
    }
    Py_VISIT(t->loop);
    Py_VISIT(t->sock);
    Py_VISIT(t->protocol);
    Py_VISIT(t->server);
    Py_VISIT(t->context);
    Py_VISIT(t->empty_waiter);
    Py_VISIT(t->high_obj);
    Py_VISIT(t->low_obj);
    Py_VISIT(t->dict);
    return 0;
}

static int
stream_clear(FLStream *t)
{
    for (int i = 0; i < FL_STREAM_BASE_SLOTS; i++) {
        Py_CLEAR(t->base_slots[i]);
    }
    Py_CLEAR(t->loop);
    Py_CLEAR(t->sock);
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->server);
    Py_CLEAR(t->context);
    Py_CLEAR(t->empty_waiter);
    Py_CLEAR(t->high_obj);
    Py_CLEAR(t->low_obj);
    Py_CLEAR(t->dict);
    wq_clear(t);
    return 0;
}

static void
stream_dealloc(FLStream *t)
{
    PyTypeObject *type = Py_TYPE(t);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)t) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(t);
    if (t->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)t);
    }
    stream_clear(t);
    PyMem_Free(t->wq);
    type->tp_free((PyObject *)t);
    Py_DECREF(type);
}

static PyMemberDef stream_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(FLStream, dict), READONLY},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(FLStream, weakreflist),
     READONLY},
    {NULL},
};

static PyType_Slot stream_slots[] = {
    {Py_tp_doc, "A TCP or Unix stream transport (asyncio.Transport) in C."},
    {Py_tp_new, stream_new},
    {Py_tp_init, stream_init},
    {Py_tp_dealloc, stream_dealloc},
    {Py_tp_finalize, stream_finalize},
    {Py_tp_traverse, stream_traverse},
    {Py_tp_clear, stream_clear},
    {Py_tp_repr, stream_repr},
    {Py_tp_methods, stream_methods},
    {Py_tp_getset, stream_getset},
    {Py_tp_members, stream_members},
    {0, NULL},
};

static PyType_Spec stream_spec = {
    .name = "fastloop._core.SocketTransport",
    .basicsize = sizeof(FLStream),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = stream_slots,
};

/* ---- init ------------------------------------------------------------- */

static PyObject *
import_attr(const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return value;
}

/* The offset of a __slots__ member of `type`, or -1 with an exception. */
static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *d = PyDict_GetItemString(((PyTypeObject *)type)->tp_dict, name);
    if (d == NULL || !PyObject_TypeCheck(d, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_ImportError,
                     "fastloop: %s.%s is not a __slots__ member as expected",
                     ((PyTypeObject *)type)->tp_name, name);
        return -1;
    }
    return ((PyMemberDescrObject *)d)->d_member->offset;
}

int
fl_stream_init(PyObject *module)
{

    fl_state->buffered_protocol_type =
        import_attr("asyncio.protocols", "BufferedProtocol");
    fl_state->transport_socket_type =
        import_attr("asyncio.trsock", "TransportSocket");
    PyObject *mode = import_attr("asyncio.constants", "_SendfileMode");
    fl_state->sendfile_try_native =
        mode ? PyObject_GetAttrString(mode, "TRY_NATIVE") : NULL;
    Py_XDECREF(mode);
    PyObject *threshold =
        import_attr("asyncio.constants", "LOG_THRESHOLD_FOR_CONNLOST_WRITES");
    if (fl_state->buffered_protocol_type == NULL ||
        fl_state->transport_socket_type == NULL ||
        fl_state->sendfile_try_native == NULL || threshold == NULL) {
        Py_XDECREF(threshold);
        return -1;
    }
    log_threshold_connlost_writes = PyLong_AsSsize_t(threshold);
    Py_DECREF(threshold);
    if (log_threshold_connlost_writes == -1 && PyErr_Occurred()) {
        return -1;
    }
    fl_state->c_socket_type = (PyTypeObject *)import_attr("_socket", "socket");
    if (fl_state->c_socket_type == NULL) {
        return -1;
    }
    const char *int_attrs[3] = {"family", "type", "proto"};
    for (int i = 0; i < 3; i++) {
        PyObject *d = PyDict_GetItemString(fl_state->c_socket_type->tp_dict,
                                           int_attrs[i]);
        if (d == NULL || Py_TYPE(d)->tp_descr_get == NULL) {
            PyErr_Format(PyExc_ImportError,
                         "fastloop: _socket.socket.%s is not a descriptor",
                         int_attrs[i]);
            return -1;
        }
        fl_state->socket_type_descr[i] = Py_NewRef(d);
    }

    /* The base: asyncio's _FlowControlMixin, whose instances are its
     * __slots__ and BaseTransport's, nothing else. */
    PyObject *base = import_attr("asyncio.transports", "_FlowControlMixin");
    if (base == NULL) {
        return -1;
    }
    PyObject *base_transport =
        import_attr("asyncio.transports", "BaseTransport");
    if (base_transport == NULL) {
        Py_DECREF(base);
        return -1;
    }
    extra_offset = slot_offset(base_transport, "_extra");
    Py_DECREF(base_transport);
    if (extra_offset < 0) {
        Py_DECREF(base);
        return -1;
    }
    if (!PyType_Check(base) ||
        ((PyTypeObject *)base)->tp_basicsize != offsetof(FLStream, loop) ||
        extra_offset < (Py_ssize_t)offsetof(FLStream, base_slots) ||
        extra_offset >= (Py_ssize_t)offsetof(FLStream, loop)) {
        PyErr_SetString(PyExc_ImportError,
                        "fastloop: asyncio.transports._FlowControlMixin has a "
                        "layout this build does not know (rebuild "
                        "fastloop)");
        Py_DECREF(base);
        return -1;
    }
    PyObject *bases = PyTuple_Pack(1, base);
    Py_DECREF(base);
    if (bases == NULL) {
        return -1;
    }
    fl_state->stream_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &stream_spec, bases);
    Py_DECREF(bases);
    if (fl_state->stream_type == NULL) {
        return -1;
    }
    PyObject *dict = fl_state->stream_type->tp_dict;
    PyObject *max_size = PyLong_FromLong(FL_READ_SIZE);
    if (max_size == NULL ||
        PyDict_SetItemString(dict, "max_size", max_size) < 0 ||
        PyDict_SetItemString(dict, "_start_tls_compatible", Py_True) < 0 ||
        PyDict_SetItemString(dict, "_sendfile_compatible",
                             fl_state->sendfile_try_native) < 0) {
        Py_XDECREF(max_size);
        return -1;
    }
    Py_DECREF(max_size);
    PyType_Modified(fl_state->stream_type);
    return PyModule_AddObjectRef(module, "SocketTransport",
                                 (PyObject *)fl_state->stream_type);
}
