/* decode.c — ids back to text through the decoder chain, as HF's
 * TokenizerImpl::decode does: each id becomes its token string, every
 * decoder step maps the list of strings to a new list, and the final list is
 * concatenated (joined by spaces when there is no decoder at all).
 *
 * The steps, as HF defines them:
 *   ByteLevel     characters → GPT-2 bytes (a token with a character outside
 *                 the byte alphabet is kept as is); the bytes of the whole
 *                 list are then read as UTF-8, invalid sequences becoming
 *                 U+FFFD (String::from_utf8_lossy);
 *   Metaspace     the replacement character → ' ', except at the very start
 *                 when a space was prepended at encode;
 *   Replace       pattern → content, token by token;
 *   ByteFallback  runs of <0xXX> tokens → their bytes when those are valid
 *                 UTF-8, else one U+FFFD per byte;
 *   Fuse          all strings → one;
 *   Strip         at most start / stop copies of a character off each end.
 * Decoding never fails on token content; only an id outside the vocabulary
 * is an error (HF drops it silently). */
#include <stdio.h>

#include "internal.h"

static int load_step(nx_tokenizer *t, const cJSON *o, const char *type, load_ctx *L) {
    decoder_step s = {0};
    if (!strcmp(type, "ByteLevel")) s.kind = DECODE_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) s.kind = DECODE_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) s.kind = DECODE_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        s.kind = DECODE_METASPACE;
        const char *r = tok_json_string(o, "replacement");
        if (!r || tok_parse_one_char(r, &s.ch))
            return nx_fail(L->err, "%s: decoder Metaspace replacement must be one character", L->name);
        if (tok_parse_prepend_scheme(o, &s.prepend_scheme))
            return nx_fail(L->err, "%s: decoder Metaspace prepend_scheme is invalid", L->name);
    } else if (!strcmp(type, "Replace")) {
        s.kind = DECODE_REPLACE;
        if (tok_replace_parse(o, L, "decoder Replace", &s.replace)) return NX_ERR;
    } else if (!strcmp(type, "Strip")) {
        s.kind = DECODE_STRIP;
        const char *c = tok_json_string(o, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(o, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
        if (!c || tok_parse_one_char(c, &s.ch) || !cJSON_IsNumber(start) || !cJSON_IsNumber(stop) ||
            start->valueint < 0 || stop->valueint < 0)
            return nx_fail(L->err, "%s: decoder Strip needs one-character \"content\" and \"start\"/\"stop\" counts",
                           L->name);
        s.strip_start = start->valueint;
        s.strip_stop = stop->valueint;
    } else return TOK_UNKNOWN_TYPE;
    t->decoders = tok_resize(t->decoders, (size_t)t->n_decoders + 1, sizeof(decoder_step));
    t->decoders[t->n_decoders++] = s;
    return NX_OK;
}

int tok_decoder_load(nx_tokenizer *t, const cJSON *o, load_ctx *L) {
    return tok_load_component(t, o, L, "decoder", "decoders",
                              "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip", load_step);
}

void tok_decoders_free(nx_tokenizer *t) {
    for (int i = 0; i < t->n_decoders; i++) tok_replace_free(&t->decoders[i].replace);
    free(t->decoders);
}

/* ---- the list of strings a step maps ------------------------------------ */

typedef struct { byte_buf *items; size_t len, cap; } str_list;

/* Appends an empty (allocated, NUL-terminated) string and returns it. */
static byte_buf *str_list_add(str_list *l) {
    if (l->len == l->cap) l->items = tok_grow(l->items, &l->cap, sizeof(byte_buf), 16);
    l->items[l->len] = (byte_buf){0};
    buf_reserve(&l->items[l->len], 0);
    return &l->items[l->len++];
}

static void str_list_free(str_list *l) {
    for (size_t i = 0; i < l->len; i++) free(l->items[i].data);
    free(l->items);
    *l = (str_list){0};
}

static const char REPLACEMENT_CHAR[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* String::from_utf8_lossy(s) appended to o. */
static void append_lossy(byte_buf *o, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int w = utf8_decode((const uint8_t *)s, n, i, &cp);
        if (w > 0) { buf_append(o, s + i, (size_t)w); i += (size_t)w; }
        else { buf_append(o, REPLACEMENT_CHAR, 3); i += (size_t)-w; }
    }
}

/* ---- the steps ------------------------------------------------------------ */

static void decode_bytelevel(const nx_tokenizer *t, const str_list *in, str_list *out) {
    byte_buf raw = {0};
    for (size_t i = 0; i < in->len; i++) {
        const char *s = in->items[i].data;
        size_t n = in->items[i].len, mark = raw.len;
        bool ok = true;
        for (size_t k = 0; k < n && ok;) {
            uint32_t cp;
            int w = utf8_decode((const uint8_t *)s, n, k, &cp);
            if (w < 0 || cp >= 324 || t->char_to_byte[cp] < 0) ok = false;
            else { buf_append_char(&raw, (char)t->char_to_byte[cp]); k += (size_t)w; }
        }
        if (!ok) { raw.len = mark; buf_append(&raw, s, n); } /* not byte-level: the token as is */
    }
    append_lossy(str_list_add(out), raw.data ? raw.data : "", raw.len);
    free(raw.data);
}

static void decode_metaspace(const decoder_step *d, const str_list *in, str_list *out) {
    for (size_t i = 0; i < in->len; i++) {
        byte_buf *o = str_list_add(out);
        const char *s = in->items[i].data;
        size_t n = in->items[i].len;
        for (size_t k = 0; k < n;) {
            uint32_t cp;
            int w = utf8_decode((const uint8_t *)s, n, k, &cp);
            if (w < 0) { buf_append_char(o, s[k]); k++; continue; }
            if (cp == d->ch) { if (!(i == 0 && d->prepend_scheme != PREPEND_NEVER)) buf_append_char(o, ' '); }
            else buf_append(o, s + k, (size_t)w);
            k += (size_t)w;
        }
    }
}

/* A token "<0xXX>" (two hex digits): its byte in *byte. */
static bool is_byte_token(const byte_buf *s, unsigned *byte) {
    const char *p = s->data;
    char tail;
    return s->len == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' && sscanf(p + 3, "%2x%c", byte, &tail) == 2 &&
           tail == '>' && strchr("0123456789abcdefABCDEF", p[3]) && strchr("0123456789abcdefABCDEF", p[4]);
}

static void decode_byte_fallback(const str_list *in, str_list *out) {
    byte_buf bytes = {0}; /* the current run of byte tokens */
    for (size_t i = 0; i <= in->len; i++) {
        unsigned v;
        if (i < in->len && is_byte_token(&in->items[i], &v)) {
            buf_append_char(&bytes, (char)v);
            continue;
        }
        if (bytes.len) {
            if (tok_utf8_invalid_at(bytes.data, bytes.len) == bytes.len)
                buf_append(str_list_add(out), bytes.data, bytes.len);
            else for (size_t k = 0; k < bytes.len; k++) buf_append(str_list_add(out), REPLACEMENT_CHAR, 3);
            bytes.len = 0;
        }
        if (i < in->len) buf_append(str_list_add(out), in->items[i].data, in->items[i].len);
    }
    free(bytes.data);
}

static void decode_strip(const decoder_step *d, const str_list *in, str_list *out) {
    for (size_t i = 0; i < in->len; i++) {
        const char *s = in->items[i].data;
        size_t n = in->items[i].len, b = 0, e = n;
        uint32_t cp;
        int w;
        for (int k = 0; k < d->strip_start && b < n; k++) {
            if ((w = utf8_decode((const uint8_t *)s, n, b, &cp)) > 0 && cp == d->ch) b += (size_t)w;
            else break;
        }
        for (int k = 0; k < d->strip_stop && e > b; k++) {
            size_t j = tok_utf8_prev(s, e);
            if (j < b) break;
            if ((w = utf8_decode((const uint8_t *)s, n, j, &cp)) > 0 && cp == d->ch) e = j;
            else break;
        }
        buf_append(str_list_add(out), s + b, e - b);
    }
}

static int decode_step(const nx_tokenizer *t, const decoder_step *d, const str_list *in, str_list *out,
                       pcre2_match_data *md, nx_err *err) {
    switch (d->kind) {
    case DECODE_BYTELEVEL: decode_bytelevel(t, in, out); return NX_OK;
    case DECODE_METASPACE: decode_metaspace(d, in, out); return NX_OK;
    case DECODE_REPLACE: {
        span_list matches = {0};
        int rc = NX_OK;
        for (size_t i = 0; i < in->len && rc == NX_OK; i++)
            rc = tok_replace_apply(&d->replace, in->items[i].data, in->items[i].len, md, &matches,
                                   str_list_add(out), err);
        free(matches.items);
        return rc;
    }
    case DECODE_BYTEFALLBACK: decode_byte_fallback(in, out); return NX_OK;
    case DECODE_FUSE: {
        byte_buf *o = str_list_add(out);
        for (size_t i = 0; i < in->len; i++) buf_append(o, in->items[i].data, in->items[i].len);
        return NX_OK;
    }
    case DECODE_STRIP: decode_strip(d, in, out); return NX_OK;
    }
    NX_ASSERT(0);
    return NX_ERR;
}

int nx_tokenizer_decode(const nx_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                        nx_err *err) {
    *out = NULL;
    str_list cur = {0}, next = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->V || !t->token_text[id]) {
            str_list_free(&cur);
            return nx_fail(err, "cannot decode id %d at position %zu: not in the vocabulary (size %d)", id, i, t->V);
        }
        if (skip_special && t->is_special[id]) continue;
        buf_append(str_list_add(&cur), t->token_text[id], t->token_len[id]);
    }
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    NX_ASSERT(md);
    int rc = NX_OK;
    for (int k = 0; k < t->n_decoders && rc == NX_OK; k++) {
        rc = decode_step(t, &t->decoders[k], &cur, &next, md, err);
        str_list_free(&cur);
        cur = next;
        next = (str_list){0};
    }
    pcre2_match_data_free(md);
    if (rc) { str_list_free(&cur); return NX_ERR; }
    byte_buf o = {0};
    buf_reserve(&o, 0);
    for (size_t i = 0; i < cur.len; i++) {
        if (i && !t->has_decoder) buf_append_char(&o, ' ');
        buf_append(&o, cur.items[i].data, cur.items[i].len);
    }
    str_list_free(&cur);
    *out = o.data;
    return NX_OK;
}
