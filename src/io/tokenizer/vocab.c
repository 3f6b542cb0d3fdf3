/* vocab.c — ids and token strings: model.vocab and added_tokens read into
 * one table by id and two maps by string, and the accessors of tokenizer.h
 * that answer from them.
 *
 * Ids may come from either list, so the table has V = (max id over both) + 1
 * rows; an id neither list names has no string (decode rejects it). When two
 * strings claim one id, the one registered first keeps it: added tokens are
 * registered before the model vocabulary, as in HF. Two added tokens with
 * one id and different strings are an error; a model token sharing an id
 * with another string keeps its own private copy as its map key (kept in a
 * list of its own: a key given twice in model.vocab, the later id winning
 * as in HF, replaces a map entry whose key another map may still hold).
 *
 * The two maps:
 *   model_vocab  model.vocab only: what BPE looks its symbols up in;
 *   token_ids    added tokens first, then model.vocab (first wins): what
 *                nx_tokenizer_token_to_id answers from.
 *
 * The fingerprint is FNV-1a over the merges in order (bpe.c), then over
 * every (id, string) pair: two tokenizers that agree on it map text to the
 * same ids. */
#include "internal.h"

/* Gives id its string unless it has one already (the first registered wins). */
static void set_token(nx_tokenizer *t, int32_t id, const char *s, size_t n) {
    if (t->token_text[id]) return;
    t->token_text[id] = tok_strndup(s, n);
    t->token_len[id] = (uint32_t)n;
}

/* Checks both lists and sizes the by-id table: t->V = max id + 1. */
static int count_ids(nx_tokenizer *t, const cJSON *vocab, const cJSON *added_tokens, load_ctx *L) {
    int32_t max_id = -1;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e8 ||
            x->valuedouble != (int32_t)x->valuedouble)
            return nx_fail(L->err, "%s: model.vocab[\"%s\"] must be a non-negative integer id", L->name, x->string);
        if (x->valueint > max_id) max_id = x->valueint;
    }
    int i = 0;
    cJSON_ArrayForEach(x, added_tokens) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        const char *content = tok_json_string(x, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8 || !content || !*content)
            return nx_fail(L->err, "%s: added_tokens[%d] needs a non-negative \"id\" and a non-empty \"content\"",
                           L->name, i);
        if (id->valueint > max_id) max_id = id->valueint;
        i++;
    }
    t->V = max_id + 1;
    return NX_OK;
}

static int load_added_tokens(nx_tokenizer *t, const cJSON *added_tokens, load_ctx *L) {
    t->added = nx_xcalloc((size_t)cJSON_GetArraySize(added_tokens) + 1, sizeof(added_token));
    const cJSON *x;
    cJSON_ArrayForEach(x, added_tokens) {
        added_token *a = &t->added[t->n_added++];
        const char *content = tok_json_string(x, "content");
        a->id = cJSON_GetObjectItemCaseSensitive(x, "id")->valueint;
        a->len = strlen(content);
        a->special = tok_json_bool(x, "special", false);
        a->single_word = tok_json_bool(x, "single_word", false);
        a->lstrip = tok_json_bool(x, "lstrip", false);
        a->rstrip = tok_json_bool(x, "rstrip", false);
        a->normalized = tok_json_bool(x, "normalized", !a->special);
        set_token(t, a->id, content, a->len);
        a->text = t->token_text[a->id];
        if (a->len != t->token_len[a->id] || memcmp(a->text, content, a->len))
            return nx_fail(L->err, "%s: added_tokens gives id %d to both \"%s\" and \"%s\"", L->name, a->id,
                           a->text, content);
        if (a->special) t->is_special[a->id] = 1;
        tok_str_id_map_add(&t->token_ids, a->text, a->len, a->id);
    }
    return NX_OK;
}

static void load_model_vocab(nx_tokenizer *t, const cJSON *vocab) {
    tok_str_id_map_init(&t->model_vocab, (size_t)cJSON_GetArraySize(vocab));
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        int32_t id = x->valueint;
        size_t n = strlen(x->string);
        set_token(t, id, x->string, n);
        /* the map keys must outlive cJSON: use the by-id copy when it is this string */
        const char *key = (t->token_len[id] == n && !memcmp(t->token_text[id], x->string, n)) ? t->token_text[id]
                                                                                              : NULL;
        if (!key) { /* id shared with another string: private copy */
            if (t->n_key_copies == t->cap_key_copies)
                t->key_copies = tok_grow(t->key_copies, &t->cap_key_copies, sizeof(char *), 16);
            key = t->key_copies[t->n_key_copies++] = tok_strndup(x->string, n);
        }
        tok_str_id_map_set(&t->model_vocab, key, n, id);
        tok_str_id_map_add(&t->token_ids, key, n, id);
    }
}

int tok_vocab_load(nx_tokenizer *t, const cJSON *vocab, const cJSON *added_tokens, load_ctx *L) {
    if (count_ids(t, vocab, added_tokens, L)) return NX_ERR;
    t->token_text = nx_xcalloc((size_t)t->V + 1, sizeof(char *));
    t->token_len = nx_xcalloc((size_t)t->V + 1, sizeof(uint32_t));
    t->is_special = nx_xcalloc((size_t)t->V + 1, 1);
    tok_str_id_map_init(&t->token_ids, (size_t)cJSON_GetArraySize(vocab) + (size_t)cJSON_GetArraySize(added_tokens));
    if (load_added_tokens(t, added_tokens, L)) return NX_ERR;
    load_model_vocab(t, vocab);
    return NX_OK;
}

uint64_t tok_vocab_fingerprint(const nx_tokenizer *t, uint64_t h) {
    for (int32_t i = 0; i < t->V; i++) {
        h = nx_fnv1a(&i, 4, h);
        if (t->token_text[i]) h = nx_fnv1a(t->token_text[i], t->token_len[i], h);
    }
    return h;
}

void tok_vocab_free(nx_tokenizer *t) {
    for (size_t i = 0; i < t->n_key_copies; i++) free(t->key_copies[i]);
    free(t->key_copies);
    for (int32_t i = 0; t->token_text && i < t->V; i++) free(t->token_text[i]);
    free(t->token_text);
    free(t->token_len);
    free(t->is_special);
    free(t->model_vocab.entries);
    free(t->token_ids.entries);
}

/* ---- the accessors of tokenizer.h ---------------------------------------- */

int32_t nx_tokenizer_vocab_size(const nx_tokenizer *t) { return t->V; }

int32_t nx_tokenizer_token_to_id(const nx_tokenizer *t, const char *token) {
    return str_id_map_get(&t->token_ids, token, strlen(token));
}

const char *nx_tokenizer_id_to_token(const nx_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->V ? t->token_text[id] : NULL;
}

bool nx_tokenizer_is_special(const nx_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->V && t->is_special[id];
}

uint64_t nx_tokenizer_fingerprint(const nx_tokenizer *t) { return t->fingerprint; }
