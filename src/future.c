/* future.c: fastloop.Future, asyncio.Future's API and semantics in C.
 *
 * Done-callbacks are never run inline: on a fastloop Loop they go straight
 * into the loop's C ready queue (fl_loop_enqueue) with a small C function
 * that enters the callback's context and calls it; on any other loop they
 * go through loop.call_soon(cb, fut, context=ctx), exactly like asyncio.
 * A Task waiting on a Future is stored as a bare "task waiter" entry (see
 * fl_callback) so its wakeup needs no bound method at all.
 */
#include "future.h"

#include <stddef.h>
#include <structmember.h>

static const char *const state_names[] = {"PENDING", "CANCELLED", "FINISHED"};

fl_future_waiter_ops fl_future_waiter;

/* ------------------------------------------------------------------ */
/* Helpers shared with task.c                                          */

int
fl_call_soon_generic(PyObject *loop, PyObject *fn, PyObject *arg,
                     PyObject *ctx)
{
    PyObject *args[4];
    size_t nargs = 0;
    args[nargs++] = loop;
    args[nargs++] = fn;
    if (arg != NULL) {
        args[nargs++] = arg;
    }
    PyObject *kwnames = NULL;
    if (ctx != NULL) {
        args[nargs] = ctx;
        kwnames = fl_state->kw_context;
    }
    PyObject *res = PyObject_VectorcallMethod(fl_state->str_call_soon, args,
                                              nargs, kwnames);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Entered before any checks that use the loop: asyncio's C Future raises
 * this when __init__ was skipped (Future.__new__(Future)). */
static int
ensure_alive(FLFuture *fut)
{
    if (fut->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Future object is not initialized.");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Callback list                                                       */

static int
cb_append(FLFuture *fut, PyObject *fn, PyObject *ctx)
{
    /* asyncio's layout: the first callback inline (callback0), the others
     * in a list.  remove_done_callback() may empty cb0 and leave the list:
     * new callbacks then go to the list's end (order is cb0, then the
     * list), as asyncio's do. */
    if (fut->cb0.fn == NULL && fut->ncbs == 0) {
        fut->cb0.fn = Py_NewRef(fn);
        fut->cb0.ctx = Py_XNewRef(ctx);
        return 0;
    }
    if (fut->ncbs == fut->cbs_cap) {
        Py_ssize_t cap = fut->cbs_cap ? fut->cbs_cap * 2 : 4;
        fl_callback *cbs = PyMem_Realloc(fut->cbs, cap * sizeof(fl_callback));
        if (cbs == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        fut->cbs = cbs;
        fut->cbs_cap = cap;
    }
    fut->cbs[fut->ncbs].fn = Py_NewRef(fn);
    fut->cbs[fut->ncbs].ctx = Py_XNewRef(ctx);
    fut->ncbs++;
    return 0;
}

static void
cb_clear_all(FLFuture *fut)
{
    fl_callback first = fut->cb0;
    fl_callback *rest = fut->cbs;
    Py_ssize_t n = fut->ncbs;
    fut->cb0.fn = fut->cb0.ctx = NULL;
    fut->cbs = NULL;
    fut->ncbs = fut->cbs_cap = 0;
    Py_XDECREF(first.fn);
    Py_XDECREF(first.ctx);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(rest[i].fn);
        Py_XDECREF(rest[i].ctx);
    }
    PyMem_Free(rest);
}

/* Runs from the fastloop ready queue: `pair` is (callback, context).  An
 * error is reported as asyncio's Handle._run reports it: after leaving the
 * callback's context, naming a Handle whose get_context() is that context
 * (3.12+ runs the exception handler in it; 3.11 in the loop's). */
static int
run_callback_ready(PyObject *pair, PyObject *fut)
{
    PyObject *fn = PyTuple_GET_ITEM(pair, 0);
    PyObject *ctx = PyTuple_GET_ITEM(pair, 1);
    if (PyContext_Enter(ctx) < 0) {
        return -1;
    }
    PyObject *res = PyObject_CallOneArg(fn, fut);
    PyObject *exc = res == NULL ? fl_err_fetch() : NULL;
    Py_XDECREF(res);
    if (PyContext_Exit(ctx) < 0) {
        Py_XDECREF(exc);
        return -1;
    }
    if (exc == NULL) {
        return 0;
    }
    fl_err_restore(exc);
    return fl_loop_report_callback_error(((FLFuture *)fut)->loop, fn, fut, ctx,
                                         NULL);
}

static int
schedule_one(FLFuture *fut, PyObject *fn, PyObject *ctx)
{
    if (ctx == NULL) {
        return fl_future_waiter.schedule_wakeup(fn, fut);
    }
    if (fut->fast_loop) {
        FLLoop *loop = (FLLoop *)fut->loop;
        if (fl_loop_check_schedulable(loop) < 0) {
            return -1;
        }
        PyObject *pair = PyTuple_Pack(2, fn, ctx);
        if (pair == NULL) {
            return -1;
        }
        int rc =
            fl_loop_enqueue(loop, run_callback_ready, pair, (PyObject *)fut);
        Py_DECREF(pair);
        return rc;
    }
    return fl_call_soon_generic(fut->loop, fn, (PyObject *)fut, ctx);
}

static int
schedule_callbacks(FLFuture *fut)
{
    assert(fut->state != FL_PENDING && fut->loop != NULL);
    /* Detach the list first: a callback scheduler may run Python code
     * (call_soon of a foreign loop) that adds callbacks again. */
    fl_callback first = fut->cb0;
    fl_callback *rest = fut->cbs;
    Py_ssize_t n = fut->ncbs;
    fut->cb0.fn = fut->cb0.ctx = NULL;
    fut->cbs = NULL;
    fut->ncbs = fut->cbs_cap = 0;

    int rc = 0;
    if (first.fn != NULL) {
        rc = schedule_one(fut, first.fn, first.ctx);
        Py_DECREF(first.fn);
        Py_XDECREF(first.ctx);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rc == 0) {
            rc = schedule_one(fut, rest[i].fn, rest[i].ctx);
        }
        Py_DECREF(rest[i].fn);
        Py_XDECREF(rest[i].ctx);
    }
    PyMem_Free(rest);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Internal operations                                                 */

static PyObject *
get_event_loop(void)
{
    PyObject *loop = PyObject_CallNoArgs(fl_state->get_running_loop);
    if (loop == NULL || loop != Py_None) {
        return loop;
    }
    Py_DECREF(loop);
    return PyObject_CallNoArgs(fl_state->get_event_loop);
}

/* fl_loop_is_fast() for a type it has not seen yet, or that changed:
 * compare the type's call_soon, get_debug and is_running with the C Loop's
 * own, and remember the answer with the type's version tag. */

int
fl_loop_is_fast_slow(PyObject *loop)
{
    PyTypeObject *type = Py_TYPE(loop);
    if (!FLLoop_Check(loop)) {
        return 0;
    }
    PyObject *const names[] = {fl_state->str_call_soon,
                               fl_state->str_get_debug,
                               fl_state->str_is_running};
    Py_BUILD_ASSERT(Py_ARRAY_LENGTH(names) ==
                    Py_ARRAY_LENGTH(fl_state->fast_methods));
    int answer = 1;
    for (size_t i = 0; i < Py_ARRAY_LENGTH(names) && answer; i++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)type, names[i]);
        if (descr == NULL) {
            /* A type whose attribute lookup fails: the generic path will
             * report it where asyncio would. */
            PyErr_Clear();
            return 0;
        }
        answer = descr == fl_state->fast_methods[i];
        Py_DECREF(descr);
    }
    /* The lookups above gave the type a version tag (a later change to
     * the type or a base invalidates it); without one, nothing is cached
     * and the next future asks again. */
    if (!fl_type_version_valid(type)) {
        return answer;
    }
    Py_XSETREF(fl_state->fast_cache_type, (PyTypeObject *)Py_NewRef(type));
    fl_state->fast_cache_tag = type->tp_version_tag;
    fl_state->fast_cache_answer = answer;
    return answer;
}

/* loop.get_debug() of a loop that is not fast. */
static int
loop_get_debug_generic(PyObject *loop)
{
    PyObject *res = PyObject_CallMethodNoArgs(loop, fl_state->str_get_debug);
    if (res == NULL) {
        return -1;
    }
    int debug = PyObject_IsTrue(res);
    Py_DECREF(res);
    return debug;
}

static void
future_clear_state(FLFuture *fut)
{
    /* The flags first: a release below may run code that looks at this
     * future, which then sees a pending one, never a fast one without its
     * loop.  Each field is unlinked before its release (Py_CLEAR). */
    fut->state = FL_PENDING;
    fut->log_tb = 0;
    fut->blocking = 0;
    fut->fast_loop = 0;
    Py_CLEAR(fut->loop);
    Py_CLEAR(fut->result);
    Py_CLEAR(fut->exception);
    Py_CLEAR(fut->exception_tb);
    Py_CLEAR(fut->source_tb);
    Py_CLEAR(fut->cancel_msg);
    Py_CLEAR(fut->cancelled_exc);
    cb_clear_all(fut);
}

int
fl_future_init_fields(FLFuture *fut, PyObject *loop)
{
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15: __init__ runs once, as asyncio's C Future and Task allow. */
    if (fut->loop != NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s object is already initialized",
                     Py_TYPE(fut)->tp_name);
        return -1;
    }
#endif
    /* What the new state needs comes first: finding the loop and its debug
     * flag runs Python code, and a failure leaves the future as it was (a
     * future that was bound stays bound, never half cleared). */
    if (loop == NULL || loop == Py_None) {
        loop = get_event_loop();
        if (loop == NULL) {
            return -1;
        }
    } else {
        Py_INCREF(loop);
    }
    int fast_loop = fl_loop_is_fast(loop);
    int debug =
        fast_loop ? ((FLLoop *)loop)->debug : loop_get_debug_generic(loop);
    PyObject *source_tb = NULL;
    if (debug > 0 && !fl_is_finalizing()) {
        source_tb = PyObject_CallNoArgs(fl_state->extract_stack);
        if (source_tb == NULL) {
            debug = -1;
        }
    }
    if (debug < 0) {
        Py_DECREF(loop);
        return -1;
    }
    /* Up to 3.14 __init__ may run twice: start from a clean pending future.  A
     * new object is all zeroes already (only _cancel_message is settable
     * before __init__). */
    if (fut->loop != NULL || fut->cancel_msg != NULL) {
        future_clear_state(fut);
        /* XSETREF: the clearing ran code, which may have set them. */
        Py_XSETREF(fut->loop, loop);
        Py_XSETREF(fut->source_tb, source_tb);
    } else {
        assert(fut->source_tb == NULL);
        fut->loop = loop;
        fut->source_tb = source_tb;
    }
    fut->fast_loop = fast_loop;
    return 0;
}

/* asyncio's C Future says just this (its Python one adds the state). */
static int
invalid_state(FLFuture *fut)
{
    PyErr_SetString(fl_state->InvalidStateError, "invalid state");
    return -1;
}

int
fl_future_set_result(FLFuture *fut, PyObject *result)
{
    if (ensure_alive(fut) < 0) {
        return -1;
    }
    if (fut->state != FL_PENDING) {
        return invalid_state(fut);
    }
    Py_XSETREF(fut->result, Py_NewRef(result));
    fut->state = FL_FINISHED;
    return schedule_callbacks(fut);
}

int
fl_future_set_exception(FLFuture *fut, PyObject *exc)
{
    if (ensure_alive(fut) < 0) {
        return -1;
    }
    if (fut->state != FL_PENDING) {
        return invalid_state(fut);
    }
    PyObject *exc_val;
    if (PyExceptionClass_Check(exc)) {
        exc_val = PyObject_CallNoArgs(exc);
        if (exc_val == NULL) {
            return -1;
        }
        if (fut->state != FL_PENDING) {
            /* The exception class's constructor finished the future. */
            Py_DECREF(exc_val);
            return invalid_state(fut);
        }
    } else {
        exc_val = Py_NewRef(exc);
    }
    if (!PyExceptionInstance_Check(exc_val)) {
        Py_DECREF(exc_val);
        PyErr_SetString(PyExc_TypeError, "invalid exception object");
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (PyErr_GivenExceptionMatches(exc_val, PyExc_StopIteration)) {
        /* 3.13: wrap it, so the future can still be awaited. */
        PyObject *wrapped = PyObject_CallFunction(
            PyExc_RuntimeError, "s",
            "StopIteration interacts badly with generators and cannot be "
            "raised into a Future");
        if (wrapped == NULL) {
            Py_DECREF(exc_val);
            return -1;
        }
        PyException_SetCause(wrapped, Py_NewRef(exc_val));
        PyException_SetContext(wrapped, exc_val); /* steals exc_val */
        exc_val = wrapped;
    }
#else
    if (Py_IS_TYPE(exc_val, (PyTypeObject *)PyExc_StopIteration)) {
        Py_DECREF(exc_val);
        PyErr_SetString(PyExc_TypeError,
                        "StopIteration interacts badly with generators "
                        "and cannot be raised into a Future");
        return -1;
    }
#endif
    Py_XSETREF(fut->exception, exc_val);
    Py_XSETREF(fut->exception_tb, PyException_GetTraceback(exc_val));
    fut->state = FL_FINISHED;
    if (schedule_callbacks(fut) < 0) {
        return -1;
    }
    fut->log_tb = 1;
    return 0;
}

int
fl_future_cancel(FLFuture *fut, PyObject *msg)
{
    if (ensure_alive(fut) < 0) {
        return -1;
    }
    fut->log_tb = 0;
    if (fut->state != FL_PENDING) {
        return 0;
    }
    fut->state = FL_CANCELLED;
    Py_XSETREF(fut->cancel_msg, Py_XNewRef(msg));
    if (schedule_callbacks(fut) < 0) {
        return -1;
    }
    return 1;
}

PyObject *
fl_future_make_cancelled_error(FLFuture *fut)
{
    if (fut->cancelled_exc != NULL) {
        PyObject *exc = fut->cancelled_exc;
        fut->cancelled_exc = NULL;
        return exc;
    }
    PyObject *msg = fut->cancel_msg;
    if (msg == NULL || msg == Py_None) {
        return PyObject_CallNoArgs(fl_state->CancelledError);
    }
    return PyObject_CallOneArg(fl_state->CancelledError, msg);
}

/* Raise the cancellation error of a cancelled future. */
static void
raise_cancelled(FLFuture *fut)
{
    PyObject *exc = fl_future_make_cancelled_error(fut);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* result(): the value (new reference), or NULL with the exception set. */
PyObject *
fl_future_get_result(FLFuture *fut)
{
    if (fut->state == FL_CANCELLED) {
        raise_cancelled(fut);
        return NULL;
    }
    if (fut->state != FL_FINISHED) {
        PyErr_SetString(fl_state->InvalidStateError, "Result is not set.");
        return NULL;
    }
    fut->log_tb = 0;
    if (fut->exception != NULL) {
        /* raise self._exception.with_traceback(self._exception_tb) */
        PyObject *exc = fut->exception;
        if (PyException_SetTraceback(exc, fut->exception_tb ? fut->exception_tb
                                                            : Py_None) < 0) {
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        return NULL;
    }
    return Py_NewRef(fut->result ? fut->result : Py_None);
}

int
fl_future_add_task_waiter(FLFuture *fut, PyObject *task)
{
    if (fut->state != FL_PENDING) {
        return fl_future_waiter.schedule_wakeup(task, fut);
    }
    return cb_append(fut, task, NULL);
}

static int
add_done_callback(FLFuture *fut, PyObject *fn, PyObject *ctx)
{
    if (fut->state != FL_PENDING) {
        if (!fut->fast_loop) {
            /* As asyncio: the loop copies the context when it is None. */
            return fl_call_soon_generic(fut->loop, fn, (PyObject *)fut,
                                        ctx == Py_None ? NULL : ctx);
        }
        PyObject *copy = NULL;
        if (ctx == NULL || ctx == Py_None) {
            ctx = copy = PyContext_CopyCurrent();
            if (ctx == NULL) {
                return -1;
            }
        }
        int rc = schedule_one(fut, fn, ctx);
        Py_XDECREF(copy);
        return rc;
    }
    if (ctx == NULL || ctx == Py_None) {
        PyObject *copy = PyContext_CopyCurrent();
        if (copy == NULL) {
            return -1;
        }
        int rc = cb_append(fut, fn, copy);
        Py_DECREF(copy);
        return rc;
    }
    return cb_append(fut, fn, ctx);
}

/* Dead futures of the exact type, kept for reuse: creating a future per
 * await is the common pattern.  Their memory is as tp_clear left it: every
 * field zero or NULL (fastloop's, and the base's, which its own tp_clear
 * clears). */
#define FL_FUTURE_FREELIST 256
static FLFuture *future_freelist[FL_FUTURE_FREELIST];
static int future_freelist_len;

PyObject *
fl_future_new(PyObject *loop)
{
    FLFuture *fut;
    if (future_freelist_len > 0) {
        fut = future_freelist[--future_freelist_len];
        (void)PyObject_Init((PyObject *)fut, fl_state->future_type);
        PyObject_GC_Track(fut);
    } else {
        fut = (FLFuture *)fl_state->future_type->tp_alloc(
            fl_state->future_type, 0);
        if (fut == NULL) {
            return NULL;
        }
    }
    if (fl_future_init_fields(fut, loop) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    return (PyObject *)fut;
}

/* Loop.create_future(): a method of the C Loop type (listed in module.c
 * with the Loop's other methods), so it costs no Python frame. */
static PyObject *
loop_create_future(PyObject *loop, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init((FLLoop *)loop) < 0) {
        return NULL;
    }
    return fl_future_new(loop);
}

PyMethodDef fl_future_loop_methods[] = {
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS,
     "Create a fastloop.Future attached to the loop."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Python methods                                                      */

static PyObject *
Future_result(FLFuture *fut, PyObject *Py_UNUSED(ignored))
{
    return fl_future_get_result(fut);
}

static PyObject *
Future_exception(FLFuture *fut, PyObject *Py_UNUSED(ignored))
{
    if (fut->state == FL_CANCELLED) {
        raise_cancelled(fut);
        return NULL;
    }
    if (fut->state != FL_FINISHED) {
        PyErr_SetString(fl_state->InvalidStateError, "Exception is not set.");
        return NULL;
    }
    fut->log_tb = 0;
    return Py_NewRef(fut->exception ? fut->exception : Py_None);
}

/* set_result and set_exception are the two methods asyncio.Task overrides
   (to refuse), so Future.set_result(task, x) is how code sets a task's
   outcome behind its back.  fastloop.Task is not a subclass of
   fastloop.Future (ARCHITECTURE.md), so fastloop.Future's descriptors for
   these two are bound to the common base, asyncio's Future
   (init_unbound_setters), and check their self here. */
static int
check_future_self(PyObject *self, const char *name)
{
    if (FLFuture_Check(self)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "descriptor '%s' for 'fastloop.Future' objects doesn't apply "
                 "to a '%.100s' object",
                 name, Py_TYPE(self)->tp_name);
    return -1;
}

static PyObject *
Future_set_result(FLFuture *fut, PyObject *result)
{
    if (check_future_self((PyObject *)fut, "set_result") < 0 ||
        fl_future_set_result(fut, result) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Future_set_exception(FLFuture *fut, PyObject *exc)
{
    if (check_future_self((PyObject *)fut, "set_exception") < 0 ||
        fl_future_set_exception(fut, exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Parses (msg=None) from a vectorcall argument list. */
int
fl_parse_msg(const char *fname, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, PyObject **msg)
{
    *msg = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most 1 argument (%zd given)", fname,
                     nargs + nkw);
        return -1;
    }
    if (nargs == 1) {
        *msg = args[0];
    } else if (nkw == 1) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(key) ||
            PyUnicode_CompareWithASCIIString(key, "msg") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'", fname,
                         key);
            return -1;
        }
        *msg = args[0];
    }
    return 0;
}

static PyObject *
Future_cancel(FLFuture *fut, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    PyObject *msg;
    if (fl_parse_msg("cancel", args, nargs, kwnames, &msg) < 0) {
        return NULL;
    }
    int rc = fl_future_cancel(fut, msg);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
Future_cancelled(FLFuture *fut, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(fut->state == FL_CANCELLED);
}

static PyObject *
Future_done(FLFuture *fut, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(fut->state != FL_PENDING);
}

static PyObject *
Future_add_done_callback(FLFuture *fut, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "add_done_callback() takes exactly 1 positional "
                     "argument (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *ctx = NULL;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (!PyUnicode_Check(key) ||
            PyUnicode_CompareWithASCIIString(key, "context") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "add_done_callback() got an unexpected keyword "
                         "argument '%S'",
                         key);
            return NULL;
        }
        ctx = args[nargs + i];
    }
    if (ensure_alive(fut) < 0 || add_done_callback(fut, args[0], ctx) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* What remove_done_callback compares `fn` with for a callback entry: the
 * callback, or for a task waiter the wakeup method asyncio's Task would
 * have registered.  New reference. */
static PyObject *
callback_comparand(fl_callback *cb)
{
    if (cb->ctx != NULL) {
        return Py_NewRef(cb->fn);
    }
    PyObject *entry = fl_future_waiter.waiter_entry(cb->fn);
    if (entry == NULL) {
        return NULL;
    }
    PyObject *meth = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    Py_DECREF(entry);
    return meth;
}

/* `callback == fn` for a callback entry, holding the entry's references
 * across the comparison (its __eq__ may remove the entry).  1, 0, -1. */
static int
callback_equals(fl_callback *cb, PyObject *fn)
{
    PyObject *comparand = callback_comparand(cb);
    if (comparand == NULL) {
        return -1;
    }
    int eq = PyObject_RichCompareBool(comparand, fn, Py_EQ);
    Py_DECREF(comparand);
    return eq;
}

/* Drops every callback of the list after cb0 (asyncio's
 * Py_CLEAR(fut_callbacks)): detached first, then released. */
static void
cb_clear_list(FLFuture *fut)
{
    fl_callback *rest = fut->cbs;
    Py_ssize_t n = fut->ncbs;
    fut->cbs = NULL;
    fut->ncbs = fut->cbs_cap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(rest[i].fn);
        Py_XDECREF(rest[i].ctx);
    }
    PyMem_Free(rest);
}

static void
cb_release_array(fl_callback *cbs, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(cbs[i].fn);
        Py_XDECREF(cbs[i].ctx);
    }
    PyMem_Free(cbs);
}

/* asyncio's C Future.remove_done_callback, step for step, on fastloop's
 * layout (cb0 = callback0, cbs = the list): every `==` runs Python code
 * that may add, remove or schedule callbacks (completing the future), and
 * what asyncio then keeps, drops and returns -- including which callbacks
 * still run and in what order -- follows from re-reading the live state
 * after each comparison, exactly as asyncio does. */
static PyObject *
Future_remove_done_callback(FLFuture *fut, PyObject *fn)
{
    if (ensure_alive(fut) < 0) {
        return NULL;
    }
    Py_ssize_t cleared_cb0 = 0;
    if (fut->cb0.fn != NULL) {
        fl_callback cb0 = {Py_NewRef(fut->cb0.fn), Py_XNewRef(fut->cb0.ctx)};
        int eq = callback_equals(&cb0, fn);
        Py_DECREF(cb0.fn);
        Py_XDECREF(cb0.ctx);
        if (eq < 0) {
            return NULL;
        }
        if (eq) {
            /* Whatever cb0 holds now (the comparison may have changed it). */
            fl_callback old = fut->cb0;
            fut->cb0.fn = fut->cb0.ctx = NULL;
            Py_XDECREF(old.fn);
            Py_XDECREF(old.ctx);
            cleared_cb0 = 1;
        }
    }
    Py_ssize_t len = fut->ncbs;
    if (len == 0) {
        return PyLong_FromSsize_t(cleared_cb0);
    }
    if (len == 1) {
        fl_callback cb = {Py_NewRef(fut->cbs[0].fn),
                          Py_XNewRef(fut->cbs[0].ctx)};
        int eq = callback_equals(&cb, fn);
        Py_DECREF(cb.fn);
        Py_XDECREF(cb.ctx);
        if (eq < 0) {
            return NULL;
        }
        if (eq) {
            cb_clear_list(fut); /* the list as it is now */
            return PyLong_FromSsize_t(1 + cleared_cb0);
        }
        return PyLong_FromSsize_t(cleared_cb0);
    }
    /* The entries that compare unequal, in order, with their references;
     * the list is re-read at each step (it may grow, shrink or go). */
    Py_ssize_t kept_cap = len, j = 0;
    fl_callback *kept = PyMem_Malloc(kept_cap * sizeof(fl_callback));
    if (kept == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < fut->ncbs; i++) {
        fl_callback cb = {Py_NewRef(fut->cbs[i].fn),
                          Py_XNewRef(fut->cbs[i].ctx)};
        int eq = callback_equals(&cb, fn);
        if (eq == 0) {
            if (j == kept_cap) {
                fl_callback *grown =
                    PyMem_Realloc(kept, 2 * kept_cap * sizeof(fl_callback));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    eq = -1;
                } else {
                    kept = grown;
                    kept_cap *= 2;
                }
            }
            if (eq == 0) {
                kept[j++] = cb;
                continue;
            }
        }
        Py_DECREF(cb.fn);
        Py_XDECREF(cb.ctx);
        if (eq < 0) {
            cb_release_array(kept, j);
            return NULL;
        }
    }
    if (j == 0 || fut->ncbs == 0) {
        /* All equal, or the list went (the future finished and scheduled
         * it): asyncio drops what is left and counts the list's length
         * when the removal began. */
        cb_clear_list(fut);
        cb_release_array(kept, j);
        return PyLong_FromSsize_t(len + cleared_cb0);
    }
    Py_ssize_t now = fut->ncbs;
    if (j != now) {
        /* list[:] = kept */
        fl_callback *old = fut->cbs;
        fut->cbs = kept;
        fut->ncbs = j;
        fut->cbs_cap = kept_cap;
        cb_release_array(old, now);
    } else {
        cb_release_array(kept, j);
    }
    return PyLong_FromSsize_t(now - j + cleared_cb0);
}

static PyObject *
Future_get_loop(FLFuture *fut, PyObject *Py_UNUSED(ignored))
{
    if (ensure_alive(fut) < 0) {
        return NULL;
    }
    return Py_NewRef(fut->loop);
}

static PyObject *
Future_make_cancelled_error(FLFuture *fut, PyObject *Py_UNUSED(ignored))
{
    return fl_future_make_cancelled_error(fut);
}

static PyObject *
future_repr(PyObject *fut)
{
    if (ensure_alive((FLFuture *)fut) < 0) {
        return NULL;
    }
    return PyObject_CallOneArg(fl_state->future_repr, fut);
}

static PyObject *future_new_iter(PyObject *fut);

static PyObject *
Future_await(PyObject *fut, PyObject *Py_UNUSED(ignored))
{
    return future_new_iter(fut);
}

static PyMethodDef Future_methods[] = {
    {"result", (PyCFunction)Future_result, METH_NOARGS,
     "Return the result this future represents."},
    {"exception", (PyCFunction)Future_exception, METH_NOARGS,
     "Return the exception that was set on this future."},
    {"set_result", (PyCFunction)Future_set_result, METH_O,
     "Mark the future done and set its result."},
    {"set_exception", (PyCFunction)Future_set_exception, METH_O,
     "Mark the future done and set an exception."},
    {"cancel", (PyCFunction)(void (*)(void))Future_cancel,
     METH_FASTCALL | METH_KEYWORDS,
     "cancel(msg=None): cancel the future and schedule callbacks."},
    {"cancelled", (PyCFunction)Future_cancelled, METH_NOARGS,
     "Return True if the future was cancelled."},
    {"done", (PyCFunction)Future_done, METH_NOARGS,
     "Return True if the future is done."},
    {"add_done_callback",
     (PyCFunction)(void (*)(void))Future_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS,
     "add_done_callback(fn, *, context=None): run fn(future) when done."},
    {"remove_done_callback", (PyCFunction)Future_remove_done_callback, METH_O,
     "Remove all instances of a callback; return how many were removed."},
    {"get_loop", (PyCFunction)Future_get_loop, METH_NOARGS,
     "Return the event loop the Future is bound to."},
    {"_make_cancelled_error", (PyCFunction)Future_make_cancelled_error,
     METH_NOARGS, "Create the CancelledError to raise if cancelled."},
    {"__iter__", (PyCFunction)Future_await, METH_NOARGS, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585"},
    {NULL, NULL},
};

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

static PyObject *
Future_get_state(FLFuture *fut, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(state_names[fut->state]);
}

static PyObject *
Future_get_blocking(FLFuture *fut, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(fut->blocking);
}

static int
Future_set_blocking(FLFuture *fut, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    int b = PyObject_IsTrue(value);
    if (b < 0) {
        return -1;
    }
    fut->blocking = (unsigned char)b;
    return 0;
}

static PyObject *
Future_get_log_traceback(FLFuture *fut, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(fut->log_tb);
}

static int
Future_set_log_traceback(FLFuture *fut, PyObject *value,
                         void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    int b = PyObject_IsTrue(value);
    if (b < 0) {
        return -1;
    }
    if (b) {
        PyErr_SetString(PyExc_ValueError,
                        "_log_traceback can only be set to False");
        return -1;
    }
    fut->log_tb = 0;
    return 0;
}

static PyObject *
Future_get_loop_attr(FLFuture *fut, void *Py_UNUSED(closure))
{
    return Py_NewRef(fut->loop ? fut->loop : Py_None);
}

static PyObject *
callback_entry(fl_callback *cb)
{
    if (cb->ctx == NULL) {
        return fl_future_waiter.waiter_entry(cb->fn);
    }
    return PyTuple_Pack(2, cb->fn, cb->ctx);
}

static PyObject *
Future_get_callbacks(FLFuture *fut, void *Py_UNUSED(closure))
{
    if (fut->cb0.fn == NULL && fut->ncbs == 0) {
        Py_RETURN_NONE;
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = fut->cb0.fn == NULL ? 0 : -1; i < fut->ncbs; i++) {
        PyObject *entry = callback_entry(i < 0 ? &fut->cb0 : &fut->cbs[i]);
        if (entry == NULL || PyList_Append(list, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(entry);
    }
    return list;
}

static PyObject *
Future_get_cancel_message(FLFuture *fut, void *Py_UNUSED(closure))
{
    return Py_NewRef(fut->cancel_msg ? fut->cancel_msg : Py_None);
}

static int
Future_set_cancel_message(FLFuture *fut, PyObject *value,
                          void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    Py_XSETREF(fut->cancel_msg, Py_NewRef(value));
    return 0;
}

static PyGetSetDef Future_getset[] = {
    {"_state", (getter)Future_get_state, NULL, NULL},
    {"_asyncio_future_blocking", (getter)Future_get_blocking,
     (setter)Future_set_blocking, NULL},
    {"_log_traceback", (getter)Future_get_log_traceback,
     (setter)Future_set_log_traceback, NULL},
    {"_loop", (getter)Future_get_loop_attr, NULL, NULL},
    {"_callbacks", (getter)Future_get_callbacks, NULL, NULL},
    {"_cancel_message", (getter)Future_get_cancel_message,
     (setter)Future_set_cancel_message, NULL},
    {NULL},
};

/* T_OBJECT members read as None while the field is NULL.  Task shares
 * them: the offsets are the same in an FLTask. */
PyMemberDef fl_future_members[] = {
    {"_result", T_OBJECT, offsetof(FLFuture, result), READONLY, NULL},
    {"_exception", T_OBJECT, offsetof(FLFuture, exception), READONLY, NULL},
    {"_source_traceback", T_OBJECT, offsetof(FLFuture, source_tb), READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Type slots                                                          */

static PyObject *
Future_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    /* tp_alloc zeroes the object: a pending future with no loop, which
     * every method checks (ensure_alive) as asyncio's C Future does. */
    return type->tp_alloc(type, 0);
}

static int
Future_tp_init(FLFuture *fut, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", NULL};
    PyObject *loop = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:Future", kwlist,
                                     &loop)) {
        return -1;
    }
    return fl_future_init_fields(fut, loop);
}

/* Future(*, loop=None) without building an args tuple or kwargs dict. */
static PyObject *
Future_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *loop = Py_None;
    if (nargs != 0) {
        PyErr_Format(PyExc_TypeError,
                     "Future() takes no positional arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (!PyUnicode_Check(key) ||
            PyUnicode_CompareWithASCIIString(key, "loop") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "Future() got an unexpected keyword argument '%S'",
                         key);
            return NULL;
        }
        loop = args[i];
    }
    return fl_future_new(loop);
}

int
fl_future_traverse(FLFuture *fut, visitproc visit, void *arg,
                   PyTypeObject *base)
{
    Py_VISIT(fut->loop);
    Py_VISIT(fut->result);
    Py_VISIT(fut->exception);
    Py_VISIT(fut->exception_tb);
    Py_VISIT(fut->source_tb);
    Py_VISIT(fut->cancel_msg);
    Py_VISIT(fut->cancelled_exc);
    Py_VISIT(fut->cb0.fn);
    Py_VISIT(fut->cb0.ctx);
    for (Py_ssize_t i = 0; i < fut->ncbs; i++) {
        Py_VISIT(fut->cbs[i].fn);
        Py_VISIT(fut->cbs[i].ctx);
    }
    /* The base's storage: the instance dict and what CPython's own code
     * stores there (3.14's awaited-by links).  asyncio's heap types (3.12+)
     * visit the object's type there; 3.11's static ones do not, and a heap
     * type's instances must. */
    if (!PyType_HasFeature(base, Py_TPFLAGS_HEAPTYPE)) {
        Py_VISIT(Py_TYPE(fut));
    }
    return base->tp_traverse((PyObject *)fut, visit, arg);
}

int
fl_future_clear(FLFuture *fut, PyTypeObject *base)
{
    future_clear_state(fut);
    return base->tp_clear((PyObject *)fut);
}

/* "Future exception was never retrieved", as asyncio's Future.__del__. */
void
fl_future_finalize(FLFuture *fut)
{
    if (!fut->log_tb || fut->loop == NULL) {
        return;
    }
    fut->log_tb = 0;
    PyObject *saved = fl_err_fetch();
    PyObject *context = NULL, *name = NULL, *message = NULL;

    name = PyType_GetName(Py_TYPE(fut));
    if (name == NULL) {
        goto done;
    }
    message = PyUnicode_FromFormat("%U exception was never retrieved", name);
    if (message == NULL) {
        goto done;
    }
    context = PyDict_New();
    if (context == NULL ||
        PyDict_SetItem(context, fl_state->str_message, message) < 0 ||
        PyDict_SetItem(context, fl_state->str_exception,
                       fut->exception ? fut->exception : Py_None) < 0 ||
        PyDict_SetItem(context, fl_state->str_future, (PyObject *)fut) < 0) {
        goto done;
    }
    if (fut->source_tb != NULL &&
        PyDict_SetItem(context, fl_state->str_source_traceback,
                       fut->source_tb) < 0) {
        goto done;
    }
    (void)fl_loop_call_exception_handler(fut->loop, context);

done:
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable((PyObject *)fut);
    }
    Py_XDECREF(context);
    Py_XDECREF(message);
    Py_XDECREF(name);
    fl_err_restore(saved);
}

/* The first part of Future's and Task's tp_dealloc (`clear`: their
 * tp_clear; `finalize`: their tp_finalize has something to do, which a
 * Python subclass's may always have).  0 when the finalizer resurrected
 * the object; otherwise 1, and the caller frees or keeps the memory and
 * drops the type reference (also for instances of Python subclasses, whose
 * subtype_dealloc leaves that to a heap base type's dealloc). */
int
fl_future_dealloc_begin(FLFuture *fut, inquiry clear, int finalize)
{
    PyObject *self = (PyObject *)fut;
    PyTypeObject *tp = Py_TYPE(self);
    /* Calling the finalizer marks the object finalized for good, which
     * would keep a reused one from ever being finalized again: call it
     * only when it has work; reuse only objects never finalized. */
    if ((finalize ||
         (tp != fl_state->future_type && tp != fl_state->task_type)) &&
        PyObject_CallFinalizerFromDealloc(self) < 0) {
        return 0; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    /* The weak-reference list is where the type says (in the base's
     * storage, or before the object for a managed one): look first, as
     * the call costs more than the look. */
    assert(tp->tp_weaklistoffset != 0);
    if (*(PyObject **)((char *)self + tp->tp_weaklistoffset) != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    (void)clear(self);
    return 1;
}

static int
Future_traverse(PyObject *self, visitproc visit, void *arg)
{
    return fl_future_traverse((FLFuture *)self, visit, arg,
                              fl_state->asyncio_future_type);
}

static int
Future_clear(PyObject *self)
{
    return fl_future_clear((FLFuture *)self, fl_state->asyncio_future_type);
}

static void
Future_dealloc(PyObject *self)
{
    FLFuture *fut = (FLFuture *)self;
    PyTypeObject *tp = Py_TYPE(self);
    if (!fl_future_dealloc_begin(fut, Future_clear,
                                 fut->log_tb && fut->loop != NULL)) {
        return;
    }
    if (tp == fl_state->future_type &&
        future_freelist_len < FL_FUTURE_FREELIST &&
        !PyObject_GC_IsFinalized(self)) {
        /* Kept for fl_future_new, which takes the type reference back. */
        future_freelist[future_freelist_len++] = fut;
    } else {
        tp->tp_free(self);
    }
    Py_DECREF(tp);
}

static PyType_Slot Future_slots[] = {
    {Py_tp_doc, "Future(*, loop=None): asyncio.Future implemented in C."},
    {Py_tp_new, Future_tp_new},
    {Py_tp_init, Future_tp_init},
    {Py_tp_dealloc, Future_dealloc},
    {Py_tp_finalize, fl_future_finalize},
    {Py_tp_traverse, Future_traverse},
    {Py_tp_clear, Future_clear},
    {Py_tp_repr, future_repr},
    {Py_tp_iter, future_new_iter},
    {Py_am_await, future_new_iter},
    {Py_tp_methods, Future_methods},
    {Py_tp_getset, Future_getset},
    {Py_tp_members, fl_future_members},
    {0, NULL},
};

/* Replaces fastloop.Future's set_result/set_exception descriptors with ones
   bound to asyncio's Future, so that they also accept a fastloop.Task (see
   check_future_self). */
static int
init_unbound_setters(void)
{
    for (PyMethodDef *def = Future_methods; def->ml_name != NULL; def++) {
        if (strcmp(def->ml_name, "set_result") != 0 &&
            strcmp(def->ml_name, "set_exception") != 0) {
            continue;
        }
        PyObject *descr =
            PyDescr_NewMethod(fl_state->asyncio_future_type, def);
        if (descr == NULL) {
            return -1;
        }
        int rc = PyDict_SetItemString(fl_state->future_type->tp_dict,
                                      def->ml_name, descr);
        Py_DECREF(descr);
        if (rc < 0) {
            return -1;
        }
    }
    PyType_Modified(fl_state->future_type);
    return 0;
}

static PyType_Spec Future_spec = {
    .name = "fastloop.Future",
    .basicsize = sizeof(FLFuture),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Future_slots,
};

/* ------------------------------------------------------------------ */
/* The await iterator                                                  */

typedef struct {
    PyObject_HEAD FLFuture *future; /* NULL once exhausted */
} FLFutureIter;

/* Dead iterators kept for reuse (one per `await future`). */
#define FL_ITER_FREELIST 256
static FLFutureIter *iter_freelist[FL_ITER_FREELIST];
static int iter_freelist_len;

static PyObject *
future_new_iter(PyObject *fut)
{
    if (ensure_alive((FLFuture *)fut) < 0) {
        return NULL;
    }
    FLFutureIter *it;
    if (iter_freelist_len > 0) {
        it = iter_freelist[--iter_freelist_len];
        (void)PyObject_Init((PyObject *)it, fl_state->future_iter_type);
    } else {
        it = PyObject_GC_New(FLFutureIter, fl_state->future_iter_type);
        if (it == NULL) {
            return NULL;
        }
    }
    it->future = (FLFuture *)Py_NewRef(fut);
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PySendResult
FutureIter_am_send(FLFutureIter *it, PyObject *Py_UNUSED(arg),
                   PyObject **result)
{
    FLFuture *fut = it->future;
    if (fut == NULL) {
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (fut->state == FL_PENDING) {
        if (!fut->blocking) {
            /* Tell the Task to wait for this future. */
            fut->blocking = 1;
            *result = Py_NewRef(fut);
            return PYGEN_NEXT;
        }
        PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
        *result = NULL;
        return PYGEN_ERROR;
    }
    it->future = NULL;
    *result = fl_future_get_result(fut);
    Py_DECREF(fut);
    return *result ? PYGEN_RETURN : PYGEN_ERROR;
}

/* Turn an am_send outcome into the iterator protocol's. */
static PyObject *
send_result_to_iter(PySendResult rc, PyObject *value, int for_next)
{
    if (rc == PYGEN_NEXT || rc == PYGEN_ERROR) {
        return value;
    }
    if (value == Py_None && for_next) {
        Py_DECREF(value);
        return NULL; /* tp_iternext: NULL without an exception stops */
    }
    /* StopIteration(value), built explicitly so a tuple stays one arg. */
    PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, value);
    Py_DECREF(value);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *
FutureIter_iternext(FLFutureIter *it)
{
    PyObject *value;
    PySendResult rc = FutureIter_am_send(it, Py_None, &value);
    return send_result_to_iter(rc, value, 1);
}

static PyObject *
FutureIter_send(FLFutureIter *it, PyObject *arg)
{
    PyObject *value;
    PySendResult rc = FutureIter_am_send(it, arg, &value);
    return send_result_to_iter(rc, value, 0);
}

static PyObject *
FutureIter_throw(FLFutureIter *it, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "throw expected at least 1 argument, got %zd", nargs);
        return NULL;
    }
    PyObject *type = args[0];
    PyObject *val = nargs > 1 ? args[1] : NULL;
    PyObject *tb = nargs > 2 ? args[2] : NULL;
#if PY_VERSION_HEX >= 0x030C0000
    if (nargs > 1) {
        if (PyErr_WarnEx(PyExc_DeprecationWarning,
                         "the (type, exc, tb) signature of throw() is "
                         "deprecated, use the single-arg signature instead.",
                         1) < 0) {
            return NULL;
        }
    }
#endif
    if (val == Py_None) {
        val = NULL;
    }
    if (tb == Py_None) {
        tb = NULL;
    } else if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a "
                                         "traceback");
        return NULL;
    }
    Py_INCREF(type);
    Py_XINCREF(val);
    Py_XINCREF(tb);
    if (PyExceptionClass_Check(type)) {
        PyErr_NormalizeException(&type, &val, &tb);
    } else if (PyExceptionInstance_Check(type)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate "
                            "value");
            goto fail;
        }
        val = type;
        type = Py_NewRef(PyExceptionInstance_Class(type));
        if (tb == NULL) {
            tb = PyException_GetTraceback(val);
        }
    } else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes deriving BaseException "
                        "or instances of such a class");
        goto fail;
    }
    Py_CLEAR(it->future);
    PyErr_Restore(type, val, tb);
    return NULL;

fail:
    Py_DECREF(type);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return NULL;
}

static PyObject *
FutureIter_close(FLFutureIter *it, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(it->future);
    Py_RETURN_NONE;
}

static int
FutureIter_traverse(FLFutureIter *it, visitproc visit, void *arg)
{
    Py_VISIT(it->future);
    return 0;
}

static int
FutureIter_clear(FLFutureIter *it)
{
    Py_CLEAR(it->future);
    return 0;
}

static void
FutureIter_dealloc(FLFutureIter *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->future);
    if (iter_freelist_len < FL_ITER_FREELIST) {
        iter_freelist[iter_freelist_len++] = it;
    } else {
        PyObject_GC_Del(it);
    }
    Py_DECREF(tp);
}

static PyMethodDef FutureIter_methods[] = {
    {"send", (PyCFunction)FutureIter_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))FutureIter_throw, METH_FASTCALL,
     NULL},
    {"close", (PyCFunction)FutureIter_close, METH_NOARGS, NULL},
    {NULL, NULL},
};

static PyType_Slot FutureIter_slots[] = {
    {Py_tp_dealloc, FutureIter_dealloc},
    {Py_tp_traverse, FutureIter_traverse},
    {Py_tp_clear, FutureIter_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, FutureIter_iternext},
    {Py_am_send, FutureIter_am_send},
    {Py_tp_methods, FutureIter_methods},
    {0, NULL},
};

static PyType_Spec FutureIter_spec = {
    .name = "fastloop.FutureIter",
    .basicsize = sizeof(FLFutureIter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = FutureIter_slots,
};

/* ------------------------------------------------------------------ */
/* Module init                                                         */

static PyObject *
import_from(const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return value;
}

#define FS_IMPORT(field, mod, attr)                                           \
    do {                                                                      \
        if ((fl_state->field = import_from(mod, attr)) == NULL) {             \
            return -1;                                                        \
        }                                                                     \
    } while (0)

/* asyncio's C Future and Task, fastloop's bases.  fastloop's objects
 * reserve room for _asyncio.Task's fields before their own; that room was
 * measured by setup.py on the interpreter it built for. */
static int
import_asyncio_types(void)
{
    PyObject *f = import_from("_asyncio", "Future");
    PyObject *t = f ? import_from("_asyncio", "Task") : NULL;
    if (t == NULL) {
        Py_XDECREF(f);
        if (PyErr_ExceptionMatches(PyExc_ImportError)) {
            PyErr_SetString(PyExc_ImportError,
                            "fastloop needs asyncio's C accelerator module "
                            "_asyncio (its Future and Task are fastloop's "
                            "bases)");
        }
        return -1;
    }
    fl_state->asyncio_future_type = (PyTypeObject *)f;
    fl_state->asyncio_task_type = (PyTypeObject *)t;
    if (!PyType_Check(f) || !PyType_Check(t) ||
        fl_state->asyncio_task_type->tp_basicsize !=
            FL_ASYNCIO_TASK_BASICSIZE ||
        fl_state->asyncio_future_type->tp_basicsize >
            FL_ASYNCIO_TASK_BASICSIZE ||
        !PyType_HasFeature(fl_state->asyncio_future_type,
                           Py_TPFLAGS_BASETYPE) ||
        !PyType_HasFeature(fl_state->asyncio_task_type, Py_TPFLAGS_BASETYPE)) {
        PyErr_Format(PyExc_ImportError,
                     "fastloop was built for an asyncio.Task of %d bytes; "
                     "this interpreter's is %zd: rebuild fastloop with it",
                     FL_ASYNCIO_TASK_BASICSIZE,
                     PyType_Check(t)
                         ? fl_state->asyncio_task_type->tp_basicsize
                         : (Py_ssize_t)-1);
        return -1;
    }
    return 0;
}

int
fl_future_init(PyObject *module)
{
    FS_IMPORT(CancelledError, "asyncio.exceptions", "CancelledError");
    FS_IMPORT(InvalidStateError, "asyncio.exceptions", "InvalidStateError");
#if PY_VERSION_HEX >= 0x030C0000
    FS_IMPORT(get_event_loop, "asyncio.events", "get_event_loop");
#else
    FS_IMPORT(get_event_loop, "asyncio.events", "_get_event_loop");
#endif
    FS_IMPORT(get_running_loop, "asyncio.events", "_get_running_loop");
    FS_IMPORT(future_repr, "asyncio.base_futures", "_future_repr");
    FS_IMPORT(task_repr, "asyncio.base_tasks", "_task_repr");
    FS_IMPORT(task_get_stack, "asyncio.base_tasks", "_task_get_stack");
    FS_IMPORT(task_print_stack, "asyncio.base_tasks", "_task_print_stack");
    FS_IMPORT(current_tasks, "asyncio.tasks", "_current_tasks");
    FS_IMPORT(base_create_task, "asyncio.base_events", "BaseEventLoop");
    FS_IMPORT(register_task, "asyncio.tasks", "_register_task");
#if FL_CURRENT_TASK_ON_TSTATE
    FS_IMPORT(enter_task, "asyncio.tasks", "_enter_task");
    FS_IMPORT(leave_task, "asyncio.tasks", "_leave_task");
    FS_IMPORT(swap_current_task, "asyncio.tasks", "_swap_current_task");
    FS_IMPORT(register_eager_task, "asyncio.tasks", "_register_eager_task");
    FS_IMPORT(unregister_eager_task, "asyncio.tasks",
              "_unregister_eager_task");
    FS_IMPORT(unregister_task, "asyncio.tasks", "_unregister_task");
    FS_IMPORT(add_to_awaited_by, "asyncio.futures",
              "future_add_to_awaited_by");
    FS_IMPORT(discard_from_awaited_by, "asyncio.futures",
              "future_discard_from_awaited_by");
#elif PY_VERSION_HEX >= 0x030C0000
    FS_IMPORT(eager_tasks, "asyncio.tasks", "_eager_tasks");
#endif
    if (!PyDict_Check(fl_state->current_tasks)) {
        PyErr_SetString(PyExc_ImportError,
                        "asyncio.tasks._current_tasks is not a dict");
        return -1;
    }
    Py_SETREF(
        fl_state->base_create_task,
        PyObject_GetAttrString(fl_state->base_create_task, "create_task"));
    if (fl_state->base_create_task == NULL) {
        return -1;
    }
    if ((fl_state->kw_context = PyTuple_Pack(1, fl_state->str_context)) ==
            NULL ||
        (fl_state->kw_msg = PyTuple_Pack(1, fl_state->str_msg)) == NULL) {
        return -1;
    }

    PyObject *const fast_names[] = {fl_state->str_call_soon,
                                    fl_state->str_get_debug,
                                    fl_state->str_is_running};
    for (size_t i = 0; i < Py_ARRAY_LENGTH(fast_names); i++) {
        fl_state->fast_methods[i] =
            PyObject_GetAttr((PyObject *)fl_state->loop_type, fast_names[i]);
        if (fl_state->fast_methods[i] == NULL) {
            return -1;
        }
    }

    if (import_asyncio_types() < 0) {
        return -1;
    }
    fl_state->future_iter_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &FutureIter_spec, NULL);
    if (fl_state->future_iter_type == NULL) {
        return -1;
    }
    fl_state->future_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &Future_spec, (PyObject *)fl_state->asyncio_future_type);
    if (fl_state->future_type == NULL) {
        return -1;
    }
    /* Future(loop=...) without an args tuple or a kwargs dict. */
    fl_state->future_type->tp_vectorcall = Future_vectorcall;
    if (init_unbound_setters() < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Future",
                              (PyObject *)fl_state->future_type) < 0) {
        return -1;
    }
    return 0;
}
