/* bench_tokenizer.c — tokenizer throughput on the whole train split
 * (../shared/data/corpus/train.jsonl.gz, teacher-19m tokenizer): documents
 * are loaded into memory first, so only encoding is timed. Reports MB/s with
 * 1 thread and with 2 threads (and per core), cold and warm word cache.
 * Skips with a message when ../shared is absent. */
#include <cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nexus/tokenizer.h"

static const char *CORPUS = "../shared/data/corpus/train.jsonl.gz";
static const char *MODEL = "../shared/models/teacher-19m";

static double run(const nx_tokenizer *t, char **docs, size_t *lens, size_t n, int threads, size_t *ntok) {
    size_t total = 0;
    int bad = 0;
    double t0 = nx_now();
    #pragma omp parallel for schedule(dynamic, 4) num_threads(threads) reduction(+ : total, bad)
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t k;
        nx_err e;
        if (nx_tokenizer_encode(t, docs[i], lens[i], false, &ids, &k, &e)) { bad++; continue; }
        total += k;
        free(ids);
    }
    double dt = nx_now() - t0;
    if (bad) { fprintf(stderr, "%d documents failed to encode\n", bad); exit(1); }
    *ntok = total;
    return dt;
}

int main(void) {
    gzFile g = gzopen(CORPUS, "rb");
    nx_tokenizer *t;
    nx_err err;
    if (!g || nx_tokenizer_load(&t, MODEL, &err)) {
        printf("bench_tokenizer: skipped (%s or %s not found)\n", CORPUS, MODEL);
        if (g) gzclose(g);
        return 0;
    }
    size_t cap = 1024, n = 0, bytes = 0;
    char **docs = malloc(cap * sizeof *docs);
    size_t *lens = malloc(cap * sizeof *lens);
    static char line[1 << 20];
    while (gzgets(g, line, sizeof line)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *v = cJSON_GetObjectItem(o, "text");
        if (cJSON_IsString(v)) {
            if (n == cap) { cap *= 2; docs = realloc(docs, cap * sizeof *docs); lens = realloc(lens, cap * sizeof *lens); }
            docs[n] = strdup(v->valuestring);
            lens[n] = strlen(docs[n]);
            bytes += lens[n++];
        }
        cJSON_Delete(o);
    }
    gzclose(g);
    double mb = (double)bytes / 1e6, load = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) { if (fscanf(la, "%lf", &load) != 1) load = 0; fclose(la); }
    if (load > 0.5) printf("note: load average %.2f before the run: other processes share the cores, "
                           "so these numbers are low\n", load);
    printf("train split: %zu documents, %.1f MB of text\n", n, mb);
    size_t ntok;
    /* cold: a fresh tokenizer, so the word cache starts empty */
    double dt = run(t, docs, lens, n, 1, &ntok);
    printf("1 thread  (cold cache): %.2f s  %.2f MB/s  %.0f tokens/s  (%zu tokens)\n", dt, mb / dt, ntok / dt, ntok);
    dt = run(t, docs, lens, n, 1, &ntok);
    printf("1 thread  (warm cache): %.2f s  %.2f MB/s per core\n", dt, mb / dt);
    nx_tokenizer_free(t);
    if (nx_tokenizer_load(&t, MODEL, &err)) { printf("%s\n", err.msg); return 1; }
    dt = run(t, docs, lens, n, 2, &ntok);
    printf("2 threads (cold cache): %.2f s  %.2f MB/s total, %.2f MB/s per core\n", dt, mb / dt, mb / dt / 2);
    dt = run(t, docs, lens, n, 2, &ntok);
    printf("2 threads (warm cache): %.2f s  %.2f MB/s total, %.2f MB/s per core\n", dt, mb / dt, mb / dt / 2);
    printf("goal: >= 5 MB/s per core\n");
    nx_tokenizer_free(t);
    for (size_t i = 0; i < n; i++) free(docs[i]);
    free(docs);
    free(lens);
    return 0;
}
