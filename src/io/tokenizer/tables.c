/* tables.c — the tokenizer's two hash maps, built once at load and read-only
 * afterwards (so lookups need no lock):
 *
 *   str_id_map  token string → id (the model vocabulary; all tokens). Keys
 *               are hashed with nx_fnv1a and point to strings the tokenizer
 *               owns elsewhere; the map never copies or frees them.
 *   merge_map   (left id, right id) → (rank, merged id): BPE's merge table,
 *               the lookup at the heart of the merge loop. A 64-bit pair key
 *               hashed by one multiplication (Fibonacci hashing).
 *
 * Both use open addressing with linear probing at a load factor of at most
 * 1/2, sized once from the number of entries the JSON holds; no resizing,
 * no deletion. The lookups are inline in internal.h (they run per character
 * and per symbol pair while encoding); here is what builds the maps. */
#include "internal.h"

/* The smallest power of two, at least 16, that holds `count` entries at load
 * factor 1/2. */
static size_t table_capacity(size_t count) {
    size_t c = 16;
    while (c < 2 * count + 2) c *= 2;
    return c;
}

void tok_str_id_map_init(str_id_map *m, size_t count) {
    size_t c = table_capacity(count);
    m->entries = nx_xcalloc(c, sizeof(str_id_entry));
    m->mask = c - 1;
}

void tok_str_id_map_set(str_id_map *m, const char *key, size_t len, int32_t id) {
    str_id_entry *e = str_id_map_slot(m, key, len);
    *e = (str_id_entry){key, (uint32_t)len, id};
}

void tok_str_id_map_add(str_id_map *m, const char *key, size_t len, int32_t id) {
    str_id_entry *e = str_id_map_slot(m, key, len);
    if (!e->key) *e = (str_id_entry){key, (uint32_t)len, id};
}

void tok_merge_map_init(merge_map *m, size_t count) {
    size_t c = table_capacity(count);
    m->entries = nx_xmalloc(c * sizeof(merge_entry));
    for (size_t i = 0; i < c; i++) m->entries[i].rank = -1;
    m->mask = c - 1;
}

void tok_merge_map_set(merge_map *m, int32_t left, int32_t right, int32_t rank, int32_t merged_id) {
    uint64_t pair = merge_pair(left, right);
    *merge_map_slot(m, pair) = (merge_entry){pair, rank, merged_id};
}
