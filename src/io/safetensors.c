/* safetensors.c — the safetensors format, read through mmap and written
 * atomically.
 *
 * A file is: u64 little-endian N, N bytes of UTF-8 JSON, then the data
 * section. The JSON maps tensor names to {"dtype", "shape", "data_offsets"
 * [begin, end)} (offsets relative to the data section) plus an optional
 * "__metadata__" object of string → string.
 *
 * Reading trusts nothing: the header is checked for UTF-8 before cJSON sees
 * it, every key is type-checked, byte counts are computed with overflow
 * checks, and the tensors must tile the data section exactly (sorted by
 * offset: the first starts at 0, each starts where the previous ended, the
 * last ends at the end of the file) — the same rule as the reference Rust
 * implementation, so a file we accept is one transformers accepts. Tensor
 * data is never copied: nx_st_tensor.data points into a read-only private
 * mapping that lives until nx_st_close.
 *
 * Writing mirrors what the Hugging Face library produces so that a model we
 * save is byte-comparable with one it saved: compact JSON with
 * "__metadata__": {"format": "pt"} first, the header padded with spaces to a
 * multiple of 8 bytes (so the data section is 8-byte aligned), data in the
 * order given. The file is written through nx_atomic_open/commit (PATH.tmp,
 * fsync, rename), so a crash never leaves a half-written model behind. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/safetensors.h"

#include "nexus/fsutil.h"
#include "nexus/json.h"

/* The reference implementation refuses headers above 100 MB; so do we,
 * before handing the bytes to a JSON parser. */
#define MAX_HEADER (100u * 1000u * 1000u)

/* ---- header parsing -------------------------------------------------- */

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or len if all is. */
size_t nx_st_utf8_invalid_at(const void *p, size_t len) {
    const unsigned char *s = p;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0) lo = 0xA0;      /* overlong */
            if (c == 0xED) hi = 0x9F;      /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0) lo = 0x90;      /* overlong */
            if (c == 0xF4) hi = 0x8F;      /* above U+10FFFF */
        } else return i;
        if (k > len - i - 1) return i; /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF) return i;
        i += k + 1;
    }
    return len;
}

/* A JSON number that is a non-negative integer exactly representable in a
 * double (≤ 2^53) and in size_t. */
static bool json_uint(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return false;
    double d = x->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return false;
    *out = (uint64_t)d;
    return (uint64_t)(size_t)*out == *out;
}

void nx_st_free_tensors(nx_st_tensor *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

static int by_offset(const void *a, const void *b) {
    const nx_st_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int by_name_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fill one tensor from its JSON description; errors name file and tensor. */
static int parse_tensor(const cJSON *v, const char *name, size_t data_len, const char *fname,
                        nx_st_tensor *t, nx_err *err) {
    if (!cJSON_IsObject(v))
        return nx_fail(err, "%s: tensor '%.200s': entry must be an object with dtype, shape and "
                            "data_offsets (got %s)", fname, name, nx_json_kind(v));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(v, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(v, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
    if (!cJSON_IsString(dt))
        return nx_fail(err, "%s: tensor '%.200s': key 'dtype' must be a string (got %s)", fname, name,
                       nx_json_kind(dt));
    if (nx_dtype_from_name(dt->valuestring, &t->dtype) || nx_type(t->dtype)->block != 1)
        return nx_fail(err, "%s: tensor '%.200s': unknown dtype '%.40s' (supported: F32 F16 BF16 F64 "
                            "I8 U8 I16 U16 I32 U32 I64 U64 BOOL)", fname, name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return nx_fail(err, "%s: tensor '%.200s': key 'shape' must be an array (got %s)", fname, name,
                       nx_json_kind(sh));
    int nd = cJSON_GetArraySize(sh);
    if (nd > NX_MAX_DIMS)
        return nx_fail(err, "%s: tensor '%.200s': %d dimensions, at most %d are supported", fname, name,
                       nd, NX_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int k = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        uint64_t u;
        if (!json_uint(d, &u) || u > INT64_MAX)
            return nx_fail(err, "%s: tensor '%.200s': shape[%d] must be a non-negative integer", fname,
                           name, k);
        t->shape[k] = (int64_t)u;
        if (__builtin_mul_overflow(numel, (size_t)u, &numel))
            return nx_fail(err, "%s: tensor '%.200s': shape overflows the element count", fname, name);
    }
    for (; k < NX_MAX_DIMS; k++) t->shape[k] = 0;
    size_t nbytes;
    if (__builtin_mul_overflow(numel, nx_dtype_size(t->dtype), &nbytes))
        return nx_fail(err, "%s: tensor '%.200s': byte size overflows", fname, name);
    uint64_t b, e;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &b) ||
        !json_uint(of->child->next, &e))
        return nx_fail(err, "%s: tensor '%.200s': key 'data_offsets' must be [begin, end] with "
                            "non-negative integers", fname, name);
    if (e < b)
        return nx_fail(err, "%s: tensor '%.200s': data_offsets [%llu, %llu] end before begin", fname,
                       name, (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return nx_fail(err, "%s: tensor '%.200s': data_offsets [%llu, %llu] run past the data section "
                            "(%zu bytes); the file is truncated or corrupt", fname, name,
                       (unsigned long long)b, (unsigned long long)e, data_len);
    if (e - b != nbytes)
        return nx_fail(err, "%s: tensor '%.200s': data_offsets [%llu, %llu] hold %llu bytes but "
                            "%s %s of %zu elements needs %zu", fname, name, (unsigned long long)b,
                       (unsigned long long)e, (unsigned long long)(e - b), nx_dtype_name(t->dtype),
                       "tensor", numel, nbytes);
    t->offset = (size_t)b;
    t->nbytes = nbytes;
    t->data = NULL;
    t->file = 0;
    return NX_OK;
}

int nx_st_parse_header(const char *hdr, size_t hdr_len, size_t data_len, const char *fname,
                       nx_st_tensor **out, int *n, nx_err *err) {
    *out = NULL;
    *n = 0;
    size_t bad = nx_st_utf8_invalid_at(hdr, hdr_len);
    if (bad < hdr_len)
        return nx_fail(err, "%s: header is not valid UTF-8 at byte %zu (file offset); the file is "
                            "corrupt or not a safetensors file", fname, bad + 8);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hdr_len, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + hdr_len ? (size_t)(end - hdr) : 0;
        return nx_fail(err, "%s: header is not valid JSON (error near byte %zu of the file)", fname,
                       at + 8);
    }
    for (const char *p = end; p < hdr + hdr_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return nx_fail(err, "%s: unexpected bytes after the JSON header at byte %zu", fname,
                           (size_t)(p - hdr) + 8);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return nx_fail(err, "%s: header must be a JSON object (got %s)", fname, nx_json_kind(root));
    }
    int cap = cJSON_GetArraySize(root);
    nx_st_tensor *t = nx_xcalloc(cap ? (size_t)cap : 1, sizeof *t);
    int nt = 0, nmeta = 0;
    for (const cJSON *v = root->child; v; v = v->next) {
        const char *name = v->string;
        if (strcmp(name, "__metadata__") == 0) {
            if (nmeta++) {
                nx_fail(err, "%s: '__metadata__' appears twice in the header", fname);
                goto fail;
            }
            if (!cJSON_IsObject(v)) {
                nx_fail(err, "%s: '__metadata__' must be an object of strings (got %s)", fname,
                        nx_json_kind(v));
                goto fail;
            }
            for (const cJSON *m = v->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    nx_fail(err, "%s: '__metadata__' key '%.200s' must be a string (got %s)", fname,
                            m->string, nx_json_kind(m));
                    goto fail;
                }
            continue;
        }
        if (parse_tensor(v, name, data_len, fname, &t[nt], err)) goto fail;
        t[nt++].name = strdup(name);
    }
    cJSON_Delete(root);
    root = NULL;

    /* Duplicate names: cJSON keeps both copies of a repeated key. */
    if (nt > 1) {
        const char **names = nx_xmalloc(sizeof *names * nt);
        for (int i = 0; i < nt; i++) names[i] = t[i].name;
        qsort(names, nt, sizeof *names, by_name_ptr);
        for (int i = 1; i < nt; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                nx_fail(err, "%s: tensor '%.200s' appears more than once in the header", fname, names[i]);
                free(names);
                goto fail;
            }
        free(names);
    }

    /* The tensors must tile [0, data_len) exactly. */
    qsort(t, nt, sizeof *t, by_offset);
    size_t at = 0;
    for (int i = 0; i < nt; i++) {
        if (t[i].offset < at) {
            nx_fail(err, "%s: tensor '%.200s' (data_offsets [%zu, %zu]) overlaps tensor '%.200s'", fname,
                    t[i].name, t[i].offset, t[i].offset + t[i].nbytes, t[i - 1].name);
            goto fail;
        }
        if (t[i].offset > at) {
            nx_fail(err, "%s: hole in the data section: bytes [%zu, %zu) before tensor '%.200s' belong to "
                         "no tensor", fname, at, t[i].offset, t[i].name);
            goto fail;
        }
        at = t[i].offset + t[i].nbytes;
    }
    if (at != data_len) {
        nx_fail(err, "%s: data section is %zu bytes but the tensors cover only %zu (%zu trailing bytes at "
                     "file byte %zu); the file is corrupt", fname, data_len, at, data_len - at,
                (size_t)8 + hdr_len + at);
        goto fail;
    }
    *out = t;
    *n = nt;
    return NX_OK;
fail:
    cJSON_Delete(root);
    nx_st_free_tensors(t, nt);
    return NX_ERR;
}

/* ---- reading ------------------------------------------------------- */

static void push_file(nx_safetensors *st, const char *path, void *map, size_t size) {
    st->maps = realloc(st->maps, sizeof *st->maps * (st->nfiles + 1));
    st->map_sizes = realloc(st->map_sizes, sizeof *st->map_sizes * (st->nfiles + 1));
    st->paths = realloc(st->paths, sizeof *st->paths * (st->nfiles + 1));
    NX_ASSERTM(st->maps && st->map_sizes && st->paths, "out of memory");
    st->maps[st->nfiles] = map;
    st->map_sizes[st->nfiles] = size;
    st->paths[st->nfiles] = strdup(path);
    st->nfiles++;
}

/* Map one file and append its tensors to st (file index st->nfiles). */
static int open_into(nx_safetensors *st, const char *path, nx_err *err) {
    struct stat sb;
    int fd = nx_open_regular(path, &sb, err);
    if (fd < 0) return NX_ERR;
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return nx_fail(err, "%s: file is %zu bytes, too short to hold the 8-byte header length at byte 0",
                       path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return nx_fail(err, "%s: cannot mmap %zu bytes: %s", path, size, strerror(e));
    const unsigned char *b = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > size - 8) {
        munmap(map, size);
        return nx_fail(err, "%s: header length %llu (byte 0) runs past the end of the file (%zu bytes); "
                            "the file is truncated or not safetensors", path, (unsigned long long)hlen, size);
    }
    if (hlen > MAX_HEADER) {
        munmap(map, size);
        return nx_fail(err, "%s: header length %llu (byte 0) exceeds the %u-byte limit", path,
                       (unsigned long long)hlen, MAX_HEADER);
    }
    nx_st_tensor *t;
    int n;
    if (nx_st_parse_header((const char *)b + 8, hlen, size - 8 - hlen, path, &t, &n, err)) {
        munmap(map, size);
        return NX_ERR;
    }
    const unsigned char *data = b + 8 + hlen;
    for (int i = 0; i < n; i++) {
        t[i].data = data + t[i].offset;
        t[i].file = st->nfiles;
    }
    st->t = realloc(st->t, sizeof *st->t * (st->n + n + 1));
    NX_ASSERTM(st->t, "out of memory");
    memcpy(st->t + st->n, t, sizeof *t * n);
    st->n += n;
    free(t); /* names now owned by st */
    push_file(st, path, map, size);
    return NX_OK;
}

int nx_st_open(nx_safetensors *st, const char *path, nx_err *err) {
    memset(st, 0, sizeof *st);
    if (open_into(st, path, err)) {
        nx_st_close(st);
        return NX_ERR;
    }
    return NX_OK;
}

const nx_st_tensor *nx_st_find(const nx_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

void nx_st_close(nx_safetensors *st) {
    nx_st_free_tensors(st->t, st->n);
    for (int i = 0; i < st->nfiles; i++) {
        if (st->maps[i]) munmap(st->maps[i], st->map_sizes[i]);
        free(st->paths[i]);
    }
    free(st->maps);
    free(st->map_sizes);
    free(st->paths);
    memset(st, 0, sizeof *st);
}

/* Sharded checkpoint: DIR/model.safetensors.index.json names, for every
 * tensor, the shard file that holds it. */
static int open_index(nx_safetensors *st, const char *dir, const char *ipath, nx_err *err) {
    size_t len;
    char *txt = nx_read_file(ipath, MAX_HEADER, &len, err);
    if (!txt) return NX_ERR;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!root) {
        size_t at = end && end >= txt && end <= txt + len ? (size_t)(end - txt) : 0;
        free(txt);
        return nx_fail(err, "%s: not valid JSON (error near byte %zu)", ipath, at);
    }
    free(txt);
    int rc = NX_ERR;
    char **shards = NULL;
    int nshards = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        nx_fail(err, "%s: key 'weight_map' must be an object of tensor name → shard file (got %s)", ipath,
                nx_json_kind(wm));
        goto done;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            nx_fail(err, "%s: weight_map entry for tensor '%.200s' must be a file name string (got %s)",
                    ipath, e->string, nx_json_kind(e));
            goto done;
        }
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0) {
            nx_fail(err, "%s: weight_map entry for tensor '%.200s' names shard '%.200s', which is not a "
                         "plain file name in the model directory", ipath, e->string, f);
            goto done;
        }
        int k = 0;
        while (k < nshards && strcmp(shards[k], f)) k++;
        if (k == nshards) {
            shards = realloc(shards, sizeof *shards * (nshards + 1));
            NX_ASSERTM(shards, "out of memory");
            shards[nshards++] = (char *)f;
        }
    }
    {
        int nk = cJSON_GetArraySize(wm), k = 0;
        const char **keys = nx_xmalloc(sizeof *keys * (nk + 1));
        for (const cJSON *e = wm->child; e; e = e->next) keys[k++] = e->string;
        qsort(keys, nk, sizeof *keys, by_name_ptr);
        for (k = 1; k < nk; k++)
            if (strcmp(keys[k - 1], keys[k]) == 0) {
                nx_fail(err, "%s: tensor '%.200s' is listed twice in weight_map", ipath, keys[k]);
                free(keys);
                goto done;
            }
        free(keys);
    }
    if (nshards == 0) {
        nx_fail(err, "%s: weight_map is empty", ipath);
        goto done;
    }
    for (int k = 0; k < nshards; k++) {
        char *p = nx_path_join(dir, shards[k]);
        int r = open_into(st, p, err);
        free(p);
        if (r) goto done;
    }
    /* Every tensor in a shard must be listed for that shard ... */
    for (int i = 0; i < st->n; i++) {
        const nx_st_tensor *t = &st->t[i];
        const char *shard = strrchr(st->paths[t->file], '/') + 1;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(wm, t->name);
        if (!e) {
            nx_fail(err, "%s: tensor '%.200s' is not listed in %s (extra tensor); re-create the index "
                         "or remove the tensor", st->paths[t->file], t->name, ipath);
            goto done;
        }
        if (strcmp(e->valuestring, shard) != 0) {
            nx_fail(err, "%s: tensor '%.200s' is in shard %s but the index names %s", ipath, t->name,
                    shard, e->valuestring);
            goto done;
        }
    }
    /* ... and every listed tensor present, once. */
    for (const cJSON *e = wm->child; e; e = e->next) {
        int found = 0;
        for (int i = 0; i < st->n; i++)
            if (strcmp(st->t[i].name, e->string) == 0) found++;
        if (found == 0) {
            nx_fail(err, "%s: tensor '%.200s' is listed for shard %s but missing from it", ipath,
                    e->string, e->valuestring);
            goto done;
        }
    }
    {
        const char **names = nx_xmalloc(sizeof *names * (st->n + 1));
        for (int i = 0; i < st->n; i++) names[i] = st->t[i].name;
        qsort(names, st->n, sizeof *names, by_name_ptr);
        for (int i = 1; i < st->n; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                nx_fail(err, "%s: tensor '%.200s' is listed twice or appears in more than one shard",
                        ipath, names[i]);
                free(names);
                goto done;
            }
        free(names);
    }
    rc = NX_OK;
done:
    free(shards);
    cJSON_Delete(root);
    return rc;
}

int nx_st_open_dir(nx_safetensors *st, const char *dir, nx_err *err) {
    memset(st, 0, sizeof *st);
    char *ipath = nx_path_join(dir, "model.safetensors.index.json");
    char *spath = nx_path_join(dir, "model.safetensors");
    int rc;
    if (access(ipath, F_OK) == 0) rc = open_index(st, dir, ipath, err);
    else if (access(spath, F_OK) == 0) rc = open_into(st, spath, err);
    else {
        struct stat sb;
        if (stat(dir, &sb) != 0)
            rc = nx_fail(err, "%s: cannot open model directory: %s", dir, strerror(errno));
        else if (!S_ISDIR(sb.st_mode))
            rc = nx_fail(err, "%s: not a directory", dir);
        else
            rc = nx_fail(err, "%s: no model.safetensors or model.safetensors.index.json in this "
                              "directory", dir);
    }
    free(ipath);
    free(spath);
    if (rc) nx_st_close(st);
    return rc;
}

/* ---- writing ----------------------------------------------------------- */

int nx_st_write(const char *path, const nx_st_entry *e, int n, nx_err *err) {
    if (n < 0) return nx_fail(err, "%s: negative tensor count", path);
    size_t *nbytes = nx_xcalloc(n ? (size_t)n : 1, sizeof *nbytes);
    const char **names = nx_xcalloc(n ? (size_t)n : 1, sizeof *names);
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddItemToObject(root, "__metadata__", meta);
    char *hdr = NULL;
    int rc = NX_ERR;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const nx_st_entry *x = &e[i];
        if (!x->name || !*x->name || strcmp(x->name, "__metadata__") == 0) {
            nx_fail(err, "%s: entry %d has an empty or reserved name", path, i);
            goto done;
        }
        if ((unsigned)x->dtype >= NX_DTYPE_COUNT || nx_type(x->dtype)->block != 1 || x->ndim < 0 || x->ndim > NX_MAX_DIMS) {
            nx_fail(err, "%s: tensor '%.200s': bad dtype or ndim %d", path, x->name, x->ndim);
            goto done;
        }
        size_t numel = 1;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] < 0 || __builtin_mul_overflow(numel, (size_t)x->shape[d], &numel)) {
                nx_fail(err, "%s: tensor '%.200s': bad shape[%d] = %lld", path, x->name, d,
                        (long long)x->shape[d]);
                goto done;
            }
        if (__builtin_mul_overflow(numel, nx_dtype_size(x->dtype), &nbytes[i]) || (nbytes[i] && !x->data)) {
            nx_fail(err, "%s: tensor '%.200s': no data or size overflow", path, x->name);
            goto done;
        }
        names[i] = x->name;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dtype", nx_dtype_name(x->dtype));
        cJSON *sh = cJSON_CreateArray();
        for (int d = 0; d < x->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)x->shape[d]));
        cJSON_AddItemToObject(o, "shape", sh);
        cJSON *of = cJSON_CreateArray();
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nbytes[i])));
        cJSON_AddItemToObject(o, "data_offsets", of);
        cJSON_AddItemToObject(root, x->name, o);
        off += nbytes[i];
    }
    qsort(names, n, sizeof *names, by_name_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            nx_fail(err, "%s: tensor '%.200s' given twice", path, names[i]);
            goto done;
        }
    hdr = cJSON_PrintUnformatted(root);
    NX_ASSERTM(hdr, "out of memory");
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    nx_atomic_file f;
    if (nx_atomic_open(&f, path, err) || nx_atomic_write(&f, len8, 8, err) ||
        nx_atomic_write(&f, hdr, hlen, err) || nx_atomic_write(&f, spaces, padded - hlen, err))
        goto done;
    for (int i = 0; i < n; i++)
        if (nx_atomic_write(&f, e[i].data, nbytes[i], err)) goto done;
    rc = nx_atomic_commit(&f, err);
done:
    free(hdr);
    cJSON_Delete(root);
    free(names);
    free(nbytes);
    return rc;
}
