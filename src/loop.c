/* loop.c: the event loop core.
 *
 * Owns fastloop._core.Loop: the libev loop, the ready queue, the timer heap,
 * one iteration of the loop (_run_once) and the loop that repeats it, the
 * monotonic clock, call_soon/call_later/call_at/call_soon_threadsafe,
 * stop/close, and the plumbing that reports callback exceptions.
 *
 * One iteration has asyncio's shape: poll (timeout 0 when callbacks are
 * ready or the loop is stopping, else until the earliest timer, else
 * forever), move due timers to the ready queue, then run exactly the entries
 * that were ready when the run step began.  The GIL is released only around
 * a poll that may block.  Cold paths (executors, async generators, signal
 * handler bookkeeping, networking) live in fastloop/_loop.py.
 */
#include "loop.h"
#include "handle.h"
#include "io.h"
#include <stdarg.h>

#include <errno.h>
#include <math.h>
#include <time.h>
#include <structmember.h>

/* time.get_clock_info('monotonic').resolution on Linux. */
#define FL_CLOCK_RESOLUTION 1e-9

/* The longest a poll waits for a timer, as asyncio's
 * MAXIMUM_SELECT_TIMEOUT (one day): a later (or infinite) deadline polls
 * again after that. */
#define FL_MAX_POLL_TIMEOUT (24 * 3600.0)

double
fl_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

fl_loop_task_ops fl_loop_task;

/* ---- type check ------------------------------------------------------- */

int
fl_loop_check_subtype(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    if (!PyType_IsSubtype(type, fl_state->loop_type)) {
        return 0;
    }
    Py_XSETREF(fl_state->loop_last_subtype, (PyTypeObject *)Py_NewRef(type));
    return 1;
}

/* ---- ready queue ------------------------------------------------------ */

int
fl_loop_ready_grow(FLLoop *self)
{
    Py_ssize_t new_cap = self->ready_cap ? self->ready_cap * 2 : 64;
    fl_ready_entry *entries = PyMem_Malloc(new_cap * sizeof(fl_ready_entry));
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Unwrap the ring so the entries start at index 0. */
    for (Py_ssize_t i = 0; i < self->ready_len; i++) {
        entries[i] =
            self->ready[(self->ready_head + i) & (self->ready_cap - 1)];
    }
    PyMem_Free(self->ready);
    self->ready = entries;
    self->ready_cap = new_cap;
    self->ready_head = 0;
    return 0;
}

/* Pops the oldest entry; the caller owns its references. */
static inline fl_ready_entry
ready_pop(FLLoop *self)
{
    assert(self->ready_len > 0 && self->ready_len <= self->ready_cap);
    assert((self->ready_cap & (self->ready_cap - 1)) == 0);
    assert(self->ready_head >= 0 && self->ready_head < self->ready_cap);
    fl_ready_entry e = self->ready[self->ready_head];
    self->ready_head = (self->ready_head + 1) & (self->ready_cap - 1);
    self->ready_len--;
    return e;
}

static void
ready_clear(FLLoop *self)
{
    /* Detach the ring first: releasing an entry may run code that queues
     * more (into a new ring, which a later clear or dealloc releases). */
    fl_ready_entry *ready = self->ready;
    Py_ssize_t head = self->ready_head, len = self->ready_len;
    Py_ssize_t mask = self->ready_cap - 1;
    self->ready = NULL;
    self->ready_head = self->ready_len = self->ready_cap = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        fl_ready_entry *e = &ready[(head + i) & mask];
        Py_XDECREF(e->a);
        Py_XDECREF(e->b);
    }
    PyMem_Free(ready);
}

/* ---- timer heap ------------------------------------------------------- */

static inline int
timer_before(FLHandle *x, FLHandle *y)
{
    return x->when < y->when || (x->when == y->when && x->seq < y->seq);
}

static inline void
heap_set(FLLoop *self, Py_ssize_t i, FLHandle *t)
{
    assert(i >= 0 && i < self->ntimers && self->ntimers <= self->timers_cap);
    assert(t->scheduled);
    self->timers[i] = t;
    t->heap_index = i;
}

static void
heap_sift_up(FLLoop *self, Py_ssize_t i)
{
    FLHandle *t = self->timers[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!timer_before(t, self->timers[parent])) {
            break;
        }
        heap_set(self, i, self->timers[parent]);
        i = parent;
    }
    heap_set(self, i, t);
}

static void
heap_sift_down(FLLoop *self, Py_ssize_t i)
{
    FLHandle *t = self->timers[i];
    Py_ssize_t n = self->ntimers;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n &&
            timer_before(self->timers[child + 1], self->timers[child])) {
            child++;
        }
        if (!timer_before(self->timers[child], t)) {
            break;
        }
        heap_set(self, i, self->timers[child]);
        i = child;
    }
    heap_set(self, i, t);
}

int
fl_loop_add_timer(FLLoop *self, FLHandle *timer)
{
    if (self->ntimers == self->timers_cap) {
        Py_ssize_t new_cap = self->timers_cap ? self->timers_cap * 2 : 64;
        FLHandle **timers =
            PyMem_Realloc(self->timers, new_cap * sizeof(FLHandle *));
        if (timers == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->timers = timers;
        self->timers_cap = new_cap;
    }
    assert(!timer->scheduled && timer->heap_index == -1);
    timer->seq = self->timer_seq++;
    timer->scheduled = 1;
    Py_INCREF(timer);
    heap_set(self, self->ntimers++, timer);
    heap_sift_up(self, self->ntimers - 1);
    return 0;
}

/* Removes `index` from the heap and returns the heap's reference. */
/* Inline: the hot path of cancelling a timer and of running one. */
static inline Py_ALWAYS_INLINE FLHandle *
heap_remove_at(FLLoop *self, Py_ssize_t index)
{
    assert(index >= 0 && index < self->ntimers);
    FLHandle *t = self->timers[index];
    assert(t->scheduled && t->heap_index == index);
    FLHandle *last = self->timers[--self->ntimers];
    if (last != t) {
        heap_set(self, index, last);
        if (index > 0 && timer_before(last, self->timers[(index - 1) / 2])) {
            heap_sift_up(self, index);
        } else {
            heap_sift_down(self, index);
        }
    }
    t->scheduled = 0;
    t->heap_index = -1;
    return t;
}

static void
timers_clear(FLLoop *self)
{
    while (self->ntimers > 0) {
        Py_DECREF(heap_remove_at(self, self->ntimers - 1));
    }
}

/* ---- current task --------------------------------------------------- */

int
fl_loop_flush_current_task(FLLoop *self)
{
    if (!self->task_left_in_dict) {
        return 0;
    }
    self->task_left_in_dict = FL_LEFT_NOTHING;
    if (PyDict_DelItem(fl_state->current_tasks, (PyObject *)self) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
            return -1;
        }
        PyErr_Clear();
    }
    return 0;
}

int
fl_loop_hide_keeping_error(FLLoop *self)
{
    PyObject *exc = fl_err_fetch();
    int rc = fl_loop_hide_left_task(self);
    if (rc < 0 && exc != NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
        rc = 0;
    }
    fl_err_restore(exc);
    return rc;
}

/* ---- checks ----------------------------------------------------------- */

int
fl_loop_check_closed_slow(FLLoop *self)
{
    if (fl_loop_usable(self)) {
        return 0;
    }
    if (!self->closed && !self->initialized) {
        return fl_loop_check_init_slow(self);
    }
    /* Closed, or reopened by assigning _closed after its libev loop went. */
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
}

int
fl_loop_check_init_slow(FLLoop *self)
{
    if (self->initialized) {
        return 0;
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "Event loop object is not initialized (Loop.__init__ "
                    "was not called).");
    return -1;
}

int
fl_loop_check_thread(FLLoop *self)
{
    if (self->thread_id != 0 &&
        PyThread_get_thread_ident() != self->thread_id) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Non-thread-safe operation invoked on an event loop "
                        "other than the current one");
        return -1;
    }
    return 0;
}

/* Debug-mode callback check, as asyncio's _check_callback. */
static int
check_callback(PyObject *callback, const char *method)
{
    PyObject *res = PyObject_CallOneArg(fl_state->iscoroutine, callback);
    if (res == NULL) {
        return -1;
    }
    int is_coro = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (is_coro == 0) {
        res = PyObject_CallOneArg(fl_state->iscoroutinefunction, callback);
        if (res == NULL) {
            return -1;
        }
        is_coro = PyObject_IsTrue(res);
        Py_DECREF(res);
    }
    if (is_coro < 0) {
        return -1;
    }
    if (is_coro) {
        PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()",
                     method);
        return -1;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError,
                     "a callable object was expected by %s(), got %R", method,
                     callback);
        return -1;
    }
    return 0;
}

/* In debug mode handles remember where they were created (asyncio keeps
 * the stack minus the frame of the loop method itself). */
static int
capture_source_traceback(FLHandle *handle, int loop_frames)
{
    /* asyncio captures DEBUG_STACK_DEPTH frames from inside the handle's
     * constructor, then drops the `loop_frames` frames of its own methods
     * among them: keep the same number of the caller's frames. */
    PyObject *frame = (PyObject *)PyEval_GetFrame();
    PyObject *tb = PyObject_CallFunction(
        fl_state->extract_stack, "On", frame ? frame : Py_None,
        fl_state->debug_stack_depth - loop_frames);
    if (tb == NULL) {
        return -1;
    }
    handle->source_traceback = tb;
    return 0;
}

/* ---- exception reporting --------------------------------------------- */

/* Everything fastloop's C code reports to a loop's exception handler --
 * handles, callbacks without a Handle, futures, tasks, transports --
 * goes through fl_loop_call_exception_handler, mostly by way of the
 * functions below that build asyncio's context dict. */

int
fl_is_fatal_error(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit) ||
           PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

int
fl_loop_call_exception_handler(PyObject *loop, PyObject *context)
{
    PyObject *res = PyObject_CallMethodOneArg(
        loop, fl_state->str_call_exception_handler, context);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    /* As in asyncio, these leave the loop; anything else is unraisable. */
    if (fl_is_fatal_error()) {
        return -1;
    }
    PyErr_WriteUnraisable(loop);
    return 0;
}

/* {'message': message, 'exception': exc (left out when NULL), key:
 * value...} with the pairs of `ap` (up to a NULL key; a NULL value leaves
 * its key out).  New reference, or NULL with an exception set. */
static PyObject *
make_context(PyObject *message, PyObject *exc, va_list ap)
{
    PyObject *context = PyDict_New();
    if (context == NULL ||
        PyDict_SetItem(context, fl_state->str_message, message) < 0 ||
        (exc != NULL &&
         PyDict_SetItem(context, fl_state->str_exception, exc) < 0)) {
        Py_XDECREF(context);
        return NULL;
    }
    for (;;) {
        PyObject *key = va_arg(ap, PyObject *);
        if (key == NULL) {
            return context;
        }
        PyObject *value = va_arg(ap, PyObject *);
        if (value != NULL && PyDict_SetItem(context, key, value) < 0) {
            Py_DECREF(context);
            return NULL;
        }
    }
}

/* fl_loop_report's body.  A context that cannot be made, or a loop the
 * garbage collector cleared (NULL: `exc` itself is then written), goes to
 * PyErr_WriteUnraisable(unraisable_obj, else the loop, else None). */
static int
report_va(PyObject *loop, PyObject *message, PyObject *exc,
          PyObject *unraisable_obj, va_list ap)
{
    PyObject *context = message ? make_context(message, exc, ap) : NULL;
    int rc = 0;
    if (context != NULL && loop != NULL) {
        rc = fl_loop_call_exception_handler(loop, context);
    } else {
        if (context != NULL && exc != NULL) {
            fl_err_restore(Py_NewRef(exc));
        }
        if (PyErr_Occurred()) {
            PyErr_WriteUnraisable(unraisable_obj ? unraisable_obj
                                  : loop         ? loop
                                                 : Py_None);
        }
    }
    Py_XDECREF(context);
    return rc;
}

int
fl_loop_report(PyObject *loop, PyObject *message, PyObject *exc, ...)
{
    va_list ap;
    va_start(ap, exc);
    int rc = report_va(loop, message, exc, NULL, ap);
    va_end(ap);
    return rc;
}

void
fl_loop_report_quietly(PyObject *loop, const char *message, PyObject *exc, ...)
{
    PyObject *saved = fl_err_fetch(); /* nothing may be raised meanwhile */
    PyObject *msg = PyUnicode_FromString(message);
    va_list ap;
    va_start(ap, exc);
    if (report_va(loop, msg, exc, NULL, ap) < 0) {
        PyErr_WriteUnraisable(loop ? loop : Py_None);
    }
    va_end(ap);
    Py_XDECREF(msg);
    fl_err_restore(saved);
}

static int
report_with(PyObject *loop, PyObject *message, PyObject *exc,
            PyObject *unraisable_obj, ...)
{
    va_list ap;
    va_start(ap, unraisable_obj);
    int rc = report_va(loop, message, exc, unraisable_obj, ap);
    va_end(ap);
    return rc;
}

/* "Exception in callback <src>" for the current exception (consumed),
 * naming `handle` (may be NULL) and its source traceback.  `src` NULL:
 * making it failed, and that error is written instead.  `loop` NULL:
 * cleared by the garbage collector, no handler to report to. */
static int
report_callback(PyObject *loop, FLHandle *handle, PyObject *src,
                PyObject *unraisable_obj)
{
    if (src == NULL) {
        PyErr_WriteUnraisable(unraisable_obj ? unraisable_obj
                              : loop         ? loop
                                             : Py_None);
        return 0;
    }
    PyObject *exc = fl_err_fetch();
    PyObject *msg = PyUnicode_FromFormat("Exception in callback %S", src);
    int rc = report_with(loop, msg, exc, unraisable_obj, fl_state->str_handle,
                         (PyObject *)handle, fl_state->str_source_traceback,
                         handle ? handle->source_traceback : NULL, NULL);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    return rc;
}

int
fl_loop_report_handle_error(FLHandle *handle)
{
    if (fl_is_fatal_error()) {
        return -1;
    }
    /* Held: formatting the callback runs Python code. */
    PyObject *loop = Py_XNewRef(handle->loop);
    PyObject *exc = fl_err_fetch();
    PyObject *cb;
    if (handle->callback != NULL) {
        cb = fl_format_callback(handle);
    } else {
        /* The callback cancelled its own handle, then raised: asyncio's
         * cancel() drops the callback and arguments too, and formats
         * them as _format_callback_source(None, None) does. */
        cb = PyUnicode_FromString("None()");
    }
    if (cb != NULL) {
        fl_err_restore(exc);
    } else {
        Py_DECREF(exc);
    }
    int rc = report_callback(loop, handle, cb, (PyObject *)handle);
    Py_XDECREF(cb);
    Py_XDECREF(loop);
    return rc;
}

int
fl_loop_report_callback_error(PyObject *loop, PyObject *fn, PyObject *arg,
                              PyObject *ctx, const char *source)
{
    if (fl_is_fatal_error()) {
        return -1;
    }
    PyObject *exc = fl_err_fetch();
    PyObject *src = NULL;
    FLHandle *handle = NULL;
    if (source != NULL) {
        src = PyUnicode_FromString(source);
    } else {
        /* asyncio runs a done callback through a Handle, which the context
         * names: make the one it would have run (fn(arg) in ctx). */
        PyObject *args = PyTuple_Pack(1, arg);
        if (args != NULL) {
            handle = fl_handle_new(fl_state->handle_type, loop, fn, args, ctx);
            Py_DECREF(args);
        }
        if (handle != NULL) {
            src = fl_format_callback(handle);
        }
    }
    if (src != NULL) {
        fl_err_restore(exc);
    } else {
        Py_DECREF(exc);
    }
    int rc = report_callback(loop, handle, src, NULL);
    Py_XDECREF(src);
    Py_XDECREF(handle);
    return rc;
}

/* ---- running entries -------------------------------------------------- */

/* An asyncio.Handle (or any object with _run) given to _add_callback. */
static int
run_foreign_handle(PyObject *handle, PyObject *Py_UNUSED(unused))
{
    PyObject *res =
        PyObject_CallMethodNoArgs(handle, fl_state->str_handle_run);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Runs one entry.  Returns -1 only for exceptions that must leave the
 * loop (SystemExit, KeyboardInterrupt); everything else is reported. */
static inline Py_ALWAYS_INLINE int
run_entry(FLLoop *self, fl_ready_entry *e)
{
    if (e->fn == NULL) {
        FLHandle *handle = (FLHandle *)e->a;
        if (fl_handle_run(handle) < 0) {
            return fl_loop_report_handle_error(handle);
        }
        return 0;
    }
    if (e->fn(e->a, e->b) < 0) {
        if (fl_is_fatal_error()) {
            return -1;
        }
        PyObject *exc = fl_err_fetch();
        fl_loop_report_quietly((PyObject *)self,
                               "Exception in event loop callback", exc, NULL);
        Py_DECREF(exc);
    }
    return 0;
}

/* asyncio's _format_handle: a handle shows as itself, a task step as the
 * task, a future callback (queued as a (callback, context) pair) as the
 * callback. */
static PyObject *
describe_entry(fl_ready_entry *e)
{
    PyObject *what = e->a ? e->a : Py_None;
    if (PyTuple_CheckExact(what) && PyTuple_GET_SIZE(what) > 0) {
        what = PyTuple_GET_ITEM(what, 0);
    }
    return PyObject_Repr(what);
}

static int
run_entry_debug(FLLoop *self, fl_ready_entry *e)
{
    self->current_handle = e->fn == NULL ? (FLHandle *)e->a : NULL;
    double t0 = fl_monotonic();
    int rc = run_entry(self, e);
    double dt = fl_monotonic() - t0;
    self->current_handle = NULL;
    /* As asyncio's `dt >= slow_callback_duration`: never for NaN. */
    if (rc < 0 || !(dt >= self->slow_callback_duration)) {
        return rc;
    }
    PyObject *what = describe_entry(e);
    PyObject *res = NULL;
    if (what != NULL) {
        res = PyObject_CallMethod(fl_state->logger, "warning", "OOd",
                                  fl_state->str_format_handle_msg, what, dt);
        Py_DECREF(what);
    }
    if (res == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(res);
    return 0;
}

/* ---- polling ---------------------------------------------------------- */

static void
release_gil(struct ev_loop *evloop)
{
    FLLoop *self = ev_userdata(evloop);
    if (self->poll_may_block) {
        self->released_tstate = PyEval_SaveThread();
    }
}

static void
acquire_gil(struct ev_loop *evloop)
{
    FLLoop *self = ev_userdata(evloop);
    if (self->released_tstate != NULL) {
        PyThreadState *tstate = self->released_tstate;
        self->released_tstate = NULL;
        PyEval_RestoreThread(tstate);
    }
}

static void
noop_cb(struct ev_loop *evloop, void *w, int revents)
{
}

/* ev_run asks to invoke pending watchers twice per pass, usually with none
 * pending; libev's own routine scans every priority even then. */
static void
invoke_pending(struct ev_loop *evloop)
{
    if (ev_pending_count(evloop) > 0) {
        ev_invoke_pending(evloop);
    }
}

#define NOWAIT_MAX_MISSES 3
#define NOWAIT_PROBE_PERIOD 16

/* Polls once.  timeout < 0 waits until an event arrives.  Returns 1 when
 * the poll may have blocked (the GIL was released), 0 when it did not, -1
 * with an exception set.  Runs no Python code (see poll_events). */
static inline Py_ALWAYS_INLINE int
poll_backend(FLLoop *self, double timeout)
{
    Py_ssize_t before = self->ready_len;
    if (timeout == 0.0) {
        int rc = fl_io_poll(self, 0.0);
        self->last_poll_found_events = self->ready_len != before;
        return rc;
    }
    /* Releasing and retaking the GIL costs more than a poll that finds
     * events already waiting, but a first try that finds nothing is one
     * more system call before the poll that blocks.  When the last poll
     * found events (a busy loop), try a poll that keeps the GIL first,
     * unless the last NOWAIT_MAX_MISSES such tries all found nothing (a
     * server whose peers answer only after a round trip); then try only
     * every NOWAIT_PROBE_PERIOD-th busy poll, until one finds events. */
    if (self->last_poll_found_events &&
        (self->nowait_misses < NOWAIT_MAX_MISSES ||
         ++self->polls_skipping_nowait % NOWAIT_PROBE_PERIOD == 0)) {
        int rc = fl_io_poll(self, 0.0);
        int found = self->ready_len != before;
        if (found) {
            self->nowait_misses = 0;
        } else if (self->nowait_misses < NOWAIT_MAX_MISSES) {
            self->nowait_misses++;
        }
        if (rc < 0 || found) {
            self->last_poll_found_events = found;
            return rc;
        }
    }
    int rc = fl_io_poll(self, timeout);
    self->last_poll_found_events = self->ready_len != before;
    return rc;
}

/* poll_backend, then the release of the cancelled handles it unregistered:
 * only now, outside the backend's dispatch and libev's pass, may their
 * last references run Python code (which may even close the loop). */
static inline Py_ALWAYS_INLINE int
poll_events(FLLoop *self, double timeout)
{
    int rc = poll_backend(self, timeout);
    if (self->io_ndropped > 0) {
        PyObject *exc = rc < 0 ? fl_err_fetch() : NULL;
        fl_io_release_dropped(self);
        fl_err_restore(exc);
    }
    return rc;
}

/* A poll that blocked may have been cut short by a signal: its Python
 * handler (KeyboardInterrupt for SIGINT) runs now, as it would in asyncio's
 * select().  A loop that does not block runs Python code all along, which
 * runs pending handlers itself, among it the self-pipe's reader that
 * set_wakeup_fd wakes; checking every SIGNAL_CHECK_PERIOD polls anyway
 * bounds the wait when the callbacks are all C. */
#define SIGNAL_CHECK_PERIOD 64

static int
check_signals(FLLoop *self, int poll_blocked)
{
    if (!poll_blocked &&
        ++self->polls_since_signal_check < SIGNAL_CHECK_PERIOD) {
        return 0;
    }
    self->polls_since_signal_check = 0;
    return PyErr_CheckSignals();
}

/* Moves every timer due by now (within the clock's resolution) to the
 * ready queue, earliest first. */
static inline Py_ALWAYS_INLINE int
collect_due_timers(FLLoop *self)
{
    if (self->ntimers == 0) {
        return 0;
    }
    double end_time = fl_monotonic() + FL_CLOCK_RESOLUTION;
    while (self->ntimers > 0 && self->timers[0]->when < end_time) {
        FLHandle *t = heap_remove_at(self, 0);
        /* The heap's reference moves to the ready queue. */
        int rc = fl_loop_enqueue_handle(self, t);
        Py_DECREF(t);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* Releases a ready entry's references after it ran, when its task step
 * left the task current (FL_LEFT_TASK) and one of them is the last: that
 * release may run Python code (a __del__), which must see no current
 * task.  When a step runs next in this batch, the task is hidden (None
 * over it, which that step replaces); otherwise the entry goes now, as it
 * would before the next entry or at the batch's end anyway.  `rc` < 0: an
 * exception is set, and kept.  Returns the new rc. */
static int
release_entry_refs_left(FLLoop *self, fl_ready_entry *e, int more_in_batch,
                        int rc)
{
    int step_next = more_in_batch && self->ready_len > 0 &&
                    fl_loop_is_task_step(self->ready[self->ready_head].fn);
    PyObject *exc = rc < 0 ? fl_err_fetch() : NULL;
    int r = step_next ? fl_loop_task.hide_left_task(self)
                      : fl_loop_flush_current_task(self);
    if (r < 0) {
        if (exc != NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        } else {
            rc = -1;
        }
    }
    fl_err_restore(exc);
    Py_XDECREF(e->a);
    Py_XDECREF(e->b);
    return rc;
}

/* Inline: it is the body of run_forever's loop. */
static inline Py_ALWAYS_INLINE int
run_once(FLLoop *self)
{
    double timeout = -1.0;
    if (self->ready_len > 0 || self->stopping) {
        timeout = 0.0;
    } else if (self->ntimers > 0) {
#if PY_VERSION_HEX >= 0x030D0000
        if (self->timers[0]->when_nan) {
            /* 3.13+ asyncio computes the timeout from the NaN itself: its
             * selector raises this, out of run_forever. */
            PyErr_SetString(PyExc_ValueError,
                            "cannot convert float NaN to integer");
            return -1;
        }
#endif
        timeout = self->timers[0]->when - fl_monotonic();
        /* No NaN reaches the heap (see fl_timer_when), nor the poll. */
        assert(!isnan(timeout));
        if (!(timeout >= 0.0)) {
            timeout = 0.0;
        } else if (timeout > FL_MAX_POLL_TIMEOUT) {
            timeout = FL_MAX_POLL_TIMEOUT;
        }
    }
    int polled = poll_events(self, timeout);
    if (polled < 0 || check_signals(self, polled) < 0) {
        return -1;
    }
    if (collect_due_timers(self) < 0) {
        return -1;
    }
    /* Run exactly what is ready now; what these callbacks schedule runs in
     * the next iteration. */
    Py_ssize_t ntodo = self->ready_len;
    int debug = self->debug;
    int rc = 0;
    self->in_run_batch = 1;
    for (Py_ssize_t i = 0; i < ntodo && self->ready_len > 0; i++) {
        fl_ready_entry e = ready_pop(self);
        /* A task step may have left its task in the current-tasks dict for
         * this entry to replace; anything else must not see it there. */
        if (self->task_left_in_dict && !fl_loop_is_task_step(e.fn)) {
            rc = fl_loop_flush_current_task(self);
        }
        if (rc == 0) {
            rc = debug ? run_entry_debug(self, &e) : run_entry(self, &e);
        }
        /* Releasing the last reference to either may run code (the second
         * cannot be freed by the first unless the first is freed). */
        if (self->task_left_in_dict == FL_LEFT_TASK &&
            ((e.a != NULL && Py_REFCNT(e.a) == 1) ||
             (e.b != NULL && Py_REFCNT(e.b) == 1))) {
            rc = release_entry_refs_left(self, &e, i + 1 < ntodo, rc);
        } else {
            Py_XDECREF(e.a);
            Py_XDECREF(e.b);
        }
        if (rc < 0) {
            break;
        }
    }
    self->in_run_batch = 0;
    if (self->task_left_in_dict) {
        PyObject *exc = fl_err_fetch();
        if (fl_loop_flush_current_task(self) < 0) {
            if (exc != NULL) {
                PyErr_WriteUnraisable((PyObject *)self);
            } else {
                rc = -1;
            }
        }
        fl_err_restore(exc);
    }
    return rc;
}

/* ---- scheduling methods ---------------------------------------------- */

/* Parses `(callback, *args, context=None)` from a vectorcall.  Returns a
 * new tuple of the positional args after `skip` leading ones. */
static PyObject *
args_tuple(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t skip)
{
    Py_ssize_t n = nargs - skip;
    if (n <= 0) {
        return PyTuple_New(0);
    }
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[skip + i]));
    }
    return tuple;
}

/* Finds context= among vectorcall keywords; any other keyword is an
 * error, as for asyncio's signatures. */
static int
parse_context_kw(const char *method, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames, PyObject **context)
{
    *context = Py_None;
    if (kwnames == NULL) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Compare(name, fl_state->str_context) == 0) {
            *context = args[nargs + i];
        } else {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%U'",
                             method, name);
            }
            return -1;
        }
    }
    return 0;
}

static FLHandle *
schedule_soon(FLLoop *self, PyObject *callback, PyObject *cargs,
              PyObject *context)
{
    FLHandle *handle = fl_handle_new(fl_state->handle_type, (PyObject *)self,
                                     callback, cargs, context);
    if (handle == NULL) {
        return NULL;
    }
    if (self->debug && capture_source_traceback(handle, 2) < 0) {
        Py_DECREF(handle);
        return NULL;
    }
    if (fl_loop_enqueue_handle(self, handle) < 0) {
        Py_DECREF(handle);
        return NULL;
    }
    return handle;
}

static PyObject *
loop_call_soon_impl(FLLoop *self, const char *method, PyObject *const *args,
                    size_t nargsf, PyObject *kwnames, int threadsafe)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: "
                     "'callback'",
                     method);
        return NULL;
    }
    if (parse_context_kw(method, args, nargs, kwnames, &context) < 0 ||
        fl_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug) {
        if ((!threadsafe && fl_loop_check_thread(self) < 0) ||
            check_callback(args[0], method) < 0) {
            return NULL;
        }
    }
    PyObject *cargs = args_tuple(args, nargs, 1);
    if (cargs == NULL) {
        return NULL;
    }
    FLHandle *handle = schedule_soon(self, args[0], cargs, context);
    Py_DECREF(cargs);
    /* The debug checks run Python code, which may have closed the loop:
     * fl_io_wakeup wakes only a usable one. */
    if (handle != NULL && threadsafe) {
        if (fl_handle_make_threadsafe(handle) < 0) {
            fl_handle_cancel(handle);
            Py_DECREF(handle);
            return NULL;
        }
        fl_io_wakeup(self);
    }
    return (PyObject *)handle;
}

static PyObject *
loop_call_soon(FLLoop *self, PyObject *const *args, size_t nargsf,
               PyObject *kwnames)
{
    return loop_call_soon_impl(self, "call_soon", args, nargsf, kwnames, 0);
}

static PyObject *
loop_call_soon_threadsafe(FLLoop *self, PyObject *const *args, size_t nargsf,
                          PyObject *kwnames)
{
    return loop_call_soon_impl(self, "call_soon_threadsafe", args, nargsf,
                               kwnames, 1);
}

/* _call_soon(callback, args, context): asyncio's internal entry point. */
static PyObject *
loop_private_call_soon(FLLoop *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "_call_soon() takes exactly 3 arguments");
        return NULL;
    }
    /* asyncio's _call_soon does not check for a closed loop (call_soon
     * does, before calling it). */
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    PyObject *cargs = PySequence_Tuple(args[1]);
    if (cargs == NULL) {
        return NULL;
    }
    FLHandle *handle = schedule_soon(self, args[0], cargs, args[2]);
    Py_DECREF(cargs);
    return (PyObject *)handle;
}

static PyObject *
schedule_timer(FLLoop *self, const char *method, double when,
               PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               int loop_frames)
{
    PyObject *context;
    if (parse_context_kw(method, args, nargs, kwnames, &context) < 0 ||
        fl_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug && (fl_loop_check_thread(self) < 0 ||
                        check_callback(args[1], method) < 0)) {
        return NULL;
    }
    PyObject *cargs = args_tuple(args, nargs, 2);
    if (cargs == NULL) {
        return NULL;
    }
    FLHandle *timer = fl_handle_new(fl_state->timer_handle_type,
                                    (PyObject *)self, args[1], cargs, context);
    Py_DECREF(cargs);
    if (timer == NULL) {
        return NULL;
    }
    /* NaN: reported as NaN (fl_timer_when), kept in the heap where
     * asyncio's would leave it -- see fl_timer_when. */
    timer->when_nan = isnan(when) != 0;
    if (timer->when_nan) {
        when = self->ntimers > 0 ? self->timers[0]->when : -Py_HUGE_VAL;
    }
    timer->when = when;
    if ((self->debug && capture_source_traceback(timer, loop_frames) < 0) ||
        fl_loop_add_timer(self, timer) < 0) {
        Py_DECREF(timer);
        return NULL;
    }
    return (PyObject *)timer;
}

static int
parse_time_args(const char *method, const char *what, PyObject *const *args,
                Py_ssize_t nargs, double *value)
{
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required positional arguments: "
                     "'%s' and 'callback'",
                     method, what);
        return -1;
    }
    if (!PyFloat_Check(args[0]) && !PyLong_Check(args[0]) &&
        !PyNumber_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s must be a number, not %.100s", what,
                     Py_TYPE(args[0])->tp_name);
        return -1;
    }
    *value = PyFloat_AsDouble(args[0]);
    if (*value == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static PyObject *
loop_call_later(FLLoop *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    double delay;
    if (nargs >= 1 && args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    if (parse_time_args("call_later", "delay", args, nargs, &delay) < 0) {
        return NULL;
    }
    /* call_later -> call_at -> TimerHandle in asyncio: three frames. */
    return schedule_timer(self, "call_later", fl_monotonic() + delay, args,
                          nargs, kwnames, 3);
}

static PyObject *
loop_call_at(FLLoop *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    double when;
    if (parse_time_args("call_at", "when", args, nargs, &when) < 0) {
        return NULL;
    }
    return schedule_timer(self, "call_at", when, args, nargs, kwnames, 2);
}

/* _add_callback(handle): queue an existing handle (asyncio's or ours). */
static PyObject *
loop_add_callback(FLLoop *self, PyObject *handle)
{
    int rc;
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    if (PyObject_TypeCheck(handle, fl_state->handle_type)) {
        if (((FLHandle *)handle)->cancelled) {
            Py_RETURN_NONE;
        }
        rc = fl_loop_enqueue_handle(self, (FLHandle *)handle);
    } else {
        PyObject *cancelled = PyObject_GetAttrString(handle, "_cancelled");
        if (cancelled == NULL) {
            return NULL;
        }
        int is_cancelled = PyObject_IsTrue(cancelled);
        Py_DECREF(cancelled);
        if (is_cancelled < 0) {
            return NULL;
        }
        if (is_cancelled) {
            Py_RETURN_NONE;
        }
        rc = fl_loop_enqueue(self, run_foreign_handle, handle, NULL);
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_add_callback_signalsafe(FLLoop *self, PyObject *handle)
{
    PyObject *res = loop_add_callback(self, handle);
    if (res != NULL) {
        fl_io_wakeup(self);
    }
    return res;
}

static PyObject *
loop_write_to_self(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    fl_io_wakeup(self);
    Py_RETURN_NONE;
}

/* ---- running ---------------------------------------------------------- */

static PyObject *
loop_run_once(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_closed(self) < 0 || run_once(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The body of run_forever: iterate until stop().  The Python side installs
 * the running loop, async generator hooks and the signal wakeup fd. */
static PyObject *
loop_run_forever_core(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This event loop is already running");
        return NULL;
    }
    self->running = 1;
    self->thread_id = PyThread_get_thread_ident();
    int rc = 0;
    Py_INCREF(self);
    for (;;) {
        rc = run_once(self);
        if (rc < 0 || self->stopping) {
            break;
        }
    }
    self->stopping = 0;
    self->running = 0;
    self->thread_id = 0;
    Py_DECREF(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_stop(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
loop_is_running(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(self->running);
}

static PyObject *
loop_is_closed(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(self->closed);
}

static PyObject *
loop_time(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    return PyFloat_FromDouble(fl_monotonic());
}

static PyObject *
loop_get_debug(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(self->debug);
}

static PyObject *
loop_check_thread_method(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0 || fl_loop_check_thread(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
loop_process_events(FLLoop *self, PyObject *Py_UNUSED(event_list))
{
    /* Events are dispatched by libev during the poll itself. */
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Releases everything the loop holds in C.  Idempotent. */
static void
loop_release_core(FLLoop *self)
{
    ready_clear(self);
    timers_clear(self);
    fl_io_close(self);
    if (self->evloop != NULL) {
        ev_async_stop(self->evloop, &self->wakeup);
        ev_timer_stop(self->evloop, &self->poll_timer);
        ev_loop_destroy(self->evloop);
        self->evloop = NULL;
    }
    fl_loop_update_checks(self);
}

int
fl_loop_check_schedulable_slow(FLLoop *loop)
{
    if (!fl_loop_usable(loop) && fl_loop_check_closed_slow(loop) < 0) {
        return -1;
    }
    if (loop->debug && fl_loop_check_thread(loop) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *
loop_close_core(FLLoop *self, PyObject *Py_UNUSED(ignored))
{
    if (fl_loop_check_init(self) < 0) {
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    self->closed = 1;
    loop_release_core(self);
    Py_RETURN_NONE;
}

/* ---- object protocol -------------------------------------------------- */

static int
loop_init(FLLoop *self, PyObject *args, PyObject *kwds)
{
    if (self->evloop != NULL) {
        return 0; /* __init__ called twice: keep the existing loop */
    }
    /* EVFLAG_NOSIGMASK: Python owns signal handling and masks.  No inotify
     * and no timerfd: we use neither stat watchers nor periodic timers. */
    self->evloop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK |
                               EVFLAG_NOINOTIFY | EVFLAG_NOTIMERFD);
    if (self->evloop == NULL) {
        PyErr_SetString(PyExc_OSError, "libev could not create a loop");
        return -1;
    }
    ev_set_userdata(self->evloop, self);
    ev_set_loop_release_cb(self->evloop, release_gil, acquire_gil);
    ev_set_invoke_pending_cb(self->evloop, invoke_pending);
    ev_timer_init(&self->poll_timer,
                  (void (*)(struct ev_loop *, ev_timer *, int))noop_cb, 0.0,
                  0.0);
    ev_async_init(&self->wakeup,
                  (void (*)(struct ev_loop *, ev_async *, int))noop_cb);
    ev_async_start(self->evloop, &self->wakeup);
    if (fl_io_open(self) < 0) {
        /* Leave it as __new__ did: not initialised, refused by every
         * method. */
        ev_async_stop(self->evloop, &self->wakeup);
        ev_loop_destroy(self->evloop);
        self->evloop = NULL;
        return -1;
    }
    self->initialized = 1;
    fl_loop_update_checks(self);
    self->slow_callback_duration = 0.1;
    Py_XSETREF(self->exception_handler, Py_NewRef(Py_None));
    Py_XSETREF(self->task_factory, Py_NewRef(Py_None));
    return 0;
}

static PyObject *
loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    FLLoop *self = (FLLoop *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->exception_handler = Py_NewRef(Py_None);
    self->task_factory = Py_NewRef(Py_None);
    self->slow_callback_duration = 0.1;
    self->epfd = -1;
    self->wakeup_fd = -1;
    return (PyObject *)self;
}

static int
loop_traverse(FLLoop *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self)); /* a heap type's instances hold their type */
    for (Py_ssize_t i = 0; i < self->ready_len; i++) {
        fl_ready_entry *e =
            &self->ready[(self->ready_head + i) & (self->ready_cap - 1)];
        Py_VISIT(e->a);
        Py_VISIT(e->b);
    }
    for (Py_ssize_t i = 0; i < self->ntimers; i++) {
        Py_VISIT(self->timers[i]);
    }
    if (fl_io_traverse(self, visit, arg) < 0) {
        return -1;
    }
    Py_VISIT(self->exception_handler);
    Py_VISIT(self->task_factory);
    return 0;
}

static int
loop_clear(FLLoop *self)
{
    ready_clear(self);
    timers_clear(self);
    fl_io_clear_all(self);
    Py_CLEAR(self->exception_handler);
    Py_CLEAR(self->task_factory);
    return 0;
}

static void
loop_dealloc(FLLoop *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    loop_clear(self);
    loop_release_core(self);
    PyMem_Free(self->ready);
    PyMem_Free(self->timers);
    PyMem_Free(self->io);
    PyMem_Free(self->io_dropped);
    /* Also for Python subclasses: subtype_dealloc leaves the type
     * reference to a heap base's dealloc. */
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* ---- attributes ------------------------------------------------------- */

static PyObject *
get_debug_attr(FLLoop *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->debug);
}

/* Stores the truth of `value` (NULL: deleting, i.e. false) in *flag. */
static int
set_flag(int *flag, PyObject *value)
{
    int v = value ? PyObject_IsTrue(value) : 0;
    if (v < 0) {
        return -1;
    }
    *flag = v;
    return 0;
}

static int
set_debug_attr(FLLoop *self, PyObject *value, void *Py_UNUSED(c))
{
    int rc = set_flag(&self->debug, value);
    fl_loop_update_checks(self);
    return rc;
}

static PyObject *
get_closed_attr(FLLoop *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closed);
}

static int
set_closed_attr(FLLoop *self, PyObject *value, void *Py_UNUSED(c))
{
    int rc = set_flag(&self->closed, value);
    fl_loop_update_checks(self);
    return rc;
}

/* asyncio's __init__ assigns these; the C loop keeps its own state, so
 * the setters accept only the "not running" values it assigns. */
static int
set_thread_id_attr(FLLoop *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value != NULL && value != Py_None) {
        PyErr_SetString(PyExc_AttributeError,
                        "_thread_id is managed by the C loop");
        return -1;
    }
    return 0;
}

static int
set_current_handle_attr(FLLoop *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value != NULL && value != Py_None) {
        PyErr_SetString(PyExc_AttributeError,
                        "_current_handle is managed by the C loop");
        return -1;
    }
    return 0;
}

static PyObject *
get_stopping_attr(FLLoop *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->stopping);
}

static int
set_stopping_attr(FLLoop *self, PyObject *value, void *Py_UNUSED(c))
{
    return set_flag(&self->stopping, value);
}

static PyObject *
get_thread_id_attr(FLLoop *self, void *Py_UNUSED(c))
{
    if (self->thread_id == 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(self->thread_id);
}

static PyObject *
get_current_handle_attr(FLLoop *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->current_handle ? (PyObject *)self->current_handle
                                          : Py_None);
}

static PyObject *
get_ready_count_attr(FLLoop *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->ready_len);
}

static PyObject *
get_timer_count_attr(FLLoop *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->ntimers);
}

static PyGetSetDef loop_getset[] = {
    {"_debug", (getter)get_debug_attr, (setter)set_debug_attr, NULL, NULL},
    {"_closed", (getter)get_closed_attr, (setter)set_closed_attr, NULL, NULL},
    {"_stopping", (getter)get_stopping_attr, (setter)set_stopping_attr, NULL,
     NULL},
    {"_thread_id", (getter)get_thread_id_attr, (setter)set_thread_id_attr,
     NULL, NULL},
    {"_current_handle", (getter)get_current_handle_attr,
     (setter)set_current_handle_attr, NULL, NULL},
    {"_ready_count", (getter)get_ready_count_attr, NULL,
     "Number of entries in the ready queue.", NULL},
    {"_timer_count", (getter)get_timer_count_attr, NULL,
     "Number of scheduled timers.", NULL},
    {"_io_backend", (getter)fl_io_backend_name, NULL,
     "What reports fd readiness: 'epoll' (fastloop's own epoll set) or "
     "'libev' (its ev_io watchers).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef loop_members[] = {
    {"_exception_handler", T_OBJECT, offsetof(FLLoop, exception_handler), 0,
     NULL},
    {"_task_factory", T_OBJECT, offsetof(FLLoop, task_factory), 0, NULL},
    {"slow_callback_duration", T_DOUBLE,
     offsetof(FLLoop, slow_callback_duration), 0, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(FLLoop, weakreflist), READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

#define FASTCALL_KW(fn) (PyCFunction)(void (*)(void))(fn)

PyMethodDef fl_loop_methods[] = {
    {"call_soon", FASTCALL_KW(loop_call_soon), METH_FASTCALL | METH_KEYWORDS,
     "call_soon(callback, *args, context=None): run callback soon."},
    {"call_soon_threadsafe", FASTCALL_KW(loop_call_soon_threadsafe),
     METH_FASTCALL | METH_KEYWORDS,
     "Like call_soon(), but safe from other threads; wakes the loop."},
    {"call_later", FASTCALL_KW(loop_call_later), METH_FASTCALL | METH_KEYWORDS,
     "call_later(delay, callback, *args, context=None) -> TimerHandle"},
    {"call_at", FASTCALL_KW(loop_call_at), METH_FASTCALL | METH_KEYWORDS,
     "call_at(when, callback, *args, context=None) -> TimerHandle"},
    {"_call_soon", FASTCALL_KW(loop_private_call_soon), METH_FASTCALL, NULL},
    {"_add_callback", (PyCFunction)loop_add_callback, METH_O, NULL},
    {"_add_callback_signalsafe", (PyCFunction)loop_add_callback_signalsafe,
     METH_O, NULL},
    {"_write_to_self", (PyCFunction)loop_write_to_self, METH_NOARGS, NULL},
    {"_run_once", (PyCFunction)loop_run_once, METH_NOARGS,
     "Run one iteration of the event loop."},
    {"_run_forever_core", (PyCFunction)loop_run_forever_core, METH_NOARGS,
     NULL},
    {"_close_core", (PyCFunction)loop_close_core, METH_NOARGS, NULL},
    {"_process_events", (PyCFunction)loop_process_events, METH_O, NULL},
    {"_check_thread", (PyCFunction)loop_check_thread_method, METH_NOARGS,
     NULL},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS,
     "Stop running the loop after the current iteration."},
    {"is_running", (PyCFunction)loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS, NULL},
    {"time", (PyCFunction)loop_time, METH_NOARGS,
     "The loop's clock: time.monotonic()."},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot loop_slots[] = {
    {Py_tp_doc, "The C core of fastloop's event loop (use fastloop.Loop)."},
    {Py_tp_new, loop_new},
    {Py_tp_init, loop_init},
    {Py_tp_dealloc, loop_dealloc},
    {Py_tp_traverse, loop_traverse},
    {Py_tp_clear, loop_clear},
    {Py_tp_methods, NULL}, /* fl_loop_init's `methods` */
    {Py_tp_members, loop_members},
    {Py_tp_getset, loop_getset},
    {0, NULL},
};

/* Immutable, as the static type it was. */
static PyType_Spec loop_spec = {
    .name = "fastloop._core.Loop",
    .basicsize = sizeof(FLLoop),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = loop_slots,
};

/* fl_handle_loop's functions (see handle.h). */
static int
handle_loop_debug(PyObject *loop)
{
    return FLLoop_Check(loop) ? ((FLLoop *)loop)->debug : -2;
}

/* A cancelled timer leaves the heap at once (fl_handle_loop.remove_timer). */
static int
handle_remove_timer(PyObject *loop, FLHandle *timer)
{
    FLLoop *self = (FLLoop *)loop;
    Py_ssize_t i = timer->heap_index;
    if (timer->scheduled && i >= 0 && i < self->ntimers &&
        self->timers[i] == timer) {
        /* Not its last reference: whoever cancels it holds one. */
        Py_DECREF(heap_remove_at(self, i));
    }
    return self->debug;
}

int
fl_loop_init(PyObject *module, PyMethodDef *methods)
{
    fl_set_slot(loop_slots, Py_tp_methods, methods);
    fl_handle_loop.loop_debug = handle_loop_debug;
    fl_handle_loop.remove_timer = handle_remove_timer;
    fl_handle_loop.report_error = fl_loop_report_handle_error;
    fl_state->loop_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &loop_spec, NULL);
    if (fl_state->loop_type == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "Loop",
                                 (PyObject *)fl_state->loop_type);
}
