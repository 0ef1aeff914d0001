/* io.c: add_reader/add_writer and friends on libev io watchers.
 *
 * Each watched fd gets one fl_io_watch holding a read and a write ev_io and
 * the Handle each queues when libev reports the fd ready.  Watches live in
 * an array indexed by fd, so lookup is O(1).  Semantics follow asyncio's
 * selector loop: level-triggered; a replaced handle is cancelled; a
 * cancelled handle found ready is unregistered instead of run.
 */
#include "io.h"
#include "handle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

static PyObject *str_ensure_fd_no_transport; /* "_ensure_fd_no_transport" */

/* selectors._fileobj_to_fd: an int, or an object with fileno(). */
static int
fileobj_to_fd(PyObject *fileobj)
{
    long fd;
    if (PyLong_Check(fileobj)) {
        fd = PyLong_AsLong(fileobj);
        if (fd == -1 && PyErr_Occurred()) {
            return -1;
        }
    } else {
        PyObject *res = PyObject_CallMethod(fileobj, "fileno", NULL);
        PyObject *as_int = res ? PyNumber_Long(res) : NULL;
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
        fd = PyLong_AsLong(as_int);
        Py_DECREF(as_int);
        if (fd == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    return (int)fd;
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
lookup_watch(FLLoop *loop, int fd)
{
    if (fd < loop->io_cap) {
        return loop->io[fd];
    }
    return NULL;
}

static void
io_ready_cb(struct ev_loop *evloop, ev_io *w, int revents)
{
    fl_io_watch *watch = w->data;
    FLLoop *loop = watch->loop;
    int is_read = w == &watch->rio;
    PyObject *handle = is_read ? watch->reader : watch->writer;
    if (handle == NULL) {
        return;
    }
    if (((FLHandle *)handle)->cancelled) {
        /* asyncio unregisters a cancelled handle the first time its fd is
         * ready. */
        ev_io_stop(evloop, w);
        if (is_read) {
            Py_CLEAR(watch->reader);
        } else {
            Py_CLEAR(watch->writer);
        }
        return;
    }
    if (fl_loop_enqueue_handle(loop, (FLHandle *)handle) < 0) {
        /* MemoryError stays set; the run loop checks after the poll. */
        ev_break(evloop, EVBREAK_ONE);
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
        ev_io_init(&watch->rio, io_ready_cb, fd, EV_READ);
        ev_io_init(&watch->wio, io_ready_cb, fd, EV_WRITE);
        watch->rio.data = watch;
        watch->wio.data = watch;
        loop->io[fd] = watch;
    }
    return watch;
}

static void
release_watch_if_idle(FLLoop *loop, fl_io_watch *watch)
{
    if (watch->reader == NULL && watch->writer == NULL) {
        loop->io[watch->fd] = NULL;
        PyMem_Free(watch);
    }
}

/* Shared body of _add_reader/_add_writer.  Returns the new Handle. */
static PyObject *
add_watch(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs, int is_read)
{
    const char *name = is_read ? "add_reader" : "add_writer";
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required arguments 'fd' and 'callback'",
                     name);
        return NULL;
    }
    if (fl_loop_check_closed(loop) < 0) {
        return NULL;
    }
    int fd = fileobj_to_fd(args[0]);
    if (fd < 0 || check_pollable(fd) < 0) {
        return NULL;
    }
    PyObject *cargs = PyTuple_New(nargs - 2);
    if (cargs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 2; i < nargs; i++) {
        PyTuple_SET_ITEM(cargs, i - 2, Py_NewRef(args[i]));
    }
    FLHandle *handle =
        fl_handle_new(&FLHandle_Type, (PyObject *)loop, args[1], cargs, NULL);
    Py_DECREF(cargs);
    if (handle == NULL) {
        return NULL;
    }
    fl_io_watch *watch = ensure_watch(loop, fd);
    if (watch == NULL) {
        Py_DECREF(handle);
        return NULL;
    }
    ev_io *w = is_read ? &watch->rio : &watch->wio;
    PyObject **slot = is_read ? &watch->reader : &watch->writer;
    PyObject *old = *slot;
    *slot = Py_NewRef((PyObject *)handle);
    /* Re-arm: the fd number may have been closed and reused meanwhile. */
    ev_io_stop(loop->evloop, w);
    ev_io_set(w, fd, is_read ? EV_READ : EV_WRITE);
    ev_io_start(loop->evloop, w);
    if (old != NULL) {
        fl_handle_cancel((FLHandle *)old);
        Py_DECREF(old);
    }
    return (PyObject *)handle;
}

/* Shared body of _remove_reader/_remove_writer. */
static PyObject *
remove_watch(FLLoop *loop, PyObject *fileobj, int is_read)
{
    if (loop->closed) {
        Py_RETURN_FALSE;
    }
    int fd = fileobj_to_fd(fileobj);
    if (fd < 0) {
        return NULL;
    }
    fl_io_watch *watch = lookup_watch(loop, fd);
    if (watch == NULL) {
        Py_RETURN_FALSE;
    }
    PyObject **slot = is_read ? &watch->reader : &watch->writer;
    ev_io_stop(loop->evloop, is_read ? &watch->rio : &watch->wio);
    PyObject *old = *slot;
    *slot = NULL;
    release_watch_if_idle(loop, watch);
    if (old == NULL) {
        Py_RETURN_FALSE;
    }
    fl_handle_cancel((FLHandle *)old);
    Py_DECREF(old);
    Py_RETURN_TRUE;
}

/* The public methods refuse fds owned by a transport, as asyncio does. */
static int
ensure_no_transport(FLLoop *loop, PyObject *fileobj)
{
    PyObject *res = PyObject_CallMethodOneArg(
        (PyObject *)loop, str_ensure_fd_no_transport, fileobj);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

PyObject *
fl_io_add_reader_private(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    return add_watch(loop, args, nargs, 1);
}

PyObject *
fl_io_add_writer_private(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    return add_watch(loop, args, nargs, 0);
}

static PyObject *
add_public(FLLoop *loop, PyObject *const *args, Py_ssize_t nargs, int is_read)
{
    if (nargs >= 1 && ensure_no_transport(loop, args[0]) < 0) {
        return NULL;
    }
    PyObject *handle = add_watch(loop, args, nargs, is_read);
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
    if (ensure_no_transport(loop, fileobj) < 0) {
        return NULL;
    }
    return remove_watch(loop, fileobj, 1);
}

PyObject *
fl_io_remove_writer(FLLoop *loop, PyObject *fileobj)
{
    if (ensure_no_transport(loop, fileobj) < 0) {
        return NULL;
    }
    return remove_watch(loop, fileobj, 0);
}

PyObject *
fl_io_events(FLLoop *loop, PyObject *fileobj)
{
    int fd = fileobj_to_fd(fileobj);
    if (fd < 0) {
        return NULL;
    }
    fl_io_watch *watch = lookup_watch(loop, fd);
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
        if (loop->evloop != NULL) {
            ev_io_stop(loop->evloop, &watch->rio);
            ev_io_stop(loop->evloop, &watch->wio);
        }
        loop->io[fd] = NULL;
        Py_XDECREF(watch->reader);
        Py_XDECREF(watch->writer);
        PyMem_Free(watch);
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
    return 0;
}

int
fl_io_init(PyObject *module)
{
    str_ensure_fd_no_transport =
        PyUnicode_InternFromString("_ensure_fd_no_transport");
    return str_ensure_fd_no_transport == NULL ? -1 : 0;
}
