/* logits_dump.c — nexus's f32 logits for the device machine's transformers
 * check (tests/device/transformers_logits.py): encodes the first N
 * documents of a JSONL file ({"text": ...}) with the model's tokenizer,
 * runs each document's first T tokens through nx_model_forward on the CPU
 * backend in f32, and writes ids.bin (N×T int32) and logits.bin (N×T×V f32).
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Iinclude -I/usr/include/cjson \
 *      tests/device/logits_dump.c build/libnexus.a -o build/logits_dump \
 *      $(the link flags of `nexus` in the Makefile)
 *   build/logits_dump MODEL data.jsonl N T OUTDIR */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/fsutil.h"
#include "nexus/modelfile.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: logits_dump MODEL data.jsonl N T OUTDIR\n");
        return 2;
    }
    int N = atoi(argv[3]), T = atoi(argv[4]);
    nx_err err;
    nx_model m;
    nx_tokenizer *tok;
    if (nx_modelfile_load(argv[1], NX_F32, nx_backend_cpu(), &m, &tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    FILE *in = fopen(argv[2], "r");
    char path[4096];
    snprintf(path, sizeof path, "%s/ids.bin", argv[5]);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/logits.bin", argv[5]);
    FILE *fl = fopen(path, "wb");
    if (!in || !fi || !fl) return 1;
    nx_acts a;
    if (nx_acts_init(&a, &m, 1, T, NX_ACTS_INFER, &err)) return 1;
    char *line = NULL;
    size_t cap = 0;
    int done = 0;
    while (done < N && getline(&line, &cap, in) > 0) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(j, "text");
        int32_t *ids;
        size_t n;
        if (!cJSON_IsString(t) ||
            nx_tokenizer_encode(tok, t->valuestring, strlen(t->valuestring), false, &ids, &n, &err))
            return 1;
        cJSON_Delete(j);
        if (n < (size_t)T) { free(ids); continue; }
        nx_model_forward(&m, &a, ids, 1, T, true);
        fwrite(ids, 4, (size_t)T, fi);
        fwrite(a.logits, 4, (size_t)T * m.cfg.V, fl);
        free(ids);
        done++;
    }
    printf("%d documents of %d tokens, V %d\n", done, T, m.cfg.V);
    fclose(fi), fclose(fl), fclose(in);
    free(line);
    nx_acts_free(&a);
    nx_tokenizer_free(tok);
    nx_model_free(&m);
    return done == N ? 0 : 1;
}
