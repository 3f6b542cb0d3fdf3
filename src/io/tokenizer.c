/* tokenizer.c — Hugging Face tokenizer.json, encoded the way the Rust
 * `tokenizers` crate does it, for the components listed in tokenizer.h.
 *
 * The pipeline for one text (mirroring TokenizerImpl::encode_single_sequence):
 *   1. validate UTF-8 (error with byte offset: HF only accepts &str);
 *   2. split out added tokens whose `normalized` is false, on the raw text;
 *   3. normalize every remaining piece, then split out the added tokens whose
 *      `normalized` is true;
 *   4. run the pre-tokenizers: each stage splits (and maybe rewrites) a piece
 *      and hands the sub-pieces to the next stage — done recursively, one
 *      piece at a time, so no list of pieces is ever materialised;
 *   5. the BPE model turns every final piece ("word") into ids: one symbol per
 *      character, then merges by lowest rank (leftmost on ties) through a
 *      binary heap over a doubly linked symbol list, exactly Word::merge_all;
 *   6. the post-processor's prefix/suffix ids when add_special is set.
 *
 * Regexes run on PCRE2 (UTF + UCP, JIT when available). HF runs them on
 * Oniguruma, whose \s is the Unicode White_Space property; PCRE2's \s also
 * matches U+180E, so patterns are rewritten \s -> \p{White_Space} and
 * \S -> \P{White_Space} before compiling.
 *
 * Words are cached (bounded, direct-mapped, 64 locked shards) because real
 * text repeats words constantly; the cache makes encode several times faster
 * and is the only mutable state, so concurrent encodes are safe. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nexus/tokenizer.h"

#include "nexus/fsutil.h"

/* ------------------------------------------------------------------ */
/* UTF-8                                                                */

/* Length (>0) of the valid character at s[i], or minus the length of the
 * maximal invalid prefix (the unit Rust's from_utf8_lossy replaces by one
 * U+FFFD). */
static int utf8_step(const uint8_t *s, size_t n, size_t i, uint32_t *cp) {
    uint8_t b = s[i];
    if (b < 0x80) { *cp = b; return 1; }
    int w;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t c;
    if (b >= 0xC2 && b <= 0xDF) { w = 2; c = b & 0x1F; }
    else if (b >= 0xE0 && b <= 0xEF) { w = 3; c = b & 0x0F; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { w = 4; c = b & 0x07; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else return -1;
    for (int k = 1; k < w; k++) {
        if (i + k >= n) return -k;
        uint8_t x = s[i + k];
        if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) return -k;
        c = (c << 6) | (x & 0x3F);
    }
    *cp = c;
    return w;
}

static int utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Rust char::is_whitespace (Unicode White_Space). */
static bool cp_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* ------------------------------------------------------------------ */
/* growable byte buffer and small hash maps                             */

typedef struct { char *p; size_t n, cap; } sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t c = b->cap ? b->cap : 64;
    while (c < b->n + extra + 1) c *= 2;
    char *p = realloc(b->p, c);
    NX_ASSERTM(p, "out of memory");
    b->p = p;
    b->cap = c;
}
static void sb_put(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }


/* string -> id, open addressing; keys point to strings owned elsewhere */
typedef struct { const char *s; uint32_t len; int32_t id; } sment;
typedef struct { sment *e; size_t mask; } smap;

static void smap_init(smap *m, size_t count) {
    size_t c = 16;
    while (c < 2 * count + 2) c *= 2;
    m->e = nx_xcalloc(c, sizeof(sment));
    m->mask = c - 1;
}
static sment *smap_slot(const smap *m, const char *s, size_t n) {
    size_t i = nx_fnv1a(s, n, NX_FNV_INIT) & m->mask;
    for (;;) {
        sment *e = &m->e[i];
        if (!e->s || (e->len == n && memcmp(e->s, s, n) == 0)) return e;
        i = (i + 1) & m->mask;
    }
}
static int32_t smap_get(const smap *m, const char *s, size_t n) {
    if (!m->e) return -1;
    sment *e = smap_slot(m, s, n);
    return e->s ? e->id : -1;
}

/* (left id, right id) -> (rank, merged id) */
typedef struct { uint64_t key; int32_t rank, id; } pment;
typedef struct { pment *e; size_t mask; } pmap;

static size_t pm_hash(uint64_t k) { return (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 20); }
static pment *pmap_slot(const pmap *m, uint64_t key) {
    size_t i = pm_hash(key) & m->mask;
    for (;;) {
        pment *e = &m->e[i];
        if (e->rank < 0 || e->key == key) return e;
        i = (i + 1) & m->mask;
    }
}

/* ------------------------------------------------------------------ */
/* the tokenizer                                                        */

enum { PT_BYTELEVEL, PT_SPLIT, PT_METASPACE };
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };
enum { PS_ALWAYS, PS_FIRST, PS_NEVER };
enum { NM_PREPEND, NM_REPLACE, NM_STRIP };
enum { DC_BYTELEVEL, DC_METASPACE, DC_REPLACE, DC_BYTEFALLBACK, DC_FUSE, DC_STRIP };
#define MAXSTAGE 8

typedef struct {
    int type;
    bool add_prefix_space, use_regex, invert, split;
    pcre2_code *re;          /* Split regex */
    char *lit; size_t litlen; /* Split string pattern, Metaspace replacement */
    int behavior, prepend;
} pretok;

typedef struct {       /* normalizer or decoder step */
    int type;
    char *a; size_t alen;   /* Prepend text, Replace string pattern */
    char *b; size_t blen;   /* Replace content */
    pcre2_code *re;         /* Replace regex pattern */
    bool left, right;       /* Strip normalizer */
    uint32_t ch;            /* Strip decoder content, Metaspace replacement */
    int start, stop, prepend;
} step;

typedef struct {
    char *s; size_t len; int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} added_tok;

typedef struct {       /* added tokens matched at one stage, longest first */
    int *idx; int n;
    uint8_t first[32]; /* bitmap of first bytes */
} added_set;

#define CACHE_SHARDS 64
#define CACHE_SLOTS 256
#define CW 32
typedef struct { uint64_t h; uint8_t wlen, nids; char w[CW]; int32_t ids[CW]; } cslot;
typedef struct { pthread_mutex_t mu; cslot slot[CACHE_SLOTS]; } cshard;

struct nx_tokenizer {
    int32_t V;
    char **tok; uint32_t *toklen; uint8_t *special; /* by id */
    smap vocab;            /* model vocabulary only (what BPE looks up) */
    smap all;              /* added tokens then model: token_to_id */
    pmap merges;
    uint64_t fingerprint;
    int32_t unk_id;
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix_str; size_t prefix_len;   /* continuing_subword_prefix */
    char *suffix_str; size_t suffix_len;   /* end_of_word_suffix */
    added_tok *added; int nadded;
    added_set raw_set, norm_set;
    step *norm; int nnorm;
    pretok pre[MAXSTAGE]; int npre;
    step *dec; int ndec; bool has_decoder;
    int32_t *pfx, *sfx; int npfx, nsfx;
    int32_t bos, eos;
    pcre2_code *gpt2_re, *alnum_re;
    uint16_t b2u[256];     /* byte-level: byte -> code point */
    int16_t u2b[324];      /* and back (-1: none) */
    cshard *cache;
};

/* ------------------------------------------------------------------ */
/* loading                                                              */

typedef struct { nx_err *err; const char *name; } lctx;

static const char *GPT2_RE =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static char *xstrndup(const char *s, size_t n) {
    char *p = nx_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Oniguruma's \s is White_Space; PCRE2's (UCP) adds U+180E. */
static pcre2_code *compile_re(const char *pat, lctx *L, const char *where) {
    sbuf b = {0};
    for (const char *p = pat; *p; p++) {
        if (p[0] == '\\' && p[1]) {
            if (p[1] == 's') sb_put(&b, "\\p{White_Space}", 15);
            else if (p[1] == 'S') sb_put(&b, "\\P{White_Space}", 15);
            else sb_put(&b, p, 2);
            p++;
        } else sb_putc(&b, *p);
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.p, b.n, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    free(b.p);
    if (!re) {
        char msg[256];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        nx_fail(L->err, "%s: %s: regex does not compile (%s near offset %zu): %s", L->name, where,
                msg, (size_t)eo, pat);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* interpreter if JIT is unavailable */
    return re;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static bool jbool(const cJSON *o, const char *k, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* {"String": s} or {"Regex": r}: exactly one of *lit / *re set */
static int parse_pattern(const cJSON *o, lctx *L, const char *where, char **lit, size_t *litlen,
                         pcre2_code **re) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s;
    if ((s = jstr(p, "String"))) { *lit = xstrndup(s, strlen(s)); *litlen = strlen(s); return NX_OK; }
    if ((s = jstr(p, "Regex"))) return (*re = compile_re(s, L, where)) ? NX_OK : NX_ERR;
    return nx_fail(L->err, "%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}", L->name, where);
}

static int one_char(const char *s, uint32_t *cp) {
    size_t n = strlen(s);
    return n > 0 && utf8_step((const uint8_t *)s, n, 0, cp) == (int)n ? NX_OK : NX_ERR;
}

static int load_normalizer(nx_tokenizer *t, const cJSON *o, lctx *L, const char *where) {
    if (!o || cJSON_IsNull(o)) return NX_OK;
    const char *ty = jstr(o, "type");
    if (!ty) return nx_fail(L->err, "%s: %s has no \"type\"", L->name, where);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *x;
        cJSON_ArrayForEach(x, a) if (load_normalizer(t, x, L, where)) return NX_ERR;
        return NX_OK;
    }
    step s = {0};
    if (!strcmp(ty, "Prepend")) {
        const char *p = jstr(o, "prepend");
        if (!p) return nx_fail(L->err, "%s: %s Prepend has no \"prepend\" string", L->name, where);
        s.type = NM_PREPEND; s.a = xstrndup(p, strlen(p)); s.alen = strlen(p);
    } else if (!strcmp(ty, "Replace")) {
        const char *c = jstr(o, "content");
        if (!c) return nx_fail(L->err, "%s: %s Replace has no \"content\" string", L->name, where);
        s.type = NM_REPLACE;
        if (parse_pattern(o, L, where, &s.a, &s.alen, &s.re)) return NX_ERR;
        s.b = xstrndup(c, strlen(c)); s.blen = strlen(c);
    } else if (!strcmp(ty, "Strip")) {
        s.type = NM_STRIP; s.left = jbool(o, "strip_left", true); s.right = jbool(o, "strip_right", true);
    } else {
        return nx_fail(L->err, "%s: %s type \"%s\" is not supported (supported: Prepend, Replace, "
                       "Strip, Sequence); the tokenizer cannot be reproduced exactly", L->name, where, ty);
    }
    t->norm = realloc(t->norm, (size_t)(t->nnorm + 1) * sizeof(step));
    NX_ASSERT(t->norm);
    t->norm[t->nnorm++] = s;
    return NX_OK;
}

static int parse_prepend_scheme(const cJSON *o, int *out) {
    const char *ps = jstr(o, "prepend_scheme");
    if (ps) {
        if (!strcmp(ps, "always")) *out = PS_ALWAYS;
        else if (!strcmp(ps, "first")) *out = PS_FIRST;
        else if (!strcmp(ps, "never")) *out = PS_NEVER;
        else return NX_ERR;
    } else *out = jbool(o, "add_prefix_space", true) ? PS_ALWAYS : PS_NEVER; /* older files */
    return NX_OK;
}

static int load_pretok(nx_tokenizer *t, const cJSON *o, lctx *L) {
    if (!o || cJSON_IsNull(o)) return NX_OK;
    const char *ty = jstr(o, "type");
    if (!ty) return nx_fail(L->err, "%s: pre_tokenizer has no \"type\"", L->name);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *x;
        cJSON_ArrayForEach(x, a) if (load_pretok(t, x, L)) return NX_ERR;
        return NX_OK;
    }
    if (t->npre == MAXSTAGE) return nx_fail(L->err, "%s: more than %d pre-tokenizers", L->name, MAXSTAGE);
    pretok p = {0};
    if (!strcmp(ty, "ByteLevel")) {
        p.type = PT_BYTELEVEL;
        p.add_prefix_space = jbool(o, "add_prefix_space", true);
        p.use_regex = jbool(o, "use_regex", true);
        if (p.use_regex && !t->gpt2_re && !(t->gpt2_re = compile_re(GPT2_RE, L, "ByteLevel")))
            return NX_ERR;
    } else if (!strcmp(ty, "Split")) {
        p.type = PT_SPLIT;
        if (parse_pattern(o, L, "pre_tokenizer Split", &p.lit, &p.litlen, &p.re)) return NX_ERR;
        const char *b = jstr(o, "behavior");
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        p.behavior = -1;
        for (int i = 0; i < 5; i++) if (b && !strcmp(b, names[i])) p.behavior = i;
        if (p.behavior < 0) {
            free(p.lit);
            if (p.re) pcre2_code_free(p.re);
            return nx_fail(L->err, "%s: pre_tokenizer Split behavior \"%s\" is not one of Removed, "
                           "Isolated, MergedWithPrevious, MergedWithNext, Contiguous", L->name, b ? b : "(missing)");
        }
        p.invert = jbool(o, "invert", false);
    } else if (!strcmp(ty, "Metaspace")) {
        p.type = PT_METASPACE;
        const char *r = jstr(o, "replacement");
        uint32_t cp;
        if (!r || one_char(r, &cp)) return nx_fail(L->err, "%s: Metaspace replacement must be one character", L->name);
        p.lit = xstrndup(r, strlen(r)); p.litlen = strlen(r);
        if (parse_prepend_scheme(o, &p.prepend)) {
            free(p.lit);
            return nx_fail(L->err, "%s: Metaspace prepend_scheme must be first, always or never", L->name);
        }
        p.split = jbool(o, "split", true);
    } else {
        return nx_fail(L->err, "%s: pre_tokenizer type \"%s\" is not supported (supported: ByteLevel, "
                       "Split, Metaspace, Sequence); the tokenizer cannot be reproduced exactly", L->name, ty);
    }
    t->pre[t->npre++] = p;
    return NX_OK;
}

static int load_decoder(nx_tokenizer *t, const cJSON *o, lctx *L) {
    const char *ty = jstr(o, "type");
    if (!ty) return nx_fail(L->err, "%s: decoder has no \"type\"", L->name);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "decoders"), *x;
        cJSON_ArrayForEach(x, a) if (load_decoder(t, x, L)) return NX_ERR;
        return NX_OK;
    }
    step s = {0};
    if (!strcmp(ty, "ByteLevel")) s.type = DC_BYTELEVEL;
    else if (!strcmp(ty, "ByteFallback")) s.type = DC_BYTEFALLBACK;
    else if (!strcmp(ty, "Fuse")) s.type = DC_FUSE;
    else if (!strcmp(ty, "Metaspace")) {
        s.type = DC_METASPACE;
        const char *r = jstr(o, "replacement");
        if (!r || one_char(r, &s.ch)) return nx_fail(L->err, "%s: decoder Metaspace replacement must be one character", L->name);
        if (parse_prepend_scheme(o, &s.prepend)) return nx_fail(L->err, "%s: decoder Metaspace prepend_scheme is invalid", L->name);
    } else if (!strcmp(ty, "Replace")) {
        const char *c = jstr(o, "content");
        if (!c) return nx_fail(L->err, "%s: decoder Replace has no \"content\"", L->name);
        s.type = DC_REPLACE;
        if (parse_pattern(o, L, "decoder Replace", &s.a, &s.alen, &s.re)) return NX_ERR;
        s.b = xstrndup(c, strlen(c)); s.blen = strlen(c);
    } else if (!strcmp(ty, "Strip")) {
        s.type = DC_STRIP;
        const char *c = jstr(o, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "start"), *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
        if (!c || one_char(c, &s.ch) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valueint < 0 || b->valueint < 0)
            return nx_fail(L->err, "%s: decoder Strip needs one-character \"content\" and \"start\"/\"stop\" counts", L->name);
        s.start = a->valueint; s.stop = b->valueint;
    } else {
        return nx_fail(L->err, "%s: decoder type \"%s\" is not supported (supported: ByteLevel, Metaspace, "
                       "Replace, ByteFallback, Fuse, Strip, Sequence)", L->name, ty);
    }
    t->dec = realloc(t->dec, (size_t)(t->ndec + 1) * sizeof(step));
    NX_ASSERT(t->dec);
    t->dec[t->ndec++] = s;
    return NX_OK;
}

static void push_ids(int32_t **v, int *n, const int32_t *ids, int k) {
    *v = realloc(*v, (size_t)(*n + k + 1) * sizeof(int32_t));
    NX_ASSERT(*v);
    memcpy(*v + *n, ids, (size_t)k * sizeof(int32_t));
    *n += k;
}

static int load_post(nx_tokenizer *t, const cJSON *o, lctx *L) {
    if (!o || cJSON_IsNull(o)) return NX_OK;
    const char *ty = jstr(o, "type");
    if (!ty) return nx_fail(L->err, "%s: post_processor has no \"type\"", L->name);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "processors"), *x;
        cJSON_ArrayForEach(x, a) if (load_post(t, x, L)) return NX_ERR;
        return NX_OK;
    }
    if (!strcmp(ty, "ByteLevel")) return NX_OK; /* offsets only */
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(o, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si))
            return nx_fail(L->err, "%s: post_processor %s needs \"cls\" and \"sep\" as [token, id]", L->name, ty);
        int32_t a = ci->valueint, b = si->valueint;
        push_ids(&t->pfx, &t->npfx, &a, 1);
        push_ids(&t->sfx, &t->nsfx, &b, 1);
        return NX_OK;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *it;
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        bool after = false;
        cJSON_ArrayForEach(it, single) {
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) { after = true; continue; }
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            const char *name = jstr(st, "id");
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, name ? name : ""), "ids"), *x;
            if (!name || !cJSON_IsArray(ids))
                return nx_fail(L->err, "%s: post_processor.single names special token \"%s\" that "
                               "post_processor.special_tokens does not define", L->name, name ? name : "?");
            cJSON_ArrayForEach(x, ids) {
                int32_t id = x->valueint;
                if (after) push_ids(&t->sfx, &t->nsfx, &id, 1);
                else push_ids(&t->pfx, &t->npfx, &id, 1);
            }
        }
        return NX_OK;
    }
    return nx_fail(L->err, "%s: post_processor type \"%s\" is not supported (supported: TemplateProcessing, "
                   "ByteLevel, RobertaProcessing, BertProcessing, Sequence)", L->name, ty);
}

static void set_token(nx_tokenizer *t, int32_t id, const char *s, size_t n) {
    if (t->tok[id]) return; /* added tokens registered first win, as in HF */
    t->tok[id] = xstrndup(s, n);
    t->toklen[id] = (uint32_t)n;
}

static void added_set_build(nx_tokenizer *t, added_set *set, bool normalized) {
    set->idx = nx_xmalloc((size_t)(t->nadded + 1) * sizeof(int));
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].normalized == normalized && t->added[i].len > 0) set->idx[set->n++] = i;
    for (int i = 1; i < set->n; i++) /* longest first (leftmost-longest) */
        for (int j = i; j > 0 && t->added[set->idx[j]].len > t->added[set->idx[j - 1]].len; j--) {
            int x = set->idx[j]; set->idx[j] = set->idx[j - 1]; set->idx[j - 1] = x;
        }
    for (int i = 0; i < set->n; i++) {
        uint8_t b = (uint8_t)t->added[set->idx[i]].s[0];
        set->first[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
}

static int32_t config_token(nx_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return s ? nx_tokenizer_token_to_id(t, s) : -1;
}

static int load_impl(nx_tokenizer *t, const cJSON *root, const cJSON *cfg, lctx *L) {
    if (!cJSON_IsObject(root)) return nx_fail(L->err, "%s: not a JSON object", L->name);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = jstr(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!model) return nx_fail(L->err, "%s: no \"model\" key: is this a tokenizer.json?", L->name);
    if (!mtype && cJSON_IsArray(merges)) mtype = "BPE"; /* old files omit the type */
    if (!mtype || strcmp(mtype, "BPE"))
        return nx_fail(L->err, "%s: model.type \"%s\" is not supported (only BPE); the tokenizer "
                       "cannot be reproduced exactly", L->name, mtype ? mtype : "(missing)");
    if (!cJSON_IsObject(vocab)) return nx_fail(L->err, "%s: model.vocab must be an object {token: id}", L->name);
    if (!cJSON_IsArray(merges)) return nx_fail(L->err, "%s: model.merges must be an array", L->name);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return nx_fail(L->err, "%s: model.dropout %g is not supported (BPE dropout is random; set it to null)",
                       L->name, dropout->valuedouble);

    /* ids: max over model vocab and added tokens */
    int nv = cJSON_GetArraySize(vocab);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *x;
    int32_t maxid = -1;
    cJSON_ArrayForEach(x, vocab) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e8 || x->valuedouble != (int32_t)x->valuedouble)
            return nx_fail(L->err, "%s: model.vocab[\"%s\"] must be a non-negative integer id", L->name, x->string);
        if (x->valueint > maxid) maxid = x->valueint;
    }
    int ai = 0;
    cJSON_ArrayForEach(x, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        const char *c = jstr(x, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8 || !c || !*c)
            return nx_fail(L->err, "%s: added_tokens[%d] needs a non-negative \"id\" and a non-empty \"content\"", L->name, ai);
        if (id->valueint > maxid) maxid = id->valueint;
        ai++;
    }
    t->V = maxid + 1;
    t->tok = nx_xcalloc((size_t)t->V + 1, sizeof(char *));
    t->toklen = nx_xcalloc((size_t)t->V + 1, sizeof(uint32_t));
    t->special = nx_xcalloc((size_t)t->V + 1, 1);
    t->added = nx_xcalloc((size_t)ai + 1, sizeof(added_tok));
    smap_init(&t->all, (size_t)nv + (size_t)ai);
    cJSON_ArrayForEach(x, added) {
        added_tok *a = &t->added[t->nadded++];
        const char *c = jstr(x, "content");
        a->id = cJSON_GetObjectItemCaseSensitive(x, "id")->valueint;
        a->len = strlen(c);
        a->special = jbool(x, "special", false);
        a->single_word = jbool(x, "single_word", false);
        a->lstrip = jbool(x, "lstrip", false);
        a->rstrip = jbool(x, "rstrip", false);
        a->normalized = jbool(x, "normalized", !a->special);
        set_token(t, a->id, c, a->len);
        a->s = t->tok[a->id];
        if (a->len != t->toklen[a->id] || memcmp(a->s, c, a->len))
            return nx_fail(L->err, "%s: added_tokens gives id %d to both \"%s\" and \"%s\"", L->name, a->id, a->s, c);
        if (a->special) t->special[a->id] = 1;
        sment *e = smap_slot(&t->all, a->s, a->len);
        if (!e->s) { e->s = a->s; e->len = (uint32_t)a->len; e->id = a->id; }
    }
    smap_init(&t->vocab, (size_t)nv);
    cJSON_ArrayForEach(x, vocab) {
        size_t n = strlen(x->string);
        set_token(t, x->valueint, x->string, n);
        /* the map keys must outlive cJSON: use our copy when it is this string */
        const char *key = (t->toklen[x->valueint] == n && !memcmp(t->tok[x->valueint], x->string, n))
                              ? t->tok[x->valueint] : NULL;
        if (!key) key = xstrndup(x->string, n); /* id shared with another string: private copy */
        sment *e = smap_slot(&t->vocab, key, n);
        e->s = key; e->len = (uint32_t)n; e->id = x->valueint;
        sment *f = smap_slot(&t->all, key, n);
        if (!f->s) { f->s = key; f->len = (uint32_t)n; f->id = x->valueint; }
    }

    /* BPE options */
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    const char *s;
    if ((s = jstr(model, "continuing_subword_prefix"))) { t->prefix_str = xstrndup(s, strlen(s)); t->prefix_len = strlen(s); }
    if ((s = jstr(model, "end_of_word_suffix"))) { t->suffix_str = xstrndup(s, strlen(s)); t->suffix_len = strlen(s); }
    t->unk_id = -1;
    if ((s = jstr(model, "unk_token"))) {
        t->unk_id = smap_get(&t->vocab, s, strlen(s));
        if (t->unk_id < 0)
            return nx_fail(L->err, "%s: model.unk_token \"%s\" is not in model.vocab", L->name, s);
    }

    /* merges: "a b" or ["a", "b"]; rank = position; a later duplicate wins (as HF's HashMap) */
    int nm = cJSON_GetArraySize(merges);
    size_t cap = 16;
    while (cap < 2 * (size_t)nm + 2) cap *= 2;
    t->merges.e = nx_xmalloc(cap * sizeof(pment));
    for (size_t i = 0; i < cap; i++) t->merges.e[i].rank = -1;
    t->merges.mask = cap - 1;
    uint64_t fp = NX_FNV_INIT;
    int rank = 0;
    sbuf tmp = {0};
    cJSON_ArrayForEach(x, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(x)) {
            a = x->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == a || !sp[1]) {
                free(tmp.p);
                return nx_fail(L->err, "%s: model.merges[%d] \"%s\" is not two tokens separated by one space",
                               L->name, rank, a);
            }
            la = (size_t)(sp - a); b = sp + 1; lb = strlen(b);
        } else if (cJSON_GetArraySize(x) == 2 && cJSON_IsString(cJSON_GetArrayItem(x, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 1))) {
            a = cJSON_GetArrayItem(x, 0)->valuestring; la = strlen(a);
            b = cJSON_GetArrayItem(x, 1)->valuestring; lb = strlen(b);
        } else {
            free(tmp.p);
            return nx_fail(L->err, "%s: model.merges[%d] must be \"a b\" or [\"a\", \"b\"]", L->name, rank);
        }
        int32_t ia = smap_get(&t->vocab, a, la), ib = smap_get(&t->vocab, b, lb);
        tmp.n = 0;
        sb_put(&tmp, a, la);
        size_t skip = (t->prefix_len && lb >= t->prefix_len && !memcmp(b, t->prefix_str, t->prefix_len)) ? t->prefix_len : 0;
        sb_put(&tmp, b + skip, lb - skip);
        int32_t im = smap_get(&t->vocab, tmp.p, tmp.n);
        if (ia < 0 || ib < 0 || im < 0) {
            char w[256];
            if (ia < 0) snprintf(w, sizeof w, "%.*s", (int)la, a);
            else if (ib < 0) snprintf(w, sizeof w, "%.*s", (int)lb, b);
            else snprintf(w, sizeof w, "%s", tmp.p);
            nx_fail(L->err, "%s: model.merges[%d] (\"%.*s\" + \"%.*s\"): token \"%s\" is not in model.vocab",
                    L->name, rank, (int)la, a, (int)lb, b, w);
            free(tmp.p);
            return NX_ERR;
        }
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        pment *e = pmap_slot(&t->merges, key);
        e->key = key; e->rank = rank; e->id = im;
        fp = nx_fnv1a(&ia, 4, nx_fnv1a(&ib, 4, fp));
        rank++;
    }
    free(tmp.p);

    for (int32_t i = 0; i < t->V; i++) {
        fp = nx_fnv1a(&i, 4, fp);
        if (t->tok[i]) fp = nx_fnv1a(t->tok[i], t->toklen[i], fp);
    }
    t->fingerprint = fp;

    /* byte-level tables: GPT-2's bytes_to_unicode */
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->b2u[b] = (uint16_t)(printable ? b : 256 + k++);
    }
    for (int i = 0; i < 324; i++) t->u2b[i] = -1;
    for (int b = 0; b < 256; b++) t->u2b[t->b2u[b]] = (int16_t)b;

    added_set_build(t, &t->raw_set, false);
    added_set_build(t, &t->norm_set, true);
    if (load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), L, "normalizer")) return NX_ERR;
    if (load_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), L)) return NX_ERR;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec)) {
        t->has_decoder = true;
        if (load_decoder(t, dec, L)) return NX_ERR;
    }
    if (load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), L)) return NX_ERR;
    for (int i = 0; i < t->npfx + t->nsfx; i++) {
        int32_t id = i < t->npfx ? t->pfx[i] : t->sfx[i - t->npfx];
        if (id < 0 || id >= t->V) return nx_fail(L->err, "%s: post_processor adds id %d outside the vocabulary", L->name, id);
    }
    int ec;
    PCRE2_SIZE eo;
    t->alnum_re = pcre2_compile((PCRE2_SPTR) "[\\p{Alphabetic}\\p{N}]", PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
    NX_ASSERT(t->alnum_re);

    /* BOS/EOS: tokenizer_config.json first, then the post-processor */
    t->bos = config_token(t, cfg, "bos_token");
    t->eos = config_token(t, cfg, "eos_token");
    if (t->bos < 0 && t->npfx) t->bos = t->pfx[0];
    if (t->eos < 0 && t->nsfx) t->eos = t->sfx[t->nsfx - 1];
    /* transformers' Llama tokenizers honour add_bos_token/add_eos_token when
     * the post-processor adds nothing itself */
    if (!t->npfx && !t->nsfx && cfg) {
        if (jbool(cfg, "add_bos_token", false) && t->bos >= 0) push_ids(&t->pfx, &t->npfx, &t->bos, 1);
        if (jbool(cfg, "add_eos_token", false) && t->eos >= 0) push_ids(&t->sfx, &t->nsfx, &t->eos, 1);
    }
    t->cache = nx_xcalloc(CACHE_SHARDS, sizeof(cshard));
    for (int i = 0; i < CACHE_SHARDS; i++) pthread_mutex_init(&t->cache[i].mu, NULL);
    return NX_OK;
}

static int load_common(nx_tokenizer **out, const char *json, size_t len, const char *name,
                       const char *cfg_json, size_t cfg_len, const char *cfg_name, nx_err *err) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = (e && e >= json && e <= json + len) ? (size_t)(e - json) : 0;
        return nx_fail(err, "%s: invalid JSON near byte %zu", name, off);
    }
    cJSON *cfg = NULL;
    if (cfg_json && !(cfg = cJSON_ParseWithLength(cfg_json, cfg_len))) {
        cJSON_Delete(root);
        return nx_fail(err, "%s: invalid JSON", cfg_name);
    }
    nx_tokenizer *t = nx_xcalloc(1, sizeof *t);
    lctx L = {err, name};
    int rc = load_impl(t, root, cfg, &L);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) { nx_tokenizer_free(t); return NX_ERR; }
    *out = t;
    return NX_OK;
}

int nx_tokenizer_load_json(nx_tokenizer **out, const char *json, size_t len, const char *name, nx_err *err) {
    return load_common(out, json, len, name ? name : "tokenizer.json", NULL, 0, NULL, err);
}

int nx_tokenizer_load(nx_tokenizer **out, const char *path, nx_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return nx_fail(err, "%s: %s", path, strerror(errno));
    char tj[4096], tc[4096];
    bool dir = S_ISDIR(st.st_mode);
    if (dir) {
        snprintf(tj, sizeof tj, "%s/tokenizer.json", path);
        snprintf(tc, sizeof tc, "%s/tokenizer_config.json", path);
    } else {
        snprintf(tj, sizeof tj, "%s", path);
        const char *sl = strrchr(path, '/');
        snprintf(tc, sizeof tc, "%.*stokenizer_config.json", sl ? (int)(sl - path + 1) : 0, path);
    }
    size_t len, clen = 0;
    char *json = nx_read_file(tj, 0, &len, err);
    if (!json) {
        if (dir) nx_fail_prefix(err, "%s has no readable tokenizer.json", path);
        return NX_ERR;
    }
    char *cfg = NULL;
    if (stat(tc, &st) == 0 && !(cfg = nx_read_file(tc, 0, &clen, err))) { free(json); return NX_ERR; }
    int rc = load_common(out, json, len, tj, cfg, clen, tc, err);
    free(json);
    free(cfg);
    return rc;
}

void nx_tokenizer_free(nx_tokenizer *t) {
    if (!t) return;
    /* vocab keys that are not the by-id strings were private copies */
    for (size_t i = 0; t->vocab.e && i <= t->vocab.mask; i++) {
        sment *e = &t->vocab.e[i];
        if (e->s && e->s != t->tok[e->id]) free((void *)e->s);
    }
    for (int32_t i = 0; i < t->V; i++) free(t->tok[i]);
    free(t->tok); free(t->toklen); free(t->special);
    free(t->vocab.e); free(t->all.e); free(t->merges.e);
    free(t->prefix_str); free(t->suffix_str);
    free(t->added); free(t->raw_set.idx); free(t->norm_set.idx);
    for (int i = 0; i < t->nnorm; i++) { free(t->norm[i].a); free(t->norm[i].b); if (t->norm[i].re) pcre2_code_free(t->norm[i].re); }
    for (int i = 0; i < t->ndec; i++) { free(t->dec[i].a); free(t->dec[i].b); if (t->dec[i].re) pcre2_code_free(t->dec[i].re); }
    for (int i = 0; i < t->npre; i++) { free(t->pre[i].lit); if (t->pre[i].re) pcre2_code_free(t->pre[i].re); }
    free(t->norm); free(t->dec); free(t->pfx); free(t->sfx);
    if (t->gpt2_re) pcre2_code_free(t->gpt2_re);
    if (t->alnum_re) pcre2_code_free(t->alnum_re);
    if (t->cache) {
        for (int i = 0; i < CACHE_SHARDS; i++) pthread_mutex_destroy(&t->cache[i].mu);
        free(t->cache);
    }
    free(t);
}

/* ------------------------------------------------------------------ */
/* encoding                                                             */

typedef struct { size_t s, e; bool m; } span;
typedef struct { span *v; size_t n, cap; } spans;

static void sp_push(spans *a, size_t s, size_t e, bool m) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 32;
        a->v = realloc(a->v, a->cap * sizeof(span));
        NX_ASSERT(a->v);
    }
    a->v[a->n++] = (span){s, e, m};
}

typedef struct { int32_t id, prev, next; uint32_t len; } sym;
typedef struct { int32_t rank, pos, id; } hent;

typedef struct {
    const nx_tokenizer *t;
    int32_t **ids; size_t *n, *cap;
    pcre2_match_data *md;
    sbuf nb[2], wb;
    sbuf sb[MAXSTAGE][2];
    spans sp[MAXSTAGE][2], tsp;
    sym *syms; size_t nsym_cap;
    hent *heap; size_t heap_cap;
    nx_err *err;
} ectx;

static void push_id(ectx *c, int32_t id) {
    if (*c->n == *c->cap) {
        *c->cap = *c->cap ? 2 * *c->cap : 256;
        *c->ids = realloc(*c->ids, *c->cap * sizeof(int32_t));
        NX_ASSERT(*c->ids);
    }
    (*c->ids)[(*c->n)++] = id;
}

/* HF Pattern::find_matches: spans covering s, matches flagged. */
static int find_matches(ectx *c, const pcre2_code *re, const char *lit, size_t litlen,
                        const char *s, size_t n, spans *out) {
    out->n = 0;
    if (n == 0) { sp_push(out, 0, 0, false); return NX_OK; }
    size_t prev = 0;
    if (!re) {
        if (litlen == 0) { sp_push(out, 0, n, false); return NX_OK; }
        const char *p = s, *end = s + n;
        while ((p = memmem(p, (size_t)(end - p), lit, litlen))) {
            size_t ms = (size_t)(p - s);
            if (ms != prev) sp_push(out, prev, ms, false);
            sp_push(out, ms, ms + litlen, true);
            prev = ms + litlen;
            p += litlen;
        }
    } else {
        size_t pos = 0;
        while (pos <= n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, c->md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                char msg[128];
                pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
                return nx_fail(c->err, "regex match failed (%s)", msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
            size_t ms = ov[0], me = ov[1];
            if (ms != prev) sp_push(out, prev, ms, false);
            sp_push(out, ms, me, true);
            prev = me;
            if (me == ms) { /* empty match: step one character */
                if (me >= n) break;
                uint32_t cp;
                int w = utf8_step((const uint8_t *)s, n, me, &cp);
                pos = me + (size_t)(w > 0 ? w : 1);
            } else pos = me;
        }
    }
    if (prev != n) sp_push(out, prev, n, false);
    return NX_OK;
}

/* HF NormalizedString::split with a SplitDelimiterBehavior; empty pieces dropped */
static void apply_behavior(spans *m, int behavior, bool invert, spans *out) {
    out->n = 0;
    if (invert) for (size_t i = 0; i < m->n; i++) m->v[i].m = !m->v[i].m;
    bool prevm = false;
    switch (behavior) {
    case B_ISOLATED: for (size_t i = 0; i < m->n; i++) sp_push(out, m->v[i].s, m->v[i].e, false); break;
    case B_REMOVED: for (size_t i = 0; i < m->n; i++) if (!m->v[i].m) sp_push(out, m->v[i].s, m->v[i].e, false); break;
    case B_MERGED_PREV:
        for (size_t i = 0; i < m->n; i++) {
            if (m->v[i].m && !prevm && out->n) out->v[out->n - 1].e = m->v[i].e;
            else sp_push(out, m->v[i].s, m->v[i].e, false);
            prevm = m->v[i].m;
        }
        break;
    case B_CONTIGUOUS:
        for (size_t i = 0; i < m->n; i++) {
            if (m->v[i].m == prevm && out->n) out->v[out->n - 1].e = m->v[i].e;
            else sp_push(out, m->v[i].s, m->v[i].e, false);
            prevm = m->v[i].m;
        }
        break;
    case B_MERGED_NEXT: /* walk backwards, then reverse */
        for (size_t k = m->n; k-- > 0;) {
            if (m->v[k].m && !prevm && out->n) out->v[out->n - 1].s = m->v[k].s;
            else sp_push(out, m->v[k].s, m->v[k].e, false);
            prevm = m->v[k].m;
        }
        for (size_t i = 0; i < out->n / 2; i++) {
            span x = out->v[i]; out->v[i] = out->v[out->n - 1 - i]; out->v[out->n - 1 - i] = x;
        }
        break;
    default: NX_ASSERT(0);
    }
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) if (out->v[i].e > out->v[i].s) out->v[k++] = out->v[i];
    out->n = k;
}

/* ---- BPE ---------------------------------------------------------- */

static void heap_push(ectx *c, size_t *hn, hent e) {
    if (*hn == c->heap_cap) {
        c->heap_cap = c->heap_cap ? 2 * c->heap_cap : 64;
        c->heap = realloc(c->heap, c->heap_cap * sizeof(hent));
        NX_ASSERT(c->heap);
    }
    hent *h = c->heap;
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].rank < e.rank || (h[p].rank == e.rank && h[p].pos <= e.pos)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}
static hent heap_pop(ectx *c, size_t *hn) {
    hent *h = c->heap, top = h[0], last = h[--(*hn)];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        hent best = last;
        if (l < n && (h[l].rank < best.rank || (h[l].rank == best.rank && h[l].pos < best.pos))) { m = l; best = h[l]; }
        if (r < n && (h[r].rank < best.rank || (h[r].rank == best.rank && h[r].pos < best.pos))) { m = r; best = h[r]; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (n) h[i] = last;
    return top;
}

static const pment *merge_get(const nx_tokenizer *t, int32_t a, int32_t b) {
    const pment *e = pmap_slot(&t->merges, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    return e->rank >= 0 ? e : NULL;
}

static void add_sym(ectx *c, size_t *ns, int32_t id, uint32_t len) {
    if (*ns == c->nsym_cap) {
        c->nsym_cap = c->nsym_cap ? 2 * c->nsym_cap : 64;
        c->syms = realloc(c->syms, c->nsym_cap * sizeof(sym));
        NX_ASSERT(c->syms);
    }
    c->syms[*ns] = (sym){id, (int32_t)*ns - 1, -1, len};
    if (*ns) c->syms[*ns - 1].next = (int32_t)*ns;
    (*ns)++;
}

static int run_model(ectx *c, const char *w, size_t n) {
    const nx_tokenizer *t = c->t;
    uint64_t h = 0;
    cshard *sh = NULL;
    cslot *slot = NULL;
    if (n <= CW) {
        h = nx_fnv1a(w, n, NX_FNV_INIT);
        sh = &t->cache[h >> 58];
        slot = &sh->slot[h & (CACHE_SLOTS - 1)];
        pthread_mutex_lock(&sh->mu);
        if (slot->wlen == n && slot->h == h && !memcmp(slot->w, w, n)) {
            int32_t ids[CW];
            int k = slot->nids;
            memcpy(ids, slot->ids, (size_t)k * sizeof(int32_t));
            pthread_mutex_unlock(&sh->mu);
            for (int i = 0; i < k; i++) push_id(c, ids[i]);
            return NX_OK;
        }
        pthread_mutex_unlock(&sh->mu);
    }
    size_t first = *c->n;
    int32_t whole;
    if (t->ignore_merges && (whole = smap_get(&t->vocab, w, n)) >= 0) {
        push_id(c, whole);
    } else {
        /* BPE::merge_word: one symbol per character */
        size_t ns = 0;
        int32_t unk = -1;
        uint32_t unk_len = 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int cl = utf8_step((const uint8_t *)w, n, i, &cp);
            NX_ASSERT(cl > 0);
            const char *s = w + i;
            size_t sl = (size_t)cl;
            if ((i > 0 && t->prefix_len) || (i + sl == n && t->suffix_len)) {
                c->wb.n = 0;
                if (i > 0 && t->prefix_len) sb_put(&c->wb, t->prefix_str, t->prefix_len);
                sb_put(&c->wb, s, sl);
                if (i + sl == n && t->suffix_len) sb_put(&c->wb, t->suffix_str, t->suffix_len);
                s = c->wb.p; sl = c->wb.n;
            }
            int32_t id = smap_get(&t->vocab, s, sl);
            if (id >= 0) {
                if (unk >= 0) { add_sym(c, &ns, unk, unk_len); unk = -1; }
                add_sym(c, &ns, id, (uint32_t)cl);
            } else {
                bool done = false;
                if (t->byte_fallback) {
                    int32_t bid[16];
                    bool all = sl <= 16;
                    for (size_t k = 0; all && k < sl; k++) {
                        char name[8];
                        snprintf(name, sizeof name, "<0x%02X>", (uint8_t)s[k]);
                        all = (bid[k] = smap_get(&t->vocab, name, 6)) >= 0;
                    }
                    if (all) {
                        for (size_t k = 0; k < sl; k++) add_sym(c, &ns, bid[k], 1);
                        done = true;
                    }
                }
                if (!done && t->unk_id >= 0) {
                    if (unk >= 0 && t->fuse_unk) unk_len += (uint32_t)cl;
                    else {
                        if (unk >= 0) add_sym(c, &ns, unk, unk_len);
                        unk = t->unk_id;
                        unk_len = (uint32_t)cl;
                    }
                }
                /* no unk token and no byte fallback: HF drops the character */
            }
            i += (size_t)cl;
        }
        if (unk >= 0) add_sym(c, &ns, unk, unk_len);
        /* Word::merge_all */
        size_t hn = 0;
        sym *y = c->syms;
        for (size_t i = 0; i + 1 < ns; i++) {
            const pment *m = merge_get(t, y[i].id, y[i + 1].id);
            if (m) heap_push(c, &hn, (hent){m->rank, (int32_t)i, m->id});
        }
        while (hn) {
            hent top = heap_pop(c, &hn);
            y = c->syms;
            sym *cur = &y[top.pos];
            if (cur->len == 0 || cur->next < 0) continue;
            sym right = y[cur->next];
            const pment *m = merge_get(t, cur->id, right.id);
            if (!m || m->id != top.id) continue;
            int32_t rpos = cur->next;
            cur->id = top.id;
            cur->len += right.len;
            cur->next = right.next;
            y[rpos].len = 0;
            if (right.next >= 0) y[right.next].prev = top.pos;
            if (cur->prev >= 0) {
                const pment *p = merge_get(t, y[cur->prev].id, cur->id);
                if (p) heap_push(c, &hn, (hent){p->rank, cur->prev, p->id});
                cur = &c->syms[top.pos];
            }
            if (cur->next >= 0) {
                const pment *p = merge_get(t, cur->id, c->syms[cur->next].id);
                if (p) heap_push(c, &hn, (hent){p->rank, top.pos, p->id});
            }
        }
        for (int32_t i = ns ? 0 : -1; i >= 0; i = c->syms[i].next) push_id(c, c->syms[i].id);
    }
    size_t k = *c->n - first;
    if (slot && k <= CW) {
        pthread_mutex_lock(&sh->mu);
        slot->h = h;
        slot->wlen = (uint8_t)n;
        slot->nids = (uint8_t)k;
        memcpy(slot->w, w, n);
        memcpy(slot->ids, *c->ids + first, k * sizeof(int32_t));
        pthread_mutex_unlock(&sh->mu);
    }
    return NX_OK;
}

/* ---- pre-tokenizers ------------------------------------------------- */

static void byte_map(const nx_tokenizer *t, const char *s, size_t n, sbuf *out) {
    out->n = 0;
    sb_reserve(out, 2 * n);
    for (size_t i = 0; i < n; i++) out->n += (size_t)utf8_put(t->b2u[(uint8_t)s[i]], out->p + out->n);
    out->p[out->n] = 0;
}

static int run_pre(ectx *c, int st, const char *s, size_t n, bool first) {
    const nx_tokenizer *t = c->t;
    if (n == 0) return NX_OK;
    if (st == t->npre) return run_model(c, s, n);
    const pretok *p = &t->pre[st];
    sbuf *a = &c->sb[st][0], *b = &c->sb[st][1];
    spans *m = &c->sp[st][0], *pc = &c->sp[st][1];
    switch (p->type) {
    case PT_BYTELEVEL:
        if (p->add_prefix_space && s[0] != ' ') {
            a->n = 0; sb_putc(a, ' '); sb_put(a, s, n);
            s = a->p; n = a->n;
        }
        if (!p->use_regex) {
            byte_map(t, s, n, b);
            return run_pre(c, st + 1, b->p, b->n, first);
        }
        if (find_matches(c, t->gpt2_re, NULL, 0, s, n, m)) return NX_ERR;
        apply_behavior(m, B_ISOLATED, false, pc);
        for (size_t i = 0; i < pc->n; i++) {
            span x = pc->v[i];
            byte_map(t, s + x.s, x.e - x.s, b);
            if (run_pre(c, st + 1, b->p, b->n, first && x.s == 0)) return NX_ERR;
        }
        return NX_OK;
    case PT_SPLIT:
        if (find_matches(c, p->re, p->lit, p->litlen, s, n, m)) return NX_ERR;
        apply_behavior(m, p->behavior, p->invert, pc);
        for (size_t i = 0; i < pc->n; i++) {
            span x = pc->v[i];
            if (run_pre(c, st + 1, s + x.s, x.e - x.s, first && x.s == 0)) return NX_ERR;
        }
        return NX_OK;
    case PT_METASPACE:
        a->n = 0;
        if ((p->prepend == PS_ALWAYS || (p->prepend == PS_FIRST && first)) &&
            !(n >= p->litlen && !memcmp(s, p->lit, p->litlen)) && s[0] != ' ')
            sb_put(a, p->lit, p->litlen);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') sb_put(a, p->lit, p->litlen);
            else sb_putc(a, s[i]);
        }
        if (!p->split) return run_pre(c, st + 1, a->p, a->n, first);
        find_matches(c, NULL, p->lit, p->litlen, a->p, a->n, m);
        apply_behavior(m, B_MERGED_NEXT, false, pc);
        for (size_t i = 0; i < pc->n; i++) {
            span x = pc->v[i];
            if (run_pre(c, st + 1, a->p + x.s, x.e - x.s, first && x.s == 0)) return NX_ERR;
        }
        return NX_OK;
    }
    NX_ASSERT(0);
    return NX_ERR;
}

/* ---- normalizers ---------------------------------------------------- */

static int normalize(ectx *c, const char *s, size_t n, const char **out, size_t *outn) {
    const nx_tokenizer *t = c->t;
    int cur = 0;
    for (int k = 0; k < t->nnorm; k++) {
        const step *q = &t->norm[k];
        sbuf *o = &c->nb[cur];
        o->n = 0;
        sb_reserve(o, n);
        switch (q->type) {
        case NM_PREPEND:
            if (n) sb_put(o, q->a, q->alen);
            sb_put(o, s, n);
            break;
        case NM_REPLACE:
            if (find_matches(c, q->re, q->a, q->alen, s, n, &c->tsp)) return NX_ERR;
            for (size_t i = 0; i < c->tsp.n; i++) {
                span x = c->tsp.v[i];
                if (x.m) sb_put(o, q->b, q->blen);
                else sb_put(o, s + x.s, x.e - x.s);
            }
            break;
        case NM_STRIP: {
            size_t b = 0, e = n;
            uint32_t cp;
            int w;
            while (q->left && b < e && (w = utf8_step((const uint8_t *)s, n, b, &cp)) > 0 && cp_space(cp)) b += (size_t)w;
            while (q->right && e > b) {
                size_t j = e - 1;
                while (j > b && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
                if ((w = utf8_step((const uint8_t *)s, n, j, &cp)) > 0 && cp_space(cp)) e = j;
                else break;
            }
            sb_put(o, s + b, e - b);
            break;
        }
        }
        s = o->p; n = o->n;
        cur ^= 1;
    }
    *out = s;
    *outn = n;
    return NX_OK;
}

/* ---- added tokens --------------------------------------------------- */

static bool is_alnum_at(const nx_tokenizer *t, ectx *c, const char *s, size_t n, size_t i) {
    return pcre2_match(t->alnum_re, (PCRE2_SPTR)s, n, i, PCRE2_NO_UTF_CHECK, c->md, NULL) >= 0;
}
static size_t prev_char(const char *s, size_t i) {
    do i--; while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

/* AddedVocabulary::find_matches: spans with m=true carry the added token
 * index in .e's companion array ids[]. Output: pieces (s,e) and id (-1 text). */
typedef struct { size_t s, e; int32_t id; } apiece;

static void added_split(ectx *c, const added_set *set, const char *s, size_t n,
                        apiece **out, size_t *nout, size_t *cap) {
    const nx_tokenizer *t = c->t;
    *nout = 0;
#define APUSH(S, E, ID) do { if (*nout == *cap) { *cap = *cap ? 2 * *cap : 16; *out = realloc(*out, *cap * sizeof(apiece)); NX_ASSERT(*out); } (*out)[(*nout)++] = (apiece){S, E, ID}; } while (0)
    size_t start_off = 0, p = 0;
    while (set->n && p < n) {
        uint8_t b = (uint8_t)s[p];
        int hit = -1;
        if (set->first[b >> 3] & (1u << (b & 7)))
            for (int k = 0; k < set->n; k++) {
                const added_tok *a = &t->added[set->idx[k]];
                if (a->len <= n - p && (uint8_t)a->s[0] == b && !memcmp(s + p, a->s, a->len)) { hit = set->idx[k]; break; }
            }
        if (hit < 0) { p++; continue; }
        const added_tok *a = &t->added[hit];
        size_t ms = p, me = p + a->len;
        p = me;
        if (a->single_word) {
            bool sspace = ms == 0 || !is_alnum_at(t, c, s, n, prev_char(s, ms));
            bool espace = me == n || !is_alnum_at(t, c, s, n, me);
            if (!sspace || !espace) continue;
        }
        if (a->lstrip) {
            size_t ns = ms;
            uint32_t cp;
            while (ns > 0) {
                size_t j = prev_char(s, ns);
                if (utf8_step((const uint8_t *)s, n, j, &cp) > 0 && cp_space(cp)) ns = j;
                else break;
            }
            ms = ns > start_off ? ns : start_off;
        }
        if (a->rstrip) {
            uint32_t cp;
            int w;
            while (me < n && (w = utf8_step((const uint8_t *)s, n, me, &cp)) > 0 && cp_space(cp)) me += (size_t)w;
        }
        if (ms < start_off) ms = start_off;
        if (start_off < ms) APUSH(start_off, ms, -1);
        APUSH(ms, me, a->id);
        start_off = me;
        if (p < me) p = me;
    }
    if (start_off < n || *nout == 0) APUSH(start_off, n, -1);
#undef APUSH
}

static int encode_text(ectx *c, const char *s, size_t n, bool at_start) {
    const nx_tokenizer *t = c->t;
    if (n == 0) return NX_OK;
    const char *ns;
    size_t nn;
    if (normalize(c, s, n, &ns, &nn)) return NX_ERR;
    if (!t->norm_set.n) return run_pre(c, 0, ns, nn, at_start);
    apiece *pcs = NULL;
    size_t np = 0, cap = 0;
    added_split(c, &t->norm_set, ns, nn, &pcs, &np, &cap);
    int rc = NX_OK;
    for (size_t i = 0; i < np && rc == NX_OK; i++) {
        if (pcs[i].id >= 0) push_id(c, pcs[i].id);
        else rc = run_pre(c, 0, ns + pcs[i].s, pcs[i].e - pcs[i].s, at_start && pcs[i].s == 0);
    }
    free(pcs);
    return rc;
}

static void ectx_free(ectx *c) {
    if (c->md) pcre2_match_data_free(c->md);
    free(c->nb[0].p); free(c->nb[1].p); free(c->wb.p);
    for (int i = 0; i < MAXSTAGE; i++) {
        free(c->sb[i][0].p); free(c->sb[i][1].p);
        free(c->sp[i][0].v); free(c->sp[i][1].v);
    }
    free(c->tsp.v); free(c->syms); free(c->heap);
}

int nx_tokenizer_encode_append(const nx_tokenizer *t, const char *text, size_t len, bool add_special,
                               int32_t **ids, size_t *n, size_t *cap, nx_err *err) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int w = utf8_step((const uint8_t *)text, len, i, &cp);
        if (w < 0)
            return nx_fail(err, "invalid UTF-8 at byte offset %zu (byte 0x%02x): tokenizers take UTF-8 "
                           "text only; fix or re-encode the input", i, (uint8_t)text[i]);
        i += (size_t)w;
    }
    ectx c = {.t = t, .ids = ids, .n = n, .cap = cap, .err = err};
    c.md = pcre2_match_data_create(32, NULL);
    NX_ASSERT(c.md);
    size_t n0 = *n;
    if (add_special) for (int i = 0; i < t->npfx; i++) push_id(&c, t->pfx[i]);
    apiece *pcs = NULL;
    size_t np = 0, pcap = 0;
    int rc = NX_OK;
    if (t->raw_set.n) {
        added_split(&c, &t->raw_set, text, len, &pcs, &np, &pcap);
        for (size_t i = 0; i < np && rc == NX_OK; i++) {
            if (pcs[i].id >= 0) push_id(&c, pcs[i].id);
            else rc = encode_text(&c, text + pcs[i].s, pcs[i].e - pcs[i].s, pcs[i].s == 0);
        }
    } else rc = encode_text(&c, text, len, true);
    if (add_special && rc == NX_OK) for (int i = 0; i < t->nsfx; i++) push_id(&c, t->sfx[i]);
    free(pcs);
    ectx_free(&c);
    if (rc) *n = n0;
    return rc;
}

int nx_tokenizer_encode(const nx_tokenizer *t, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n, nx_err *err) {
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    int rc = nx_tokenizer_encode_append(t, text, len, add_special, ids, n, &cap, err);
    if (rc) { free(*ids); *ids = NULL; *n = 0; }
    return rc;
}

/* ------------------------------------------------------------------ */
/* decoding                                                             */

typedef struct { sbuf *v; size_t n, cap; } slist;

static sbuf *sl_add(slist *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, l->cap * sizeof(sbuf));
        NX_ASSERT(l->v);
    }
    l->v[l->n] = (sbuf){0};
    sb_reserve(&l->v[l->n], 0);
    return &l->v[l->n++];
}
static void sl_free(slist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].p);
    free(l->v);
    *l = (slist){0};
}

/* String::from_utf8_lossy */
static void lossy(const char *s, size_t n, sbuf *o) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int w = utf8_step((const uint8_t *)s, n, i, &cp);
        if (w > 0) { sb_put(o, s + i, (size_t)w); i += (size_t)w; }
        else { sb_put(o, "\xEF\xBF\xBD", 3); i += (size_t)-w; }
    }
}

static bool utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int w = utf8_step((const uint8_t *)s, n, i, &cp);
        if (w < 0) return false;
        i += (size_t)w;
    }
    return true;
}

static int decode_step(const nx_tokenizer *t, const step *d, slist *in, slist *out, pcre2_match_data *md, nx_err *err) {
    switch (d->type) {
    case DC_BYTELEVEL: {
        sbuf raw = {0};
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->v[i].p;
            size_t n = in->v[i].n, mark = raw.n;
            bool ok = true;
            for (size_t k = 0; k < n && ok;) {
                uint32_t cp;
                int w = utf8_step((const uint8_t *)s, n, k, &cp);
                if (w < 0 || cp >= 324 || t->u2b[cp] < 0) ok = false;
                else { sb_putc(&raw, (char)t->u2b[cp]); k += (size_t)w; }
            }
            if (!ok) { raw.n = mark; sb_put(&raw, s, n); }
        }
        lossy(raw.p ? raw.p : "", raw.n, sl_add(out));
        free(raw.p);
        return NX_OK;
    }
    case DC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            sbuf *o = sl_add(out);
            const char *s = in->v[i].p;
            size_t n = in->v[i].n;
            for (size_t k = 0; k < n;) {
                uint32_t cp;
                int w = utf8_step((const uint8_t *)s, n, k, &cp);
                if (w < 0) { sb_putc(o, s[k]); k++; continue; }
                if (cp == d->ch) { if (!(i == 0 && d->prepend != PS_NEVER)) sb_putc(o, ' '); }
                else sb_put(o, s + k, (size_t)w);
                k += (size_t)w;
            }
        }
        return NX_OK;
    case DC_REPLACE: {
        ectx c = {.t = t, .md = md, .err = err};
        int rc = NX_OK;
        for (size_t i = 0; i < in->n && rc == NX_OK; i++) {
            sbuf *o = sl_add(out);
            rc = find_matches(&c, d->re, d->a, d->alen, in->v[i].p, in->v[i].n, &c.tsp);
            for (size_t k = 0; rc == NX_OK && k < c.tsp.n; k++) {
                span x = c.tsp.v[k];
                if (x.m) sb_put(o, d->b, d->blen);
                else sb_put(o, in->v[i].p + x.s, x.e - x.s);
            }
        }
        free(c.tsp.v);
        return rc;
    }
    case DC_BYTEFALLBACK: {
        sbuf bytes = {0};
        for (size_t i = 0; i <= in->n; i++) {
            const char *s = i < in->n ? in->v[i].p : NULL;
            unsigned v;
            char tail;
            if (s && in->v[i].n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' &&
                sscanf(s + 3, "%2x%c", &v, &tail) == 2 && tail == '>' &&
                strchr("0123456789abcdefABCDEF", s[3]) && strchr("0123456789abcdefABCDEF", s[4])) {
                sb_putc(&bytes, (char)v);
                continue;
            }
            if (bytes.n) {
                if (utf8_valid(bytes.p, bytes.n)) sb_put(sl_add(out), bytes.p, bytes.n);
                else for (size_t k = 0; k < bytes.n; k++) sb_put(sl_add(out), "\xEF\xBF\xBD", 3);
                bytes.n = 0;
            }
            if (s) sb_put(sl_add(out), s, in->v[i].n);
        }
        free(bytes.p);
        return NX_OK;
    }
    case DC_FUSE: {
        sbuf *o = sl_add(out);
        for (size_t i = 0; i < in->n; i++) sb_put(o, in->v[i].p, in->v[i].n);
        return NX_OK;
    }
    case DC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->v[i].p;
            size_t n = in->v[i].n, b = 0, e = n;
            uint32_t cp;
            int w;
            for (int k = 0; k < d->start && b < n; k++) {
                if ((w = utf8_step((const uint8_t *)s, n, b, &cp)) > 0 && cp == d->ch) b += (size_t)w;
                else break;
            }
            for (int k = 0; k < d->stop && e > b; k++) {
                size_t j = prev_char(s, e);
                if (j < b) break;
                if ((w = utf8_step((const uint8_t *)s, n, j, &cp)) > 0 && cp == d->ch) e = j;
                else break;
            }
            sb_put(sl_add(out), s + b, e - b);
        }
        return NX_OK;
    }
    NX_ASSERT(0);
    return NX_ERR;
}

int nx_tokenizer_decode(const nx_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        char **out, nx_err *err) {
    *out = NULL;
    slist a = {0}, b = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->V || !t->tok[id]) {
            sl_free(&a);
            return nx_fail(err, "cannot decode id %d at position %zu: not in the vocabulary (size %d)", id, i, t->V);
        }
        if (skip_special && t->special[id]) continue;
        sb_put(sl_add(&a), t->tok[id], t->toklen[id]);
    }
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    NX_ASSERT(md);
    int rc = NX_OK;
    for (int k = 0; k < t->ndec && rc == NX_OK; k++) {
        rc = decode_step(t, &t->dec[k], &a, &b, md, err);
        sl_free(&a);
        a = b;
        b = (slist){0};
    }
    pcre2_match_data_free(md);
    if (rc) { sl_free(&a); return NX_ERR; }
    sbuf o = {0};
    sb_reserve(&o, 0);
    for (size_t i = 0; i < a.n; i++) {
        if (i && !t->has_decoder) sb_putc(&o, ' ');
        sb_put(&o, a.v[i].p, a.v[i].n);
    }
    sl_free(&a);
    *out = o.p;
    return NX_OK;
}

/* ------------------------------------------------------------------ */
/* accessors                                                            */

int32_t nx_tokenizer_vocab_size(const nx_tokenizer *t) { return t->V; }
int32_t nx_tokenizer_token_to_id(const nx_tokenizer *t, const char *token) {
    return smap_get(&t->all, token, strlen(token));
}
const char *nx_tokenizer_id_to_token(const nx_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->V ? t->tok[id] : NULL;
}
bool nx_tokenizer_is_special(const nx_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->V && t->special[id];
}
int32_t nx_tokenizer_bos_id(const nx_tokenizer *t) { return t->bos; }
int32_t nx_tokenizer_eos_id(const nx_tokenizer *t) { return t->eos; }
uint64_t nx_tokenizer_fingerprint(const nx_tokenizer *t) { return t->fingerprint; }
