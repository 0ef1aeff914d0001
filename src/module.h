/* module.h: state shared by every C file of fastloop._core.
 *
 * Owns the module-state struct that caches the asyncio objects the C code
 * needs.  Single-phase init: one global instance, filled by module.c before
 * any type is used.  Every cached object is a strong reference.
 */
#ifndef FL_MODULE_H
#define FL_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject *asyncio_events; /* module asyncio.events */
    PyObject *
        format_callback_source; /* asyncio.format_helpers._format_callback_source
                                 */
    PyObject *extract_stack;    /* asyncio.format_helpers.extract_stack */
    PyObject *iscoroutine;      /* asyncio.coroutines.iscoroutine */
    PyObject
        *iscoroutinefunction;     /* asyncio.coroutines._iscoroutinefunction
                                   where it exists, else iscoroutinefunction */
    PyObject *logger;             /* asyncio.log.logger */
    Py_ssize_t debug_stack_depth; /* asyncio.constants.DEBUG_STACK_DEPTH */
    PyObject *str_call_exception_handler;
    PyObject *str_message;
    PyObject *str_exception;
    PyObject *str_handle;
    PyObject *str_source_traceback;
    PyObject *str_warning;
} fl_module_state;

extern fl_module_state fl_state;

/* Per-concern init functions, called by module.c in this order.  Each adds
 * its types to the module and fills the state it owns; -1 with an exception
 * set on failure. */
int fl_handle_init(PyObject *module);
int fl_loop_init(PyObject *module);
int fl_io_init(PyObject *module);
int fl_future_init(PyObject *module);
int fl_task_init(PyObject *module);
int fl_stream_init(PyObject *module);
int fl_server_init(PyObject *module);

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
