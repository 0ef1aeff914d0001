/* server.h: the accept loop behind asyncio's Server (server.c). */
#ifndef FL_SERVER_H
#define FL_SERVER_H

#include "loop.h"

/* _core._start_serving(loop, protocol_factory, sock, sslcontext=None,
 * server=None, backlog=100, ssl_handshake_timeout=...,
 * ssl_shutdown_timeout=..., context=None): asyncio's
 * BaseSelectorEventLoop._start_serving, for fastloop/_loop.py. */
PyObject *fl_server_start_serving(PyObject *module, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames);

/* _core._accept_connection(loop, ...): one round of accepts. */
PyObject *fl_server_accept_connection(PyObject *module, PyObject *const *args,
                                      Py_ssize_t nargs, PyObject *kwnames);

/* tls.c: the C data path of asyncio's SSLProtocol (see there). */
PyObject *fl_tls_methods(PyObject *module, PyObject *cls);

#define FL_SERVER_FUNCTIONS                                                   \
    {"_tls_methods", (PyCFunction)fl_tls_methods, METH_O,                     \
     "The C methods of fastloop._sslproto's classes."},                       \
        {"_start_serving",                                                    \
         (PyCFunction)(void (*)(void))fl_server_start_serving,                \
         METH_FASTCALL | METH_KEYWORDS,                                       \
         "Accept connections on a listening socket for loop."},               \
    {                                                                         \
        "_accept_connection",                                                 \
            (PyCFunction)(void (*)(void))fl_server_accept_connection,         \
            METH_FASTCALL | METH_KEYWORDS,                                    \
            "Accept the connections waiting on a listening socket."           \
    }

#endif /* FL_SERVER_H */
