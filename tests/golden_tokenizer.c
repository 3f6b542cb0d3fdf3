/* golden_tokenizer.c — every case of ../shared/tokenizers/<style>/golden_encodings.json
 * (produced by the Hugging Face `tokenizers` library) must encode to exactly
 * the listed ids (no special tokens added, as in the file) and decode back to
 * exactly the listed text. Three styles: GPT-2 byte-level, Llama-3 split
 * regex + byte-level, SentencePiece-style (Prepend/Replace + byte fallback). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/tokenizer.h"
#include "nxtest.h"

static const char *ROOT = "../shared/tokenizers";

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    p[*len] = 0;
    fclose(f);
    return p;
}

static void check_style(const char *style) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ROOT, style);
    nx_err err;
    nx_tokenizer *t;
    if (nx_tokenizer_load(&t, path, &err)) { CHECKF(0, "%s", err.msg); return; }
    snprintf(path, sizeof path, "%s/%s/golden_encodings.json", ROOT, style);
    size_t len;
    char *js = slurp(path, &len);
    CHECKF(js, "cannot read %s", path);
    cJSON *g = js ? cJSON_Parse(js) : NULL;
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
