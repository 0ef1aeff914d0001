/* io.h: add_reader/add_writer, file descriptors watched with ev_io.
 *
 * io.c owns one fl_io_watch per watched fd (a read and a write watcher and
 * the Handle each one queues when its fd is ready) and the Loop methods
 * that manage them.  The sock_* coroutines and transports are asyncio's
 * selector ones, built on these methods (see fastloop/_loop.py).
 */
#ifndef FL_IO_H
#define FL_IO_H

#include "loop.h"

typedef struct fl_io_watch {
    ev_io rio;
    ev_io wio;
    PyObject *reader; /* Handle or NULL */
    PyObject *writer; /* Handle or NULL */
    FLLoop *loop;     /* borrowed: the loop owns this struct */
    int fd;
} fl_io_watch;

/* Stops every watcher and drops its handles (close and dealloc). */
void fl_io_clear_all(FLLoop *loop);
int fl_io_traverse(FLLoop *loop, visitproc visit, void *arg);

PyObject *fl_io_add_reader(FLLoop *, PyObject *const *, Py_ssize_t);
PyObject *fl_io_add_reader_private(FLLoop *, PyObject *const *, Py_ssize_t);
PyObject *fl_io_remove_reader(FLLoop *, PyObject *);
PyObject *fl_io_remove_reader_private(FLLoop *, PyObject *);
PyObject *fl_io_add_writer(FLLoop *, PyObject *const *, Py_ssize_t);
PyObject *fl_io_add_writer_private(FLLoop *, PyObject *const *, Py_ssize_t);
PyObject *fl_io_remove_writer(FLLoop *, PyObject *);
PyObject *fl_io_remove_writer_private(FLLoop *, PyObject *);
PyObject *fl_io_events(FLLoop *, PyObject *);

#define FL_IO_FASTCALL(fn) (PyCFunction)(void (*)(void))(fn)
#define FL_IO_METHODS                                                         \
    {"add_reader", FL_IO_FASTCALL(fl_io_add_reader), METH_FASTCALL,           \
     "add_reader(fd, callback, *args): call callback when fd is readable."},  \
        {"_add_reader", FL_IO_FASTCALL(fl_io_add_reader_private),             \
         METH_FASTCALL, NULL},                                                \
        {"remove_reader", (PyCFunction)fl_io_remove_reader, METH_O,           \
         "Stop watching fd for reading; True if it was watched."},            \
        {"_remove_reader", (PyCFunction)fl_io_remove_reader_private, METH_O,  \
         NULL},                                                               \
        {"add_writer", FL_IO_FASTCALL(fl_io_add_writer), METH_FASTCALL,       \
         "add_writer(fd, callback, *args): call callback when fd is "         \
         "writable."},                                                        \
        {"_add_writer", FL_IO_FASTCALL(fl_io_add_writer_private),             \
         METH_FASTCALL, NULL},                                                \
        {"remove_writer", (PyCFunction)fl_io_remove_writer, METH_O,           \
         "Stop watching fd for writing; True if it was watched."},            \
        {"_remove_writer", (PyCFunction)fl_io_remove_writer_private, METH_O,  \
         NULL},                                                               \
    {                                                                         \
        "_io_events", (PyCFunction)fl_io_events, METH_O,                      \
            "Selector-style event mask (1 read, 2 write) watched on fd."      \
    }

#endif /* FL_IO_H */
