/* load.c — tokenizer.json (and, beside it, tokenizer_config.json) into an
 * nx_tokenizer, and back to nothing.
 *
 * The JSON is parsed once with cJSON and then walked section by section,
 * each section handed to the file that owns its component: "model.vocab" and
 * "added_tokens" to vocab.c, the rest of "model" to bpe.c, "normalizer",
 * "pre_tokenizer", "decoder" and "post_processor" to their files. Every
 * component type we cannot reproduce exactly (WordPiece, Unigram, NFC, ...)
 * is an error naming it: a tokenizer that silently differs from HF would
 * corrupt every token count and every training run downstream. Errors name
 * the file and the key ("model.merges[12]") so the user knows what to fix.
 *
 * tokenizer_config.json is where transformers keeps bos_token / eos_token
 * and add_bos_token / add_eos_token; when present it decides BOS/EOS, else
 * the post-processor's first and last ids do.
 *
 * Also here: what the component loaders share (JSON helpers, and
 * tok_load_component: the "type" dispatch, "Sequence" flattening and the
 * "not supported" error common to all four pipeline components), and
 * nx_tokenizer_free. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "internal.h"

#include "nexus/fsutil.h"

/* ---- shared parsing helpers ---------------------------------------------- */

const char *tok_json_string(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool tok_json_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

char *tok_strndup(const char *s, size_t n) {
    char *p = nx_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *tok_strdup_len(const char *s, size_t *len) {
    *len = strlen(s);
    return tok_strndup(s, *len);
}

int tok_parse_one_char(const char *s, uint32_t *cp) {
    size_t n = strlen(s);
    return n > 0 && utf8_decode((const uint8_t *)s, n, 0, cp) == (int)n ? NX_OK : NX_ERR;
}

int tok_parse_prepend_scheme(const cJSON *o, int *scheme) {
    const char *s = tok_json_string(o, "prepend_scheme");
    if (s) {
        if (!strcmp(s, "always")) *scheme = PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *scheme = PREPEND_FIRST;
        else if (!strcmp(s, "never")) *scheme = PREPEND_NEVER;
        else return NX_ERR;
    } else *scheme = tok_json_bool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER; /* older files */
    return NX_OK;
}

int tok_load_component(nx_tokenizer *t, const cJSON *o, load_ctx *L, const char *what, const char *sequence_key,
                       const char *supported, component_loader load_one) {
    if (!o || cJSON_IsNull(o)) return NX_OK;
    const char *type = tok_json_string(o, "type");
    if (!type) return nx_fail(L->err, "%s: %s has no \"type\"", L->name, what);
    if (strcmp(type, "Sequence")) {
        int rc = load_one(t, o, type, L);
        if (rc == TOK_UNKNOWN_TYPE)
            return nx_fail(L->err, "%s: %s type \"%s\" is not supported (supported: %s, Sequence); the tokenizer "
                           "cannot be reproduced exactly", L->name, what, type, supported);
        return rc;
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, sequence_key))
        if (tok_load_component(t, x, L, what, sequence_key, supported, load_one)) return NX_ERR;
    return NX_OK;
}

/* ---- tokenizer.json ------------------------------------------------------- */

/* The "model" section must be a BPE we can reproduce. */
static int check_model(const cJSON *model, load_ctx *L) {
    if (!model) return nx_fail(L->err, "%s: no \"model\" key: is this a tokenizer.json?", L->name);
    const char *type = tok_json_string(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!type && cJSON_IsArray(merges)) type = "BPE"; /* old files omit the type */
    if (!type || strcmp(type, "BPE"))
        return nx_fail(L->err, "%s: model.type \"%s\" is not supported (only BPE); the tokenizer "
                       "cannot be reproduced exactly", L->name, type ? type : "(missing)");
    if (!cJSON_IsObject(vocab)) return nx_fail(L->err, "%s: model.vocab must be an object {token: id}", L->name);
    if (!cJSON_IsArray(merges)) return nx_fail(L->err, "%s: model.merges must be an array", L->name);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return nx_fail(L->err, "%s: model.dropout %g is not supported (BPE dropout is random; set it to null)",
                       L->name, dropout->valuedouble);
    return NX_OK;
}

/* The id of tokenizer_config.json's `key` ("<s>" or {"content": "<s>"}), -1 if none. */
static int32_t config_token(const nx_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : tok_json_string(v, "content");
    return s ? nx_tokenizer_token_to_id(t, s) : -1;
}

/* BOS/EOS: tokenizer_config.json first, then the post-processor. */
static void set_bos_eos(nx_tokenizer *t, const cJSON *cfg) {
    t->bos_id = config_token(t, cfg, "bos_token");
    t->eos_id = config_token(t, cfg, "eos_token");
    if (t->bos_id < 0 && t->n_prefix_ids) t->bos_id = t->prefix_ids[0];
    if (t->eos_id < 0 && t->n_suffix_ids) t->eos_id = t->suffix_ids[t->n_suffix_ids - 1];
    /* transformers' Llama tokenizers honour add_bos_token/add_eos_token when
     * the post-processor adds nothing itself */
    if (!t->n_prefix_ids && !t->n_suffix_ids && cfg) {
        if (tok_json_bool(cfg, "add_bos_token", false) && t->bos_id >= 0)
            tok_push_ids(&t->prefix_ids, &t->n_prefix_ids, &t->bos_id, 1);
        if (tok_json_bool(cfg, "add_eos_token", false) && t->eos_id >= 0)
            tok_push_ids(&t->suffix_ids, &t->n_suffix_ids, &t->eos_id, 1);
    }
}

static int load_sections(nx_tokenizer *t, const cJSON *root, const cJSON *cfg, load_ctx *L) {
    if (!cJSON_IsObject(root)) return nx_fail(L->err, "%s: not a JSON object", L->name);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (check_model(model, L)) return NX_ERR;
    if (tok_vocab_load(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"),
                       cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), L))
        return NX_ERR;
    uint64_t fingerprint = NX_FNV_INIT;
    if (tok_bpe_load(t, model, L, &fingerprint)) return NX_ERR; /* hashes the merges in order */
    t->fingerprint = tok_vocab_fingerprint(t, fingerprint);
    tok_bytelevel_tables_init(t);
    tok_added_init(t);
    if (tok_normalizer_load(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), L)) return NX_ERR;
    if (tok_pretok_load(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), L)) return NX_ERR;
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (decoder && !cJSON_IsNull(decoder)) {
        t->has_decoder = true;
        if (tok_decoder_load(t, decoder, L)) return NX_ERR;
    }
    if (tok_postprocess_load(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), L)) return NX_ERR;
    for (int i = 0; i < t->n_prefix_ids + t->n_suffix_ids; i++) {
        int32_t id = i < t->n_prefix_ids ? t->prefix_ids[i] : t->suffix_ids[i - t->n_prefix_ids];
        if (id < 0 || id >= t->V)
            return nx_fail(L->err, "%s: post_processor adds id %d outside the vocabulary", L->name, id);
    }
    set_bos_eos(t, cfg);
    t->word_cache = tok_word_cache_new();
    return NX_OK;
}

/* Every key and string of a JSON tree must be UTF-8: their text reaches
 * the encoder (a Prepend or Replace normalizer's string, an added token),
 * which takes UTF-8 only. cJSON passes raw invalid bytes and lone
 * surrogate escapes through, so they are checked here, once. */
static bool utf8_bad(const char *s, size_t *at) {
    size_t n = strlen(s);
    return (*at = tok_utf8_invalid_at(s, n)) < n;
}

static const cJSON *first_bad_string(const cJSON *n, size_t *at, bool *is_key) {
    for (; n; n = n->next) {
        if (n->string && utf8_bad(n->string, at)) return *is_key = true, n;
        if (cJSON_IsString(n) && n->valuestring && utf8_bad(n->valuestring, at)) return *is_key = false, n;
        const cJSON *bad = first_bad_string(n->child, at, is_key);
        if (bad) return bad;
    }
    return NULL;
}

static int utf8_everywhere(const cJSON *root, const char *name, nx_err *err) {
    size_t at = 0;
    bool is_key = false;
    const cJSON *bad = first_bad_string(root, &at, &is_key);
    if (!bad) return NX_OK;
    if (is_key || !bad->string)
        return nx_fail(err, "%s: a JSON %s is not valid UTF-8 (byte %zu of it is 0x%02x): JSON text is UTF-8; "
                            "re-save the file as UTF-8", name, is_key ? "key" : "string", at,
                       (uint8_t)(is_key ? bad->string : bad->valuestring)[at]);
    return nx_fail(err, "%s: the string of key \"%.60s\" is not valid UTF-8 (byte %zu of it is 0x%02x): JSON text "
                        "is UTF-8; re-save the file as UTF-8", name, bad->string, at, (uint8_t)bad->valuestring[at]);
}

/* Parses both JSON texts (cfg_json may be NULL) and builds the tokenizer. */
static int load_from_text(nx_tokenizer **out, const char *json, size_t len, const char *name,
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
    if (utf8_everywhere(root, name, err) || (cfg && utf8_everywhere(cfg, cfg_name, err))) {
        cJSON_Delete(root);
        cJSON_Delete(cfg);
        return NX_ERR;
    }
    nx_tokenizer *t = nx_xcalloc(1, sizeof *t);
    load_ctx L = {err, name};
    int rc = load_sections(t, root, cfg, &L);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) { nx_tokenizer_free(t); return NX_ERR; }
    *out = t;
    return NX_OK;
}

int nx_tokenizer_load_json(nx_tokenizer **out, const char *json, size_t len, const char *name, nx_err *err) {
    return load_from_text(out, json, len, name ? name : "tokenizer.json", NULL, 0, NULL, err);
}

int nx_tokenizer_load_texts(nx_tokenizer **out, const char *json, size_t len, const char *config,
                            size_t config_len, const char *name, nx_err *err) {
    return load_from_text(out, json, len, name ? name : "tokenizer.json", config, config_len,
                          name ? name : "tokenizer_config.json", err);
}

int nx_tokenizer_load(nx_tokenizer **out, const char *path, nx_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return nx_fail(err, "%s: %s", path, strerror(errno));
    char tokenizer_json[4096], config_json[4096];
    bool dir = S_ISDIR(st.st_mode);
    if (dir) {
        snprintf(tokenizer_json, sizeof tokenizer_json, "%s/tokenizer.json", path);
        snprintf(config_json, sizeof config_json, "%s/tokenizer_config.json", path);
    } else { /* the config is looked for beside the file */
        snprintf(tokenizer_json, sizeof tokenizer_json, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(config_json, sizeof config_json, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0,
                 path);
    }
    size_t len, cfg_len = 0;
    char *json = nx_read_file(tokenizer_json, NX_MAX_TOKENIZER, &len, err);
    if (!json) {
        if (dir) nx_fail_prefix(err, "%s has no readable tokenizer.json", path);
        return NX_ERR;
    }
    char *cfg = NULL;
    if (stat(config_json, &st) == 0 && !(cfg = nx_read_file(config_json, NX_MAX_JSON_CONFIG, &cfg_len, err))) {
        free(json);
        return NX_ERR;
    }
    int rc = load_from_text(out, json, len, tokenizer_json, cfg, cfg_len, config_json, err);
    free(json);
    free(cfg);
    return rc;
}

void nx_tokenizer_free(nx_tokenizer *t) {
    if (!t) return;
    tok_vocab_free(t);
    free(t->merges.entries);
    free(t->merge_list);
    free(t->subword_prefix);
    free(t->word_suffix);
    tok_word_cache_free(t->word_cache);
    tok_added_free(t);
    tok_normalizers_free(t);
    tok_pretok_free(t);
    tok_decoders_free(t);
    free(t->prefix_ids);
    free(t->suffix_ids);
    free(t);
}

int32_t nx_tokenizer_bos_id(const nx_tokenizer *t) { return t->bos_id; }
int32_t nx_tokenizer_eos_id(const nx_tokenizer *t) { return t->eos_id; }
