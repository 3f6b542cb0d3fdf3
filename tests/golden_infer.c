/* golden_infer.c — on teacher-19m (../shared): prefill then KV-cache decode
 * gives at every step the logits of a full forward of the whole sequence
 * (within 1e-4 relative), at batch 1 and for a batch of 3 sequences with
 * different prompt lengths. A missing ../shared is a failure. */
#include "nexus/hf.h"
#include "nexus/infer.h"
#include "nxtest.h"

#define MODEL "../shared/models/teacher-19m"

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
    nx_acts a;
    CHECK(nx_acts_init(&a, c, B, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(&m, &a, ids, B, T, true);
    nx_infer s;
    CHECKF(nx_infer_init(&s, &m, B, T, 16, &err) == NX_OK, "%s", err.msg);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        nx_infer_prefill(&s, b, ids + b * T, plen[b]);
        double e = nxt_rel_err(s.logits + (size_t)b * c->V, a.logits + ((size_t)b * T + plen[b] - 1) * c->V, c->V);
        worst = e > worst ? e : worst;
    }
    for (int k = 0; plen[2] + k < T; k++) { /* the longest prompt bounds the steps */
        int32_t step[B];
        for (int b = 0; b < B; b++) step[b] = ids[b * T + plen[b] + k];
        nx_infer_decode(&s, step, B);
        for (int b = 0; b < B; b++) {
            double e = nxt_rel_err(s.logits + (size_t)b * c->V, a.logits + ((size_t)b * T + plen[b] + k) * c->V, c->V);
            worst = e > worst ? e : worst;
        }
    }
    CHECKF(worst < 1e-4, "worst relative error %.3g", worst);
    printf("  worst relative logit error, batch of 3: %.2e\n", worst);
    /* batch 1, from a 1-token prompt to the end */
    nx_infer_free(&s);
    CHECK(nx_infer_init(&s, &m, 1, T, 8, &err) == NX_OK);
    nx_infer_prefill(&s, 0, ids, 1);
    worst = nxt_rel_err(s.logits, a.logits, c->V);
    for (int t = 1; t < T; t++) {
        nx_infer_decode(&s, ids + t, 1);
        double e = nxt_rel_err(s.logits, a.logits + (size_t)t * c->V, c->V);
        worst = e > worst ? e : worst;
    }
    CHECKF(worst < 1e-4, "worst relative error %.3g (batch 1)", worst);
    printf("  worst relative logit error, batch 1: %.2e\n", worst);
    nx_infer_free(&s);
    nx_acts_free(&a);
    nx_model_free(&m);
}
