/* fuzz_jsonl.c — the document reader (io/dataset.c): the input is a file,
 * read as JSONL (.jsonl) or plain text, gzipped or not (gzip is found from
 * the content), tokenized with the byte-level fixture tokenizer, with and
 * without skip_bad_lines. The first byte picks the mode, the rest is the
 * file. Every id must be in the vocabulary and every document end in
 * order. */
#include <stdlib.h>

#include "fuzz.h"
#include "nexus/dataset.h"

static nx_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    nx_err err;
    if (nx_tokenizer_load(&tok, "tests/fixtures/tok-bytelevel", &err)) {
        fprintf(stderr, "fuzz_jsonl: %s (run from the repository root)\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool jsonl = data[0] & 1, skip = data[0] & 2;
    const char *path = fuzz_file(data + 1, size - 1, jsonl ? ".jsonl" : ".txt");
    nx_docs_opts o = {.field = (data[0] & 4) ? "body" : "text", .eos_id = 265, .skip_bad_lines = skip, .threads = 1};
    nx_token_stream s = {0};
    nx_docs_stats st;
    nx_err err;
    const char *paths[1] = {path};
    if (nx_dataset_tokenize(tok, paths, 1, &o, &s, &st, &err) == NX_OK) {
        for (size_t i = 0; i < s.n; i++) NX_ASSERT(s.ids[i] >= 0 && s.ids[i] < nx_tokenizer_vocab_size(tok));
        for (size_t d = 0; d < s.n_docs; d++) NX_ASSERT(s.doc_end[d] <= s.n && (d == 0 || s.doc_end[d] >= s.doc_end[d - 1]));
    }
    nx_token_stream_free(&s);
    return 0;
}
