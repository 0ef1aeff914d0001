/* io_libev.c: the libev fd backend: one ev_io per fd and direction.
 *
 * For systems without epoll, or when FASTLOOP_IO_BACKEND=libev is set
 * when the loop is made (the test suite runs both ways).  libev's own
 * poller reports readiness; each ev_io's callback hands its direction to
 * fl_io_dispatch().  A blocking poll is a libev pass bounded by one
 * ev_timer set to the earliest deadline; cross-thread wake-ups are an
 * ev_async.
 *
 * libev registers a started ev_io with the kernel only in its next poll,
 * and Debian's build asserts when the fd is closed by then.  asyncio's
 * selector registers at once, so closing a watched fd is harmless there:
 * the watcher of an fd found closed is stopped before the poll (its slot
 * stays, so remove_reader still finds it), and starting one on a closed
 * fd raises OSError(EBADF), as epoll_ctl does for asyncio.
 */
#include "io_backend.h"

#include <errno.h>
#include <fcntl.h>

static void
ready_cb(struct ev_loop *evloop, ev_io *w, int revents)
{
    fl_io_watch *watch = w->data;
    FLLoop *loop = watch->loop;
    assert(loop->io[watch->fd] == watch);
    int is_read = w == &watch->rio;
    /* No Python code runs here (a dropped handle is released after the
     * poll); the watch may be freed by the dispatch, not before. */
    if (fl_io_dispatch(loop, watch, is_read, !is_read) < 0) {
        /* The exception stays set; the run loop checks after the poll. */
        ev_break(evloop, EVBREAK_ONE);
    }
}

static int
libev_open(FLLoop *loop)
{
    loop->libev_fresh = NULL;
    loop->libev_nfresh = 0;
    loop->libev_fresh_cap = 0;
    return 0;
}

static void
libev_close(FLLoop *loop)
{
    PyMem_Free(loop->libev_fresh);
    loop->libev_fresh = NULL;
    loop->libev_nfresh = 0;
    loop->libev_fresh_cap = 0;
}

static int
fd_is_closed(int fd)
{
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* Remembers that `fd` was started since the last poll.  0, or -1 with
 * MemoryError. */
static int
note_fresh(FLLoop *loop, int fd)
{
    if (loop->libev_nfresh > 0 &&
        loop->libev_fresh[loop->libev_nfresh - 1] == fd) {
        return 0; /* both directions of one watch */
    }
    if (loop->libev_nfresh == loop->libev_fresh_cap) {
        int cap = loop->libev_fresh_cap ? 2 * loop->libev_fresh_cap : 16;
        int *grown = PyMem_Realloc(loop->libev_fresh, cap * sizeof(int));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        loop->libev_fresh = grown;
        loop->libev_fresh_cap = cap;
    }
    loop->libev_fresh[loop->libev_nfresh++] = fd;
    return 0;
}

/* Before a poll: stops the watchers of fds started since the last one and
 * closed since (libev would hand the kernel a closed fd). */
static void
stop_closed_fresh(FLLoop *loop)
{
    for (int i = 0; i < loop->libev_nfresh; i++) {
        int fd = loop->libev_fresh[i];
        fl_io_watch *watch = fl_io_watch_for_fd(loop, fd);
        if (watch != NULL && fd_is_closed(fd)) {
            ev_io_stop(loop->evloop, &watch->rio);
            ev_io_stop(loop->evloop, &watch->wio);
        }
    }
    loop->libev_nfresh = 0;
}

/* Starts the watcher of each direction that has a slot set, stops the
 * others.  `rearm` restarts running ones too: libev then registers the fd
 * afresh, in case its number was closed and reused meanwhile. */
static int
libev_apply(FLLoop *loop, fl_io_watch *watch, int rearm)
{
    ev_io *watchers[2] = {&watch->rio, &watch->wio};
    PyObject *slots[2] = {watch->reader, watch->writer};
    int starts = 0;
    for (int i = 0; i < 2; i++) {
        starts |= slots[i] != NULL && (rearm || !ev_is_active(watchers[i]));
    }
    if (starts) {
        if (fd_is_closed(watch->fd)) {
            errno = EBADF;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (note_fresh(loop, watch->fd) < 0) {
            return -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        ev_io *w = watchers[i];
        if (slots[i] == NULL || rearm) {
            ev_io_stop(loop->evloop, w);
        }
        if (slots[i] != NULL && !ev_is_active(w)) {
            if (w->cb != ready_cb) {
                ev_io_init(w, ready_cb, watch->fd,
                           i == 0 ? EV_READ : EV_WRITE);
                w->data = watch;
            } else {
                ev_io_set(w, watch->fd, i == 0 ? EV_READ : EV_WRITE);
            }
            ev_io_start(loop->evloop, w);
        }
    }
    return 0;
}

static void
libev_forget(FLLoop *loop, fl_io_watch *watch)
{
    if (loop->evloop != NULL) {
        ev_io_stop(loop->evloop, &watch->rio);
        ev_io_stop(loop->evloop, &watch->wio);
    }
}

static int
libev_block(FLLoop *loop, double timeout)
{
    /* The GIL is released by the loop's release hook (loop.c) around the
     * backend call only, not around libev's callbacks. */
    loop->poll_may_block = 1;
    if (timeout > 0.0) {
        /* libev measures `after` from its cached time: refresh it first so
         * the wait is not cut short by time spent in callbacks. */
        ev_now_update(loop->evloop);
        ev_timer_set(&loop->poll_timer, timeout, 0.0);
        ev_timer_start(loop->evloop, &loop->poll_timer);
        ev_run(loop->evloop, EVRUN_ONCE);
        ev_timer_stop(loop->evloop, &loop->poll_timer);
    } else {
        ev_run(loop->evloop, EVRUN_ONCE);
    }
    loop->poll_may_block = 0;
    /* Errors in the callbacks stay set (they break the pass). */
    return PyErr_Occurred() ? -1 : 1;
}

static int
libev_poll(FLLoop *loop, double timeout)
{
    stop_closed_fresh(loop);
    if (timeout != 0.0) {
        return libev_block(loop, timeout);
    }
    loop->poll_may_block = 0;
    ev_run(loop->evloop, EVRUN_NOWAIT);
    return PyErr_Occurred() ? -1 : 0;
}

static void
libev_wakeup(FLLoop *loop)
{
    if (loop->evloop != NULL) {
        ev_async_send(loop->evloop, &loop->wakeup);
    }
}

const fl_io_backend fl_io_backend_libev = {
    .name = "libev",
    .open = libev_open,
    .close = libev_close,
    .apply = libev_apply,
    .forget = libev_forget,
    .poll = libev_poll,
    .wakeup = libev_wakeup,
};
