/* handle.h: Handle and TimerHandle, asyncio's public callback handles.
 *
 * handle.c owns both types.  A Handle is what call_soon, add_reader and
 * add_signal_handler return; a TimerHandle is what call_later/call_at
 * return, and sits in its loop's timer heap until it runs or is cancelled.
 */
#ifndef FL_HANDLE_H
#define FL_HANDLE_H

#include "module.h"

typedef struct fl_handle {
    PyObject_HEAD PyObject *callback; /* NULL once cancelled */
    PyObject *args;                   /* tuple; NULL once cancelled */
    PyObject *context;                /* contextvars.Context */
    PyObject *loop;                   /* the loop it was created for */
    PyObject *source_traceback;       /* debug mode only, else NULL */
    PyObject *repr; /* repr saved at cancel() in debug mode */
    PyObject *weakreflist;
    char cancelled;
    char scheduled;         /* TimerHandle: in the loop's heap */
    char when_nan;          /* TimerHandle: scheduled for NaN (see below) */
    double when;            /* TimerHandle only; see fl_timer_when() */
    unsigned long long seq; /* TimerHandle: FIFO order among equal `when` */
    Py_ssize_t heap_index;  /* TimerHandle: position in the heap */
    /* call_soon_threadsafe's handles only (else NULL): held across the
     * callback and by cancel()/cancelled(), re-entrant for its owner. */
    PyThread_type_lock lock;
    unsigned long lock_owner; /* thread holding `lock`, when lock_depth */
    int lock_depth;
} FLHandle;

/* The deadline a TimerHandle reports (when(), repr, comparisons).  A
 * timer scheduled for NaN (call_later(nan)) reports NaN, as asyncio's
 * does, but a NaN must reach neither the heap's ordering nor the poll
 * timeout.  asyncio's heap leaves a NaN (which compares false with
 * everything) where it lands: at the top when the heap was empty, where
 * it runs at once (3.13+: an idle loop's poll timeout computed from it
 * raises ValueError), else behind the timer at the top then, running when
 * that one does.  So its `when` is -inf, or the earliest deadline when it
 * was scheduled. */
static inline double
fl_timer_when(FLHandle *timer)
{
    return timer->when_nan ? Py_NAN : timer->when;
}

/* New Handle for `callback(*args)`.  `args` is a tuple (new reference
 * taken); `context` may be NULL or None for a copy of the current one. */
FLHandle *fl_handle_new(PyTypeObject *type, PyObject *loop, PyObject *callback,
                        PyObject *args, PyObject *context);

/* Run the handle's callback in its context.  0 on success or when it was
 * cancelled; -1 with the callback's exception set. */
int fl_handle_run(FLHandle *handle);

/* asyncio's text for the callback and its arguments, e.g. "f(1, 2) at
 * file.py:10".  The handle must not be cancelled.  New reference. */
PyObject *fl_format_callback(FLHandle *handle);

/* Make `handle` thread-safe as asyncio's (3.14+, 3.13.1+, 3.12.8+)
 * events._ThreadSafeHandle is: cancel() and cancelled() called while its
 * callback runs wait for the callback to return, and a handle cancelled just
 * before the loop runs it does not run.  0, or -1 with MemoryError set. */
int fl_handle_make_threadsafe(FLHandle *handle);

/* What a handle needs from its loop.  loop.c, the layer above (handle.c
 * never names it), fills this in when the module is made: once per
 * process, as the module refuses a second exec. */
typedef struct {
    /* The debug flag (0 or 1) of a fastloop Loop; -2 for any other loop. */
    int (*loop_debug)(PyObject *loop);
    /* Takes a cancelled TimerHandle out of its loop's timer heap; the loop
     * is a fastloop Loop (only its heap schedules a timer).  Returns the
     * loop's debug flag, which cancel() asks next. */
    int (*remove_timer)(PyObject *loop, FLHandle *timer);
    /* Reports the current exception of the handle's callback
     * (fl_loop_report_handle_error, see loop.h). */
    int (*report_error)(FLHandle *handle);
} fl_handle_loop_ops;

extern fl_handle_loop_ops fl_handle_loop;

/* Mark cancelled and drop the callback and arguments. */
void fl_handle_cancel(FLHandle *handle);

#endif /* FL_HANDLE_H */
