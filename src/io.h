/* io.h: watched file descriptors: the C watch API and add_reader/add_writer.
 *
 * io.c owns one fl_io_watch per watched fd: for each direction, what to
 * queue when the fd is ready -- either a Python Handle (add_reader,
 * add_writer) or a C callback and its object (fl_io_start, for the
 * transports) -- and the Loop methods that manage them.  The backend that
 * reports readiness sits behind io_backend.h, one file each: fastloop's
 * own epoll set (io_epoll.c) or libev's ev_io watchers (io_libev.c).
 */
#ifndef FL_IO_H
#define FL_IO_H

#include "loop.h"

typedef struct fl_io_watch {
    ev_io rio; /* libev backend */
    ev_io wio; /* libev backend */
    /* Per direction: what readiness queues.  With a NULL *_fn the object
     * is a Handle to run (add_reader/add_writer); otherwise the ready
     * queue calls fn(obj, NULL).  A NULL object: not watched that way.
     * Strong references. */
    PyObject *reader;
    PyObject *writer;
    fl_ready_fn reader_fn;
    fl_ready_fn writer_fn;
    FLLoop *loop; /* borrowed: the loop owns this struct */
    int fd;
    uint32_t epoll_tag; /* epoll backend: registration tag, 0 if none */
} fl_io_watch;

#define FL_IO_READ 1
#define FL_IO_WRITE 2

/* The C watch API.
 *
 * fl_io_start: each time `fd` is ready in a direction of `events`
 * (FL_IO_READ, FL_IO_WRITE or both), the ready queue calls fn(obj, NULL)
 * in a later iteration, as level-triggered readiness (again each poll while
 * the fd stays ready).  The callback may find the watch stopped or the fd
 * closed meanwhile: it checks its own state.  What watched those
 * directions before is replaced (a Handle is cancelled).  A new reference
 * to `obj` is kept while watching.  No argument parsing, no fstat: the
 * caller knows `fd` is pollable.  0, or -1 with an exception set (the loop
 * is closed: RuntimeError; the backend refused: OSError; MemoryError).
 *
 * fl_io_stop: stops the directions of `events` that (fn, obj) watches; a
 * direction watched by anything else stays as it is, unless fn is NULL,
 * which stops whatever watches.  0, or -1 with OSError set (the watch is
 * gone all the same).
 *
 * Both finish their bookkeeping before releasing any reference (the last
 * release of a replaced or stopped object may run any Python code). */
int fl_io_start(FLLoop *loop, int fd, int events, fl_ready_fn fn,
                PyObject *obj);
int fl_io_stop(FLLoop *loop, int fd, int events, fl_ready_fn fn,
               PyObject *obj);

/* Whether (fn, obj) watches `fd` for the direction `event`. */
int fl_io_is_watching(FLLoop *loop, int fd, int event, fl_ready_fn fn,
                      PyObject *obj);

/* Sets up the loop's I/O backend (after its libev loop exists).  0, or -1
 * with OSError set. */
int fl_io_open(FLLoop *loop);

/* Polls the backend once and queues what is ready.  timeout 0: without
 * blocking (with the epoll backend: one epoll_wait on fastloop's set, no
 * libev pass); < 0: until something is ready; > 0: at most that many
 * seconds.  Only a poll that may block releases the GIL.  Runs no Python
 * code.  1 when the poll may have blocked, 0 when it did not, or -1 with an
 * exception set. */
int fl_io_poll(FLLoop *loop, double timeout);

/* Makes a blocked poll return (call_soon_threadsafe); needs the GIL, from
 * any thread.  Does nothing on a closed loop. */
void fl_io_wakeup(FLLoop *loop);

/* Releases the handles the last poll dropped (see FLLoop.io_dropped).
 * Call with no watch pointer held: it may run any Python code. */
void fl_io_release_dropped_slow(FLLoop *loop);

static inline void
fl_io_release_dropped(FLLoop *loop)
{
    if (loop->io_ndropped > 0) {
        fl_io_release_dropped_slow(loop);
    }
}

/* Loop._io_backend: "epoll" or "libev". */
PyObject *fl_io_backend_name(FLLoop *loop, void *closure);

/* Drops every watch and its handles, then the backend (close, dealloc). */
void fl_io_close(FLLoop *loop);

/* Drops every watch and its handles (tp_clear). */
void fl_io_clear_all(FLLoop *loop);
int fl_io_traverse(FLLoop *loop, visitproc visit, void *arg);

PyObject *fl_io_add_reader(FLLoop *, PyObject *const *, Py_ssize_t);
PyObject *fl_io_add_reader_private(FLLoop *, PyObject *const *, Py_ssize_t,
                                   PyObject *);
PyObject *fl_io_remove_reader(FLLoop *, PyObject *);
PyObject *fl_io_remove_reader_private(FLLoop *, PyObject *);
PyObject *fl_io_add_writer(FLLoop *, PyObject *const *, Py_ssize_t);
PyObject *fl_io_add_writer_private(FLLoop *, PyObject *const *, Py_ssize_t,
                                   PyObject *);
PyObject *fl_io_remove_writer(FLLoop *, PyObject *);
PyObject *fl_io_remove_writer_private(FLLoop *, PyObject *);
PyObject *fl_io_events(FLLoop *, PyObject *);

/* The Loop's methods this file implements (module.c lists them with the
 * others). */
extern PyMethodDef fl_io_loop_methods[];

#endif /* FL_IO_H */
