/* module.c: fastloop._core module init (multi-phase, as CPython's own
 * _asyncio).
 *
 * Owns the module definition, its exec function (which runs every
 * concern's init, in order), the module state's traverse/clear/free, and
 * the import of the asyncio pieces the C code calls on cold paths
 * (formatting, logging, debug checks).
 */
#include "module.h"
#include "io.h"
#include "server.h"
#include "sock.h"
#include "task.h"

/* The state of the one module object (see fl_module_exec): NULL until it
 * is made. */
fl_module_state *fl_state;

static PyObject *
import_attr(const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return value;
}

#define IMPORT(field, module_name, attr)                                      \
    do {                                                                      \
        fl_state->field = import_attr(module_name, attr);                     \
        if (fl_state->field == NULL) {                                        \
            return -1;                                                        \
        }                                                                     \
    } while (0)

static int
intern_strings(void)
{
#define FL_INTERN_STRING(field, text)                                         \
    if ((fl_state->field = PyUnicode_InternFromString(text)) == NULL) {       \
        return -1;                                                            \
    }
    FL_STRINGS(FL_INTERN_STRING)
#undef FL_INTERN_STRING
    return 0;
}

static int
fill_state(void)
{
    if (intern_strings() < 0) {
        return -1;
    }
    fl_state->asyncio_events = PyImport_ImportModule("asyncio.events");
    if (fl_state->asyncio_events == NULL) {
        return -1;
    }
    IMPORT(format_callback_source, "asyncio.format_helpers",
           "_format_callback_source");
    IMPORT(extract_stack, "asyncio.format_helpers", "extract_stack");
    IMPORT(iscoroutine, "asyncio.coroutines", "iscoroutine");
    /* 3.14 deprecates asyncio.iscoroutinefunction; asyncio's own checks
     * use the private _iscoroutinefunction where it exists. */
    fl_state->iscoroutinefunction =
        import_attr("asyncio.coroutines", "_iscoroutinefunction");
    if (fl_state->iscoroutinefunction == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        IMPORT(iscoroutinefunction, "asyncio.coroutines",
               "iscoroutinefunction");
    }
    IMPORT(logger, "asyncio.log", "logger");
    PyObject *depth = import_attr("asyncio.constants", "DEBUG_STACK_DEPTH");
    if (depth == NULL) {
        return -1;
    }
    fl_state->debug_stack_depth = PyLong_AsSsize_t(depth);
    Py_DECREF(depth);
    if (fl_state->debug_stack_depth == -1 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

void
fl_set_slot(PyType_Slot *slots, int id, void *value)
{
    for (; slots->slot != 0; slots++) {
        if (slots->slot == id) {
            slots->pfunc = value;
            return;
        }
    }
    Py_UNREACHABLE();
}

/* ---- method tables for subtypes (see fl_merge_methods) ----------------- */

/* Both PyMethodDef and PyGetSetDef start with the entry's name and end with
 * an entry whose name is NULL. */
static const char *
entry_name(const char *entry)
{
    return *(const char *const *)entry;
}

static int
table_has(const char *table, size_t size, const char *name)
{
    for (; entry_name(table) != NULL; table += size) {
        if (strcmp(entry_name(table), name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* `own`, then the entries of `inherited` that `own` lacks and `keep`
 * accepts, then the terminating (zeroed) entry. */
static void *
merge_tables(const char *own, const char *inherited, size_t size,
             int (*keep)(const char *entry))
{
    size_t n = 1;
    for (const char *e = own; entry_name(e) != NULL; e += size) {
        n++;
    }
    for (const char *e = inherited; entry_name(e) != NULL; e += size) {
        n++;
    }
    char *merged = PyMem_RawCalloc(n, size);
    if (merged == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    char *out = merged;
    for (const char *e = own; entry_name(e) != NULL; e += size, out += size) {
        memcpy(out, e, size);
    }
    for (const char *e = inherited; entry_name(e) != NULL; e += size) {
        if (!table_has(own, size, entry_name(e)) && keep(e)) {
            memcpy(out, e, size);
            out += size;
        }
    }
    return merged;
}

static int
keep_instance_method(const char *entry)
{
    return !(((const PyMethodDef *)entry)->ml_flags &
             (METH_CLASS | METH_STATIC));
}

static int
keep_any(const char *Py_UNUSED(entry))
{
    return 1;
}

PyMethodDef *
fl_merge_methods(const PyMethodDef *own, const PyMethodDef *inherited)
{
    return merge_tables((const char *)own, (const char *)inherited,
                        sizeof(PyMethodDef), keep_instance_method);
}

PyGetSetDef *
fl_merge_getset(const PyGetSetDef *own, const PyGetSetDef *inherited)
{
    return merge_tables((const char *)own, (const char *)inherited,
                        sizeof(PyGetSetDef), keep_any);
}

static PyMethodDef fl_module_methods[] = {
    FL_SERVER_FUNCTIONS,
    FL_SOCK_FUNCTIONS,
    {NULL, NULL, 0, NULL},
};

/* ---- the Loop's methods ---------------------------------------------- */

/* Every method of _core.Loop, by the file that implements it: the one
 * place they are listed.  A concern that adds methods to the Loop exports
 * its table (ending with a NULL entry) and gets a line here. */
static const PyMethodDef *const loop_method_tables[] = {
    fl_loop_methods,        /* loop.c: call_soon..., run, time, stop/close */
    fl_io_loop_methods,     /* io.c: add_reader/add_writer and family */
    fl_future_loop_methods, /* future.c: create_future */
    fl_task_loop_methods,   /* task.c: create_task */
};

/* The tables above as one (it lives as long as the process).  A name
 * listed twice is a mistake: SystemError. */
static PyMethodDef *
loop_methods(void)
{
    size_t n = 1;
    for (size_t t = 0; t < Py_ARRAY_LENGTH(loop_method_tables); t++) {
        for (const PyMethodDef *m = loop_method_tables[t]; m->ml_name; m++) {
            n++;
        }
    }
    PyMethodDef *all = PyMem_RawCalloc(n, sizeof(PyMethodDef));
    if (all == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    size_t len = 0;
    for (size_t t = 0; t < Py_ARRAY_LENGTH(loop_method_tables); t++) {
        for (const PyMethodDef *m = loop_method_tables[t]; m->ml_name; m++) {
            for (size_t i = 0; i < len; i++) {
                if (strcmp(all[i].ml_name, m->ml_name) == 0) {
                    PyErr_Format(PyExc_SystemError,
                                 "fastloop: Loop.%s is listed twice",
                                 m->ml_name);
                    PyMem_RawFree(all);
                    return NULL;
                }
            }
            all[len++] = *m;
        }
    }
    return all;
}

/* ---- the module: multi-phase init ------------------------------------ */

static int
fl_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    fl_module_state *st = PyModule_GetState(module);
    if (st == NULL) {
        return 0;
    }
    PyObject **refs = (PyObject **)st;
    for (size_t i = 0; i < FL_STATE_NREFS; i++) {
        Py_VISIT(refs[i]);
    }
    return 0;
}

static int
fl_module_clear(PyObject *module)
{
    fl_module_state *st = PyModule_GetState(module);
    if (st == NULL) {
        return 0;
    }
    PyObject **refs = (PyObject **)st;
    for (size_t i = 0; i < FL_STATE_NREFS; i++) {
        Py_CLEAR(refs[i]);
    }
    return 0;
}

static void
fl_module_free(void *module)
{
    (void)fl_module_clear((PyObject *)module);
}

/* Py_mod_exec.  fastloop._core runs once per process, in the main
 * interpreter: its types and state are reached through process-wide
 * pointers (fl_state, the hooks the C files hand each other) set here, so
 * that hot paths compare types and read cached objects without looking up
 * a module.  A second module object -- another interpreter, or an import
 * after `del sys.modules["fastloop._core"]` -- would need its own, and is
 * refused with ImportError.  (importlib.reload() of the module does not
 * run this again: it keeps the module as it is.) */
static int
fl_module_exec(PyObject *module)
{
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "fastloop._core does not support loading in "
                        "subinterpreters (it keeps process-wide state); "
                        "import it in the main interpreter");
        return -1;
    }
    if (fl_state != NULL) {
        PyErr_SetString(PyExc_ImportError,
                        "fastloop._core is already loaded in this process "
                        "and cannot be loaded again (it keeps process-wide "
                        "state); use the module that is loaded");
        return -1;
    }
    fl_module_state *st = PyModule_GetState(module);
    if (st == NULL) {
        return -1;
    }
    fl_state = st;
    PyMethodDef *methods = NULL;
    if (fill_state() < 0 || fl_handle_init(module) < 0 ||
        (methods = loop_methods()) == NULL ||
        fl_loop_init(module, methods) < 0 || fl_future_init(module) < 0 ||
        fl_task_init(module) < 0 || fl_stream_init(module) < 0 ||
        fl_server_init(module) < 0 || fl_sock_init(module) < 0) {
        /* The module object goes away with what was filled in (m_free);
         * a later import may try again. */
        fl_state = NULL;
        return -1;
    }
    /* The module, and so its state, lives as long as the process (this
     * reference is never released).  Objects of fastloop's types may be
     * cleared or freed after the module would otherwise go -- by the
     * garbage collector at interpreter exit, in the same batch as the
     * module -- and their slots read the state (Task's tp_clear calls its
     * asyncio base's, found there).  The static globals the state replaced
     * lived as long. */
    Py_INCREF(module);
    return 0;
}

static PyModuleDef_Slot fl_module_slots[] = {
    {Py_mod_exec, fl_module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* See fl_module_exec.  3.11 has no such slot: the exec function
     * refuses a subinterpreter itself. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* The module relies on the GIL: call_soon_threadsafe appends to a
     * loop's ready queue from other threads with no lock but the GIL (see
     * docs/ARCHITECTURE.md).  A free-threaded build keeps the GIL enabled
     * while fastloop is loaded. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef fl_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_methods = fl_module_methods,
    .m_name = "fastloop._core",
    .m_doc = "fastloop's C core: the libev event loop, handles, futures.",
    .m_size = sizeof(fl_module_state),
    .m_slots = fl_module_slots,
    .m_traverse = fl_module_traverse,
    .m_clear = fl_module_clear,
    .m_free = fl_module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    /* The references come first in the state, whole pointers. */
    Py_BUILD_ASSERT(offsetof(fl_module_state, fl_state_end_of_references) %
                        sizeof(PyObject *) ==
                    0);
    return PyModuleDef_Init(&fl_module_def);
}
