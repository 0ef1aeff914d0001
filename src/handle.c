/* handle.c: Handle and TimerHandle.
 *
 * Owns the two public handle types.  A handle holds the callback, its
 * arguments (a tuple, so the arguments are passed by vectorcall straight
 * from the tuple's item array), the context to run it in and its loop.
 * TimerHandle adds the deadline and its place in the loop's timer heap;
 * cancelling a TimerHandle removes it from the heap at once.
 */
#include "handle.h"

#include <string.h>
#include <structmember.h>

/* Handles are created and freed once per callback: keep a few freed ones
 * (exact types only, untracked, with no references) for reuse. */
#define FL_HANDLE_FREELIST_MAX 256
static FLHandle *handle_freelist[FL_HANDLE_FREELIST_MAX];
static int handle_freelist_len;

fl_handle_loop_ops fl_handle_loop;

static FLHandle *
handle_alloc(PyTypeObject *type)
{
    if ((type == fl_state->handle_type ||
         type == fl_state->timer_handle_type) &&
        handle_freelist_len > 0) {
        FLHandle *self = handle_freelist[--handle_freelist_len];
        return (FLHandle *)PyObject_Init((PyObject *)self, type);
    }
    return PyObject_GC_New(FLHandle, type);
}

FLHandle *
fl_handle_new(PyTypeObject *type, PyObject *loop, PyObject *callback,
              PyObject *args, PyObject *context)
{
    FLHandle *self = handle_alloc(type);
    if (self == NULL) {
        return NULL;
    }
    self->lock = NULL; /* (lock_owner and lock_depth matter only with one) */
    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            self->callback = self->args = self->context = NULL;
            self->loop = self->source_traceback = self->repr = NULL;
            self->weakreflist = NULL;
            Py_DECREF(self);
            return NULL;
        }
    } else {
        Py_INCREF(context);
    }
    self->context = context;
    self->callback = Py_NewRef(callback);
    self->args = Py_NewRef(args);
    self->loop = Py_NewRef(loop);
    self->source_traceback = NULL;
    self->repr = NULL;
    self->weakreflist = NULL;
    self->cancelled = 0;
    self->scheduled = 0;
    self->when_nan = 0;
    self->when = 0.0;
    self->seq = 0;
    self->heap_index = -1;
    PyObject_GC_Track(self);
    return self;
}

int
fl_handle_make_threadsafe(FLHandle *handle)
{
    assert(handle->lock == NULL);
    handle->lock = PyThread_allocate_lock();
    if (handle->lock == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    handle->lock_owner = 0;
    handle->lock_depth = 0;
    return 0;
}

/* Take a thread-safe handle's lock (a no-op for other handles), as an
 * RLock: again by its owner, else waiting without the GIL, running signal
 * handlers when interrupted (as threading.RLock.acquire).  0, or -1 with
 * the exception of a signal handler. */
static int
handle_lock_slow(FLHandle *handle)
{
    unsigned long me = PyThread_get_thread_ident();
    if (handle->lock_depth > 0 && handle->lock_owner == me) {
        handle->lock_depth++;
        return 0;
    }
    PyLockStatus status = PyThread_acquire_lock_timed(handle->lock, 0, 0);
    while (status != PY_LOCK_ACQUIRED) {
        PyThreadState *tstate = PyEval_SaveThread();
        status = PyThread_acquire_lock_timed(handle->lock, -1, 1);
        PyEval_RestoreThread(tstate);
        if (status == PY_LOCK_INTR && Py_MakePendingCalls() < 0) {
            return -1;
        }
    }
    assert(handle->lock_depth == 0);
    handle->lock_owner = me;
    handle->lock_depth = 1;
    return 0;
}

static inline int
handle_lock(FLHandle *handle)
{
    return handle->lock == NULL ? 0 : handle_lock_slow(handle);
}

static inline void
handle_unlock(FLHandle *handle)
{
    if (handle->lock == NULL) {
        return;
    }
    assert(handle->lock_depth > 0 &&
           handle->lock_owner == PyThread_get_thread_ident());
    if (--handle->lock_depth == 0) {
        handle->lock_owner = 0;
        PyThread_release_lock(handle->lock);
    }
}

static int handle_run_callback(FLHandle *handle);

int
fl_handle_run(FLHandle *handle)
{
    if (handle->cancelled) {
        return 0;
    }
    if (handle->lock == NULL) {
        return handle_run_callback(handle);
    }
    /* Another thread may have cancelled it since the check above. */
    if (handle_lock(handle) < 0) {
        return -1;
    }
    int rc = handle->cancelled ? 0 : handle_run_callback(handle);
    handle_unlock(handle);
    return rc;
}

static int
handle_run_callback(FLHandle *handle)
{
    /* Keep the callback alive even if it cancels its own handle. */
    PyObject *callback = Py_NewRef(handle->callback);
    PyObject *args = Py_NewRef(handle->args);
    PyObject *context = handle->context;
    if (PyContext_Enter(context) < 0) {
        Py_DECREF(callback);
        Py_DECREF(args);
        return -1;
    }
    PyObject *res = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                                        PyTuple_GET_SIZE(args), NULL);
    Py_DECREF(callback);
    Py_DECREF(args);
    if (PyContext_Exit(context) < 0) {
        Py_XDECREF(res);
        return -1;
    }
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

static int handle_ask_loop_debug(PyObject *loop);

/* loop.get_debug() for the loop a handle was made for: the C flag of a
 * fastloop loop, else the method's answer.  1, 0, or -1 with an error. */
static int
handle_loop_debug(PyObject *loop)
{
    int debug = fl_handle_loop.loop_debug(loop);
    if (debug != -2) {
        return debug;
    }
    return handle_ask_loop_debug(loop);
}

/* The same for a loop that is not a fastloop Loop: its get_debug(). */
static int
handle_ask_loop_debug(PyObject *loop)
{
    PyObject *res = PyObject_CallMethod(loop, "get_debug", NULL);
    if (res == NULL) {
        return -1;
    }
    int debug = PyObject_IsTrue(res);
    Py_DECREF(res);
    return debug;
}

/* cancel() in debug mode (debug 1), or for a loop that is not a fastloop
 * Loop (debug -2: its get_debug() decides): the repr goes in `repr`. */
static void
keep_repr(FLHandle *handle, int debug)
{
    PyObject *loop = Py_NewRef(handle->loop);
    if (debug == -2) {
        debug = handle_ask_loop_debug(loop);
    }
    if (debug > 0) {
        handle->repr = PyObject_Repr((PyObject *)handle);
    }
    if (debug < 0 || (debug > 0 && handle->repr == NULL)) {
        PyErr_WriteUnraisable((PyObject *)handle);
    }
    Py_DECREF(loop);
}

void
fl_handle_cancel(FLHandle *handle)
{
    if (handle->cancelled) {
        return;
    }
    handle->cancelled = 1;
    /* Only a loop's own heap marks a timer scheduled, so its loop is a
     * fastloop loop -- unless the garbage collector cleared the handle's
     * reference (then the heap drops it when it clears itself). */
    int debug = -2; /* not known yet */
    if (handle->scheduled && handle->loop != NULL) {
        assert(PyObject_TypeCheck(handle->loop, fl_state->loop_type));
        debug = fl_handle_loop.remove_timer(handle->loop, handle);
    }
    if (handle->loop != NULL && handle->repr == NULL) {
        /* In debug mode, keep what the repr said while the callback was
         * still known (asyncio asks the loop's get_debug()). */
        if (debug == -2) {
            debug = fl_handle_loop.loop_debug(handle->loop);
        }
        if (debug != 0) {
            keep_repr(handle, debug);
        }
    }
    Py_CLEAR(handle->callback);
    Py_CLEAR(handle->args);
}

/* ---- Python-visible methods ------------------------------------------ */

static PyObject *
handle_cancel(FLHandle *self, PyObject *Py_UNUSED(ignored))
{
    if (handle_lock(self) < 0) {
        return NULL;
    }
    fl_handle_cancel(self);
    handle_unlock(self);
    Py_RETURN_NONE;
}

static PyObject *
handle_cancelled(FLHandle *self, PyObject *Py_UNUSED(ignored))
{
    if (handle_lock(self) < 0) {
        return NULL;
    }
    int cancelled = self->cancelled;
    handle_unlock(self);
    return PyBool_FromLong(cancelled);
}

static PyObject *
handle_get_context(FLHandle *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->context);
}

static PyObject *
handle_run_method(FLHandle *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_handle_run(self) < 0 && fl_handle_loop.report_error(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
timer_when(FLHandle *self, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(fl_timer_when(self));
}

PyObject *
fl_format_callback(FLHandle *self)
{
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13 shortens reprs of arguments unless the loop is in debug mode. */
    int debug =
        self->loop != NULL && fl_handle_loop.loop_debug(self->loop) == 1;
    PyObject *kwnames = Py_BuildValue("(s)", "debug");
    if (kwnames == NULL) {
        return NULL;
    }
    /* Held: the reprs of the arguments may cancel the handle. */
    PyObject *call_args[3] = {Py_NewRef(self->callback), Py_NewRef(self->args),
                              debug ? Py_True : Py_False};
    PyObject *res = PyObject_Vectorcall(fl_state->format_callback_source,
                                        call_args, 2, kwnames);
    Py_DECREF(call_args[0]);
    Py_DECREF(call_args[1]);
    Py_DECREF(kwnames);
    return res;
#else
    return PyObject_CallFunctionObjArgs(fl_state->format_callback_source,
                                        self->callback, self->args, NULL);
#endif
}

/* asyncio's repr: <Handle callback(args) at file:line> with 'cancelled' and,
 * for timers, 'when=...'; 'created at file:line' in debug mode. */
static PyObject *
handle_repr(FLHandle *self)
{
    if (self->repr != NULL) {
        return Py_NewRef(self->repr);
    }
    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    const char *type_name = strrchr(Py_TYPE(self)->tp_name, '.');
    type_name = type_name ? type_name + 1 : Py_TYPE(self)->tp_name;
    PyObject *item = PyUnicode_FromString(type_name);
    if (item == NULL || PyList_Append(parts, item) < 0) {
        goto error;
    }
    Py_CLEAR(item);
    if (self->cancelled) {
        item = PyUnicode_FromString("cancelled");
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto error;
        }
        Py_CLEAR(item);
    }
    if (PyObject_TypeCheck(self, fl_state->timer_handle_type)) {
        PyObject *when = PyFloat_FromDouble(fl_timer_when(self));
        if (when == NULL) {
            goto error;
        }
        item = PyUnicode_FromFormat("when=%R", when);
        Py_DECREF(when);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto error;
        }
        Py_CLEAR(item);
    }
    if (self->callback != NULL) {
        item = fl_format_callback(self);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto error;
        }
        Py_CLEAR(item);
    }
    if (self->source_traceback != NULL &&
        PyList_Check(self->source_traceback) &&
        PyList_GET_SIZE(self->source_traceback) > 0) {
        PyObject *frame =
            PyList_GET_ITEM(self->source_traceback,
                            PyList_GET_SIZE(self->source_traceback) - 1);
        PyObject *filename = PyObject_GetAttrString(frame, "filename");
        PyObject *lineno =
            filename ? PyObject_GetAttrString(frame, "lineno") : NULL;
        if (lineno == NULL) {
            Py_XDECREF(filename);
            goto error;
        }
        item = PyUnicode_FromFormat("created at %S:%S", filename, lineno);
        Py_DECREF(filename);
        Py_DECREF(lineno);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto error;
        }
        Py_CLEAR(item);
    }
    PyObject *sep = PyUnicode_FromString(" ");
    if (sep == NULL) {
        goto error;
    }
    PyObject *joined = PyUnicode_Join(sep, parts);
    Py_DECREF(sep);
    Py_DECREF(parts);
    if (joined == NULL) {
        return NULL;
    }
    PyObject *res = PyUnicode_FromFormat("<%U>", joined);
    Py_DECREF(joined);
    return res;
error:
    Py_XDECREF(item);
    Py_DECREF(parts);
    return NULL;
}

static int
handle_traverse(FLHandle *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self)); /* a heap type's instances hold their type */
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    Py_VISIT(self->context);
    Py_VISIT(self->loop);
    Py_VISIT(self->source_traceback);
    Py_VISIT(self->repr);
    return 0;
}

/* Inline: also the body of every handle's dealloc. */
static inline Py_ALWAYS_INLINE void
handle_clear_refs(FLHandle *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    Py_CLEAR(self->context);
    Py_CLEAR(self->source_traceback);
    Py_CLEAR(self->repr);
    Py_CLEAR(self->loop);
}

static int
handle_clear(FLHandle *self)
{
    handle_clear_refs(self);
    return 0;
}

static void
handle_dealloc(FLHandle *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    handle_clear_refs(self);
    if (self->lock != NULL) {
        /* Whoever holds it holds a reference too. */
        assert(self->lock_depth == 0);
        PyThread_free_lock(self->lock);
        self->lock = NULL;
    }
    /* Instances of a heap type (and of Python subclasses, whose
     * subtype_dealloc leaves it to a heap base's dealloc) hold a reference
     * to their type, dropped last.  handle_alloc takes it back for a
     * handle reused from the freelist. */
    PyTypeObject *type = Py_TYPE(self);
    if ((type == fl_state->handle_type ||
         type == fl_state->timer_handle_type) &&
        handle_freelist_len < FL_HANDLE_FREELIST_MAX) {
        handle_freelist[handle_freelist_len++] = self;
    } else {
        type->tp_free((PyObject *)self);
    }
    Py_DECREF(type);
}

static PyObject *
handle_get_cancelled_attr(FLHandle *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->cancelled);
}

static PyObject *
handle_get_scheduled(FLHandle *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->scheduled);
}

static PyObject *
handle_get_when(FLHandle *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(fl_timer_when(self));
}

/* What asyncio's Handle.__init__ does with its loop: ask get_debug() (so
 * an object that is not a loop is refused there, as in asyncio) and, in
 * debug mode, remember where the handle was created. */
static int
handle_init_debug(FLHandle *self)
{
    int debug = handle_loop_debug(self->loop);
    if (debug <= 0) {
        return debug;
    }
    PyObject *frame = (PyObject *)PyEval_GetFrame();
    self->source_traceback =
        PyObject_CallOneArg(fl_state->extract_stack, frame ? frame : Py_None);
    return self->source_traceback == NULL ? -1 : 0;
}

static PyObject *
handle_new_py(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"callback", "args", "loop", "context", NULL};
    PyObject *callback, *cargs, *loop, *context = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:Handle", kwlist,
                                     &callback, &cargs, &loop, &context)) {
        return NULL;
    }
    PyObject *tuple = PySequence_Tuple(cargs);
    if (tuple == NULL) {
        return NULL;
    }
    FLHandle *self = fl_handle_new(type, loop, callback, tuple, context);
    Py_DECREF(tuple);
    if (self != NULL && handle_init_debug(self) < 0) {
        Py_CLEAR(self);
    }
    return (PyObject *)self;
}

static PyObject *
timer_new_py(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"when", "callback", "args",
                             "loop", "context",  NULL};
    double when;
    PyObject *callback, *cargs, *loop, *context = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "dOOO|O:TimerHandle", kwlist,
                                     &when, &callback, &cargs, &loop,
                                     &context)) {
        return NULL;
    }
    PyObject *tuple = PySequence_Tuple(cargs);
    if (tuple == NULL) {
        return NULL;
    }
    FLHandle *self = fl_handle_new(type, loop, callback, tuple, context);
    Py_DECREF(tuple);
    if (self != NULL) {
        self->when = when;
        if (handle_init_debug(self) < 0) {
            Py_CLEAR(self);
        }
    }
    return (PyObject *)self;
}

/* `a == b` as Python evaluates it (no identity shortcut): 1, 0 or -1. */
static int
python_eq(PyObject *a, PyObject *b)
{
    /* Held: the comparison may run code that drops them (cancel()). */
    Py_INCREF(a);
    Py_INCREF(b);
    PyObject *res = PyObject_RichCompare(a, b, Py_EQ);
    Py_DECREF(a);
    Py_DECREF(b);
    if (res == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(res);
    Py_DECREF(res);
    return truth;
}

/* 1 when two TimerHandles are equal the way asyncio's __eq__ says (the
 * deadlines, then callbacks and arguments by ==, then the cancelled
 * flags: a NaN deadline is equal to nothing, not even itself), 0 when
 * not, -1 on error. */
static int
timer_equal(FLHandle *x, FLHandle *y)
{
    if (!(fl_timer_when(x) == fl_timer_when(y))) {
        return 0;
    }
    int res = python_eq(x->callback ? x->callback : Py_None,
                        y->callback ? y->callback : Py_None);
    if (res == 1) {
        res = python_eq(x->args ? x->args : Py_None,
                        y->args ? y->args : Py_None);
    }
    if (res == 1) {
        res = x->cancelled == y->cancelled;
    }
    return res;
}

/* TimerHandles order by their deadline, as asyncio's do. */
static PyObject *
timer_richcompare(PyObject *a, PyObject *b, int op)
{
    if (!PyObject_TypeCheck(b, fl_state->timer_handle_type)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    FLHandle *x = (FLHandle *)a, *y = (FLHandle *)b;
    double xw = fl_timer_when(x), yw = fl_timer_when(y);
    int res;
    if (op == Py_LT || op == Py_GT) {
        res = op == Py_LT ? xw < yw : xw > yw;
        return PyBool_FromLong(res);
    }
    res = timer_equal(x, y);
    if (res < 0) {
        return NULL;
    }
    switch (op) {
    case Py_EQ:
        break;
    case Py_NE:
        res = !res;
        break;
    case Py_LE:
        res = res || xw < yw;
        break;
    default: /* Py_GE */
        res = res || xw > yw;
        break;
    }
    return PyBool_FromLong(res);
}

static Py_hash_t
timer_hash(PyObject *self)
{
    PyObject *when = PyFloat_FromDouble(fl_timer_when((FLHandle *)self));
    if (when == NULL) {
        return -1;
    }
    Py_hash_t h = PyObject_Hash(when);
    Py_DECREF(when);
    return h;
}

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS,
     "Cancel the callback; a no-op if it already ran or was cancelled."},
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS,
     "Return True if the callback was cancelled."},
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS,
     "Return the contextvars.Context the callback runs in."},
    {"_run", (PyCFunction)handle_run_method, METH_NOARGS,
     "Run the callback now (asyncio's private Handle._run)."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef timer_methods[] = {
    {"when", (PyCFunction)timer_when, METH_NOARGS,
     "Return the scheduled time as a float, on the loop.time() clock."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef handle_getset[] = {
    {"_cancelled", (getter)handle_get_cancelled_attr, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* T_OBJECT members read as None while the field is NULL (cancelled). */
static PyMemberDef handle_members[] = {
    {"_callback", T_OBJECT, offsetof(FLHandle, callback), READONLY, NULL},
    {"_args", T_OBJECT, offsetof(FLHandle, args), READONLY, NULL},
    {"_loop", T_OBJECT, offsetof(FLHandle, loop), READONLY, NULL},
    {"_source_traceback", T_OBJECT, offsetof(FLHandle, source_traceback),
     READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(FLHandle, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef timer_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(FLHandle, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef timer_getset[] = {
    {"_scheduled", (getter)handle_get_scheduled, NULL, NULL, NULL},
    {"_when", (getter)handle_get_when, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_doc, "Object returned by callback registration methods."},
    {Py_tp_new, handle_new_py},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_getset, handle_getset},
    {Py_tp_members, handle_members},
    {0, NULL},
};

/* Immutable, as the static types they were: no attribute of the class can
 * be set or deleted. */
static PyType_Spec handle_spec = {
    .name = "fastloop.Handle",
    .basicsize = sizeof(FLHandle),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = handle_slots,
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "Object returned by timed callback registration methods."},
    {Py_tp_new, timer_new_py},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_richcompare, timer_richcompare},
    {Py_tp_hash, timer_hash},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {Py_tp_members, timer_members},
    {0, NULL},
};

static PyType_Spec timer_spec = {
    .name = "fastloop.TimerHandle",
    .basicsize = sizeof(FLHandle),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = timer_slots,
};

int
fl_handle_init(PyObject *module)
{
    fl_state->handle_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &handle_spec, NULL);
    if (fl_state->handle_type == NULL) {
        return -1;
    }
    fl_state->timer_handle_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &timer_spec, (PyObject *)fl_state->handle_type);
    if (fl_state->timer_handle_type == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Handle",
                              (PyObject *)fl_state->handle_type) < 0 ||
        PyModule_AddObjectRef(module, "TimerHandle",
                              (PyObject *)fl_state->timer_handle_type) < 0) {
        return -1;
    }
    return 0;
}
