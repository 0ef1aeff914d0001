/* io.c: watched fds: the watch table, the C watch API, and
 * add_reader/add_writer and friends.
 *
 * Each watched fd gets one fl_io_watch holding, per direction, what to
 * queue when the fd is ready: a Python Handle (add_reader/add_writer), or
 * a C callback and its object (fl_io_start, for the transports), queued as
 * a plain ready-queue entry with no Handle and no Python call.  Watches
 * live in an array indexed by fd, so lookup is O(1).  Semantics follow
 * asyncio's selector loop: level-triggered; a replaced handle is
 * cancelled; a cancelled handle found ready is unregistered instead of run.
 *
 * The backend that tells the kernel what to watch and reports readiness
 * is behind io_backend.h: io_epoll.c (fastloop's own epoll set, the default
 * on Linux) or io_libev.c (one ev_io per fd and direction, for systems
 * without epoll, or when FASTLOOP_IO_BACKEND=libev; tests run both).
 */
#include "io_backend.h"
#include "handle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What fileobj_to_fd returns for a valid fd number that no C int holds
 * (no exception set): add_reader raises OverflowError for it, as the
 * selector's register() does; remove_reader finds nothing to remove. */
#define FL_FD_TOO_LARGE (-2)

/* selectors._fileobj_to_fd: an int, or an object with fileno().  The fd,
 * FL_FD_TOO_LARGE, or -1 with an exception set. */
static int
fileobj_to_fd(PyObject *fileobj)
{
    PyObject *as_int;
    if (PyLong_Check(fileobj)) {
        as_int = Py_NewRef(fileobj);
    } else {
        PyObject *res = PyObject_CallMethod(fileobj, "fileno", NULL);
        as_int = res ? PyNumber_Long(res) : NULL;
        Py_XDECREF(res);
        if (as_int == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
                PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R",
                             fileobj);
            }
            return -1;
        }
    }
    int overflow;
    long fd = PyLong_AsLongAndOverflow(as_int, &overflow);
    if (fd == -1 && PyErr_Occurred()) {
        Py_DECREF(as_int);
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && fd < 0)) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %R", as_int);
        Py_DECREF(as_int);
        return -1;
    }
    Py_DECREF(as_int);
    return overflow > 0 || fd > INT_MAX ? FL_FD_TOO_LARGE : (int)fd;
}

/* add_reader/add_writer's fd: as fileobj_to_fd, with OverflowError for a
 * number too large for a C int. */
static int
fileobj_to_fd_for_add(PyObject *fileobj)
{
    int fd = fileobj_to_fd(fileobj);
    if (fd == FL_FD_TOO_LARGE) {
        PyErr_SetString(PyExc_OverflowError,
                        "Python int too large to convert to C int");
        return -1;
    }
    return fd;
}

/* Raise what registering `fd` with epoll would: OSError(EBADF) for a
 * closed fd, PermissionError(EPERM) for regular files and directories. */
static int
check_pollable(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        errno = EPERM;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static fl_io_watch *
watch_for_fd(FLLoop *loop, int fd)
{
    return fl_io_watch_for_fd(loop, fd);
}

/* The object a watch queues for one direction (a Handle, or a C
 * callback's object), and its slot. */
static PyObject **
handle_slot(fl_io_watch *watch, int is_read)
{
    return is_read ? &watch->reader : &watch->writer;
}

/* The C callback of one direction's slot: NULL when it holds a Handle. */
static fl_ready_fn *
fn_slot(fl_io_watch *watch, int is_read)
{
    return is_read ? &watch->reader_fn : &watch->writer_fn;
}

/* Releases what a slot held, once no watch refers to it any more: a
 * Handle is cancelled first, as asyncio's selector loop does. */
static void
release_slot_object(PyObject *obj, fl_ready_fn fn)
{
    if (obj == NULL) {
        return;
    }
    if (fn == NULL) {
        fl_handle_cancel((FLHandle *)obj);
    }
    Py_DECREF(obj);
}

static int
dropped_grow(FLLoop *loop)
{
    Py_ssize_t cap = loop->io_dropped_cap ? loop->io_dropped_cap * 2 : 8;
    PyObject **dropped =
        PyMem_Realloc(loop->io_dropped, cap * sizeof(PyObject *));
    if (dropped == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    loop->io_dropped = dropped;
    loop->io_dropped_cap = cap;
    return 0;
}

void
fl_io_release_dropped_slow(FLLoop *loop)
{
    /* Detach the list first: the code a release runs may poll again (a
     * nested _run_once) and drop more. */
    PyObject **dropped = loop->io_dropped;
    Py_ssize_t n = loop->io_ndropped;
    loop->io_dropped = NULL;
    loop->io_ndropped = loop->io_dropped_cap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(dropped[i]);
    }
    PyMem_Free(dropped);
}

/* Queues what `watch` wants for a ready direction: its C callback, or its
 * handle.  A cancelled handle is dropped instead: asyncio unregisters it
 * the first time its fd is ready.  Its reference moves to the loop's
 * dropped list, released after the poll: releasing it here could run code
 * that frees this watch.  1 when a handle was dropped (the registration
 * must follow), 0, or -1 with MemoryError set. */
static inline int
queue_or_drop(FLLoop *loop, fl_io_watch *watch, int is_read)
{
    PyObject **slot = handle_slot(watch, is_read);
    if (*slot == NULL) {
        return 0;
    }
    fl_ready_fn fn = is_read ? watch->reader_fn : watch->writer_fn;
    if (fn != NULL) {
        return fl_loop_enqueue(loop, fn, *slot, NULL);
    }
    assert(PyObject_TypeCheck(*slot, fl_state->handle_type));
    if (((FLHandle *)*slot)->cancelled) {
        if (loop->io_ndropped == loop->io_dropped_cap &&
            dropped_grow(loop) < 0) {
            return -1;
        }
        loop->io_dropped[loop->io_ndropped++] = *slot;
        *slot = NULL;
        return 1;
    }
    return fl_loop_enqueue_handle(loop, (FLHandle *)*slot);
}

static void
release_watch_if_idle(FLLoop *loop, fl_io_watch *watch)
{
    assert(watch->fd >= 0 && watch->fd < loop->io_cap);
    assert(loop->io[watch->fd] == watch && watch->loop == loop);
    if (watch->reader == NULL && watch->writer == NULL) {
        /* Neither direction is watched any more (both ev_io stopped, no
         * epoll registration): nothing refers to the struct. */
        assert(!ev_is_active(&watch->rio) && !ev_is_active(&watch->wio));
        assert(watch->epoll_tag == 0);
        loop->io[watch->fd] = NULL;
        PyMem_Free(watch);
    }
}

int
fl_io_dispatch_slow(FLLoop *loop, fl_io_watch *watch, int read, int write)
{
    int rc = 0, dropped = 0;
    if (read) {
        rc = queue_or_drop(loop, watch, 1);
        dropped |= rc > 0;
    }
    if (write && rc >= 0) {
        rc = queue_or_drop(loop, watch, 0);
        dropped |= rc > 0;
    }
    if (dropped) {
        /* Even after an error: the registration must follow the slots. */
        if (loop->iob->apply(loop, watch, 0) < 0) {
            rc = -1;
        }
        release_watch_if_idle(loop, watch);
    }
    return rc < 0 ? -1 : 0;
}

/* ---- the backend ------------------------------------------------------ */

/* Makes the backend watch each direction of `watch` that has a slot set,
 * and only those.  `rearm`: register the fd afresh even where nothing
 * changed, in case its number was closed and reused.  0, or -1 with
 * OSError set. */
static int
apply_interest(FLLoop *loop, fl_io_watch *watch, int rearm)
{
    return loop->iob->apply(loop, watch, rearm);
}

int
fl_io_open(FLLoop *loop)
{
    loop->epfd = -1;
    loop->iob = &fl_io_backend_libev;
#ifdef FL_HAVE_EPOLL
    const char *backend = getenv("FASTLOOP_IO_BACKEND");
    if (backend == NULL || strcmp(backend, "libev") != 0) {
        loop->iob = &fl_io_backend_epoll;
    }
#endif
    if (loop->iob->open(loop) < 0) {
        loop->iob = NULL;
        return -1;
    }
    return 0;
}

PyObject *
fl_io_backend_name(FLLoop *loop, void *Py_UNUSED(closure))
{
    if (fl_loop_check_init(loop) < 0) {
        return NULL;
    }
    /* A closed loop still says which backend it had. */
    return PyUnicode_FromString(loop->iob->name);
}

int
fl_io_poll(FLLoop *loop, double timeout)
{
    return loop->iob->poll(loop, timeout);
}

void
fl_io_wakeup(FLLoop *loop)
{
    if (fl_loop_usable(loop) && loop->iob != NULL) {
        loop->iob->wakeup(loop);
    }
}

static fl_io_watch *
ensure_watch(FLLoop *loop, int fd)
{
    if (fd >= loop->io_cap) {
        Py_ssize_t new_cap = loop->io_cap ? loop->io_cap : 64;
        while (new_cap <= fd) {
            new_cap *= 2;
        }
        fl_io_watch **io =
            PyMem_Realloc(loop->io, new_cap * sizeof(fl_io_watch *));
        if (io == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (Py_ssize_t i = loop->io_cap; i < new_cap; i++) {
            io[i] = NULL;
        }
        loop->io = io;
        loop->io_cap = new_cap;
    }
    fl_io_watch *watch = loop->io[fd];
    if (watch == NULL) {
        watch = PyMem_Calloc(1, sizeof(fl_io_watch));
        if (watch == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        watch->loop = loop;
        watch->fd = fd;
        loop->io[fd] = watch;
    }
    return watch;
}

/* ---- the C watch API ------------------------------------------------ */

int
fl_io_start(FLLoop *loop, int fd, int events, fl_ready_fn fn, PyObject *obj)
{
    assert(fn != NULL && obj != NULL && fd >= 0);
    assert((events & ~(FL_IO_READ | FL_IO_WRITE)) == 0);
    if (fl_loop_check_closed(loop) < 0) {
        return -1;
    }
    fl_io_watch *watch = ensure_watch(loop, fd);
    if (watch == NULL) {
        return -1;
    }
    PyObject *old[2] = {NULL, NULL};
    fl_ready_fn old_fn[2] = {NULL, NULL};
    int replaced[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        int is_read = i == 0;
        PyObject **slot = handle_slot(watch, is_read);
        fl_ready_fn *fnp = fn_slot(watch, is_read);
        if (!(events & (is_read ? FL_IO_READ : FL_IO_WRITE)) ||
            (*slot == obj && *fnp == fn)) {
            continue; /* not asked for, or already watching */
        }
        replaced[i] = 1;
        old[i] = *slot;
        old_fn[i] = *fnp;
        *slot = Py_NewRef(obj);
        *fnp = fn;
    }
    if (!replaced[0] && !replaced[1]) {
        return 0;
    }
    /* Registered afresh: the fd number may have been closed and reused
     * since the last registration. */
    if (apply_interest(loop, watch, 1) < 0) {
        /* Leave things as they were. */
        for (int i = 0; i < 2; i++) {
            if (replaced[i]) {
                PyObject **slot = handle_slot(watch, i == 0);
                Py_DECREF(*slot); /* not the last: the caller holds obj */
                *slot = old[i];
                *fn_slot(watch, i == 0) = old_fn[i];
            }
        }
        release_watch_if_idle(loop, watch);
        return -1;
    }
    release_slot_object(old[0], old_fn[0]);
    release_slot_object(old[1], old_fn[1]);
    return 0;
}

int
fl_io_stop(FLLoop *loop, int fd, int events, fl_ready_fn fn, PyObject *obj)
{
    assert((events & ~(FL_IO_READ | FL_IO_WRITE)) == 0);
    if (!fl_loop_usable(loop)) {
        return 0; /* closed: every watch is gone */
    }
    fl_io_watch *watch = watch_for_fd(loop, fd);
    if (watch == NULL) {
        return 0;
    }
    PyObject *old[2] = {NULL, NULL};
    fl_ready_fn old_fn[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        int is_read = i == 0;
        if (!(events & (is_read ? FL_IO_READ : FL_IO_WRITE))) {
            continue;
        }
        PyObject **slot = handle_slot(watch, is_read);
        fl_ready_fn *fnp = fn_slot(watch, is_read);
        if (*slot == NULL || (fn != NULL && (*fnp != fn || *slot != obj))) {
            continue;
        }
        old[i] = *slot;
        old_fn[i] = *fnp;
        *slot = NULL;
        *fnp = NULL;
    }
    if (old[0] == NULL && old[1] == NULL) {
        return 0;
    }
    int rc = apply_interest(loop, watch, 0);
    release_watch_if_idle(loop, watch);
    release_slot_object(old[0], old_fn[0]);
    release_slot_object(old[1], old_fn[1]);
    return rc;
}

int
fl_io_is_watching(FLLoop *loop, int fd, int event, fl_ready_fn fn,
                  PyObject *obj)
{
    fl_io_watch *watch = watch_for_fd(loop, fd);
    if (watch == NULL) {
        return 0;
    }
    int is_read = event == FL_IO_READ;
    return *handle_slot(watch, is_read) == obj &&
           *fn_slot(watch, is_read) == fn;
}

/* add_reader(fd, callback, *args): a missing argument is a TypeError, as
 * for asyncio's signature, before anything looks at the fd. */
static int
check_add_args(int is_read, Py_ssize_t nargs)
{
    const char *name = is_read ? "add_reader" : "add_writer";
    if (nargs == 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 2 required positional arguments: 'fd' "
                     "and 'callback'",
                     name);
        return -1;
    }
    if (nargs == 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: "
                     "'callback'",
                     name);
        return -1;
    }
    return 0;
}

/* Shared body of _add_reader/_add_writer.  Returns the new Handle, whose
 * callback runs in `context` (borrowed; NULL or None: a copy of the current
 * one). */
static PyObject *
add_watch(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs,
          PyObject *context, int is_read)
{
    if (check_add_args(is_read, nargs) < 0 || fl_loop_check_closed(loop) < 0) {
        return NULL;
    }
    int fd = fileobj_to_fd_for_add(args[0]);
    /* fileno() is Python code, which may have closed the loop. */
    if (fd < 0 || fl_loop_check_closed(loop) < 0 || check_pollable(fd) < 0) {
        return NULL;
    }
    PyObject *cargs = PyTuple_New(nargs - 2);
    if (cargs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 2; i < nargs; i++) {
        PyTuple_SET_ITEM(cargs, i - 2, Py_NewRef(args[i]));
    }
    FLHandle *handle = fl_handle_new(fl_state->handle_type, (PyObject *)loop,
                                     args[1], cargs, context);
    Py_DECREF(cargs);
    if (handle == NULL) {
        return NULL;
    }
    fl_io_watch *watch = ensure_watch(loop, fd);
    if (watch == NULL) {
        Py_DECREF(handle);
        return NULL;
    }
    PyObject **slot = handle_slot(watch, is_read);
    fl_ready_fn *fn = fn_slot(watch, is_read);
    PyObject *old = *slot;
    fl_ready_fn old_fn = *fn;
    *slot = Py_NewRef((PyObject *)handle);
    *fn = NULL;
    /* Registered afresh: the fd number may have been closed and reused
     * since the last registration. */
    if (apply_interest(loop, watch, 1) < 0) {
        /* Leave things as they were. */
        Py_SETREF(*slot, old);
        *fn = old_fn;
        release_watch_if_idle(loop, watch);
        Py_DECREF(handle);
        return NULL;
    }
    release_slot_object(old, old_fn);
    return (PyObject *)handle;
}

/* Shared body of _remove_reader/_remove_writer. */
static PyObject *
remove_watch(FLLoop *loop, PyObject *fileobj, int is_read)
{
    if (fl_loop_check_init(loop) < 0) {
        return NULL;
    }
    if (!fl_loop_usable(loop)) {
        Py_RETURN_FALSE; /* closed: as asyncio */
    }
    int fd = fileobj_to_fd(fileobj);
    if (fd == -1) {
        return NULL;
    }
    if (fd == FL_FD_TOO_LARGE || !fl_loop_usable(loop)) {
        Py_RETURN_FALSE; /* never watched; or fileno() closed the loop */
    }
    fl_io_watch *watch = watch_for_fd(loop, fd);
    if (watch == NULL) {
        Py_RETURN_FALSE;
    }
    PyObject **slot = handle_slot(watch, is_read);
    fl_ready_fn *fn = fn_slot(watch, is_read);
    PyObject *old = *slot;
    fl_ready_fn old_fn = *fn;
    if (old == NULL) {
        Py_RETURN_FALSE; /* nothing watched that way: nothing to change */
    }
    *slot = NULL;
    *fn = NULL;
    int rc = apply_interest(loop, watch, 0);
    release_watch_if_idle(loop, watch);
    release_slot_object(old, old_fn);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* The public methods refuse fds owned by a transport, as asyncio does. */
static int
ensure_no_transport(FLLoop *loop, PyObject *fileobj)
{
    PyObject *res = PyObject_CallMethodOneArg(
        (PyObject *)loop, fl_state->str_ensure_fd_no_transport, fileobj);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* _add_reader/_add_writer(fd, callback, *args, context=None): the
 * transports of asyncio 3.15+ pass the context their callbacks run in. */
static PyObject *
add_private(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames, int is_read)
{
    PyObject *context = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(key, "context") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         is_read ? "_add_reader" : "_add_writer", key);
            return NULL;
        }
        context = args[nargs + i];
    }
    return add_watch(loop, args, nargs, context, is_read);
}

PyObject *
fl_io_add_reader_private(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    return add_private(loop, args, nargs, kwnames, 1);
}

PyObject *
fl_io_add_writer_private(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    return add_private(loop, args, nargs, kwnames, 0);
}

static PyObject *
add_public(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs, int is_read)
{
    if (fl_loop_check_init(loop) < 0 || check_add_args(is_read, nargs) < 0 ||
        ensure_no_transport(loop, args[0]) < 0) {
        return NULL;
    }
    PyObject *handle = add_watch(loop, args, nargs, NULL, is_read);
    if (handle == NULL) {
        return NULL;
    }
    Py_DECREF(handle);
    Py_RETURN_NONE;
}

PyObject *
fl_io_add_reader(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    return add_public(loop, args, nargs, 1);
}

PyObject *
fl_io_add_writer(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    return add_public(loop, args, nargs, 0);
}

PyObject *
fl_io_remove_reader_private(FLLoop *loop, PyObject *fileobj)
{
    return remove_watch(loop, fileobj, 1);
}

PyObject *
fl_io_remove_writer_private(FLLoop *loop, PyObject *fileobj)
{
    return remove_watch(loop, fileobj, 0);
}

PyObject *
fl_io_remove_reader(FLLoop *loop, PyObject *fileobj)
{
    if (fl_loop_check_init(loop) < 0 ||
        ensure_no_transport(loop, fileobj) < 0) {
        return NULL;
    }
    return remove_watch(loop, fileobj, 1);
}

PyObject *
fl_io_remove_writer(FLLoop *loop, PyObject *fileobj)
{
    if (fl_loop_check_init(loop) < 0 ||
        ensure_no_transport(loop, fileobj) < 0) {
        return NULL;
    }
    return remove_watch(loop, fileobj, 0);
}

PyObject *
fl_io_events(FLLoop *loop, PyObject *fileobj)
{
    if (fl_loop_check_init(loop) < 0) {
        return NULL;
    }
    int fd = fileobj_to_fd(fileobj);
    if (fd == -1) {
        return NULL;
    }
    fl_io_watch *watch = watch_for_fd(loop, fd); /* NULL if too large */
    long mask = 0;
    if (watch != NULL) {
        mask = (watch->reader ? 1 : 0) | (watch->writer ? 2 : 0);
    }
    return PyLong_FromLong(mask);
}

void
fl_io_clear_all(FLLoop *loop)
{
    for (Py_ssize_t fd = 0; fd < loop->io_cap; fd++) {
        fl_io_watch *watch = loop->io[fd];
        if (watch == NULL) {
            continue;
        }
        /* The epoll set goes with its fd (fl_io_close); removing fds from
         * it one by one would also remove them for a forked child's parent,
         * which shares the set. */
        if (loop->iob != NULL) {
            loop->iob->forget(loop, watch);
        }
        /* Unlink and free the watch before releasing its handles, whose
         * last references may run code that uses the table. */
        PyObject *reader = watch->reader, *writer = watch->writer;
        loop->io[fd] = NULL;
        PyMem_Free(watch);
        Py_XDECREF(reader);
        Py_XDECREF(writer);
    }
    fl_io_release_dropped(loop);
}

void
fl_io_close(FLLoop *loop)
{
    fl_io_clear_all(loop);
    if (loop->iob != NULL) {
        loop->iob->close(loop);
    }
}

int
fl_io_traverse(FLLoop *loop, visitproc visit, void *arg)
{
    for (Py_ssize_t fd = 0; fd < loop->io_cap; fd++) {
        fl_io_watch *watch = loop->io[fd];
        if (watch != NULL) {
            Py_VISIT(watch->reader);
            Py_VISIT(watch->writer);
        }
    }
    for (Py_ssize_t i = 0; i < loop->io_ndropped; i++) {
        Py_VISIT(loop->io_dropped[i]);
    }
    return 0;
}

#define FL_IO_FASTCALL(fn) (PyCFunction)(void (*)(void))(fn)

PyMethodDef fl_io_loop_methods[] = {
    {"add_reader", FL_IO_FASTCALL(fl_io_add_reader), METH_FASTCALL,
     "add_reader(fd, callback, *args): call callback when fd is readable."},
    {"_add_reader", FL_IO_FASTCALL(fl_io_add_reader_private),
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_reader", (PyCFunction)fl_io_remove_reader, METH_O,
     "Stop watching fd for reading; True if it was watched."},
    {"_remove_reader", (PyCFunction)fl_io_remove_reader_private, METH_O, NULL},
    {"add_writer", FL_IO_FASTCALL(fl_io_add_writer), METH_FASTCALL,
     "add_writer(fd, callback, *args): call callback when fd is "
     "writable."},
    {"_add_writer", FL_IO_FASTCALL(fl_io_add_writer_private),
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_writer", (PyCFunction)fl_io_remove_writer, METH_O,
     "Stop watching fd for writing; True if it was watched."},
    {"_remove_writer", (PyCFunction)fl_io_remove_writer_private, METH_O, NULL},
    {"_io_events", (PyCFunction)fl_io_events, METH_O,
     "Selector-style event mask (1 read, 2 write) watched on fd."},
    {NULL, NULL, 0, NULL},
};
