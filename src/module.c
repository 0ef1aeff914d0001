/* module.c: fastloop._core module init.
 *
 * Owns the module-state instance (fl_state) and the import of the asyncio
 * pieces the C code calls on cold paths (formatting, logging, debug checks).
 */
#include "module.h"
#include "server.h"

/* Single-phase init: one instance for the process. */
static fl_module_state fl_state_storage;
fl_module_state *fl_state = &fl_state_storage;

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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fl_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_methods = fl_module_methods,
    .m_name = "fastloop._core",
    .m_doc = "fastloop's C core: the libev event loop, handles, futures.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    PyObject *module = PyModule_Create(&fl_module_def);
    if (module == NULL) {
        return NULL;
    }
    if (fill_state() < 0 || fl_handle_init(module) < 0 ||
        fl_loop_init(module) < 0 || fl_future_init(module) < 0 ||
        fl_task_init(module) < 0 || fl_stream_init(module) < 0 ||
        fl_server_init(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
