/* golden_model.c — nexus against PyTorch float64 references in
 * ../shared/golden: logits and every hidden state of teacher and student
 * (1e-4 relative), the loss terms ce, kd and total (1e-5 relative), and the
 * gradient of the loss w.r.t. every student parameter (1e-3 relative); for
 * llama-gqa also each distillation loss alone (forward KL at T=0.5,
 * reverse KL, JSD). Each case runs on the CPU backend and, in a build with
 * CUDA on a machine with a GPU, on the CUDA backend too (fp32). */
#include <cJSON.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/ops.h"
#include "nexus/model.h"
#include "nexus/safetensors.h"
#include "nxtest.h"

#define GOLDEN "../shared/golden/"

static float *tensor_f32(const nx_safetensors *st, const char *name, long expect_numel) {
    const nx_st_tensor *t = nx_st_find(st, name);
    if (!t) {
        fprintf(stderr, "  golden tensor %s missing\n", name);
        return NULL;
    }
    long n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    if (expect_numel >= 0 && n != expect_numel) {
        fprintf(stderr, "  golden tensor %s has %ld values, expected %ld\n", name, n, expect_numel);
        return NULL;
    }
    float *out = malloc(sizeof(float) * n);
    nx_convert_to_f32(out, t->data, t->dtype, n);
    return out;
}

static cJSON *read_json(const char *path) {
    size_t n;
    nx_err e;
    char *txt = nx_read_file(path, 1u << 30, &n, &e);
    if (!txt) {
        fprintf(stderr, "  %s\n", e.msg);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(txt, n);
    if (!j) fprintf(stderr, "  %s: not valid JSON\n", path);
    free(txt);
    return j;
}

static double jnum(cJSON *o, const char *a, const char *b) {
    cJSON *x = cJSON_GetObjectItem(o, a);
    if (b) x = cJSON_GetObjectItem(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

typedef struct {
    nx_backend *be;
    nx_model s, t;
    nx_acts sa, ta;
    nx_safetensors g;
    int32_t *ids, *tg;  /* (B, T), sized from the golden file's input_ids */
    int32_t *tg_dev;    /* the targets on the backend */
    double *loss;       /* one loss value on the backend */
    int B, T, N;
} fixture;

static bool setup(fixture *f, const char *name, nx_backend *be) {
    char p[256], sc[256], sw[256], tc[256], tw[256], g[256];
    nx_err e;
    snprintf(sc, sizeof sc, GOLDEN "%s/student/config.json", name);
    snprintf(sw, sizeof sw, GOLDEN "%s/student/model.safetensors", name);
    snprintf(tc, sizeof tc, GOLDEN "%s/teacher/config.json", name);
    snprintf(tw, sizeof tw, GOLDEN "%s/teacher/model.safetensors", name);
    snprintf(g, sizeof g, GOLDEN "%s/golden.safetensors", name);
    if (!NEED(sc, sw, tc, tw, g)) return false;
    snprintf(p, sizeof p, GOLDEN "%s/student", name);
    f->be = be;
    if (nx_hf_load_model_on(p, &f->s, NX_F32, be, &e)) return fprintf(stderr, "  %s\n", e.msg), false;
    snprintf(p, sizeof p, GOLDEN "%s/teacher", name);
    if (nx_hf_load_model_on(p, &f->t, NX_F32, be, &e)) return fprintf(stderr, "  %s\n", e.msg), false;
    if (nx_st_open(&f->g, g, &e)) return fprintf(stderr, "  %s\n", e.msg), false;
    const nx_st_tensor *ids = nx_st_find(&f->g, "input_ids");
    if (!ids || ids->dtype != NX_I32 || ids->ndim != 2 || ids->shape[0] < 1 || ids->shape[1] < 2 ||
        ids->shape[0] * ids->shape[1] > 1 << 20)
        return fprintf(stderr, "  %s: no 'input_ids' of I32 (B, T) with B >= 1, T >= 2\n", g), false;
    f->B = (int)ids->shape[0];
    f->T = (int)ids->shape[1];
    f->N = f->B * f->T;
    f->ids = malloc(sizeof(int32_t) * f->N);
    f->tg = malloc(sizeof(int32_t) * f->N);
    memcpy(f->ids, ids->data, sizeof(int32_t) * f->N);
    for (int n = 0; n < f->N; n++) f->tg[n] = (n % f->T == f->T - 1) ? -1 : f->ids[n + 1];
    f->tg_dev = nx_backend_alloc(be, sizeof(int32_t) * f->N, "targets", &e);
    f->loss = nx_backend_alloc(be, sizeof(double), "loss", &e);
    nx_backend_upload(be, f->tg_dev, f->tg, sizeof(int32_t) * f->N);
    if (nx_acts_init(&f->sa, &f->s, f->B, f->T, NX_ACTS_TRAIN, &e) ||
        nx_acts_init(&f->ta, &f->t, f->B, f->T, NX_ACTS_INFER, &e))
        return fprintf(stderr, "  %s\n", e.msg), false;
    nx_model_forward(&f->t, &f->ta, f->ids, f->B, f->T, true);
    nx_model_forward(&f->s, &f->sa, f->ids, f->B, f->T, true);
    return true;
}

static void teardown(fixture *f) {
    if (f->be) nx_backend_free(f->be, f->tg_dev), nx_backend_free(f->be, f->loss);
    free(f->ids);
    free(f->tg);
    nx_acts_free(&f->sa);
    nx_acts_free(&f->ta);
    nx_model_free(&f->s);
    nx_model_free(&f->t);
    nx_st_close(&f->g);
}

/* n floats of backend memory, on the host (malloc'd) */
static float *host(nx_backend *be, const float *p, long n) {
    float *h = malloc(sizeof(float) * n);
    nx_backend_download(be, h, p, sizeof(float) * n);
    return h;
}

static double loss_value(fixture *f) {
    double v;
    nx_backend_download(f->be, &v, f->loss, sizeof v);
    return v;
}

static void check_forward(fixture *f, const char *who, const nx_model *m, const nx_acts *a) {
    char name[64];
    snprintf(name, sizeof name, "%s.logits", who);
    float *ref = tensor_f32(&f->g, name, (long)f->N * m->cfg.V);
    CHECK(ref != NULL);
    if (ref) {
        float *got = host(f->be, a->logits, (long)f->N * m->cfg.V);
        double e = nxt_rel_err(got, ref, (long)f->N * m->cfg.V);
        free(got);
        CHECKF(e <= 1e-4, "%s: relative error %.3g", name, e);
        printf("  %-22s rel err %.2e\n", name, e);
    }
    free(ref);
    for (int i = 0; i <= m->cfg.L; i++) {
        snprintf(name, sizeof name, "%s.hidden.%d", who, i);
        ref = tensor_f32(&f->g, name, (long)f->N * m->cfg.C);
        CHECK(ref != NULL);
        if (!ref) continue;
        float *got = host(f->be, nx_acts_hidden(a, &m->cfg, i), (long)f->N * m->cfg.C);
        double e = nxt_rel_err(got, ref, (long)f->N * m->cfg.C);
        free(got);
        CHECKF(e <= 1e-4, "%s: relative error %.3g", name, e);
        printf("  %-22s rel err %.2e\n", name, e);
        free(ref);
    }
}

static void check_grads(fixture *f, const nx_safetensors *g, const char *prefix, const float *grads_dev) {
    float *grads = host(f->be, grads_dev, (long)f->s.nparams);
    int np = f->s.ntab;
    const nx_param *tab = f->s.tab;
    double worst = 0;
    const char *wn = "";
    for (int i = 0; i < np; i++) {
        char name[160];
        snprintf(name, sizeof name, "%sgrad.%s", prefix, tab[i].name);
        float *ref = tensor_f32(g, name, (long)tab[i].numel);
        CHECKF(ref != NULL, "%s", name);
        if (!ref) continue;
        double e = nxt_rel_err(nx_param_f32(&tab[i], grads), ref, (long)tab[i].numel);
        CHECKF(e <= 1e-3, "%s: relative error %.3g", name, e);
        if (e > worst) worst = e, wn = tab[i].name;
        free(ref);
    }
    printf("  %sgradients: %d tensors, worst rel err %.2e (%s)\n", prefix, np, worst, wn);
    free(grads);
}

static void run_case(const char *name, nx_backend *be) {
    fixture f;
    memset(&f, 0, sizeof f);
    if (!setup(&f, name, be)) {
        CHECKF(0, "set-up of %s failed (see above)", name);
        teardown(&f);
        return;
    }
    check_forward(&f, "teacher", &f.t, &f.ta);
    check_forward(&f, "student", &f.s, &f.sa);

    char p[256];
    snprintf(p, sizeof p, GOLDEN "%s/golden.json", name);
    cJSON *j = NEED(p) ? read_json(p) : NULL;
    CHECK(j != NULL);
    double temp = jnum(j, "loss", "temperature"), alpha = jnum(j, "loss", "alpha");
    double ce_ref = jnum(j, "loss", "ce"), kd_ref = jnum(j, "loss", "kd"), tot_ref = jnum(j, "loss", "total");
    cJSON_Delete(j);
    int V = f.s.cfg.V;
    float *dl = f.sa.dlogits;
    nx_backend_zero(be, dl, sizeof(float) * f.N * V);
    nx_cross_entropy(be, f.loss, dl, (float)(1 - alpha), f.sa.logits, f.tg_dev, f.N, V);
    double ce = loss_value(&f);
    nx_kd_loss(be, f.loss, NX_KD_FORWARD_KL, (float)temp, dl, (float)alpha, f.sa.logits, f.ta.logits, f.tg_dev, f.N, V);
    double kd = loss_value(&f);
    double tot = alpha * kd + (1 - alpha) * ce;
    printf("  ce %.9f (ref %.9f)  kd %.9f (ref %.9f)  total %.9f (ref %.9f)\n", ce, ce_ref, kd, kd_ref, tot, tot_ref);
    CHECKF(fabs(ce - ce_ref) <= 1e-5 * fabs(ce_ref), "ce rel err %.3g", fabs(ce - ce_ref) / ce_ref);
    CHECKF(fabs(kd - kd_ref) <= 1e-5 * fabs(kd_ref), "kd rel err %.3g", fabs(kd - kd_ref) / kd_ref);
    CHECKF(fabs(tot - tot_ref) <= 1e-5 * fabs(tot_ref), "total rel err %.3g", fabs(tot - tot_ref) / tot_ref);
    float *grads = nx_backend_alloc(be, f.s.nparams * sizeof(float), "gradients", NULL);
    nx_model_backward(&f.s, &f.sa, grads, NX_GRAD_ADD, NULL, NULL);
    check_grads(&f, &f.g, "", grads);
    nx_backend_free(be, grads);
    teardown(&f);
}

/* the backends to run every case on: the CPU, and the GPU where there is one */
static int backends(nx_backend **out) {
    int n = 0;
    out[n++] = nx_backend_cpu();
    nx_err e;
    nx_backend *cuda = nx_backend_cuda(&e);
    if (cuda) out[n++] = cuda;
    return n;
}

TEST(llama_gqa_matches_pytorch) {
    nx_backend *be[2];
    for (int i = 0, n = backends(be); i < n; i++) {
        printf("  [%s]\n", be[i]->name);
        run_case("llama-gqa", be[i]);
    }
}

TEST(qwen2_tied_bias_matches_pytorch) {
    nx_backend *be[2];
    for (int i = 0, n = backends(be); i < n; i++) {
        printf("  [%s]\n", be[i]->name);
        run_case("qwen2-tied-bias", be[i]);
    }
}

static void each_loss(nx_backend *be) {
    fixture f;
    memset(&f, 0, sizeof f);
    if (!setup(&f, "llama-gqa", be)) {
        CHECKF(0, "set-up of %s failed (see above)", "llama-gqa");
        teardown(&f);
        return;
    }
    nx_safetensors g;
    nx_err e;
    if (!NEED(GOLDEN "llama-gqa/golden_losses.safetensors", GOLDEN "llama-gqa/golden_losses.json")) {
        teardown(&f);
        return;
    }
    CHECKF(nx_st_open(&g, GOLDEN "llama-gqa/golden_losses.safetensors", &e) == NX_OK, "%s", e.msg);
    cJSON *j = read_json(GOLDEN "llama-gqa/golden_losses.json");
    CHECK(j != NULL);
    struct { const char *key; nx_kd_kind kind; } cases[] = {
        {"forward_kl_T0.5", NX_KD_FORWARD_KL}, {"reverse_kl_T1", NX_KD_REVERSE_KL}, {"jsd_T1", NX_KD_JSD}};
    int V = f.s.cfg.V;
    for (int c = 0; c < 3; c++) {
        double temp = jnum(j, cases[c].key, "temperature"), ref = jnum(j, cases[c].key, "value");
        float *dl = f.sa.dlogits;
        nx_backend_zero(be, dl, sizeof(float) * f.N * V);
        nx_kd_loss(be, f.loss, cases[c].kind, (float)temp, dl, 1.0f, f.sa.logits, f.ta.logits, f.tg_dev, f.N, V);
        double v = loss_value(&f);
        printf("  %-16s %.9f (ref %.9f)\n", cases[c].key, v, ref);
        CHECKF(fabs(v - ref) <= 1e-5 * fabs(ref), "%s rel err %.3g", cases[c].key, fabs(v - ref) / ref);
        float *grads = nx_backend_alloc(be, f.s.nparams * sizeof(float), "gradients", NULL);
        nx_model_backward(&f.s, &f.sa, grads, NX_GRAD_ADD, NULL, NULL);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s.", cases[c].key);
        check_grads(&f, &g, prefix, grads);
        nx_backend_free(be, grads);
    }
    cJSON_Delete(j);
    nx_st_close(&g);
    teardown(&f);
}

TEST(each_distillation_loss_matches_pytorch) {
    nx_backend *be[2];
    for (int i = 0, n = backends(be); i < n; i++) {
        printf("  [%s]\n", be[i]->name);
        each_loss(be[i]);
    }
}
