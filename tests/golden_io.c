/* golden_io.c — safetensors and HF config reading/writing against the real
 * checkpoints in ../shared: teacher-19m (bf16 Llama, GQA) and the golden
 * llama-gqa / qwen2-tied-bias teacher and student directories. Checks the
 * config fields, that every parameter widens to a finite value, and that
 * saving gives back the original tensor bytes (bit-identical) and is
 * deterministic (load→save→load→save: identical files). */
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nxtest.h"

#define SHARED "../shared"

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    nx_err err = {{0}};
    char *x = nx_read_file(a, 1u << 30, &na, &err);
    CHECKF(x, "%s", err.msg);
    char *y = x ? nx_read_file(b, 1u << 30, &nb, &err) : NULL;
    CHECKF(!x || y, "%s", err.msg);
    bool eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static double param_sum(const nx_model *m) {
    double s = 0;
    for (size_t i = 0; i < m->nparams; i++) s += m->params[i];
    return s;
}

TEST(teacher19m_config) {
    nx_model_config c;
    nx_err err = {{0}};
    if (nx_hf_load_config(SHARED "/models/teacher-19m", &c, &err) != NX_OK) {
        CHECKF(0, "%s", err.msg); /* names the missing or broken file */
        return;
    }
    CHECK(c.arch == NX_ARCH_LLAMA);
    CHECK(c.V == 8192 && c.C == 384 && c.L == 8 && c.NH == 6 && c.KVH == 2 && c.HS == 64 && c.F == 1024);
    CHECK(c.max_pos == 1024 && !c.tied && !c.qkv_bias && !c.o_bias);
    CHECK(c.eps == 1e-5f && c.rope_theta == 10000.0f && c.dtype == NX_BF16);
    CHECK(c.bos_id == 0 && c.eos_id == 0);
    CHECK(nx_model_numel(&c) > 18000000);
}

/* Tensor-by-tensor comparison of two safetensors files: names, dtypes,
 * shapes and bytes. */
static void check_same_tensors(const char *a, const char *b) {
    nx_safetensors x, y;
    nx_err err = {{0}};
    CHECKF(nx_st_open(&x, a, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_st_open(&y, b, &err) == NX_OK, "%s", err.msg);
    CHECK(x.n == y.n);
    int bad = 0;
    for (int i = 0; i < x.n; i++) {
        const nx_st_tensor *t = &x.t[i], *u = nx_st_find(&y, t->name);
        if (!u || u->dtype != t->dtype || u->ndim != t->ndim || u->nbytes != t->nbytes ||
            memcmp(u->shape, t->shape, sizeof t->shape) || memcmp(u->data, t->data, t->nbytes)) {
            if (!bad++) fprintf(stderr, "  tensor %s differs\n", t->name);
        }
    }
    CHECK(bad == 0);
    nx_st_close(&x);
    nx_st_close(&y);
}

static void round_trip(const char *dir, nx_dtype dt, bool whole_file_same) {
    char d1[96], d2[96], f0[300], f1[300], f2[300], c0[300], c1[300], c2[300];
    snprintf(f0, sizeof f0, "%.200s/model.safetensors", dir);
    snprintf(c0, sizeof c0, "%.200s/config.json", dir);
    if (!NEED(c0, f0)) return;
    nxt_tmp_make("golden_io");
    snprintf(d1, sizeof d1, "%s/a", nxt_tmpdir());
    snprintf(d2, sizeof d2, "%s/b", nxt_tmpdir());
    snprintf(f1, sizeof f1, "%s/model.safetensors", d1);
    snprintf(f2, sizeof f2, "%s/model.safetensors", d2);
    snprintf(c1, sizeof c1, "%s/config.json", d1);
    snprintf(c2, sizeof c2, "%s/config.json", d2);
    nx_model m, m2;
    nx_err err = {{0}};
    double t0 = nx_now();
    if (nx_hf_load_model(dir, &m, &err) != NX_OK) {
        CHECKF(0, "%s", err.msg);
        nxt_tmp_remove();
        return;
    }
    double t1 = nx_now();
    double s = param_sum(&m);
    CHECKF(isfinite(s), "sum of params %g", s);
    fprintf(stderr, "  %s: %zu params, sum %.6g, load %.3f s\n", dir, m.nparams, s, t1 - t0);
    CHECKF(nx_hf_save_model(d1, &m, dt, &err) == NX_OK, "%s", err.msg);
    check_same_tensors(f0, f1);
    if (whole_file_same) CHECKF(same_file(f0, f1), "%s and %s differ as files", f0, f1);
    CHECKF(nx_hf_load_model(d1, &m2, &err) == NX_OK, "%s", err.msg);
    CHECK(m2.nparams == m.nparams && memcmp(m2.params, m.params, m.nparams * 4) == 0);
    CHECK(m2.cfg.V == m.cfg.V && m2.cfg.C == m.cfg.C && m2.cfg.L == m.cfg.L && m2.cfg.KVH == m.cfg.KVH &&
          m2.cfg.HS == m.cfg.HS && m2.cfg.F == m.cfg.F && m2.cfg.tied == m.cfg.tied && m2.cfg.eps == m.cfg.eps &&
          m2.cfg.rope_theta == m.cfg.rope_theta); /* field by field: padding is unspecified */
    CHECKF(nx_hf_save_model(d2, &m2, dt, &err) == NX_OK, "%s", err.msg);
    CHECK(same_file(f1, f2));
    CHECK(same_file(c1, c2));
    nx_model_free(&m);
    nx_model_free(&m2);
    nxt_tmp_remove();
}

TEST(teacher19m_round_trip_bf16) { round_trip(SHARED "/models/teacher-19m", NX_BF16, true); }

TEST(golden_dirs) {
    const char *dirs[] = {"llama-gqa/teacher", "llama-gqa/student", "qwen2-tied-bias/teacher",
                          "qwen2-tied-bias/student"};
    for (int i = 0; i < 4; i++) {
        char d[256];
        snprintf(d, sizeof d, SHARED "/golden/%s", dirs[i]);
        nx_model_config c;
        nx_err err = {{0}};
        if (nx_hf_load_config(d, &c, &err) != NX_OK) {
            CHECKF(0, "%s", err.msg); /* names the missing or broken file */
            continue;
        }
        bool qwen = i >= 2;
        CHECK(c.arch == (qwen ? NX_ARCH_QWEN2 : NX_ARCH_LLAMA));
        CHECK(c.tied == qwen && c.qkv_bias == qwen && !c.o_bias);
        CHECK(c.V == 256 && c.dtype == NX_F32);
        CHECK(qwen ? (c.bos_id == -1 && c.eos_id == -1 && c.eps == 1e-6f) : (c.bos_id == 1 && c.eos_id == 2));
        round_trip(d, NX_F32, true);
    }
}

TEST(golden_safetensors_open) {
    const char *files[] = {"llama-gqa/golden.safetensors", "llama-gqa/golden_losses.safetensors",
                           "qwen2-tied-bias/golden.safetensors"};
    for (int i = 0; i < 3; i++) {
        char p[256];
        snprintf(p, sizeof p, SHARED "/golden/%s", files[i]);
        nx_safetensors st;
        nx_err err = {{0}};
        CHECKF(nx_st_open(&st, p, &err) == NX_OK, "%s", err.msg);
        CHECK(st.n > 0);
        nx_st_close(&st);
    }
}
