/* task.c: fastloop.Task, asyncio.Task's API and semantics in C.
 *
 * A step runs the coroutine once (send or throw) between _enter_task and
 * _leave_task, done as asyncio's C accelerator does them: directly on
 * asyncio.tasks._current_tasks, so asyncio.current_task() sees the task.
 *
 * Fast path: when the task's loop is a fastloop Loop, steps and wakeups go
 * into the loop's C ready queue as (fn, task, arg) entries, and waiting on
 * an exact fastloop Future/Task registers a bare task-waiter entry with it.
 * No Handle, no bound method, no Python-level call.  Everything else (other
 * loops, foreign futures, subclasses that may override add_done_callback)
 * goes through the public methods exactly as asyncio's Task does.
 */
#include "task.h"

static unsigned long long task_name_counter;

static int task_step(FLTask *task, PyObject *exc);
static int task_wakeup(FLTask *task, PyObject *fut);
static int task_cancel(FLTask *task, PyObject *msg);

/* ------------------------------------------------------------------ */
/* Registration with asyncio                                           */

/* The task's loop as a fastloop Loop, or NULL for a foreign loop. */
static inline FLLoop *
task_fast_loop(FLTask *task)
{
    return task->fut.fast_loop ? (FLLoop *)task->fut.loop : NULL;
}

/* Fields of asyncio's C Task that fastloop mirrors into the base's storage,
 * at offsets known for each version and checked at init (0: not mirrored).
 * 3.11-3.13: asyncio's methods read the coroutine (get_coro) and context
 * (get_context) without checking them, so asyncio.Task.get_coro(t) crashes
 * on any Task its own __init__ did not initialise (stock asyncio's too).
 * 3.14+: `python -m asyncio ps/pstree` reads a task's name, coroutine and
 * "is a task" flag straight from the struct, in another process. */
static Py_ssize_t base_coro_offset, base_context_offset, base_name_offset,
    base_is_task_offset, base_node_offset;

/* What the base's coroutine field holds once the task is done: asyncio's
 * own Task clears it from 3.14 on; before, its get_coro reads it blindly. */
#if PY_VERSION_HEX >= 0x030E0000
#define BASE_DONE_CORO NULL
#else
#define BASE_DONE_CORO Py_None
#endif

/* `value` may be NULL. */
static inline void
mirror_in_base(FLTask *task, Py_ssize_t offset, PyObject *value)
{
    if (offset != 0) {
        PyObject **slot = (PyObject **)((char *)task + offset);
        Py_XSETREF(*slot, Py_XNewRef(value));
    }
}

static int
init_base_mirror(void)
{
#if PY_VERSION_HEX < 0x030D0000
    const Py_ssize_t size = 176, coro = 136, context = 152, name = 0,
                     is_task = 0, node = 0, future_size = 0;
#elif PY_VERSION_HEX < 0x030E0000
    const Py_ssize_t size = 144, coro = 120, context = 136, name = 0,
                     is_task = 0, node = 0, future_size = 0;
#elif !defined(Py_GIL_DISABLED)
    /* FutureObj_HEAD ends with its state, two flag bytes (is_task at 108)
     * and bit fields; TaskObj then has its counters, fut_waiter, coro,
     * name, context and the task-list node. */
    const Py_ssize_t size = 168, coro = 128, name = 136, context = 144,
                     is_task = 108, node = 152, future_size = 112;
#else
    const Py_ssize_t size = -1, coro = 0, context = 0, name = 0, is_task = 0,
                     node = 0, future_size = 0;
#endif
    if (fl_state->asyncio_task_type->tp_basicsize == size &&
        (future_size == 0 ||
         fl_state->asyncio_future_type->tp_basicsize == future_size)) {
        base_coro_offset = coro;
        base_context_offset = context;
        base_name_offset = name;
        base_is_task_offset = is_task;
        base_node_offset = node;
    }
    return 0;
}

/* 3.14+: whether asyncio's task list links the task (the node's first
 * pointer is NULL until it is linked and again once it is unlinked). */
static inline int
task_linked_in_base(FLTask *task)
{
    return *(void **)((char *)task + base_node_offset) != NULL;
}

/* The name the base holds: the given one, or (3.14+, as asyncio's own Task
 * does) the number of a default Task-N name. */
static int
mirror_name_in_base(FLTask *task)
{
    if (base_name_offset == 0) {
        return 0;
    }
    if (task->name != NULL) {
        mirror_in_base(task, base_name_offset, task->name);
        return 0;
    }
    PyObject *number = PyLong_FromUnsignedLongLong(task->name_id);
    if (number == NULL) {
        return -1;
    }
    mirror_in_base(task, base_name_offset, number);
    Py_DECREF(number);
    return 0;
}

#if FL_CURRENT_TASK_ON_TSTATE
/* fn(a, b) for asyncio's task-registry functions; 0 or -1. */
static int
call_registry(PyObject *fn, PyObject *a, PyObject *b)
{
    PyObject *args[2] = {a, b};
    PyObject *res = PyObject_Vectorcall(fn, args, b ? 2 : 1, NULL);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* 3.14+: asyncio keeps the current task on the thread state, where no
 * dict churns: enter and leave on every step, through asyncio's own
 * functions (they check the running loop and the task as asyncio's Task
 * steps do). */
static int
enter_task(FLTask *task, PyObject *loop, FLLoop *fl)
{
    (void)fl;
    return call_registry(fl_state->enter_task, loop, (PyObject *)task);
}

static int
leave_task(FLTask *task, PyObject *loop, FLLoop *fl, int may_defer)
{
    (void)fl;
    (void)may_defer;
    return call_registry(fl_state->leave_task, loop, (PyObject *)task);
}

static int
task_hide_left_task(FLLoop *fl)
{
    /* Steps never leave their task behind on 3.14+. */
    assert(fl->task_left_in_dict == FL_LEFT_NOTHING);
    return 0;
}

/* asyncio links a registered Task (a subclass of its C Task, as fastloop's
 * is) into a per-thread list through the base's storage, and unlinks it
 * when the task finishes: fastloop's tasks finish in their own code, so
 * they unlink themselves.  Idempotent.  Never fails: an error is written
 * as unraisable (it can only be a broken asyncio). */
static void
unregister_task(FLTask *task)
{
    if (call_registry(fl_state->unregister_task, (PyObject *)task, NULL) < 0) {
        PyErr_WriteUnraisable((PyObject *)task);
    }
}

/* Call-graph links: `fut` is (no longer) awaited by `task`.  asyncio's
 * functions ignore objects that are not asyncio futures. */
static inline int
awaited_by_add(PyObject *fut, FLTask *task)
{
    return call_registry(fl_state->add_to_awaited_by, fut, (PyObject *)task);
}

static inline int
awaited_by_discard(PyObject *fut, FLTask *task)
{
    return call_registry(fl_state->discard_from_awaited_by, fut,
                         (PyObject *)task);
}
#else /* 3.11-3.13: asyncio.tasks._current_tasks, a dict */

/* hash(loop), the key of every _current_tasks operation: cached on a
 * fastloop loop (`fl` non-NULL), whose hash cannot change.  -1 with an
 * exception set on failure. */
static inline Py_hash_t
loop_key_hash(PyObject *loop, FLLoop *fl)
{
    if (fl == NULL) {
        return PyObject_Hash(loop);
    }
    if (fl->hash == 0) {
        Py_hash_t hash = PyObject_Hash(loop);
        if (hash == -1) {
            return -1;
        }
        fl->hash = hash;
    }
    return fl->hash;
}

/* _current_tasks[loop] (borrowed; NULL with or without an exception) and
 * _current_tasks[loop] = task, with the key's hash known.  asyncio's C Task
 * uses the same calls; where a Python version no longer exports them the
 * public ones do the same. */
static PyObject *
current_tasks_get(PyObject *loop, Py_hash_t hash)
{
#if PY_VERSION_HEX < 0x030E0000
    return _PyDict_GetItem_KnownHash(fl_state->current_tasks, loop, hash);
#else
    (void)hash;
    return PyDict_GetItemWithError(fl_state->current_tasks, loop);
#endif
}

static int
current_tasks_set(PyObject *loop, Py_hash_t hash, PyObject *task)
{
#if PY_VERSION_HEX < 0x030D0000
    return _PyDict_SetItem_KnownHash(fl_state->current_tasks, loop, task,
                                     hash);
#else
    (void)hash;
    return PyDict_SetItem(fl_state->current_tasks, loop, task);
#endif
}

/* Has _current_tasks changed since this loop's last enter_task()?  On 3.11
 * the dict's PEP 509 version answers for free, so leaving a task skips the
 * lookup that checks the entry is still ours; later versions deprecate the
 * version tag (PEP 699) and always look. */
static inline void
remember_current_tasks_version(FLLoop *fl)
{
#if PY_VERSION_HEX < 0x030C0000
    if (fl != NULL) {
        fl->current_tasks_version =
            ((PyDictObject *)fl_state->current_tasks)->ma_version_tag;
    }
#else
    (void)fl;
#endif
}

static inline int
current_tasks_unchanged(FLLoop *fl)
{
#if PY_VERSION_HEX < 0x030C0000
    return fl != NULL &&
           fl->current_tasks_version ==
               ((PyDictObject *)fl_state->current_tasks)->ma_version_tag;
#else
    (void)fl;
    return 0;
#endif
}

/* `fl` is `loop` when it is a fastloop Loop, else NULL. */
static int
enter_task(FLTask *task, PyObject *loop, FLLoop *fl)
{
    Py_hash_t hash;
    if (fl != NULL && fl->task_left_in_dict != FL_LEFT_NOTHING) {
        /* The previous step's task (or None over it) is still there:
         * replace it (see fl_loop_flush_current_task); its hash is known. */
        assert(fl->hash != 0);
        hash = fl->hash;
        fl->task_left_in_dict = FL_LEFT_NOTHING;
    } else {
        hash = loop_key_hash(loop, fl);
        if (hash == -1) {
            return -1;
        }
        PyObject *cur = current_tasks_get(loop, hash);
        if (cur != NULL) {
            /* Held: the reprs run Python code, which may change the
             * dict. */
            Py_INCREF(cur);
            PyErr_Format(PyExc_RuntimeError,
                         "Cannot enter into task %R while another task %R "
                         "is being executed.",
                         task, cur);
            Py_DECREF(cur);
            return -1;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    if (current_tasks_set(loop, hash, (PyObject *)task) < 0) {
        return -1;
    }
    remember_current_tasks_version(fl);
    return 0;
}

/* Leaving the step of a fastloop loop's batch (may_defer): the task stays
 * in _current_tasks for the next step to replace (fl_loop_flush_current_task
 * takes it out before anything else runs). */
static inline int
defer_leaving(FLLoop *fl, int may_defer)
{
    if (may_defer && fl->in_run_batch) {
        assert(fl->task_left_in_dict == FL_LEFT_NOTHING && fl->hash != 0);
        fl->task_left_in_dict = FL_LEFT_TASK;
        return 1;
    }
    return 0;
}

static int
leave_task(FLTask *task, PyObject *loop, FLLoop *fl, int may_defer)
{
    if (current_tasks_unchanged(fl)) {
        /* Still ours (3.11's version tag says so without a lookup). */
        return defer_leaving(fl, may_defer)
                   ? 0
                   : PyDict_DelItem(fl_state->current_tasks, loop);
    }
    Py_hash_t hash = loop_key_hash(loop, fl);
    if (hash == -1) {
        return -1;
    }
    PyObject *cur = current_tasks_get(loop, hash);
    if (cur != (PyObject *)task) {
        if (cur == NULL && PyErr_Occurred()) {
            return -1;
        }
        cur = Py_NewRef(cur ? cur : Py_None); /* the reprs run code */
        PyErr_Format(PyExc_RuntimeError,
                     "Leaving task %R does not match the current task %R.",
                     task, cur);
        Py_DECREF(cur);
        return -1;
    }
    if (fl != NULL && defer_leaving(fl, may_defer)) {
        return 0;
    }
    return PyDict_DelItem(fl_state->current_tasks, loop);
}

static int
task_hide_left_task(FLLoop *fl)
{
    assert(fl->task_left_in_dict == FL_LEFT_TASK && fl->hash != 0);
    fl->task_left_in_dict = FL_LEFT_NONE;
    /* The value goes first (its release may run code), the key stays. */
    return current_tasks_set((PyObject *)fl, fl->hash, Py_None);
}
#endif /* FL_CURRENT_TASK_ON_TSTATE */

#if !FL_CURRENT_TASK_ON_TSTATE
/* 3.11-3.13: asyncio's registry of tasks (all_tasks()) is a weakref.WeakSet
 * (_asyncio's _all_tasks, from 3.12 _scheduled_tasks), and _asyncio's
 * _register_task calls its add(), Python code, and each registered task's
 * death calls the set's _remove, Python code again: some 3,400
 * instructions per task, more than the rest of a task's creation and
 * destruction by fastloop.  When _register_task is that C function and the
 * set a plain WeakSet, fastloop does what the two Python functions do
 * (_weakrefset.py) in C, on the same attributes of the same set: add()
 * commits pending removals first, then adds a weak reference to the task
 * whose callback (registry_remove) appends it to _pending_removals while
 * the set is being iterated, else discards it from `data`.  Set up on the
 * first registration; any other arrangement calls _register_task. */
#if PY_VERSION_HEX >= 0x030C0000
#define REGISTRY_NAME "_scheduled_tasks"
#else
#define REGISTRY_NAME "_all_tasks"
#endif

/* The WeakSet's instance attribute `name` (a new reference), read from its
 * __dict__: a third of the cost of PyObject_GetAttr.  NULL with an
 * exception set on failure. */
static PyObject *
registry_attr(PyObject *dict, PyObject *name)
{
    PyObject *value = PyDict_GetItemWithError(dict, name);
    if (value != NULL) {
        return Py_NewRef(value);
    }
    if (!PyErr_Occurred()) {
        value = PyObject_GetAttr(fl_state->registry_set, name);
    }
    return value;
}

/* The callback of a registered task's weak reference: the WeakSet's
 * _remove(item). */
static PyObject *
registry_remove(PyObject *set, PyObject *item)
{
    PyObject *dict = PyObject_GenericGetDict(set, NULL);
    if (dict == NULL) {
        return NULL;
    }
    PyObject *iterating = registry_attr(dict, fl_state->str_iterating);
    int busy = iterating == NULL ? -1 : PyObject_IsTrue(iterating);
    Py_XDECREF(iterating);
    PyObject *target =
        busy < 0 ? NULL
                 : registry_attr(dict, busy ? fl_state->str_pending_removals
                                            : fl_state->str_weakset_data);
    Py_DECREF(dict);
    if (target == NULL) {
        return NULL;
    }
    int rc;
    if (busy && PyList_CheckExact(target)) {
        rc = PyList_Append(target, item);
    } else if (!busy && PySet_CheckExact(target)) {
        rc = PySet_Discard(target, item) < 0 ? -1 : 0;
    } else {
        PyObject *res = PyObject_CallMethod(
            target, busy ? "append" : "discard", "O", item);
        rc = res == NULL ? -1 : 0;
        Py_XDECREF(res);
    }
    Py_DECREF(target);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef registry_remove_def = {"_remove", registry_remove, METH_O,
                                          NULL};

/* Decides between the fast path and _register_task.  0, or -1 with an
 * exception set. */
static int
registry_setup(void)
{
    fl_state->registry_state = -1;
    PyObject *mod = PyImport_ImportModule("_asyncio");
    if (mod == NULL) {
        return -1;
    }
    PyObject *fn = PyObject_GetAttrString(mod, "_register_task");
    PyObject *set = fn ? PyObject_GetAttrString(mod, REGISTRY_NAME) : NULL;
    Py_DECREF(mod);
    if (set == NULL) {
        Py_XDECREF(fn);
        PyErr_Clear();
        return 0;
    }
    int usable = fn == fl_state->register_task;
    Py_DECREF(fn);
    PyObject *weakset = NULL;
    if (usable) {
        PyObject *wmod = PyImport_ImportModule("_weakrefset");
        weakset = wmod ? PyObject_GetAttrString(wmod, "WeakSet") : NULL;
        Py_XDECREF(wmod);
        if (weakset == NULL) {
            Py_DECREF(set);
            return -1;
        }
        usable = (PyObject *)Py_TYPE(set) == weakset;
        Py_DECREF(weakset);
    }
    if (usable) {
        fl_state->registry_remove = PyCFunction_New(&registry_remove_def, set);
        if (fl_state->registry_remove == NULL) {
            Py_DECREF(set);
            return -1;
        }
        fl_state->registry_set = set; /* the callback holds it too */
        fl_state->registry_state = 1;
        return 0;
    }
    Py_DECREF(set);
    return 0;
}

/* WeakSet.add(task) on the registry. */
static int
registry_add(PyObject *task)
{
    PyObject *set = fl_state->registry_set;
    PyObject *dict = PyObject_GenericGetDict(set, NULL);
    if (dict == NULL) {
        return -1;
    }
    PyObject *pending = registry_attr(dict, fl_state->str_pending_removals);
    int commit = pending == NULL ? -1 : PyObject_IsTrue(pending);
    Py_XDECREF(pending);
    if (commit > 0) {
        /* Python code: the dict is fetched again after it. */
        Py_DECREF(dict);
        PyObject *res =
            PyObject_CallMethodNoArgs(set, fl_state->str_commit_removals);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
        dict = PyObject_GenericGetDict(set, NULL);
        if (dict == NULL) {
            return -1;
        }
    }
    PyObject *data =
        commit < 0 ? NULL : registry_attr(dict, fl_state->str_weakset_data);
    Py_DECREF(dict);
    if (data == NULL) {
        return -1;
    }
    PyObject *ref = PyWeakref_NewRef(task, fl_state->registry_remove);
    int rc = -1;
    if (ref != NULL && PySet_CheckExact(data)) {
        rc = PySet_Add(data, ref);
    } else if (ref != NULL) {
        PyObject *res = PyObject_CallMethod(data, "add", "O", ref);
        rc = res == NULL ? -1 : 0;
        Py_XDECREF(res);
    }
    Py_XDECREF(ref);
    Py_DECREF(data);
    return rc;
}
#endif /* !FL_CURRENT_TASK_ON_TSTATE */

static int
register_task(PyObject *task)
{
#if !FL_CURRENT_TASK_ON_TSTATE
    if (fl_state->registry_state == 0 && registry_setup() < 0) {
        return -1;
    }
    if (fl_state->registry_state > 0) {
        return registry_add(task);
    }
#endif
    PyObject *res = PyObject_CallOneArg(fl_state->register_task, task);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Scheduling steps and wakeups                                        */

static PyObject *Task_step_meth(PyObject *task, PyObject *const *args,
                                Py_ssize_t nargs);
static PyObject *Task_wakeup_meth(PyObject *task, PyObject *fut);

/* The callables asyncio's Task would hand to call_soon/add_done_callback:
 * used on the generic path only. */
static PyMethodDef step_def = {"task_step",
                               (PyCFunction)(void (*)(void))Task_step_meth,
                               METH_FASTCALL, NULL};
static PyMethodDef wakeup_def = {"task_wakeup", (PyCFunction)Task_wakeup_meth,
                                 METH_O, NULL};

/* Runs `action(task, arg)` from the fastloop ready queue inside the task's
 * context; an error is reported from inside that context too, as asyncio
 * does, naming the step as `what`. */
static inline Py_ALWAYS_INLINE int
run_in_task_context(PyObject *task, PyObject *arg,
                    int (*action)(FLTask *, PyObject *), const char *what)
{
    PyObject *ctx = ((FLTask *)task)->context;
    if (PyContext_Enter(ctx) < 0) {
        return -1;
    }
    int rc = action((FLTask *)task, arg);
    if (rc < 0) {
        rc = fl_loop_report_callback_error(((FLTask *)task)->fut.loop, NULL,
                                           NULL, NULL, what);
    }
    PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
    if (PyContext_Exit(ctx) < 0) {
        Py_XDECREF(err);
        return -1;
    }
    fl_err_restore(err);
    return rc;
}

static int
task_step_ready(PyObject *task, PyObject *exc)
{
    return run_in_task_context(task, exc, task_step, "Task.__step()");
}

static int
task_wakeup_ready(PyObject *task, PyObject *fut)
{
    return run_in_task_context(task, fut, task_wakeup, "Task.__wakeup()");
}

/* loop.call_soon(self.__step, exc, context=self._context) */
static int
task_call_step_soon(FLTask *task, PyObject *exc)
{
    PyObject *loop = task->fut.loop;
    if (task->fut.fast_loop) {
        if (fl_loop_check_schedulable((FLLoop *)loop) < 0) {
            return -1;
        }
        return fl_loop_enqueue((FLLoop *)loop, task_step_ready,
                               (PyObject *)task, exc);
    }
    PyObject *meth = PyCFunction_New(&step_def, (PyObject *)task);
    if (meth == NULL) {
        return -1;
    }
    int rc = fl_call_soon_generic(loop, meth, exc, task->context);
    Py_DECREF(meth);
    return rc;
}

/* Schedule a step that throws a new RuntimeError(fmt % ...) into the
 * coroutine: how asyncio reports a bad yield. */
static int
task_step_soon_with_error(FLTask *task, const char *fmt, ...)
{
    va_list vargs;
    va_start(vargs, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, vargs);
    va_end(vargs);
    if (msg == NULL) {
        return -1;
    }
    PyObject *exc = PyObject_CallOneArg(PyExc_RuntimeError, msg);
    Py_DECREF(msg);
    if (exc == NULL) {
        return -1;
    }
    int rc = task_call_step_soon(task, exc);
    Py_DECREF(exc);
    return rc;
}

static int
task_schedule_wakeup(PyObject *task, FLFuture *fut)
{
    assert(FLTask_Check(task) && fut->state != FL_PENDING);
    if (fut->fast_loop) {
        if (fl_loop_check_schedulable((FLLoop *)fut->loop) < 0) {
            return -1;
        }
        return fl_loop_enqueue((FLLoop *)fut->loop, task_wakeup_ready, task,
                               (PyObject *)fut);
    }
    PyObject *meth = PyCFunction_New(&wakeup_def, task);
    if (meth == NULL) {
        return -1;
    }
    int rc = fl_call_soon_generic(fut->loop, meth, (PyObject *)fut,
                                  ((FLTask *)task)->context);
    Py_DECREF(meth);
    return rc;
}

static PyObject *
task_waiter_entry(PyObject *task)
{
    PyObject *meth = PyCFunction_New(&wakeup_def, task);
    if (meth == NULL) {
        return NULL;
    }
    PyObject *entry = PyTuple_Pack(2, meth, ((FLTask *)task)->context);
    Py_DECREF(meth);
    return entry;
}

/* ------------------------------------------------------------------ */
/* Stepping                                                            */

/* futures._get_loop(fut): fut.get_loop() if it has one, else fut._loop. */
static PyObject *
get_future_loop(PyObject *fut)
{
    if (FLFuture_Check(fut)) {
        PyObject *loop = ((FLFuture *)fut)->loop;
        return Py_NewRef(loop ? loop : Py_None);
    }
    PyObject *get_loop;
    if (fl_get_optional_attr(fut, fl_state->str_get_loop, &get_loop) < 0) {
        return NULL;
    }
    if (get_loop != NULL) {
        PyObject *loop = PyObject_CallNoArgs(get_loop);
        Py_DECREF(get_loop);
        return loop;
    }
    return PyObject_GetAttr(fut, fl_state->str_loop);
}

/* Cancel a future the task waits on; 1 if it was cancelled. */
static int
cancel_future(PyObject *fut, PyObject *msg)
{
    if (FLTask_CheckExact(fut)) {
        return task_cancel((FLTask *)fut, msg);
    }
    if (FLFuture_CheckExact(fut)) {
        return fl_future_cancel((FLFuture *)fut, msg);
    }
    PyObject *args[2] = {fut, msg};
    PyObject *res = PyObject_VectorcallMethod(
        fl_state->str_cancel, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
        fl_state->kw_msg);
    if (res == NULL) {
        return -1;
    }
    int rc = PyObject_IsTrue(res);
    Py_DECREF(res);
    return rc;
}

/* The coroutine yielded `result` (new reference, consumed): decide what
 * the task waits for next, as Task.__step does. */
static int
task_handle_yield(FLTask *task, PyObject *result)
{
    PyObject *self = (PyObject *)task;
    int rc;

    if (result == Py_None) {
        /* Bare yield relinquishes control for one event loop iteration. */
        Py_DECREF(result);
        return task_call_step_soon(task, NULL);
    }

    if (FLFuture_CheckExact(result) || FLTask_CheckExact(result)) {
        FLFuture *fut = (FLFuture *)result;
        if (fut->loop != task->fut.loop) {
            rc = task_step_soon_with_error(
                task, "Task %R got Future %R attached to a different loop",
                self, result);
        } else if (!fut->blocking) {
            rc = task_step_soon_with_error(
                task,
                "yield was used instead of yield from in task %R with %R",
                self, result);
        } else if (result == self) {
            rc = task_step_soon_with_error(
                task, "Task cannot await on itself: %R", self);
        } else {
            fut->blocking = 0;
            if (fl_future_add_task_waiter(fut, self) < 0) {
                Py_DECREF(result);
                return -1;
            }
            Py_XSETREF(task->fut_waiter, result);
            result = NULL;
#if FL_CURRENT_TASK_ON_TSTATE
            if (awaited_by_add(task->fut_waiter, task) < 0) {
                return -1;
            }
#endif
            if (task->must_cancel) {
                rc = cancel_future(task->fut_waiter, task->fut.cancel_msg
                                                         ? task->fut.cancel_msg
                                                         : Py_None);
                if (rc > 0) {
                    task->must_cancel = 0;
                }
                rc = rc < 0 ? -1 : 0;
            } else {
                rc = 0;
            }
        }
        Py_XDECREF(result);
        return rc;
    }

    PyObject *blocking;
    if (fl_get_optional_attr(result, fl_state->str_blocking, &blocking) < 0) {
        Py_DECREF(result);
        return -1;
    }
    if (blocking != NULL && blocking != Py_None) {
        PyObject *loop = get_future_loop(result);
        int b = loop ? PyObject_IsTrue(blocking) : -1;
        Py_DECREF(blocking);
        if (b < 0) {
            Py_XDECREF(loop);
            Py_DECREF(result);
            return -1;
        }
        if (loop != task->fut.loop) {
            rc = task_step_soon_with_error(
                task, "Task %R got Future %R attached to a different loop",
                self, result);
        } else if (!b) {
            rc = task_step_soon_with_error(
                task,
                "yield was used instead of yield from in task %R with %R",
                self, result);
        } else if (result == self) {
            rc = task_step_soon_with_error(
                task, "Task cannot await on itself: %R", self);
        } else {
            rc = -1;
            if (PyObject_SetAttr(result, fl_state->str_blocking, Py_False) ==
                0) {
                PyObject *meth = PyCFunction_New(&wakeup_def, self);
                if (meth != NULL) {
                    PyObject *args[3] = {result, meth, task->context};
                    PyObject *res = PyObject_VectorcallMethod(
                        fl_state->str_add_done_callback, args,
                        2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                        fl_state->kw_context);
                    Py_DECREF(meth);
                    if (res != NULL) {
                        Py_DECREF(res);
                        rc = 0;
                    }
                }
            }
            if (rc == 0) {
                Py_XSETREF(task->fut_waiter, Py_NewRef(result));
#if FL_CURRENT_TASK_ON_TSTATE
                rc = awaited_by_add(result, task);
#endif
            }
            if (rc == 0) {
                if (task->must_cancel) {
                    int c = cancel_future(result, task->fut.cancel_msg
                                                      ? task->fut.cancel_msg
                                                      : Py_None);
                    if (c > 0) {
                        task->must_cancel = 0;
                    }
                    rc = c < 0 ? -1 : 0;
                }
            }
        }
        Py_XDECREF(loop);
        Py_DECREF(result);
        return rc;
    }
    Py_XDECREF(blocking);

    if (PyGen_Check(result)) {
        rc = task_step_soon_with_error(
            task,
            "yield was used instead of yield from for generator in task %R "
            "with %R",
            self, result);
    } else {
        rc = task_step_soon_with_error(task, "Task got bad yield: %R", result);
    }
    Py_DECREF(result);
    return rc;
}

/* StopIteration's value after coro.throw() ended the coroutine. */
static PyObject *
fetch_stop_iteration_value(void)
{
    PyObject *exc = fl_err_fetch();
    PyObject *value = PyObject_GetAttrString(exc, "value");
    Py_DECREF(exc);
    return value;
}

/* Py_XDECREF after a step that may have left its task current in
 * _current_tasks (see fl_loop_release_after_step).  A failure to take the
 * entry out is written as unraisable: the step itself stands. */
static inline void
release_after_step(FLLoop *fl, PyObject *obj)
{
    if (fl_loop_release_after_step(fl, obj) < 0) {
        PyErr_WriteUnraisable((PyObject *)fl); /* obj may be gone */
    }
}

/* Task.__step_run_and_handle_result: run the coroutine once. */
static int
task_step_run(FLTask *task, PyObject *exc)
{
    PyObject *coro = task->coro;
    PyObject *result = NULL;
    PySendResult rc;

    if (coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Task has no coroutine");
        return -1;
    }
    Py_INCREF(coro);
    if (exc == NULL) {
        rc = PyIter_Send(coro, Py_None, &result);
    } else {
        result = PyObject_CallMethodOneArg(coro, fl_state->str_throw, exc);
        if (result != NULL) {
            rc = PYGEN_NEXT;
        } else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            result = fetch_stop_iteration_value();
            rc = result ? PYGEN_RETURN : PYGEN_ERROR;
        } else {
            rc = PYGEN_ERROR;
        }
    }
    Py_DECREF(coro);

    if (rc == PYGEN_RETURN) {
        int r;
        if (task->must_cancel) {
            /* Task is cancelled right before coro stops. */
            task->must_cancel = 0;
            r = fl_future_cancel(&task->fut, task->fut.cancel_msg);
        } else {
            r = fl_future_set_result(&task->fut, result);
        }
        Py_DECREF(result);
        return r < 0 ? -1 : 0;
    }
    if (rc == PYGEN_ERROR) {
        PyObject *err = fl_err_fetch();
        if (err == NULL) {
            PyErr_SetString(PyExc_SystemError,
                            "coroutine failed without an exception");
            return -1;
        }
        if (PyErr_GivenExceptionMatches(err, fl_state->CancelledError)) {
            /* Save the original exception so we can chain it later. */
            Py_XSETREF(task->fut.cancelled_exc, err);
            return fl_future_cancel(&task->fut, NULL) < 0 ? -1 : 0;
        }
        if (fl_future_set_exception(&task->fut, err) < 0) {
            Py_DECREF(err);
            return -1;
        }
        if (PyErr_GivenExceptionMatches(err, PyExc_KeyboardInterrupt) ||
            PyErr_GivenExceptionMatches(err, PyExc_SystemExit)) {
            fl_err_restore(err);
            return -1;
        }
        Py_DECREF(err);
        return 0;
    }
    return task_handle_yield(task, result);
}

static int
task_step(FLTask *task, PyObject *exc)
{
    if (task->fut.state != FL_PENDING) {
        if (FLLoop_Check(task->fut.loop) &&
            fl_loop_flush_current_task((FLLoop *)task->fut.loop) < 0) {
            return -1;
        }
        PyErr_Format(fl_state->InvalidStateError,
                     "_step(): already done: %R, %R", (PyObject *)task,
                     exc ? exc : Py_None);
        return -1;
    }
    if (task->fut.loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Task object is not initialized.");
        return -1;
    }
    FLLoop *fl = task_fast_loop(task);
    /* A step that left its task current runs only within a batch. */
    assert(fl == NULL || fl->task_left_in_dict == FL_LEFT_NOTHING ||
           fl->in_run_batch);
    PyObject *own_exc = NULL;
    if (task->must_cancel) {
        if (exc == NULL ||
            !PyErr_GivenExceptionMatches(exc, fl_state->CancelledError)) {
            /* Allocating may run the garbage collector (and __del__s):
             * not with the previous step's task still current. */
            if (fl != NULL && fl_loop_hide_left_task(fl) < 0) {
                return -1;
            }
            exc = own_exc = fl_future_make_cancelled_error(&task->fut);
            if (exc == NULL) {
                return -1;
            }
            fl = task_fast_loop(task); /* (see the waiter's release below) */
        }
        task->must_cancel = 0;
    }
    PyObject *waiter = task->fut_waiter;
    if (waiter != NULL) {
        task->fut_waiter = NULL;
        release_after_step(fl, waiter);
        /* Its __del__ may have re-initialised the task. */
        fl = task_fast_loop(task);
    }

    /* Held across the step: the coroutine may drop the last other reference
     * to the task, or even re-initialise it. */
    PyObject *loop = Py_NewRef(task->fut.loop);
    Py_INCREF(task);
    int rc = enter_task(task, loop, fl);
    if (rc == 0) {
        rc = task_step_run(task, exc);
        PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
#if FL_CURRENT_TASK_ON_TSTATE
        if (task->fut.state != FL_PENDING) {
            unregister_task(task);
        }
#endif
        if (leave_task(task, loop, fl, rc == 0) < 0) {
            if (err != NULL) {
                PyErr_WriteUnraisable((PyObject *)task);
            }
            rc = -1;
        }
        fl_err_restore(err);
    }
    /* The step may have left its task current (see leave_task); the task
     * itself outlives this (its caller holds it). */
    assert(Py_REFCNT(task) > 1);
    Py_DECREF(task);
    release_after_step(fl, loop);
    release_after_step(fl, own_exc);
    return rc;
}

/* Task.__wakeup(future): step with the future's exception, or none. */
static int
task_wakeup(FLTask *task, PyObject *fut)
{
#if FL_CURRENT_TASK_ON_TSTATE
    if (awaited_by_discard(fut, task) < 0) {
        return -1;
    }
#endif
    int fast_future = FLFuture_CheckExact(fut) || FLTask_CheckExact(fut);
    if (fast_future && ((FLFuture *)fut)->state == FL_FINISHED &&
        ((FLFuture *)fut)->exception == NULL) {
        return task_step(task, NULL);
    }
    /* What follows may run Python code (a foreign result(), allocations
     * that collect garbage): not with the previous step's task current,
     * which asyncio's wakeup never sees. */
    FLLoop *fl = task_fast_loop(task);
    if (fl != NULL && fl_loop_hide_left_task(fl) < 0) {
        return -1;
    }
    if (fast_future) {
        FLFuture *f = (FLFuture *)fut;
        PyObject *res = fl_future_get_result(f);
        if (res != NULL) {
            Py_DECREF(res);
            return task_step(task, NULL);
        }
    } else {
        PyObject *res = PyObject_CallMethodNoArgs(fut, fl_state->str_result);
        if (res != NULL) {
            Py_DECREF(res);
            return task_step(task, NULL);
        }
    }
    /* This may also be a cancellation. */
    PyObject *exc = fl_err_fetch();
    int rc = task_step(task, exc);
    release_after_step(task_fast_loop(task), exc);
    return rc;
}

static PyObject *
Task_step_meth(PyObject *task, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "__step() takes at most 1 argument");
        return NULL;
    }
    PyObject *exc = nargs == 1 && args[0] != Py_None ? args[0] : NULL;
    if (task_step((FLTask *)task, exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Task_wakeup_meth(PyObject *task, PyObject *fut)
{
    if (task_wakeup((FLTask *)task, fut) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

static int
loop_is_running(PyObject *loop)
{
    if (fl_loop_is_fast(loop)) {
        return ((FLLoop *)loop)->running;
    }
    PyObject *res = PyObject_CallMethodNoArgs(loop, fl_state->str_is_running);
    if (res == NULL) {
        return -1;
    }
    int b = PyObject_IsTrue(res);
    Py_DECREF(res);
    return b;
}

#if PY_VERSION_HEX >= 0x030C0000
/* The coroutine's first step, inside the task's context (eager start). */
static int
task_step_run_in_context(FLTask *task)
{
    if (PyContext_Enter(task->context) < 0) {
        return -1;
    }
    int rc = task_step_run(task, NULL);
    PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
    if (PyContext_Exit(task->context) < 0) {
        Py_XDECREF(err);
        return -1;
    }
    fl_err_restore(err);
    return rc;
}
#endif

#if FL_CURRENT_TASK_ON_TSTATE
/* Task.__eager_start: run the first step now, inside Task(), with the task
 * swapped in as the current one and registered as an eager task. */
static int
task_eager_start(FLTask *task)
{
    PyObject *self = (PyObject *)task;
    PyObject *loop = Py_NewRef(task->fut.loop);
    PyObject *swap[2] = {loop, self};
    PyObject *prev =
        PyObject_Vectorcall(fl_state->swap_current_task, swap, 2, NULL);
    if (prev == NULL) {
        Py_DECREF(loop);
        return -1;
    }
    int rc = call_registry(fl_state->register_eager_task, self, NULL);
    if (rc == 0) {
        rc = task_step_run_in_context(task);
        PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
        if (call_registry(fl_state->unregister_eager_task, self, NULL) < 0) {
            if (err != NULL) {
                PyErr_WriteUnraisable(self);
            } else {
                err = fl_err_fetch();
                rc = -1;
            }
        }
        fl_err_restore(err);
    }
    /* Swap the previous current task back. */
    PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
    swap[1] = prev;
    PyObject *cur =
        PyObject_Vectorcall(fl_state->swap_current_task, swap, 2, NULL);
    if (cur == NULL) {
        if (err != NULL) {
            PyErr_WriteUnraisable(self);
        } else {
            err = fl_err_fetch();
        }
        rc = -1;
    }
    assert(cur == NULL || cur == self);
    Py_XDECREF(cur);
    fl_err_restore(err);
    Py_DECREF(prev);
    Py_DECREF(loop);
    if (task->fut.state != FL_PENDING) {
        Py_CLEAR(task->coro);
        mirror_in_base(task, base_coro_offset, BASE_DONE_CORO);
    } else if (rc == 0) {
        rc = register_task(self);
    }
    return rc;
}
#elif PY_VERSION_HEX >= 0x030C0000
/* Task.__eager_start: run the first step now, inside Task(). */
static int
task_eager_start(FLTask *task)
{
    PyObject *self = (PyObject *)task;
    PyObject *loop = Py_NewRef(task->fut.loop);
    Py_hash_t hash = loop_key_hash(loop, task_fast_loop(task));
    PyObject *prev = hash == -1 ? NULL : current_tasks_get(loop, hash);
    if (prev == NULL && PyErr_Occurred()) {
        Py_DECREF(loop);
        return -1;
    }
    Py_XINCREF(prev);
    if (current_tasks_set(loop, hash, self) < 0) {
        Py_XDECREF(prev);
        Py_DECREF(loop);
        return -1;
    }
    int rc = PySet_Add(fl_state->eager_tasks, self);
    if (rc == 0) {
        rc = task_step_run_in_context(task);
        PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
        if (PySet_Discard(fl_state->eager_tasks, self) < 0) {
            PyErr_WriteUnraisable(self);
        }
        fl_err_restore(err);
    }
    /* Swap the previous current task back. */
    PyObject *err = rc < 0 ? fl_err_fetch() : NULL;
    int r2 = prev ? current_tasks_set(loop, hash, prev)
                  : PyDict_DelItem(fl_state->current_tasks, loop);
    if (r2 < 0) {
        if (err != NULL) {
            PyErr_WriteUnraisable(self);
        } else {
            err = fl_err_fetch();
        }
        rc = -1;
    }
    fl_err_restore(err);
    Py_XDECREF(prev);
    Py_DECREF(loop);
    if (task->fut.state != FL_PENDING) {
        Py_CLEAR(task->coro);
        mirror_in_base(task, base_coro_offset, BASE_DONE_CORO);
    } else if (rc == 0) {
        rc = register_task(self);
    }
    return rc;
}
#endif

static int
task_init_impl(FLTask *task, PyObject *coro, PyObject *loop, PyObject *name,
               PyObject *context, int eager_start)
{
    if (fl_future_init_fields(&task->fut, loop) < 0) {
        return -1;
    }
    int is_coro = PyCoro_CheckExact(coro);
    if (!is_coro) {
        PyObject *res = PyObject_CallOneArg(fl_state->iscoroutine, coro);
        if (res == NULL) {
            return -1;
        }
        is_coro = PyObject_IsTrue(res);
        Py_DECREF(res);
        if (is_coro < 0) {
            return -1;
        }
    }
    if (!is_coro) {
        /* Prevent logging for a pending task in __del__. */
        task->log_destroy_pending = 0;
        PyErr_Format(PyExc_TypeError, "a coroutine was expected, got %R",
                     coro);
        return -1;
    }
    task->log_destroy_pending = 1;
    task->must_cancel = 0;
    task->num_cancels_requested = 0;
    Py_CLEAR(task->fut_waiter);
    Py_XSETREF(task->coro, Py_NewRef(coro));

    if (name == NULL || name == Py_None) {
        Py_CLEAR(task->name);
        task->name_id = ++task_name_counter;
    } else {
        PyObject *s =
            PyUnicode_CheckExact(name) ? Py_NewRef(name) : PyObject_Str(name);
        if (s == NULL) {
            return -1;
        }
        Py_XSETREF(task->name, s);
    }

    if (context == NULL || context == Py_None) {
        Py_XSETREF(task->context, PyContext_CopyCurrent());
        if (task->context == NULL) {
            return -1;
        }
    }
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15 checks at once what each step would otherwise fail to enter. */
    else if (!PyContext_CheckExact(context)) {
        task->log_destroy_pending = 0; /* never scheduled */
        PyErr_Format(PyExc_TypeError,
                     "a contextvars.Context was expected, got %s",
                     Py_TYPE(context)->tp_name);
        return -1;
    }
#endif
    else {
        Py_XSETREF(task->context, Py_NewRef(context));
    }
    mirror_in_base(task, base_coro_offset, coro);
    mirror_in_base(task, base_context_offset, task->context);
    if (base_is_task_offset != 0) {
        *((char *)task + base_is_task_offset) = 1;
    }
    if (mirror_name_in_base(task) < 0) {
        return -1;
    }

#if PY_VERSION_HEX >= 0x030C0000
    if (eager_start) {
        int running = loop_is_running(task->fut.loop);
        if (running < 0) {
            return -1;
        }
        if (running) {
            return task_eager_start(task);
        }
    }
#else
    (void)eager_start;
    (void)loop_is_running;
#endif
    if (task_call_step_soon(task, NULL) < 0) {
        return -1;
    }
    return register_task((PyObject *)task);
}

static int
Task_tp_init(FLTask *task, PyObject *args, PyObject *kwds)
{
#if PY_VERSION_HEX >= 0x030C0000
    static char *kwlist[] = {"coro",    "loop",        "name",
                             "context", "eager_start", NULL};
    PyObject *coro, *loop = Py_None, *name = Py_None, *context = Py_None;
    int eager_start = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOOp:Task", kwlist, &coro,
                                     &loop, &name, &context, &eager_start)) {
        return -1;
    }
#else
    static char *kwlist[] = {"coro", "loop", "name", "context", NULL};
    PyObject *coro, *loop = Py_None, *name = Py_None, *context = Py_None;
    int eager_start = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOO:Task", kwlist, &coro,
                                     &loop, &name, &context)) {
        return -1;
    }
#endif
    return task_init_impl(task, coro, loop, name, context, eager_start);
}

/* Dead tasks of the exact type, kept for reuse, with every field zero or
 * NULL as Task_clear (and Task_dealloc) left them. */
#define FL_TASK_FREELIST 256
static FLTask *task_freelist[FL_TASK_FREELIST];
static int task_freelist_len;

/* A new, zeroed fastloop.Task (not initialised). */
static FLTask *
task_alloc(void)
{
    if (task_freelist_len > 0) {
        FLTask *task = task_freelist[--task_freelist_len];
        (void)PyObject_Init((PyObject *)task, fl_state->task_type);
        PyObject_GC_Track(task);
        return task;
    }
    return (FLTask *)fl_state->task_type->tp_alloc(fl_state->task_type, 0);
}

PyObject *
fl_task_new(PyObject *loop, PyObject *coro, PyObject *name, PyObject *context,
            int eager_start)
{
    FLTask *task = task_alloc();
    if (task == NULL) {
        return NULL;
    }
    if (task_init_impl(task, coro, loop, name, context, eager_start) < 0) {
        Py_DECREF(task);
        return NULL;
    }
    return (PyObject *)task;
}

/* Task(coro, *, loop=None, name=None, context=None[, eager_start=False])
 * without an args tuple or a kwargs dict. */
static PyObject *
Task_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *coro = nargs >= 1 ? args[0] : NULL;
    PyObject *loop = Py_None, *name = Py_None, *context = Py_None;
    int eager_start = 0;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError,
                     "Task() takes at most 1 positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        if (!PyUnicode_Check(key)) {
            goto bad_kw;
        }
        if (PyUnicode_CompareWithASCIIString(key, "loop") == 0) {
            loop = value;
        } else if (PyUnicode_CompareWithASCIIString(key, "name") == 0) {
            name = value;
        } else if (PyUnicode_CompareWithASCIIString(key, "context") == 0) {
            context = value;
        } else if (PyUnicode_CompareWithASCIIString(key, "coro") == 0 &&
                   coro == NULL) {
            coro = value;
        }
#if PY_VERSION_HEX >= 0x030C0000
        else if (PyUnicode_CompareWithASCIIString(key, "eager_start") == 0) {
            eager_start = PyObject_IsTrue(value);
            if (eager_start < 0) {
                return NULL;
            }
        }
#endif
        else {
            goto bad_kw;
        }
        continue;
    bad_kw:
        PyErr_Format(PyExc_TypeError,
                     "Task() got an unexpected keyword argument '%S'", key);
        return NULL;
    }
    if (coro == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "Task() missing required argument 'coro' (pos 1)");
        return NULL;
    }
    FLTask *task = task_alloc();
    if (task == NULL) {
        return NULL;
    }
    if (task_init_impl(task, coro, loop, name, context, eager_start) < 0) {
        Py_DECREF(task);
        return NULL;
    }
    return (PyObject *)task;
}

/* Loop.create_task(coro, **kwargs) for fastloop's Loop, installed like
 * create_future (see fl_task_init).  Without a task factory it accepts what
 * asyncio's create_task accepts on this version (name and context; 3.14+
 * passes every keyword on to Task, so eager_start too); with one, asyncio's
 * own create_task does the version-specific calling, with the caller's
 * keywords passed through unchanged. */
static PyObject *
loop_create_task(PyObject *loop, PyObject *const *args, size_t nargsf,
                 PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "create_task() takes exactly 1 positional argument "
                     "(%zd given)",
                     nargs);
        return NULL;
    }
    FLLoop *self = (FLLoop *)loop;
    if (self->task_factory != NULL && self->task_factory != Py_None) {
        PyObject *small[8];
        PyObject **call_args = small;
        if (2 + nkw > (Py_ssize_t)Py_ARRAY_LENGTH(small)) {
            call_args = PyMem_Malloc((2 + nkw) * sizeof(PyObject *));
            if (call_args == NULL) {
                return PyErr_NoMemory();
            }
        }
        call_args[0] = loop;
        call_args[1] = args[0];
        for (Py_ssize_t i = 0; i < nkw; i++) {
            call_args[2 + i] = args[1 + i];
        }
        PyObject *task = PyObject_Vectorcall(fl_state->base_create_task,
                                             call_args, 2, kwnames);
        if (call_args != small) {
            PyMem_Free(call_args);
        }
        return task;
    }
    PyObject *name = Py_None, *context = Py_None;
    int eager_start = 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(key, "name") == 0) {
            name = value;
        } else if (PyUnicode_CompareWithASCIIString(key, "context") == 0) {
            context = value;
        }
#if PY_VERSION_HEX >= 0x030E0000
        else if (PyUnicode_CompareWithASCIIString(key, "eager_start") == 0) {
            eager_start = PyObject_IsTrue(value);
            if (eager_start < 0) {
                return NULL;
            }
        } else {
            PyErr_Format(PyExc_TypeError,
                         "Task() got an unexpected keyword argument '%S'",
                         key);
            return NULL;
        }
#else
        else {
            PyErr_Format(PyExc_TypeError,
                         "create_task() got an unexpected keyword argument "
                         "'%S'",
                         key);
            return NULL;
        }
#endif
    }
    if (fl_loop_check_closed(self) < 0) {
        return NULL;
    }
    return fl_task_new(loop, args[0], name, context, eager_start);
}

PyMethodDef fl_task_loop_methods[] = {
    {"create_task", (PyCFunction)(void (*)(void))loop_create_task,
     METH_FASTCALL | METH_KEYWORDS,
     "Schedule a coroutine as a fastloop.Task (or the task factory's)."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Methods                                                             */

static int
task_cancel(FLTask *task, PyObject *msg)
{
    task->fut.log_tb = 0;
    if (task->fut.state != FL_PENDING) {
        return 0;
    }
    task->num_cancels_requested++;
    if (task->fut_waiter != NULL) {
        /* Leave fut_waiter: it may be a Task that catches and ignores the
         * cancellation, so we may have to cancel it again later.  Tasks
         * awaiting each other (a cycle, or a long chain) recurse here in C:
         * guard it, as asyncio's method calls are guarded. */
        if (Py_EnterRecursiveCall(" while cancelling a task")) {
            return -1;
        }
        PyObject *waiter = Py_NewRef(task->fut_waiter);
        int rc = cancel_future(waiter, msg);
        Py_DECREF(waiter);
        Py_LeaveRecursiveCall();
        if (rc != 0) {
            return rc;
        }
    }
    /* It must be the case that the step is already scheduled. */
    task->must_cancel = 1;
    Py_XSETREF(task->fut.cancel_msg, Py_XNewRef(msg));
    return 1;
}

static PyObject *
Task_cancel(FLTask *task, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyObject *msg;
    if (fl_parse_msg("cancel", args, nargs, kwnames, &msg) < 0) {
        return NULL;
    }
    int rc = task_cancel(task, msg);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
Task_cancelling(FLTask *task, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(task->num_cancels_requested);
}

static PyObject *
Task_uncancel(FLTask *task, PyObject *Py_UNUSED(ignored))
{
    if (task->num_cancels_requested > 0) {
        task->num_cancels_requested--;
#if PY_VERSION_HEX >= 0x030D0000
        if (task->num_cancels_requested == 0) {
            task->must_cancel = 0;
        }
#endif
    }
    return PyLong_FromSsize_t(task->num_cancels_requested);
}

static PyObject *
Task_get_coro(FLTask *task, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(task->coro ? task->coro : Py_None);
}

#if PY_VERSION_HEX >= 0x030C0000
static PyObject *
Task_get_context(FLTask *task, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(task->context ? task->context : Py_None);
}
#endif

static PyObject *
Task_get_name(FLTask *task, PyObject *Py_UNUSED(ignored))
{
    if (task->name == NULL) {
        if (task->name_id == 0) {
            Py_RETURN_NONE; /* __init__ was skipped */
        }
        task->name = PyUnicode_FromFormat("Task-%llu", task->name_id);
        if (task->name == NULL) {
            return NULL;
        }
    }
    return Py_NewRef(task->name);
}

static PyObject *
Task_set_name(FLTask *task, PyObject *value)
{
    PyObject *s =
        PyUnicode_CheckExact(value) ? Py_NewRef(value) : PyObject_Str(value);
    if (s == NULL) {
        return NULL;
    }
    Py_XSETREF(task->name, s);
    mirror_in_base(task, base_name_offset, s);
    Py_RETURN_NONE;
}

static PyObject *
Task_get_stack(PyObject *task, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", NULL};
    PyObject *limit = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:get_stack", kwlist,
                                     &limit)) {
        return NULL;
    }
    return PyObject_CallFunctionObjArgs(fl_state->task_get_stack, task, limit,
                                        NULL);
}

static PyObject *
Task_print_stack(PyObject *task, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", "file", NULL};
    PyObject *limit = Py_None, *file = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OO:print_stack", kwlist,
                                     &limit, &file)) {
        return NULL;
    }
    return PyObject_CallFunctionObjArgs(fl_state->task_print_stack, task,
                                        limit, file, NULL);
}

static PyObject *
Task_set_result(PyObject *task, PyObject *Py_UNUSED(result))
{
    PyErr_SetString(PyExc_RuntimeError,
                    "Task does not support set_result operation");
    return NULL;
}

static PyObject *
Task_set_exception(PyObject *task, PyObject *Py_UNUSED(exc))
{
    PyErr_SetString(PyExc_RuntimeError,
                    "Task does not support set_exception operation");
    return NULL;
}

static PyObject *
task_repr(PyObject *task)
{
    if (((FLTask *)task)->fut.loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Future object is not initialized.");
        return NULL;
    }
    return PyObject_CallOneArg(fl_state->task_repr, task);
}

static PyMethodDef Task_methods[] = {
    {"cancel", (PyCFunction)(void (*)(void))Task_cancel,
     METH_FASTCALL | METH_KEYWORDS,
     "cancel(msg=None): request that this task cancel itself."},
    {"cancelling", (PyCFunction)Task_cancelling, METH_NOARGS,
     "Return the count of the task's cancellation requests."},
    {"uncancel", (PyCFunction)Task_uncancel, METH_NOARGS,
     "Decrement the task's count of cancellation requests."},
    {"get_coro", (PyCFunction)Task_get_coro, METH_NOARGS, NULL},
#if PY_VERSION_HEX >= 0x030C0000
    {"get_context", (PyCFunction)Task_get_context, METH_NOARGS, NULL},
#endif
    {"get_name", (PyCFunction)Task_get_name, METH_NOARGS, NULL},
    {"set_name", (PyCFunction)Task_set_name, METH_O, NULL},
    {"get_stack", (PyCFunction)(void (*)(void))Task_get_stack,
     METH_VARARGS | METH_KEYWORDS,
     "get_stack(*, limit=None): the frames of the task's coroutine."},
    {"print_stack", (PyCFunction)(void (*)(void))Task_print_stack,
     METH_VARARGS | METH_KEYWORDS, "print_stack(*, limit=None, file=None)"},
    {"set_result", (PyCFunction)Task_set_result, METH_O, NULL},
    {"set_exception", (PyCFunction)Task_set_exception, METH_O, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585"},
    {NULL, NULL},
};

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

static PyObject *
Task_get_log_destroy_pending(FLTask *task, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(task->log_destroy_pending);
}

static int
Task_set_log_destroy_pending(FLTask *task, PyObject *value,
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
    task->log_destroy_pending = (unsigned char)b;
    return 0;
}

static PyObject *
Task_get_must_cancel(FLTask *task, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(task->must_cancel);
}

static PyObject *
Task_get_coro_attr(FLTask *task, void *Py_UNUSED(closure))
{
    return Py_NewRef(task->coro ? task->coro : Py_None);
}

static PyObject *
Task_get_fut_waiter(FLTask *task, void *Py_UNUSED(closure))
{
    return Py_NewRef(task->fut_waiter ? task->fut_waiter : Py_None);
}

static PyObject *
Task_get_num_cancels(FLTask *task, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(task->num_cancels_requested);
}

static PyGetSetDef Task_getset[] = {
    {"_log_destroy_pending", (getter)Task_get_log_destroy_pending,
     (setter)Task_set_log_destroy_pending, NULL},
    {"_must_cancel", (getter)Task_get_must_cancel, NULL, NULL},
    {"_coro", (getter)Task_get_coro_attr, NULL, NULL},
    {"_fut_waiter", (getter)Task_get_fut_waiter, NULL, NULL},
    {"_num_cancels_requested", (getter)Task_get_num_cancels, NULL, NULL},
    {NULL},
};

/* ------------------------------------------------------------------ */
/* Type slots                                                          */

static int
Task_traverse(FLTask *task, visitproc visit, void *arg)
{
    Py_VISIT(task->coro);
    Py_VISIT(task->context);
    Py_VISIT(task->fut_waiter);
    Py_VISIT(task->name);
    return fl_future_traverse(&task->fut, visit, arg,
                              fl_state->asyncio_task_type);
}

static int
Task_clear(FLTask *task)
{
    Py_CLEAR(task->coro);
    Py_CLEAR(task->context);
    Py_CLEAR(task->fut_waiter);
    Py_CLEAR(task->name);
    return fl_future_clear(&task->fut, fl_state->asyncio_task_type);
}

/* "Task was destroyed but it is pending!", as asyncio's Task.__del__. */
static void
Task_finalize(FLTask *task)
{
    if (task->fut.state == FL_PENDING && task->log_destroy_pending &&
        task->fut.loop != NULL) {
        PyObject *saved = fl_err_fetch();
        PyObject *context = PyDict_New();
        PyObject *message =
            PyUnicode_FromString("Task was destroyed but it is pending!");
        if (context == NULL || message == NULL ||
            PyDict_SetItem(context, fl_state->str_task, (PyObject *)task) <
                0 ||
            PyDict_SetItem(context, fl_state->str_message, message) < 0 ||
            (task->fut.source_tb != NULL &&
             PyDict_SetItem(context, fl_state->str_source_traceback,
                            task->fut.source_tb) < 0)) {
            PyErr_WriteUnraisable((PyObject *)task);
        } else {
            if (fl_loop_call_exception_handler(task->fut.loop, context) < 0) {
                PyErr_WriteUnraisable((PyObject *)task);
            }
        }
        Py_XDECREF(message);
        Py_XDECREF(context);
        fl_err_restore(saved);
    }
#if FL_CURRENT_TASK_ON_TSTATE
    if (task->fut.state == FL_PENDING) {
        /* A pending task may still be linked into asyncio's list of tasks
         * (through the base's storage): unlink it before it is freed. */
        PyObject *saved = fl_err_fetch();
        unregister_task(task);
        fl_err_restore(saved);
    }
#endif
    fl_future_finalize(&task->fut);
}

static void
Task_dealloc(FLTask *task)
{
    /* What Task_finalize acts on: a pending task (reported if it logs,
     * unlinked from asyncio's task list on 3.14+), an unretrieved
     * exception. */
    int finalize =
        (task->fut.state == FL_PENDING &&
         (FL_CURRENT_TASK_ON_TSTATE || task->log_destroy_pending)) ||
        task->fut.log_tb;
    PyTypeObject *tp = Py_TYPE(task);
#if FL_CURRENT_TASK_ON_TSTATE
    {
        /* No freed task may stay linked into asyncio's task list, and
         * Task_finalize (which unlinks a pending task) may never run: a
         * subclass's __del__ replaces it.  A finished task unlinked itself,
         * but code calling asyncio.tasks._register_task() again may have
         * linked it back.  asyncio's function only unlinks (no reference is
         * taken); unlinking twice is harmless. */
        if (base_node_offset == 0 || task_linked_in_base(task)) {
            PyObject *saved = fl_err_fetch();
            PyObject *arg = (PyObject *)task;
            PyObject *res =
                PyObject_Vectorcall(fl_state->unregister_task, &arg, 1, NULL);
            Py_XDECREF(res);
            PyErr_Clear();
            fl_err_restore(saved);
        }
    }
#endif
    if (!fl_future_dealloc_begin(&task->fut, (inquiry)Task_clear, finalize)) {
        return;
    }
    if (tp == fl_state->task_type && task_freelist_len < FL_TASK_FREELIST &&
        !PyObject_GC_IsFinalized((PyObject *)task)) {
        /* Kept for task_alloc, which takes the type reference back. */
        task->name_id = 0;
        task->num_cancels_requested = 0;
        task->must_cancel = 0;
        task->log_destroy_pending = 0;
        task_freelist[task_freelist_len++] = task;
    } else {
        tp->tp_free(task);
    }
    Py_DECREF(tp);
}

static PyType_Slot Task_slots[] = {
    {Py_tp_doc, "Task(coro, *, loop=None, name=None, context=None): "
                "asyncio.Task implemented in C."},
    {Py_tp_init, Task_tp_init},
    {Py_tp_dealloc, Task_dealloc},
    {Py_tp_finalize, Task_finalize},
    {Py_tp_traverse, Task_traverse},
    {Py_tp_clear, Task_clear},
    {Py_tp_repr, task_repr},
    /* Set at init: Future's slots and Task's methods merged with
     * Future's. */
    {Py_tp_new, NULL},
    {Py_tp_iter, NULL},
    {Py_am_await, NULL},
    {Py_tp_methods, NULL},
    {Py_tp_getset, NULL},
    {Py_tp_members, fl_future_members},
    {0, NULL},
};

static PyType_Spec Task_spec = {
    .name = "fastloop.Task",
    .basicsize = sizeof(FLTask),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Task_slots,
};

int
fl_task_init(PyObject *module)
{
    /* The layers below reach tasks only through these. */
    fl_loop_task.step = task_step_ready;
    fl_loop_task.wakeup = task_wakeup_ready;
    fl_loop_task.hide_left_task = task_hide_left_task;
    fl_future_waiter.schedule_wakeup = task_schedule_wakeup;
    fl_future_waiter.waiter_entry = task_waiter_entry;
    if (init_base_mirror() < 0) {
        return -1;
    }
    /* fastloop.Task is not a subclass of fastloop.Future (its base is
     * asyncio's Task), so Future's methods, attributes and slots become
     * Task's own, as in asyncio's C Task; none of the asyncio base's may
     * show through, since they read the base's unused storage. */
    PyMethodDef *methods =
        fl_merge_methods(Task_methods, fl_state->future_type->tp_methods);
    PyGetSetDef *getset =
        fl_merge_getset(Task_getset, fl_state->future_type->tp_getset);
    if (methods == NULL || getset == NULL) {
        return -1;
    }
    fl_set_slot(Task_slots, Py_tp_methods, methods);
    fl_set_slot(Task_slots, Py_tp_getset, getset);
    fl_set_slot(Task_slots, Py_tp_new, fl_state->future_type->tp_new);
    fl_set_slot(Task_slots, Py_tp_iter, fl_state->future_type->tp_iter);
    fl_set_slot(Task_slots, Py_am_await,
                fl_state->future_type->tp_as_async->am_await);
    fl_state->task_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &Task_spec, (PyObject *)fl_state->asyncio_task_type);
    if (fl_state->task_type == NULL) {
        return -1;
    }
    fl_state->task_type->tp_vectorcall = Task_vectorcall;
    if (PyModule_AddObjectRef(module, "Task",
                              (PyObject *)fl_state->task_type) < 0) {
        return -1;
    }
    return 0;
}
