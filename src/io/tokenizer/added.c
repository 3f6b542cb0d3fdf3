/* added.c — finding added tokens in text (HF AddedVocabulary).
 *
 * Added tokens (special ones like <|endoftext|> and plain additions) are cut
 * out of the text before the model sees it and become their ids directly.
 * Those with normalized=false are matched on the raw text, before the
 * normalizer; those with normalized=true on each normalized piece. Each of
 * the two sets is sorted longest first, so that scanning left to right and
 * taking the first token that matches gives HF's leftmost-longest match; a
 * bitmap of first bytes skips most positions without comparing anything.
 *
 * The per-token options, as HF applies them:
 *   single_word  the match counts only if no word character (Unicode
 *                Alphabetic or a number, HF's is_alphanumeric) touches it on
 *                either side;
 *   lstrip       whitespace before the token is swallowed into it (never
 *                past the end of the previous match);
 *   rstrip       whitespace after it likewise.
 * Reading added_tokens from the JSON and giving them ids is in vocab.c. */
#include "internal.h"

static void set_build(nx_tokenizer *t, added_token_set *set, bool normalized) {
    set->order = nx_xmalloc((size_t)(t->n_added + 1) * sizeof(int));
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].len > 0) set->order[set->count++] = i;
    for (int i = 1; i < set->count; i++) /* insertion sort, longest first, stable */
        for (int j = i; j > 0 && t->added[set->order[j]].len > t->added[set->order[j - 1]].len; j--) {
            int x = set->order[j];
            set->order[j] = set->order[j - 1];
            set->order[j - 1] = x;
        }
    for (int i = 0; i < set->count; i++) {
        uint8_t b = (uint8_t)t->added[set->order[i]].text[0];
        set->first_bytes[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
}

void tok_added_init(nx_tokenizer *t) {
    set_build(t, &t->added_raw, false);
    set_build(t, &t->added_normalized, true);
    int ec;
    PCRE2_SIZE eo;
    t->alnum_regex = pcre2_compile((PCRE2_SPTR) "[\\p{Alphabetic}\\p{N}]", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
    NX_ASSERT(t->alnum_regex);
}

void tok_added_free(nx_tokenizer *t) {
    free(t->added);
    free(t->added_raw.order);
    free(t->added_normalized.order);
    if (t->alnum_regex) pcre2_code_free(t->alnum_regex);
}

/* Is the character at s[i] a word character for single_word? */
static bool is_alnum_at(encoder *e, const char *s, size_t n, size_t i) {
    return pcre2_match(e->t->alnum_regex, (PCRE2_SPTR)s, n, i, PCRE2_NO_UTF_CHECK, e->match, NULL) >= 0;
}

static void piece_push(added_piece_list *l, size_t start, size_t end, int32_t id) {
    if (l->len == l->cap) l->items = tok_grow(l->items, &l->cap, sizeof(added_piece), 16);
    l->items[l->len++] = (added_piece){start, end, id};
}

/* The index of the longest token of set that starts at s[p], or -1. */
static int match_at(const nx_tokenizer *t, const added_token_set *set, const char *s, size_t n, size_t p) {
    uint8_t b = (uint8_t)s[p];
    if (!(set->first_bytes[b >> 3] & (1u << (b & 7)))) return -1;
    for (int k = 0; k < set->count; k++) {
        const added_token *a = &t->added[set->order[k]];
        if (a->len <= n - p && (uint8_t)a->text[0] == b && !memcmp(s + p, a->text, a->len)) return set->order[k];
    }
    return -1;
}

void tok_added_split(encoder *e, const added_token_set *set, const char *s, size_t n, added_piece_list *out) {
    const nx_tokenizer *t = e->t;
    out->len = 0;
    size_t text_start = 0; /* where the plain text since the last match begins */
    size_t p = 0;
    while (set->count && p < n) {
        int hit = match_at(t, set, s, n, p);
        if (hit < 0) { p++; continue; }
        const added_token *a = &t->added[hit];
        size_t ms = p, me = p + a->len;
        p = me;
        if (a->single_word) {
            bool space_before = ms == 0 || !is_alnum_at(e, s, n, tok_utf8_prev(s, ms));
            bool space_after = me == n || !is_alnum_at(e, s, n, me);
            if (!space_before || !space_after) continue;
        }
        if (a->lstrip) {
            size_t ns = tok_trim_spaces(s, 0, ms);
            ms = ns > text_start ? ns : text_start;
        }
        if (a->rstrip) me = tok_skip_spaces(s, n, me);
        if (ms < text_start) ms = text_start;
        if (text_start < ms) piece_push(out, text_start, ms, -1);
        piece_push(out, ms, me, a->id);
        text_start = me;
        if (p < me) p = me;
    }
    if (text_start < n || out->len == 0) piece_push(out, text_start, n, -1);
}
