/* io.h: add_reader/add_writer: watched file descriptors.
 *
 * io.c owns one fl_io_watch per watched fd (the Handle to queue when it is
 * readable and the one for writable), the backend that reports readiness
 * (fastloop's own epoll set, or libev's ev_io watchers), and the Loop
 * methods that manage them.  The sock_* coroutines and transports are
 * asyncio's selector ones, built on these methods (see fastloop/_loop.py).
 */
#ifndef FL_IO_H
#define FL_IO_H

#include "loop.h"

typedef struct fl_io_watch {
    ev_io rio;        /* libev backend */
    ev_io wio;        /* libev backend */
    PyObject *reader; /* Handle or NULL */
    PyObject *writer; /* Handle or NULL */
    FLLoop *loop;     /* borrowed: the loop owns this struct */
    int fd;
    uint32_t epoll_tag; /* epoll backend: registration tag, 0 if none */
} fl_io_watch;

/* Sets up the loop's I/O backend (after its libev loop exists).  0, or -1
 * with OSError set. */
int fl_io_open(FLLoop *loop);

/* A poll that does not block: queues the handles of the fds ready now.
 * With the epoll backend this reads fastloop's epoll set and involves no
 * libev pass.  0, or -1 with an exception set. */
int fl_io_poll_nowait(FLLoop *loop);

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

#define FL_IO_FASTCALL(fn) (PyCFunction)(void (*)(void))(fn)
#define FL_IO_METHODS                                                         \
    {"add_reader", FL_IO_FASTCALL(fl_io_add_reader), METH_FASTCALL,           \
     "add_reader(fd, callback, *args): call callback when fd is readable."},  \
        {"_add_reader", FL_IO_FASTCALL(fl_io_add_reader_private),             \
         METH_FASTCALL | METH_KEYWORDS, NULL},                                \
        {"remove_reader", (PyCFunction)fl_io_remove_reader, METH_O,           \
         "Stop watching fd for reading; True if it was watched."},            \
        {"_remove_reader", (PyCFunction)fl_io_remove_reader_private, METH_O,  \
         NULL},                                                               \
        {"add_writer", FL_IO_FASTCALL(fl_io_add_writer), METH_FASTCALL,       \
         "add_writer(fd, callback, *args): call callback when fd is "         \
         "writable."},                                                        \
        {"_add_writer", FL_IO_FASTCALL(fl_io_add_writer_private),             \
         METH_FASTCALL | METH_KEYWORDS, NULL},                                \
        {"remove_writer", (PyCFunction)fl_io_remove_writer, METH_O,           \
         "Stop watching fd for writing; True if it was watched."},            \
        {"_remove_writer", (PyCFunction)fl_io_remove_writer_private, METH_O,  \
         NULL},                                                               \
    {                                                                         \
        "_io_events", (PyCFunction)fl_io_events, METH_O,                      \
            "Selector-style event mask (1 read, 2 write) watched on fd."      \
    }

#endif /* FL_IO_H */
