/* gguf.c — the GGUF file format (gguf.h): a reader that validates a whole
 * file held in memory (mmap'd by nx_gguf_open), a writer that lays a file
 * out deterministically and writes it atomically, and the table of ggml
 * tensor types.
 *
 * Reading is one forward pass with a cursor over the bytes. Every length
 * and count is checked against what remains before it is used, and before
 * anything is allocated from it: a count of key-value pairs or tensors must
 * fit the bytes after it at the smallest size an entry can have, a string
 * array's count the smallest size of its strings. So a 40-byte file that
 * claims 2^60 tensors is an error, never a 2^60-element allocation. Keys
 * and tensor names must be unique, non-empty UTF-8 without NUL (a hash set
 * catches duplicates, so a file of millions of keys costs linear time).
 * After the tensor infos: each tensor's byte count is computed with
 * overflow checks from its shape and type, and it must lie inside the file
 * at an aligned offset without overlapping another (sorted by offset).
 * Values stay in the file: strings are (pointer, length) views, numbers
 * their little-endian bytes, read through memcpy (they are unaligned).
 *
 * Version 2 files have the layout of version 3 when little-endian (v3 only
 * added big-endian files), so both are read; version 1 (32-bit counts) and
 * byte-swapped files are refused with what to do.
 *
 * Writing: the header and metadata are serialised into one buffer, then
 * the tensors are streamed after it, each padded with zeros to the
 * alignment, through nx_atomic_open/write/commit — the file appears whole
 * or not at all. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/gguf.h"

#include "nexus/fsutil.h"
#include "nexus/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads and writes little-endian files through memcpy: a big-endian host needs byte swaps"
#endif

#define MAX_STR 65535u            /* keys and names: the spec's bound */
#define MAX_ENTRIES (1u << 24)    /* key-value pairs or tensors in one file */

/* ---- types -------------------------------------------------------------- */

static const char *const TYPE_NAMES[NX_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const uint8_t TYPE_SIZE[NX_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *nx_gguf_type_name(uint32_t t) { return t < NX_GGUF_TYPE_COUNT ? TYPE_NAMES[t] : "?"; }

static bool is_int_type(nx_gguf_type t) {
    return t <= NX_GGUF_I32 || t == NX_GGUF_U64 || t == NX_GGUF_I64 || t == NX_GGUF_BOOL;
}

/* A float truncated to an integer, saturating (NaN: 0): a plain cast of an
 * out-of-range float is undefined behaviour. */
static int64_t to_int(double x) {
    if (x != x) return 0;
    if (x >= 9223372036854775807.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

int64_t nx_gguf_value_int(const nx_gguf_value *v, uint64_t i) {
    NX_ASSERT(i < v->n && v->elem != NX_GGUF_STRING && v->elem != NX_GGUF_ARRAY && v->data);
    const uint8_t *p = (const uint8_t *)v->data + i * TYPE_SIZE[v->elem];
    switch (v->elem) {
    case NX_GGUF_U8: case NX_GGUF_BOOL: return *p;
    case NX_GGUF_I8: return (int8_t)*p;
    case NX_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case NX_GGUF_I16: { int16_t x; memcpy(&x, p, 2); return x; }
    case NX_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case NX_GGUF_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case NX_GGUF_U64: { uint64_t x; memcpy(&x, p, 8); return x > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)x; }
    case NX_GGUF_I64: { int64_t x; memcpy(&x, p, 8); return x; }
    case NX_GGUF_F32: { float x; memcpy(&x, p, 4); return to_int(x); }
    case NX_GGUF_F64: { double x; memcpy(&x, p, 8); return to_int(x); }
    default: NX_ASSERT(0);
    }
    return 0;
}

double nx_gguf_value_f64(const nx_gguf_value *v, uint64_t i) {
    NX_ASSERT(i < v->n && v->data);
    const uint8_t *p = (const uint8_t *)v->data + i * TYPE_SIZE[v->elem];
    if (v->elem == NX_GGUF_F32) { float x; memcpy(&x, p, 4); return x; }
    if (v->elem == NX_GGUF_F64) { double x; memcpy(&x, p, 8); return x; }
    if (v->elem == NX_GGUF_U64) { uint64_t x; memcpy(&x, p, 8); return (double)x; }
    return (double)nx_gguf_value_int(v, i);
}

/* ---- ggml tensor types ----------------------------------------------------
 * Block sizes and bytes per block of ggml's types (ggml-common.h's block
 * structs); the ids are the file format's. Types that differ between the
 * llama.cpp forks (Q8_K, the repacked and IQ*_K families) are left out:
 * the reader calls them unknown rather than guessing their size.
 *
 * Which of them nexus holds is core's business, not this table's: a ggml
 * type maps to the nx_dtype of the same name (core's traits table names
 * block types as GGUF does: "Q8_0", "Q4_K") when that type holds weights
 * and stores the same block in the same bytes. A new weight type in
 * src/core/dtype.c is therefore read and written here with no change to
 * this file; a test (test_gguf.c) holds every weight type to having a row
 * here with the same block. */
static const nx_ggml_type GGML_TYPES[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},        {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},     {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},  {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98},
    {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110}, {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},       {25, "I16", 1, 2},       {26, "I32", 1, 4},
    {27, "I64", 1, 8},       {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},  {30, "BF16", 1, 2},
};
#define N_GGML_TYPES (sizeof GGML_TYPES / sizeof GGML_TYPES[0])

const nx_ggml_type *nx_ggml_type_info(uint32_t id) {
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (GGML_TYPES[i].id == id) return &GGML_TYPES[i];
    return NULL;
}

/* The weight dtype of row r, or -1. */
static int row_dtype(const nx_ggml_type *r) {
    nx_dtype d;
    if (nx_dtype_from_name(r->name, &d)) return -1;
    const nx_type_traits *tt = nx_type(d);
    return tt->weight && tt->block == r->block && tt->block_bytes == r->block_bytes ? (int)d : -1;
}

int nx_ggml_dtype(uint32_t id) {
    const nx_ggml_type *r = nx_ggml_type_info(id);
    return r ? row_dtype(r) : -1;
}

int nx_ggml_type_of(nx_dtype t, uint32_t *id) {
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (row_dtype(&GGML_TYPES[i]) == (int)t) {
            *id = GGML_TYPES[i].id;
            return NX_OK;
        }
    return NX_ERR;
}

void nx_ggml_readable_types(char *buf, size_t n) {
    NX_ASSERT(n > 0);
    buf[0] = 0;
    for (size_t i = 0; i < N_GGML_TYPES; i++)
        if (row_dtype(&GGML_TYPES[i]) >= 0) {
            size_t o = strlen(buf);
            snprintf(buf + o, n - o, "%s%s", o ? ", " : "", GGML_TYPES[i].name);
        }
}

int nx_gguf_tensor_dtype(const nx_gguf *g, const nx_gguf_tensor *t, nx_dtype *out, nx_err *err) {
    const nx_ggml_type *ti = nx_ggml_type_info(t->type);
    NX_ASSERT(ti); /* the reader accepts known types only */
    int d = row_dtype(ti);
    if (d < 0) {
        char list[256];
        nx_ggml_readable_types(list, sizeof list);
        return nx_fail(err, "%s: tensor '%s': unsupported tensor type %s; this nexus reads %s (convert the "
                            "file to one of those with llama-quantize, or export the model again)",
                       g->path, t->name, ti->name, list);
    }
    *out = (nx_dtype)d;
    return NX_OK;
}

/* ---- a set of names (duplicate detection) ----------------------------- */

typedef struct { const char **k; size_t mask; } name_set;

static void set_init(name_set *s, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    s->k = nx_xcalloc(cap, sizeof *s->k);
    s->mask = cap - 1;
}

/* false when name was there already */
static bool set_add(name_set *s, const char *name) {
    size_t i = nx_fnv1a(name, strlen(name), NX_FNV_INIT) & s->mask;
    while (s->k[i]) {
        if (!strcmp(s->k[i], name)) return false;
        i = (i + 1) & s->mask;
    }
    s->k[i] = name;
    return true;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    const uint8_t *b;
    size_t size, pos;
    const char *file;
    nx_err *err;
} cursor;

/* A printable excerpt of a string from the file, for messages. */
static const char *excerpt(const char *s, uint64_t len, char *buf, size_t n) {
    size_t o = 0;
    for (uint64_t i = 0; i < len && o + 5 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        if (i + 1 < len && o + 5 >= n) { memcpy(buf + n - 4, "...", 4); return buf; }
    }
    buf[o < n ? o : n - 1] = 0;
    return buf;
}

static int need(cursor *c, uint64_t n, const char *what) {
    if (n <= c->size - c->pos) return NX_OK;
    return nx_fail(c->err, "%s: %s at byte %zu needs %llu bytes but the file ends at byte %zu: the file is "
                           "truncated or not a GGUF", c->file, what, c->pos, (unsigned long long)n, c->size);
}

static int rd_u32(cursor *c, uint32_t *x, const char *what) {
    if (need(c, 4, what)) return NX_ERR;
    memcpy(x, c->b + c->pos, 4);
    c->pos += 4;
    return NX_OK;
}

static int rd_u64(cursor *c, uint64_t *x, const char *what) {
    if (need(c, 8, what)) return NX_ERR;
    memcpy(x, c->b + c->pos, 8);
    c->pos += 8;
    return NX_OK;
}

static int rd_str(cursor *c, nx_gguf_str *s, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return NX_ERR;
    if (n > c->size - c->pos)
        return nx_fail(c->err, "%s: %s at byte %zu has length %llu, past the end of the file (%zu bytes): the "
                               "file is truncated or corrupt", c->file, what, c->pos - 8, (unsigned long long)n,
                       c->size);
    s->s = (const char *)c->b + c->pos;
    s->len = n;
    c->pos += (size_t)n;
    return NX_OK;
}

/* A key or a tensor name: non-empty UTF-8 of at most MAX_STR bytes without
 * NUL, copied and NUL-terminated. */
static char *rd_name(cursor *c, const char *what) {
    size_t at = c->pos;
    nx_gguf_str s;
    if (rd_str(c, &s, what)) return NULL;
    char buf[96];
    if (s.len == 0 || s.len > MAX_STR) {
        nx_fail(c->err, "%s: %s at byte %zu is %llu bytes long (must be 1 to %u)", c->file, what, at,
                (unsigned long long)s.len, MAX_STR);
        return NULL;
    }
    size_t bad = nx_st_utf8_invalid_at(s.s, (size_t)s.len);
    if (bad < s.len || memchr(s.s, 0, (size_t)s.len)) {
        nx_fail(c->err, "%s: %s at byte %zu (\"%s\") is not valid UTF-8 text", c->file, what, at,
                excerpt(s.s, s.len, buf, sizeof buf));
        return NULL;
    }
    char *p = nx_xmalloc((size_t)s.len + 1);
    memcpy(p, s.s, (size_t)s.len);
    p[s.len] = 0;
    return p;
}

/* One value of type t (the type already read) into v. */
static int rd_value(cursor *c, uint32_t t, nx_gguf_value *v, const char *key) {
    char what[160];
    size_t at = c->pos;
    if (t >= NX_GGUF_TYPE_COUNT)
        return nx_fail(c->err, "%s: key '%s' has value type %u at byte %zu, which GGUF does not define (0 to 12)",
                       c->file, key, t, at - 4);
    v->type = v->elem = (nx_gguf_type)t;
    v->n = 1;
    snprintf(what, sizeof what, "the value of key '%s'", key);
    if (t == NX_GGUF_STRING) {
        v->str = nx_xmalloc(sizeof *v->str);
        return rd_str(c, v->str, what);
    }
    if (t != NX_GGUF_ARRAY) {
        if (need(c, TYPE_SIZE[t], what)) return NX_ERR;
        v->data = c->b + c->pos;
        c->pos += TYPE_SIZE[t];
        return NX_OK;
    }
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, what) || rd_u64(c, &n, what)) return NX_ERR;
    if (et == NX_GGUF_ARRAY)
        return nx_fail(c->err, "%s: key '%s' (byte %zu) is an array of arrays, which llama.cpp does not read "
                               "either", c->file, key, at);
    if (et >= NX_GGUF_TYPE_COUNT)
        return nx_fail(c->err, "%s: key '%s' is an array of type %u (byte %zu), which GGUF does not define",
                       c->file, key, et, at);
    v->elem = (nx_gguf_type)et;
    v->n = n;
    size_t left = c->size - c->pos;
    if (et == NX_GGUF_STRING) {
        /* every string takes at least its 8-byte length */
        if (n > left / 8)
            return nx_fail(c->err, "%s: key '%s' (byte %zu) claims %llu strings, more than the %zu bytes left in "
                                   "the file can hold: the file is truncated or corrupt", c->file, key, at,
                           (unsigned long long)n, left);
        v->str = nx_xmalloc(sizeof *v->str * (n ? (size_t)n : 1));
        for (uint64_t i = 0; i < n; i++) {
            snprintf(what, sizeof what, "string %llu of key '%s'", (unsigned long long)i, key);
            if (rd_str(c, &v->str[i], what)) return NX_ERR;
        }
        return NX_OK;
    }
    if (n > left / TYPE_SIZE[et])
        return nx_fail(c->err, "%s: key '%s' (byte %zu) claims %llu elements of %s, more than the %zu bytes left "
                               "in the file: the file is truncated or corrupt", c->file, key, at,
                       (unsigned long long)n, TYPE_NAMES[et], left);
    v->data = c->b + c->pos;
    c->pos += (size_t)n * TYPE_SIZE[et];
    return NX_OK;
}

static int rd_tensor_info(cursor *c, nx_gguf_tensor *t, int index) {
    char what[160];
    snprintf(what, sizeof what, "the name of tensor %d", index);
    size_t at = c->pos;
    if (!(t->name = rd_name(c, what))) return NX_ERR;
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    uint32_t nd;
    if (rd_u32(c, &nd, what)) return NX_ERR;
    if (nd < 1 || nd > NX_GGUF_MAX_DIMS)
        return nx_fail(c->err, "%s: tensor '%s' (byte %zu) has %u dimensions; GGUF tensors have 1 to %d",
                       c->file, t->name, at, nd, NX_GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (int d = 0; d < NX_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t x;
        if (rd_u64(c, &x, what)) return NX_ERR;
        if (x == 0 || x > (uint64_t)INT64_MAX || numel > (uint64_t)INT64_MAX / x)
            return nx_fail(c->err, "%s: tensor '%s' (byte %zu) has dimension %d of %llu elements: %s", c->file,
                           t->name, at, d, (unsigned long long)x,
                           x == 0 ? "empty tensors are not allowed" : "the element count overflows");
        t->ne[d] = (int64_t)x;
        numel *= x;
    }
    if (rd_u32(c, &t->type, what) || rd_u64(c, &t->offset, what)) return NX_ERR;
    const nx_ggml_type *ti = nx_ggml_type_info(t->type);
    if (!ti)
        return nx_fail(c->err, "%s: tensor '%s' (byte %zu) has ggml type id %u, which this nexus does not know "
                               "(a newer or forked llama.cpp type?)", c->file, t->name, at, t->type);
    if (t->ne[0] % ti->block)
        return nx_fail(c->err, "%s: tensor '%s' (byte %zu) has rows of %lld elements, not a multiple of the %d "
                               "elements of a %s block", c->file, t->name, at, (long long)t->ne[0], ti->block,
                       ti->name);
    uint64_t blocks = numel / (uint64_t)ti->block;
    if (blocks > SIZE_MAX / ti->block_bytes)
        return nx_fail(c->err, "%s: tensor '%s' (byte %zu) is too large to address", c->file, t->name, at);
    t->nbytes = (size_t)blocks * ti->block_bytes;
    return NX_OK;
}

typedef struct { uint64_t off; int i; } placed;
static int by_offset(const void *a, const void *b) {
    const placed *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off ? 1 : 0;
}

/* Offsets, bounds and overlaps of the tensors, once data_start is known. */
static int check_layout(nx_gguf *g, nx_err *err) {
    size_t avail = g->data_start <= g->size ? g->size - g->data_start : 0;
    for (int i = 0; i < g->nt; i++) {
        nx_gguf_tensor *t = &g->t[i];
        if (t->offset % g->alignment)
            return nx_fail(err, "%s: tensor '%s' starts at data offset %llu, not a multiple of the alignment %u",
                           g->path, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return nx_fail(err, "%s: tensor '%s' (%zu bytes at data offset %llu, file byte %llu) runs past the end "
                                "of the file (%zu bytes): the file is truncated or its offsets are wrong", g->path,
                           t->name, t->nbytes, (unsigned long long)t->offset,
                           (unsigned long long)(g->data_start + t->offset), g->size);
        t->data = g->base + g->data_start + t->offset;
    }
    if (g->nt < 2) return NX_OK;
    placed *ord = nx_xmalloc(sizeof *ord * (size_t)g->nt);
    for (int i = 0; i < g->nt; i++) ord[i] = (placed){g->t[i].offset, i};
    qsort(ord, (size_t)g->nt, sizeof *ord, by_offset);
    int rc = NX_OK;
    for (int i = 1; i < g->nt && rc == NX_OK; i++) {
        const nx_gguf_tensor *a = &g->t[ord[i - 1].i], *b = &g->t[ord[i].i];
        if (a->offset + a->nbytes > b->offset)
            rc = nx_fail(err, "%s: tensors '%s' (data bytes %llu to %llu) and '%s' (from %llu) overlap", g->path,
                         a->name, (unsigned long long)a->offset, (unsigned long long)(a->offset + a->nbytes),
                         b->name, (unsigned long long)b->offset);
    }
    free(ord);
    return rc;
}

static int parse(nx_gguf *g, nx_err *err) {
    cursor c = {g->base, g->size, 0, g->path, err};
    if (g->size < 4 || memcmp(g->base, "GGUF", 4)) {
        if (g->size >= 4 && !memcmp(g->base, "FUGG", 4))
            return nx_fail(err, "%s: a big-endian GGUF; nexus reads little-endian files (convert it with "
                                "gguf-py's gguf_convert_endian.py)", g->path);
        return nx_fail(err, "%s: not a GGUF file (the first 4 bytes are not \"GGUF\")", g->path);
    }
    c.pos = 4;
    uint64_t nt, nkv;
    if (rd_u32(&c, &g->version, "the version")) return NX_ERR;
    if (g->version != 2 && g->version != 3)
        return nx_fail(err, "%s: GGUF version %u at byte 4; nexus reads versions 2 and 3%s", g->path, g->version,
                       g->version == 1 ? " (convert version 1 files with a current llama.cpp)" : "");
    if (rd_u64(&c, &nt, "the tensor count") || rd_u64(&c, &nkv, "the key-value count")) return NX_ERR;
    /* smallest entries: a pair is 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 8 + 4 + 8 */
    size_t left = c.size - c.pos;
    if (nkv > MAX_ENTRIES || nkv > left / 14)
        return nx_fail(err, "%s: the header (byte 16) claims %llu key-value pairs, more than the %zu bytes after it "
                            "can hold: the file is corrupt", g->path, (unsigned long long)nkv, left);
    if (nt > MAX_ENTRIES || nt > left / 33)
        return nx_fail(err, "%s: the header (byte 8) claims %llu tensors, more than the %zu bytes after it can "
                            "hold: the file is corrupt", g->path, (unsigned long long)nt, left);
    g->kv = nx_xcalloc((size_t)nkv + 1, sizeof *g->kv);
    name_set keys;
    set_init(&keys, (size_t)nkv);
    int rc = NX_OK;
    for (uint64_t i = 0; i < nkv && rc == NX_OK; i++) {
        char what[64];
        snprintf(what, sizeof what, "the key of pair %llu", (unsigned long long)i);
        size_t at = c.pos;
        nx_gguf_kv *kv = &g->kv[g->nkv];
        uint32_t t;
        if (!(kv->key = rd_name(&c, what))) { rc = NX_ERR; break; }
        g->nkv++;
        if (!set_add(&keys, kv->key)) {
            rc = nx_fail(err, "%s: key '%s' (byte %zu) appears twice", g->path, kv->key, at);
            break;
        }
        rc = rd_u32(&c, &t, what) || rd_value(&c, t, &kv->v, kv->key) ? NX_ERR : NX_OK;
    }
    free(keys.k);
    if (rc) return NX_ERR;
    g->alignment = NX_GGUF_DEFAULT_ALIGNMENT;
    const nx_gguf_kv *al = nx_gguf_find(g, "general.alignment");
    if (al) {
        if (al->v.type != NX_GGUF_U32)
            return nx_fail(err, "%s: key 'general.alignment' is a %s; it must be a u32", g->path,
                           nx_gguf_type_name(al->v.type));
        int64_t a = nx_gguf_value_int(&al->v, 0);
        if (a == 0 || (a & (a - 1)))
            return nx_fail(err, "%s: key 'general.alignment' is %lld; it must be a power of two", g->path, (long long)a);
        g->alignment = (uint32_t)a;
    }
    g->t = nx_xcalloc((size_t)nt + 1, sizeof *g->t);
    name_set names;
    set_init(&names, (size_t)nt);
    for (uint64_t i = 0; i < nt && rc == NX_OK; i++) {
        size_t at = c.pos;
        nx_gguf_tensor *t = &g->t[g->nt];
        rc = rd_tensor_info(&c, t, (int)i);
        if (t->name) g->nt++;
        if (rc == NX_OK && !set_add(&names, t->name))
            rc = nx_fail(err, "%s: tensor '%s' (byte %zu) appears twice", g->path, t->name, at);
    }
    free(names.k);
    if (rc) return NX_ERR;
    size_t pad = c.pos % g->alignment ? g->alignment - c.pos % g->alignment : 0;
    g->data_start = c.pos + pad;
    return check_layout(g, err);
}

int nx_gguf_parse(nx_gguf *g, const void *buf, size_t size, const char *name, nx_err *err) {
    memset(g, 0, sizeof *g);
    g->base = buf;
    g->size = size;
    g->path = strdup(name ? name : "(gguf)");
    NX_ASSERTM(g->path, "out of memory");
    if (parse(g, err)) {
        nx_gguf_close(g);
        return NX_ERR;
    }
    return NX_OK;
}

int nx_gguf_open(nx_gguf *g, const char *path, nx_err *err) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nx_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return nx_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return nx_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 24) {
        close(fd);
        return nx_fail(err, "%s: %zu bytes, too short for a GGUF header (24 bytes): truncated or not a GGUF",
                       path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return nx_fail(err, "%s: cannot mmap %zu bytes: %s", path, size, strerror(e));
    if (nx_gguf_parse(g, map, size, path, err)) {
        munmap(map, size);
        return NX_ERR;
    }
    g->mapped = true;
    return NX_OK;
}

void nx_gguf_close(nx_gguf *g) {
    for (int i = 0; i < g->nkv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].v.str);
    }
    free(g->kv);
    for (int i = 0; i < g->nt; i++) free(g->t[i].name);
    free(g->t);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g->path);
    memset(g, 0, sizeof *g);
}

const nx_gguf_kv *nx_gguf_find(const nx_gguf *g, const char *key) {
    for (int i = 0; i < g->nkv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const nx_gguf_tensor *nx_gguf_find_tensor(const nx_gguf *g, const char *name) {
    for (int i = 0; i < g->nt; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

/* ---- typed look-ups ------------------------------------------------------- */

static const nx_gguf_kv *lookup(const nx_gguf *g, const char *key, bool required, bool *absent, nx_err *err) {
    const nx_gguf_kv *kv = nx_gguf_find(g, key);
    *absent = !kv;
    if (!kv && required) nx_fail(err, "%s: missing key '%s'", g->path, key);
    return kv;
}

static int wrong_type(const nx_gguf *g, const nx_gguf_kv *kv, const char *want, nx_err *err) {
    if (kv->v.type == NX_GGUF_ARRAY)
        return nx_fail(err, "%s: key '%s' is an array of %s; it must be %s", g->path, kv->key,
                       nx_gguf_type_name(kv->v.elem), want);
    return nx_fail(err, "%s: key '%s' is a %s; it must be %s", g->path, kv->key, nx_gguf_type_name(kv->v.type), want);
}

int nx_gguf_get_int(const nx_gguf *g, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                    nx_err *err) {
    bool absent;
    const nx_gguf_kv *kv = lookup(g, key, required, &absent, err);
    if (!kv) return required ? NX_ERR : NX_OK;
    if (kv->v.type == NX_GGUF_ARRAY || !is_int_type(kv->v.type) || kv->v.type == NX_GGUF_BOOL)
        return wrong_type(g, kv, "an integer", err);
    int64_t x = nx_gguf_value_int(&kv->v, 0);
    if (kv->v.type == NX_GGUF_U64 && x == INT64_MAX) x = hi < INT64_MAX ? hi + 1 : x;
    if (x < lo || x > hi)
        return nx_fail(err, "%s: key '%s' is %lld; it must be between %lld and %lld", g->path, key, (long long)x,
                       (long long)lo, (long long)hi);
    *out = x;
    return NX_OK;
}

int nx_gguf_get_f64(const nx_gguf *g, const char *key, bool required, double *out, nx_err *err) {
    bool absent;
    const nx_gguf_kv *kv = lookup(g, key, required, &absent, err);
    if (!kv) return required ? NX_ERR : NX_OK;
    if (kv->v.type != NX_GGUF_F32 && kv->v.type != NX_GGUF_F64) return wrong_type(g, kv, "a f32 or f64", err);
    *out = nx_gguf_value_f64(&kv->v, 0);
    return NX_OK;
}

int nx_gguf_get_bool(const nx_gguf *g, const char *key, bool required, bool *out, nx_err *err) {
    bool absent;
    const nx_gguf_kv *kv = lookup(g, key, required, &absent, err);
    if (!kv) return required ? NX_ERR : NX_OK;
    if (kv->v.type != NX_GGUF_BOOL) return wrong_type(g, kv, "a bool", err);
    *out = nx_gguf_value_int(&kv->v, 0) != 0;
    return NX_OK;
}

int nx_gguf_get_str(const nx_gguf *g, const char *key, bool required, nx_gguf_str *out, nx_err *err) {
    bool absent;
    const nx_gguf_kv *kv = lookup(g, key, required, &absent, err);
    if (!kv) return required ? NX_ERR : NX_OK;
    if (kv->v.type != NX_GGUF_STRING) return wrong_type(g, kv, "a string", err);
    *out = kv->v.str[0];
    return NX_OK;
}

int nx_gguf_get_array(const nx_gguf *g, const char *key, nx_gguf_type elem, uint64_t min_n,
                      const nx_gguf_value **out, nx_err *err) {
    bool absent;
    const nx_gguf_kv *kv = lookup(g, key, true, &absent, err);
    if (!kv) return NX_ERR;
    const nx_gguf_value *v = &kv->v;
    bool ok = v->type == NX_GGUF_ARRAY &&
              (elem == NX_GGUF_I64 ? is_int_type(v->elem) && v->elem != NX_GGUF_BOOL
               : elem == NX_GGUF_F64 ? v->elem == NX_GGUF_F32 || v->elem == NX_GGUF_F64
                                     : v->elem == elem);
    if (!ok) {
        const char *want = elem == NX_GGUF_I64 ? "an array of integers" : elem == NX_GGUF_F64 ? "an array of floats"
                         : elem == NX_GGUF_STRING ? "an array of strings" : "an array";
        return wrong_type(g, kv, want, err);
    }
    if (v->n < min_n)
        return nx_fail(err, "%s: key '%s' has %llu elements; it needs at least %llu", g->path, key,
                       (unsigned long long)v->n, (unsigned long long)min_n);
    *out = v;
    return NX_OK;
}

/* ---- writing --------------------------------------------------------------- */

typedef struct {
    char *key;
    nx_gguf_value v;  /* data and str (and each string) owned */
} wkv;

typedef struct {
    char *name;
    uint32_t type;
    int ndim;
    int64_t ne[NX_GGUF_MAX_DIMS];
    const void *data;
} wtensor;

struct nx_gguf_writer {
    wkv *kv;
    int nkv, cap_kv;
    wtensor *t;
    int nt, cap_t;
};

nx_gguf_writer *nx_gguf_writer_new(void) { return nx_xcalloc(1, sizeof(nx_gguf_writer)); }

static void free_value(nx_gguf_value *v) {
    if (v->str)
        for (uint64_t i = 0; i < v->n; i++) free((void *)v->str[i].s);
    free(v->str);
    free((void *)v->data);
    memset(v, 0, sizeof *v);
}

void nx_gguf_writer_free(nx_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->nkv; i++) {
        free(w->kv[i].key);
        free_value(&w->kv[i].v);
    }
    for (int i = 0; i < w->nt; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static char *dup_bytes(const void *p, size_t n) {
    char *d = nx_xmalloc(n + 1);
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

void nx_gguf_set(nx_gguf_writer *w, const char *key, const nx_gguf_value *v) {
    NX_ASSERT(v->type < NX_GGUF_TYPE_COUNT && v->elem < NX_GGUF_TYPE_COUNT && v->elem != NX_GGUF_ARRAY);
    NX_ASSERT(v->type == NX_GGUF_ARRAY || (v->n == 1 && v->elem == v->type));
    wkv *e = NULL;
    for (int i = 0; i < w->nkv && !e; i++)
        if (!strcmp(w->kv[i].key, key)) e = &w->kv[i];
    if (e) free_value(&e->v);
    else {
        if (w->nkv == w->cap_kv) {
            w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
            w->kv = realloc(w->kv, sizeof *w->kv * (size_t)w->cap_kv);
            NX_ASSERTM(w->kv, "out of memory");
        }
        e = &w->kv[w->nkv++];
        e->key = dup_bytes(key, strlen(key));
    }
    e->v.type = v->type;
    e->v.elem = v->elem;
    e->v.n = v->n;
    e->v.data = NULL;
    e->v.str = NULL;
    if (v->elem == NX_GGUF_STRING) {
        e->v.str = nx_xmalloc(sizeof *e->v.str * (v->n ? (size_t)v->n : 1));
        for (uint64_t i = 0; i < v->n; i++) {
            e->v.str[i].s = dup_bytes(v->str[i].s, (size_t)v->str[i].len);
            e->v.str[i].len = v->str[i].len;
        }
    } else {
        size_t n = (size_t)v->n * TYPE_SIZE[v->elem];
        e->v.data = dup_bytes(v->data, n);
    }
}

static void set_scalar(nx_gguf_writer *w, const char *key, nx_gguf_type t, const void *x) {
    nx_gguf_value v = {.type = t, .elem = t, .n = 1, .data = x};
    nx_gguf_set(w, key, &v);
}

void nx_gguf_set_u32(nx_gguf_writer *w, const char *key, uint32_t x) { set_scalar(w, key, NX_GGUF_U32, &x); }
void nx_gguf_set_i32(nx_gguf_writer *w, const char *key, int32_t x) { set_scalar(w, key, NX_GGUF_I32, &x); }
void nx_gguf_set_f32(nx_gguf_writer *w, const char *key, float x) { set_scalar(w, key, NX_GGUF_F32, &x); }
void nx_gguf_set_bool(nx_gguf_writer *w, const char *key, bool x) {
    uint8_t b = x;
    set_scalar(w, key, NX_GGUF_BOOL, &b);
}

void nx_gguf_set_str(nx_gguf_writer *w, const char *key, const char *s) {
    nx_gguf_str str = {s, strlen(s)};
    nx_gguf_value v = {.type = NX_GGUF_STRING, .elem = NX_GGUF_STRING, .n = 1, .str = &str};
    nx_gguf_set(w, key, &v);
}

void nx_gguf_set_array(nx_gguf_writer *w, const char *key, nx_gguf_type elem, const void *data, uint64_t n) {
    NX_ASSERT(elem != NX_GGUF_STRING && elem != NX_GGUF_ARRAY);
    nx_gguf_value v = {.type = NX_GGUF_ARRAY, .elem = elem, .n = n, .data = data};
    nx_gguf_set(w, key, &v);
}

void nx_gguf_set_str_array(nx_gguf_writer *w, const char *key, const char *const *s, uint64_t n) {
    nx_gguf_str *str = nx_xmalloc(sizeof *str * (n ? (size_t)n : 1));
    for (uint64_t i = 0; i < n; i++) str[i] = (nx_gguf_str){s[i], strlen(s[i])};
    nx_gguf_value v = {.type = NX_GGUF_ARRAY, .elem = NX_GGUF_STRING, .n = n, .str = str};
    nx_gguf_set(w, key, &v);
    free(str);
}

void nx_gguf_unset(nx_gguf_writer *w, const char *key) {
    for (int i = 0; i < w->nkv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].key);
            free_value(&w->kv[i].v);
            memmove(&w->kv[i], &w->kv[i + 1], sizeof *w->kv * (size_t)(w->nkv - i - 1));
            w->nkv--;
            return;
        }
}

void nx_gguf_add_tensor(nx_gguf_writer *w, const char *name, uint32_t type, int ndim, const int64_t *ne,
                        const void *data) {
    NX_ASSERT(ndim >= 0 && ndim <= NX_GGUF_MAX_DIMS);
    if (w->nt == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = realloc(w->t, sizeof *w->t * (size_t)w->cap_t);
        NX_ASSERTM(w->t, "out of memory");
    }
    wtensor *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    t->name = dup_bytes(name, strlen(name));
    t->type = type;
    t->ndim = ndim;
    for (int d = 0; d < NX_GGUF_MAX_DIMS; d++) t->ne[d] = d < ndim ? ne[d] : 1;
    t->data = data;
}

/* A growable byte buffer for the header. */
typedef struct { uint8_t *p; size_t n, cap; } bytes;

static void put(bytes *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap) b->cap = b->cap ? 2 * b->cap : 1 << 16;
        b->p = realloc(b->p, b->cap);
        NX_ASSERTM(b->p, "out of memory");
    }
    if (n) memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(bytes *b, uint32_t x) { put(b, &x, 4); }
static void put_u64(bytes *b, uint64_t x) { put(b, &x, 8); }
static void put_str(bytes *b, const char *s, uint64_t n) {
    put_u64(b, n);
    put(b, s, (size_t)n);
}

/* Per tensor: its byte count; NX_ERR naming what is wrong. */
static int check_writer(const nx_gguf_writer *w, const char *path, uint32_t *align, size_t *nbytes, nx_err *err) {
    *align = NX_GGUF_DEFAULT_ALIGNMENT;
    for (int i = 0; i < w->nkv; i++) {
        const wkv *e = &w->kv[i];
        size_t n = strlen(e->key);
        if (n == 0 || n > MAX_STR || nx_st_utf8_invalid_at(e->key, n) < n)
            return nx_fail(err, "%s: key %d ('%.60s') must be 1 to %u bytes of UTF-8", path, i, e->key, MAX_STR);
        if (!strcmp(e->key, "general.alignment")) {
            if (e->v.type != NX_GGUF_U32) return nx_fail(err, "%s: general.alignment must be a u32", path);
            uint32_t a;
            memcpy(&a, e->v.data, 4);
            if (a == 0 || (a & (a - 1))) return nx_fail(err, "%s: general.alignment %u is not a power of two", path, a);
            *align = a;
        }
    }
    name_set names;
    set_init(&names, (size_t)w->nt);
    int rc = NX_OK;
    for (int i = 0; i < w->nt && rc == NX_OK; i++) {
        const wtensor *t = &w->t[i];
        size_t n = strlen(t->name);
        const nx_ggml_type *ti = nx_ggml_type_info(t->type);
        uint64_t numel = 1;
        bool shape_ok = t->ndim >= 1;
        for (int d = 0; d < t->ndim && shape_ok; d++) {
            shape_ok = t->ne[d] > 0 && numel <= (uint64_t)INT64_MAX / (uint64_t)t->ne[d];
            numel *= (uint64_t)t->ne[d];
        }
        if (n == 0 || n > NX_GGUF_MAX_NAME || nx_st_utf8_invalid_at(t->name, n) < n)
            rc = nx_fail(err, "%s: tensor name '%.80s' must be 1 to %d bytes of UTF-8 (llama.cpp's limit)", path,
                         t->name, NX_GGUF_MAX_NAME);
        else if (!set_add(&names, t->name))
            rc = nx_fail(err, "%s: tensor '%s' is given twice", path, t->name);
        else if (!ti)
            rc = nx_fail(err, "%s: tensor '%s' has ggml type id %u, which this nexus cannot write", path, t->name,
                         t->type);
        else if (!shape_ok)
            rc = nx_fail(err, "%s: tensor '%s' has an empty or overflowing shape", path, t->name);
        else if (t->ne[0] % ti->block)
            rc = nx_fail(err, "%s: tensor '%s' has rows of %lld elements, not a multiple of the %d elements of a %s "
                              "block", path, t->name, (long long)t->ne[0], ti->block, ti->name);
        else nbytes[i] = (size_t)(numel / (uint64_t)ti->block) * ti->block_bytes;
    }
    free(names.k);
    return rc;
}

int nx_gguf_write(const nx_gguf_writer *w, const char *path, nx_err *err) {
    uint32_t align;
    size_t *nbytes = nx_xcalloc((size_t)w->nt + 1, sizeof *nbytes);
    if (check_writer(w, path, &align, nbytes, err)) {
        free(nbytes);
        return NX_ERR;
    }
    bytes h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)w->nt);
    put_u64(&h, (uint64_t)w->nkv);
    for (int i = 0; i < w->nkv; i++) {
        const wkv *e = &w->kv[i];
        put_str(&h, e->key, strlen(e->key));
        put_u32(&h, e->v.type);
        if (e->v.type == NX_GGUF_ARRAY) {
            put_u32(&h, e->v.elem);
            put_u64(&h, e->v.n);
        }
        if (e->v.elem == NX_GGUF_STRING)
            for (uint64_t k = 0; k < e->v.n; k++) put_str(&h, e->v.str[k].s, e->v.str[k].len);
        else put(&h, e->v.data, (size_t)e->v.n * TYPE_SIZE[e->v.elem]);
    }
    uint64_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        put_u64(&h, off);
        off += (nbytes[i] + align - 1) / align * align;
    }
    static const uint8_t zeros[256] = {0};
    uint8_t *pad = align <= sizeof zeros ? NULL : nx_xcalloc(align, 1);
    const uint8_t *z = pad ? pad : zeros;
    while (h.n % align) put(&h, z, 1);
    nx_atomic_file f;
    int rc = nx_atomic_open(&f, path, err) || nx_atomic_write(&f, h.p, h.n, err) ? NX_ERR : NX_OK;
    for (int i = 0; i < w->nt && rc == NX_OK; i++) {
        size_t tail = nbytes[i] % align ? align - nbytes[i] % align : 0;
        if (nx_atomic_write(&f, w->t[i].data, nbytes[i], err) || (tail && nx_atomic_write(&f, z, tail, err)))
            rc = NX_ERR;
    }
    if (rc == NX_OK) rc = nx_atomic_commit(&f, err);
    else nx_atomic_abort(&f);
    free(pad);
    free(h.p);
    free(nbytes);
    return rc;
}
