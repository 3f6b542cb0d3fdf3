/* fuzz_gguf.c — libFuzzer entry for the GGUF reader and what reads its
 * metadata.
 *
 * The input is a whole file: nx_gguf_parse validates it; when it passes,
 * every value and every tensor byte range is touched (the reader promised
 * they are in bounds), and the input goes on through the readers of the
 * metadata — the model config (nx_gguf_model_config) and the tokenizer
 * (nx_gguf_tokenizer_json, then nx_tokenizer_load_texts on the result) —
 * since those trust what the parser accepted. Any crash, leak or UB report
 * from ASan/UBSan is a bug; a clean NX_ERR is fine. Seeds:
 * tests/fuzz/gguf/ (README there). Build and run: FUZZ_SECONDS=600 make fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nx_gguf g;
    nx_err err;
    if (nx_gguf_parse(&g, data, size, "fuzz.gguf", &err) != NX_OK) return 0;
    volatile uint64_t sink = 0;
    for (int i = 0; i < g.nkv; i++) {
        const nx_gguf_value *v = &g.kv[i].v;
        for (uint64_t k = 0; k < v->n; k++) {
            if (v->elem == NX_GGUF_STRING) sink += v->str[k].len ? (uint8_t)v->str[k].s[v->str[k].len - 1] : 0;
            else {
                double d = nx_gguf_value_f64(v, k);
                uint64_t bits;
                memcpy(&bits, &d, 8);
                sink += (uint64_t)nx_gguf_value_int(v, k) + bits;
            }
        }
    }
    for (int i = 0; i < g.nt; i++) {
        const uint8_t *p = g.t[i].data;
        NX_ASSERT(p >= data && p + g.t[i].nbytes <= data + size && g.t[i].nbytes > 0);
        sink += p[0] + p[g.t[i].nbytes - 1];
    }
    nx_model_config cfg;
    nx_gguf_model_config(&g, &cfg, &err);
    char *js = NULL, *tc = NULL;
    if (nx_gguf_tokenizer_json(&g, &js, &tc, &err) == NX_OK) {
        nx_tokenizer *t = NULL;
        if (nx_tokenizer_load_texts(&t, js, strlen(js), tc, strlen(tc), "fuzz", &err) == NX_OK) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (nx_tokenizer_encode(t, "Hello world 123", 15, true, &ids, &n, &err) == NX_OK) sink += n;
            free(ids);
            nx_tokenizer_free(t);
        }
        free(js);
        free(tc);
    }
    (void)sink;
    nx_gguf_close(&g);
    return 0;
}
