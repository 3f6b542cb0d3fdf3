/* encode.c — text to ids, the pipeline of HF's
 * TokenizerImpl::encode_single_sequence for one sequence:
 *
 *   1. the text must be valid UTF-8 (an error names the byte offset: HF only
 *      accepts a Rust &str, and we never replace bytes silently);
 *   2. added tokens with normalized=false are split out of the raw text;
 *   3. every remaining piece is normalized, then the added tokens with
 *      normalized=true are split out of it;
 *   4. the pre-tokenizer stages split each remaining piece into words, and
 *      BPE turns each word into ids (pretokenize.c, bpe.c);
 *   5. with add_special, the post-processor's ids go before and after.
 *
 * All scratch memory of one call lives in an `encoder`, created here and
 * freed at the end of the call, so the tokenizer itself stays read-only
 * (apart from the locked word cache) and concurrent encodes are safe. Ids are
 * appended to the caller's growable array; on error its length is restored. */
#include "internal.h"

typedef int (*piece_encoder)(encoder *e, const char *s, size_t n, bool at_start);

/* Splits s around the added tokens of set: their ids are emitted, the text
 * between them goes to encode_plain. at_start: s starts the sequence. */
static int encode_around_added(encoder *e, const added_token_set *set, const char *s, size_t n, bool at_start,
                               piece_encoder encode_plain) {
    if (!set->count) return encode_plain(e, s, n, at_start);
    added_piece_list pieces = {0};
    tok_added_split(e, set, s, n, &pieces);
    int rc = NX_OK;
    for (size_t i = 0; i < pieces.len && rc == NX_OK; i++) {
        added_piece p = pieces.items[i];
        if (p.id >= 0) encoder_emit(e, p.id);
        else rc = encode_plain(e, s + p.start, p.end - p.start, at_start && p.start == 0);
    }
    free(pieces.items);
    return rc;
}

static int pretokenize_all(encoder *e, const char *s, size_t n, bool at_start) {
    return tok_pretokenize(e, 0, s, n, at_start);
}

/* Steps 3 and 4 for one piece of raw text between added tokens. */
static int encode_raw_piece(encoder *e, const char *s, size_t n, bool at_start) {
    if (n == 0) return NX_OK;
    const char *normalized;
    size_t len;
    if (tok_normalize(e, s, n, &normalized, &len)) return NX_ERR;
    return encode_around_added(e, &e->t->added_normalized, normalized, len, at_start, pretokenize_all);
}

static void encoder_free(encoder *e) {
    if (e->match) pcre2_match_data_free(e->match);
    free(e->normalized[0].data);
    free(e->normalized[1].data);
    free(e->ucs);
    free(e->bpe_unit.data);
    for (int i = 0; i < MAX_PRETOK_STAGES; i++) {
        free(e->stage_text[i][0].data);
        free(e->stage_text[i][1].data);
        free(e->stage_spans[i][0].items);
        free(e->stage_spans[i][1].items);
    }
    free(e->replace_spans.items);
    free(e->symbols);
    free(e->heap);
}

int nx_tokenizer_encode_append(const nx_tokenizer *t, const char *text, size_t len, bool add_special,
                               int32_t **ids, size_t *n, size_t *cap, nx_err *err) {
    size_t bad = tok_utf8_invalid_at(text, len);
    if (bad < len)
        return nx_fail(err, "invalid UTF-8 at byte offset %zu (byte 0x%02x): tokenizers take UTF-8 "
                       "text only; fix or re-encode the input", bad, (uint8_t)text[bad]);
    encoder e = {.t = t, .ids = ids, .n_ids = n, .cap_ids = cap, .err = err};
    e.match = pcre2_match_data_create(32, NULL);
    NX_ASSERT(e.match);
    size_t n0 = *n;
    if (add_special) for (int i = 0; i < t->n_prefix_ids; i++) encoder_emit(&e, t->prefix_ids[i]);
    int rc = encode_around_added(&e, &t->added_raw, text, len, true, encode_raw_piece);
    if (add_special && rc == NX_OK) for (int i = 0; i < t->n_suffix_ids; i++) encoder_emit(&e, t->suffix_ids[i]);
    encoder_free(&e);
    if (rc) *n = n0;
    return rc;
}

int nx_tokenizer_encode(const nx_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n, nx_err *err) {
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    int rc = nx_tokenizer_encode_append(t, text, len, add_special, ids, n, &cap, err);
    if (rc) { free(*ids); *ids = NULL; *n = 0; }
    return rc;
}
