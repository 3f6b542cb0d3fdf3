/* normalize.c — the normalizer: rewrites a piece of text before it is split
 * into words. Supported: Prepend, Replace (string or regex), Strip, the
 * Unicode normal forms NFC, NFD, NFKC and NFKD (utf8proc: HF uses Rust's
 * unicode-normalization crate, both implement UAX #15), ByteLevel (every
 * byte as its GPT-2 bytes_to_unicode character), and Sequence of those;
 * anything else (Lowercase, Precompiled, ...) is rejected at load, because
 * an approximation would silently give other ids than HF.
 *
 * A Sequence is flattened at load into one array of steps. At encode time
 * the steps run one after another, each writing into one of the encoder's two
 * buffers in turn (ping-pong), so a normalizer chain allocates nothing once
 * the buffers have grown. As in HF, the normalizer sees the text between the
 * added tokens that are matched on raw text (normalized=false), one piece at
 * a time; Prepend therefore applies to every such non-empty piece. */
#include <utf8proc.h>

#include "internal.h"

static const struct { const char *name; int options; } FORMS[] = {
    {"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
    {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
    {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
    {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT},
};

static int load_step(nx_tokenizer *t, const cJSON *o, const char *type, load_ctx *L) {
    normalizer_step s = {0};
    if (!strcmp(type, "Prepend")) {
        const char *p = tok_json_string(o, "prepend");
        if (!p) return nx_fail(L->err, "%s: normalizer Prepend has no \"prepend\" string", L->name);
        s.kind = NORM_PREPEND;
        s.prepend = tok_strdup_len(p, &s.prepend_len);
    } else if (!strcmp(type, "Replace")) {
        s.kind = NORM_REPLACE;
        if (tok_replace_parse(o, L, "normalizer Replace", &s.replace)) return NX_ERR;
    } else if (!strcmp(type, "ByteLevel")) {
        s.kind = NORM_BYTELEVEL;
    } else if (!strcmp(type, "Strip")) {
        s.kind = NORM_STRIP;
        s.strip_left = tok_json_bool(o, "strip_left", true);
        s.strip_right = tok_json_bool(o, "strip_right", true);
    } else {
        int k = 0;
        while (k < 4 && strcmp(type, FORMS[k].name)) k++;
        if (k == 4) return TOK_UNKNOWN_TYPE;
        s.kind = NORM_UNICODE;
        s.unicode_options = FORMS[k].options;
    }
    t->normalizers = tok_resize(t->normalizers, (size_t)t->n_normalizers + 1, sizeof(normalizer_step));
    t->normalizers[t->n_normalizers++] = s;
    return NX_OK;
}

int tok_normalizer_load(nx_tokenizer *t, const cJSON *o, load_ctx *L) {
    return tok_load_component(t, o, L, "normalizer", "normalizers",
                              "Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, ByteLevel", load_step);
}

void tok_normalizers_free(nx_tokenizer *t) {
    for (int i = 0; i < t->n_normalizers; i++) {
        free(t->normalizers[i].prepend);
        tok_replace_free(&t->normalizers[i].replace);
    }
    free(t->normalizers);
}

/* s (valid UTF-8) in a Unicode normal form, appended to o. Text without
 * a byte above 0x7F is in every normal form already. */
static int unicode_normalize(encoder *e, int options, const char *s, size_t n, byte_buf *o) {
    size_t i = 0;
    while (i < n && !(s[i] & 0x80)) i++;
    if (i == n) {
        buf_append(o, s, n);
        return NX_OK;
    }
    /* decompose into code points, then compose (if asked) and re-encode in place */
    utf8proc_ssize_t need = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, NULL, 0, options);
    if (need < 0) return nx_fail(e->err, "Unicode normalization failed: %s", utf8proc_errmsg(need));
    if ((size_t)need + 1 > e->ucs_cap) {
        e->ucs_cap = (size_t)need + 1;
        e->ucs = tok_resize(e->ucs, e->ucs_cap, sizeof(int32_t));
    }
    utf8proc_ssize_t got = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, e->ucs, need, options);
    NX_ASSERT(got == need);
    utf8proc_ssize_t len = utf8proc_reencode(e->ucs, got, options);
    if (len < 0) return nx_fail(e->err, "Unicode normalization failed: %s", utf8proc_errmsg(len));
    buf_append(o, (const char *)e->ucs, (size_t)len);
    return NX_OK;
}

int tok_normalize(encoder *e, const char *s, size_t n, const char **out, size_t *out_len) {
    const nx_tokenizer *t = e->t;
    int cur = 0;
    for (int k = 0; k < t->n_normalizers; k++) {
        const normalizer_step *q = &t->normalizers[k];
        byte_buf *o = &e->normalized[cur];
        o->len = 0;
        buf_reserve(o, n);
        switch (q->kind) {
        case NORM_PREPEND: /* HF: only a non-empty string gets the prefix */
            if (n) buf_append(o, q->prepend, q->prepend_len);
            buf_append(o, s, n);
            break;
        case NORM_REPLACE:
            if (tok_replace_apply(&q->replace, s, n, e->match, &e->replace_spans, o, e->err)) return NX_ERR;
            break;
        case NORM_UNICODE:
            if (unicode_normalize(e, q->unicode_options, s, n, o)) return NX_ERR;
            break;
        case NORM_BYTELEVEL:
            tok_bytelevel_map(t, s, n, o);
            break;
        case NORM_STRIP: {
            size_t b = q->strip_left ? tok_skip_spaces(s, n, 0) : 0;
            size_t end = q->strip_right ? tok_trim_spaces(s, b, n) : n;
            buf_append(o, s + b, end - b);
            break;
        }
        }
        s = o->data;
        n = o->len;
        cur ^= 1;
    }
    *out = s;
    *out_len = n;
    return NX_OK;
}
