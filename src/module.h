/* module.h: state shared by every C file of fastloop._core.
 *
 * Owns the module-state struct: every object the C code caches (types,
 * asyncio's functions, interned strings), as strong references.  It is the
 * module object's state (multi-phase init, m_size); module.c's exec
 * function points fl_state at it before any concern's init runs.
 */
#ifndef FL_MODULE_H
#define FL_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* Interned strings: (field of fl_module_state, text).  module.c interns
 * them all at exec; whoever needs one reads fl_state->field. */
#define FL_STRINGS(X)                                                         \
    X(str_call_exception_handler, "call_exception_handler")                   \
    X(str_message, "message")                                                 \
    X(str_exception, "exception")                                             \
    X(str_handle, "handle")                                                   \
    X(str_source_traceback, "source_traceback")                               \
    X(str_warning, "warning")                                                 \
    X(str_handle_run, "_run")                                                 \
    X(str_context, "context")                                                 \
    X(str_format_handle_msg, "Executing %s took %.3f seconds")                \
    X(str_ensure_fd_no_transport, "_ensure_fd_no_transport")                  \
    X(str_add_done_callback, "add_done_callback")                             \
    X(str_call_soon, "call_soon")                                             \
    X(str_cancel, "cancel")                                                   \
    X(str_future, "future")                                                   \
    X(str_get_debug, "get_debug")                                             \
    X(str_get_loop, "get_loop")                                               \
    X(str_is_running, "is_running")                                           \
    X(str_loop, "_loop")                                                      \
    X(str_msg, "msg")                                                         \
    X(str_result, "result")                                                   \
    X(str_task, "task")                                                       \
    X(str_throw, "throw")                                                     \
    X(str_blocking, "_asyncio_future_blocking")                               \
    X(str_connection_made, "connection_made")                                 \
    X(str_data_received, "data_received")                                     \
    X(str_eof_received, "eof_received")                                       \
    X(str_connection_lost, "connection_lost")                                 \
    X(str_get_buffer, "get_buffer")                                           \
    X(str_buffer_updated, "buffer_updated")                                   \
    X(str_pause_writing, "pause_writing")                                     \
    X(str_resume_writing, "resume_writing")                                   \
    X(str_close, "close")                                                     \
    X(str_fileno, "fileno")                                                   \
    X(str_getsockname, "getsockname")                                         \
    X(str_getpeername, "getpeername")                                         \
    X(str_socket, "socket")                                                   \
    X(str_sockname, "sockname")                                               \
    X(str_peername, "peername")                                               \
    X(str_attach, "_attach")                                                  \
    X(str_detach, "_detach")                                                  \
    X(str_transports, "_transports")                                          \
    X(str_debug, "debug")                                                     \
    X(str_exc_info, "exc_info")                                               \
    X(str_set_result, "set_result")                                           \
    X(str_set_exception, "set_exception")                                     \
    X(str_cancelled, "cancelled")                                             \
    X(str_done, "done")                                                       \
    X(str_create_future, "create_future")                                     \
    X(str_transport, "transport")                                             \
    X(str_protocol, "protocol")                                               \
    X(str_family, "family")                                                   \
    X(str_type, "type")                                                       \
    X(str_proto, "proto")                                                     \
    X(str_join, "join")                                                       \
    X(str_connection_closed_msg, "Connection is closed by peer")              \
    X(str_setblocking, "setblocking")                                         \
    X(str_call_later, "call_later")                                           \
    X(str_start_serving, "_start_serving")                                    \
    X(str_create_task, "create_task")                                         \
    X(str_accept_connection2, "_accept_connection2")                          \
    X(str_copy, "copy")                                                       \
    X(str_run, "run")                                                         \
    X(str_state, "_state")                                                    \
    X(str_incoming, "_incoming")                                              \
    X(str_outgoing, "_outgoing")                                              \
    X(str_ssl_buffer, "_ssl_buffer")                                          \
    X(str_ssl_buffer_view, "_ssl_buffer_view")                                \
    X(str_max_size, "max_size")                                               \
    X(str_app_reading_paused, "_app_reading_paused")                          \
    X(str_app_protocol_is_buffer, "_app_protocol_is_buffer")                  \
    X(str_sslobj, "_sslobj")                                                  \
    X(str_app_protocol, "_app_protocol")                                      \
    X(str_write_backlog, "_write_backlog")                                    \
    X(str_ssl_writing_paused, "_ssl_writing_paused")                          \
    X(str_private_transport, "_transport")                                    \
    X(str_write_buffer_size, "_write_buffer_size")                            \
    X(str_outgoing_high_water, "_outgoing_high_water")                        \
    X(str_outgoing_low_water, "_outgoing_low_water")                          \
    X(str_app_writing_paused, "_app_writing_paused")                          \
    X(str_incoming_high_water, "_incoming_high_water")                        \
    X(str_incoming_low_water, "_incoming_low_water")                          \
    X(str_ssl_reading_paused, "_ssl_reading_paused")                          \
    X(str_control_app_writing, "_control_app_writing")                        \
    X(str_control_ssl_reading, "_control_ssl_reading")                        \
    X(str_call_eof_received, "_call_eof_received")                            \
    X(str_start_shutdown, "_start_shutdown")                                  \
    X(str_do_read__buffered, "_do_read__buffered")                            \
    X(str_fatal_error, "_fatal_error")                                        \
    X(str_write, "write")                                                     \
    X(str_read, "read")                                                       \
    X(str_pending, "pending")                                                 \
    X(str_popleft, "popleft")                                                 \
    X(str_append, "append")                                                   \
    X(str_ssl_protocol, "_ssl_protocol")                                      \
    X(str_write_appdata, "_write_appdata")                                    \
    X(str_tls_fatal_message, "Fatal error on SSL protocol")                   \
    X(str_gettimeout, "gettimeout")                                           \
    X(str_recv, "recv")                                                       \
    X(str_recv_into, "recv_into")                                             \
    X(str_recvfrom, "recvfrom")                                               \
    X(str_recvfrom_into, "recvfrom_into")                                     \
    X(str_send, "send")                                                       \
    X(str_sendto, "sendto")                                                   \
    X(str_connect, "connect")                                                 \
    X(str_accept, "accept")                                                   \
    X(str_weakset_data, "data")                                               \
    X(str_pending_removals, "_pending_removals")                              \
    X(str_commit_removals, "_commit_removals")                                \
    X(str_iterating, "_iterating")

/* The module state: every object fastloop._core caches, as CPython's
 * _asyncio keeps them in its module state.  Each concern's init function
 * (below) fills its part.
 *
 * Every field from the first to `fl_state_end_of_references` is a strong
 * reference (or NULL): m_traverse and m_clear walk them as one array, so
 * anything else (numbers, borrowed pointers) goes after it. */
typedef struct {
    /* -- types -------------------------------------------------------- */
    PyTypeObject *loop_type;           /* _core.Loop (loop.c) */
    PyTypeObject *handle_type;         /* fastloop.Handle (handle.c) */
    PyTypeObject *timer_handle_type;   /* fastloop.TimerHandle */
    PyTypeObject *acceptor_type;       /* _core._Acceptor (server.c) */
    PyTypeObject *future_type;         /* fastloop.Future (future.c) */
    PyTypeObject *task_type;           /* fastloop.Task (task.c) */
    PyTypeObject *future_iter_type;    /* Future.__await__'s iterator */
    PyTypeObject *asyncio_future_type; /* _asyncio.Future, Future's base */
    PyTypeObject *asyncio_task_type;   /* _asyncio.Task, Task's base */
    PyTypeObject *stream_type;         /* _core.SocketTransport (stream.c) */
    PyTypeObject *c_socket_type;       /* _socket.socket */
    PyTypeObject *sock_wait_type;      /* _core._SockWait (sock.c) */
    PyTypeObject *tls_protocol_type;   /* fastloop._sslproto.SSLProtocol,
                                          once _tls_methods() ran (tls.c) */

    /* -- asyncio's functions and objects (module.c) -------------------- */
    PyObject *asyncio_events; /* module asyncio.events */
    PyObject *
        format_callback_source; /* asyncio.format_helpers._format_callback_source
                                 */
    PyObject *extract_stack;    /* asyncio.format_helpers.extract_stack */
    PyObject *iscoroutine;      /* asyncio.coroutines.iscoroutine */
    PyObject
        *iscoroutinefunction; /* asyncio.coroutines._iscoroutinefunction
                               where it exists, else iscoroutinefunction */
    PyObject *logger;         /* asyncio.log.logger */

    /* -- futures and tasks (future.c) ---------------------------------- */
    PyObject *CancelledError;
    PyObject *InvalidStateError;
    PyObject *get_event_loop;   /* events.get_event_loop (3.12+) or
                                   events._get_event_loop (3.11) */
    PyObject *get_running_loop; /* events._get_running_loop */
    PyObject *future_repr;      /* base_futures._future_repr */
    PyObject *task_repr;        /* base_tasks._task_repr */
    PyObject *task_get_stack;   /* base_tasks._task_get_stack */
    PyObject *task_print_stack; /* base_tasks._task_print_stack */
    PyObject *current_tasks;    /* tasks._current_tasks (dict) */
    PyObject *register_task;    /* tasks._register_task */
    PyObject *eager_tasks;      /* tasks._eager_tasks (set), 3.12-3.13 */
    /* 3.14+: the current task lives on the thread state; third-party tasks
     * set it through these (asyncio.tasks' C functions). */
    PyObject *enter_task;            /* tasks._enter_task */
    PyObject *leave_task;            /* tasks._leave_task */
    PyObject *swap_current_task;     /* tasks._swap_current_task */
    PyObject *register_eager_task;   /* tasks._register_eager_task */
    PyObject *unregister_eager_task; /* tasks._unregister_eager_task */
    PyObject *unregister_task;       /* tasks._unregister_task */
    /* 3.14+: who awaits a future, for asyncio's call-graph introspection
     * (futures.future_add_to_awaited_by and its inverse). */
    PyObject *add_to_awaited_by;
    PyObject *discard_from_awaited_by;
    PyObject *base_create_task; /* base_events.BaseEventLoop.create_task */
    PyObject *kw_context;       /* ("context",) */
    PyObject *kw_msg;           /* ("msg",) */
    /* The C Loop's own call_soon, get_debug and is_running descriptors
     * (see fl_loop_is_fast). */
    PyObject *fast_methods[3];

    /* -- transports (stream.c, server.c, tls.c) ------------------------ */
    PyObject *transport_socket_type;  /* asyncio.trsock.TransportSocket */
    PyObject *buffered_protocol_type; /* asyncio.BufferedProtocol */
    PyObject *socket_type_descr[3];   /* _socket.socket family/type/proto */
    PyObject *sendfile_try_native;    /* constants._SendfileMode.TRY_NATIVE */
    PyObject *socket_class;           /* socket.socket */
    PyObject *accept_retry_delay;     /* constants.ACCEPT_RETRY_DELAY */
    PyObject *tls_state_wrapped;      /* sslproto.SSLProtocolState.WRAPPED */
    PyObject *tls_again_errors;       /* sslproto.SSLAgainErrors */
    PyObject *tls_base_get_buffer;    /* sslproto.SSLProtocol.get_buffer */
    PyObject *tls_base_buffer_updated;
    PyObject *tls_base_write_appdata;
    PyObject *tls_base_app_write;     /* _SSLProtocolTransport.write */
    PyObject *ssl_socket_type;        /* ssl.SSLSocket, or NULL (sock.c) */
    PyObject *sendfile_not_available; /* SendfileNotAvailableError */
    PyObject *int_zero;               /* 0 */

    /* -- interned strings ---------------------------------------------- */
#define FL_STRING_FIELD(field, text) PyObject *field;
    FL_STRINGS(FL_STRING_FIELD)
#undef FL_STRING_FIELD

    /* -- caches filled while running (strong references) --------------- */
    /* The last subclass of the Loop type that FLLoop_Check met. */
    PyTypeObject *loop_last_subtype;
    /* fl_loop_is_fast's answer for this type at fast_cache_tag. */
    PyTypeObject *fast_cache_type;
    /* stream.c's reused large-read buffer (see read_large), or NULL. */
    PyObject *spare_bytes;
    /* stream.c's reused medium-read bytes object (see read_medium), or
     * NULL; its allocation is spare_medium_cap bytes. */
    PyObject *spare_medium;
    /* task.c, 3.11-3.13: asyncio's task registry (a WeakSet) and the
     * callback of its weak references, once registry_state is 1. */
    PyObject *registry_set;
    PyObject *registry_remove;

    char fl_state_end_of_references[1];

    /* -- not references ------------------------------------------------ */
    Py_ssize_t debug_stack_depth; /* asyncio.constants.DEBUG_STACK_DEPTH */
    unsigned int fast_cache_tag;
    int fast_cache_answer;
    Py_ssize_t spare_medium_cap;
    /* 0: not decided yet; 1: task.c adds to registry_set itself; -1: it
     * calls asyncio's _register_task. */
    int registry_state;
} fl_module_state;

/* The number of references at the start of fl_module_state. */
#define FL_STATE_NREFS                                                        \
    (offsetof(fl_module_state, fl_state_end_of_references) /                  \
     sizeof(PyObject *))

/* The one module state, set when the module is made (module.c).  A
 * process-wide pointer rather than PyModule_GetState() on every use: hot
 * paths compare types and read cached objects through it at the cost of
 * one load. */
extern fl_module_state *fl_state;

/* Per-concern init functions, called by module.c in this order.  Each adds
 * its types to the module and fills the state it owns; -1 with an exception
 * set on failure. */
int fl_handle_init(PyObject *module);
/* `methods`: every method of the Loop type (module.c lists them). */
int fl_loop_init(PyObject *module, PyMethodDef *methods);
int fl_future_init(PyObject *module);
int fl_task_init(PyObject *module);
int fl_stream_init(PyObject *module);
int fl_server_init(PyObject *module);
int fl_sock_init(PyObject *module);

/* Fills the slot `id` of a type's `slots` (one listed there with a NULL
 * value) before the type is made from its spec. */
void fl_set_slot(PyType_Slot *slots, int id, void *value);

/* A method table made of `own` followed by every entry of `inherited` whose
 * name `own` does not define (class methods excepted), so that a subtype
 * can carry its base's methods as its own descriptors.  A call through a
 * descriptor of the object's exact type skips the subtype check that an
 * inherited one costs on every call.  The tables live as long as the
 * process; NULL with MemoryError on failure. */
PyMethodDef *fl_merge_methods(const PyMethodDef *own,
                              const PyMethodDef *inherited);
/* The same for getset tables. */
PyGetSetDef *fl_merge_getset(const PyGetSetDef *own,
                             const PyGetSetDef *inherited);

/* The current exception as one object (NULL if none), and its inverse:
 * PyErr_GetRaisedException/SetRaisedException on 3.12+, built from
 * PyErr_Fetch/Restore on 3.11.  fl_err_restore(NULL) does nothing. */
static inline PyObject *
fl_err_fetch(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static inline void
fl_err_restore(PyObject *exc)
{
    /* NULL leaves the error state alone (it does not clear an exception
     * raised since the fetch): callers restore only what they fetched. */
    if (exc == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *type = Py_NewRef((PyObject *)Py_TYPE(exc));
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(type, exc, tb);
#endif
}

#endif /* FL_MODULE_H */
