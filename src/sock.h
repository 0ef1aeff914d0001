/* sock.h: the loop's sock_* coroutines, their C part (sock.c).
 *
 * sock.c owns the syscall-and-wait half of loop.sock_recv, sock_recv_into,
 * sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto,
 * sock_connect, sock_accept and the native half of sock_sendfile: each
 * tries the operation at once and, only when it would block, makes a
 * future and a waiter watching the fd through the C watch API (io.h).
 * fastloop/_loop.py's coroutines call these module functions; a pending
 * operation comes back as a _core._SockWait, which is awaitable.
 */
#ifndef FL_SOCK_H
#define FL_SOCK_H

#include "loop.h"

PyObject *fl_sock_recv(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_recv_into(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_recvfrom(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_recvfrom_into(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_sendall(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_sendto(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_connect(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_accept(PyObject *, PyObject *const *, Py_ssize_t);
PyObject *fl_sock_sendfile(PyObject *, PyObject *const *, Py_ssize_t);

/* fl_sock_init (module.h) adds _SockWait to the module and caches what
 * sock.c needs in the module state. */

#define FL_SOCK_FN(name, fn, doc)                                             \
    {                                                                         \
        name, (PyCFunction)(void (*)(void))(fn), METH_FASTCALL, doc           \
    }
#define FL_SOCK_FUNCTIONS                                                     \
    FL_SOCK_FN("_sock_recv", fl_sock_recv, "(loop, sock, n)"),                \
        FL_SOCK_FN("_sock_recv_into", fl_sock_recv_into,                      \
                   "(loop, sock, buf)"),                                      \
        FL_SOCK_FN("_sock_recvfrom", fl_sock_recvfrom,                        \
                   "(loop, sock, bufsize)"),                                  \
        FL_SOCK_FN("_sock_recvfrom_into", fl_sock_recvfrom_into,              \
                   "(loop, sock, buf, nbytes)"),                              \
        FL_SOCK_FN("_sock_sendall", fl_sock_sendall, "(loop, sock, data)"),   \
        FL_SOCK_FN("_sock_sendto", fl_sock_sendto,                            \
                   "(loop, sock, data, address)"),                            \
        FL_SOCK_FN("_sock_connect", fl_sock_connect,                          \
                   "(loop, sock, address)"),                                  \
        FL_SOCK_FN("_sock_accept", fl_sock_accept, "(loop, sock)"),           \
        FL_SOCK_FN("_sock_sendfile", fl_sock_sendfile,                        \
                   "(loop, sock, fileno, offset, count, blocksize)")

#endif /* FL_SOCK_H */
