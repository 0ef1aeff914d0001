/* loop.h: the event loop object and its C-level scheduling API.
 *
 * loop.c owns FLLoop: the libev loop, the ready queue, the timer heap, the
 * run loop, time, stop/close and the exception-handler plumbing.  Other C
 * files (handles, futures, tasks, transports) schedule work through the
 * functions declared here instead of through Python method calls.
 */
#ifndef FL_LOOP_H
#define FL_LOOP_H

#include "module.h"
#include <ev.h>

struct epoll_event;

struct fl_handle;
struct fl_io_watch;
struct fl_io_backend;

/* A C callback run from the ready queue.  `a` and `b` are borrowed for the
 * duration of the call (the queue owns one reference to each non-NULL one).
 * Returns 0 on success, or -1 with an exception set: the loop then reports
 * the exception through call_exception_handler (or propagates it out of
 * run_forever when it is SystemExit or KeyboardInterrupt). */
typedef int (*fl_ready_fn)(PyObject *a, PyObject *b);

typedef struct {
    fl_ready_fn fn; /* NULL: `a` is a Handle to run */
    PyObject *a;
    PyObject *b;
} fl_ready_entry;

typedef struct {
    PyObject_HEAD struct ev_loop *evloop;
    PyThreadState *released_tstate; /* set while the GIL is released in poll */
    int poll_may_block;             /* GIL released around this poll only */
    int last_poll_found_events;     /* busy: poll without blocking first */
    int nowait_misses; /* first tries in a row that found nothing */
    unsigned int polls_skipping_nowait; /* (both: see poll_backend) */
    int polls_since_signal_check;       /* see check_signals() in loop.c */

    /* Ready queue: a ring buffer; capacity is a power of two. */
    fl_ready_entry *ready;
    Py_ssize_t ready_head;
    Py_ssize_t ready_len;
    Py_ssize_t ready_cap;

    /* Timer heap: binary min-heap ordered by (when, sequence). */
    struct fl_handle **timers;
    Py_ssize_t ntimers;
    Py_ssize_t timers_cap;
    unsigned long long timer_seq;

    ev_timer poll_timer; /* bounds the poll to the earliest timer */
    ev_async wakeup;     /* libev backend: call_soon_threadsafe's wake-up */

    /* Watched fds: one slot per fd, indexed by fd (io.c). */
    struct fl_io_watch **io;
    Py_ssize_t io_cap;
    const struct fl_io_backend *iob; /* io_epoll.c or io_libev.c */
    /* The epoll backend (io_epoll.c): fastloop's epoll set, -1 with
     * libev's. */
    int epfd;
    int wakeup_fd;      /* eventfd in the set, for cross-thread wake-ups */
    int wakeup_pending; /* written to and not yet read */
    int epoll_nregistered;
    uint32_t epoll_last_tag;
    struct epoll_event *epoll_events; /* epoll_wait's buffer */
    int epoll_events_cap;
    /* The libev backend (io_libev.c): fds whose ev_io were started since
     * the last poll (libev hands them to the kernel only then). */
    int *libev_fresh;
    int libev_nfresh;
    int libev_fresh_cap;
    /* Cancelled handles a poll found ready and unregistered, released
     * when the poll is over (fl_io_release_dropped): their last reference
     * may run any Python code, which must not find a watch half-updated or
     * freed under the dispatch that is reading it. */
    PyObject **io_dropped;
    Py_ssize_t io_ndropped;
    Py_ssize_t io_dropped_cap;

    int initialized; /* loop_init succeeded (Loop.__new__ alone: 0) */
    int running;
    int in_run_batch;      /* running the entries of one iteration */
    int task_left_in_dict; /* FL_LEFT_*: see fl_loop_flush_current_task() */
    Py_hash_t hash;        /* hash(loop) once computed, else 0 */
    /* 3.11: _current_tasks' PEP 509 version right after a task step of this
     * loop stored its task there (see task.c, leave_task). */
    uint64_t current_tasks_version;
    int stopping;
    int closed;
    int debug;
    /* 1 while loop.call_soon() and the like have nothing to check: the
     * loop is initialised, not closed and not in debug mode.  Kept by
     * fl_loop_update_checks() wherever one of those changes; 0 (the
     * zeroed state of Loop.__new__) sends the caller to the full checks. */
    int schedule_unchecked;
    unsigned long thread_id; /* 0 when not running */
    double slow_callback_duration;
    struct fl_handle *current_handle; /* debug mode only; borrowed */

    PyObject *exception_handler; /* None or a callable */
    PyObject *task_factory;      /* None or a callable */
    PyObject *weakreflist;
} FLLoop;

/* The last subclass of the Loop type that FLLoop_Check met (a strong
 * reference): in practice fastloop.Loop, whose MRO is long enough that
 * walking it on every task step shows in the benchmarks. */
int fl_loop_check_subtype(PyObject *op);

static inline int
FLLoop_Check(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    return type == fl_state->loop_last_subtype ||
           type == fl_state->loop_type || fl_loop_check_subtype(op);
}

/* Between two task steps that run back to back, a fastloop Task leaves
 * itself in asyncio's current-tasks dict and the next step replaces it:
 * deleting and re-adding the key on every step churns the dict into a
 * resize every few steps.  Before any other code runs on the loop (another
 * kind of entry, the end of the batch, an error report) this removes the
 * entry, so asyncio.current_task() is None there as usual.  0 or -1. */
int fl_loop_flush_current_task(FLLoop *loop);

/* What a step left in asyncio's current-tasks dict for the next step to
 * replace (FLLoop.task_left_in_dict). */
enum {
    FL_LEFT_NOTHING = 0,
    FL_LEFT_TASK = 1, /* the step's task: current_task() would see it */
    FL_LEFT_NONE = 2, /* None: current_task() is None, the key stays */
};

/* What the task layer (task.c, above this file: loop.c never names it)
 * gives the loop.  fl_task_init fills it in when the module is made, once
 * per process (the module refuses a second exec), so hot paths read plain
 * process-wide pointers. */
typedef struct {
    /* The ready-queue functions that run a fastloop Task step. */
    fl_ready_fn step;
    fl_ready_fn wakeup;
    /* Between two steps, before Python code may run (a __del__, a foreign
     * future's result()): store None over the left task, so that the code
     * sees no current task, as in asyncio, while the next step still only
     * replaces the value (no key deleted and added again).  A task step
     * running meanwhile replaces None like a task, and asyncio's own eager
     * tasks read None as no task.  0, or -1 with an exception set. */
    int (*hide_left_task)(FLLoop *loop);
} fl_loop_task_ops;

extern fl_loop_task_ops fl_loop_task;

/* The Loop's methods this file implements: scheduling, running, time,
 * stop/close (module.c lists them with the others). */
extern PyMethodDef fl_loop_methods[];

static inline int
fl_loop_hide_left_task(FLLoop *loop)
{
    return loop->task_left_in_dict == FL_LEFT_TASK
               ? fl_loop_task.hide_left_task(loop)
               : 0;
}

/* fl_loop_hide_left_task() that may run with an exception pending (kept;
 * a failure of its own is then written as unraisable). */
int fl_loop_hide_keeping_error(FLLoop *loop);

/* Py_XDECREF(obj) for what a task step leaves behind (its ready entry's
 * references, the future it waited on, an exception): the last reference
 * may run Python code (a __del__), which must see no current task, as in
 * asyncio -- so the left task is hidden first.  An object that survives costs
 * one test.  0, or -1 with an exception set (obj is released anyway). */
static inline int
fl_loop_release_after_step(FLLoop *loop, PyObject *obj)
{
    int rc = 0;
    if (obj != NULL) {
        /* Most objects survive: their test comes first. */
        if (Py_REFCNT(obj) == 1 && loop != NULL &&
            loop->task_left_in_dict == FL_LEFT_TASK) {
            rc = fl_loop_hide_keeping_error(loop);
        }
        Py_DECREF(obj);
    }
    return rc;
}

/* `fn` runs a fastloop Task step. */
static inline int
fl_loop_is_task_step(fl_ready_fn fn)
{
    return fn == fl_loop_task.step || fn == fl_loop_task.wakeup;
}

/* Monotonic time in seconds, the clock of time.monotonic(). */
double fl_monotonic(void);

/* Doubles the ready queue's capacity.  0, or -1 with MemoryError set. */
int fl_loop_ready_grow(FLLoop *loop);

/* Append a C callback to the ready queue; it runs in a later iteration, in
 * FIFO order with call_soon handles.  Takes new references to `a` and `b`
 * (either may be NULL).  Returns 0, or -1 with MemoryError set.  Needs the
 * GIL; it does not wake a loop blocked in another thread (callers that may
 * run there do that themselves).  Inline: every task step goes through it. */
static inline int
fl_loop_enqueue(FLLoop *self, fl_ready_fn fn, PyObject *a, PyObject *b)
{
    if (self->ready_len == self->ready_cap && fl_loop_ready_grow(self) < 0) {
        return -1;
    }
    assert(self->ready_len < self->ready_cap);
    assert((self->ready_cap & (self->ready_cap - 1)) == 0);
    fl_ready_entry *e = &self->ready[(self->ready_head + self->ready_len) &
                                     (self->ready_cap - 1)];
    e->fn = fn;
    e->a = Py_XNewRef(a);
    e->b = Py_XNewRef(b);
    self->ready_len++;
    return 0;
}

/* Append a Handle to the ready queue (new reference taken). */
static inline int
fl_loop_enqueue_handle(FLLoop *loop, struct fl_handle *handle)
{
    return fl_loop_enqueue(loop, NULL, (PyObject *)handle, NULL);
}

/* Timer heap, used by TimerHandle (which leaves it through
 * fl_handle_loop.remove_timer). */
int fl_loop_add_timer(FLLoop *loop, struct fl_handle *timer);

/* ---- the exception handler: the one reporting path ------------------
 *
 * Handles, callbacks run without a Handle, futures, tasks and transports
 * all report to a loop's exception handler through these (loop.c). */

/* SystemExit or KeyboardInterrupt is set: what leaves the loop. */
int fl_is_fatal_error(void);

/* loop.call_exception_handler(context).  Returns -1 with SystemExit or
 * KeyboardInterrupt set when the handler raised one (they leave the loop,
 * as in asyncio); other errors are written as unraisable and 0 returned. */
int fl_loop_call_exception_handler(PyObject *loop, PyObject *context);

/* fl_loop_call_exception_handler(loop, {'message': message, 'exception':
 * exc, key: value, ...}): `exc` NULL leaves 'exception' out; the (key,
 * value) pairs end with a NULL key, and a NULL value leaves its key out.
 * A context that cannot be made, or a NULL loop (cleared by the garbage
 * collector: `exc` is written), goes to PyErr_WriteUnraisable.  Returns as
 * fl_loop_call_exception_handler. */
int fl_loop_report(PyObject *loop, PyObject *message, PyObject *exc, ...);

/* fl_loop_report() that never fails and leaves a pending exception alone
 * (the transports' fatal errors): a SystemExit or KeyboardInterrupt from the
 * handler is written as unraisable too. */
void fl_loop_report_quietly(PyObject *loop, const char *message, PyObject *exc,
                            ...);

/* Report the current exception as asyncio's Handle._run does: "Exception
 * in callback <the handle's callback>", the handle and its source traceback
 * in the context.  SystemExit and KeyboardInterrupt are left set (-1);
 * otherwise the exception is consumed and 0 returned. */
int fl_loop_report_handle_error(struct fl_handle *handle);

/* The same for a callback the loop ran without a Handle: `source` NULL
 * formats fn(arg) and names, as the context's "handle", a Handle for
 * fn(arg) in context `ctx` (what asyncio would have run); otherwise
 * `source` is the text and no handle is named. */
int fl_loop_report_callback_error(PyObject *loop, PyObject *fn, PyObject *arg,
                                  PyObject *ctx, const char *source);

/* RuntimeError('Event loop is closed') when closed, or when it cannot be
 * used at all (its __init__ never ran: Loop.__new__(Loop)); 0 otherwise.
 * For the methods asyncio refuses on a closed loop. */
int fl_loop_check_closed_slow(FLLoop *loop);

/* RuntimeError when the loop's __init__ never ran; 0 otherwise (a closed
 * loop passes).  For the methods asyncio still answers on a closed loop. */
int fl_loop_check_init_slow(FLLoop *loop);

static inline int
fl_loop_check_init(FLLoop *loop)
{
    return loop->initialized ? 0 : fl_loop_check_init_slow(loop);
}

/* The loop has its libev loop and is not closed: it can poll, watch fds
 * and wake up. */
static inline int
fl_loop_usable(FLLoop *loop)
{
    return !loop->closed && loop->evloop != NULL;
}

static inline int
fl_loop_check_closed(FLLoop *loop)
{
    return fl_loop_usable(loop) ? 0 : fl_loop_check_closed_slow(loop);
}

/* Debug-mode check that the caller runs in the loop's thread. */
int fl_loop_check_thread(FLLoop *loop);

/* What loop.call_soon() checks before scheduling: a closed loop, and the
 * calling thread in debug mode.  0 or -1. */
int fl_loop_check_schedulable_slow(FLLoop *loop);

static inline int
fl_loop_check_schedulable(FLLoop *loop)
{
    return loop->schedule_unchecked ? 0 : fl_loop_check_schedulable_slow(loop);
}

/* Recomputes FLLoop.schedule_unchecked after `closed`, `debug`, `evloop` or
 * `initialized` changed. */
static inline void
fl_loop_update_checks(FLLoop *loop)
{
    loop->schedule_unchecked =
        loop->initialized && fl_loop_usable(loop) && !loop->debug;
}

#endif /* FL_LOOP_H */
