/* golden_infer.c — on teacher-19m (../shared): prefill then KV-cache decode
 * through the one forward gives at every step the logits of a full forward
 * of the whole sequence (within 1e-4 relative), at batch 1 and for a batch
 * of 3 sequences with different prompt lengths decoded together; and held
 * in bf16 (as on disk), the same logits as held in f32. A missing ../shared
 * is a failure. */
#include <unistd.h>

#include "nexus/hf.h"
#include "nexus/model.h"
#include "nxtest.h"

#define MODEL "../shared/models/teacher-19m"

/* Appends rows to the cache: span b gets ids[b*T + pos .. +len). */
static void run(const nx_model *m, nx_acts *s, nx_kv_cache *kv, const int32_t *ids, int T, nx_span *sp, int ns) {
    int32_t rows[64];
    int N = 0;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < sp[i].len; k++) rows[N++] = ids[sp[i].seq * T + sp[i].pos + k];
    nx_batch b = {.N = N, .ids = rows, .spans = sp, .nspans = ns, .kv = kv, .out = NX_OUT_LAST};
    nx_model_run(m, s, &b);
}

TEST(teacher_kv_decode_matches_full_forward) {
    if (!NEED(MODEL "/config.json", MODEL "/model.safetensors")) return;
    nx_model m;
    nx_err err;
    if (nx_hf_load_model(MODEL, &m, &err) != NX_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    const nx_model_config *c = &m.cfg;
    enum { B = 3, T = 80 };
    int plen[B] = {17, 5, 40};
    int32_t ids[B * T];
    nx_rng r;
    nx_rng_seed(&r, 5);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)nx_rng_below(&r, c->V);
    nx_acts a, s;
    CHECK(nx_acts_init(&a, &m, B, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(&m, &a, ids, B, T, true);
    nx_kv_cache kv;
    CHECKF(nx_kv_cache_init(&kv, &m, B, T, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_acts_init_rows(&s, &m, 64, B, T, NX_ACTS_STREAM, &err) == NX_OK, "%s", err.msg);
    double worst = 0;
    for (int b = 0; b < B; b++) /* prompts in chunks of 16 */
        for (int p = 0; p < plen[b]; p += 16) {
            nx_span sp = {b, p, plen[b] - p < 16 ? plen[b] - p : 16};
            run(&m, &s, &kv, ids, T, &sp, 1);
            double e = nxt_rel_err(s.logits, a.logits + ((size_t)b * T + sp.pos + sp.len - 1) * c->V, c->V);
            worst = e > worst ? e : worst;
        }
    for (int k = 0; plen[2] + k < T; k++) { /* the longest prompt bounds the steps */
        nx_span sp[B];
        for (int b = 0; b < B; b++) sp[b] = (nx_span){b, plen[b] + k, 1};
        run(&m, &s, &kv, ids, T, sp, B);
        for (int b = 0; b < B; b++) {
            double e = nxt_rel_err(s.logits + (size_t)b * c->V, a.logits + ((size_t)b * T + plen[b] + k) * c->V, c->V);
            worst = e > worst ? e : worst;
        }
    }
    CHECKF(worst < 1e-4, "worst relative error %.3g", worst);
    printf("  worst relative logit error, batch of 3: %.2e\n", worst);
    /* batch 1, from a 1-token prompt to the end */
    worst = 0;
    for (int t = 0; t < T; t++) {
        nx_span sp = {0, t, 1};
        run(&m, &s, &kv, ids, T, &sp, 1);
        double e = nxt_rel_err(s.logits, a.logits + (size_t)t * c->V, c->V);
        worst = e > worst ? e : worst;
    }
    CHECKF(worst < 1e-4, "worst relative error %.3g (batch 1)", worst);
    printf("  worst relative logit error, batch 1: %.2e\n", worst);
    /* held in bf16, as the checkpoint is: the same logits bit for bit */
    nx_model mb;
    nx_acts ab;
    CHECKF(nx_hf_load_model_as(MODEL, &mb, NX_BF16, &err) == NX_OK, "%s", err.msg);
    CHECK(nx_acts_init(&ab, &mb, B, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(&mb, &ab, ids, B, T, true);
    CHECK(memcmp(ab.logits, a.logits, sizeof(float) * B * T * c->V) == 0);
    nx_acts_free(&ab);
    nx_model_free(&mb);
    nx_acts_free(&s);
    nx_kv_cache_free(&kv);
    nx_acts_free(&a);
    nx_model_free(&m);
}
