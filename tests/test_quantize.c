/* test_quantize.c — the quantizer (src/compress) and quantized model
 * directories (src/io/qstore.c) on small random models: each recipe's
 * types (Q4_K's fallback reported), calibration (the weighted search does
 * no worse than rounding on the weighted error; static scales from the
 * inputs), sensitivity and --keep-sensitive, the size budget; a directory
 * saved and loaded back bit for bit, and every way a directory can lie
 * refused with the file and tensor named, nothing left half-written. */
#include "nexus/blocks.h"
#include "nexus/hf.h"
#include "nexus/qstore.h"
#include "nexus/quantize.h"
#include "nxtest.h"

static nx_model_config cfg(void) {
    return (nx_model_config){.arch = NX_ARCH_LLAMA, .V = 96, .C = 64, .L = 2, .NH = 4, .KVH = 2, .HS = 16,
                             .F = 256, .max_pos = 64, .eps = 1e-5f, .rope_theta = 10000, .bos_id = -1,
                             .eos_id = -1, .dtype = NX_F32};
}

static void random_model(nx_model *m, nx_model_config c, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    NX_ASSERT(nx_model_init(m, &c, NULL) == NX_OK);
    nx_model_init_random(m, 0.05f, &r);
}

static int32_t *tokens(int n, int V, uint64_t seed) {
    nx_rng r;
    nx_rng_seed(&r, seed);
    int32_t *t = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) t[i] = (int32_t)nx_rng_below(&r, V);
    return t;
}

TEST(recipes_choose_types_and_report_fallbacks) {
    nx_model m, q;
    random_model(&m, cfg(), 1);
    nx_err err;
    nx_quantize_report rep;
    const char *types[] = {"q8_0", "q4_0", "q4_k_m", "w8a8"};
    for (int k = 0; k < 4; k++) {
        nx_quantize_opts o = {.type = types[k]};
        CHECKF(nx_quantize_model(&m, (nx_tokens){NULL, 4, 0}, &o, &q, &rep, &err) == NX_OK, "%s", err.msg);
        int ng = nx_model_ngroups(&m.cfg);
        for (int g = 0; g < ng; g++) {
            nx_group_type t = nx_model_group_type(&q, g);
            int rows, cols;
            nx_model_group_shape(&m.cfg, g, &rows, &cols);
            bool head = g == ng - 1;
            nx_dtype want = k == 0 || k == 3 ? NX_Q8_0 : head ? NX_Q8_0 : k == 1 ? NX_Q4_0 : cols % 256 ? NX_IQ4_NL : NX_Q4_K;
            CHECKF(t.type == want, "%s group %d: %s", types[k], g, nx_dtype_name(t.type));
            CHECK(t.act == (k == 3 ? NX_ACT_ROW : NX_ACT_BLOCK));
            CHECK(rep.fallback[g] == (k == 2 && !head && cols % 256 != 0));
        }
        CHECK(rep.nfallback == (k == 2 ? ng - 1 - m.cfg.L : 0)); /* all but the downs and the head */
        CHECK(rep.out_bytes < rep.src_bytes / 3 && !strcmp(rep.method, k == 3 ? "rtn+w8a8-dynamic" : "rtn"));
        /* the output runs and stays close to the source */
        nx_acts a, b;
        int32_t *ids = tokens(32, m.cfg.V, 5);
        NX_ASSERT(nx_acts_init(&a, &m, 1, 32, NX_ACTS_INFER, NULL) == NX_OK);
        NX_ASSERT(nx_acts_init(&b, &q, 1, 32, NX_ACTS_INFER, NULL) == NX_OK);
        nx_model_forward(&m, &a, ids, 1, 32, true);
        nx_model_forward(&q, &b, ids, 1, 32, true);
        double e = nxt_rel_err(b.logits, a.logits, 32L * m.cfg.V);
        CHECKF(e < (k == 0 || k == 3 ? 0.05 : 0.4), "%s: logits differ by %.3g", types[k], e);
        nx_acts_free(&a), nx_acts_free(&b);
        free(ids);
        nx_model_free(&q);
        nx_quantize_report_free(&rep);
    }
    nx_quantize_opts bad = {.type = "q3_k"};
    CHECK(nx_quantize_model(&m, (nx_tokens){NULL, 4, 0}, &bad, &q, NULL, &err) == NX_ERR && strstr(err.msg, "q3_k"));
    nx_quantize_opts st = {.type = "w8a8-static"};
    CHECK(nx_quantize_model(&m, (nx_tokens){NULL, 4, 0}, &st, &q, NULL, &err) == NX_ERR && strstr(err.msg, "calib"));
    nx_quantize_opts ks = {.type = "q4_0", .keep_sensitive = 2};
    CHECK(nx_quantize_model(&m, (nx_tokens){NULL, 4, 0}, &ks, &q, NULL, &err) == NX_ERR && strstr(err.msg, "--calib"));
    nx_model_free(&m);
}

TEST(calibration_sensitivity_and_kept_groups) {
    nx_model m, q;
    random_model(&m, cfg(), 2);
    int32_t *t = tokens(8 * 32, m.cfg.V, 3);
    nx_tokens toks = {t, 4, 8 * 32};
    nx_err err;
    nx_quantize_report rep;
    nx_quantize_opts o = {.type = "q4_0", .calib_windows = 8, .calib_seq = 32, .keep_sensitive = 2,
                          .keep_dtype = NX_BF16};
    CHECKF(nx_quantize_model(&m, toks, &o, &q, &rep, &err) == NX_OK, "%s", err.msg);
    int ng = nx_model_ngroups(&m.cfg), kept = 0;
    double kmin = 1e30, rmax = 0;
    for (int g = 0; g < ng; g++) {
        CHECK(rep.kl && rep.kl[g] >= 0);
        if (rep.chosen[g].type == NX_BF16) kept++, kmin = fmin(kmin, rep.kl[g]);
        else if (rep.chosen[g].type == NX_Q4_0) rmax = fmax(rmax, rep.kl[g]);
    }
    CHECK(kept == 2 && kmin >= rmax); /* the two highest KL kept */
    CHECK(!strcmp(rep.method, "imatrix+kl-mixed") && rep.calib_tokens == 8 * 32 && strlen(rep.calib_hash) == 16);
    nx_model_free(&q);
    nx_quantize_report_free(&rep);
    /* static W8A8: every group's scale is its inputs' largest |x| */
    nx_quantize_opts s = {.type = "w8a8-static", .calib_windows = 8, .calib_seq = 32};
    CHECKF(nx_quantize_model(&m, toks, &s, &q, &rep, &err) == NX_OK, "%s", err.msg);
    for (int g = 1; g < ng; g++) {
        nx_group_type gt = nx_model_group_type(&q, g);
        CHECK(gt.type == NX_Q8_0 && gt.act == NX_ACT_STATIC && gt.act_scale > 0);
    }
    nx_model_free(&q);
    nx_quantize_report_free(&rep);
    /* a size budget: upgrades to Q8_0 stay within it */
    nx_quantize_opts b0 = {.type = "q4_k_m"};
    NX_ASSERT(nx_quantize_model(&m, (nx_tokens){NULL, 4, 0}, &b0, &q, NULL, &err) == NX_OK);
    double budget = (q.nbytes + 6000) / 1048576.0;
    size_t base = q.nbytes;
    nx_model_free(&q);
    nx_quantize_opts b = {.type = "q4_k_m", .calib_windows = 8, .calib_seq = 32, .max_mib = budget};
    CHECKF(nx_quantize_model(&m, toks, &b, &q, &rep, &err) == NX_OK, "%s", err.msg);
    int up = 0;
    for (int g = 0; g < ng - 1; g++) up += rep.chosen[g].type == NX_Q8_0;
    CHECKF(q.nbytes <= budget * 1048576 && q.nbytes > base && up >= 1, "%zu bytes, %d upgraded", q.nbytes, up);
    nx_model_free(&q);
    nx_quantize_report_free(&rep);
    /* tokens outside the vocabulary */
    t[7] = m.cfg.V + 3;
    CHECK(nx_quantize_model(&m, toks, &o, &q, NULL, &err) == NX_ERR && strstr(err.msg, "vocabulary"));
    free(t);
    nx_model_free(&m);
}

/* The weighted search never does worse than rounding on the weighted error. */
TEST(weighted_search_beats_rounding) {
    nx_rng r;
    nx_rng_seed(&r, 9);
    int cols = 512, rows = 16, n = rows * cols;
    float *x = malloc(4 * n), *imp = malloc(4 * cols), *y = malloc(4 * n);
    for (int i = 0; i < n; i++) x[i] = nx_rng_normal(&r) * (1 + (i % 97 == 0) * 6);
    for (int c = 0; c < cols; c++) imp[c] = 0.1f + (float)nx_rng_uniform(&r) * (c % 7 == 0 ? 20 : 1);
    nx_dtype types[5] = {NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0};
    for (int k = 0; k < 5; k++) {
        void *q = malloc(nx_row_bytes(types[k], n));
        double e[2];
        for (int w = 0; w < 2; w++) {
            nx_quantize_weighted(types[k], q, x, n, cols, w ? imp : NULL);
            nx_type(types[k])->to_f32(y, q, n);
            e[w] = 0;
            for (int i = 0; i < n; i++) e[w] += imp[i % cols] * (double)(x[i] - y[i]) * (x[i] - y[i]);
        }
        printf("%s: weighted error, searched / rounded = %.3f\n", nx_dtype_name(types[k]), e[1] / e[0]);
        CHECKF(e[1] <= e[0] * 1.0001, "%s: searched %.4g > rounded %.4g", nx_dtype_name(types[k]), e[1], e[0]);
        free(q);
    }
    free(x), free(imp), free(y);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Replaces the first occurrence of `from` in path's text by `to`. */
static void edit(const char *path, const char *from, const char *to) {
    FILE *f = fopen(path, "r");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strstr(buf, from);
    NX_ASSERT(p);
    static char out[1 << 20];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(p - buf), buf, to, p + strlen(from));
    write_file(path, out);
}

TEST(quantized_directory_round_trip_and_refusals) {
    nxt_tmp_make("qstore");
    nx_model m, q, back;
    random_model(&m, cfg(), 4);
    nx_err err;
    nx_quantize_opts o = {.type = "q4_k_m"};
    NX_ASSERT(nx_quantize_model(&m, (nx_tokens){NULL, 4, 0}, &o, &q, NULL, &err) == NX_OK);
    nx_quant_meta meta = {.keep_sensitive = 0};
    snprintf(meta.type, sizeof meta.type, "q4_k_m");
    snprintf(meta.method, sizeof meta.method, "rtn");
    char dir[600], cp[2400];
    snprintf(dir, sizeof dir, "%s", nxt_tpath("q"));
    CHECKF(nx_qstore_save(dir, &q, &meta, NULL, &err) == NX_OK, "%s", err.msg);
    CHECK(nx_qstore_is(dir));
    nx_quant_meta got;
    CHECKF(nx_qstore_load(dir, &back, nx_backend_cpu(), &got, &err) == NX_OK, "%s", err.msg);
    CHECK(back.nbytes == q.nbytes && memcmp(back.data, q.data, q.nbytes) == 0);
    CHECK(!strcmp(got.type, "q4_k_m") && !strcmp(got.method, "rtn") && got.calib_file[0] == 0);
    for (int g = 0; g < nx_model_ngroups(&m.cfg); g++)
        CHECK(nx_model_group_type(&back, g).type == nx_model_group_type(&q, g).type);
    nx_model_free(&back);
    /* nx_hf_load_model loads it with its stored types, whatever hold says */
    CHECKF(nx_hf_load_model(dir, &back, &err) == NX_OK, "%s", err.msg);
    CHECK(back.params == NULL && back.nbytes == q.nbytes);
    nx_model_free(&back);
    /* an existing non-empty directory is refused and left alone */
    CHECK(nx_qstore_save(dir, &q, &meta, NULL, &err) == NX_ERR && strstr(err.msg, "not empty"));
    CHECK(nx_qstore_is(dir));
    /* lies in quantization.json */
    snprintf(cp, sizeof cp, "cp -r %s %s.b", dir, dir);
    struct { const char *from, *to, *says; } lies[] = {
        {"\"Q4_K\"", "\"Q5_K\"", "weight type"},
        {"\"IQ4_NL\"", "\"Q8_0\"", "U8"},
        {"\"nexus-quantized\"", "\"other\"", "version 1"},
        {"\"act\":\t\"block\"", "\"act\": \"static\"", "act_scale"},
        {"\"model.layers.0.self_attn.q_proj.weight\"", "\"renamed\"", "no entry"},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        char d2[700], qj[800];
        snprintf(d2, sizeof d2, "%s.b", dir);
        snprintf(cp, sizeof cp, "rm -rf %s && cp -r %s %s", d2, dir, d2);
        NX_ASSERT(system(cp) == 0);
        snprintf(qj, sizeof qj, "%s/quantization.json", d2);
        edit(qj, lies[i].from, lies[i].to);
        int rc = nx_qstore_load(d2, &back, nx_backend_cpu(), NULL, &err);
        CHECKF(rc == NX_ERR && strstr(err.msg, lies[i].says), "lie %zu: %s", i, rc ? err.msg : "loaded");
        if (rc == NX_OK) nx_model_free(&back);
    }
    /* stacked matrices must share a type: k_proj alone changed */
    {
        char d2[700], qj[800];
        snprintf(d2, sizeof d2, "%s.b", dir);
        snprintf(cp, sizeof cp, "rm -rf %s && cp -r %s %s", d2, dir, d2);
        NX_ASSERT(system(cp) == 0);
        snprintf(qj, sizeof qj, "%s/quantization.json", d2);
        edit(qj, "\"model.layers.1.self_attn.k_proj.weight\":\t{\n\t\t\t\"type\":\t\"IQ4_NL\"",
             "\"model.layers.1.self_attn.k_proj.weight\":\t{\n\t\t\t\"type\":\t\"Q4_0\"");
        CHECK(nx_qstore_load(d2, &back, nx_backend_cpu(), NULL, &err) == NX_ERR && strstr(err.msg, "share a type"));
    }
    /* a Q4_K matrix whose rows cannot hold super-blocks */
    {
        nx_group_type gt[16];
        for (int g = 0; g < nx_model_ngroups(&m.cfg); g++) gt[g] = (nx_group_type){NX_Q4_K, NX_ACT_BLOCK, 0};
        CHECK(nx_model_init_typed(&back, &m.cfg, gt, nx_backend_cpu(), &err) == NX_ERR && strstr(err.msg, "Q4_K"));
    }
    /* a failed save leaves nothing: the destination's parent is a file */
    char f[700], d3[800];
    snprintf(f, sizeof f, "%s/file", nxt_tmpdir());
    write_file(f, "x");
    snprintf(d3, sizeof d3, "%s/sub", f);
    CHECK(nx_qstore_save(d3, &q, &meta, NULL, &err) == NX_ERR);
    nx_model_free(&q);
    nx_model_free(&m);
    nxt_tmp_remove();
}
