/* io.c: add_reader/add_writer and friends: which fds are watched, and
 * how their readiness reaches the ready queue.
 *
 * Each watched fd gets one fl_io_watch holding the Handle to queue when the
 * fd is readable and the one for writable.  Watches live in an array
 * indexed by fd, so lookup is O(1).  Semantics follow asyncio's selector
 * loop: level-triggered; a replaced handle is cancelled; a cancelled handle
 * found ready is unregistered instead of run.
 *
 * Two backends report readiness:
 *  - epoll (Linux): fastloop keeps its own epoll set of the watched fds.
 *    libev watches that set's fd like any other fd, so a blocking poll is
 *    still libev's; but a loop that polls without blocking (it has work
 *    queued, or its last poll found events) reads the set directly, without
 *    a libev pass, which costs more than the rest of such an iteration.
 *  - libev: one ev_io per fd and direction, for systems without epoll, or
 *    when FASTLOOP_IO_BACKEND=libev (tests run both).
 */
#include "io.h"
#include "handle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#define FL_HAVE_EPOLL 1
#endif

static PyObject *str_ensure_fd_no_transport; /* "_ensure_fd_no_transport" */

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
    if (fd >= 0 && fd < loop->io_cap) {
        return loop->io[fd];
    }
    return NULL;
}

/* The handle a watch queues for one direction, and its slot. */
static PyObject **
handle_slot(fl_io_watch *watch, int is_read)
{
    return is_read ? &watch->reader : &watch->writer;
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

/* Queues the handle of `watch` for a ready direction.  A cancelled handle
 * is dropped instead: asyncio unregisters it the first time its fd is
 * ready.  Its reference moves to the loop's dropped list, released after
 * the poll: releasing it here could run code that frees this watch.  1
 * when a handle was dropped (the registration must follow), 0, or -1 with
 * MemoryError set. */
static inline int
queue_or_drop(FLLoop *loop, fl_io_watch *watch, int is_read)
{
    PyObject **slot = handle_slot(watch, is_read);
    if (*slot == NULL) {
        return 0;
    }
    assert(PyObject_TypeCheck(*slot, &FLHandle_Type));
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

/* ---- libev backend: one ev_io per fd and direction ------------------- */

static int apply_interest(FLLoop *loop, fl_io_watch *watch, int rearm);

static void
libev_ready_cb(struct ev_loop *evloop, ev_io *w, int revents)
{
    fl_io_watch *watch = w->data;
    FLLoop *loop = watch->loop;
    assert(loop->io[watch->fd] == watch);
    /* No Python code runs here (a dropped handle is released after the
     * poll), so `watch` stays valid throughout. */
    int rc = queue_or_drop(loop, watch, w == &watch->rio);
    if (rc > 0) {
        rc = apply_interest(loop, watch, 0);
        release_watch_if_idle(loop, watch);
    }
    if (rc < 0) {
        /* The exception stays set; the run loop checks after the poll. */
        ev_break(evloop, EVBREAK_ONE);
    }
}

/* Starts the watcher of each direction that has a handle, stops the
 * others.  `rearm` restarts running ones too: libev then registers the fd
 * afresh, in case its number was closed and reused meanwhile. */
static void
libev_apply(FLLoop *loop, fl_io_watch *watch, int rearm)
{
    ev_io *watchers[2] = {&watch->rio, &watch->wio};
    PyObject *handles[2] = {watch->reader, watch->writer};
    for (int i = 0; i < 2; i++) {
        ev_io *w = watchers[i];
        if (handles[i] == NULL || rearm) {
            ev_io_stop(loop->evloop, w);
        }
        if (handles[i] != NULL && !ev_is_active(w)) {
            ev_io_set(w, watch->fd, i == 0 ? EV_READ : EV_WRITE);
            ev_io_start(loop->evloop, w);
        }
    }
}

/* ---- epoll backend: fastloop's own epoll set --------------------------
 *
 * Each registration's data holds the fd and a tag unique to that
 * registration.  The tag catches the one case epoll gets wrong: an fd
 * closed while another descriptor still refers to its file (a dup, a
 * child process) stays in the set under its old number, and once the
 * number is reused its events would look like the new file's.  An event
 * whose tag is not the watch's current one means that happened; the set is
 * then rebuilt from the watch table (libev does the same). */

#ifdef FL_HAVE_EPOLL

static uint64_t
epoll_data(int fd, uint32_t tag)
{
    return (uint64_t)(uint32_t)fd | ((uint64_t)tag << 32);
}

/* (Re)registers the watch with the interest its handles want.  0, or -1
 * with OSError set. */
static int
epoll_apply(FLLoop *loop, fl_io_watch *watch)
{
    uint32_t want =
        (watch->reader ? EPOLLIN : 0) | (watch->writer ? EPOLLOUT : 0);
    if (want == 0) {
        if (watch->epoll_tag != 0) {
            watch->epoll_tag = 0;
            loop->epoll_nregistered--;
            /* ENOENT, EBADF: the fd was closed, which unregistered it. */
            if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, watch->fd, NULL) < 0 &&
                errno != ENOENT && errno != EBADF) {
                PyErr_SetFromErrno(PyExc_OSError);
                return -1;
            }
        }
        return 0;
    }
    struct epoll_event ev = {.events = want};
    if (watch->epoll_tag != 0) {
        ev.data.u64 = epoll_data(watch->fd, watch->epoll_tag);
        if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, watch->fd, &ev) == 0) {
            return 0;
        }
        if (errno != ENOENT) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        /* Closed and reused since it was registered: register afresh. */
        watch->epoll_tag = 0;
        loop->epoll_nregistered--;
    }
    uint32_t tag = ++loop->epoll_last_tag;
    if (tag == 0) {
        tag = ++loop->epoll_last_tag;
    }
    ev.data.u64 = epoll_data(watch->fd, tag);
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, watch->fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    watch->epoll_tag = tag;
    loop->epoll_nregistered++;
    return 0;
}

static void epoll_set_ready_cb(struct ev_loop *evloop, ev_io *w, int revents);

/* Replaces the epoll set by a new one holding every watch (see above). */
static int
epoll_rebuild(FLLoop *loop)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    ev_io_stop(loop->evloop, &loop->epoll_watcher);
    close(loop->epfd);
    loop->epfd = epfd;
    ev_io_set(&loop->epoll_watcher, epfd, EV_READ);
    ev_io_start(loop->evloop, &loop->epoll_watcher);
    loop->epoll_nregistered = 0;
    for (Py_ssize_t fd = 0; fd < loop->io_cap; fd++) {
        fl_io_watch *watch = loop->io[fd];
        if (watch != NULL) {
            watch->epoll_tag = 0;
            if (epoll_apply(loop, watch) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* The directions an epoll event makes ready, as asyncio's EpollSelector
 * reads them: errors and hang-ups wake both, so that a callback finds out
 * by reading or writing. */
static void
ready_directions(uint32_t events, int *read, int *write)
{
    *read = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
    *write = (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0;
}

/* Queues the handles of the fds that are ready now, in asyncio's order:
 * as epoll lists them, a reader before a writer.  0, or -1 with an
 * exception set. */
static inline Py_ALWAYS_INLINE int
epoll_dispatch(FLLoop *loop)
{
    if (loop->epoll_events_cap < loop->epoll_nregistered ||
        loop->epoll_events_cap == 0) {
        int cap = loop->epoll_nregistered < 64 ? 64 : loop->epoll_nregistered;
        struct epoll_event *events =
            PyMem_Realloc(loop->epoll_events, cap * sizeof(*events));
        if (events == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        loop->epoll_events = events;
        loop->epoll_events_cap = cap;
    }
    int n =
        epoll_wait(loop->epfd, loop->epoll_events, loop->epoll_events_cap, 0);
    if (n < 0) {
        if (errno == EINTR) {
            return 0;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int stale = 0;
    for (int i = 0; i < n; i++) {
        uint64_t data = loop->epoll_events[i].data.u64;
        fl_io_watch *watch = watch_for_fd(loop, (int)(uint32_t)data);
        if (watch == NULL || watch->epoll_tag != (uint32_t)(data >> 32)) {
            stale = 1;
            continue;
        }
        /* No Python code runs until the dispatch is over (a dropped handle
         * is released after the poll): `watch` and the event buffer stay
         * valid for both directions. */
        int read, write, dropped = 0, rc = 0;
        ready_directions(loop->epoll_events[i].events, &read, &write);
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
            if (epoll_apply(loop, watch) < 0) {
                rc = -1;
            }
            release_watch_if_idle(loop, watch);
        }
        if (rc < 0) {
            return -1;
        }
    }
    return stale ? epoll_rebuild(loop) : 0;
}

/* libev found the epoll set readable during a blocking poll. */
static void
epoll_set_ready_cb(struct ev_loop *evloop, ev_io *w, int revents)
{
    FLLoop *loop = ev_userdata(evloop);
    if (epoll_dispatch(loop) < 0) {
        ev_break(evloop, EVBREAK_ONE);
    }
}

static int
epoll_open(FLLoop *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    ev_io_init(&loop->epoll_watcher, epoll_set_ready_cb, loop->epfd, EV_READ);
    ev_io_start(loop->evloop, &loop->epoll_watcher);
    return 0;
}

#endif /* FL_HAVE_EPOLL */

/* ---- both backends ---------------------------------------------------- */

/* Makes the backend watch each direction of `watch` that has a handle, and
 * only those.  `rearm`: register the fd afresh even where nothing changed,
 * in case its number was closed and reused (epoll always does).  0, or -1
 * with OSError set. */
static int
apply_interest(FLLoop *loop, fl_io_watch *watch, int rearm)
{
#ifdef FL_HAVE_EPOLL
    if (loop->epfd >= 0) {
        return epoll_apply(loop, watch);
    }
#endif
    libev_apply(loop, watch, rearm);
    return 0;
}

int
fl_io_open(FLLoop *loop)
{
    loop->epfd = -1;
#ifdef FL_HAVE_EPOLL
    const char *backend = getenv("FASTLOOP_IO_BACKEND");
    if (backend == NULL || strcmp(backend, "libev") != 0) {
        return epoll_open(loop);
    }
#endif
    return 0;
}

PyObject *
fl_io_backend_name(FLLoop *loop, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(loop->epfd >= 0 ? "epoll" : "libev");
}

int
fl_io_poll_nowait(FLLoop *loop)
{
#ifdef FL_HAVE_EPOLL
    if (loop->epfd >= 0) {
        /* With nothing registered only a stale entry could be ready, and a
         * blocking poll would find that (libev sees the set readable). */
        return loop->epoll_nregistered ? epoll_dispatch(loop) : 0;
    }
#endif
    ev_run(loop->evloop, EVRUN_NOWAIT);
    return PyErr_Occurred() ? -1 : 0;
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
        ev_io_init(&watch->rio, libev_ready_cb, fd, EV_READ);
        ev_io_init(&watch->wio, libev_ready_cb, fd, EV_WRITE);
        watch->rio.data = watch;
        watch->wio.data = watch;
        loop->io[fd] = watch;
    }
    return watch;
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
    FLHandle *handle = fl_handle_new(&FLHandle_Type, (PyObject *)loop, args[1],
                                     cargs, context);
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
    PyObject *old = *slot;
    *slot = Py_NewRef((PyObject *)handle);
    /* Registered afresh: the fd number may have been closed and reused
     * since the last registration. */
    if (apply_interest(loop, watch, 1) < 0) {
        /* Leave things as they were. */
        Py_SETREF(*slot, old);
        release_watch_if_idle(loop, watch);
        Py_DECREF(handle);
        return NULL;
    }
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
    PyObject *old = *slot;
    if (old == NULL) {
        Py_RETURN_FALSE; /* nothing watched that way: nothing to change */
    }
    *slot = NULL;
    int rc = apply_interest(loop, watch, 0);
    release_watch_if_idle(loop, watch);
    fl_handle_cancel((FLHandle *)old);
    Py_DECREF(old);
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
        (PyObject *)loop, str_ensure_fd_no_transport, fileobj);
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
        if (loop->evloop != NULL) {
            ev_io_stop(loop->evloop, &watch->rio);
            ev_io_stop(loop->evloop, &watch->wio);
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
#ifdef FL_HAVE_EPOLL
    if (loop->epfd >= 0) {
        if (loop->evloop != NULL) {
            ev_io_stop(loop->evloop, &loop->epoll_watcher);
        }
        close(loop->epfd);
        loop->epfd = -1;
        loop->epoll_nregistered = 0;
    }
    PyMem_Free(loop->epoll_events);
    loop->epoll_events = NULL;
    loop->epoll_events_cap = 0;
#endif
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

int
fl_io_init(PyObject *module)
{
    str_ensure_fd_no_transport =
        PyUnicode_InternFromString("_ensure_fd_no_transport");
    return str_ensure_fd_no_transport == NULL ? -1 : 0;
}
