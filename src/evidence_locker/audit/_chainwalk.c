/*
 * The audit chain walk's page check on SQLite, compiled: the part of `verify_chain` that runs
 * once per event (build the hashed document, SHA-256 it, compare, check the link), without a
 * Python object per column.
 *
 * check_page(handle, sql, params, limit) runs one page query of the walk (the 16 walk columns,
 * in seq, id order; at most `limit` rows, its LIMIT) on a read-only connection of its own, and
 * returns what PostgreSQL's SQL check returns (chain._sql_checked): only the rows Python must look at - the page's first row,
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

static const char HEX[] = "0123456789abcdef";

/* Each byte's two lowercase hex digits, filled in by PyInit. */
static char HEX_PAIR[256][2];

/* Bytes JSON escapes (controls, '"', '\\'), filled in by PyInit. */
static unsigned char ESCAPED[256];

/* --- rows: a view of SQLite's current row, or a copy -------------------------------------- */

typedef struct {
    int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL */
    sqlite3_int64 i;
    double d;
    const unsigned char *p; /* bytes of a TEXT or BLOB value */
    size_t n;
} Cell;

/* A view's cells point into SQLite's row (valid until the next step); a copy's into `arena`. */
typedef struct {
    Cell c[NCOL];
    size_t bytes; /* the values' lengths added up (what the document's room is reckoned from) */
    Buf arena;
} Row;

static const unsigned char EMPTY[1] = "";

/* The current row's cells. Through sqlite3_column_value, one call a column rather than three:
 * its value is "unprotected", which SQLite documents as not thread-safe to read with the
 * sqlite3_value_* functions - and this connection is only ever used by one thread at a time
 * (opened NOMUTEX, a handle per walking thread). The pointers live until the next step. */
static int row_view(Row *r, sqlite3_stmt *st) {
    r->bytes = 0;
    for (int k = 0; k < NCOL; k++) {
        Cell *cell = &r->c[k];
        sqlite3_value *v = sqlite3_column_value(st, k);
        cell->type = sqlite3_value_type(v);
        cell->p = EMPTY;
        cell->n = 0;
        if (cell->type == SQLITE_INTEGER) {
            cell->i = sqlite3_value_int64(v);
        } else if (cell->type == SQLITE_FLOAT) {
            cell->d = sqlite3_value_double(v);
        } else if (cell->type == SQLITE_TEXT || cell->type == SQLITE_BLOB) {
            const void *p = cell->type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v)
                                                      : sqlite3_value_blob(v);
            int n = sqlite3_value_bytes(v);
            if (n < 0 || (n > 0 && p == NULL)) return -1;
            if (n > 0) cell->p = p;
            cell->n = (size_t)n;
            r->bytes += (size_t)n;
        }
    }
    return 0;
}

/* Copy the cells named by `keep` (a bit per column) of `src` into `dst`; the others are NULL. */
static int row_copy(Row *dst, const Row *src, unsigned keep) {
    size_t total = 0;
    for (int k = 0; k < NCOL; k++) {
        if (keep >> k & 1) total += src->c[k].n;
    }
    dst->arena.n = 0;
    dst->bytes = total;
    if (buf_reserve(&dst->arena, total ? total : 1)) return -1;
    for (int k = 0; k < NCOL; k++) {
        Cell *d = &dst->c[k];
        if (!(keep >> k & 1)) {
            if (d->type != SQLITE_NULL || d->p != EMPTY) { /* (already NULL: the usual case) */
                memset(d, 0, sizeof *d);
                d->type = SQLITE_NULL;
                d->p = EMPTY;
            }
            continue;
        }
        *d = src->c[k];
        if (d->n) {
            d->p = (const unsigned char *)dst->arena.p + dst->arena.n;
            memcpy(dst->arena.p + dst->arena.n, src->c[k].p, d->n);
            dst->arena.n += d->n;
        } else {
            d->p = EMPTY;
        }
    }
    return 0;
}

#define ALL_CELLS ((1u << NCOL) - 1)
/* What a link is checked with, and a diagnosis names: the row before's id, seq and hash. */
#define KEY_CELLS (1u << C_ID | 1u << C_SEQ | 1u << C_HASH)

/* Do two cells hold the same value, as `IS NOT DISTINCT FROM` says (types must match)? */
static int cell_same(const Cell *x, const Cell *y) {
    if (x->type != y->type) return 0;
    switch (x->type) {
    case SQLITE_NULL: return 1;
    case SQLITE_INTEGER: return x->i == y->i;
    case SQLITE_FLOAT: return x->d == y->d;
    default: return x->n == y->n && memcmp(x->p, y->p, x->n) == 0;
    }
}

/* --- the hashed document ------------------------------------------------------------------- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Might any of these 8 bytes need escaping (below 0x20, '"' or '\\')? Never wrong when it says
 * no (the classic "has a byte less than n" and "has a zero byte" tests, exact for whether any
 * byte is one); the bytes are then looked at one by one. */
static int word_escapes(uint64_t x) {
    uint64_t quote = x ^ (ONES * '"'), backslash = x ^ (ONES * '\\');
    return (((x - ONES * 0x20) & ~x) | ((quote - ONES) & ~quote) |
            ((backslash - ONES) & ~backslash)) & HIGHS ? 1 : 0;
}

/* One byte of a JSON string, escaped if it must be. */
static char *json_byte(char *o, unsigned char c) {
    if (!ESCAPED[c]) {
        *o++ = (char)c;
        return o;
    }
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
    return o;
}

/* A bit for each of the 16 bytes at `s` that needs escaping (bit k: byte k). SSE2 on x86-64
 * (where it is always there), a loop elsewhere (an ARM server, or built with
 * -DCHAINWALK_PORTABLE, which the tests do to check the loop too); either way exact. */
#if defined(__SSE2__) && !defined(CHAINWALK_PORTABLE)
#define VECTOR_ESCAPES 1
#include <emmintrin.h>
static unsigned block_escapes(const unsigned char *s) {
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    /* unsigned v <= 0x1f, as min(v, 0x1f) == v */
    __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash)));
}
#else
#define VECTOR_ESCAPES 0
static unsigned block_escapes(const unsigned char *s) {
    unsigned m = 0;
    for (unsigned k = 0; k < 16; k++) m |= (unsigned)ESCAPED[s[k]] << k;
    return m;
}
#endif

/* A JSON string as Python's json.dumps(ensure_ascii=False) writes it, at `o` (room for 6n + 2
 * bytes); returns the end. Sixteen bytes at a time (each block is copied whole, then the end
 * moves on to just before its first byte that needs escaping), then eight (strings of 8 to 15
 * bytes, and what follows an escape near the end), then one. A byte that needs no escaping is
 * written as itself whichever way, so a string's last 16 (or 8) bytes may be written again
 * over what is there when none of them needs escaping. */
static char *json_string(char *o, const unsigned char *s, size_t n) {
    *o++ = '"';
    size_t i = 0;
    while (i + 16 <= n) {
        unsigned m = block_escapes(s + i);
        memcpy(o, s + i, 16); /* the room: 6 bytes for each of these 16 */
        if (!m) {
            o += 16;
            i += 16;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(m);
        o += k;
        i += k;
        o = json_byte(o, s[i++]);
    }
    if (i < n && n >= 16 && !block_escapes(s + n - 16)) {
        memcpy(o - (16 - (n - i)), s + n - 16, 16);
        o += n - i;
        i = n;
    }
    while (i + 8 <= n) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (word_escapes(x)) {
            o = json_byte(o, s[i++]);
            continue;
        }
        memcpy(o, &x, 8);
        o += 8;
        i += 8;
    }
    if (i < n && n >= 8) {
        uint64_t x;
        memcpy(&x, s + n - 8, 8);
        if (!word_escapes(x)) {
            memcpy(o - (8 - (n - i)), &x, 8);
            o += n - i;
            i = n;
        }
    }
    while (i < n) o = json_byte(o, s[i++]);
    *o++ = '"';
    return o;
}

/* Each writes one field's JSON at `o` and returns the end, or NULL when not sure (a value of
 * another type or form). */
static char *doc_text(char *o, const Cell *c) {
    if (c->type == SQLITE_NULL) {
        memcpy(o, "null", 4);
        return o + 4;
    }
    if (c->type != SQLITE_TEXT) return NULL;
    return json_string(o, c->p, c->n);
}

/* "00" to "99". */
static const char DIGIT_PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static char *doc_int(char *o, const Cell *c) {
    if (c->type != SQLITE_INTEGER) return NULL;
    char s[24], *e = s + sizeof s, *p = e;
    /* through unsigned, so INT64_MIN has a magnitude */
    uint64_t v = c->i < 0 ? (uint64_t)0 - (uint64_t)c->i : (uint64_t)c->i;
    while (v >= 100) {
        p -= 2;
        memcpy(p, DIGIT_PAIRS + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, DIGIT_PAIRS + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    if (c->i < 0) *--p = '-';
    memcpy(o, p, (size_t)(e - p));
    return o + (e - p);
}

/* occurred_at as SQLAlchemy stores it in SQLite, "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), written as
 * "YYYY-MM-DDTHH:MM:SS.ffffff+00:00". Any other form: not sure. */
static char *doc_instant(char *o, const Cell *c) {
    static const unsigned char digits[20] = {0,  1,  2,  3,  5,  6,  8,  9,  11, 12,
                                             14, 15, 17, 18, 20, 21, 22, 23, 24, 25};
    if (c->type != SQLITE_TEXT || c->n != 26) return NULL;
    const unsigned char *s = c->p;
    unsigned bad = (s[4] ^ '-') | (s[7] ^ '-') | (s[10] ^ ' ') | (s[13] ^ ':') | (s[16] ^ ':') |
                   (s[19] ^ '.');
    for (size_t k = 0; k < sizeof digits; k++) bad |= (unsigned)(s[digits[k]] - '0') > 9;
    if (bad) return NULL;
    *o++ = '"';
    memcpy(o, s, 10);
    o[10] = 'T';
    memcpy(o + 11, s + 11, 15);
    memcpy(o + 26, "+00:00\"", 7);
    return o + 33;
}

/* `chain._DOC`'s keys in sorted order, each with the column it comes from and how it is
 * written. A key is stored in 16 bytes and copied whole (the document has the room), then the
 * end moves on by its length. */
enum { TEXT, INT, INSTANT };
#define KEY(s) s, sizeof(s) - 1
static const struct {
    char key[16];
    size_t len;
    int col;
    int kind;
} DOC[] = {
    {KEY("{\"action\":"), 2, TEXT},       {KEY(",\"actor_id\":"), 4, TEXT},
    {KEY(",\"actor_name\":"), 5, TEXT},   {KEY(",\"actor_type\":"), 3, TEXT},
    {KEY(",\"details\":"), 12, TEXT},     {KEY(",\"id\":"), 0, INT},
    {KEY(",\"ip\":"), 8, TEXT},           {KEY(",\"object_id\":"), 7, TEXT},
    {KEY(",\"object_type\":"), 6, TEXT},  {KEY(",\"occurred_at\":"), 1, INSTANT},
    {KEY(",\"prev_hash\":"), 14, TEXT},   {KEY(",\"purpose\":"), 10, TEXT},
    {KEY(",\"reason\":"), 11, TEXT},      {KEY(",\"seq\":"), 13, INT},
    {KEY(",\"user_agent\":"), 9, TEXT},
};
#define NDOC (sizeof DOC / sizeof DOC[0])
static const char DOC_END[] = ",\"v\":1}";

/* 1 when the row's stored hash is the SHA-256 of its document, 0 when not (or not sure), -1 on
 * an error. */
static int hash_ok(const Row *r, Buf *doc, EVP_MD_CTX *ctx, const EVP_MD *md) {
    if (r->c[C_HASH].type != SQLITE_TEXT || r->c[C_HASH].n != 64) return 0;
    if (r->c[C_PREV_HASH].type != SQLITE_TEXT) return 0;
    /* room for the longest document these cells can make: keys, a text escaped to at most 6
     * bytes a byte and quoted, a number or instant in 40 (`bytes` counts every cell, hashed or
     * not: more than enough) */
    size_t room = sizeof DOC_END + NDOC * (16 + 40) + 6 * r->bytes;
    doc->n = 0;
    if (buf_reserve(doc, room)) return -1;
    char *o = doc->p;
    for (size_t f = 0; f < NDOC; f++) {
        memcpy(o, DOC[f].key, 16);
        o += DOC[f].len;
        const Cell *c = &r->c[DOC[f].col];
        o = DOC[f].kind == TEXT ? doc_text(o, c) : DOC[f].kind == INT ? doc_int(o, c)
                                                                      : doc_instant(o, c);
        if (o == NULL) return 0;
    }
    memcpy(o, DOC_END, sizeof DOC_END - 1);
    o += sizeof DOC_END - 1;
    doc->n = (size_t)(o - doc->p);
    unsigned char md_value[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, doc->p, doc->n) ||
        !EVP_DigestFinal_ex(ctx, md_value, &md_len) || md_len != 32)
        return -1;
    char hex[64];
    for (unsigned int i = 0; i < 32; i++) memcpy(hex + 2 * i, HEX_PAIR[md_value[i]], 2);
    return memcmp(hex, r->c[C_HASH].p, 64) == 0;
}

/* --- one page ------------------------------------------------------------------------------ */

typedef struct {
    Row row;
    Row prev; /* id, seq, hash of the row before (all NULL when rn = 1) */
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
    if (row_copy(&it->row, row, ALL_CELLS)) return -1;
    return row_copy(&it->prev, prev, prev == row ? 0 : KEY_CELLS);
}

/* What one run of a page query found. */
enum { PAGE_DONE, PAGE_SQLITE_ERROR, PAGE_NO_MEMORY, PAGE_LAST_UNSEEN };

typedef struct {
    Row cur;         /* a view of the row being checked */
    Row before;      /* the key cells of the row before it */
    Row last;        /* keep_last: a copy of the latest row */
    Row last_before; /* ... and the key cells of the row before that */
    Buf doc;
} Work;

static void work_free(Work *w) {
    free(w->before.arena.p);
    free(w->last.arena.p);
    free(w->last_before.arena.p);
    free(w->doc.p);
}

/* Step through at most `limit` rows, pushing those Python must look at. A row is only a view
 * while it is current, so the page's last row is pushed when it is known to be the last: at
 * row `limit`, or - when the page ends before that - from the copy `keep_last` makes of every
 * row. Without `keep_last`, a page that ends early with its last row unpushed says
 * PAGE_LAST_UNSEEN: run it again with `keep_last` (only a range's final page costs this). */
static int run_page(sqlite3_stmt *st, sqlite3_int64 limit, int keep_last, Work *w,
                    FlagList *flags, EVP_MD_CTX *ctx, const EVP_MD *md) {
    sqlite3_int64 rn = 0;
    int pushed = 0; /* whether the latest row was pushed */
    while (rn < limit) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return PAGE_SQLITE_ERROR;
        if (row_view(&w->cur, st)) return PAGE_NO_MEMORY;
        rn++;
        int ok = hash_ok(&w->cur, &w->doc, ctx, md);
        if (ok < 0) return PAGE_NO_MEMORY;
        const Cell *seq = &w->cur.c[C_SEQ], *before_seq = &w->before.c[C_SEQ];
        int linked = rn > 1 && seq->type == SQLITE_INTEGER &&
                     before_seq->type == SQLITE_INTEGER && before_seq->i < INT64_MAX &&
                     seq->i == before_seq->i + 1 &&
                     cell_same(&w->cur.c[C_PREV_HASH], &w->before.c[C_HASH]);
        const Row *prev = rn > 1 ? &w->before : &w->cur; /* (itself: no row before it) */
        pushed = rn == 1 || !ok || !linked || rn == limit;
        if (pushed && flags_push(flags, &w->cur, prev, rn, ok)) return PAGE_NO_MEMORY;
        if (keep_last && (row_copy(&w->last, &w->cur, ALL_CELLS) ||
                          row_copy(&w->last_before, prev, prev == &w->cur ? 0 : KEY_CELLS)))
            return PAGE_NO_MEMORY;
        if (row_copy(&w->before, &w->cur, KEY_CELLS)) return PAGE_NO_MEMORY;
    }
    if (pushed || rn == 0) return PAGE_DONE;
    if (!keep_last) return PAGE_LAST_UNSEEN;
    /* the page's last row, confirmed (or it would have been pushed), so ok = 1 */
    if (flags_push(flags, &w->last, &w->last_before, rn, 1)) return PAGE_NO_MEMORY;
    return PAGE_DONE;
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
        return PyUnicode_DecodeUTF8((const char *)c->p, (Py_ssize_t)c->n, NULL);
    case SQLITE_BLOB: return PyBytes_FromStringAndSize((const char *)c->p, (Py_ssize_t)c->n);
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
    long long limit;
    if (!PyArg_ParseTuple(args, "OsO!L", &capsule, &sql, &PyTuple_Type, &params, &limit))
        return NULL;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be at least 1");
        return NULL;
    }
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
    Work work = {0};
    FlagList flags = {0};
    int status = PAGE_DONE;
    const char *what = "";

    Py_BEGIN_ALLOW_THREADS
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_column_count(st) != NCOL) {
        status = PAGE_SQLITE_ERROR;
        what = "cannot prepare the page query";
    }
    for (Py_ssize_t i = 0; status == PAGE_DONE && i < nparams; i++) {
        if (sqlite3_bind_int64(st, (int)i + 1, values[i]) != SQLITE_OK) {
            status = PAGE_SQLITE_ERROR;
            what = "cannot bind the page query";
        }
    }
    if (status == PAGE_DONE) {
        status = run_page(st, limit, 0, &work, &flags, h->ctx, h->md);
        if (status == PAGE_LAST_UNSEEN) {
            /* again, keeping a copy of each row (the rows may differ now: the new run is the
             * page's answer) */
            flags_free(&flags);
            status = sqlite3_reset(st) == SQLITE_OK
                         ? run_page(st, limit, 1, &work, &flags, h->ctx, h->md)
                         : PAGE_SQLITE_ERROR;
        }
        what = "page query failed";
    }
    if (st) sqlite3_finalize(st);
    Py_END_ALLOW_THREADS

    work_free(&work);
    if (status != PAGE_DONE) {
        flags_free(&flags);
        if (status == PAGE_NO_MEMORY) return PyErr_NoMemory();
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
     "check_page(handle, sql, params, limit) -> rows Python must look at, of the page's first "
     "`limit` rows (see the module source)."},
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
    for (int c = 0; c < 256; c++) {
        HEX_PAIR[c][0] = HEX[c >> 4];
        HEX_PAIR[c][1] = HEX[c & 15];
    }
    ESCAPED['"'] = ESCAPED['\\'] = 1;
    WalkError = PyErr_NewException("evidence_locker.audit._chainwalk.WalkError", NULL, NULL);
    if (!WalkError || PyModule_AddObject(m, "WalkError", WalkError) < 0) {
        Py_XDECREF(WalkError);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "sqlite_version", sqlite3_libversion()) < 0 ||
        PyModule_AddIntConstant(m, "vector_escapes", VECTOR_ESCAPES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
