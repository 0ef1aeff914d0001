/* io_epoll.c: the epoll fd backend (Linux, the default): fastloop's own
 * epoll set.
 *
 * Every watched fd is registered in an epoll set the loop owns, and every
 * poll reads that set directly: one epoll_wait, then the watches of the
 * fds it lists go to fl_io_dispatch().  Cross-thread wake-ups
 * (call_soon_threadsafe) write to an eventfd that is in the set too, so a
 * blocking poll -- the GIL released around it -- is that single epoll_wait
 * whether an fd, a wake-up or the earliest timer ends it.  libev takes no
 * part in a loop with this backend.  (Before, libev watched the set and
 * did the blocking wait: two epoll_waits per wake-up, and a libev pass that
 * cost more than the rest of a busy iteration.)
 *
 * Each registration's data holds the fd and a tag unique to that
 * registration.  The tag catches the one case epoll gets wrong: an fd
 * closed while another descriptor still refers to its file (a dup, a
 * child process) stays in the set under its old number, and once the
 * number is reused its events would look like the new file's.  An event
 * whose tag is not the watch's current one means that happened; the set is
 * then rebuilt from the watch table (libev does the same).  Tag 0 marks
 * the wake-up eventfd.
 */
#include "io_backend.h"

#ifdef FL_HAVE_EPOLL

#include <errno.h>
#include <math.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static uint64_t
epoll_data(int fd, uint32_t tag)
{
    return (uint64_t)(uint32_t)fd | ((uint64_t)tag << 32);
}

/* (Re)registers the watch with the interest its slots want.  0, or -1
 * with OSError set. */
static int
epoll_apply(FLLoop *loop, fl_io_watch *watch, int Py_UNUSED(rearm))
{
    /* epoll always registers afresh where it must: a closed and reused
     * number is found by EPOLL_CTL_MOD failing, or by its tag. */
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

/* Registers the wake-up eventfd in the set (tag 0).  0, or -1 with
 * OSError set. */
static int
register_wakeup(FLLoop *loop)
{
    struct epoll_event ev = {.events = EPOLLIN,
                             .data.u64 = epoll_data(loop->wakeup_fd, 0)};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakeup_fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Replaces the epoll set by a new one holding every watch (see above). */
static int
epoll_rebuild(FLLoop *loop)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    close(loop->epfd);
    loop->epfd = epfd;
    loop->epoll_nregistered = 0;
    if (register_wakeup(loop) < 0) {
        return -1;
    }
    for (Py_ssize_t fd = 0; fd < loop->io_cap; fd++) {
        fl_io_watch *watch = loop->io[fd];
        if (watch != NULL) {
            watch->epoll_tag = 0;
            if (epoll_apply(loop, watch, 1) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* The directions an epoll event makes ready, as asyncio's EpollSelector
 * reads them: errors and hang-ups wake both, so that a callback finds out
 * by reading or writing. */
static inline void
ready_directions(uint32_t events, int *read, int *write)
{
    *read = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
    *write = (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0;
}

/* One epoll_wait on the set (`ms`: 0 does not block, -1 forever; the GIL
 * is released around a wait that may block), then the dispatch of what it
 * lists, in asyncio's order: as epoll lists the fds, a reader before a
 * writer.  0, or -1 with an exception set. */
static inline Py_ALWAYS_INLINE int
epoll_dispatch(FLLoop *loop, int ms)
{
    int want = loop->epoll_nregistered + 1; /* + the wake-up eventfd */
    if (loop->epoll_events_cap < want) {
        int cap = want < 64 ? 64 : want;
        struct epoll_event *events =
            PyMem_Realloc(loop->epoll_events, cap * sizeof(*events));
        if (events == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        loop->epoll_events = events;
        loop->epoll_events_cap = cap;
    }
    int n;
    if (ms == 0) {
        n = epoll_wait(loop->epfd, loop->epoll_events, loop->epoll_events_cap,
                       0);
    } else {
        PyThreadState *tstate = PyEval_SaveThread();
        n = epoll_wait(loop->epfd, loop->epoll_events, loop->epoll_events_cap,
                       ms);
        int saved = errno;
        PyEval_RestoreThread(tstate);
        errno = saved;
    }
    if (n < 0) {
        if (errno == EINTR) {
            return 0; /* a signal: the loop checks for it after the poll */
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int stale = 0;
    for (int i = 0; i < n; i++) {
        uint64_t data = loop->epoll_events[i].data.u64;
        uint32_t tag = (uint32_t)(data >> 32);
        if (tag == 0) {
            /* A wake-up: its callback is queued already; reset the
             * eventfd so that the next wake-up writes to it again. */
            uint64_t count;
            if (read(loop->wakeup_fd, &count, sizeof(count)) < 0) {
                /* EAGAIN: another poll got there first; nothing lost. */
            }
            loop->wakeup_pending = 0;
            continue;
        }
        fl_io_watch *watch = fl_io_watch_for_fd(loop, (int)(uint32_t)data);
        if (watch == NULL || watch->epoll_tag != tag) {
            stale = 1;
            continue;
        }
        /* No Python code runs until the dispatch is over (a dropped handle
         * is released after the poll): the event buffer stays valid. */
        int read, write;
        ready_directions(loop->epoll_events[i].events, &read, &write);
        if (fl_io_dispatch(loop, watch, read, write) < 0) {
            return -1;
        }
    }
    return stale ? epoll_rebuild(loop) : 0;
}

/* Seconds to epoll_wait's milliseconds, rounded up: a timer must not be
 * polled for before it is due (the loop polls again when woken early). */
static inline int
timeout_ms(double timeout)
{
    if (timeout < 0.0) {
        return -1;
    }
    double ms = ceil(timeout * 1e3);
    return ms > (double)INT_MAX ? INT_MAX : (int)ms;
}

static int
epoll_poll(FLLoop *loop, double timeout)
{
    if (timeout == 0.0) {
        /* With nothing registered only a stale entry could be ready, and
         * a blocking poll would find that; wake-ups need no poll that does
         * not block (call_soon_threadsafe queues the callback itself). */
        return loop->epoll_nregistered ? epoll_dispatch(loop, 0) : 0;
    }
    return epoll_dispatch(loop, timeout_ms(timeout)) < 0 ? -1 : 1;
}

static int
epoll_open(FLLoop *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    loop->wakeup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakeup_fd < 0 || register_wakeup(loop) < 0) {
        if (loop->wakeup_fd < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
        } else {
            close(loop->wakeup_fd);
        }
        close(loop->epfd);
        loop->epfd = loop->wakeup_fd = -1;
        return -1;
    }
    loop->wakeup_pending = 0;
    return 0;
}

static void
epoll_close(FLLoop *loop)
{
    if (loop->epfd >= 0) {
        /* The set goes with its fd: removing fds from it one by one would
         * also remove them for a forked child's parent, which shares it. */
        close(loop->epfd);
        close(loop->wakeup_fd);
        loop->epfd = loop->wakeup_fd = -1;
        loop->epoll_nregistered = 0;
    }
    PyMem_Free(loop->epoll_events);
    loop->epoll_events = NULL;
    loop->epoll_events_cap = 0;
}

/* Called with the GIL held, from any thread. */
static void
epoll_wakeup(FLLoop *loop)
{
    if (loop->wakeup_pending || loop->wakeup_fd < 0) {
        return; /* the loop will wake up already, or it is closed */
    }
    loop->wakeup_pending = 1;
    uint64_t one = 1;
    if (write(loop->wakeup_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full, so the fd is readable anyway. */
    }
}

static void
epoll_forget(FLLoop *loop, fl_io_watch *watch)
{
    /* Nothing points at the watch but the table: the set holds its fd and
     * tag, which no longer match anything once the watch is gone. */
    if (watch->epoll_tag != 0) {
        watch->epoll_tag = 0;
        loop->epoll_nregistered--;
    }
}

const fl_io_backend fl_io_backend_epoll = {
    .name = "epoll",
    .open = epoll_open,
    .close = epoll_close,
    .apply = epoll_apply,
    .forget = epoll_forget,
    .poll = epoll_poll,
    .wakeup = epoll_wakeup,
};

#endif /* FL_HAVE_EPOLL */
