/*
 * syncws._speedups: the byte loops of the WebSocket framing, in C.
 *
 * apply_mask(data, key) XORs data with the 4-byte key repeated (RFC 6455, section 5.3).
 * It is optional: syncws._framing falls back to Python when this module is missing or
 * SYNCWS_NO_SPEEDUPS is set, and both give the same bytes.
 *
 * Payloads of MASK_NOGIL bytes or more are masked without the GIL, so that the other
 * connections' threads run meanwhile. The result is a new bytes object that no other
 * thread can see yet; the input stays exported (Py_buffer) for the whole call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MASK_NOGIL (64 * 1024)

static void
mask_into(const unsigned char *src, unsigned char *dst, Py_ssize_t size,
          const unsigned char *key)
{
    unsigned char pattern[8];
    uint64_t key64;
    Py_ssize_t i = 0;

    memcpy(pattern, key, 4);
    memcpy(pattern + 4, key, 4);
    memcpy(&key64, pattern, 8);
    /* Two words per turn: compilers turn this into vector code at -O2 and above. */
    for (; i + 16 <= size; i += 16) {
        uint64_t a, b;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        a ^= key64;
        b ^= key64;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
    }
    /* i is a multiple of 16 here, so the key starts again at key[0]. */
    for (; i < size; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, key, /)\n"
"--\n"
"\n"
"Return data XORed with the 4-byte key repeated (RFC 6455, section 5.3).\n"
"\n"
"data and key may be any contiguous bytes-like objects.");

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, key;
    PyObject *result = NULL;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "apply_mask() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (key.len != 4) {
        PyErr_Format(PyExc_ValueError, "the mask key must be 4 bytes, not %zd", key.len);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    if (data.len >= MASK_NOGIL) {
        Py_BEGIN_ALLOW_THREADS
        mask_into((const unsigned char *)data.buf,
                  (unsigned char *)PyBytes_AS_STRING(result), data.len,
                  (const unsigned char *)key.buf);
        Py_END_ALLOW_THREADS
    }
    else {
        mask_into((const unsigned char *)data.buf,
                  (unsigned char *)PyBytes_AS_STRING(result), data.len,
                  (const unsigned char *)key.buf);
    }
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL, apply_mask_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "syncws._speedups",
    "The byte loops of the WebSocket framing, in C (optional; see syncws._framing).",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
