/* describe.c — the tokenizer seen from outside, for exporters: which family
 * of tokenizer it is (tokenizer.h: BYTELEVEL, SPM, OTHER), the regex its
 * pre-tokenizer splits with, the merges in rank order and which ids are
 * added tokens. GGUF's tokenizer metadata (io/gguf_tokenizer.c) is written
 * from these; nothing here changes how text is encoded. */
#include "internal.h"

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581 ▁, SentencePiece's space */

/* A literal pattern equal to s. */
static bool literal_is(const pattern *p, const char *s) {
    return !p->regex && p->literal && p->literal_len == strlen(s) && !memcmp(p->literal, s, p->literal_len);
}

static bool is_bytelevel(const nx_tokenizer *t, nx_tokenizer_info *d) {
    if (t->n_normalizers || t->byte_fallback || t->n_pretok < 1 || t->n_pretok > 2) return false;
    const pretok_stage *last = &t->pretok[t->n_pretok - 1];
    if (last->kind != PRETOK_BYTELEVEL || last->add_prefix_space) return false;
    if (t->n_pretok == 2) {
        const pretok_stage *s = &t->pretok[0];
        if (s->kind != PRETOK_SPLIT || !s->split.regex || s->behavior != SPLIT_ISOLATED || s->invert) return false;
        d->split_regex = s->split.source;
    }
    d->bytelevel_regex = last->use_regex;
    return true;
}

static bool is_spm(const nx_tokenizer *t, nx_tokenizer_info *d) {
    if (!t->byte_fallback || t->n_pretok) return false;
    int k = 0;
    if (k < t->n_normalizers && t->normalizers[k].kind == NORM_PREPEND &&
        t->normalizers[k].prepend_len == 3 && !memcmp(t->normalizers[k].prepend, SPACE_MARK, 3)) {
        d->add_prefix_space = true;
        k++;
    }
    if (k + 1 != t->n_normalizers || t->normalizers[k].kind != NORM_REPLACE) return false;
    const replace_rule *r = &t->normalizers[k].replace;
    return literal_is(&r->pattern, " ") && r->content_len == 3 && !memcmp(r->content, SPACE_MARK, 3);
}

void nx_tokenizer_describe(const nx_tokenizer *t, nx_tokenizer_info *d) {
    memset(d, 0, sizeof *d);
    d->unk_id = t->unk_id;
    d->ignore_merges = t->ignore_merges;
    d->n_merges = t->n_merges;
    d->adds_bos = t->n_prefix_ids > 0 && t->prefix_ids[0] == t->bos_id;
    d->adds_eos = t->n_suffix_ids > 0 && t->suffix_ids[t->n_suffix_ids - 1] == t->eos_id;
    d->family = NX_TOK_OTHER;
    if (t->subword_prefix || t->word_suffix) return;
    nx_tokenizer_info b = *d, s = *d;
    if (is_bytelevel(t, &b)) *d = b, d->family = NX_TOK_BYTELEVEL;
    else if (is_spm(t, &s)) *d = s, d->family = NX_TOK_SPM;
}

void nx_tokenizer_merge(const nx_tokenizer *t, int32_t r, int32_t *left, int32_t *right) {
    NX_ASSERT(r >= 0 && r < t->n_merges);
    *left = t->merge_list[2 * r];
    *right = t->merge_list[2 * r + 1];
}

bool nx_tokenizer_is_added(const nx_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return true;
    return false;
}
