/* fuzz_tokenizer.c — tokenizer.json (io/tokenizer/) loaded from memory,
 * and for every tokenizer it accepts: fixed texts (ASCII, spaces, digits,
 * multi-byte UTF-8, an added-token look-alike, invalid UTF-8) and the
 * input's own first bytes encoded with and without special tokens, and
 * decoded back. Encoding is the loader's other half: tables built from a
 * hostile file are only proven safe when they are used. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nexus/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

static void roundtrip(const nx_tokenizer *t, const char *text, size_t len) {
    nx_err err;
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (nx_tokenizer_encode(t, text, len, special, &ids, &n, &err)) continue;
        for (size_t i = 0; i < n; i++) NX_ASSERT(ids[i] >= 0 && ids[i] < nx_tokenizer_vocab_size(t));
        char *back = NULL;
        if (nx_tokenizer_decode(t, ids, n, special, &back, &err) == NX_OK) free(back);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nx_tokenizer *t;
    nx_err err;
    if (nx_tokenizer_load_json(&t, (const char *)data, size, "fuzz/tokenizer.json", &err)) return 0;
    static const char *const texts[] = {"hello world", "  the  cat\n\tsat ", "12345 3.14", "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
                                        "<s>x</s><|endoftext|>", "a\xff\xfe", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) roundtrip(t, texts[i], strlen(texts[i]));
    roundtrip(t, (const char *)data, size < 256 ? size : 256);
    (void)nx_tokenizer_fingerprint(t);
    nx_tokenizer_free(t);
    return 0;
}
