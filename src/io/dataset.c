/* dataset.c — documents to token streams, token shards on disk, and the
 * batch loader that training reads from.
 *
 * Tokenizing: files are read through zlib's gzopen, which reads gzip and
 * plain files alike. Documents are gathered in chunks (a few thousand, or
 * 16 MB of text) and each chunk is tokenized with an OpenMP loop over its
 * documents; results are concatenated in document order with EOS after each,
 * so the stream is identical for any thread count.
 *
 * Shards: a 64-byte little-endian header (layout in docs/TOKENIZER.md and
 * below), then the tokens. Opening maps the file and checks everything up
 * front — a corrupt shard must fail before a training run starts, not
 * hours into it. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nexus/dataset.h"

#include "nexus/fsutil.h"

/* ------------------------------------------------------------------ */
/* tokenizing documents                                                 */

typedef struct { char *p; size_t n, cap; } buf;

static void buf_put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n + 1) c *= 2;
        b->p = realloc(b->p, c);
        NX_ASSERTM(b->p, "out of memory");
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

typedef struct { size_t off, len; long line; } doc;

typedef struct {
    buf text;            /* all documents of the chunk, back to back */
    doc *d; size_t n, cap;
} chunk;

static void chunk_add(chunk *c, const char *s, size_t n, long line) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->d = realloc(c->d, c->cap * sizeof(doc));
        NX_ASSERT(c->d);
    }
    c->d[c->n++] = (doc){c->text.n, n, line};
    buf_put(&c->text, s, n);
}

static void stream_push(nx_token_stream *s, size_t *cap, const int32_t *ids, size_t n) {
    if (!n) return; /* an empty document: ids may be NULL, and so may the stream */
    if (s->n + n > *cap) {
        size_t c = *cap ? *cap : 1 << 16;
        while (c < s->n + n) c *= 2;
        s->ids = realloc(s->ids, c * sizeof(int32_t));
        NX_ASSERTM(s->ids, "out of memory");
        *cap = c;
    }
    memcpy(s->ids + s->n, ids, n * sizeof(int32_t));
    s->n += n;
}

typedef struct {
    const nx_tokenizer *t;
    const nx_docs_opts *o;
    nx_token_stream *out;
    size_t cap, dcap;
    nx_docs_stats st;
    double t0, last_print;
    uint64_t file_bytes, file_pos; /* progress of the current file */
    const char *path;
} run;

static void progress(run *r, bool final) {
    if (!r->o->progress) return;
    double now = nx_now();
    if (!final && now - r->last_print < 0.2) return;
    r->last_print = now;
    double el = now - r->t0;
    int pct = r->file_bytes ? (int)(100.0 * (double)r->file_pos / (double)r->file_bytes) : 0;
    if (pct > 100) pct = 100;
    char bar[21];
    for (int i = 0; i < 20; i++) bar[i] = i < pct / 5 ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "\r%s [%s] %3d%%  %zu docs  %zu tokens  %.1f MB/s ", r->path, bar, pct,
            r->st.docs, r->out->n, el > 0 ? (double)r->st.bytes / el / 1e6 : 0.0);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

enum { DOC_OK, DOC_NOT_JSON, DOC_NO_FIELD, DOC_BAD_TEXT, DOC_NUL_BYTE, DOC_TRAILING, DOC_NUL_ESCAPE, DOC_DUP_FIELD };

/* Offset of the first \u0000 escape in JSON text (an escaped backslash is
 * skipped), or n. cJSON decodes it into a NUL that would end the text
 * early; nexus does not tokenize NUL characters, so such a line is refused. */
static size_t nul_escape_at(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '\\') {
            if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return i;
            i++;
        }
    return n;
}

/* Parses one JSONL line strictly: exactly one JSON value, nothing but
 * white space after it, no NUL byte, no \u0000, the field present once
 * as a string. On DOC_OK, *text and *tl are the field's text; *col is the
 * 1-based column an error points at. */
static int parse_line(const char *line, size_t n, const char *field, cJSON **o, const char **text, size_t *tl,
                      size_t *col) {
    const char *nul = memchr(line, '\0', n);
    if (nul) return *col = (size_t)(nul - line) + 1, DOC_NUL_BYTE;
    const char *end = NULL;
    *o = cJSON_ParseWithLengthOpts(line, n, &end, false);
    if (!*o) return *col = end && end >= line && end <= line + n ? (size_t)(end - line) + 1 : 1, DOC_NOT_JSON;
    for (const char *p = end; p < line + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r') return *col = (size_t)(p - line) + 1, DOC_TRAILING;
    size_t esc = nul_escape_at(line, n);
    if (esc < n) return *col = esc + 1, DOC_NUL_ESCAPE;
    const cJSON *v = NULL;
    int seen = 0;
    if (cJSON_IsObject(*o))
        for (const cJSON *it = (*o)->child; it; it = it->next)
            if (it->string && !strcmp(it->string, field)) seen++, v = v ? v : it;
    if (seen > 1) return DOC_DUP_FIELD;
    if (!cJSON_IsString(v)) return DOC_NO_FIELD;
    *text = v->valuestring;
    *tl = strlen(*text);
    return DOC_OK;
}

/* Parse (JSONL) and tokenize a chunk in parallel, then append it in order;
 * the first bad line in file order decides the error. */
static int flush_chunk(run *r, chunk *c, bool jsonl, const char *field, nx_err *err) {
    size_t n = c->n;
    if (!n) return NX_OK;
    int32_t **ids = nx_xcalloc(n, sizeof(int32_t *));
    size_t *len = nx_xcalloc(n, sizeof(size_t)), *tbytes = nx_xcalloc(n, sizeof(size_t));
    int *status = nx_xcalloc(n, sizeof(int));
    size_t *col = nx_xcalloc(n, sizeof(size_t));
    nx_err *first_err = nx_xcalloc(1, sizeof(nx_err));
    size_t first_bad = n;
    int nt = r->o->threads > 0 ? r->o->threads : omp_get_max_threads();
    #pragma omp parallel for schedule(dynamic, 8) num_threads(nt)
    for (size_t i = 0; i < n; i++) {
        const char *text = c->text.p + c->d[i].off;
        size_t tl = c->d[i].len;
        cJSON *o = NULL;
        if (jsonl) status[i] = parse_line(text, tl, field, &o, &text, &tl, &col[i]);
        nx_err e;
        if (status[i] == DOC_OK && nx_tokenizer_encode(r->t, text, tl, false, &ids[i], &len[i], &e)) {
            status[i] = DOC_BAD_TEXT;
            #pragma omp critical
            if (i < first_bad) { first_bad = i; *first_err = e; }
        }
        tbytes[i] = tl;
        cJSON_Delete(o);
    }
    int rc = NX_OK;
    for (size_t i = 0; i < n && rc == NX_OK; i++) {
        if (status[i] != DOC_OK) {
            if (r->o->skip_bad_lines && c->d[i].line > 0) { r->st.bad_lines++; continue; }
            const char *hint = c->d[i].line > 0 ? " (fix it or pass --skip-bad-lines)" : "";
            if (status[i] == DOC_NOT_JSON)
                rc = nx_fail(err, "%s:%ld:%zu: line is not valid JSON%s", r->path, c->d[i].line, col[i], hint);
            else if (status[i] == DOC_NUL_BYTE)
                rc = nx_fail(err, "%s:%ld:%zu: a NUL byte: a JSON line is text%s", r->path, c->d[i].line, col[i],
                             hint);
            else if (status[i] == DOC_TRAILING)
                rc = nx_fail(err, "%s:%ld:%zu: line is not valid JSON: more after the value ends%s", r->path,
                             c->d[i].line, col[i], hint);
            else if (status[i] == DOC_NUL_ESCAPE)
                rc = nx_fail(err, "%s:%ld:%zu: a \\u0000 escape (a NUL character), which nexus does not "
                             "tokenize%s", r->path, c->d[i].line, col[i], hint);
            else if (status[i] == DOC_DUP_FIELD)
                rc = nx_fail(err, "%s:%ld: field \"%s\" appears more than once%s", r->path, c->d[i].line, field,
                             hint);
            else if (status[i] == DOC_NO_FIELD)
                rc = nx_fail(err, "%s:%ld: no string field \"%s\" (choose the field with --field)%s", r->path,
                             c->d[i].line, field, hint);
            else if (c->d[i].line > 0)
                rc = nx_fail(err, "%s:%ld: field \"%s\": %s%s", r->path, c->d[i].line, field, first_err->msg, hint);
            else
                rc = nx_fail(err, "%s: %s", r->path, first_err->msg);
            continue;
        }
        stream_push(r->out, &r->cap, ids[i], len[i]);
        if (r->o->eos_id >= 0) stream_push(r->out, &r->cap, &r->o->eos_id, 1);
        if (r->out->n_docs == r->dcap) {
            r->dcap = r->dcap ? 2 * r->dcap : 1024;
            r->out->doc_end = realloc(r->out->doc_end, r->dcap * sizeof(size_t));
            NX_ASSERT(r->out->doc_end);
        }
        r->out->doc_end[r->out->n_docs++] = r->out->n;
        r->st.docs++;
        r->st.bytes += tbytes[i];
    }
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids); free(len); free(tbytes); free(status); free(col); free(first_err);
    c->n = 0;
    c->text.n = 0;
    progress(r, false);
    return rc;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* zlib's state after a read: NX_OK at a clean end, else an error naming
 * the compressed byte where the stream broke. Z_BUF_ERROR is zlib's
 * "unexpected end of file": the gzip stream stops before its end (a
 * truncated download or copy), which must not pass for the end of the
 * data. */
static int gz_status(gzFile g, const char *path, long lineno, nx_err *err) {
    int e;
    const char *msg = gzerror(g, &e);
    if (e == Z_OK) return NX_OK;
    char after[48] = "";
    if (lineno > 0) snprintf(after, sizeof after, " (after line %ld)", lineno);
    if (e == Z_ERRNO) return nx_fail(err, "%s: read error%s: %s", path, after, strerror(errno));
    return nx_fail(err, "%s: gzip stream %s at compressed byte %lld%s: %s; re-create or re-download the file",
                   path, e == Z_BUF_ERROR ? "truncated" : "corrupt or truncated", (long long)gzoffset(g), after,
                   e == Z_BUF_ERROR ? "it ends before the end of the compressed data" : msg);
}

/* Lines of a (gzip or plain) file, read in blocks with gzread: a line may
 * hold any byte, NUL included (gzgets would stop at a NUL and fold the
 * rest of the line into the next). */
typedef struct {
    gzFile g;
    char *p;
    size_t at, n;
    bool eof;
} line_reader;

enum { READ_BLOCK = 1 << 18, MAX_LINE = 64 << 20 }; /* a JSONL line (one document) at most */

/* One line into l (without its newline, nor a \r before it). 1: a line,
 * 0: end of file, -1: a read error (zlib's state says which), -2: a line
 * longer than MAX_LINE. */
static int read_line(line_reader *rd, buf *l) {
    l->n = 0;
    for (;;) {
        if (rd->at == rd->n) {
            if (rd->eof) return l->n > 0 ? 1 : 0;
            int k = gzread(rd->g, rd->p, READ_BLOCK);
            int e;
            gzerror(rd->g, &e);
            if (k < 0 || (k == 0 && e != Z_OK)) return -1;
            if (k == 0) rd->eof = true;
            rd->at = 0;
            rd->n = (size_t)k;
            continue;
        }
        const char *s = rd->p + rd->at, *nl = memchr(s, '\n', rd->n - rd->at);
        size_t k = nl ? (size_t)(nl - s) : rd->n - rd->at;
        if (l->n + k > MAX_LINE) return -2;
        buf_put(l, s, k);
        rd->at += k + (nl != NULL);
        if (nl) {
            if (l->n && l->p[l->n - 1] == '\r') l->p[--l->n] = 0;
            return 1;
        }
    }
}

static int do_file(run *r, const char *path, nx_err *err) {
    struct stat st;
    int fd = nx_open_regular(path, &st, err);
    if (fd < 0) return NX_ERR;
    gzFile g = gzdopen(fd, "rb");
    if (!g) {
        close(fd);
        return nx_fail(err, "%s: cannot open (%s)", path, strerror(errno));
    }
    gzbuffer(g, 1 << 18);
    r->path = path;
    r->file_bytes = (uint64_t)st.st_size;
    r->file_pos = 0;
    const char *field = r->o->field ? r->o->field : "text";
    bool jsonl = ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz") || ends_with(path, ".json") ||
                 ends_with(path, ".json.gz");
    chunk c = {0};
    buf line = {0};
    int rc = NX_OK;
    if (!jsonl) {
        buf all = {0};
        char tmp[65536];
        int k;
        while ((k = gzread(g, tmp, sizeof tmp)) > 0 && all.n <= NX_MAX_TEXT) buf_put(&all, tmp, (size_t)k);
        if (all.n > NX_MAX_TEXT)
            rc = nx_fail(err, "%s: larger than %u MiB of text, the most one plain-text document may be: split it "
                              "into JSONL lines (one document each)", path, NX_MAX_TEXT >> 20);
        else if (gz_status(g, path, -1, err)) rc = NX_ERR;
        else {
            chunk_add(&c, all.p ? all.p : "", all.n, 0);
            r->file_pos = r->file_bytes;
            rc = flush_chunk(r, &c, jsonl, field, err);
        }
        free(all.p);
    } else {
        long lineno = 0;
        int got;
        line_reader rd = {.g = g, .p = nx_xmalloc(READ_BLOCK)};
        while (rc == NX_OK && (got = read_line(&rd, &line)) == 1) {
            lineno++;
            size_t i = 0;
            while (i < line.n && (line.p[i] == ' ' || line.p[i] == '\t')) i++;
            if (i == line.n) continue; /* blank line */
            chunk_add(&c, line.p, line.n, lineno);
            if (c.n >= 4096 || c.text.n >= (16u << 20)) {
                r->file_pos = (uint64_t)gzoffset(g);
                rc = flush_chunk(r, &c, jsonl, field, err);
            }
        }
        free(rd.p);
        if (rc == NX_OK && got == -2)
            rc = nx_fail(err, "%s:%ld: line longer than %d MiB, the most one JSONL document may be", path, lineno + 1,
                         MAX_LINE >> 20);
        else if (rc == NX_OK && got < 0 && gz_status(g, path, lineno, err)) rc = NX_ERR;
        r->file_pos = r->file_bytes;
        if (rc == NX_OK) rc = flush_chunk(r, &c, jsonl, field, err);
    }
    progress(r, true);
    free(line.p);
    free(c.text.p);
    free(c.d);
    gzclose(g);
    return rc;
}

int nx_dataset_tokenize(const nx_tokenizer *t, const char *const *paths, int npaths, const nx_docs_opts *o,
                        nx_token_stream *out, nx_docs_stats *stats, nx_err *err) {
    run r = {.t = t, .o = o, .out = out, .cap = out->n, .dcap = out->n_docs, .t0 = nx_now()};
    int rc = NX_OK;
    for (int i = 0; i < npaths && rc == NX_OK; i++) rc = do_file(&r, paths[i], err);
    r.st.seconds = nx_now() - r.t0;
    if (stats) *stats = r.st;
    return rc;
}

void nx_token_stream_free(nx_token_stream *s) {
    free(s->ids);
    free(s->doc_end);
    *s = (nx_token_stream){0};
}

/* ------------------------------------------------------------------ */
/* shards
 *
 *   offset size
 *    0      8   magic "NXTOKENS"
 *    8      4   version (1)
 *   12      4   bytes per token (2 or 4)
 *   16      8   token count
 *   24      4   vocabulary size
 *   28      4   EOS id (0xFFFFFFFF: none)
 *   32      8   document count
 *   40      8   tokenizer fingerprint
 *   48      4   CRC32 (zlib) of the payload
 *   52      4   CRC32 of header bytes 0..51
 *   56      8   reserved, zero
 *   64          payload: token count little-endian u16/u32
 */

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static uint32_t crc_bytes(uint32_t crc, const void *p, size_t n) {
    const uint8_t *s = p;
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, s, k);
        s += k;
        n -= k;
    }
    return crc;
}

/* ids[0..k) as little-endian u16/u32 into out. */
static void pack(uint8_t *out, const int32_t *ids, size_t k, uint32_t width) {
    for (size_t j = 0; j < k; j++) {
        if (width == 2) { out[2 * j] = (uint8_t)ids[j]; out[2 * j + 1] = (uint8_t)(ids[j] >> 8); }
        else put32(out + 4 * j, (uint32_t)ids[j]);
    }
}

int nx_shard_write(const char *path, const int32_t *ids, size_t n, uint32_t vocab_size, int32_t eos_id,
                   uint64_t n_docs, uint64_t fingerprint, nx_err *err) {
    uint32_t width = vocab_size <= 65536 ? 2 : 4;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= vocab_size)
            return nx_fail(err, "%s: token %zu is id %d, outside the vocabulary [0, %u)", path, i, ids[i], vocab_size);
    /* The header holds the payload's CRC: one pass packs for the CRC, a
     * second packs again for writing (packing is far cheaper than I/O). */
    uint8_t blk[1 << 16];
    size_t per = sizeof blk / width;
    uint32_t crc = (uint32_t)crc32(0, NULL, 0);
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        pack(blk, ids + i, k, width);
        crc = crc_bytes(crc, blk, k * width);
    }
    uint8_t h[NX_SHARD_HEADER_BYTES] = {0};
    memcpy(h, NX_SHARD_MAGIC, 8);
    put32(h + 8, NX_SHARD_VERSION);
    put32(h + 12, width);
    put64(h + 16, n);
    put32(h + 24, vocab_size);
    put32(h + 28, (uint32_t)eos_id);
    put64(h + 32, n_docs);
    put64(h + 40, fingerprint);
    put32(h + 48, crc);
    put32(h + 52, crc_bytes((uint32_t)crc32(0, NULL, 0), h, 52));
    nx_atomic_file f;
    if (nx_atomic_open(&f, path, err) || nx_atomic_write(&f, h, sizeof h, err)) return NX_ERR;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        pack(blk, ids + i, k, width);
        if (nx_atomic_write(&f, blk, k * width, err)) return NX_ERR;
    }
    return nx_atomic_commit(&f, err);
}

int nx_shard_open(nx_shard *s, const char *path, nx_err *err) {
    *s = (nx_shard){0};
    struct stat st;
    int fd = nx_open_regular(path, &st, err);
    if (fd < 0) return NX_ERR;
    size_t len = (size_t)st.st_size;
    if (len < NX_SHARD_HEADER_BYTES) {
        close(fd);
        return nx_fail(err, "%s: %zu bytes, shorter than the %d-byte shard header: truncated or not a token shard",
                       path, len, NX_SHARD_HEADER_BYTES);
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return nx_fail(err, "%s: mmap failed (%s)", path, strerror(errno));
    const uint8_t *h = m;
    nx_shard_info *in = &s->info;
    int rc = NX_OK;
    if (memcmp(h, NX_SHARD_MAGIC, 8))
        rc = nx_fail(err, "%s: not a nexus token shard (bad magic); make one with 'nexus prepare-data'", path);
    else if ((in->version = get32(h + 8)) != NX_SHARD_VERSION)
        rc = nx_fail(err, "%s: shard format version %u, this nexus reads version %u; re-run 'nexus prepare-data' "
                     "with this nexus (or use the nexus that wrote it)", path, in->version, NX_SHARD_VERSION);
    else if (get32(h + 52) != crc_bytes((uint32_t)crc32(0, NULL, 0), h, 52))
        rc = nx_fail(err, "%s: header checksum mismatch: the file is corrupt; re-run 'nexus prepare-data'", path);
    if (rc == NX_OK) {
        in->width = get32(h + 12);
        in->n_tokens = get64(h + 16);
        in->vocab_size = get32(h + 24);
        in->eos_id = (int32_t)get32(h + 28);
        in->n_docs = get64(h + 32);
        in->fingerprint = get64(h + 40);
        in->crc32 = get32(h + 48);
        if (in->width != 2 && in->width != 4)
            rc = nx_fail(err, "%s: token width %u is not 2 or 4: corrupt header", path, in->width);
        else if (in->n_tokens > (len - NX_SHARD_HEADER_BYTES) / in->width ||
                 NX_SHARD_HEADER_BYTES + in->n_tokens * in->width != len)
            rc = nx_fail(err, "%s: header says %llu tokens (%llu bytes) but the file has %zu bytes: truncated or "
                         "padded; re-run 'nexus prepare-data'", path, (unsigned long long)in->n_tokens,
                         (unsigned long long)(NX_SHARD_HEADER_BYTES + in->n_tokens * in->width), len);
    }
    if (rc == NX_OK) {
        const uint8_t *p = h + NX_SHARD_HEADER_BYTES;
        uint32_t crc = crc_bytes((uint32_t)crc32(0, NULL, 0), p, in->n_tokens * in->width);
        if (crc != in->crc32)
            rc = nx_fail(err, "%s: payload CRC32 %08x does not match the header's %08x: the file is corrupt; "
                         "re-run 'nexus prepare-data'", path, crc, in->crc32);
    }
    if (rc == NX_OK) {
        nx_tokens v = {h + NX_SHARD_HEADER_BYTES, in->width, in->n_tokens};
        for (uint64_t i = 0; i < v.n; i++)
            if ((uint32_t)nx_tokens_at(v, i) >= in->vocab_size) {
                rc = nx_fail(err, "%s: token %llu is %d, outside the vocabulary size %u", path,
                             (unsigned long long)i, nx_tokens_at(v, i), in->vocab_size);
                break;
            }
    }
    if (rc) { munmap(m, len); *s = (nx_shard){0}; return NX_ERR; }
    s->map = m;
    s->map_len = len;
    s->tokens = h + NX_SHARD_HEADER_BYTES;
    return NX_OK;
}

void nx_shard_close(nx_shard *s) {
    if (s->map) munmap(s->map, s->map_len);
    *s = (nx_shard){0};
}

/* ------------------------------------------------------------------ */
/* shard sets
 *
 * prepare-data writes train.bin and val.bin as one set: both shards go to
 * staging names (.NAME.new, each itself atomic), then manifest.json is
 * removed, the staged files are renamed into place, shards of the earlier
 * set that the new one lacks are deleted, and a new manifest.json naming
 * every shard with its size, token and document counts and payload CRC32
 * is written atomically last. A reader opens a shard of a directory only
 * through the manifest: no manifest (an interrupted write, an older
 * nexus) or a shard that does not match it (a leftover, a file copied in)
 * is refused, so train.bin and val.bin always come from one run. */

static int manifest_load(const char *dir, cJSON **out, char *mpath, size_t n, nx_err *err) {
    snprintf(mpath, n, "%s/" NX_SHARD_MANIFEST, dir);
    struct stat st;
    if (stat(mpath, &st) != 0)
        return nx_fail(err, "%s: no " NX_SHARD_MANIFEST ": not a complete shard set (prepare-data was interrupted, "
                            "or an older nexus wrote it); re-run 'nexus prepare-data'", dir);
    size_t len;
    char *txt = nx_read_file(mpath, 1 << 20, &len, err);
    if (!txt) return NX_ERR;
    *out = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!cJSON_IsObject(*out) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(*out, "shards"))) {
        cJSON_Delete(*out);
        return nx_fail(err, "%s: not a shard-set manifest; re-run 'nexus prepare-data'", mpath);
    }
    return NX_OK;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

int nx_shard_set_write(const char *dir, const nx_shard_part *parts, int nparts, uint32_t vocab_size,
                       int32_t eos_id, uint64_t fingerprint, nx_err *err) {
    char from[4096], to[4096];
    int rc = NX_OK, staged = 0;
    cJSON *man = cJSON_CreateObject(), *shards;
    cJSON_AddStringToObject(man, "format", "nexus token shard set");
    cJSON_AddNumberToObject(man, "version", 1);
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint);
    cJSON_AddStringToObject(man, "tokenizer_fingerprint", fp);
    shards = cJSON_AddObjectToObject(man, "shards");
    for (int i = 0; i < nparts && rc == NX_OK; i++, staged++) {
        snprintf(from, sizeof from, "%s/.%s.new", dir, parts[i].name);
        rc = nx_shard_write(from, parts[i].ids, parts[i].n, vocab_size, eos_id, parts[i].n_docs, fingerprint, err);
        nx_shard sh;
        if (rc == NX_OK && (rc = nx_shard_open(&sh, from, err)) == NX_OK) {
            cJSON *e = cJSON_AddObjectToObject(shards, parts[i].name);
            char crc[12];
            snprintf(crc, sizeof crc, "%08x", sh.info.crc32);
            cJSON_AddNumberToObject(e, "bytes", (double)sh.map_len);
            cJSON_AddNumberToObject(e, "tokens", (double)sh.info.n_tokens);
            cJSON_AddNumberToObject(e, "documents", (double)sh.info.n_docs);
            cJSON_AddStringToObject(e, "crc32", crc);
            nx_shard_close(&sh);
        }
    }
    /* the switch: no manifest while the files change */
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/" NX_SHARD_MANIFEST, dir);
    cJSON *old = NULL;
    if (rc == NX_OK) {
        nx_err ignore;
        if (manifest_load(dir, &old, to, sizeof to, &ignore)) old = NULL;
        if (unlink(mpath) && errno != ENOENT) rc = nx_fail(err, "%s: cannot remove: %s", mpath, strerror(errno));
    }
    for (int i = 0; i < nparts && rc == NX_OK; i++) {
        snprintf(from, sizeof from, "%s/.%s.new", dir, parts[i].name);
        snprintf(to, sizeof to, "%s/%s", dir, parts[i].name);
        if (rename(from, to)) rc = nx_fail(err, "%s: cannot rename into place: %s", to, strerror(errno));
    }
    if (rc == NX_OK) { /* shards of the earlier set the new one lacks */
        const char *known[] = {"train.bin", "val.bin"};
        const cJSON *olds = old ? cJSON_GetObjectItemCaseSensitive(old, "shards") : NULL;
        for (int k = 0; k < 2 + (olds ? cJSON_GetArraySize(olds) : 0); k++) {
            const char *name = k < 2 ? known[k] : cJSON_GetArrayItem(olds, k - 2)->string;
            if (!name || strchr(name, '/') || cJSON_GetObjectItemCaseSensitive(shards, name)) continue;
            snprintf(to, sizeof to, "%s/%s", dir, name);
            if (unlink(to) && errno != ENOENT) rc = nx_fail(err, "%s: cannot remove the earlier set's shard: %s", to,
                                                            strerror(errno));
        }
    }
    cJSON_Delete(old);
    if (rc == NX_OK) {
        char *text = cJSON_Print(man);
        size_t len = strlen(text);
        const void *pp[2] = {text, "\n"};
        size_t ll[2] = {len, 1};
        rc = nx_write_atomic(mpath, pp, ll, 2, err);
        free(text);
    }
    if (rc != NX_OK)
        for (int i = 0; i < staged; i++) {
            snprintf(from, sizeof from, "%s/.%s.new", dir, parts[i].name);
            unlink(from);
        }
    cJSON_Delete(man);
    return rc;
}

int nx_shard_set_open(nx_shard *s, const char *dir, const char *name, nx_err *err) {
    *s = (nx_shard){0};
    cJSON *man;
    char mpath[4096], path[4096];
    if (manifest_load(dir, &man, mpath, sizeof mpath, err)) return NX_ERR;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(man, "shards"), name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = NX_OK;
    if (!cJSON_IsObject(e)) {
        rc = nx_fail(err, "%s: the shard set (%s) has no %s%s", dir, mpath, name,
                     strcmp(name, "val.bin") ? "" : ": it was prepared without a validation split (prepare-data "
                                                    "--val-fraction / --val-docs)");
    } else if (nx_shard_open(s, path, err) == NX_OK) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "crc32");
        char crc[12];
        snprintf(crc, sizeof crc, "%08x", s->info.crc32);
        if (num(e, "bytes") != (double)s->map_len || num(e, "tokens") != (double)s->info.n_tokens ||
            num(e, "documents") != (double)s->info.n_docs || !cJSON_IsString(c) || strcmp(c->valuestring, crc)) {
            rc = nx_fail(err, "%s does not belong to its shard set: %s lists %.0f tokens, CRC32 %s; the file holds "
                              "%llu tokens, CRC32 %s (a leftover of an earlier prepare-data, or copied in); re-run "
                              "'nexus prepare-data'", path, mpath, num(e, "tokens"),
                         cJSON_IsString(c) ? c->valuestring : "?", (unsigned long long)s->info.n_tokens, crc);
            nx_shard_close(s);
        }
    } else {
        rc = NX_ERR;
    }
    cJSON_Delete(man);
    return rc;
}

/* ------------------------------------------------------------------ */
/* batches                                                              */

nx_tokens nx_shard_tokens(const nx_shard *s) { return (nx_tokens){s->tokens, s->info.width, s->info.n_tokens}; }
nx_tokens nx_stream_tokens(const nx_token_stream *s) { return (nx_tokens){s->ids, 4, s->n}; }

int nx_loader_init(nx_loader *l, nx_tokens src, int B, int T, nx_batch_mode mode, uint64_t seed, nx_err *err) {
    if (B < 1 || T < 1) return nx_fail(err, "batch size %d and sequence length %d must be at least 1", B, T);
    if (src.n < (uint64_t)T + 1)
        return nx_fail(err, "the token stream has %llu tokens, fewer than one window of T+1 = %d",
                       (unsigned long long)src.n, T + 1);
    *l = (nx_loader){.src = src, .B = B, .T = T, .mode = mode};
    nx_rng_seed(&l->st.rng, seed);
    return NX_OK;
}

int nx_loader_restore(nx_loader *l, const nx_loader_state *st, nx_err *err) {
    const uint64_t W = (uint64_t)l->T + 1;
    if (l->mode == NX_BATCH_SEQUENTIAL && (st->pos > l->src.n || st->pos % W))
        return nx_fail(err, "data-loader position %llu is not the start of a window of %llu tokens within the "
                            "%llu tokens of the data", (unsigned long long)st->pos, (unsigned long long)W,
                       (unsigned long long)l->src.n);
    if (l->mode == NX_BATCH_RANDOM && !(st->rng.s[0] | st->rng.s[1] | st->rng.s[2] | st->rng.s[3]))
        return nx_fail(err, "data-loader random state is all zero, which no seed gives");
    l->st = *st;
    return NX_OK;
}

void nx_loader_next(nx_loader *l, int32_t *inputs, int32_t *targets) {
    const uint64_t W = (uint64_t)l->T + 1;
    for (int b = 0; b < l->B; b++) {
        uint64_t start;
        if (l->mode == NX_BATCH_RANDOM) start = nx_rng_below(&l->st.rng, l->src.n - W + 1);
        else {
            if (l->st.pos > l->src.n - W) { l->st.pos = 0; l->st.epoch++; } /* n >= W: no wrap-around */
            start = l->st.pos;
            l->st.pos += W;
        }
        for (int t = 0; t < l->T; t++) {
            inputs[(size_t)b * l->T + t] = nx_tokens_at(l->src, start + t);
            targets[(size_t)b * l->T + t] = nx_tokens_at(l->src, start + t + 1);
        }
    }
}
