/* gguf_tokenizer.c — the tokenizer metadata of a GGUF (tokenizer.ggml.*),
 * written from an nx_tokenizer and read back as the tokenizer.json (and
 * tokenizer_config.json) texts nexus loads.
 *
 * GGUF describes a tokenizer by family rather than by pipeline:
 *
 *   tokenizer.ggml.model   "gpt2": byte-level BPE (tokens, token_type,
 *                          merges "a b" in rank order) whose pre-tokenizer
 *                          regex is named by tokenizer.ggml.pre
 *                          ("llama-bpe": Llama 3's, "qwen2", "gpt-2");
 *                          "llama": SentencePiece-style BPE with byte
 *                          fallback (tokens, scores, token_type), spaces as
 *                          "▁" and, unless add_space_prefix is false, a "▁"
 *                          before the text.
 *   token_type             1 normal, 2 unknown, 3 control, 4 user-defined,
 *                          5 unused, 6 byte (<0xNN>).
 *   bos/eos/unknown/padding_token_id, add_bos_token, add_eos_token,
 *   chat_template.
 *
 * Writing follows llama.cpp's converter: "gpt2" for a byte-level tokenizer
 * whose regex llama.cpp knows by name, "llama" for a SentencePiece-style
 * one. The converter gives every "llama" token the score −1000 when it
 * starts from tokenizer.json (it has no scores there), which leaves
 * llama.cpp's merge order to chance; we write −(rank of the first merge
 * that produces the token) instead, so that llama.cpp, which merges the
 * pair whose result scores highest, merges in the rank order of the BPE.
 *
 * Reading builds the tokenizer.json that means what llama.cpp does with the
 * metadata: the pre-tokenizer's regex by name, ignore_merges for llama-bpe
 * (llama.cpp sets it), control and user-defined tokens as added tokens,
 * add_bos defaulting as in llama.cpp (true for llama-bpe and "llama"). For
 * "llama" the merges are derived from the scores as transformers does for
 * a SentencePiece model (every split of a token into two tokens, ordered by
 * the token's score, descending, then by ids): the pairs llama.cpp's
 * SentencePiece tokenizer would merge. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/gguf.h"

#include "nexus/safetensors.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* Pre-tokenizer regexes as tokenizer.json writes them, by llama.cpp name. */
static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const struct { const char *name, *regex; bool ignore_merges, add_bos; } PRES[] = {
    {"llama-bpe", LLAMA3_REGEX, true, true}, {"llama3", LLAMA3_REGEX, true, true},
    {"llama-v3", LLAMA3_REGEX, true, true},  {"qwen2", QWEN2_REGEX, false, false},
    {"deepseek-r1-qwen", QWEN2_REGEX, false, false}, {"gpt-2", NULL, false, false},
};
#define N_PRES (sizeof PRES / sizeof PRES[0])

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* ▁ */

/* ---- writing --------------------------------------------------------------- */

static bool is_byte_token(const char *s) {
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
           strchr("0123456789ABCDEFabcdef", s[3]) && strchr("0123456789ABCDEFabcdef", s[4]) && s[3] && s[4];
}

/* tokenizer_config.json's `key` as a token string ("<s>" or {"content": "<s>"}), or NULL. */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

int nx_gguf_put_tokenizer(nx_gguf_writer *w, const nx_tokenizer *tok, int32_t n_vocab, const char *config_json,
                          nx_err *err) {
    nx_tokenizer_info d;
    nx_tokenizer_describe(tok, &d);
    int32_t V = nx_tokenizer_vocab_size(tok);
    if (n_vocab < V)
        return nx_fail(err, "the tokenizer has %d tokens but the model only %d", V, n_vocab);
    const char *pre = NULL;
    if (d.family == NX_TOK_BYTELEVEL) {
        for (size_t i = 0; i < N_PRES && !pre; i++) {
            bool same = PRES[i].regex ? d.split_regex && !strcmp(d.split_regex, PRES[i].regex)
                                      : !d.split_regex && d.bytelevel_regex;
            if (same && (!PRES[i].regex || !d.bytelevel_regex)) pre = PRES[i].name;
        }
        if (!pre)
            return nx_fail(err, "the tokenizer's byte-level pre-tokenizer (regex %.80s%s) has no llama.cpp name "
                                "(llama-bpe, qwen2, gpt-2): llama.cpp would split text differently",
                           d.split_regex ? d.split_regex : "none", d.split_regex && strlen(d.split_regex) > 80 ? "..." : "");
    } else if (d.family != NX_TOK_SPM) {
        return nx_fail(err, "the tokenizer is neither GPT-2-style byte-level BPE nor SentencePiece-style BPE with "
                            "byte fallback (its normalizer, pre-tokenizer or model options differ): llama.cpp "
                            "could not reproduce it");
    }
    cJSON *cfg = NULL;
    if (config_json && !(cfg = cJSON_Parse(config_json)))
        return nx_fail(err, "tokenizer_config.json: not valid JSON");
    bool spm = d.family == NX_TOK_SPM;
    nx_gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    nx_gguf_set_str(w, "tokenizer.ggml.pre", spm ? "default" : pre);
    const char **tokens = nx_xcalloc((size_t)n_vocab, sizeof *tokens);
    char **pads = nx_xcalloc((size_t)n_vocab, sizeof *pads);
    int32_t *types = nx_xcalloc((size_t)n_vocab, sizeof *types);
    float *scores = spm ? nx_xcalloc((size_t)n_vocab, sizeof *scores) : NULL;
    for (int32_t i = 0; i < n_vocab; i++) {
        const char *s = i < V ? nx_tokenizer_id_to_token(tok, i) : NULL;
        if (!s) {
            pads[i] = nx_xmalloc(24);
            snprintf(pads[i], 24, "[PAD%d]", i);
            tokens[i] = pads[i];
            types[i] = TT_UNUSED;
            continue;
        }
        tokens[i] = s;
        types[i] = spm && is_byte_token(s) ? TT_BYTE
                 : nx_tokenizer_is_special(tok, i) ? TT_CONTROL
                 : nx_tokenizer_is_added(tok, i) ? TT_USER : TT_NORMAL;
    }
    nx_gguf_set_str_array(w, "tokenizer.ggml.tokens", tokens, (uint64_t)n_vocab);
    if (spm) {
        /* score: −(rank of the first merge producing the token) */
        bool *seen = nx_xcalloc((size_t)n_vocab, 1);
        char buf[1024];
        for (int32_t r = 0; r < d.n_merges; r++) {
            int32_t a, b;
            nx_tokenizer_merge(tok, r, &a, &b);
            snprintf(buf, sizeof buf, "%s%s", nx_tokenizer_id_to_token(tok, a), nx_tokenizer_id_to_token(tok, b));
            int32_t id = nx_tokenizer_token_to_id(tok, buf);
            if (id >= 0 && id < n_vocab && !seen[id]) seen[id] = true, scores[id] = -(float)r;
        }
        free(seen);
        nx_gguf_set_array(w, "tokenizer.ggml.scores", NX_GGUF_F32, scores, (uint64_t)n_vocab);
    }
    nx_gguf_set_array(w, "tokenizer.ggml.token_type", NX_GGUF_I32, types, (uint64_t)n_vocab);
    if (!spm) {
        char **merges = nx_xcalloc((size_t)d.n_merges + 1, sizeof *merges);
        for (int32_t r = 0; r < d.n_merges; r++) {
            int32_t a, b;
            nx_tokenizer_merge(tok, r, &a, &b);
            const char *sa = nx_tokenizer_id_to_token(tok, a), *sb = nx_tokenizer_id_to_token(tok, b);
            size_t n = strlen(sa) + strlen(sb) + 2;
            merges[r] = nx_xmalloc(n);
            snprintf(merges[r], n, "%s %s", sa, sb);
        }
        nx_gguf_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)merges, (uint64_t)d.n_merges);
        for (int32_t r = 0; r < d.n_merges; r++) free(merges[r]);
        free(merges);
    }
    int32_t bos = nx_tokenizer_bos_id(tok), eos = nx_tokenizer_eos_id(tok), pad = -1;
    const char *pt = config_token(cfg, "pad_token");
    if (pt) pad = nx_tokenizer_token_to_id(tok, pt);
    if (bos >= 0) nx_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) nx_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (d.unk_id >= 0) nx_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)d.unk_id);
    if (pad >= 0) nx_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cJSON_IsBool(ab) || d.adds_bos) nx_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : true);
    if (cJSON_IsBool(ae) || d.adds_eos) nx_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", cJSON_IsBool(ae) ? cJSON_IsTrue(ae) : true);
    if (spm) nx_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", d.add_prefix_space);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) nx_gguf_set_str(w, "tokenizer.chat_template", ct->valuestring);
    for (int32_t i = 0; i < n_vocab; i++) free(pads[i]);
    free(pads);
    free(tokens);
    free(types);
    free(scores);
    cJSON_Delete(cfg);
    return NX_OK;
}

/* ---- reading ------------------------------------------------------------------ */

/* A NUL-terminated copy of a file string that must be UTF-8 without NUL;
 * NULL (err set) otherwise. */
static char *text_of(const nx_gguf *g, nx_gguf_str s, const char *key, uint64_t i, nx_err *err) {
    if (memchr(s.s, 0, (size_t)s.len) || nx_st_utf8_invalid_at(s.s, (size_t)s.len) < s.len) {
        nx_fail(err, "%s: element %llu of '%s' is not UTF-8 text without NUL bytes", g->path,
                (unsigned long long)i, key);
        return NULL;
    }
    char *p = nx_xmalloc((size_t)s.len + 1);
    memcpy(p, s.s, (size_t)s.len);
    p[s.len] = 0;
    return p;
}

/* token string → first id, for the merges and splits */
typedef struct { char **tok; size_t *len; int32_t *slot; size_t mask; } vocab_map;

static void vmap_init(vocab_map *m, char **tok, int32_t n) {
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    m->tok = tok;
    m->slot = nx_xmalloc(sizeof *m->slot * cap);
    for (size_t i = 0; i < cap; i++) m->slot[i] = -1;
    m->mask = cap - 1;
    m->len = nx_xmalloc(sizeof *m->len * ((size_t)n + 1));
    for (int32_t i = 0; i < n; i++) {
        m->len[i] = strlen(tok[i]);
        size_t h = nx_fnv1a(tok[i], m->len[i], NX_FNV_INIT) & m->mask;
        while (m->slot[h] >= 0 && strcmp(tok[m->slot[h]], tok[i])) h = (h + 1) & m->mask;
        if (m->slot[h] < 0) m->slot[h] = i;
    }
}

static int32_t vmap_get(const vocab_map *m, const char *s, size_t n) {
    size_t h = nx_fnv1a(s, n, NX_FNV_INIT) & m->mask;
    while (m->slot[h] >= 0) {
        int32_t id = m->slot[h];
        if (m->len[id] == n && !memcmp(m->tok[id], s, n)) return id;
        h = (h + 1) & m->mask;
    }
    return -1;
}

typedef struct { float score; int32_t merged, left, right; } spm_merge;

static int by_score(const void *a, const void *b) {
    const spm_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->merged != y->merged) return x->merged < y->merged ? -1 : 1;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return x->right < y->right ? -1 : x->right > y->right;
}

/* merges of a "llama" (SentencePiece) vocabulary, derived from the scores */
static cJSON *spm_merges(char **tok, const int32_t *type, const nx_gguf_value *scores, int32_t n, const vocab_map *vm) {
    size_t cap = 1024, cnt = 0;
    spm_merge *list = nx_xmalloc(sizeof *list * cap);
    for (int32_t id = 0; id < n; id++) {
        if (type[id] != TT_NORMAL) continue;
        const char *s = tok[id];
        size_t len = vm->len[id];
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t l = vmap_get(vm, s, k), r = vmap_get(vm, s + k, len - k);
            if (l < 0 || r < 0 || type[l] != TT_NORMAL || type[r] != TT_NORMAL) continue;
            if (cnt == cap) {
                cap *= 2;
                list = realloc(list, sizeof *list * cap);
                NX_ASSERTM(list, "out of memory");
            }
            list[cnt++] = (spm_merge){(float)nx_gguf_value_f64(scores, (uint64_t)id), id, l, r};
        }
    }
    qsort(list, cnt, sizeof *list, by_score);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < cnt; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(tok[list[i].left]));
        cJSON_AddItemToArray(pair, cJSON_CreateString(tok[list[i].right]));
        cJSON_AddItemToArray(arr, pair);
    }
    free(list);
    return arr;
}

/* merges of a "gpt2" vocabulary: "a b" split at the first space after the
 * first byte (as llama.cpp splits them); pairs naming tokens the vocabulary
 * lacks can never apply and are dropped */
static int bpe_merges(const nx_gguf *g, const vocab_map *vm, cJSON **out, nx_err *err) {
    const nx_gguf_value *mv;
    if (nx_gguf_get_array(g, "tokenizer.ggml.merges", NX_GGUF_STRING, 0, &mv, err)) return NX_ERR;
    cJSON *arr = cJSON_CreateArray();
    char *buf = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < mv->n; i++) {
        nx_gguf_str s = mv->str[i];
        const char *sp = s.len > 1 ? memchr(s.s + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp) continue;
        size_t la = (size_t)(sp - s.s), lb = (size_t)s.len - la - 1;
        if (la + lb + 1 > cap) {
            cap = 2 * (la + lb + 1);
            buf = realloc(buf, cap);
            NX_ASSERTM(buf, "out of memory");
        }
        memcpy(buf, s.s, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t a = vmap_get(vm, s.s, la), b = vmap_get(vm, sp + 1, lb), m = vmap_get(vm, buf, la + lb);
        if (a < 0 || b < 0 || m < 0) continue;
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(vm->tok[a]));
        cJSON_AddItemToArray(pair, cJSON_CreateString(vm->tok[b]));
        cJSON_AddItemToArray(arr, pair);
    }
    free(buf);
    *out = arr;
    return NX_OK;
}

static cJSON *replace(const char *from, const char *to) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Replace");
    cJSON *p = cJSON_AddObjectToObject(o, "pattern");
    cJSON_AddStringToObject(p, "String", from);
    cJSON_AddStringToObject(o, "content", to);
    return o;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *bytelevel(bool use_regex) {
    cJSON *o = typed("ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", false);
    cJSON_AddBoolToObject(o, "trim_offsets", true);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

/* The pipeline around the model: normalizer, pre-tokenizer, decoder. */
static void put_pipeline(cJSON *root, bool spm, const char *regex, bool add_space) {
    if (spm) {
        cJSON *seq = typed("Sequence"), *arr = cJSON_AddArrayToObject(seq, "normalizers");
        if (add_space) {
            cJSON *p = typed("Prepend");
            cJSON_AddStringToObject(p, "prepend", SPACE_MARK);
            cJSON_AddItemToArray(arr, p);
        }
        cJSON_AddItemToArray(arr, replace(" ", SPACE_MARK));
        cJSON_AddItemToObject(root, "normalizer", seq);
        cJSON_AddNullToObject(root, "pre_tokenizer");
        cJSON *dec = typed("Sequence"), *da = cJSON_AddArrayToObject(dec, "decoders");
        cJSON_AddItemToArray(da, replace(SPACE_MARK, " "));
        cJSON_AddItemToArray(da, typed("ByteFallback"));
        cJSON_AddItemToArray(da, typed("Fuse"));
        if (add_space) {
            cJSON *st = typed("Strip");
            cJSON_AddStringToObject(st, "content", " ");
            cJSON_AddNumberToObject(st, "start", 1);
            cJSON_AddNumberToObject(st, "stop", 0);
            cJSON_AddItemToArray(da, st);
        }
        cJSON_AddNullToObject(root, "post_processor");
        cJSON_AddItemToObject(root, "decoder", dec);
        return;
    }
    cJSON_AddNullToObject(root, "normalizer");
    if (regex) {
        cJSON *seq = typed("Sequence"), *arr = cJSON_AddArrayToObject(seq, "pretokenizers");
        cJSON *split = typed("Split");
        cJSON *p = cJSON_AddObjectToObject(split, "pattern");
        cJSON_AddStringToObject(p, "Regex", regex);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddBoolToObject(split, "invert", false);
        cJSON_AddItemToArray(arr, split);
        cJSON_AddItemToArray(arr, bytelevel(false));
        cJSON_AddItemToObject(root, "pre_tokenizer", seq);
    } else cJSON_AddItemToObject(root, "pre_tokenizer", bytelevel(true));
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", bytelevel(true));
}

static char *print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    NX_ASSERTM(s, "out of memory");
    return s;
}

int nx_gguf_tokenizer_json(const nx_gguf *g, char **tokenizer_json, char **config_json, nx_err *err) {
    *tokenizer_json = *config_json = NULL;
    nx_gguf_str model;
    if (nx_gguf_get_str(g, "tokenizer.ggml.model", true, &model, err))
        return nx_fail_prefix(err, "no tokenizer metadata (generate and tokenize need one)");
    bool spm = model.len == 5 && !memcmp(model.s, "llama", 5);
    if (!spm && !(model.len == 4 && !memcmp(model.s, "gpt2", 4)))
        return nx_fail(err, "%s: tokenizer.ggml.model is '%.*s'; nexus reads \"gpt2\" (byte-level BPE) and "
                            "\"llama\" (SentencePiece-style BPE)", g->path, (int)(model.len < 40 ? model.len : 40),
                       model.s);
    size_t pi = N_PRES;
    if (!spm) {
        nx_gguf_str pre = {"", 0};
        if (nx_gguf_get_str(g, "tokenizer.ggml.pre", false, &pre, err)) return NX_ERR;
        for (size_t i = 0; i < N_PRES; i++)
            if (strlen(PRES[i].name) == pre.len && !memcmp(PRES[i].name, pre.s, pre.len)) pi = i;
        if (pi == N_PRES)
            return nx_fail(err, "%s: tokenizer.ggml.pre is '%.*s'; nexus knows the pre-tokenizers llama-bpe (llama3, "
                                "llama-v3), qwen2 (deepseek-r1-qwen) and gpt-2", g->path,
                           (int)(pre.len < 40 ? pre.len : 40), pre.s);
    }
    const nx_gguf_value *tv, *ttv = NULL, *sv = NULL;
    if (nx_gguf_get_array(g, "tokenizer.ggml.tokens", NX_GGUF_STRING, 1, &tv, err)) return NX_ERR;
    if (tv->n > (1u << 24)) return nx_fail(err, "%s: tokenizer.ggml.tokens has %llu tokens, too many", g->path,
                                           (unsigned long long)tv->n);
    int32_t n = (int32_t)tv->n;
    if (nx_gguf_find(g, "tokenizer.ggml.token_type") &&
        nx_gguf_get_array(g, "tokenizer.ggml.token_type", NX_GGUF_I64, tv->n, &ttv, err))
        return NX_ERR;
    if (spm && nx_gguf_get_array(g, "tokenizer.ggml.scores", NX_GGUF_F64, tv->n, &sv, err)) return NX_ERR;
    char **tok = nx_xcalloc((size_t)n, sizeof *tok);
    int32_t *type = nx_xmalloc(sizeof *type * (size_t)n);
    int rc = NX_OK;
    for (int32_t i = 0; i < n && rc == NX_OK; i++) {
        if (!(tok[i] = text_of(g, tv->str[i], "tokenizer.ggml.tokens", (uint64_t)i, err))) rc = NX_ERR;
        else if (!tok[i][0]) { /* llama.cpp's name for an empty token */
            free(tok[i]);
            tok[i] = nx_xmalloc(32);
            snprintf(tok[i], 32, "[EMPTY_%d]", i);
        }
        type[i] = ttv ? (int32_t)nx_gguf_value_int(ttv, (uint64_t)i) : TT_NORMAL;
    }
    int64_t bos = -1, eos = -1, unk = spm ? 0 : -1;
    bool add_bos = spm ? true : PRES[pi].add_bos, add_eos = false, add_space = true; /* llama.cpp's defaults */
    if (rc == NX_OK &&
        (nx_gguf_get_int(g, "tokenizer.ggml.bos_token_id", false, 0, n - 1, &bos, err) ||
         nx_gguf_get_int(g, "tokenizer.ggml.eos_token_id", false, 0, n - 1, &eos, err) ||
         nx_gguf_get_int(g, "tokenizer.ggml.unknown_token_id", false, 0, n - 1, &unk, err) ||
         nx_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &add_bos, err) ||
         nx_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", false, &add_eos, err) ||
         nx_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &add_space, err)))
        rc = NX_ERR;
    if (rc) {
        for (int32_t i = 0; i < n; i++) free(tok[i]);
        free(tok);
        free(type);
        return NX_ERR;
    }
    vocab_map vm;
    vmap_init(&vm, tok, n);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t i = 0; i < n; i++) {
        bool special = type[i] == TT_CONTROL || type[i] == TT_UNKNOWN || (spm && i == unk);
        if (!special && type[i] != TT_USER) continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", tok[i]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", false);
        cJSON_AddBoolToObject(a, "rstrip", false);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddBoolToObject(a, "special", special);
        cJSON_AddItemToArray(added, a);
    }
    put_pipeline(root, spm, spm ? NULL : PRES[pi].regex, add_space);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    if (spm && unk >= 0) cJSON_AddStringToObject(m, "unk_token", tok[unk]);
    else cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddBoolToObject(m, "fuse_unk", spm);
    cJSON_AddBoolToObject(m, "byte_fallback", spm);
    cJSON_AddBoolToObject(m, "ignore_merges", !spm && PRES[pi].ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int32_t i = 0; i < n; i++)
        if (vmap_get(&vm, tok[i], vm.len[i]) == i) cJSON_AddNumberToObject(vocab, tok[i], i);
    cJSON *merges = NULL;
    if (spm) merges = spm_merges(tok, type, sv, n, &vm);
    else if (bpe_merges(g, &vm, &merges, err)) rc = NX_ERR;
    if (merges) cJSON_AddItemToObject(m, "merges", merges);
    if (rc == NX_OK) {
        *tokenizer_json = print_json(root);
        cJSON *cfg = cJSON_CreateObject();
        if (bos >= 0) cJSON_AddStringToObject(cfg, "bos_token", tok[bos]);
        if (eos >= 0) cJSON_AddStringToObject(cfg, "eos_token", tok[eos]);
        cJSON_AddBoolToObject(cfg, "add_bos_token", add_bos && bos >= 0);
        cJSON_AddBoolToObject(cfg, "add_eos_token", add_eos && eos >= 0);
        const nx_gguf_kv *ct = nx_gguf_find(g, "tokenizer.chat_template");
        char *t = ct && ct->v.type == NX_GGUF_STRING ? text_of(g, ct->v.str[0], ct->key, 0, err) : NULL;
        if (t) cJSON_AddStringToObject(cfg, "chat_template", t); /* a template that is not text is left out */
        free(t);
        cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");
        *config_json = print_json(cfg);
        cJSON_Delete(cfg);
    }
    cJSON_Delete(root);
    free(vm.slot);
    free(vm.len);
    for (int32_t i = 0; i < n; i++) free(tok[i]);
    free(tok);
    free(type);
    return rc;
}

int nx_gguf_load_tokenizer(const nx_gguf *g, nx_tokenizer **tok, nx_err *err) {
    *tok = NULL;
    char *js, *cfg;
    if (nx_gguf_tokenizer_json(g, &js, &cfg, err)) return NX_ERR;
    char name[4200];
    snprintf(name, sizeof name, "%s (tokenizer metadata)", g->path);
    int rc = nx_tokenizer_load_texts(tok, js, strlen(js), cfg, strlen(cfg), name, err);
    free(js);
    free(cfg);
    return rc;
}
