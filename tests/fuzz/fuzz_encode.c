/* fuzz_encode.c — any bytes as text through the three fixture tokenizers
 * (byte-level BPE, split regex + template, SentencePiece-style with byte
 * fallback), with and without special tokens, decoded back; the text is
 * the fuzzed input, the tokenizers are fixed (tests/fixtures). */
#include <stdlib.h>

#include "fuzz.h"
#include "nexus/tokenizer.h"

static nx_tokenizer *tok[3];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dirs[3] = {"tests/fixtures/tok-bytelevel", "tests/fixtures/tok-split", "tests/fixtures/tok-spm"};
    nx_err err;
    for (int i = 0; i < 3; i++)
        if (nx_tokenizer_load(&tok[i], dirs[i], &err)) {
            fprintf(stderr, "fuzz_encode: %s (run from the repository root)\n", err.msg);
            exit(1);
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nx_err err;
    for (int i = 0; i < 3; i++)
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (nx_tokenizer_encode(tok[i], (const char *)data, size, special, &ids, &n, &err)) continue;
            char *back = NULL;
            if (nx_tokenizer_decode(tok[i], ids, n, !special, &back, &err) == NX_OK) free(back);
            free(ids);
        }
    return 0;
}
