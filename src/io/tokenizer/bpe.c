/* bpe.c — the BPE model: turns one pre-tokenized word into ids, exactly as
 * HF's BPE::merge_word and Word::merge_all do.
 *
 * Loading: the options of tokenizer.json's "model" (unk_token, fuse_unk,
 * byte_fallback, ignore_merges, continuing_subword_prefix,
 * end_of_word_suffix) and the merges, in either JSON form ("a b" or
 * ["a", "b"]). A merge's rank is its position; a pair listed twice keeps the
 * later rank, as HF's HashMap insert does. Every token a merge names, and
 * the token it produces, must be in model.vocab, or the load fails naming
 * the merge.
 *
 * Encoding one word:
 *   1. one symbol per character, looked up in the vocabulary (with the
 *      subword prefix on all but the first, the word suffix on the last);
 *      an unknown character becomes its <0xXX> byte tokens (byte_fallback),
 *      or unk (consecutive unks fused with fuse_unk), or is dropped;
 *   2. merges by lowest rank, leftmost on ties: a binary heap of candidate
 *      merges over a doubly linked list of symbols. A popped candidate whose
 *      symbols have changed since it was pushed is stale and skipped.
 *
 * Real text repeats words constantly, so words of up to WORD_CACHE_MAX_LEN
 * bytes are cached: 64 shards of 256 direct-mapped slots, each shard behind
 * its own mutex, indexed by the word's FNV-1a hash (top 6 bits: shard, low 8
 * bits: slot). The cache makes encoding several times faster, is bounded,
 * and is the only state that changes after load. */
#include <pthread.h>
#include <stdio.h>

#include "internal.h"

/* ---- loading ------------------------------------------------------------- */

/* Splits merge `x` (at position rank) into its two token strings. */
static int merge_tokens(const cJSON *x, int rank, load_ctx *L, const char **a, size_t *la, const char **b,
                        size_t *lb) {
    if (cJSON_IsString(x)) { /* "a b" */
        *a = x->valuestring;
        const char *sp = strchr(*a, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == *a || !sp[1])
            return nx_fail(L->err, "%s: model.merges[%d] \"%s\" is not two tokens separated by one space",
                           L->name, rank, *a);
        *la = (size_t)(sp - *a);
        *b = sp + 1;
        *lb = strlen(*b);
        return NX_OK;
    }
    if (cJSON_GetArraySize(x) == 2 && cJSON_IsString(cJSON_GetArrayItem(x, 0)) &&
        cJSON_IsString(cJSON_GetArrayItem(x, 1))) { /* ["a", "b"] */
        *a = cJSON_GetArrayItem(x, 0)->valuestring;
        *la = strlen(*a);
        *b = cJSON_GetArrayItem(x, 1)->valuestring;
        *lb = strlen(*b);
        return NX_OK;
    }
    return nx_fail(L->err, "%s: model.merges[%d] must be \"a b\" or [\"a\", \"b\"]", L->name, rank);
}

static int load_merges(nx_tokenizer *t, const cJSON *merges, load_ctx *L, uint64_t *fingerprint) {
    tok_merge_map_init(&t->merges, (size_t)cJSON_GetArraySize(merges));
    t->merge_list = nx_xmalloc(sizeof(int32_t) * 2 * ((size_t)cJSON_GetArraySize(merges) + 1));
    uint64_t fp = *fingerprint;
    int rank = 0;
    byte_buf merged = {0};
    const cJSON *x;
    cJSON_ArrayForEach(x, merges) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (merge_tokens(x, rank, L, &a, &la, &b, &lb)) { free(merged.data); return NX_ERR; }
        int32_t ia = str_id_map_get(&t->model_vocab, a, la), ib = str_id_map_get(&t->model_vocab, b, lb);
        /* the merged token: a, then b without its continuing_subword_prefix */
        merged.len = 0;
        buf_append(&merged, a, la);
        size_t skip = (t->subword_prefix_len && lb >= t->subword_prefix_len &&
                       !memcmp(b, t->subword_prefix, t->subword_prefix_len)) ? t->subword_prefix_len : 0;
        buf_append(&merged, b + skip, lb - skip);
        int32_t im = str_id_map_get(&t->model_vocab, merged.data, merged.len);
        if (ia < 0 || ib < 0 || im < 0) {
            char missing[256];
            if (ia < 0) snprintf(missing, sizeof missing, "%.*s", (int)la, a);
            else if (ib < 0) snprintf(missing, sizeof missing, "%.*s", (int)lb, b);
            else snprintf(missing, sizeof missing, "%s", merged.data);
            nx_fail(L->err, "%s: model.merges[%d] (\"%.*s\" + \"%.*s\"): token \"%s\" is not in model.vocab",
                    L->name, rank, (int)la, a, (int)lb, b, missing);
            free(merged.data);
            return NX_ERR;
        }
        tok_merge_map_set(&t->merges, ia, ib, rank, im);
        t->merge_list[2 * rank] = ia;
        t->merge_list[2 * rank + 1] = ib;
        t->n_merges = rank + 1;
        fp = nx_fnv1a(&ia, 4, nx_fnv1a(&ib, 4, fp));
        rank++;
    }
    free(merged.data);
    *fingerprint = fp;
    return NX_OK;
}

int tok_bpe_load(nx_tokenizer *t, const cJSON *model, load_ctx *L, uint64_t *fingerprint) {
    t->fuse_unk = tok_json_bool(model, "fuse_unk", false);
    t->byte_fallback = tok_json_bool(model, "byte_fallback", false);
    t->ignore_merges = tok_json_bool(model, "ignore_merges", false);
    const char *s;
    if ((s = tok_json_string(model, "continuing_subword_prefix")))
        t->subword_prefix = tok_strdup_len(s, &t->subword_prefix_len);
    if ((s = tok_json_string(model, "end_of_word_suffix")))
        t->word_suffix = tok_strdup_len(s, &t->word_suffix_len);
    t->unk_id = -1;
    if ((s = tok_json_string(model, "unk_token"))) {
        t->unk_id = str_id_map_get(&t->model_vocab, s, strlen(s));
        if (t->unk_id < 0) return nx_fail(L->err, "%s: model.unk_token \"%s\" is not in model.vocab", L->name, s);
    }
    return load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), L, fingerprint);
}

/* ---- the word cache ------------------------------------------------------- */

#define WORD_CACHE_SHARDS 64  /* indexed by the hash's top 6 bits */
#define WORD_CACHE_SLOTS 256  /* per shard, indexed by the hash's low 8 bits */
#define WORD_CACHE_MAX_LEN 32 /* longest word, and most ids, a slot holds */

typedef struct {
    uint64_t hash;
    uint8_t word_len, n_ids; /* word_len 0: empty slot */
    char word[WORD_CACHE_MAX_LEN];
    int32_t ids[WORD_CACHE_MAX_LEN];
} word_cache_slot;
typedef struct { pthread_mutex_t lock; word_cache_slot slot[WORD_CACHE_SLOTS]; } word_cache_shard;
struct word_cache { word_cache_shard shard[WORD_CACHE_SHARDS]; };

struct word_cache *tok_word_cache_new(void) {
    struct word_cache *c = nx_xcalloc(1, sizeof *c);
    for (int i = 0; i < WORD_CACHE_SHARDS; i++) pthread_mutex_init(&c->shard[i].lock, NULL);
    return c;
}

void tok_word_cache_free(struct word_cache *c) {
    if (!c) return;
    for (int i = 0; i < WORD_CACHE_SHARDS; i++) pthread_mutex_destroy(&c->shard[i].lock);
    free(c);
}

/* ---- merging ---------------------------------------------------------------- */

/* A symbol of the word being merged: a doubly linked list in one array
 * (prev/next are indices, -1 at the ends); len 0 marks a symbol merged into
 * its left neighbour. */
struct bpe_symbol { int32_t id, prev, next; uint32_t len; };
/* A merge that may apply at symbol pos, producing merged_id. */
struct merge_candidate { int32_t rank, pos, merged_id; };
typedef struct bpe_symbol bpe_symbol;
typedef struct merge_candidate merge_candidate;

/* Heap order: lower rank first, then leftmost. */
static bool candidate_before(const merge_candidate *x, const merge_candidate *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(encoder *e, size_t *len, merge_candidate c) {
    if (*len == e->heap_cap) e->heap = tok_grow(e->heap, &e->heap_cap, sizeof(merge_candidate), 64);
    merge_candidate *h = e->heap;
    size_t i = (*len)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_before(&c, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static merge_candidate heap_pop(encoder *e, size_t *len) {
    merge_candidate *h = e->heap, top = h[0], last = h[--(*len)];
    size_t i = 0, n = *len;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        merge_candidate best = last;
        if (l < n && candidate_before(&h[l], &best)) { m = l; best = h[l]; }
        if (r < n && candidate_before(&h[r], &best)) { m = r; best = h[r]; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (n) h[i] = last;
    return top;
}

static void symbol_append(encoder *e, size_t *n, int32_t id, uint32_t len) {
    if (*n == e->symbols_cap) e->symbols = tok_grow(e->symbols, &e->symbols_cap, sizeof(bpe_symbol), 64);
    e->symbols[*n] = (bpe_symbol){id, (int32_t)*n - 1, -1, len};
    if (*n) e->symbols[*n - 1].next = (int32_t)*n;
    (*n)++;
}

/* Pushes the merge of the symbols at left and at its next, if there is one. */
static void push_candidate(encoder *e, size_t *heap_len, int32_t left) {
    const bpe_symbol *y = e->symbols;
    const merge_entry *m = merge_map_find(&e->t->merges, y[left].id, y[y[left].next].id);
    if (m) heap_push(e, heap_len, (merge_candidate){m->rank, left, m->merged_id});
}

/* BPE::merge_word, step 1: the word's characters as symbols in e->symbols;
 * returns their count. */
static size_t word_to_symbols(encoder *e, const char *w, size_t n) {
    const nx_tokenizer *t = e->t;
    size_t ns = 0;
    int32_t unk = -1; /* a pending (maybe fused) unk symbol */
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int cl = utf8_decode((const uint8_t *)w, n, i, &cp);
        NX_ASSERT(cl > 0);
        const char *s = w + i;
        size_t sl = (size_t)cl;
        if ((i > 0 && t->subword_prefix_len) || (i + sl == n && t->word_suffix_len)) {
            e->bpe_unit.len = 0;
            if (i > 0 && t->subword_prefix_len) buf_append(&e->bpe_unit, t->subword_prefix, t->subword_prefix_len);
            buf_append(&e->bpe_unit, s, sl);
            if (i + sl == n && t->word_suffix_len) buf_append(&e->bpe_unit, t->word_suffix, t->word_suffix_len);
            s = e->bpe_unit.data;
            sl = e->bpe_unit.len;
        }
        int32_t id = str_id_map_get(&t->model_vocab, s, sl);
        if (id >= 0) {
            if (unk >= 0) { symbol_append(e, &ns, unk, unk_len); unk = -1; }
            symbol_append(e, &ns, id, (uint32_t)cl);
        } else {
            bool done = false;
            if (t->byte_fallback) { /* all of the unit's bytes as <0xXX>, or none */
                int32_t byte_ids[16];
                bool all = sl <= 16;
                for (size_t k = 0; all && k < sl; k++) {
                    char name[8];
                    snprintf(name, sizeof name, "<0x%02X>", (uint8_t)s[k]);
                    all = (byte_ids[k] = str_id_map_get(&t->model_vocab, name, 6)) >= 0;
                }
                if (all) {
                    for (size_t k = 0; k < sl; k++) symbol_append(e, &ns, byte_ids[k], 1);
                    done = true;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) unk_len += (uint32_t)cl;
                else {
                    if (unk >= 0) symbol_append(e, &ns, unk, unk_len);
                    unk = t->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
            /* no unk token and no byte fallback: HF drops the character */
        }
        i += (size_t)cl;
    }
    if (unk >= 0) symbol_append(e, &ns, unk, unk_len);
    return ns;
}

/* Word::merge_all over the ns symbols in e->symbols. */
static void merge_symbols(encoder *e, size_t ns) {
    const merge_map *merges = &e->t->merges;
    size_t heap_len = 0;
    for (size_t i = 0; i + 1 < ns; i++) push_candidate(e, &heap_len, (int32_t)i);
    while (heap_len) {
        merge_candidate top = heap_pop(e, &heap_len);
        bpe_symbol *y = e->symbols, *cur = &y[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        bpe_symbol right = y[cur->next];
        const merge_entry *m = merge_map_find(merges, cur->id, right.id);
        if (!m || m->merged_id != top.merged_id) continue; /* stale */
        int32_t right_pos = cur->next;
        cur->id = top.merged_id;
        cur->len += right.len;
        cur->next = right.next;
        y[right_pos].len = 0;
        if (right.next >= 0) y[right.next].prev = top.pos;
        /* push_candidate may grow the heap but never moves the symbols */
        if (cur->prev >= 0) push_candidate(e, &heap_len, cur->prev);
        if (cur->next >= 0) push_candidate(e, &heap_len, top.pos);
    }
}

int tok_bpe_encode_word(encoder *e, const char *w, size_t n) {
    const nx_tokenizer *t = e->t;
    uint64_t h = 0;
    word_cache_shard *shard = NULL;
    word_cache_slot *slot = NULL;
    if (n <= WORD_CACHE_MAX_LEN) {
        h = nx_fnv1a(w, n, NX_FNV_INIT);
        shard = &t->word_cache->shard[h >> 58];
        slot = &shard->slot[h & (WORD_CACHE_SLOTS - 1)];
        pthread_mutex_lock(&shard->lock);
        if (slot->word_len == n && slot->hash == h && !memcmp(slot->word, w, n)) {
            int32_t ids[WORD_CACHE_MAX_LEN];
            int k = slot->n_ids;
            if (k) memcpy(ids, slot->ids, (size_t)k * sizeof(int32_t));
            pthread_mutex_unlock(&shard->lock);
            for (int i = 0; i < k; i++) encoder_emit(e, ids[i]);
            return NX_OK;
        }
        pthread_mutex_unlock(&shard->lock);
    }
    size_t first = *e->n_ids;
    int32_t whole;
    if (t->ignore_merges && (whole = str_id_map_get(&t->model_vocab, w, n)) >= 0) {
        encoder_emit(e, whole);
    } else {
        size_t ns = word_to_symbols(e, w, n);
        merge_symbols(e, ns);
        for (int32_t i = ns ? 0 : -1; i >= 0; i = e->symbols[i].next) encoder_emit(e, e->symbols[i].id);
    }
    size_t k = *e->n_ids - first;
    if (slot && k <= WORD_CACHE_MAX_LEN) {
        pthread_mutex_lock(&shard->lock);
        slot->hash = h;
        slot->word_len = (uint8_t)n;
        slot->n_ids = (uint8_t)k;
        memcpy(slot->word, w, n);
        if (k) memcpy(slot->ids, *e->ids + first, k * sizeof(int32_t)); /* a word of no ids: *e->ids may be NULL */
        pthread_mutex_unlock(&shard->lock);
    }
    return NX_OK;
}
