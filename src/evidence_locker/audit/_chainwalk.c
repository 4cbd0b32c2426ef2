/*
 * The audit chain walk's page check on SQLite, compiled: the part of `verify_chain` that runs
 * once per event (build the hashed document, SHA-256 it, compare, check the link), without a
 * Python object per column.
 *
 * check_page(handle, sql, params) runs one page query of the walk (the 16 walk columns, in
 * seq, id order) on a read-only connection of its own and returns what PostgreSQL's SQL check
 * returns (chain._sql_checked): only the rows Python must look at - the page's first row,
 * every row whose hash or link this code cannot confirm, and the page's last row - each as
 * the 16 columns, then rn (1-based place in the page), ok (its own hash confirmed), and the
 * id, seq and hash of the row before it. Python re-checks every returned row with its own
 * digest, so this code may only ever be too suspicious: where it is not sure (a value of an
 * unexpected type, a timestamp not in SQLAlchemy's form) it says "not ok" and Python judges.
 *
 * The document is `chain._DOC` byte for byte: canonical JSON (sorted keys, no spaces,
 * ensure_ascii=False) of the 13 content fields, seq, prev_hash and "v": 1. Strings are escaped
 * as Python's json does with ensure_ascii=False: '"' and '\\', \b \f \n \r \t, other controls
 * below 0x20 as \u00xx in lowercase hex, every other byte as it is.
 *
 * The GIL is released while SQLite steps and rows are hashed, so ranges can be walked from
 * threads. It links the system's libsqlite3, which Python's sqlite3 module uses too, so SQLite's
 * POSIX lock bookkeeping is shared within the process (chain.compiled_digest_available refuses
 * a different version; a test checks one library is mapped).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#define NCOL 16
#define C_ID 0
#define C_OCCURRED_AT 1
#define C_SEQ 13
#define C_PREV_HASH 14
#define C_HASH 15

static PyObject *WalkError;

/* --- byte buffers -------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->n + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

#define PUT_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

static const char HEX[] = "0123456789abcdef";

/* Bytes JSON escapes (controls, '"', '\\'), filled in by PyInit. */
static unsigned char ESCAPED[256];

/* A JSON string as Python's json.dumps(ensure_ascii=False) writes it. */
static int buf_json_string(Buf *b, const unsigned char *s, size_t n) {
    if (buf_reserve(b, n * 6 + 2)) return -1;
    char *o = b->p + b->n;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && !ESCAPED[s[run]]) run++;
        memcpy(o, s + i, run - i); /* the unescaped run, as it is */
        o += run - i;
        if (run == n) break;
        unsigned char c = s[run];
        i = run + 1;
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u'; *o++ = '0'; *o++ = '0';
            *o++ = HEX[c >> 4]; *o++ = HEX[c & 15];
        }
    }
    *o++ = '"';
    b->n = (size_t)(o - b->p);
    return 0;
}

/* --- rows copied out of SQLite (its column pointers die at the next step) ------------------ */

typedef struct {
    int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL */
    sqlite3_int64 i;
    double d;
    size_t off, n; /* bytes of a TEXT or BLOB value in the row's arena */
} Cell;

typedef struct {
    Cell c[NCOL];
    Buf arena;
} Row;

static int row_load(Row *r, sqlite3_stmt *st) {
    r->arena.n = 0;
    for (int k = 0; k < NCOL; k++) {
        Cell *cell = &r->c[k];
        cell->type = sqlite3_column_type(st, k);
        cell->off = cell->n = 0;
        if (cell->type == SQLITE_INTEGER) {
            cell->i = sqlite3_column_int64(st, k);
        } else if (cell->type == SQLITE_FLOAT) {
            cell->d = sqlite3_column_double(st, k);
        } else if (cell->type == SQLITE_TEXT || cell->type == SQLITE_BLOB) {
            const void *p = cell->type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, k)
                                                      : sqlite3_column_blob(st, k);
            int n = sqlite3_column_bytes(st, k);
            if (n < 0 || (n > 0 && p == NULL)) return -1;
            cell->off = r->arena.n;
            cell->n = (size_t)n;
            if (n > 0 && buf_put(&r->arena, p, (size_t)n)) return -1;
        }
    }
    return 0;
}

static const unsigned char *row_bytes(const Row *r, int k) {
    return (const unsigned char *)r->arena.p + r->c[k].off;
}

static int row_copy(Row *dst, const Row *src) {
    memcpy(dst->c, src->c, sizeof dst->c);
    dst->arena.n = 0;
    return buf_put(&dst->arena, src->arena.p ? src->arena.p : "", src->arena.n);
}

/* Do two cells hold the same value, as `IS NOT DISTINCT FROM` says (types must match)? */
static int cell_same(const Row *a, int ka, const Row *b, int kb) {
    const Cell *x = &a->c[ka], *y = &b->c[kb];
    if (x->type != y->type) return 0;
    switch (x->type) {
    case SQLITE_NULL: return 1;
    case SQLITE_INTEGER: return x->i == y->i;
    case SQLITE_FLOAT: return x->d == y->d;
    default:
        return x->n == y->n &&
               (x->n == 0 || memcmp(row_bytes(a, ka), row_bytes(b, kb), x->n) == 0);
    }
}

/* --- the hashed document ------------------------------------------------------------------- */

/* A text field as JSON (NULL is null); 0 = not sure (not text), -1 = out of memory. */
static int doc_text(Buf *d, const Row *r, int k) {
    const Cell *c = &r->c[k];
    if (c->type == SQLITE_NULL) return PUT_LIT(d, "null") ? -1 : 1;
    if (c->type != SQLITE_TEXT) return 0;
    return buf_json_string(d, row_bytes(r, k), c->n) ? -1 : 1;
}

static int doc_int(Buf *d, const Row *r, int k) {
    const Cell *c = &r->c[k];
    if (c->type != SQLITE_INTEGER) return 0;
    char s[24], *e = s + sizeof s, *p = e;
    /* through unsigned, so INT64_MIN has a magnitude */
    uint64_t v = c->i < 0 ? (uint64_t)0 - (uint64_t)c->i : (uint64_t)c->i;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (c->i < 0) *--p = '-';
    return buf_put(d, p, (size_t)(e - p)) ? -1 : 1;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* occurred_at as SQLAlchemy stores it in SQLite, "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), written as
 * "YYYY-MM-DDTHH:MM:SS.ffffff+00:00". Any other form: not sure. */
static int doc_instant(Buf *d, const Row *r, int k) {
    static const char shape[] = "dddd-dd-dd dd:dd:dd.dddddd";
    const Cell *c = &r->c[k];
    if (c->type != SQLITE_TEXT || c->n != sizeof shape - 1) return 0;
    const unsigned char *s = row_bytes(r, k);
    for (size_t i = 0; i < c->n; i++) {
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != (unsigned char)shape[i]) return 0;
    }
    if (PUT_LIT(d, "\"") || buf_put(d, (const char *)s, 10) || PUT_LIT(d, "T") ||
        buf_put(d, (const char *)s + 11, 15) || PUT_LIT(d, "+00:00\""))
        return -1;
    return 1;
}

typedef int (*Field)(Buf *, const Row *, int);

/* `chain._DOC`'s keys in sorted order, each with the column it comes from. */
#define KEY(s) s, sizeof(s) - 1
static const struct {
    const char *key;
    size_t len;
    int col;
    Field write;
} DOC[] = {
    {KEY("{\"action\":"), 2, doc_text},       {KEY(",\"actor_id\":"), 4, doc_text},
    {KEY(",\"actor_name\":"), 5, doc_text},   {KEY(",\"actor_type\":"), 3, doc_text},
    {KEY(",\"details\":"), 12, doc_text},     {KEY(",\"id\":"), 0, doc_int},
    {KEY(",\"ip\":"), 8, doc_text},           {KEY(",\"object_id\":"), 7, doc_text},
    {KEY(",\"object_type\":"), 6, doc_text},  {KEY(",\"occurred_at\":"), 1, doc_instant},
    {KEY(",\"prev_hash\":"), 14, doc_text},   {KEY(",\"purpose\":"), 10, doc_text},
    {KEY(",\"reason\":"), 11, doc_text},      {KEY(",\"seq\":"), 13, doc_int},
    {KEY(",\"user_agent\":"), 9, doc_text},
};

/* 1 when the row's stored hash is the SHA-256 of its document, 0 when not (or not sure), -1 on
 * an error. */
static int hash_ok(const Row *r, Buf *doc, EVP_MD_CTX *ctx, const EVP_MD *md) {
    if (r->c[C_HASH].type != SQLITE_TEXT || r->c[C_HASH].n != 64) return 0;
    if (r->c[C_PREV_HASH].type != SQLITE_TEXT) return 0;
    doc->n = 0;
    for (size_t f = 0; f < sizeof DOC / sizeof DOC[0]; f++) {
        if (buf_put(doc, DOC[f].key, DOC[f].len)) return -1;
        int w = DOC[f].write(doc, r, DOC[f].col);
        if (w <= 0) return w;
    }
    if (PUT_LIT(doc, ",\"v\":1}")) return -1;
    unsigned char md_value[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, doc->p, doc->n) ||
        !EVP_DigestFinal_ex(ctx, md_value, &md_len) || md_len != 32)
        return -1;
    const unsigned char *want = row_bytes(r, C_HASH);
    for (unsigned int i = 0; i < 32; i++) {
        if (want[2 * i] != (unsigned char)HEX[md_value[i] >> 4] ||
            want[2 * i + 1] != (unsigned char)HEX[md_value[i] & 15])
            return 0;
    }
    return 1;
}

/* --- one page ------------------------------------------------------------------------------ */

typedef struct {
    Row row;
    Row prev; /* id, seq, hash of the row before (valid when rn > 1) */
    sqlite3_int64 rn;
    int ok;
} Flagged;

typedef struct {
    Flagged *items;
    size_t n, cap;
} FlagList;

static void flags_free(FlagList *f) {
    for (size_t i = 0; i < f->n; i++) {
        free(f->items[i].row.arena.p);
        free(f->items[i].prev.arena.p);
    }
    free(f->items);
    f->items = NULL;
    f->n = f->cap = 0;
}

static int flags_push(FlagList *f, const Row *row, const Row *prev, sqlite3_int64 rn, int ok) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        Flagged *items = realloc(f->items, cap * sizeof *items);
        if (!items) return -1;
        f->items = items;
        f->cap = cap;
    }
    Flagged *it = &f->items[f->n];
    memset(it, 0, sizeof *it);
    f->n++;
    it->rn = rn;
    it->ok = ok;
    if (row_copy(&it->row, row)) return -1;
    if (prev != NULL && row_copy(&it->prev, prev)) return -1;
    if (prev == NULL) {
        for (int k = 0; k < NCOL; k++) it->prev.c[k].type = SQLITE_NULL;
    }
    return 0;
}

typedef struct {
    sqlite3 *db;
    EVP_MD *md;
    EVP_MD_CTX *ctx;
} Handle;

static void handle_free(PyObject *capsule) {
    Handle *h = PyCapsule_GetPointer(capsule, "chainwalk.handle");
    if (!h) return;
    if (h->db) sqlite3_close_v2(h->db);
    if (h->ctx) EVP_MD_CTX_free(h->ctx);
    if (h->md) EVP_MD_free(h->md);
    PyMem_Free(h);
}

static PyObject *cell_object(const Row *r, int k) {
    const Cell *c = &r->c[k];
    switch (c->type) {
    case SQLITE_INTEGER: return PyLong_FromLongLong(c->i);
    case SQLITE_FLOAT: return PyFloat_FromDouble(c->d);
    case SQLITE_TEXT:
        return PyUnicode_DecodeUTF8((const char *)row_bytes(r, k), (Py_ssize_t)c->n, NULL);
    case SQLITE_BLOB: return PyBytes_FromStringAndSize((const char *)row_bytes(r, k), (Py_ssize_t)c->n);
    default: Py_RETURN_NONE;
    }
}

static PyObject *flagged_tuple(const Flagged *f) {
    PyObject *t = PyTuple_New(NCOL + 5);
    if (!t) return NULL;
    for (int k = 0; k < NCOL; k++) {
        PyObject *v = cell_object(&f->row, k);
        if (!v) goto fail;
        PyTuple_SET_ITEM(t, k, v);
    }
    PyObject *extra[5] = {PyLong_FromLongLong(f->rn), PyBool_FromLong(f->ok),
                          cell_object(&f->prev, C_ID), cell_object(&f->prev, C_SEQ),
                          cell_object(&f->prev, C_HASH)};
    for (int k = 0; k < 5; k++) {
        if (!extra[k]) {
            for (int j = 0; j < 5; j++) Py_XDECREF(extra[j]);
            goto fail;
        }
    }
    for (int k = 0; k < 5; k++) PyTuple_SET_ITEM(t, NCOL + k, extra[k]);
    return t;
fail:
    Py_DECREF(t);
    return NULL;
}

static PyObject *walk_error(sqlite3 *db, const char *what) {
    PyErr_Format(WalkError, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return NULL;
}

static PyObject *py_connect(PyObject *self, PyObject *args) {
    (void)self;
    const char *path;
    int timeout_ms = 30000;
    if (!PyArg_ParseTuple(args, "s|i", &path, &timeout_ms)) return NULL;
    Handle *h = PyMem_Calloc(1, sizeof *h);
    if (!h) return PyErr_NoMemory();
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(h->db, timeout_ms);
    Py_END_ALLOW_THREADS
    PyObject *capsule = PyCapsule_New(h, "chainwalk.handle", handle_free);
    if (!capsule) {
        if (h->db) sqlite3_close_v2(h->db);
        PyMem_Free(h);
        return NULL;
    }
    if (rc != SQLITE_OK) {
        walk_error(h->db, "cannot open the database");
        Py_DECREF(capsule);
        return NULL;
    }
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->ctx = EVP_MD_CTX_new();
    if (!h->md || !h->ctx) {
        PyErr_SetString(WalkError, "OpenSSL has no SHA-256");
        Py_DECREF(capsule);
        return NULL;
    }
    return capsule;
}

static PyObject *py_close(PyObject *self, PyObject *capsule) {
    (void)self;
    Handle *h = PyCapsule_GetPointer(capsule, "chainwalk.handle");
    if (!h) return NULL;
    if (h->db) {
        sqlite3_close_v2(h->db);
        h->db = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_check_page(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *capsule, *params;
    const char *sql;
    if (!PyArg_ParseTuple(args, "OsO!", &capsule, &sql, &PyTuple_Type, &params)) return NULL;
    Handle *h = PyCapsule_GetPointer(capsule, "chainwalk.handle");
    if (!h) return NULL;
    if (!h->db) {
        PyErr_SetString(WalkError, "the connection is closed");
        return NULL;
    }
    Py_ssize_t nparams = PyTuple_GET_SIZE(params);
    sqlite3_int64 values[16];
    if (nparams > 16) {
        PyErr_SetString(PyExc_ValueError, "at most 16 parameters");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nparams; i++) {
        values[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(params, i));
        if (values[i] == -1 && PyErr_Occurred()) return NULL;
    }

    sqlite3_stmt *st = NULL;
    Row cur = {0}, prev = {0};
    Buf doc = {0};
    FlagList flags = {0};
    sqlite3_int64 rn = 0;
    int last_flagged = 0, failed = 0; /* failed: 1 SQLite error, 2 out of memory */
    const char *what = "";

    Py_BEGIN_ALLOW_THREADS
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_column_count(st) != NCOL) {
        failed = 1;
        what = "cannot prepare the page query";
    }
    for (Py_ssize_t i = 0; !failed && i < nparams; i++) {
        if (sqlite3_bind_int64(st, (int)i + 1, values[i]) != SQLITE_OK) {
            failed = 1;
            what = "cannot bind the page query";
        }
    }
    while (!failed) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            failed = 1;
            what = "page query failed";
            break;
        }
        if (row_load(&cur, st)) {
            failed = 2;
            break;
        }
        rn++;
        int ok = hash_ok(&cur, &doc, h->ctx, h->md);
        if (ok < 0) {
            failed = 2;
            break;
        }
        int linked = rn > 1 && cur.c[C_SEQ].type == SQLITE_INTEGER &&
                     prev.c[C_SEQ].type == SQLITE_INTEGER &&
                     prev.c[C_SEQ].i < INT64_MAX && cur.c[C_SEQ].i == prev.c[C_SEQ].i + 1 &&
                     cell_same(&cur, C_PREV_HASH, &prev, C_HASH);
        last_flagged = rn == 1 || !ok || !linked;
        if (last_flagged && flags_push(&flags, &cur, rn > 1 ? &prev : NULL, rn, ok)) {
            failed = 2;
            break;
        }
        Row t = prev; /* after the swap `prev` is this row and `cur` the one before it */
        prev = cur;
        cur = t;
    }
    if (!failed && rn > 1 && !last_flagged) {
        /* the page's last row (confirmed, so ok = 1): `prev` holds it, `cur` the row before */
        if (flags_push(&flags, &prev, &cur, rn, 1)) failed = 2;
    }
    if (st) sqlite3_finalize(st);
    Py_END_ALLOW_THREADS

    free(cur.arena.p);
    free(prev.arena.p);
    free(doc.p);
    if (failed) {
        flags_free(&flags);
        if (failed == 2) return PyErr_NoMemory();
        return walk_error(h->db, what);
    }
    PyObject *out = PyList_New((Py_ssize_t)flags.n);
    if (!out) {
        flags_free(&flags);
        return NULL;
    }
    for (size_t i = 0; i < flags.n; i++) {
        PyObject *t = flagged_tuple(&flags.items[i]);
        if (!t) {
            Py_DECREF(out);
            flags_free(&flags);
            return NULL;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, t);
    }
    flags_free(&flags);
    return out;
}

static PyMethodDef methods[] = {
    {"connect", py_connect, METH_VARARGS,
     "connect(path, timeout_ms=30000) -> handle: a read-only connection of the walk's own."},
    {"close", py_close, METH_O, "close(handle): close the connection now."},
    {"check_page", py_check_page, METH_VARARGS,
     "check_page(handle, sql, params) -> rows Python must look at (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_chainwalk",
    "The audit chain walk's per-event check on SQLite, compiled.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__chainwalk(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    for (int c = 0; c < 0x20; c++) ESCAPED[c] = 1;
    ESCAPED['"'] = ESCAPED['\\'] = 1;
    WalkError = PyErr_NewException("evidence_locker.audit._chainwalk.WalkError", NULL, NULL);
    if (!WalkError || PyModule_AddObject(m, "WalkError", WalkError) < 0) {
        Py_XDECREF(WalkError);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "sqlite_version", sqlite3_libversion()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
