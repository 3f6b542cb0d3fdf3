/* internal.h — what the files of src/io/tokenizer/ share; nothing outside
 * this folder includes it (the public API is include/nexus/tokenizer.h).
 *
 * A loaded tokenizer is one struct, nx_tokenizer: the vocabulary by id and by
 * string, the BPE merges, and one small array per pipeline component
 * (normalizer steps, pre-tokenizer stages, decoder steps). Each component is
 * a tagged struct parsed once at load, so encoding never looks at JSON. The
 * struct is read-only after load except for the word cache (locked), which is
 * why any number of threads may encode with one tokenizer. Everything one
 * encode call writes lives in an `encoder`, the per-call scratch.
 *
 * The files, in the order text flows through them:
 *   load.c         tokenizer.json (+ tokenizer_config.json) → nx_tokenizer,
 *                  the top-level validation, BOS/EOS, free
 *   vocab.c        ids ⇄ strings: model.vocab, added_tokens, the accessors
 *                  of tokenizer.h, the fingerprint
 *   encode.c       the encode pipeline (UTF-8 check, added tokens, normalize,
 *                  pre-tokenize, BPE, post-processor ids)
 *   added.c        finding added tokens in text (single_word, lstrip, rstrip)
 *   normalize.c    normalizers: Prepend, Replace, Strip, NFC/NFD/NFKC/NFKD
 *                  (utf8proc), ByteLevel
 *   pretokenize.c  pre-tokenizers: ByteLevel, Split, Metaspace, Digits
 *   pattern.c      {"String"} / {"Regex"} patterns on PCRE2, Replace rules
 *   bpe.c          the BPE model: merges, one word → ids, the word cache
 *   postprocess.c  post-processors → the ids added around a sequence
 *   decode.c       decoders: ids → text
 *   tables.c       the two hash maps (string → id, id pair → merge)
 *   text.c         UTF-8 helpers, the byte buffer, growable arrays
 *
 * The helpers called per byte or per character on the encode path (UTF-8
 * decoding and encoding, byte-buffer appends, map lookups, emitting an id)
 * are static inline here: splitting one file into several must not cost the
 * inlining the compiler did when they were all static in one file.
 * Functions with external linkage start with tok_ (they share the static
 * library's namespace with every other module). */
#ifndef NEXUS_TOKENIZER_INTERNAL_H
#define NEXUS_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/tokenizer.h"

/* ---- UTF-8 (text.c) ---------------------------------------------------- */

/* Decodes the character at s[i] (i < n). Returns its length (> 0) and sets
 * *cp, or returns minus the length of the maximal invalid prefix: the unit
 * that Rust's String::from_utf8_lossy replaces by one U+FFFD. */
static inline int utf8_decode(const uint8_t *s, size_t n, size_t i, uint32_t *cp) {
    uint8_t b = s[i];
    if (b < 0x80) { *cp = b; return 1; }
    int w;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
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

/* Writes code point cp as 1 to 4 bytes at o; returns the count. */
static inline int utf8_encode(uint32_t cp, char *o) {
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

/* Offset of the first byte that is not part of a valid UTF-8 character;
 * n when all of s is valid. */
size_t tok_utf8_invalid_at(const char *s, size_t n);
/* Rust char::is_whitespace (the Unicode White_Space property). */
bool tok_is_unicode_space(uint32_t cp);
/* Start of the character that ends at s[i] (i > 0, s valid UTF-8). */
size_t tok_utf8_prev(const char *s, size_t i);
/* Past the whitespace characters from s[i] on, stopping at n. */
size_t tok_skip_spaces(const char *s, size_t n, size_t i);
/* Before the whitespace characters that end at s[end], stopping at lo. */
size_t tok_trim_spaces(const char *s, size_t lo, size_t end);

/* ---- growable arrays (text.c) ------------------------------------------ */

/* realloc to count elements; running out of memory is fatal (nx_xmalloc's
 * policy). */
void *tok_resize(void *items, size_t count, size_t elem_size);
/* Doubles *cap (from `initial` when 0) and reallocates items to it: the
 * growth step of every (items, len, cap) array here, taken when len == cap. */
void *tok_grow(void *items, size_t *cap, size_t elem_size, size_t initial);

/* ---- growable byte buffer (text.c) ------------------------------------- */

/* Always NUL-terminated once anything was appended or reserved. */
typedef struct { char *data; size_t len, cap; } byte_buf;

void tok_buf_grow(byte_buf *b, size_t extra);
static inline void buf_reserve(byte_buf *b, size_t extra) {
    if (b->len + extra + 1 > b->cap) tok_buf_grow(b, extra);
}
static inline void buf_append(byte_buf *b, const char *s, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}
static inline void buf_append_char(byte_buf *b, char c) { buf_append(b, &c, 1); }

/* ---- hash maps (tables.c) ---------------------------------------------- */

/* string → id, open addressing with linear probing. The keys point to
 * strings owned elsewhere (the tokenizer's by-id table, mostly). */
typedef struct { const char *key; uint32_t key_len; int32_t id; } str_id_entry;
typedef struct { str_id_entry *entries; size_t mask; } str_id_map;

/* Sized for `count` keys at a load factor of at most 1/2. */
void tok_str_id_map_init(str_id_map *m, size_t count);
/* Sets key → id, replacing the key pointer and id of an equal key. */
void tok_str_id_map_set(str_id_map *m, const char *key, size_t len, int32_t id);
/* Adds key → id unless an equal key is there already (then the first stays). */
void tok_str_id_map_add(str_id_map *m, const char *key, size_t len, int32_t id);

/* The entry holding key, or the empty entry where it would go. */
static inline str_id_entry *str_id_map_slot(const str_id_map *m, const char *key, size_t len) {
    size_t i = nx_fnv1a(key, len, NX_FNV_INIT) & m->mask;
    for (;;) {
        str_id_entry *e = &m->entries[i];
        if (!e->key || (e->key_len == len && memcmp(e->key, key, len) == 0)) return e;
        i = (i + 1) & m->mask;
    }
}
/* -1 when absent (or when the map was never initialised). */
static inline int32_t str_id_map_get(const str_id_map *m, const char *key, size_t len) {
    if (!m->entries) return -1;
    const str_id_entry *e = str_id_map_slot(m, key, len);
    return e->key ? e->id : -1;
}

/* (left id, right id) → (rank, merged id): the BPE merges. rank < 0 marks an
 * empty entry. */
typedef struct { uint64_t pair; int32_t rank, merged_id; } merge_entry;
typedef struct { merge_entry *entries; size_t mask; } merge_map;

void tok_merge_map_init(merge_map *m, size_t count);
/* Sets (left, right) → (rank, merged_id); a later set of a pair wins. */
void tok_merge_map_set(merge_map *m, int32_t left, int32_t right, int32_t rank, int32_t merged_id);

static inline uint64_t merge_pair(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}
static inline merge_entry *merge_map_slot(const merge_map *m, uint64_t pair) {
    size_t i = (size_t)((pair * 0x9E3779B97F4A7C15ULL) >> 20) & m->mask; /* Fibonacci hashing */
    for (;;) {
        merge_entry *e = &m->entries[i];
        if (e->rank < 0 || e->pair == pair) return e;
        i = (i + 1) & m->mask;
    }
}
/* The merge of (left, right), NULL when there is none. */
static inline const merge_entry *merge_map_find(const merge_map *m, int32_t left, int32_t right) {
    const merge_entry *e = merge_map_slot(m, merge_pair(left, right));
    return e->rank >= 0 ? e : NULL;
}

/* ---- spans and patterns (pattern.c) ------------------------------------ */

/* A byte range [start, end) of a piece of text; is_match: a pattern matched it. */
typedef struct { size_t start, end; bool is_match; } span;
typedef struct { span *items; size_t len, cap; } span_list;

static inline void span_list_push(span_list *l, size_t start, size_t end, bool is_match) {
    if (l->len == l->cap) l->items = tok_grow(l->items, &l->cap, sizeof(span), 32);
    l->items[l->len++] = (span){start, end, is_match};
}

/* A tokenizer.json pattern: {"String": literal} (regex NULL) or {"Regex": r}
 * (source: r as written, for exporters). */
typedef struct { char *literal; size_t literal_len; pcre2_code *regex; char *source; } pattern;
/* Replace (normalizer or decoder): every match of pattern becomes content. */
typedef struct { pattern pattern; char *content; size_t content_len; } replace_rule;

/* What the loaders share: the error to fill and the file name it names. */
typedef struct { nx_err *err; const char *name; } load_ctx;

/* Compiles a regex written for Oniguruma (see pattern.c); NULL and an error
 * naming `where` when it does not compile. */
pcre2_code *tok_regex_compile(const char *regex, load_ctx *L, const char *where);
/* o.pattern → *p (zeroed by the caller); errors name `where`. */
int tok_pattern_parse(const cJSON *o, load_ctx *L, const char *where, pattern *p);
/* o.content and o.pattern → *r (zeroed by the caller). */
int tok_replace_parse(const cJSON *o, load_ctx *L, const char *where, replace_rule *r);
void tok_pattern_free(pattern *p);
void tok_replace_free(replace_rule *r);
/* HF Pattern::find_matches: out (cleared first) gets spans covering all of
 * s[0, n), matches flagged; one empty unmatched span when n is 0. regex NULL:
 * the literal is searched for (an empty literal matches nothing). */
int tok_find_matches(const pcre2_code *regex, const char *literal, size_t literal_len, const char *s,
                     size_t n, pcre2_match_data *md, span_list *out, nx_err *err);
/* Appends s with every match of r->pattern replaced by r->content to out;
 * `matches` is scratch. */
int tok_replace_apply(const replace_rule *r, const char *s, size_t n, pcre2_match_data *md,
                      span_list *matches, byte_buf *out, nx_err *err);

/* ---- shared parsing helpers (load.c) ------------------------------------ */

/* o[key] when it is a string, else NULL. */
const char *tok_json_string(const cJSON *o, const char *key);
/* o[key] when it is a boolean, else dflt. */
bool tok_json_bool(const cJSON *o, const char *key, bool dflt);
char *tok_strndup(const char *s, size_t n);
/* A copy of the NUL-terminated s; its length in *len. */
char *tok_strdup_len(const char *s, size_t *len);
/* NX_OK when s is exactly one UTF-8 character (stored in *cp). */
int tok_parse_one_char(const char *s, uint32_t *cp);

/* One pipeline component (normalizer, pre_tokenizer, decoder,
 * post_processor): nothing when o is absent or null; for "Sequence", every
 * element of o[sequence_key] in order (nested sequences too); else
 * load_one(t, o, its "type"), which returns NX_OK, NX_ERR, or
 * TOK_UNKNOWN_TYPE for a type it does not know: that is an error naming the
 * component (`what`) and listing the `supported` types. */
#define TOK_UNKNOWN_TYPE 1
typedef int (*component_loader)(nx_tokenizer *t, const cJSON *o, const char *type, load_ctx *L);
int tok_load_component(nx_tokenizer *t, const cJSON *o, load_ctx *L, const char *what, const char *sequence_key,
                       const char *supported, component_loader load_one);

/* Metaspace prepend_scheme (the pre-tokenizer and the decoder share it). */
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
int tok_parse_prepend_scheme(const cJSON *o, int *scheme);

/* ---- components --------------------------------------------------------- */

enum { NORM_PREPEND, NORM_REPLACE, NORM_STRIP, NORM_UNICODE, NORM_BYTELEVEL };
typedef struct {
    int kind;                           /* NORM_* */
    int unicode_options;                /* NFC, NFD, NFKC, NFKD: utf8proc options */
    char *prepend; size_t prepend_len;  /* Prepend */
    replace_rule replace;               /* Replace */
    bool strip_left, strip_right;       /* Strip */
} normalizer_step;

enum { PRETOK_BYTELEVEL, PRETOK_SPLIT, PRETOK_METASPACE, PRETOK_DIGITS };
/* HF SplitDelimiterBehavior, in the order of its names in tokenizer.json */
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_WITH_PREVIOUS, SPLIT_MERGED_WITH_NEXT, SPLIT_CONTIGUOUS };
#define MAX_PRETOK_STAGES 8
typedef struct {
    int kind;                                  /* PRETOK_* */
    bool add_prefix_space, use_regex;          /* ByteLevel */
    pattern split; int behavior; bool invert;  /* Split; Digits: \p{N}, Isolated or Contiguous */
    char *replacement; size_t replacement_len; /* Metaspace: the character that stands for ' ' */
    int prepend_scheme;                        /* Metaspace: PREPEND_* */
    bool split_on_replacement;                 /* Metaspace "split" */
} pretok_stage;

enum { DECODE_BYTELEVEL, DECODE_METASPACE, DECODE_REPLACE, DECODE_BYTEFALLBACK, DECODE_FUSE, DECODE_STRIP };
typedef struct {
    int kind;                     /* DECODE_* */
    replace_rule replace;         /* Replace */
    uint32_t ch;                  /* Metaspace replacement; Strip content */
    int prepend_scheme;           /* Metaspace: PREPEND_* */
    int strip_start, strip_stop;  /* Strip: how many `ch` at most leave each end */
} decoder_step;

typedef struct {
    const char *text; size_t len;  /* the by-id string of id */
    int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} added_token;

/* The added tokens matched at one point of the pipeline (before or after the
 * normalizer), longest first so that the first hit is the leftmost-longest. */
typedef struct {
    int *order;               /* indices into nx_tokenizer.added */
    int count;
    uint8_t first_bytes[32];  /* bitmap of the tokens' first bytes */
} added_token_set;

struct word_cache; /* bpe.c */

struct nx_tokenizer {
    /* vocabulary (vocab.c) */
    int32_t V;                    /* max id + 1 over model.vocab and added_tokens */
    char **token_text;            /* (V) by id, NUL-terminated; NULL: no token has the id */
    uint32_t *token_len;          /* (V) */
    uint8_t *is_special;          /* (V) added tokens marked special */
    str_id_map model_vocab;       /* model.vocab only: what BPE looks up */
    str_id_map token_ids;         /* added tokens, then model.vocab: token_to_id */
    char **key_copies;            /* the private map keys (vocab.c), owned here */
    size_t n_key_copies, cap_key_copies;
    uint64_t fingerprint;
    /* the BPE model (bpe.c) */
    merge_map merges;
    int32_t *merge_list;          /* (n_merges, 2) the merges in rank order, as token ids */
    int32_t n_merges;
    int32_t unk_id;               /* -1: no unk_token */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *subword_prefix; size_t subword_prefix_len; /* continuing_subword_prefix */
    char *word_suffix; size_t word_suffix_len;       /* end_of_word_suffix */
    struct word_cache *word_cache;
    /* added tokens (vocab.c loads them, added.c finds them in text) */
    added_token *added; int n_added;
    added_token_set added_raw;        /* normalized=false: matched on the raw text */
    added_token_set added_normalized; /* normalized=true: matched after the normalizer */
    pcre2_code *alnum_regex;          /* single_word's notion of a word character */
    /* normalizer (normalize.c), pre-tokenizer (pretokenize.c), decoder (decode.c) */
    normalizer_step *normalizers; int n_normalizers;
    pretok_stage pretok[MAX_PRETOK_STAGES]; int n_pretok;
    pcre2_code *bytelevel_regex;      /* GPT-2's split, for ByteLevel use_regex */
    uint16_t byte_to_char[256];       /* GPT-2 bytes_to_unicode: byte → code point */
    int16_t char_to_byte[324];        /* and back; -1: no byte */
    decoder_step *decoders; int n_decoders;
    bool has_decoder;                 /* false: decode joins tokens with spaces */
    /* post-processor (postprocess.c) and BOS/EOS (load.c) */
    int32_t *prefix_ids, *suffix_ids; int n_prefix_ids, n_suffix_ids;
    int32_t bos_id, eos_id;
};

/* ---- per-call encode state (encode.c) ----------------------------------- */

typedef struct {
    const nx_tokenizer *t;
    int32_t **ids; size_t *n_ids, *cap_ids;  /* the caller's growable output */
    pcre2_match_data *match;
    byte_buf normalized[2];                  /* normalizer steps ping-pong between these */
    int32_t *ucs; size_t ucs_cap;            /* code points of a Unicode normalization */
    byte_buf bpe_unit;                       /* one character with prefix/suffix attached */
    byte_buf stage_text[MAX_PRETOK_STAGES][2];
    span_list stage_spans[MAX_PRETOK_STAGES][2];
    span_list replace_spans;
    struct bpe_symbol *symbols; size_t symbols_cap;   /* bpe.c */
    struct merge_candidate *heap; size_t heap_cap;    /* bpe.c */
    nx_err *err;
} encoder;

static inline void encoder_emit(encoder *e, int32_t id) {
    if (*e->n_ids == *e->cap_ids) *e->ids = tok_grow(*e->ids, e->cap_ids, sizeof(int32_t), 256);
    (*e->ids)[(*e->n_ids)++] = id;
}

/* ---- between the files -------------------------------------------------- */

/* vocab.c: fills V, the by-id table, both string maps and t->added. */
int tok_vocab_load(nx_tokenizer *t, const cJSON *vocab, const cJSON *added_tokens, load_ctx *L);
/* Continues FNV-1a hash h over every (id, token string). */
uint64_t tok_vocab_fingerprint(const nx_tokenizer *t, uint64_t h);
void tok_vocab_free(nx_tokenizer *t);

/* bpe.c: tok_bpe_load reads the model options and merges (model.vocab must
 * be loaded) and continues *fingerprint over the merges in order. */
int tok_bpe_load(nx_tokenizer *t, const cJSON *model, load_ctx *L, uint64_t *fingerprint);
struct word_cache *tok_word_cache_new(void);
void tok_word_cache_free(struct word_cache *c);
/* Appends the ids of one pre-tokenized word. */
int tok_bpe_encode_word(encoder *e, const char *word, size_t n);

/* added.c: tok_added_init builds the two match sets from t->added. */
void tok_added_init(nx_tokenizer *t);
void tok_added_free(nx_tokenizer *t);
typedef struct { size_t start, end; int32_t id; } added_piece; /* id -1: plain text */
typedef struct { added_piece *items; size_t len, cap; } added_piece_list;
/* Splits s into plain-text pieces and the added tokens of `set` (HF
 * AddedVocabulary::find_matches); out is cleared first, never left empty. */
void tok_added_split(encoder *e, const added_token_set *set, const char *s, size_t n, added_piece_list *out);

/* normalize.c */
int tok_normalizer_load(nx_tokenizer *t, const cJSON *o, load_ctx *L);
void tok_normalizers_free(nx_tokenizer *t);
/* *out is s itself when there are no steps, else one of e->normalized. */
int tok_normalize(encoder *e, const char *s, size_t n, const char **out, size_t *out_len);

/* pretokenize.c */
int tok_pretok_load(nx_tokenizer *t, const cJSON *o, load_ctx *L);
void tok_pretok_free(nx_tokenizer *t);
void tok_bytelevel_tables_init(nx_tokenizer *t);
/* out = s with every byte replaced by its bytes_to_unicode character. */
void tok_bytelevel_map(const nx_tokenizer *t, const char *s, size_t n, byte_buf *out);
/* Runs stages [stage, n_pretok) on s, then BPE on every resulting word.
 * first: s starts the sequence (Metaspace prepend_scheme "first"). */
int tok_pretokenize(encoder *e, int stage, const char *s, size_t n, bool first);

/* postprocess.c */
int tok_postprocess_load(nx_tokenizer *t, const cJSON *o, load_ctx *L);
/* Appends k ids to the array (*ids, *n), reallocated to fit exactly. */
void tok_push_ids(int32_t **ids, int *n, const int32_t *add, int k);

/* decode.c */
int tok_decoder_load(nx_tokenizer *t, const cJSON *o, load_ctx *L);
void tok_decoders_free(nx_tokenizer *t);

#endif
