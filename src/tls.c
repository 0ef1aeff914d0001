/* tls.c: the data path of TLS connections in C.
 *
 * TLS is asyncio's sslproto.SSLProtocol over the C stream transport: its
 * state machine (handshake, shutdown, timeouts, close_notify, errors) stays
 * asyncio's Python.  Measured, its data path -- feeding the MemoryBIO,
 * reading plaintext, flushing ciphertext, all Python -- cost about 33,000
 * instructions per 1 KiB echo on top of OpenSSL, twice uvloop's whole
 * request.  fastloop/_loop.py therefore uses a subclass
 * (fastloop._sslproto.SSLProtocol) whose hot methods are these functions:
 * get_buffer, buffer_updated and _write_appdata, and its app transport's
 * write.  While the connection is WRAPPED (application data flowing) they
 * do what asyncio's _do_read/_do_read__copied/_do_write/_process_outgoing
 * do, in the same order, through the ssl module's C objects (the
 * _ssl._SSLSocket inside the SSLObject, the MemoryBIOs); in every other
 * state, and for a BufferedProtocol application, they call asyncio's own
 * methods.  The protocol's state lives where asyncio keeps it, in the
 * instance's attributes, so asyncio's methods and these can take turns.
 *
 * One difference in the mechanics, none in behaviour: after each record
 * read, the next SSLObject.read() is skipped when neither the incoming BIO
 * nor OpenSSL holds more bytes -- it could only raise SSLWantReadError,
 * whose creation costs more than the rest of the read.
 */
#include "module.h"
#include "stream.h"

/* The instance dict of an SSLProtocol: its state.  New reference. */
static inline PyObject *
state_dict(PyObject *self)
{
    return PyObject_GenericGetDict(self, NULL);
}

/* An attribute from the instance dict, borrowed; AttributeError if
 * missing. */
static inline PyObject *
dget(PyObject *dict, PyObject *name)
{
    PyObject *v = PyDict_GetItemWithError(dict, name);
    if (v == NULL && !PyErr_Occurred()) {
        PyErr_SetObject(PyExc_AttributeError, name);
    }
    return v;
}

static inline int
dget_true(PyObject *dict, PyObject *name)
{
    PyObject *v = dget(dict, name);
    return v == NULL ? -1 : PyObject_IsTrue(v);
}

static inline Py_ssize_t
dget_ssize(PyObject *dict, PyObject *name)
{
    PyObject *v = dget(dict, name);
    return v == NULL ? -1 : PyLong_AsSsize_t(v);
}

/* What the data path uses of an SSLProtocol, fetched once per call
 * (strong references: a callback may replace the attributes meanwhile). */
typedef struct {
    PyObject *d;        /* the instance dict */
    PyObject *sslsock;  /* _sslobj._sslobj: the _ssl._SSLSocket */
    PyObject *incoming; /* MemoryBIOs */
    PyObject *outgoing;
    PyObject *backlog; /* _write_backlog, a deque */
} tls_ctx;

/* The protocol whose buffer_updated is running, and its context: a write
 * from its application's data_received uses the same. */
static PyObject *active_proto; /* borrowed: not a cached object */
static tls_ctx *active_ctx;

static void
ctx_close(tls_ctx *c)
{
    Py_CLEAR(c->d);
    Py_CLEAR(c->sslsock);
    Py_CLEAR(c->incoming);
    Py_CLEAR(c->outgoing);
    Py_CLEAR(c->backlog);
}

/* 0, or -1 with an exception (c closed). */
static int
ctx_open(PyObject *self, tls_ctx *c)
{
    c->sslsock = c->incoming = c->outgoing = c->backlog = NULL;
    c->d = PyObject_GenericGetDict(self, NULL);
    if (c->d == NULL) {
        return -1;
    }
    PyObject *sslobject = dget(c->d, fl_state->str_sslobj);
    c->sslsock =
        sslobject ? PyObject_GetAttr(sslobject, fl_state->str_sslobj) : NULL;
    c->incoming =
        c->sslsock ? Py_XNewRef(dget(c->d, fl_state->str_incoming)) : NULL;
    c->outgoing =
        c->incoming ? Py_XNewRef(dget(c->d, fl_state->str_outgoing)) : NULL;
    c->backlog = c->outgoing
                     ? Py_XNewRef(dget(c->d, fl_state->str_write_backlog))
                     : NULL;
    if (c->backlog == NULL) {
        ctx_close(c);
        return -1;
    }
    return 0;
}

static PyObject *
call0(PyObject *obj, PyObject *name)
{
    PyObject *args[1] = {obj};
    return PyObject_VectorcallMethod(name, args,
                                     1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
call1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    return PyObject_VectorcallMethod(name, args,
                                     2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int
call0_ok(PyObject *obj, PyObject *name)
{
    PyObject *res = call0(obj, name);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* bio.pending as a size; -1 with an exception. */
static Py_ssize_t
pending_of(PyObject *obj, int is_method)
{
    PyObject *v = is_method ? call0(obj, fl_state->str_pending)
                            : PyObject_GetAttr(obj, fl_state->str_pending);
    Py_ssize_t n = v ? PyLong_AsSsize_t(v) : -1;
    Py_XDECREF(v);
    return n;
}

/* _control_app_writing / _control_ssl_reading: asyncio's methods are
 * called only when they have something to do (`size` past the mark that
 * matters in the current paused state). */
static int
needs_control(PyObject *d, Py_ssize_t size, PyObject *paused_name,
              PyObject *high_name, PyObject *low_name)
{
    int paused = dget_true(d, paused_name);
    if (paused < 0) {
        return -1;
    }
    Py_ssize_t mark = dget_ssize(d, paused ? low_name : high_name);
    if (mark == -1 && PyErr_Occurred()) {
        return -1;
    }
    return paused ? size <= mark : size >= mark;
}

static int
control_app_writing(PyObject *self, PyObject *d, PyObject *outgoing)
{
    Py_ssize_t size = pending_of(outgoing, 0);
    Py_ssize_t buffered =
        size >= 0 ? dget_ssize(d, fl_state->str_write_buffer_size) : -1;
    if (buffered == -1 && PyErr_Occurred()) {
        return -1;
    }
    int need = needs_control(
        d, size + buffered, fl_state->str_app_writing_paused,
        fl_state->str_outgoing_high_water, fl_state->str_outgoing_low_water);
    if (need <= 0) {
        return need;
    }
    return call0_ok(self, fl_state->str_control_app_writing);
}

static int
control_ssl_reading(PyObject *self, PyObject *d, PyObject *incoming)
{
    Py_ssize_t size = pending_of(incoming, 0);
    if (size < 0) {
        return -1;
    }
    int need = needs_control(d, size, fl_state->str_ssl_reading_paused,
                             fl_state->str_incoming_high_water,
                             fl_state->str_incoming_low_water);
    if (need <= 0) {
        return need;
    }
    return call0_ok(self, fl_state->str_control_ssl_reading);
}

/* _process_outgoing: the ciphertext to the transport, then flow control. */
static int
process_outgoing(PyObject *self, PyObject *d, PyObject *outgoing)
{
    int paused = dget_true(d, fl_state->str_ssl_writing_paused);
    if (paused < 0) {
        return -1;
    }
    if (!paused) {
        PyObject *data = call0(outgoing, fl_state->str_read);
        if (data == NULL) {
            return -1;
        }
        Py_ssize_t n = PyObject_Size(data);
        int rc = n < 0 ? -1 : 0;
        if (n > 0) {
            PyObject *transport = dget(d, fl_state->str_private_transport);
            PyObject *res = transport == NULL ? NULL
                            : Py_TYPE(transport) == fl_state->stream_type
                                ? fl_stream_write(transport, data)
                                : call1(transport, fl_state->str_write, data);
            rc = res ? 0 : -1;
            Py_XDECREF(res);
        }
        Py_DECREF(data);
        if (rc < 0) {
            return -1;
        }
    }
    return control_app_writing(self, d, outgoing);
}

/* Whether the current exception is one of SSLAgainErrors (consumed). */
static int
clear_again_error(void)
{
    if (PyErr_ExceptionMatches(fl_state->tls_again_errors)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* _write_buffer_size += delta */
static int
add_write_buffer_size(PyObject *d, Py_ssize_t delta)
{
    Py_ssize_t size = dget_ssize(d, fl_state->str_write_buffer_size);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *v = PyLong_FromSsize_t(size + delta);
    int rc = v ? PyDict_SetItem(d, fl_state->str_write_buffer_size, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* _do_write: the backlog into the SSL object, then _process_outgoing. */
static int
do_write(PyObject *self, tls_ctx *c)
{
    PyObject *backlog = c->backlog, *d = c->d;
    int rc = 0;
    for (;;) {
        Py_ssize_t len = PyObject_Size(backlog);
        if (len <= 0) {
            rc = len < 0 ? -1 : 0;
            break;
        }
        PyObject *data = PySequence_GetItem(backlog, 0);
        PyObject *count =
            data ? call1(c->sslsock, fl_state->str_write, data) : NULL;
        if (count == NULL) {
            Py_XDECREF(data);
            rc = data && clear_again_error() ? 0 : -1;
            break;
        }
        Py_ssize_t n = PyLong_AsSsize_t(count);
        Py_DECREF(count);
        Py_ssize_t data_len = n >= 0 ? PyObject_Size(data) : -1;
        if (data_len < 0) {
            Py_DECREF(data);
            rc = -1;
            break;
        }
        if (n < data_len) {
            PyObject *rest = PySequence_GetSlice(data, n, data_len);
            rc = rest ? PySequence_SetItem(backlog, 0, rest) : -1;
            Py_XDECREF(rest);
            if (rc == 0) {
                rc = add_write_buffer_size(d, -n);
            }
        } else {
            PyObject *res = call0(backlog, fl_state->str_popleft);
            rc = res ? add_write_buffer_size(d, -data_len) : -1;
            Py_XDECREF(res);
        }
        Py_DECREF(data);
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        return -1;
    }
    return process_outgoing(self, d, c->outgoing);
}

/* _do_read__copied: every record's plaintext to data_received (one call
 * per readiness), then an EOF if the peer sent close_notify. */
static int
read_copied(PyObject *self, tls_ctx *c)
{
    PyObject *d = c->d, *incoming = c->incoming, *sslsock = c->sslsock;
    PyObject *max_size = PyObject_GetAttr(self, fl_state->str_max_size);
    Py_ssize_t max_n = max_size ? PyLong_AsSsize_t(max_size) : -1;
    if (max_n < 0) {
        Py_XDECREF(max_size);
        return -1;
    }
    PyObject *first = NULL, *more = NULL;
    int eof = 0, rc = 0;
    for (;;) {
        PyObject *chunk = call1(sslsock, fl_state->str_read, max_size);
        if (chunk == NULL) {
            rc = clear_again_error() ? 0 : -1;
            break;
        }
        Py_ssize_t n = PyObject_Size(chunk);
        if (n <= 0) {
            Py_DECREF(chunk);
            rc = n < 0 ? -1 : 0;
            eof = n == 0;
            break;
        }
        if (first == NULL) {
            first = chunk;
        } else {
            if (more == NULL) {
                more = PyList_New(0);
                if (more == NULL || PyList_Append(more, first) < 0) {
                    Py_DECREF(chunk);
                    rc = -1;
                    break;
                }
            }
            rc = PyList_Append(more, chunk);
            Py_DECREF(chunk);
            if (rc < 0) {
                break;
            }
        }
        /* More to read only if the BIO or OpenSSL still holds bytes;
         * otherwise read() could only raise SSLWantReadError.  OpenSSL
         * keeps plaintext back only from a read that max_size cut short
         * (a record is at most 16 KiB). */
        Py_ssize_t bio_pending = pending_of(incoming, 0);
        Py_ssize_t ssl_pending = bio_pending;
        if (bio_pending == 0 && n >= max_n) {
            ssl_pending = pending_of(sslsock, 1);
        }
        if (bio_pending < 0 || ssl_pending < 0) {
            rc = -1;
            break;
        }
        if (bio_pending == 0 && ssl_pending == 0) {
            break;
        }
    }
    Py_DECREF(max_size);
    if (rc < 0) {
        Py_XDECREF(first);
        Py_XDECREF(more);
        return -1;
    }
    PyObject *data = NULL;
    if (more != NULL) {
        PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
#if PY_VERSION_HEX >= 0x030E0000
        data = empty ? PyBytes_Join(empty, more) : NULL;
#else
        data = empty ? _PyBytes_Join(empty, more) : NULL;
#endif
        Py_XDECREF(empty);
        Py_DECREF(more);
        Py_DECREF(first);
        if (data == NULL) {
            return -1;
        }
    } else {
        data = first;
    }
    if (data != NULL) {
        PyObject *app = dget(d, fl_state->str_app_protocol);
        Py_XINCREF(app);
        PyObject *res =
            app ? call1(app, fl_state->str_data_received, data) : NULL;
        Py_XDECREF(app);
        Py_DECREF(data);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    if (eof) {
        /* close_notify */
        if (call0_ok(self, fl_state->str_call_eof_received) < 0 ||
            call0_ok(self, fl_state->str_start_shutdown) < 0) {
            return -1;
        }
    }
    return 0;
}

/* self._fatal_error(exc, 'Fatal error on SSL protocol') for an Exception;
 * anything else (KeyboardInterrupt...) propagates, as asyncio's `except
 * Exception`. */
static int
fatal(PyObject *self)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *exc = fl_err_fetch();
    PyObject *args[3] = {self, exc, fl_state->str_tls_fatal_message};
    PyObject *res =
        PyObject_VectorcallMethod(fl_state->str_fatal_error, args,
                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(exc);
    Py_XDECREF(res);
    return res ? 0 : -1;
}

/* _do_read in the WRAPPED state. */
static int
do_read(PyObject *self, tls_ctx *c)
{
    PyObject *d = c->d;
    int paused = dget_true(d, fl_state->str_app_reading_paused);
    int rc = paused < 0 ? -1 : 0;
    if (rc == 0 && !paused) {
        int buffered = dget_true(d, fl_state->str_app_protocol_is_buffer);
        if (buffered < 0) {
            rc = -1;
        } else if (buffered) {
            rc = call0_ok(self, fl_state->str_do_read__buffered);
        } else {
            rc = read_copied(self, c);
        }
        if (rc == 0) {
            Py_ssize_t pending = PyObject_Size(c->backlog);
            rc = pending < 0 ? -1
                 : pending   ? do_write(self, c)
                             : process_outgoing(self, d, c->outgoing);
        }
    }
    if (rc == 0) {
        rc = control_ssl_reading(self, d, c->incoming);
    }
    return rc < 0 ? fatal(self) : 0;
}

static inline int
is_wrapped(PyObject *d)
{
    PyObject *state = dget(d, fl_state->str_state);
    return state == NULL ? -1 : state == fl_state->tls_state_wrapped;
}

/* SSLProtocol.get_buffer(n) */
static PyObject *
tls_get_buffer(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        return PyObject_Vectorcall(fl_state->tls_base_get_buffer, args, nargs,
                                   NULL);
    }
    PyObject *d = state_dict(args[0]);
    if (d == NULL) {
        return NULL;
    }
    /* The common case: the buffer is already as large as wanted. */
    PyObject *max_size = PyObject_GetAttr(args[0], fl_state->str_max_size);
    Py_ssize_t want = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max = max_size ? PyLong_AsSsize_t(max_size) : -1;
    Py_XDECREF(max_size);
    PyObject *buf =
        PyErr_Occurred() ? NULL : dget(d, fl_state->str_ssl_buffer);
    Py_ssize_t have = buf ? PyObject_Size(buf) : -1;
    if (want <= 0 || want > max) {
        want = max;
    }
    PyObject *res = NULL;
    if (have >= want && have >= 0) {
        res = Py_XNewRef(dget(d, fl_state->str_ssl_buffer_view));
    } else if (!PyErr_Occurred()) {
        res = PyObject_Vectorcall(fl_state->tls_base_get_buffer, args, nargs,
                                  NULL);
    }
    Py_DECREF(d);
    return res;
}

/* SSLProtocol.buffer_updated(nbytes) */
static PyObject *
tls_buffer_updated(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        return PyObject_Vectorcall(fl_state->tls_base_buffer_updated, args,
                                   nargs, NULL);
    }
    PyObject *self = args[0];
    PyObject *d = state_dict(self);
    if (d == NULL) {
        return NULL;
    }
    int wrapped = is_wrapped(d);
    Py_DECREF(d);
    if (wrapped <= 0) {
        return wrapped < 0
                   ? NULL
                   : PyObject_Vectorcall(fl_state->tls_base_buffer_updated,
                                         args, nargs, NULL);
    }
    tls_ctx c;
    if (ctx_open(self, &c) < 0) {
        return NULL;
    }
    Py_ssize_t nbytes = PyLong_AsSsize_t(args[1]);
    PyObject *view =
        nbytes >= 0 ? dget(c.d, fl_state->str_ssl_buffer_view) : NULL;
    PyObject *part = view ? PySequence_GetSlice(view, 0, nbytes) : NULL;
    PyObject *res = part ? call1(c.incoming, fl_state->str_write, part) : NULL;
    Py_XDECREF(part);
    PyObject *saved_proto = active_proto;
    tls_ctx *saved_ctx = active_ctx;
    active_proto = self;
    active_ctx = &c;
    int rc = res ? do_read(self, &c) : -1;
    active_proto = saved_proto;
    active_ctx = saved_ctx;
    Py_XDECREF(res);
    ctx_close(&c);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* What _write_appdata does with `data` while WRAPPED: queued. */
static int
write_wrapped(tls_ctx *c, PyObject *data)
{
    Py_ssize_t len = PyObject_Size(data);
    if (len < 0) {
        return -1;
    }
    PyObject *res = call1(c->backlog, fl_state->str_append, data);
    int rc = res ? add_write_buffer_size(c->d, len) : -1;
    Py_XDECREF(res);
    return rc;
}

/* One buffer with nothing queued: into the SSL object at once, and only
 * what it did not take queued -- the state asyncio's append, write and
 * pop leave.  0, or -1 with an exception (SSLAgainErrors consumed). */
static int
write_direct(tls_ctx *c, PyObject *data)
{
    PyObject *count = call1(c->sslsock, fl_state->str_write, data);
    if (count == NULL) {
        return clear_again_error() ? write_wrapped(c, data) : -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(count);
    Py_DECREF(count);
    Py_ssize_t len = n >= 0 ? PyObject_Size(data) : -1;
    if (len < 0) {
        return -1;
    }
    if (n >= len) {
        return 0;
    }
    PyObject *rest = PySequence_GetSlice(data, n, len);
    int rc = rest ? write_wrapped(c, rest) : -1;
    Py_XDECREF(rest);
    return rc;
}

static int
write_appdata(PyObject *self, tls_ctx *c, PyObject *one, PyObject *iterable)
{
    int rc = 0;
    if (iterable != NULL) {
        PyObject *it = PyObject_GetIter(iterable);
        if (it == NULL) {
            return -1;
        }
        PyObject *item;
        while (rc == 0 && (item = PyIter_Next(it)) != NULL) {
            rc = write_wrapped(c, item);
            Py_DECREF(item);
        }
        Py_DECREF(it);
        if (rc < 0 || PyErr_Occurred()) {
            return -1;
        }
        rc = do_write(self, c);
    } else {
        Py_ssize_t queued = PyObject_Size(c->backlog);
        if (queued < 0) {
            return -1;
        }
        if (queued > 0) {
            rc = write_wrapped(c, one);
            rc = rc < 0 ? -1 : do_write(self, c);
        } else {
            rc = write_direct(c, one);
            rc = rc < 0 ? -1 : process_outgoing(self, c->d, c->outgoing);
        }
    }
    return rc < 0 ? fatal(self) : 0;
}

/* SSLProtocol._write_appdata(list_of_data) */
static PyObject *
tls_write_appdata(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        return PyObject_Vectorcall(fl_state->tls_base_write_appdata, args,
                                   nargs, NULL);
    }
    PyObject *d = state_dict(args[0]);
    if (d == NULL) {
        return NULL;
    }
    int wrapped = is_wrapped(d);
    Py_DECREF(d);
    if (wrapped <= 0) {
        return wrapped < 0
                   ? NULL
                   : PyObject_Vectorcall(fl_state->tls_base_write_appdata,
                                         args, nargs, NULL);
    }
    tls_ctx c;
    if (ctx_open(args[0], &c) < 0) {
        return NULL;
    }
    int rc = write_appdata(args[0], &c, NULL, args[1]);
    ctx_close(&c);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _SSLProtocolTransport.write(data) */
static PyObject *
tls_app_write(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        return PyObject_Vectorcall(fl_state->tls_base_app_write, args, nargs,
                                   NULL);
    }
    PyObject *data = args[1];
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data)) {
        PyErr_Format(PyExc_TypeError,
                     "data: expecting a bytes-like instance, got %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    int nonempty = PyObject_IsTrue(data);
    if (nonempty <= 0) {
        return nonempty < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *proto = PyObject_GetAttr(args[0], fl_state->str_ssl_protocol);
    if (proto == NULL) {
        return NULL;
    }
    if (Py_TYPE(proto) != fl_state->tls_protocol_type) {
        /* Detached (None after connection_lost) or not ours: asyncio's. */
        Py_DECREF(proto);
        return PyObject_Vectorcall(fl_state->tls_base_app_write, args, nargs,
                                   NULL);
    }
    PyObject *res = NULL;
    if (proto == active_proto) {
        /* From data_received: the running buffer_updated's context. */
        int wrapped = is_wrapped(active_ctx->d);
        if (wrapped > 0) {
            int rc = write_appdata(proto, active_ctx, data, NULL);
            Py_DECREF(proto);
            return rc < 0 ? NULL : Py_NewRef(Py_None);
        }
        if (wrapped < 0) {
            Py_DECREF(proto);
            return NULL;
        }
    }
    PyObject *d = state_dict(proto);
    int wrapped = d ? is_wrapped(d) : -1;
    Py_XDECREF(d);
    tls_ctx c;
    if (wrapped == 0) {
        PyObject *tuple = PyTuple_Pack(1, data);
        res = tuple ? call1(proto, fl_state->str_write_appdata, tuple) : NULL;
        Py_XDECREF(tuple);
    } else if (wrapped > 0 && ctx_open(proto, &c) == 0) {
        int rc = write_appdata(proto, &c, data, NULL);
        ctx_close(&c);
        res = rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    Py_DECREF(proto);
    return res;
}

/* ---- called by the stream transport for fastloop's SSLProtocol ----- */

PyObject *
fl_tls_get_buffer(PyObject *protocol, PyObject *sizehint)
{
    PyObject *args[2] = {protocol, sizehint};
    return tls_get_buffer(NULL, args, 2);
}

PyObject *
fl_tls_buffer_updated(PyObject *protocol, PyObject *nbytes)
{
    PyObject *args[2] = {protocol, nbytes};
    return tls_buffer_updated(NULL, args, 2);
}

/* ---- init (from fastloop/_sslproto.py, which imports ssl) ------------ */

static PyMethodDef tls_defs[] = {
    {"get_buffer", (PyCFunction)(void (*)(void))tls_get_buffer, METH_FASTCALL,
     NULL},
    {"buffer_updated", (PyCFunction)(void (*)(void))tls_buffer_updated,
     METH_FASTCALL, NULL},
    {"_write_appdata", (PyCFunction)(void (*)(void))tls_write_appdata,
     METH_FASTCALL, NULL},
    {"write", (PyCFunction)(void (*)(void))tls_app_write, METH_FASTCALL, NULL},
};

/* _core._tls_methods(cls): {name: method} for the SSLProtocol subclass
 * `cls` and the app transport's write, as functions that bind like
 * Python ones; instances of exactly `cls` are then fed by the stream
 * transport without a method call. */
PyObject *
fl_tls_methods(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "_tls_methods(cls)");
        return NULL;
    }
    if (fl_state->tls_state_wrapped == NULL) {
        PyObject *sslproto = PyImport_ImportModule("asyncio.sslproto");
        if (sslproto == NULL) {
            return NULL;
        }
        PyObject *states =
            PyObject_GetAttrString(sslproto, "SSLProtocolState");
        PyObject *cls = PyObject_GetAttrString(sslproto, "SSLProtocol");
        PyObject *app =
            PyObject_GetAttrString(sslproto, "_SSLProtocolTransport");
        fl_state->tls_again_errors =
            PyObject_GetAttrString(sslproto, "SSLAgainErrors");
        Py_DECREF(sslproto);
        if (states == NULL || cls == NULL || app == NULL ||
            fl_state->tls_again_errors == NULL) {
            Py_XDECREF(states);
            Py_XDECREF(cls);
            Py_XDECREF(app);
            return NULL;
        }
        fl_state->tls_state_wrapped =
            PyObject_GetAttrString(states, "WRAPPED");
        fl_state->tls_base_get_buffer =
            PyObject_GetAttrString(cls, "get_buffer");
        fl_state->tls_base_buffer_updated =
            PyObject_GetAttrString(cls, "buffer_updated");
        fl_state->tls_base_write_appdata =
            PyObject_GetAttrString(cls, "_write_appdata");
        fl_state->tls_base_app_write = PyObject_GetAttrString(app, "write");
        Py_DECREF(states);
        Py_DECREF(cls);
        Py_DECREF(app);
        if (fl_state->tls_state_wrapped == NULL ||
            fl_state->tls_base_get_buffer == NULL ||
            fl_state->tls_base_buffer_updated == NULL ||
            fl_state->tls_base_write_appdata == NULL ||
            fl_state->tls_base_app_write == NULL) {
            return NULL;
        }
    }
    PyObject *result = PyDict_New();
    if (result == NULL) {
        return NULL;
    }
    Py_XSETREF(fl_state->tls_protocol_type, (PyTypeObject *)Py_NewRef(cls));
    for (size_t i = 0; i < sizeof(tls_defs) / sizeof(tls_defs[0]); i++) {
        PyObject *fn = PyCFunction_New(&tls_defs[i], NULL);
        PyObject *meth = fn ? PyInstanceMethod_New(fn) : NULL;
        Py_XDECREF(fn);
        if (meth == NULL ||
            PyDict_SetItemString(result, tls_defs[i].ml_name, meth) < 0) {
            Py_XDECREF(meth);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(meth);
    }
    return result;
}
