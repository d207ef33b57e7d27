/*
 * devattest.cose._cbor_scan: a one-pass validator for strict CBOR (RFC 8949).
 *
 * scan(data, max_depth, max_items, max_bignum_bits) walks the encoded bytes once, without
 * decoding them, and
 * answers whether devattest.cose._cbor.strict_loads may hand `data` straight to cbor2's
 * decoder. It mirrors _strict_walk in _cbor.py check for check and in the same order, so an
 * error it reports is the first violation the walker would report:
 *
 *   None                  one well-formed item, nothing after it, within the limits, only
 *                         definite lengths and preferred (shortest) heads, no refused tag,
 *                         no array/map/tag/simple-value map key, no duplicate map key, no
 *                         bignum (tag 2/3) above max_bignum_bits.
 *   (SCAN_SLOW_PATH, pos) valid or not, the pure-Python walker must decide: an indefinite
 *                         length, a non-preferred head, a float map key (1 and 1.0 are one
 *                         key in Python's data model), a map with more than MAP_PAIRS_MAX
 *                         pairs, or more nesting/keys than the fixed tables.
 *   (code, pos)           the violation `code` at byte offset `pos`.
 *
 * Duplicate keys are found by comparing encoded key bytes. That is exact here: keys are
 * integers or strings, all with preferred heads, and each such value has exactly one encoding
 * (a valid UTF-8 string has one byte sequence).
 *
 * Memory: two fixed tables on the C stack; no allocation. Every read is checked against the
 * buffer length, lengths are 64-bit and compared against the bytes left (never added to the
 * offset before that check).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Result codes; _cbor.py maps each to its EvidenceError subclass. */
enum {
    SCAN_NESTING_TOO_DEEP = 1,
    SCAN_TOO_MANY_ITEMS = 2,
    SCAN_DUPLICATE_MAP_KEY = 3,
    SCAN_TRAILING_BYTES = 4,
    SCAN_TRUNCATED = 5,
    SCAN_INVALID_CBOR = 6,
    SCAN_UNEXPECTED_TAG = 7,
    SCAN_UNSUPPORTED_CBOR = 8,
    SCAN_SLOW_PATH = 9,
    SCAN_INTEGER_TOO_LARGE = 10,
};

/* The interface version: _cbor.py uses a scanner only if it reports this one. */
#define SCAN_ABI 2

#define FRAMES_MAX 128     /* open arrays, maps and tags (depth + 1 suffices below this) */
#define KEYS_MAX 512       /* keys of all open maps */
#define MAP_PAIRS_MAX 64   /* larger maps go to the walker (O(n^2) key comparison here) */

enum { K_ARRAY = 0, K_MAP = 1, K_TAG = 2 };

typedef struct {
    uint64_t total;    /* entries: items of an array, pairs of a map, 1 for a tag */
    uint64_t done;
    size_t key_start;  /* maps: offset of the key being read */
    uint32_t keys_base; /* maps: index of this map's first key in the key table */
    uint8_t kind;
    uint8_t counted;   /* whether the frame adds a nesting level */
    uint8_t expect_key;
    uint8_t bignum;    /* tags: 2 or 3, whose content is a bignum's magnitude */
} frame_t;

typedef struct {
    const unsigned char *p;
    size_t len;
} keyspan_t;

/* RFC 3629 section 4 (the well-formed byte sequences), as Python's strict UTF-8 decoder
 * applies it: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int
utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xC2) {
            return 0;
        }
        if (c < 0xE0) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80) {
                return 0;
            }
            i += 2;
            continue;
        }
        if (c < 0xF0) {
            if (n - i < 3) {
                return 0;
            }
            unsigned c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) {
                return 0;
            }
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) {
                return 0;
            }
            i += 3;
            continue;
        }
        if (c < 0xF5) {
            if (n - i < 4) {
                return 0;
            }
            unsigned c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80
                    || (s[i + 3] & 0xC0) != 0x80) {
                return 0;
            }
            if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) {
                return 0;
            }
            i += 4;
            continue;
        }
        return 0;
    }
    return 1;
}

/* The tags strict_loads refuses (REFUSED_TAGS in _cbor.py). */
static int
tag_refused(uint64_t tag)
{
    return tag == 25 || tag == 28 || tag == 29 || tag == 35 || tag == 36 || tag == 256;
}

/* The magnitude, in bits, of the bignum whose content (a definite byte string with a
 * preferred head) is data[start:end]: leading zero bytes do not count. */
static uint64_t
bignum_bits(const unsigned char *data, size_t start, size_t end)
{
    const unsigned info = data[start] & 0x1F;
    size_t p = start + 1 + (info >= 24 ? ((size_t)1 << (info - 24)) : 0);
    while (p < end && data[p] == 0) {
        p++;
    }
    if (p == end) {
        return 0;
    }
    uint64_t bits = (uint64_t)(end - p - 1) * 8;
    for (unsigned c = data[p]; c; c >>= 1) {
        bits++;
    }
    return bits;
}

/* Walk data[0:n]. Returns 0 when accepted, else a SCAN_* code with *at set to the offset. */
static int
scan_bytes(const unsigned char *data, size_t n, uint64_t max_depth, uint64_t max_items,
           uint64_t max_bignum_bits, size_t *at)
{
    frame_t frames[FRAMES_MAX];
    keyspan_t keys[KEYS_MAX];
    int sp = 0;
    uint32_t nkeys = 0;
    uint64_t depth = 0;
    size_t pos = 0;

#define FAIL(code, where) do { *at = (where); return (code); } while (0)

    for (;;) {
        if (sp > 0 && frames[sp - 1].kind == K_MAP && frames[sp - 1].expect_key) {
            frames[sp - 1].key_start = pos;
        }
        /* RFC 8949 section 3: the initial byte and its argument. */
        if (pos >= n) {
            FAIL(SCAN_TRUNCATED, pos);
        }
        const size_t head = pos;
        const unsigned ib = data[pos++];
        const unsigned major = ib >> 5;
        const unsigned info = ib & 0x1F;
        uint64_t arg = info;
        int indefinite = 0;
        if (info >= 24 && info <= 27) {
            const size_t size = (size_t)1 << (info - 24);
            if (size > n - pos) {
                FAIL(SCAN_TRUNCATED, pos);
            }
            arg = 0;
            for (size_t i = 0; i < size; i++) {
                arg = (arg << 8) | data[pos + i];
            }
            pos += size;
            /* RFC 8949 section 4.2.1: preferred serialization uses the shortest head.
             * (In major type 7, info 24 is a simple value and 25-27 are floats.) */
            if (major != 7) {
                static const uint64_t shortest[4] = {24, 0x100, 0x10000, 0x100000000ULL};
                if (arg < shortest[info - 24]) {
                    FAIL(SCAN_SLOW_PATH, head);
                }
            }
        } else if (info >= 28 && info <= 30) {
            FAIL(SCAN_INVALID_CBOR, head);
        } else if (info == 31) {
            indefinite = 1;
        }

        int complex = 0; /* the item is an array, a map or a tag */
        switch (major) {
        case 0:
        case 1:
            if (indefinite) {
                FAIL(SCAN_INVALID_CBOR, head);
            }
            break;
        case 2:
        case 3:
            if (indefinite) {
                FAIL(SCAN_SLOW_PATH, head);
            }
            if (arg > (uint64_t)(n - pos)) {
                FAIL(SCAN_TRUNCATED, pos);
            }
            if (major == 3 && !utf8_valid(data + pos, (size_t)arg)) {
                FAIL(SCAN_INVALID_CBOR, head);
            }
            pos += (size_t)arg;
            break;
        case 4:
        case 5:
            if (indefinite) {
                FAIL(SCAN_SLOW_PATH, head);
            }
            if (arg > max_items) {
                FAIL(SCAN_TOO_MANY_ITEMS, head);
            }
            /* Every entry takes at least one byte (two per map pair). */
            if (major == 4 ? arg > (uint64_t)(n - pos) : arg > (uint64_t)(n - pos) / 2) {
                FAIL(SCAN_TRUNCATED, pos);
            }
            if (depth >= max_depth) {
                FAIL(SCAN_NESTING_TOO_DEEP, head);
            }
            if (arg == 0) {
                complex = 1;
                break;
            }
            if ((major == 5 && arg > MAP_PAIRS_MAX) || sp == FRAMES_MAX) {
                FAIL(SCAN_SLOW_PATH, head);
            }
            frames[sp].kind = major == 4 ? K_ARRAY : K_MAP;
            frames[sp].total = arg;
            frames[sp].done = 0;
            frames[sp].counted = 1;
            frames[sp].expect_key = 1;
            frames[sp].bignum = 0;
            frames[sp].keys_base = nkeys;
            frames[sp].key_start = pos;
            sp++;
            depth++;
            continue;
        case 6:
            if (indefinite) {
                FAIL(SCAN_INVALID_CBOR, head);
            }
            if (tag_refused(arg)) {
                FAIL(SCAN_UNEXPECTED_TAG, head);
            }
            if (pos >= n) {
                FAIL(SCAN_TRUNCATED, pos);
            }
            {
                /* The content nests when it is an array, a map or a tag. */
                const unsigned content = data[pos] >> 5;
                const int counted = content >= 4 && content <= 6;
                if (counted && depth >= max_depth) {
                    FAIL(SCAN_NESTING_TOO_DEEP, head);
                }
                if (sp == FRAMES_MAX) {
                    FAIL(SCAN_SLOW_PATH, head);
                }
                frames[sp].kind = K_TAG;
                frames[sp].total = 1;
                frames[sp].done = 0;
                frames[sp].counted = (uint8_t)counted;
                frames[sp].expect_key = 0;
                frames[sp].bignum = arg == 2 || arg == 3;
                frames[sp].keys_base = nkeys;
                frames[sp].key_start = pos;
                sp++;
                depth += (uint64_t)counted;
            }
            continue;
        default:
            /* RFC 8949 section 3.3: simple values and floats. A break is never expected:
             * indefinite lengths went to the walker. */
            if (indefinite) {
                FAIL(SCAN_INVALID_CBOR, head);
            }
            if (info == 24 && arg < 32) {
                FAIL(SCAN_INVALID_CBOR, head);
            }
            break;
        }

        /* The item is complete: account for it in its enclosing containers. */
        for (;;) {
            if (sp == 0) {
                if (pos != n) {
                    FAIL(SCAN_TRAILING_BYTES, pos);
                }
                return 0;
            }
            frame_t *f = &frames[sp - 1];
            if (f->kind == K_MAP) {
                if (f->expect_key) {
                    const unsigned char *k = data + f->key_start;
                    const size_t klen = pos - f->key_start;
                    if (complex) {
                        FAIL(SCAN_UNSUPPORTED_CBOR, f->key_start);
                    }
                    /* Simple values (false, true, null, undefined and the rest) are refused
                     * as keys. */
                    if (k[0] >= 0xE0 && k[0] <= 0xF8) {
                        FAIL(SCAN_UNSUPPORTED_CBOR, pos - 1);
                    }
                    /* Floats equal integers in Python (0 == 0.0, NaN != NaN): the walker
                     * compares those keys by value. */
                    if (k[0] >= 0xF9 && k[0] <= 0xFB) {
                        FAIL(SCAN_SLOW_PATH, f->key_start);
                    }
                    for (uint32_t i = f->keys_base; i < nkeys; i++) {
                        if (keys[i].len == klen && memcmp(keys[i].p, k, klen) == 0) {
                            FAIL(SCAN_DUPLICATE_MAP_KEY, f->key_start);
                        }
                    }
                    if (nkeys == KEYS_MAX) {
                        FAIL(SCAN_SLOW_PATH, f->key_start);
                    }
                    keys[nkeys].p = k;
                    keys[nkeys].len = klen;
                    nkeys++;
                    f->expect_key = 0;
                    break;
                }
                f->expect_key = 1;
            } else if (f->bignum) {
                /* RFC 8949 section 3.4.3: a bignum is a byte string holding the magnitude.
                 * (An indefinite-length one went to the walker.) */
                if ((data[f->key_start] >> 5) != 2) {
                    FAIL(SCAN_INVALID_CBOR, f->key_start);
                }
                if (bignum_bits(data, f->key_start, pos) > max_bignum_bits) {
                    FAIL(SCAN_INTEGER_TOO_LARGE, f->key_start);
                }
            }
            f->done++;
            if (f->done < f->total) {
                break;
            }
            sp--;
            depth -= f->counted;
            nkeys = f->keys_base;
            complex = 1;
        }
    }
#undef FAIL
}

/* A non-negative limit as uint64 (larger than 2**64-1 means unlimited); -1 if negative. */
static int
limit_arg(PyObject *obj, uint64_t *out)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -2;
    }
    if (overflow > 0) {
        *out = UINT64_MAX;
        return 0;
    }
    if (overflow < 0 || v < 0) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(data, max_depth, max_items, max_bignum_bits, /)\n--\n\n"
"Validate one strict CBOR item in one pass over ``data`` (bytes).\n\n"
"Returns None when cbor2 may decode ``data`` directly, else ``(code, offset)``:\n"
"a violation code, or SCAN_SLOW_PATH when the pure-Python walker must decide.");

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "scan() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "scan() argument 1 must be bytes, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (!PyLong_Check(args[1]) || !PyLong_Check(args[2]) || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "scan() limits must be int");
        return NULL;
    }
    uint64_t max_depth, max_items, max_bignum_bits;
    int r1 = limit_arg(args[1], &max_depth);
    if (r1 == -2) {
        return NULL;
    }
    int r2 = limit_arg(args[2], &max_items);
    if (r2 == -2) {
        return NULL;
    }
    int r3 = limit_arg(args[3], &max_bignum_bits);
    if (r3 == -2) {
        return NULL;
    }
    if (r1 < 0 || r2 < 0 || r3 < 0) {
        /* Negative limits: leave the semantics to the walker. */
        return Py_BuildValue("(in)", SCAN_SLOW_PATH, (Py_ssize_t)0);
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    size_t n = (size_t)PyBytes_GET_SIZE(args[0]);
    size_t at = 0;
    int code = scan_bytes(data, n, max_depth, max_items, max_bignum_bits, &at);
    if (code == 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(in)", code, (Py_ssize_t)at);
}

static PyMethodDef scan_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {NULL, NULL, 0, NULL},
};

static int
scan_exec(PyObject *module)
{
    static const struct {
        const char *name;
        int value;
    } constants[] = {
        {"SCAN_NESTING_TOO_DEEP", SCAN_NESTING_TOO_DEEP},
        {"SCAN_TOO_MANY_ITEMS", SCAN_TOO_MANY_ITEMS},
        {"SCAN_DUPLICATE_MAP_KEY", SCAN_DUPLICATE_MAP_KEY},
        {"SCAN_TRAILING_BYTES", SCAN_TRAILING_BYTES},
        {"SCAN_TRUNCATED", SCAN_TRUNCATED},
        {"SCAN_INVALID_CBOR", SCAN_INVALID_CBOR},
        {"SCAN_UNEXPECTED_TAG", SCAN_UNEXPECTED_TAG},
        {"SCAN_UNSUPPORTED_CBOR", SCAN_UNSUPPORTED_CBOR},
        {"SCAN_SLOW_PATH", SCAN_SLOW_PATH},
        {"SCAN_INTEGER_TOO_LARGE", SCAN_INTEGER_TOO_LARGE},
        {"MAP_PAIRS_MAX", MAP_PAIRS_MAX},
        {"SCAN_ABI", SCAN_ABI},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0) {
            return -1;
        }
    }
    PyObject *refused = Py_BuildValue("(iiiiii)", 25, 28, 29, 35, 36, 256);
    if (refused == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "REFUSED_TAGS", refused) < 0) {
        Py_DECREF(refused);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot scan_slots[] = {
    {Py_mod_exec, (void *)scan_exec},
#ifdef Py_GIL_DISABLED
    /* scan() only reads an immutable bytes object and its own stack. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "devattest.cose._cbor_scan",
    .m_doc = "One-pass strict CBOR validator for devattest.cose._cbor.strict_loads.",
    .m_size = 0,
    .m_methods = scan_methods,
    .m_slots = scan_slots,
};

PyMODINIT_FUNC
PyInit__cbor_scan(void)
{
    return PyModuleDef_Init(&scan_module);
}
