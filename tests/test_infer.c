/* test_infer.c — the inference engine against the training forward: for
 * tiny random models (GQA, MQA, q/k/v/o biases, tied head, layouts that do
 * and do not allow fused q/k/v and gate/up), prefill (in chunks) followed by
 * KV-cache decode must give at every step the logits that a full forward of
 * the whole sequence gives at that position, also for a batch of sequences
 * with different prompt lengths decoded together. Plus the decode kernels
 * against their naive reference, the sampler's filters and determinism,
 * and stop-string scanning on streamed text. */
#include "nexus/infer.h"
#include "nexus/matvec.h"
#include "nexus/model.h"
#include "nxtest.h"

TEST(matvec_matches_reference_on_odd_shapes) {
    nx_rng r;
    nx_rng_seed(&r, 3);
    int shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {1, 13, 37}, {1, 64, 384}, {1, 1031, 96}, {2, 5, 9},
                       {3, 17, 40}, {8, 33, 129}, {5, 1, 8}, {16, 260, 72}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], OC = shapes[s][1], IC = shapes[s][2];
        float *W = malloc(sizeof(float) * OC * IC), *X = malloc(sizeof(float) * N * IC);
        float *b = malloc(sizeof(float) * OC), *Y = malloc(sizeof(float) * N * OC);
        float *R = malloc(sizeof(float) * N * OC);
        for (int i = 0; i < OC * IC; i++) W[i] = nx_rng_normal(&r);
        for (int i = 0; i < N * IC; i++) X[i] = nx_rng_normal(&r);
        for (int i = 0; i < OC; i++) b[i] = nx_rng_normal(&r);
        for (int acc = 0; acc < 2; acc++)
            for (int bias = 0; bias < 2; bias++) {
                for (int i = 0; i < N * OC; i++) Y[i] = R[i] = nx_rng_normal(&r);
                nx_matvec_batch(Y, W, X, bias ? b : NULL, N, OC, IC, acc);
                nx_ref_matvec(R, W, X, bias ? b : NULL, N, OC, IC, acc);
                CHECK_REL(Y, R, N * OC, 1e-5);
                if (N == 1) {
                    for (int i = 0; i < OC; i++) Y[i] = R[i] = 1.5f;
                    nx_matvec(Y, W, X, bias ? b : NULL, OC, IC, acc);
                    nx_ref_matvec(R, W, X, bias ? b : NULL, 1, OC, IC, acc);
                    CHECK_REL(Y, R, OC, 1e-5);
                }
            }
        float d = nx_dot(W, X, IC);
        double e = 0;
        for (int i = 0; i < IC; i++) e += (double)W[i] * X[i];
        CHECKF(fabs(d - e) <= 1e-4 * (1 + fabs(e)), "dot %g vs %g", d, e);
        free(W), free(X), free(b), free(Y), free(R);
    }
}

static nx_model_config base(void) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 29, .C = 16, .L = 2, .NH = 4, .KVH = 2,
                             .HS = 4, .F = 24, .max_pos = 32, .eps = 1e-5f, .rope_theta = 10000,
                             .bos_id = -1, .eos_id = -1, .dtype = NX_F32};
}

/* Prefill prompts of lengths plen[b] (chunk P), decode the rest of each
 * T-token sequence together; compare every step's logits with a full
 * forward of the sequence. Returns the worst relative error. */
static double kv_vs_full(nx_model_config cfg, int B, const int *plen, int T, int P, uint64_t seed,
                         bool *fused) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model m;
    NX_ASSERT(nx_model_init(&m, &cfg, NULL) == NX_OK);
    nx_model_init_random(&m, 0.3f, &r);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] += 0.05f * nx_rng_normal(&r);
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)nx_rng_below(&r, cfg.V);
    /* reference: full forward of each whole sequence */
    nx_acts a;
    NX_ASSERT(nx_acts_init(&a, &cfg, B, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(&m, &a, ids, B, T, true);
    nx_infer s;
    nx_err err;
    CHECKF(nx_infer_init(&s, &m, B, T, P, &err) == NX_OK, "%s", err.msg);
    *fused = s.fused_qkv && s.fused_gu;
    double worst = 0;
    for (int b = 0; b < B; b++) {
        nx_infer_prefill(&s, b, ids + b * T, plen[b]);
        double e = nxt_rel_err(s.logits + b * cfg.V, a.logits + ((long)b * T + plen[b] - 1) * cfg.V, cfg.V);
        worst = e > worst ? e : worst;
    }
    /* decode all sequences together; a sequence whose prompt was longer
     * wraps nothing: each feeds its own next token at its own position */
    int32_t step_ids[8];
    int minp = plen[0];
    for (int b = 1; b < B; b++) minp = plen[b] < minp ? plen[b] : minp;
    int maxp = plen[0];
    for (int b = 1; b < B; b++) maxp = plen[b] > maxp ? plen[b] : maxp;
    for (int k = 0; maxp + k < T; k++) {
        for (int b = 0; b < B; b++) step_ids[b] = ids[b * T + plen[b] + k];
        nx_infer_decode(&s, step_ids, B);
        for (int b = 0; b < B; b++) {
            int t = plen[b] + k; /* position just fed */
            double e = nxt_rel_err(s.logits + b * cfg.V, a.logits + ((long)b * T + t) * cfg.V, cfg.V);
            worst = e > worst ? e : worst;
        }
    }
    (void)minp;
    nx_infer_free(&s);
    nx_acts_free(&a);
    nx_model_free(&m);
    free(ids);
    return worst;
}

TEST(kv_decode_matches_full_forward_gqa) {
    int plen[1] = {5};
    bool fused;
    double e = kv_vs_full(base(), 1, plen, 20, 2, 1, &fused);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    CHECK(fused);
}

TEST(kv_decode_matches_full_forward_mqa_bias_tied) {
    nx_model_config c = base();
    c.KVH = 1, c.qkv_bias = true, c.o_bias = true, c.tied = true;
    int plen[1] = {1};
    bool fused;
    double e = kv_vs_full(c, 1, plen, 17, 4, 2, &fused);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    CHECK(!fused); /* biases sit between q/k/v: the unfused path */
}

TEST(kv_decode_matches_full_forward_unaligned_layout) {
    nx_model_config c = base();
    c.C = 9, c.F = 13, c.NH = 3, c.KVH = 3, c.HS = 6; /* odd sizes: weights padded apart */
    int plen[1] = {7};
    bool fused;
    double e = kv_vs_full(c, 1, plen, 12, 32, 3, &fused);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    CHECK(!fused);
}

TEST(kv_decode_batch_of_different_prompt_lengths) {
    nx_model_config c = base();
    c.L = 3;
    int plen[4] = {3, 8, 1, 5};
    bool fused;
    double e = kv_vs_full(c, 4, plen, 16, 3, 4, &fused);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    nx_model_config c2 = c;
    c2.qkv_bias = true, c2.KVH = 1; /* batched decode through the strided GEMM path */
    e = kv_vs_full(c2, 3, plen, 16, 16, 5, &fused);
    CHECKF(e < 1e-4, "worst relative error %.3g (unfused batch)", e);
}

TEST(infer_rejects_context_beyond_max_position) {
    nx_model_config c = base();
    nx_model m;
    CHECK(nx_model_init(&m, &c, NULL) == NX_OK);
    nx_infer s;
    nx_err err;
    CHECK(nx_infer_init(&s, &m, 1, c.max_pos + 1, 8, &err) == NX_ERR);
    CHECK(strstr(err.msg, "max_position_embeddings") != NULL);
    CHECK(nx_infer_init(&s, &m, 0, 8, 8, &err) == NX_ERR);
    nx_model_free(&m);
}

/* ---- sampler -------------------------------------------------------------- */

TEST(greedy_is_argmax_lowest_id_on_ties) {
    nx_sampler s;
    nx_sample_opts o = nx_sample_defaults();
    CHECK(nx_sampler_init(&s, &o, 6, 1, NULL) == NX_OK);
    float lg[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, -3.0f};
    CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 1);
    /* repetition penalty 2: token 1 → 1.0, token 3 stays 2.0 */
    nx_sampler_free(&s);
    o.repetition_penalty = 2.0f;
    CHECK(nx_sampler_init(&s, &o, 6, 1, NULL) == NX_OK);
    int32_t hist[3] = {1, 1, 4};
    CHECK(nx_sampler_sample(&s, lg, hist, 3) == 3);
    int32_t hist2[1] = {3};
    float neg[6] = {-1.0f, -1.5f, -9, -9, -9, -9};
    CHECK(nx_sampler_sample(&s, neg, hist2, 1) == 0);
    int32_t hist3[1] = {0}; /* -1 × 2 = -2 < -1.5 */
    CHECK(nx_sampler_sample(&s, neg, hist3, 1) == 1);
    nx_sampler_free(&s);
}

TEST(sampling_follows_the_distribution_and_filters) {
    float lg[5] = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f};
    nx_sample_opts o = nx_sample_defaults();
    o.temperature = 1.0f;
    nx_sampler s;
    CHECK(nx_sampler_init(&s, &o, 5, 42, NULL) == NX_OK);
    int cnt[5] = {0}, n = 40000;
    for (int i = 0; i < n; i++) cnt[nx_sampler_sample(&s, lg, NULL, 0)]++;
    double z = 0;
    for (int v = 0; v < 5; v++) z += exp(lg[v]);
    for (int v = 0; v < 5; v++)
        CHECKF(fabs(cnt[v] / (double)n - exp(lg[v]) / z) < 0.01, "token %d: %g vs %g", v,
               cnt[v] / (double)n, exp(lg[v]) / z);
    nx_sampler_free(&s);

    o.top_k = 2; /* only tokens 2 and 0, in ratio e^1 : 1 */
    CHECK(nx_sampler_init(&s, &o, 5, 7, NULL) == NX_OK);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < n; i++) cnt[nx_sampler_sample(&s, lg, NULL, 0)]++;
    CHECK(cnt[1] == 0 && cnt[3] == 0 && cnt[4] == 0);
    CHECKF(fabs(cnt[2] / (double)n - exp(1) / (1 + exp(1))) < 0.01, "top-k share %g", cnt[2] / (double)n);
    nx_sampler_free(&s);

    o.top_k = 0, o.top_p = 0.5f; /* p(2) ≈ 0.55 ≥ 0.5: only token 2 */
    CHECK(nx_sampler_init(&s, &o, 5, 7, NULL) == NX_OK);
    for (int i = 0; i < 200; i++) CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 2);
    nx_sampler_free(&s);

    o.top_p = 0.8f; /* 0.55 + 0.20 (token 0) < 0.8: tokens 2, 0, 4 */
    CHECK(nx_sampler_init(&s, &o, 5, 7, NULL) == NX_OK);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < 5000; i++) cnt[nx_sampler_sample(&s, lg, NULL, 0)]++;
    CHECK(cnt[1] == 0 && cnt[3] == 0 && cnt[4] > 0 && cnt[0] > 0);
    nx_sampler_free(&s);

    o.top_p = 1, o.min_p = 0.5f; /* keep p ≥ 0.5·p(2): tokens 2 (1) and 0 (e^-1 = 0.37 < 0.5): only 2 */
    CHECK(nx_sampler_init(&s, &o, 5, 7, NULL) == NX_OK);
    for (int i = 0; i < 200; i++) CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 2);
    nx_sampler_free(&s);
    o.min_p = 0.3f; /* now token 0 too, nothing else */
    CHECK(nx_sampler_init(&s, &o, 5, 7, NULL) == NX_OK);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < 2000; i++) cnt[nx_sampler_sample(&s, lg, NULL, 0)]++;
    CHECK(cnt[0] > 0 && cnt[2] > 0 && cnt[0] + cnt[2] == 2000);
    nx_sampler_free(&s);
}

TEST(same_seed_same_tokens_and_bad_options_named) {
    float lg[50];
    nx_rng r;
    nx_rng_seed(&r, 1);
    for (int i = 0; i < 50; i++) lg[i] = nx_rng_normal(&r);
    nx_sample_opts o = nx_sample_defaults();
    o.temperature = 0.8f, o.top_p = 0.9f, o.top_k = 20;
    nx_sampler a, b, c;
    CHECK(nx_sampler_init(&a, &o, 50, 99, NULL) == NX_OK);
    CHECK(nx_sampler_init(&b, &o, 50, 99, NULL) == NX_OK);
    CHECK(nx_sampler_init(&c, &o, 50, 100, NULL) == NX_OK);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        int32_t x = nx_sampler_sample(&a, lg, NULL, 0), y = nx_sampler_sample(&b, lg, NULL, 0);
        same &= x == y;
        differ += x != nx_sampler_sample(&c, lg, NULL, 0);
    }
    CHECK(same);
    CHECK(differ > 0);
    nx_sampler_free(&a), nx_sampler_free(&b), nx_sampler_free(&c);
    nx_err err;
    o = nx_sample_defaults();
    o.top_p = 0;
    CHECK(nx_sampler_init(&a, &o, 50, 1, &err) == NX_ERR && strstr(err.msg, "top-p"));
    o = nx_sample_defaults();
    o.temperature = -1;
    CHECK(nx_sampler_init(&a, &o, 50, 1, &err) == NX_ERR && strstr(err.msg, "temperature"));
    o = nx_sample_defaults();
    o.min_p = 1;
    CHECK(nx_sampler_init(&a, &o, 50, 1, &err) == NX_ERR && strstr(err.msg, "min-p"));
    o = nx_sample_defaults();
    o.repetition_penalty = 0;
    CHECK(nx_sampler_init(&a, &o, 50, 1, &err) == NX_ERR && strstr(err.msg, "repetition"));
}

TEST(stop_scan_holds_partial_stops_and_utf8) {
    const char *stops[2] = {"END", "\n\n"};
    size_t safe;
    const char *t1 = "hello E";
    CHECK(nx_stop_scan(t1, strlen(t1), stops, 2, &safe) == -1 && safe == 6);
    const char *t2 = "hello EN";
    CHECK(nx_stop_scan(t2, strlen(t2), stops, 2, &safe) == -1 && safe == 6);
    const char *t3 = "hello ENDING";
    CHECK(nx_stop_scan(t3, strlen(t3), stops, 2, &safe) == 6 && safe == 6);
    const char *t4 = "a\n\nb END";
    CHECK(nx_stop_scan(t4, strlen(t4), stops, 2, &safe) == 1 && safe == 1);
    const char *t5 = "plain text";
    CHECK(nx_stop_scan(t5, strlen(t5), stops, 2, &safe) == -1 && safe == strlen(t5));
    const char t6[] = "caf\xc3"; /* é cut after its first byte */
    CHECK(nx_stop_scan(t6, 4, stops, 0, &safe) == -1 && safe == 3);
    const char t7[] = "caf\xc3\xa9";
    CHECK(nx_stop_scan(t7, 5, NULL, 0, &safe) == -1 && safe == 5);
    const char t8[] = "x\xe2\x82"; /* € missing its last byte */
    CHECK(nx_stop_scan(t8, 3, NULL, 0, &safe) == -1 && safe == 1);
    const char t9[] = "\xf0\x9f\x98\x80!";
    CHECK(nx_stop_scan(t9, 5, NULL, 0, &safe) == -1 && safe == 5);
}

/* ---- speed ------------------------------------------------ */
#include "nexus/bench.h"

TEST(speed_benchmark_reports_consistent_figures) {
    nx_model_config c = base();
    nx_rng r;
    nx_rng_seed(&r, 12);
    nx_model m;
    CHECK(nx_model_init(&m, &c, NULL) == NX_OK);
    nx_model_init_random(&m, 0.3f, &r);
    nx_bench_opts o = nx_bench_defaults();
    o.prompt_tokens = 8, o.decode_tokens = 10, o.batch = 3, o.reps = 3;
    nx_bench_speed sp;
    nx_err err;
    CHECKF(nx_bench_speed_run(&m, &o, &sp, &err) == NX_OK, "%s", err.msg);
    CHECK(sp.decode_tps.min > 0 && sp.decode_tps.min <= sp.decode_tps.median && sp.decode_tps.median <= sp.decode_tps.max);
    CHECK(sp.prefill_tps.median > 0 && sp.ttft_ms.median > 0 && sp.decode_batch_tps.median > 0);
    CHECK(sp.latency_p50_ms > 0 && sp.latency_p50_ms <= sp.latency_p95_ms && sp.latency_p95_ms <= sp.latency_p99_ms);
    o.prompt_tokens = 30; /* 30 + 10 > max_pos 32 */
    CHECK(nx_bench_speed_run(&m, &o, &sp, &err) == NX_ERR && strstr(err.msg, "context"));
    CHECK(nx_peak_rss_bytes() > 1e6);
    nx_model_free(&m);
}

TEST(kv_long_prompt_crosses_attention_blocks_and_chunks) {
    nx_model_config c = base();
    c.max_pos = 200;
    int plen[2] = {150, 131};
    bool fused;
    double e = kv_vs_full(c, 2, plen, 160, 200, 6, &fused); /* one chunk, three row blocks */
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    e = kv_vs_full(c, 2, plen, 160, 70, 7, &fused); /* chunks of 70 starting mid-block */
    CHECKF(e < 1e-4, "worst relative error %.3g (chunked)", e);
}
