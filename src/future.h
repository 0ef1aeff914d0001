/* future.h: fastloop.Future, asyncio's Future in C.
 *
 * future.c owns FLFuture, its await iterator and the asyncio objects both
 * future.c and task.c need (exception types, repr helpers, task registry).
 * task.c builds Task on top of FLFuture and reuses the internal operations
 * declared here, which bypass method lookup (and therefore overrides), as
 * asyncio's own Task calls `super().set_result()` and friends.
 */
#ifndef FL_FUTURE_H
#define FL_FUTURE_H

#include "loop.h"

#include <structmember.h> /* PyMemberDef on 3.11 */

/* getattr(obj, name) that returns 0 with *result NULL when missing. */
static inline int
fl_get_optional_attr(PyObject *obj, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, result);
#else
    return _PyObject_LookupAttr(obj, name, result);
#endif
}

static inline int
fl_is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

enum { FL_PENDING = 0, FL_CANCELLED = 1, FL_FINISHED = 2 };

/* 3.14 moved the current task from asyncio.tasks._current_tasks to the
 * thread state, reached through asyncio's _enter_task/_leave_task/
 * _swap_current_task. */
#if PY_VERSION_HEX >= 0x030E0000
#define FL_CURRENT_TASK_ON_TSTATE 1
#else
#define FL_CURRENT_TASK_ON_TSTATE 0
#endif

/* One done-callback.  `ctx` is the contextvars.Context to run it in; when
 * it is NULL, `fn` is an FLTask waiting on this future and the entry means
 * "wake that task up" (scheduled in C, see fl_future_waiter). */
typedef struct {
    PyObject *fn;
    PyObject *ctx;
} fl_callback;

/* fastloop.Future subclasses asyncio's C Future (_asyncio.Future) and
 * fastloop.Task asyncio's C Task, so that isinstance() checks hold.  The
 * base types' storage comes first in both; fastloop keeps its own state
 * after it and never reads the base's.  The reserved room is the size of
 * _asyncio.Task (setup.py measures it on the interpreter it builds for, and
 * module init checks it), so that a Future and a Task keep fastloop's
 * fields at the same offset and share this struct.  See docs/ARCHITECTURE.md
 * for the base fields CPython itself may write (dict, weak references,
 * 3.14's awaited-by links and task list node). */
#ifndef FL_ASYNCIO_TASK_BASICSIZE
#error "FL_ASYNCIO_TASK_BASICSIZE (sizeof(_asyncio.Task)) comes from setup.py"
#endif

typedef struct {
    union {
        PyObject ob_base;
        char asyncio_base[FL_ASYNCIO_TASK_BASICSIZE];
    } head;
    PyObject *loop; /* NULL only when __init__ was skipped */
    PyObject *result;
    PyObject *exception;
    PyObject *exception_tb;
    PyObject *source_tb; /* debug mode: where the future was created */
    PyObject *cancel_msg;
    PyObject *cancelled_exc; /* CancelledError to re-raise (tasks) */
    fl_callback cb0;         /* first callback, inline: the common case */
    fl_callback *cbs;        /* the others, in order */
    Py_ssize_t ncbs;
    Py_ssize_t cbs_cap;
    unsigned char state;
    unsigned char log_tb;
    unsigned char blocking;  /* _asyncio_future_blocking */
    unsigned char fast_loop; /* loop is a fastloop Loop: use its C queue */
} FLFuture;

/* The types: heap types made at module init. */
/* asyncio's C Future and Task, their bases. */

#define FLFuture_CheckExact(op) Py_IS_TYPE((op), fl_state->future_type)
#define FLTask_CheckExact(op) Py_IS_TYPE((op), fl_state->task_type)
#define FLTask_Check(op) PyObject_TypeCheck((op), fl_state->task_type)

/* A fastloop Future or Task (or a subclass of either): an FLFuture. */
static inline int
FLFuture_Check(PyObject *op)
{
    return FLFuture_CheckExact(op) || FLTask_CheckExact(op) ||
           PyObject_TypeCheck(op, fl_state->future_type) ||
           PyObject_TypeCheck(op, fl_state->task_type);
}

/* True when `loop` is a fastloop Loop whose call_soon, get_debug and
 * is_running are the C Loop's own: then futures and tasks schedule straight
 * into its ready queue. */
int fl_loop_is_fast_slow(PyObject *loop);

/* The type's version tag is valid: it changes (or goes) when the type or
 * a base is modified.  3.13 stopped setting Py_TPFLAGS_VALID_VERSION_TAG
 * (0 is the invalid tag there, as it is on 3.12, which still sets the
 * flag); without this the cache below never hit on 3.13+. */
static inline int
fl_type_version_valid(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030C0000
    return type->tp_version_tag != 0;
#else
    return (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) != 0;
#endif
}

static inline int
fl_loop_is_fast(PyObject *loop)
{
    PyTypeObject *type = Py_TYPE(loop);
    if (type == fl_state->fast_cache_type && fl_type_version_valid(type) &&
        type->tp_version_tag == fl_state->fast_cache_tag) {
        return fl_state->fast_cache_answer;
    }
    return type == fl_state->loop_type || fl_loop_is_fast_slow(loop);
}

/* Future.__init__ body: bind to `loop` (None: the current event loop). */
int fl_future_init_fields(FLFuture *fut, PyObject *loop);

/* Internal Future operations (no method lookup).  set_result/set_exception
 * raise InvalidStateError when done; cancel returns 1 when it cancelled. */
int fl_future_set_result(FLFuture *fut, PyObject *result);
int fl_future_set_exception(FLFuture *fut, PyObject *exc);
int fl_future_cancel(FLFuture *fut, PyObject *msg);

/* CancelledError to raise for a cancelled future (new reference). */
PyObject *fl_future_make_cancelled_error(FLFuture *fut);

/* Register `task` to be woken up when `fut` is done (the Task fast path:
 * no bound method, no context copy).  Scheduled at once when `fut` is
 * already done.  0 or -1. */
int fl_future_add_task_waiter(FLFuture *fut, PyObject *task);

/* loop.call_soon(fn, arg, context=ctx) for any loop; arg may be NULL. */
int fl_call_soon_generic(PyObject *loop, PyObject *fn, PyObject *arg,
                         PyObject *ctx);

/* Shared with task.c: the type slots' Future part.  `base` is the asyncio
 * type below the object's fastloop type, whose own slots handle whatever
 * CPython stored in the base's storage. */
int fl_future_traverse(FLFuture *fut, visitproc visit, void *arg,
                       PyTypeObject *base);
int fl_future_clear(FLFuture *fut, PyTypeObject *base);
int fl_future_dealloc_begin(FLFuture *fut, inquiry clear, int finalize);
extern PyMemberDef fl_future_members[];
void fl_future_finalize(FLFuture *fut);
int fl_parse_msg(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames, PyObject **msg);
PyObject *fl_future_get_result(FLFuture *fut);

/* How a future wakes a fastloop Task waiting on it (a callback entry
 * whose ctx is NULL, see fl_callback).  The task layer (task.c, above this
 * file: future.c never names it) fills this in when the module is made,
 * once per process (the module refuses a second exec). */
typedef struct {
    /* Schedule the task's wakeup for the done future `fut`.  0 or -1. */
    int (*schedule_wakeup)(PyObject *task, FLFuture *fut);
    /* (wakeup callable, context) for the entry, as Future._callbacks shows
     * it.  New reference. */
    PyObject *(*waiter_entry)(PyObject *task);
} fl_future_waiter_ops;

extern fl_future_waiter_ops fl_future_waiter;

/* The Loop's methods this file implements: create_future (module.c lists
 * them with the Loop's others). */
extern PyMethodDef fl_future_loop_methods[];

/* New fastloop Future bound to `loop` (for Loop.create_future in C). */
PyObject *fl_future_new(PyObject *loop);

#endif /* FL_FUTURE_H */
