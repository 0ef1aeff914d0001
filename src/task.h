/* task.h: fastloop.Task, asyncio's Task in C, a subclass of fastloop.Future.
 *
 * task.c owns FLTask: stepping the coroutine, waking up on futures (through
 * the fastloop ready queue when it can, loop.call_soon otherwise),
 * cancellation, names, and registration with asyncio so current_task() and
 * all_tasks() see fastloop tasks.
 */
#ifndef FL_TASK_H
#define FL_TASK_H

#include "future.h"

typedef struct {
    FLFuture fut;
    PyObject *coro;
    PyObject *context;
    PyObject *fut_waiter;
    PyObject *name; /* NULL: "Task-<name_id>", made lazily */
    unsigned long long name_id;
    Py_ssize_t num_cancels_requested;
    unsigned char must_cancel;
    unsigned char log_destroy_pending;
} FLTask;

/* New fastloop Task running `coro` on `loop` (for Loop.create_task in C).
 * `name` and `context` may be NULL or None; `eager_start` (3.12+) runs the
 * first step at once when the loop is running. */
PyObject *fl_task_new(PyObject *loop, PyObject *coro, PyObject *name,
                      PyObject *context, int eager_start);

int fl_task_init(PyObject *module);

/* The Loop's methods this file implements: create_task (module.c lists
 * them with the Loop's others). */
extern PyMethodDef fl_task_loop_methods[];

#endif /* FL_TASK_H */
