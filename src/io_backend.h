/* io_backend.h: what io.c asks of an fd backend, and what it offers one.
 *
 * A backend tells the kernel which fds and directions to watch and reports
 * readiness back through fl_io_dispatch(); io.c keeps the watch table and
 * everything Python sees.  Two backends, one file each (as Redis's
 * ae_epoll.c / ae_kqueue.c): io_epoll.c, fastloop's own epoll set, and
 * io_libev.c, one libev ev_io per fd and direction.  A loop picks one when
 * it is made (FASTLOOP_IO_BACKEND=libev, or no epoll, gives libev's).
 */
#ifndef FL_IO_BACKEND_H
#define FL_IO_BACKEND_H

#include "io.h"
#include "handle.h"

typedef struct fl_io_backend {
    const char *name; /* Loop._io_backend */
    /* Sets up the backend's state in `loop` (its libev loop exists).  0,
     * or -1 with OSError set. */
    int (*open)(FLLoop *loop);
    /* Releases it (close, dealloc); the watches are gone already. */
    void (*close)(FLLoop *loop);
    /* Makes the kernel watch exactly the directions of `watch` whose slot
     * is set.  `rearm`: register the fd afresh even where nothing changed,
     * in case its number was closed and reused.  0, or -1 with OSError. */
    int (*apply)(FLLoop *loop, fl_io_watch *watch, int rearm);
    /* `watch` is about to be freed with the loop's watches (clear, close):
     * drop what refers to it, without unregistering fds from kernel state
     * a forked process may share. */
    void (*forget)(FLLoop *loop, fl_io_watch *watch);
    /* One poll: see fl_io_poll() in io.h. */
    int (*poll)(FLLoop *loop, double timeout);
    /* Makes a poll that blocks, or the next one, return (the GIL is held,
     * by any thread). */
    void (*wakeup)(FLLoop *loop);
} fl_io_backend;

extern const fl_io_backend fl_io_backend_libev;
#ifdef __linux__
#define FL_HAVE_EPOLL 1
extern const fl_io_backend fl_io_backend_epoll;
#endif

/* For the backends: queues what `watch` wants queued for the directions
 * found ready, a reader before a writer.  Runs no Python code; the watch
 * may be freed when it returns (a cancelled Handle found ready is
 * unregistered, which can leave the fd unwatched).  0, or -1 with an
 * exception set.  Inline: the common cases (a C callback, a live Handle)
 * are one ready-queue append; the rest is fl_io_dispatch_slow(). */
int fl_io_dispatch_slow(FLLoop *loop, fl_io_watch *watch, int read, int write);

static inline int
fl_io_queue_fast(FLLoop *loop, PyObject *obj, fl_ready_fn fn)
{
    /* 1: a cancelled Handle, for the slow path; else enqueue's result */
    if (fn == NULL && ((FLHandle *)obj)->cancelled) {
        return 1;
    }
    return fl_loop_enqueue(loop, fn, obj, NULL);
}

static inline int
fl_io_dispatch(FLLoop *loop, fl_io_watch *watch, int read, int write)
{
    if (read && watch->reader != NULL) {
        int rc = fl_io_queue_fast(loop, watch->reader, watch->reader_fn);
        if (rc != 0) {
            /* A cancelled Handle, or MemoryError: let the slow path redo
             * this direction (an append that failed added nothing). */
            return fl_io_dispatch_slow(loop, watch, 1, write);
        }
    }
    if (write && watch->writer != NULL) {
        int rc = fl_io_queue_fast(loop, watch->writer, watch->writer_fn);
        if (rc != 0) {
            return fl_io_dispatch_slow(loop, watch, 0, 1);
        }
    }
    return 0;
}

/* The watch of `fd`, or NULL. */
static inline fl_io_watch *
fl_io_watch_for_fd(FLLoop *loop, int fd)
{
    if (fd >= 0 && fd < loop->io_cap) {
        return loop->io[fd];
    }
    return NULL;
}

#endif /* FL_IO_BACKEND_H */
