/* pretokenize.c — the pre-tokenizer: splits normalized text into the words
 * that BPE sees, and may rewrite them on the way. Supported stages:
 *
 *   ByteLevel  GPT-2: optional leading space, GPT-2's split regex, then every
 *              byte mapped to a printable character (bytes_to_unicode), so
 *              that BPE works on bytes yet the vocabulary reads as text;
 *   Split      a string or regex pattern with one of HF's five delimiter
 *              behaviours (Removed, Isolated, MergedWithPrevious,
 *              MergedWithNext, Contiguous), optionally inverted;
 *   Metaspace  SentencePiece: spaces become the replacement character
 *              (usually U+2581), optionally prepended, optionally split
 *              before each replacement;
 *   Digits     numeric characters (Rust's char::is_numeric: \p{N}) split
 *              off one by one (individual_digits) or as runs (Contiguous);
 *   Sequence   of these (at most MAX_PRETOK_STAGES stages).
 *
 * HF materialises the list of pieces after each stage. Here each stage hands
 * every sub-piece straight to the next stage (recursion over the stage
 * index) and the last stage hands it to BPE, so no list of pieces is ever
 * built; each stage owns two buffers and two span lists in the encoder, which
 * is enough because a stage finishes with one piece before taking the next.
 * `first` tracks whether a piece starts the sequence (Metaspace's "first"). */
#include "internal.h"

/* GPT-2's split, as HF's ByteLevel pre-tokenizer writes it. */
static const char *BYTELEVEL_REGEX =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* tokenizer.json's names of SPLIT_*, in the enum's order. */
static const char *SPLIT_BEHAVIORS[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                        "Contiguous"};

static int load_stage(nx_tokenizer *t, const cJSON *o, const char *type, load_ctx *L) {
    if (t->n_pretok == MAX_PRETOK_STAGES)
        return nx_fail(L->err, "%s: more than %d pre-tokenizers", L->name, MAX_PRETOK_STAGES);
    pretok_stage p = {0};
    if (!strcmp(type, "ByteLevel")) {
        p.kind = PRETOK_BYTELEVEL;
        p.add_prefix_space = tok_json_bool(o, "add_prefix_space", true);
        p.use_regex = tok_json_bool(o, "use_regex", true);
        if (p.use_regex && !t->bytelevel_regex &&
            !(t->bytelevel_regex = tok_regex_compile(BYTELEVEL_REGEX, L, "ByteLevel")))
            return NX_ERR;
    } else if (!strcmp(type, "Split")) {
        p.kind = PRETOK_SPLIT;
        if (tok_pattern_parse(o, L, "pre_tokenizer Split", &p.split)) return NX_ERR;
        const char *b = tok_json_string(o, "behavior");
        p.behavior = -1;
        for (int i = 0; i < 5; i++) if (b && !strcmp(b, SPLIT_BEHAVIORS[i])) p.behavior = i;
        if (p.behavior < 0) {
            tok_pattern_free(&p.split);
            return nx_fail(L->err, "%s: pre_tokenizer Split behavior \"%s\" is not one of Removed, "
                           "Isolated, MergedWithPrevious, MergedWithNext, Contiguous", L->name, b ? b : "(missing)");
        }
        p.invert = tok_json_bool(o, "invert", false);
    } else if (!strcmp(type, "Metaspace")) {
        p.kind = PRETOK_METASPACE;
        const char *r = tok_json_string(o, "replacement");
        uint32_t cp;
        if (!r || tok_parse_one_char(r, &cp))
            return nx_fail(L->err, "%s: Metaspace replacement must be one character", L->name);
        if (tok_parse_prepend_scheme(o, &p.prepend_scheme))
            return nx_fail(L->err, "%s: Metaspace prepend_scheme must be first, always or never", L->name);
        p.replacement = tok_strdup_len(r, &p.replacement_len);
        p.split_on_replacement = tok_json_bool(o, "split", true);
    } else if (!strcmp(type, "Digits")) {
        p.kind = PRETOK_DIGITS;
        p.behavior = tok_json_bool(o, "individual_digits", false) ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        if (!(p.split.regex = tok_regex_compile("\\p{N}", L, "Digits"))) return NX_ERR;
    } else return TOK_UNKNOWN_TYPE;
    t->pretok[t->n_pretok++] = p;
    return NX_OK;
}

int tok_pretok_load(nx_tokenizer *t, const cJSON *o, load_ctx *L) {
    return tok_load_component(t, o, L, "pre_tokenizer", "pretokenizers", "ByteLevel, Split, Metaspace, Digits",
                              load_stage);
}

void tok_pretok_free(nx_tokenizer *t) {
    for (int i = 0; i < t->n_pretok; i++) {
        tok_pattern_free(&t->pretok[i].split);
        free(t->pretok[i].replacement);
    }
    if (t->bytelevel_regex) pcre2_code_free(t->bytelevel_regex);
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other
 * 68 get the code points 256, 257, ... in byte order. */
void tok_bytelevel_tables_init(nx_tokenizer *t) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->byte_to_char[b] = (uint16_t)(printable ? b : 256 + k++);
    }
    for (int i = 0; i < 324; i++) t->char_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) t->char_to_byte[t->byte_to_char[b]] = (int16_t)b;
}

/* HF NormalizedString::split with a SplitDelimiterBehavior: the spans of
 * `m` (from tok_find_matches; flipped first when invert) become the pieces
 * in out; empty pieces are dropped. */
static void split_by_behavior(span_list *m, int behavior, bool invert, span_list *out) {
    out->len = 0;
    span *v = m->items;
    if (invert) for (size_t i = 0; i < m->len; i++) v[i].is_match = !v[i].is_match;
    bool prev_match = false;
    switch (behavior) {
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < m->len; i++) span_list_push(out, v[i].start, v[i].end, false);
        break;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < m->len; i++) if (!v[i].is_match) span_list_push(out, v[i].start, v[i].end, false);
        break;
    case SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < m->len; i++) {
            if (v[i].is_match && !prev_match && out->len) out->items[out->len - 1].end = v[i].end;
            else span_list_push(out, v[i].start, v[i].end, false);
            prev_match = v[i].is_match;
        }
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < m->len; i++) {
            if (v[i].is_match == prev_match && out->len) out->items[out->len - 1].end = v[i].end;
            else span_list_push(out, v[i].start, v[i].end, false);
            prev_match = v[i].is_match;
        }
        break;
    case SPLIT_MERGED_WITH_NEXT: /* walk backwards, then reverse */
        for (size_t k = m->len; k-- > 0;) {
            if (v[k].is_match && !prev_match && out->len) out->items[out->len - 1].start = v[k].start;
            else span_list_push(out, v[k].start, v[k].end, false);
            prev_match = v[k].is_match;
        }
        for (size_t i = 0; i < out->len / 2; i++) {
            span x = out->items[i];
            out->items[i] = out->items[out->len - 1 - i];
            out->items[out->len - 1 - i] = x;
        }
        break;
    default: NX_ASSERT(0);
    }
    size_t k = 0;
    for (size_t i = 0; i < out->len; i++)
        if (out->items[i].end > out->items[i].start) out->items[k++] = out->items[i];
    out->len = k;
}

/* out = s with every byte replaced by its bytes_to_unicode character. */
void tok_bytelevel_map(const nx_tokenizer *t, const char *s, size_t n, byte_buf *out) {
    out->len = 0;
    buf_reserve(out, 2 * n); /* every code point is below 0x800: two bytes at most */
    for (size_t i = 0; i < n; i++)
        out->len += (size_t)utf8_encode(t->byte_to_char[(uint8_t)s[i]], out->data + out->len);
    out->data[out->len] = 0;
}

/* Runs the next stage on every piece of s that `pieces` names. */
static int next_stage_on_pieces(encoder *e, int stage, const char *s, const span_list *pieces, bool first) {
    for (size_t i = 0; i < pieces->len; i++) {
        span x = pieces->items[i];
        if (tok_pretokenize(e, stage + 1, s + x.start, x.end - x.start, first && x.start == 0)) return NX_ERR;
    }
    return NX_OK;
}

int tok_pretokenize(encoder *e, int stage, const char *s, size_t n, bool first) {
    const nx_tokenizer *t = e->t;
    if (n == 0) return NX_OK;
    if (stage == t->n_pretok) return tok_bpe_encode_word(e, s, n);
    const pretok_stage *p = &t->pretok[stage];
    byte_buf *a = &e->stage_text[stage][0], *b = &e->stage_text[stage][1];
    span_list *matches = &e->stage_spans[stage][0], *pieces = &e->stage_spans[stage][1];
    switch (p->kind) {
    case PRETOK_BYTELEVEL:
        if (p->add_prefix_space && s[0] != ' ') {
            a->len = 0;
            buf_append_char(a, ' ');
            buf_append(a, s, n);
            s = a->data;
            n = a->len;
        }
        if (!p->use_regex) {
            tok_bytelevel_map(t, s, n, b);
            return tok_pretokenize(e, stage + 1, b->data, b->len, first);
        }
        if (tok_find_matches(t->bytelevel_regex, NULL, 0, s, n, e->match, matches, e->err)) return NX_ERR;
        split_by_behavior(matches, SPLIT_ISOLATED, false, pieces);
        /* as next_stage_on_pieces, but each piece is byte-mapped first */
        for (size_t i = 0; i < pieces->len; i++) {
            span x = pieces->items[i];
            tok_bytelevel_map(t, s + x.start, x.end - x.start, b);
            if (tok_pretokenize(e, stage + 1, b->data, b->len, first && x.start == 0)) return NX_ERR;
        }
        return NX_OK;
    case PRETOK_DIGITS:
    case PRETOK_SPLIT: {
        const pattern *q = &p->split;
        if (tok_find_matches(q->regex, q->literal, q->literal_len, s, n, e->match, matches, e->err)) return NX_ERR;
        split_by_behavior(matches, p->behavior, p->invert, pieces);
        return next_stage_on_pieces(e, stage, s, pieces, first);
    }
    case PRETOK_METASPACE:
        a->len = 0;
        if ((p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && first)) &&
            !(n >= p->replacement_len && !memcmp(s, p->replacement, p->replacement_len)) && s[0] != ' ')
            buf_append(a, p->replacement, p->replacement_len);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') buf_append(a, p->replacement, p->replacement_len);
            else buf_append_char(a, s[i]);
        }
        if (!p->split_on_replacement) return tok_pretokenize(e, stage + 1, a->data, a->len, first);
        /* a literal search cannot fail */
        tok_find_matches(NULL, p->replacement, p->replacement_len, a->data, a->len, e->match, matches, e->err);
        split_by_behavior(matches, SPLIT_MERGED_WITH_NEXT, false, pieces);
        return next_stage_on_pieces(e, stage, a->data, pieces, first);
    }
    NX_ASSERT(0);
    return NX_ERR;
}
