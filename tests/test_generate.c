/* test_generate.c — inference on the one forward: a KV cache filled by
 * prefill chunks and decode rows gives, at every position, the logits a
 * full forward of the whole sequence gives (tiny random models: GQA, MQA,
 * q/k/v/o biases, tied head, odd sizes, prompts crossing attention blocks);
 * the generator's slots, batched together with chunked prefill, produce
 * what each prompt produces alone, also when requests join and leave
 * mid-way; stop strings and streamed text; the decode kernels against
 * their reference for every weight type; the sampler; the speed figures. */
#include "nexus/bench.h"
#include "nexus/cpu.h"
#include "nexus/generate.h"
#include "nxtest.h"

TEST(matvec_matches_reference_on_odd_shapes_every_type) {
    nx_rng r;
    nx_rng_seed(&r, 3);
    int shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {1, 13, 37}, {1, 64, 384}, {1, 1031, 96}, {2, 5, 9},
                       {3, 17, 40}, {8, 33, 129}, {5, 1, 8}, {16, 260, 72}};
    nx_dtype types[8] = {NX_F32, NX_BF16, NX_F16, NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    for (int k = 0; k < 8; k++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int N = shapes[s][0], OC = shapes[s][1], IC = shapes[s][2];
            int blk = nx_type(types[k])->block; /* block types: rows of whole blocks */
            IC = (IC + blk - 1) / blk * blk;
            float *W = malloc(sizeof(float) * OC * IC), *X = malloc(sizeof(float) * N * IC);
            float *b = malloc(sizeof(float) * OC), *Y = malloc(sizeof(float) * N * OC);
            float *R = malloc(sizeof(float) * N * OC);
            void *Wt = malloc(nx_row_bytes(types[k], (int64_t)OC * IC));
            for (int i = 0; i < OC * IC; i++) W[i] = nx_rng_normal(&r);
            for (int i = 0; i < N * IC; i++) X[i] = nx_rng_normal(&r);
            for (int i = 0; i < OC; i++) b[i] = nx_rng_normal(&r);
            nx_convert(Wt, types[k], W, NX_F32, (int64_t)OC * IC);
            nx_weight w = nx_weight_view(nx_backend_cpu(), types[k], OC, IC, Wt);
            for (int acc = 0; acc < 2; acc++)
                for (int bias = 0; bias < 2; bias++) {
                    for (int i = 0; i < N * OC; i++) Y[i] = R[i] = nx_rng_normal(&r);
                    nx_matvec(Y, &w, X, bias ? b : NULL, N, acc);
                    nx_ref_matvec(R, &w, X, bias ? b : NULL, N, acc);
                    CHECKF(nxt_rel_err(Y, R, N * OC) < 1e-5, "%s %dx%dx%d", nx_dtype_name(types[k]), N, OC, IC);
                }
            if (k == 0) {
                float d = nx_dot(W, X, IC);
                double e = 0;
                for (int i = 0; i < IC; i++) e += (double)W[i] * X[i];
                CHECKF(fabs(d - e) <= 1e-4 * (1 + fabs(e)), "dot %g vs %g", d, e);
            }
            free(W), free(X), free(b), free(Y), free(R), free(Wt);
        }
}

static nx_model_config base(void) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 29, .C = 16, .L = 2, .NH = 4, .KVH = 2,
                             .HS = 4, .F = 24, .max_pos = 32, .eps = 1e-5f, .rope_theta = 10000,
                             .bos_id = -1, .eos_id = -1, .dtype = NX_F32};
}

static void random_model(nx_model *m, nx_model_config cfg, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    NX_ASSERT(nx_model_init(m, &cfg, NULL) == NX_OK);
    nx_model_init_random(m, 0.3f, &r);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += 0.05f * nx_rng_normal(&r);
}

/* Prefill prompts of lengths plen[b] in chunks of P, then decode the rest
 * of each T-token sequence, all sequences in one batch per step; every
 * step's logits against a full forward of the sequences. The last chunk of
 * each prompt but the first goes into the same batch as the decode rows
 * of the others (continuous batching). Returns the worst relative error. */
static nx_dtype KV_WTYPE = NX_F32; /* the matrices' type in kv_vs_full */

static double kv_vs_full(nx_model_config cfg, int B, const int *plen, int T, int P, uint64_t seed) {
    nx_model m;
    random_model(&m, cfg, seed);
    if (KV_WTYPE != NX_F32) { /* the same model with its matrices quantized */
        nx_model q;
        int ng = nx_model_ngroups(&cfg);
        nx_group_type gt[64];
        for (int g = 0; g < ng; g++) { /* Q4_K where rows hold super-blocks (down), else IQ4_NL, as q4_k_m */
            int rows, cols;
            nx_model_group_shape(&cfg, g, &rows, &cols);
            gt[g] = (nx_group_type){KV_WTYPE != NX_Q4_K ? KV_WTYPE : cols % 256 ? NX_IQ4_NL : NX_Q4_K, NX_ACT_BLOCK, 0};
        }
        NX_ASSERT(nx_model_init_typed(&q, &cfg, gt, nx_backend_cpu(), NULL) == NX_OK);
        float *buf = malloc(sizeof(float) * m.nparams);
        for (int i = 0; i < m.ntab; i++) {
            nx_model_get(&m, i, buf);
            nx_model_set(&q, i, buf, NX_F32);
        }
        free(buf);
        nx_model_free(&m);
        m = q;
    }
    nx_rng r;
    nx_rng_seed(&r, seed + 100);
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)nx_rng_below(&r, cfg.V);
    nx_acts a;
    NX_ASSERT(nx_acts_init(&a, &m, B, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(&m, &a, ids, B, T, true);
    nx_kv_cache kv;
    nx_acts s;
    nx_err err;
    CHECKF(nx_kv_cache_init(&kv, &m, B, T, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_acts_init_rows(&s, &m, P + B, B, T, NX_ACTS_STREAM, &err) == NX_OK, "%s", err.msg);
    int *done = calloc(B, sizeof(int)); /* tokens of each sequence in the cache */
    int32_t *row_ids = malloc(sizeof(int32_t) * (P + B));
    nx_span sp[16];
    int who[16];
    double worst = 0;
    for (bool busy = true; busy;) {
        int N = 0, ns = 0;
        busy = false;
        for (int b = 0; b < B; b++) { /* decode rows of sequences whose prompt is in */
            if (done[b] < plen[b] || done[b] >= T) continue;
            row_ids[N++] = ids[b * T + done[b]];
            who[ns] = b;
            sp[ns++] = (nx_span){b, done[b], 1};
        }
        for (int b = 0, budget = P; b < B && budget > 0; b++) { /* prompt chunks */
            if (done[b] >= plen[b]) continue;
            int len = plen[b] - done[b] < budget ? plen[b] - done[b] : budget;
            memcpy(row_ids + N, ids + b * T + done[b], sizeof(int32_t) * len);
            N += len, budget -= len;
            who[ns] = b;
            sp[ns++] = (nx_span){b, done[b], len};
        }
        if (ns == 0) break;
        busy = true;
        nx_batch bt = {.N = N, .ids = row_ids, .spans = sp, .nspans = ns, .kv = &kv, .out = NX_OUT_LAST};
        nx_model_run(&m, &s, &bt);
        for (int i = 0; i < ns; i++) {
            int b = who[i], t = sp[i].pos + sp[i].len - 1; /* position of the span's last row */
            done[b] += sp[i].len;
            double e = nxt_rel_err(s.logits + (long)i * cfg.V, a.logits + ((long)b * T + t) * cfg.V, cfg.V);
            worst = e > worst ? e : worst;
        }
    }
    for (int b = 0; b < B; b++) CHECK(done[b] == T);
    free(done), free(row_ids), free(ids);
    nx_acts_free(&s);
    nx_kv_cache_free(&kv);
    nx_acts_free(&a);
    nx_model_free(&m);
    return worst;
}

TEST(kv_decode_matches_full_forward_gqa) {
    int plen[1] = {5};
    double e = kv_vs_full(base(), 1, plen, 20, 2, 1);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
}

/* Block-typed matrices: prefill rows (the int8 GEMM) and decode rows (the
 * int8 matrix-vector tiles) quantize each input row the same way and sum
 * in the same order, so the cache gives what the full forward gives up
 * to attention's own float order, which can move an input across a
 * rounding boundary of its 8-bit quantization; these random models
 * (weights of std 0.3) amplify such a step to about 1e-2, where a broken
 * path is off by O(1). The
 * Q4_K model is q4_k_m's mix: Q4_K for the rows of 256 (down), IQ4_NL
 * elsewhere. */
TEST(kv_decode_matches_full_forward_quantized) {
    nx_model_config c = base();
    c.C = 64, c.NH = 4, c.KVH = 2, c.HS = 16, c.F = 256;
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    for (int k = 0; k < 5; k++) {
        KV_WTYPE = types[k];
        int plen[2] = {11, 3};
        double e = kv_vs_full(c, 2, plen, 24, 5, 7 + k);
        printf("%s: worst relative error %.3g\n", nx_dtype_name(types[k]), e);
        CHECKF(e < 2e-2, "%s: worst relative error %.3g", nx_dtype_name(types[k]), e);
    }
    KV_WTYPE = NX_F32;
}

TEST(kv_decode_matches_full_forward_mqa_bias_tied) {
    nx_model_config c = base();
    c.KVH = 1, c.qkv_bias = true, c.o_bias = true, c.tied = true;
    int plen[1] = {1};
    double e = kv_vs_full(c, 1, plen, 17, 4, 2);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
}

TEST(kv_decode_matches_full_forward_odd_sizes) {
    nx_model_config c = base();
    c.C = 9, c.F = 13, c.NH = 3, c.KVH = 3, c.HS = 6; /* groups padded apart in the buffer */
    int plen[1] = {7};
    double e = kv_vs_full(c, 1, plen, 12, 32, 3);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
}

TEST(kv_batch_of_different_prompt_lengths_mixed_with_decode) {
    nx_model_config c = base();
    c.L = 3;
    int plen[4] = {3, 8, 1, 5};
    double e = kv_vs_full(c, 4, plen, 16, 3, 4);
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    nx_model_config c2 = c;
    c2.qkv_bias = true, c2.KVH = 1;
    e = kv_vs_full(c2, 3, plen, 16, 16, 5);
    CHECKF(e < 1e-4, "worst relative error %.3g (biases, MQA)", e);
}

TEST(kv_long_prompt_crosses_attention_blocks_and_chunks) {
    nx_model_config c = base();
    c.max_pos = 200;
    int plen[2] = {150, 131};
    double e = kv_vs_full(c, 2, plen, 160, 200, 6); /* one chunk, three row blocks */
    CHECKF(e < 1e-4, "worst relative error %.3g", e);
    e = kv_vs_full(c, 2, plen, 160, 70, 7); /* chunks of 70 starting mid-block */
    CHECKF(e < 1e-4, "worst relative error %.3g (chunked)", e);
}

TEST(cache_and_generator_reject_bad_sizes) {
    nx_model_config c = base();
    nx_model m;
    CHECK(nx_model_init(&m, &c, NULL) == NX_OK);
    nx_kv_cache kv;
    nx_gen g;
    nx_err err;
    CHECK(nx_kv_cache_init(&kv, &m, 1, c.max_pos + 1, &err) == NX_ERR && strstr(err.msg, "max_position_embeddings"));
    CHECK(nx_gen_init(&g, &m, 0, 8, 8, NULL, NULL, &err) == NX_ERR);
    CHECK(nx_gen_init(&g, &m, 2, 8, 4, NULL, NULL, &err) == NX_OK);
    int32_t p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, bad[2] = {1, 99};
    nx_gen_params gp = {.sample = nx_sample_defaults(), .max_tokens = 4, .eos_id = -1};
    CHECK(nx_gen_start(&g, 0, p, 8, &gp, &err) == NX_ERR && strstr(err.msg, "context"));
    CHECK(nx_gen_start(&g, 0, p, 0, &gp, &err) == NX_ERR && strstr(err.msg, "empty"));
    CHECK(nx_gen_start(&g, 0, bad, 2, &gp, &err) == NX_ERR && strstr(err.msg, "vocabulary"));
    const char *stop[1] = {"x"};
    gp.stops = stop, gp.nstops = 1;
    CHECK(nx_gen_start(&g, 0, p, 2, &gp, &err) == NX_ERR && strstr(err.msg, "detokenizer"));
    CHECK(nx_gen_free_slot(&g) == 0 && !nx_gen_busy(&g));
    nx_gen_free(&g);
    nx_model_free(&m);
}

/* ---- generation slots ------------------------------------------------------ */

/* Each id as one letter: enough text for stop strings and streaming. */
static char *letters(void *ctx, const int32_t *ids, int n) {
    (void)ctx;
    char *s = malloc(n + 1);
    for (int i = 0; i < n; i++) s[i] = (char)('a' + ids[i] % 26);
    s[n] = 0;
    return s;
}

/* Runs prompt alone in a one-slot generator; returns its ids (malloc'd). */
static int32_t *alone(nx_model *m, const int32_t *prompt, int n, const nx_gen_params *gp, int *ngen) {
    nx_gen g;
    NX_ASSERT(nx_gen_init(&g, m, 1, 30, 64, letters, NULL, NULL) == NX_OK);
    NX_ASSERT(nx_gen_start(&g, 0, prompt, n, gp, NULL) == NX_OK);
    nx_gen_event ev;
    while (nx_gen_busy(&g)) nx_gen_step(&g, &ev);
    *ngen = g.slots[0].n - n;
    int32_t *out = malloc(sizeof(int32_t) * *ngen);
    memcpy(out, g.slots[0].ids + n, sizeof(int32_t) * *ngen);
    nx_gen_free(&g);
    return out;
}

TEST(slots_batched_with_chunked_prefill_equal_each_prompt_alone) {
    nx_model m;
    random_model(&m, base(), 8);
    int32_t prompts[4][9] = {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {4}, {9, 8, 7, 6, 5}, {11, 3, 3, 3, 3, 3, 3}};
    int plen[4] = {9, 1, 5, 7};
    nx_gen_params gp = {.sample = nx_sample_defaults(), .max_tokens = 7, .eos_id = -1};
    gp.sample.temperature = 0.9f, gp.sample.top_k = 10; /* sampled: each slot's own rng */
    nx_gen g;
    nx_err err;
    CHECK(nx_gen_init(&g, &m, 3, 30, 4, letters, NULL, &err) == NX_OK); /* 3 slots for 4 requests */
    int next = 0, got[4] = {0}, owner[3] = {-1, -1, -1};
    int32_t out[4][8];
    char text[4][16] = {{0}};
    for (int s = 0; s < 3; s++) {
        gp.seed = (uint64_t)next;
        CHECK(nx_gen_start(&g, s, prompts[next], plen[next], &gp, &err) == NX_OK);
        owner[s] = next++;
    }
    nx_gen_event ev[3];
    for (int steps = 0; nx_gen_busy(&g) && steps < 100; steps++) {
        int n = nx_gen_step(&g, ev);
        for (int i = 0; i < n; i++) {
            int q = owner[ev[i].slot];
            out[q][got[q]++] = ev[i].token;
            strncat(text[q], ev[i].text, ev[i].text_len);
            if (ev[i].finish == NX_FINISH_NONE) continue;
            CHECK(ev[i].finish == NX_FINISH_LENGTH && strcmp(nx_finish_name(ev[i].finish), "length") == 0);
            nx_gen_release(&g, ev[i].slot);
            if (next < 4) { /* a new request joins while the others run */
                gp.seed = (uint64_t)next;
                CHECK(nx_gen_start(&g, ev[i].slot, prompts[next], plen[next], &gp, &err) == NX_OK);
                owner[ev[i].slot] = next++;
            }
        }
    }
    for (int q = 0; q < 4; q++) {
        gp.seed = (uint64_t)q;
        int n;
        int32_t *want = alone(&m, prompts[q], plen[q], &gp, &n);
        CHECKF(got[q] == 7 && n == 7 && memcmp(out[q], want, sizeof(int32_t) * 7) == 0, "request %d", q);
        char *t = letters(NULL, want, n);
        CHECKF(strcmp(text[q], t) == 0, "streamed text of request %d: '%s' vs '%s'", q, text[q], t);
        free(t), free(want);
    }
    nx_gen_free(&g);
    nx_model_free(&m);
}

TEST(stop_strings_eos_and_cancel) {
    nx_model m;
    random_model(&m, base(), 9);
    int32_t prompt[3] = {1, 2, 3};
    nx_gen_params gp = {.sample = nx_sample_defaults(), .max_tokens = 20, .eos_id = -1};
    int n;
    int32_t *free_run = alone(&m, prompt, 3, &gp, &n);
    char *full = letters(NULL, free_run, n);
    /* stop at the text of generated tokens 3..4: the text ends before it */
    char stop[3] = {full[3], full[4], 0};
    const char *stops[1] = {stop};
    gp.stops = stops, gp.nstops = 1;
    nx_gen g;
    CHECK(nx_gen_init(&g, &m, 2, 30, 8, letters, NULL, NULL) == NX_OK);
    CHECK(nx_gen_start(&g, 0, prompt, 3, &gp, NULL) == NX_OK);
    nx_gen_params ge = {.sample = nx_sample_defaults(), .max_tokens = 20, .eos_id = free_run[2]};
    CHECK(nx_gen_start(&g, 1, prompt, 3, &ge, NULL) == NX_OK);
    nx_gen_event ev[2];
    char streamed[32] = "";
    while (nx_gen_busy(&g)) {
        int k = nx_gen_step(&g, ev);
        for (int i = 0; i < k; i++)
            if (ev[i].slot == 0) strncat(streamed, ev[i].text, ev[i].text_len);
    }
    const char *at = strstr(full, stop);
    CHECK(g.slots[0].finish == NX_FINISH_STOP && (size_t)(at - full) == strlen(g.slots[0].text));
    CHECK(strcmp(streamed, g.slots[0].text) == 0);
    int first_eos = 0;
    while (free_run[first_eos] != free_run[2]) first_eos++;
    CHECK(g.slots[1].finish == NX_FINISH_EOS && g.slots[1].n - 3 == first_eos + 1);
    nx_gen_release(&g, 0), nx_gen_release(&g, 1);
    gp.nstops = 0;
    CHECK(nx_gen_start(&g, 1, prompt, 3, &gp, NULL) == NX_OK);
    nx_gen_step(&g, ev);
    nx_gen_cancel(&g, 1);
    CHECK(!nx_gen_busy(&g) && g.slots[1].finish == NX_FINISH_CANCELLED);
    /* the context: a 30-position slot stops at 30 ids */
    nx_gen_release(&g, 1);
    gp.max_tokens = 100;
    CHECK(nx_gen_start(&g, 1, prompt, 3, &gp, NULL) == NX_OK);
    while (nx_gen_busy(&g)) nx_gen_step(&g, ev);
    CHECK(g.slots[1].finish == NX_FINISH_CONTEXT && g.slots[1].n == 30);
    nx_gen_free(&g);
    free(free_run), free(full);
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

TEST(presence_and_frequency_penalties_count_drawn_tokens) {
    /* greedy: token 1 leads by 1.0; each draw of it costs 0.3 (frequency)
     * plus 0.5 once (presence): drawn once, 1.2 - 0.8 = 0.4 < 0.5, token 0 next */
    float lg[3] = {0.5f, 1.2f, -1.0f};
    nx_sample_opts o = nx_sample_defaults();
    o.frequency_penalty = 0.3f, o.presence_penalty = 0.5f;
    nx_sampler s;
    CHECK(nx_sampler_init(&s, &o, 3, 1, NULL) == NX_OK);
    CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 1);
    CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 0);
    CHECK(s.counts[0] == 1 && s.counts[1] == 1 && s.counts[2] == 0);
    /* 0: 0.5 - 0.8 = -0.3, 1: 0.4, so 1 again; then 1: 1.2 - 1.1 = 0.1 > -0.3 */
    CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 1);
    CHECK(nx_sampler_sample(&s, lg, NULL, 0) == 1);
    nx_sampler_free(&s);
    o.presence_penalty = -2, o.frequency_penalty = 0; /* negative: encourages repeats */
    CHECK(nx_sampler_init(&s, &o, 3, 1, NULL) == NX_OK);
    float lg2[3] = {1.0f, 0.9f, 0.0f};
    CHECK(nx_sampler_sample(&s, lg2, NULL, 0) == 0 && nx_sampler_sample(&s, lg2, NULL, 0) == 0);
    nx_sampler_free(&s);
    o.presence_penalty = NAN;
    nx_err err;
    CHECK(nx_sampler_init(&s, &o, 3, 1, &err) == NX_ERR && strstr(err.msg, "penalties"));
    nx_sample_opts plain = nx_sample_defaults();
    CHECK(nx_sampler_init(&s, &plain, 3, 1, NULL) == NX_OK && s.counts == NULL); /* off: nothing counted */
    nx_sampler_free(&s);
}

TEST(further_end_tokens_finish_a_slot) {
    nx_model m;
    random_model(&m, base(), 9);
    int32_t prompt[3] = {1, 2, 3};
    nx_gen_params gp = {.sample = nx_sample_defaults(), .max_tokens = 20, .eos_id = -1};
    int n;
    int32_t *run = alone(&m, prompt, 3, &gp, &n);
    int32_t more[2] = {-5, run[4]};
    gp.eos_more = more, gp.neos_more = 2;
    int n2;
    int32_t *cut = alone(&m, prompt, 3, &gp, &n2);
    int first = 0;
    while (run[first] != run[4]) first++;
    CHECKF(n2 == first + 1 && memcmp(cut, run, sizeof(int32_t) * n2) == 0, "%d tokens, end token first at %d", n2, first);
    nx_gen g;
    nx_err err;
    CHECK(nx_gen_init(&g, &m, 1, 30, 8, NULL, NULL, NULL) == NX_OK);
    gp.neos_more = NX_GEN_MAX_EOS + 1;
    CHECK(nx_gen_start(&g, 0, prompt, 3, &gp, &err) == NX_ERR && strstr(err.msg, "end tokens"));
    nx_gen_free(&g);
    free(run), free(cut);
    nx_model_free(&m);
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

/* ---- speed -------------------------------------------------------------------- */

TEST(speed_benchmark_reports_consistent_figures) {
    nx_model_config c = base();
    nx_model m;
    random_model(&m, c, 12);
    nx_bench_opts o = nx_bench_defaults();
    o.prompt_tokens = 8, o.decode_tokens = 10, o.batch = 3, o.reps = 3;
    nx_bench_speed sp;
    nx_err err;
    CHECKF(nx_bench_speed_run(&m, &o, &sp, &err) == NX_OK, "%s", err.msg);
    CHECK(sp.prefill_tps.median > 0 && sp.ttft_ms.median > 0 && sp.decode_tps.median > 0);
    /* the runs decoded exactly what the figures divide by: D tokens per
     * rep at batch 1, D per sequence per rep at batch B */
    CHECKF(sp.decoded == 3 * 10 && sp.decoded_batch == 3 * 10 * 3, "decoded %lld / %lld",
           (long long)sp.decoded, (long long)sp.decoded_batch);
    CHECK(sp.latency_p50_ms > 0 && sp.latency_p50_ms <= sp.latency_p99_ms);
    o.prompt_tokens = 30; /* 30 + 10 > max_pos 32 */
    CHECK(nx_bench_speed_run(&m, &o, &sp, &err) == NX_ERR && strstr(err.msg, "context"));
    nx_model_free(&m);
}

/* Tokens of three slots (two greedy, one sampled) over 20 tokens each, on
 * the CUDA model mc, their steps replayed or not (be->replay taken away). */
static void cuda_tokens(nx_model *mc, bool replay, int32_t out[3][20]) {
    nx_backend *be = mc->be;
    void (*keep)(nx_backend *, nx_replay **, void (*)(void *), void *) = be->replay;
    if (!replay) be->replay = NULL;
    int32_t prompts[3][5] = {{1, 2, 3, 4, 5}, {7}, {3, 9, 27}};
    int plen[3] = {5, 1, 3};
    nx_gen g;
    NX_ASSERT(nx_gen_init(&g, mc, 3, 32, 4, letters, NULL, NULL) == NX_OK);
    for (int s = 0; s < 3; s++) {
        nx_gen_params gp = {.sample = nx_sample_defaults(), .max_tokens = 20 - 4 * s, .eos_id = -1, .seed = 5};
        if (s == 2) gp.sample.temperature = 0.8f; /* its steps bring the logits back */
        NX_ASSERT(nx_gen_start(&g, s, prompts[s], plen[s], &gp, NULL) == NX_OK);
    }
    nx_gen_event ev[3];
    int got[3] = {0};
    memset(out, 0, sizeof(int32_t) * 3 * 20);
    while (nx_gen_busy(&g))
        for (int i = 0, n = nx_gen_step(&g, ev); i < n; i++) out[ev[i].slot][got[ev[i].slot]++] = ev[i].token;
    nx_gen_free(&g);
    be->replay = keep;
}

/* CUDA: decode steps recorded once and replayed (graphs) give the tokens
 * of the same steps run op by op, as slots finish and the rows shrink
 * (each row count its own recording), in fp32 and bf16 precision. */
TEST(cuda_replayed_decode_steps_equal_direct_ones) {
    nx_err e;
    nx_backend *cuda = nx_backend_cuda(&e);
    if (!cuda) SKIP("%.200s", e.msg);
    nx_model m, mc;
    random_model(&m, base(), 12);
    nx_model_config cfg = base();
    NX_ASSERT(nx_model_init_on(&mc, &cfg, NX_F32, cuda, NULL) == NX_OK);
    float *buf = malloc(sizeof(float) * m.nparams);
    for (int i = 0; i < m.ntab; i++) {
        nx_model_get(&m, i, buf);
        nx_model_set(&mc, i, buf, NX_F32);
    }
    for (int p = 0; p < 2; p++) {
        NX_ASSERT(nx_backend_set_precision(cuda, p ? NX_PREC_BF16 : NX_PREC_FP32, NULL) == NX_OK);
        int32_t direct[3][20], replayed[3][20];
        cuda_tokens(&mc, false, direct);
        cuda_tokens(&mc, true, replayed);
        CHECKF(memcmp(direct, replayed, sizeof direct) == 0, "replayed tokens differ (%s)", p ? "bf16" : "fp32");
    }
    NX_ASSERT(nx_backend_set_precision(cuda, NX_PREC_FP32, NULL) == NX_OK);
    free(buf);
    nx_model_free(&mc);
    nx_model_free(&m);
}
