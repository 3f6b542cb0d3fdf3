/* test_teachers.c — the teacher families against transformers 5.17 and
 * tokenizers 0.23, on the fixtures of tests/fixtures/teachers (made by
 * scripts/make_teacher_fixtures.py on the GPU machine, float64 on its CPU):
 *
 *   llama31  llama3 rope, tied embeddings, Llama 3 byte-level tokenizer
 *   qwen25   q/k/v bias, tied, NFC tokenizer, sliding window 12 from layer 1
 *   qwen3    per-head q/k norms, head_dim 16 (≠ C / NH), yarn rope
 *   mistral  sliding window 16 on every layer, SentencePiece-style tokenizer
 *
 * Each: the rotary frequencies transformers used (1e-6), logits and every
 * hidden state of a 2 × 48 batch (1e-4), the mean next-token cross entropy
 * (1e-5) and its gradient w.r.t. every parameter (1e-3), and 64 greedy
 * tokens after an 8-token prompt through the KV cache, equal to
 * transformers' (the window slides past the cache's start). And the llama31
 * weights under every rope type (rope-variants.json). The tokenizer styles
 * of the same folder are tested in test_tokenizer.c. */
#include <cJSON.h>
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/model.h"
#include "nexus/ops.h"
#include "nexus/safetensors.h"
#include "nxtest.h"

#define FIX "tests/fixtures/teachers/"

static cJSON *read_json(const char *path) {
    size_t n;
    nx_err e;
    char *txt = nx_read_file(path, 1u << 30, &n, &e);
    if (!txt) return fprintf(stderr, "  %s\n", e.msg), NULL;
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    return j;
}

/* A golden tensor widened to f32 (NULL and a message when absent). */
static float *golden(const nx_safetensors *g, const char *name, long *numel) {
    const nx_st_tensor *t = nx_st_find(g, name);
    if (!t) return fprintf(stderr, "  golden tensor %s missing\n", name), NULL;
    long n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    float *out = malloc(sizeof(float) * (n ? n : 1));
    if (t->dtype == NX_I32)
        for (long i = 0; i < n; i++) out[i] = (float)((const int32_t *)t->data)[i];
    else nx_convert_to_f32(out, t->data, t->dtype, n);
    if (numel) *numel = n;
    return out;
}

static int32_t *golden_ids(const nx_safetensors *g, const char *name, long *numel) {
    const nx_st_tensor *t = nx_st_find(g, name);
    NX_ASSERT(t && t->dtype == NX_I32);
    long n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    int32_t *out = malloc(sizeof(int32_t) * n);
    memcpy(out, t->data, sizeof(int32_t) * n);
    *numel = n;
    return out;
}

/* The rotary frequencies of cfg against transformers' for a sequence of T. */
static void check_rope(const nx_model_config *c, const double *want, int n, double att_want, int T, const char *what) {
    double inv[256], worst = 0;
    NX_ASSERT(c->HS / 2 <= 256);
    double att = nx_rope_inv_freq(inv, c->HS, c->rope_theta, &c->rope, T);
    CHECKF(n == c->HS / 2, "%s: %d frequencies, transformers has %d", what, c->HS / 2, n);
    for (int i = 0; i < n && i < c->HS / 2; i++) worst = fmax(worst, fabs(inv[i] - want[i]) / want[i]);
    CHECKF(worst < 1e-6, "%s: rope frequencies off by %.3g", what, worst);
    CHECKF(fabs(att - att_want) < 1e-12, "%s: attention factor %.17g, transformers %.17g", what, att, att_want);
}

/* Greedy decoding through the KV cache: prefill the prompt, then one row at a time. */
static void greedy(const nx_model *m, const int32_t *prompt, int P, int n, int32_t *out) {
    nx_kv_cache kv;
    nx_acts a;
    nx_err e;
    NX_ASSERT(nx_kv_cache_init(&kv, m, 1, P + n, &e) == NX_OK);
    NX_ASSERT(nx_acts_init_rows(&a, m, P, 1, P + n, NX_ACTS_STREAM, &e) == NX_OK);
    int32_t tok[1];
    for (int i = 0; i < n; i++) {
        nx_span sp = i == 0 ? (nx_span){0, 0, P} : (nx_span){0, P + i - 1, 1};
        nx_batch b = {.N = sp.len, .ids = i == 0 ? prompt : tok, .spans = &sp, .nspans = 1, .kv = &kv,
                      .out = NX_OUT_LAST};
        nx_model_run(m, &a, &b);
        int best = 0;
        for (int v = 1; v < m->cfg.V; v++)
            if (a.logits[v] > a.logits[best]) best = v;
        out[i] = tok[0] = best;
    }
    nx_acts_free(&a);
    nx_kv_cache_free(&kv);
}

static void check_teacher(const char *name) {
    char dir[256], gp[256], jp[256];
    snprintf(dir, sizeof dir, FIX "%s", name);
    snprintf(gp, sizeof gp, FIX "%s/golden.safetensors", name);
    snprintf(jp, sizeof jp, FIX "%s/golden.json", name);
    nx_err e = {{0}};
    nx_model m;
    if (nx_hf_load_model(dir, &m, &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    const nx_model_config *c = &m.cfg;
    nx_safetensors g;
    NX_ASSERT(nx_st_open(&g, gp, &e) == NX_OK);
    cJSON *meta = read_json(jp);
    NX_ASSERT(meta);
    long n_ids;
    int32_t *ids = golden_ids(&g, "input_ids", &n_ids);
    int B = (int)nx_st_find(&g, "input_ids")->shape[0], T = (int)(n_ids / B), N = B * T;

    /* the frequencies transformers rotates with */
    const nx_st_tensor *inv = nx_st_find(&g, "inv_freq64");
    NX_ASSERT(inv && inv->dtype == NX_F64);
    check_rope(c, (const double *)inv->data, (int)inv->shape[0],
               cJSON_GetObjectItem(meta, "attention_scaling")->valuedouble, T, name);

    /* logits, hidden states, loss, gradients */
    nx_acts a;
    NX_ASSERT(nx_acts_init(&a, &m, B, T, NX_ACTS_TRAIN, &e) == NX_OK);
    nx_model_forward(&m, &a, ids, B, T, true);
    float *ref = golden(&g, "logits", NULL);
    double err = nxt_rel_err(a.logits, ref, (long)N * c->V), worst_h = 0;
    CHECKF(err <= 1e-4, "%s logits: relative error %.3g", name, err);
    free(ref);
    for (int i = 0; i <= c->L; i++) {
        char hn[32];
        snprintf(hn, sizeof hn, "hidden.%d", i);
        float *h = golden(&g, hn, NULL);
        double eh = nxt_rel_err(nx_acts_hidden(&a, c, i), h, (long)N * c->C);
        CHECKF(eh <= 1e-4, "%s %s: relative error %.3g", name, hn, eh);
        worst_h = fmax(worst_h, eh);
        free(h);
    }
    int32_t *tg = malloc(sizeof(int32_t) * N);
    for (int n = 0; n < N; n++) tg[n] = n % T == T - 1 ? -1 : ids[n + 1];
    memset(a.dlogits, 0, sizeof(float) * N * c->V);
    double loss, loss_ref = cJSON_GetObjectItem(meta, "loss")->valuedouble;
    nx_cross_entropy(m.be, &loss, a.dlogits, 1.0f, a.logits, tg, N, c->V);
    CHECKF(fabs(loss - loss_ref) <= 1e-5 * fabs(loss_ref), "%s loss %.9g, transformers %.9g", name, loss, loss_ref);
    float *grads = calloc(m.nparams, sizeof(float));
    nx_model_backward(&m, &a, grads, NX_GRAD_ADD, NULL, NULL);
    double worst_g = 0;
    const char *worst_n = "";
    for (int i = 0; i < m.ntab; i++) {
        char gn[128];
        snprintf(gn, sizeof gn, "grad.%s", m.tab[i].name);
        long numel;
        float *want = golden(&g, gn, &numel);
        if (!want) { CHECKF(0, "%s: no golden gradient for %s", name, m.tab[i].name); continue; }
        CHECK(numel == (long)m.tab[i].numel);
        double eg = nxt_rel_err(nx_param_f32(&m.tab[i], grads), want, numel);
        CHECKF(eg <= 1e-3, "%s %s: relative error %.3g", name, gn, eg);
        if (eg > worst_g) worst_g = eg, worst_n = m.tab[i].name;
        free(want);
    }
    printf("  %-8s logits %.1e, hidden %.1e, loss %.1e, gradients %.1e (%s)", name, err, worst_h,
           fabs(loss - loss_ref) / fabs(loss_ref), worst_g, worst_n);

    /* 64 greedy tokens through the KV cache */
    long P, G;
    int32_t *prompt = golden_ids(&g, "gen_prompt", &P), *want = golden_ids(&g, "gen_ids", &G), got[128];
    NX_ASSERT(G <= 128);
    greedy(&m, prompt, (int)P, (int)G, got);
    int same = 0;
    while (same < G && got[same] == want[same]) same++;
    CHECKF(same == G, "%s: greedy generation leaves transformers' at token %d of %ld (%d, not %d)", name, same, G,
           same < G ? got[same] : -1, same < G ? want[same] : -1);
    printf(", greedy %d/%ld equal\n", same, G);

    free(prompt), free(want), free(grads), free(tg), free(ids);
    nx_acts_free(&a);
    cJSON_Delete(meta);
    nx_st_close(&g);
    nx_model_free(&m);
}

TEST(llama31_llama3_rope_tied) { check_teacher("llama31"); }
TEST(qwen25_bias_tied_sliding_window_from_layer_1) { check_teacher("qwen25"); }
TEST(qwen3_qk_norm_head_dim_yarn) { check_teacher("qwen3"); }
TEST(mistral_sliding_window_every_layer) { check_teacher("mistral"); }

/* A Mistral config whose window is shorter than the sequence: windowed
 * attention differs from full attention (what nexus once computed). */
TEST(mistral_window_changes_the_logits) {
    nx_model m;
    nx_err e;
    NX_ASSERT(nx_hf_load_model(FIX "mistral", &m, &e) == NX_OK);
    CHECK(m.cfg.window == 16 && m.cfg.window_from == 0);
    nx_acts a;
    int T = 48;
    int32_t ids[48];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(3 + 7 * t % (m.cfg.V - 3));
    NX_ASSERT(nx_acts_init(&a, &m, 1, T, NX_ACTS_INFER, &e) == NX_OK);
    nx_model_forward(&m, &a, ids, 1, T, true);
    float *win = malloc(sizeof(float) * T * m.cfg.V);
    memcpy(win, a.logits, sizeof(float) * T * m.cfg.V);
    m.cfg.window = 0;
    nx_model_forward(&m, &a, ids, 1, T, true);
    CHECK_REL(a.logits, win, 16L * m.cfg.V, 1e-6);           /* the first 16 rows see the same keys */
    CHECK(nxt_rel_err(a.logits, win, (long)T * m.cfg.V) > 1e-3); /* later ones do not */
    free(win);
    nx_acts_free(&a);
    nx_model_free(&m);
}

/* The llama31 weights under each rope type: frequencies and logits. */
TEST(rope_variants_match_transformers) {
    cJSON *j = read_json(FIX "rope-variants.json");
    NX_ASSERT(j);
    cJSON *cfg0 = read_json(FIX "llama31/config.json"), *ids_j = cJSON_GetObjectItem(j, "input_ids"), *v;
    int T = cJSON_GetArraySize(ids_j);
    int32_t ids[64];
    NX_ASSERT(T <= 64);
    for (int t = 0; t < T; t++) ids[t] = cJSON_GetArrayItem(ids_j, t)->valueint;
    nxt_tmp_make("rope");
    char full[512];
    NX_ASSERT(realpath(FIX "llama31/model.safetensors", full));
    NX_ASSERT(symlink(full, nxt_tpath("model.safetensors")) == 0);
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, "variants")) {
        cJSON *cfg = cJSON_Duplicate(cfg0, true);
        cJSON_ReplaceItemInObject(cfg, "rope_parameters", cJSON_Duplicate(cJSON_GetObjectItem(v, "rope_parameters"), true));
        cJSON_ReplaceItemInObject(cfg, "max_position_embeddings", cJSON_CreateNumber(256));
        char *txt = cJSON_Print(cfg);
        FILE *f = fopen(nxt_tpath("config.json"), "w");
        fputs(txt, f);
        fclose(f);
        free(txt);
        cJSON_Delete(cfg);
        nx_model m;
        nx_err e;
        if (nx_hf_load_model(nxt_tmpdir(), &m, &e)) {
            CHECKF(0, "%s: %s", v->string, e.msg);
            continue;
        }
        cJSON *inv_j = cJSON_GetObjectItem(v, "inv_freq");
        double inv[64];
        int n = cJSON_GetArraySize(inv_j);
        for (int i = 0; i < n && i < 64; i++) inv[i] = cJSON_GetArrayItem(inv_j, i)->valuedouble;
        check_rope(&m.cfg, inv, n, cJSON_GetObjectItem(v, "attention_scaling")->valuedouble, T, v->string);
        nx_acts a;
        NX_ASSERT(nx_acts_init(&a, &m, 1, T, NX_ACTS_INFER, &e) == NX_OK);
        nx_model_forward(&m, &a, ids, 1, T, true);
        cJSON *rows = cJSON_GetObjectItem(v, "logit_rows"), *lg = cJSON_GetObjectItem(v, "logits");
        int V = m.cfg.V, R = cJSON_GetArraySize(rows);
        CHECKF(R > 0 && cJSON_GetArraySize(lg) == R * V, "%s: %d logit rows, %d logits", v->string, R,
               cJSON_GetArraySize(lg));
        float *want = malloc(sizeof(float) * R * V), *got = malloc(sizeof(float) * R * V);
        for (int r = 0; r < R; r++) {
            int row = cJSON_GetArrayItem(rows, r)->valueint;
            memcpy(got + (long)r * V, a.logits + (long)row * V, sizeof(float) * V);
            for (int k = 0; k < V; k++) want[(long)r * V + k] = (float)cJSON_GetArrayItem(lg, r * V + k)->valuedouble;
        }
        double err = nxt_rel_err(got, want, (long)R * V);
        CHECKF(err <= 1e-4, "%s: logits relative error %.3g", v->string, err);
        printf("  %-12s logits rel err %.1e\n", v->string, err);
        free(want), free(got);
        nx_acts_free(&a);
        nx_model_free(&m);
    }
    nxt_tmp_remove();
    cJSON_Delete(cfg0);
    cJSON_Delete(j);
}
