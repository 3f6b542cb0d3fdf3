/* golden_tokenizer.c — every case of ../shared/tokenizers/<style>/golden_encodings.json
 * (produced by the Hugging Face `tokenizers` library) must encode to exactly
 * the listed ids (no special tokens added, as in the file) and decode back to
 * exactly the listed text. Three styles: GPT-2 byte-level, Llama-3 split
 * regex + byte-level, SentencePiece-style (Prepend/Replace + byte fallback). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/fsutil.h"
#include "nexus/tokenizer.h"
#include "nxtest.h"

static const char *ROOT = "../shared/tokenizers";

static void check_style(const char *style) {
    char dir[512], tj[600], path[600];
    snprintf(dir, sizeof dir, "%s/%s", ROOT, style);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    snprintf(path, sizeof path, "%s/golden_encodings.json", dir);
    if (!NEED(tj, path)) return;
    nx_err err;
    nx_tokenizer *t;
    if (nx_tokenizer_load(&t, dir, &err)) { CHECKF(0, "%s", err.msg); return; }
    size_t len;
    char *js = nx_read_file(path, 1u << 30, &len, &err);
    CHECKF(js, "%s", err.msg);
    cJSON *g = js ? cJSON_ParseWithLength(js, len) : NULL;
    CHECKF(!js || g, "%s: not valid JSON", path);
    int ncase = 0, bad = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, g) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *want_dec = cJSON_GetObjectItem(c, "decoded")->valuestring;
        cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids;
        size_t n;
        ncase++;
        if (nx_tokenizer_encode(t, text, strlen(text), false, &ids, &n, &err)) {
            CHECKF(0, "%s case %d: %s", style, ncase, err.msg);
            bad++;
            continue;
        }
        bool same = (int)n == cJSON_GetArraySize(want);
        for (size_t i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        if (!same) {
            bad++;
            fprintf(stderr, "  %s case %d %.40s: got", style, ncase, text);
            for (size_t i = 0; i < n && i < 30; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n    want");
            for (int i = 0; i < cJSON_GetArraySize(want) && i < 30; i++) fprintf(stderr, " %d", cJSON_GetArrayItem(want, i)->valueint);
            fprintf(stderr, "\n");
        }
        CHECK(same);
        char *dec;
        if (nx_tokenizer_decode(t, ids, n, false, &dec, &err) == NX_OK) {
            CHECKF(!strcmp(dec, want_dec), "%s case %d decode: got \"%.60s\" want \"%.60s\"", style, ncase, dec, want_dec);
            free(dec);
        } else CHECKF(0, "%s", err.msg);
        free(ids);
    }
    printf("  %s: %d cases, %d mismatched\n", style, ncase, bad);
    CHECK(ncase > 0);
    cJSON_Delete(g);
    free(js);
    nx_tokenizer_free(t);
}

TEST(golden_bytelevel_gpt2) { check_style("bytelevel-gpt2"); }
TEST(golden_bytelevel_llama3) { check_style("bytelevel-llama3"); }
TEST(golden_sentencepiece_llama2) { check_style("sentencepiece-llama2"); }
