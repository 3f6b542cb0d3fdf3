/* test_hf.c — Hugging Face config.json parsing and model directories:
 * defaults and transformers 4/5 spellings, every refusal naming its file
 * and key, save/load round trips in F32/BF16/F16, sharded checkpoints, and
 * the tensor checks (missing, extra, wrong shape, tied head). Fixtures are
 * written to a mkdtemp dir. */
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/hf.h"
#include "nexus/run.h"
#include "nxtest.h"

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

#define LLAMA_BASE                                                                                   \
    "\"vocab_size\": 32, \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, " \
    "\"intermediate_size\": 24"

static int load_cfg(const char *json, nx_model_config *c, nx_err *err) {
    write_text(nxt_tpath("config.json"), json);
    return nx_hf_load_config(nxt_tmpdir(), c, err);
}

static void expect_cfg_error(const char *json, const char *n1, const char *n2) {
    nx_model_config c;
    nx_err err = {{0}};
    CHECKF(load_cfg(json, &c, &err) == NX_ERR, "accepted: %s", json);
    CHECKF(strstr(err.msg, "config.json") != NULL, "no file name: %s", err.msg);
    if (n1) CHECKF(strstr(err.msg, n1) != NULL, "lacks '%s': %s", n1, err.msg);
    if (n2) CHECKF(strstr(err.msg, n2) != NULL, "lacks '%s': %s", n2, err.msg);
}

TEST(config_llama_v5_and_defaults) {
    nxt_tmp_make("hf");
    nx_model_config c;
    nx_err err = {{0}};
    CHECKF(load_cfg("{\"model_type\": \"llama\", " LLAMA_BASE ", \"num_key_value_heads\": 2, "
                    "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}, "
                    "\"dtype\": \"bfloat16\", \"bos_token_id\": 1, \"eos_token_id\": [7, 8], "
                    "\"rms_norm_eps\": 1e-05, \"attention_bias\": true, \"head_dim\": null}",
                    &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.arch == NX_ARCH_LLAMA && c.V == 32 && c.C == 16 && c.L == 2 && c.NH == 4 && c.KVH == 2);
    CHECK(c.HS == 4 && c.F == 24 && c.max_pos == 2048 && c.rope_theta == 500000.0f && c.eps == 1e-5f);
    CHECK(c.dtype == NX_BF16 && c.bos_id == 1 && c.eos_id == 7 && !c.tied && c.qkv_bias && c.o_bias);
    /* transformers 4: rope_theta top level, torch_dtype; defaults */
    CHECKF(load_cfg("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_theta\": 1000.0, "
                    "\"torch_dtype\": \"float16\", \"bos_token_id\": null, \"rope_scaling\": null}",
                    &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.KVH == 4 && c.rope_theta == 1000.0f && c.dtype == NX_F16 && c.bos_id == -1 && c.eos_id == -1);
    CHECK(c.eps == 1e-6f && !c.qkv_bias && !c.o_bias);
    /* Llama 3.1 (v4 rope_scaling) and the v5 form */
    CHECKF(load_cfg("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": "
                    "8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": "
                    "8192, \"rope_type\": \"llama3\"}}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.rope.type == NX_ROPE_LLAMA3 && c.rope.factor == 8 && c.rope.original_max_pos == 8192 &&
          c.rope.high_freq_factor == 4 && c.rope_theta == 500000.0f);
    CHECKF(load_cfg("{\"model_type\": \"llama\", " LLAMA_BASE ", \"max_position_embeddings\": 4096, \"rope_parameters\": "
                    "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 1024, "
                    "\"beta_fast\": 16, \"truncate\": false, \"rope_theta\": 1e6}}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.rope.type == NX_ROPE_YARN && c.rope.factor == 4 && c.rope.original_max_pos == 1024 && c.rope.beta_fast == 16 &&
          c.rope.no_truncate && c.rope_theta == 1e6f);
    CHECKF(load_cfg("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": "
                    "2.0}}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.rope.type == NX_ROPE_DYNAMIC && c.rope.max_pos == 2048);
    /* explicit head_dim different from hidden/heads */
    CHECKF(load_cfg("{\"model_type\": \"llama\", " LLAMA_BASE ", \"head_dim\": 8}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.HS == 8);
    nxt_tmp_remove();
}

TEST(config_qwen2_mistral) {
    nxt_tmp_make("hf");
    nx_model_config c;
    nx_err err = {{0}};
    CHECKF(load_cfg("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, "
                    "\"tie_word_embeddings\": true, \"attention_bias\": false, \"sliding_window\": null, "
                    "\"use_sliding_window\": false, \"layer_types\": [\"full_attention\", \"full_attention\"]}",
                    &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.arch == NX_ARCH_QWEN2 && c.tied && c.qkv_bias && !c.o_bias && c.max_pos == 32768);
    CHECKF(load_cfg("{\"model_type\": \"qwen2\", " LLAMA_BASE "}", &c, &err) == NX_ERR, "qwen2 default 32 kv heads");
    CHECK(strstr(err.msg, "num_key_value_heads"));
    CHECKF(load_cfg("{\"model_type\": \"mistral\", " LLAMA_BASE ", \"num_key_value_heads\": 4, "
                    "\"sliding_window\": 4096}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.arch == NX_ARCH_MISTRAL && !c.qkv_bias && !c.tied && c.max_pos == 131072);
    CHECK(c.window == 4096 && c.window_from == 0 && nx_layer_window(&c, 0) == 4096);
    /* mistral: absent is transformers' 4096, null no window */
    CHECKF(load_cfg("{\"model_type\": \"mistral\", " LLAMA_BASE ", \"num_key_value_heads\": 4}", &c, &err) == NX_OK,
           "%s", err.msg);
    CHECK(c.window == 4096);
    CHECKF(load_cfg("{\"model_type\": \"mistral\", " LLAMA_BASE ", \"num_key_value_heads\": 4, \"sliding_window\": "
                    "null}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.window == 0);
    /* qwen2: a window only with use_sliding_window, from max_window_layers on */
    CHECKF(load_cfg("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, \"sliding_window\": 16}",
                    &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.window == 0);
    CHECKF(load_cfg("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, \"sliding_window\": 16, "
                    "\"use_sliding_window\": true, \"max_window_layers\": 1}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.window == 16 && c.window_from == 1 && nx_layer_window(&c, 0) == 0 && nx_layer_window(&c, 1) == 16);
    CHECKF(load_cfg("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, \"use_sliding_window\": "
                    "true}", &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.window == 0); /* max_window_layers 28 > 2 layers: none slides */
    CHECKF(load_cfg("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, \"use_sliding_window\": "
                    "true, \"sliding_window\": 8, \"layer_types\": [\"sliding_attention\", \"sliding_attention\"]}",
                    &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.window == 8 && c.window_from == 0);
    expect_cfg_error("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, "
                     "\"layer_types\": [\"sliding_attention\"]}", "layer_types", "lists 1 layers");
    expect_cfg_error("{\"model_type\": \"qwen2\", " LLAMA_BASE ", \"num_key_value_heads\": 2, "
                     "\"layer_types\": [\"sliding_attention\", \"full_attention\"]}", "layer_types", "after a sliding");
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", "
                     "\"layer_types\": [\"full_attention\", \"sliding_attention\"]}", "layer_types", "llama");
    /* qwen3: q/k norms, head_dim 128 unless given, attention_bias on all four */
    CHECKF(load_cfg("{\"model_type\": \"qwen3\", " LLAMA_BASE ", \"num_key_value_heads\": 2, \"attention_bias\": true}",
                    &c, &err) == NX_OK, "%s", err.msg);
    CHECK(c.arch == NX_ARCH_QWEN3 && c.qk_norm && c.HS == 128 && c.qkv_bias && c.o_bias && c.max_pos == 32768);
    nxt_tmp_remove();
}

TEST(config_errors_name_key) {
    nxt_tmp_make("hf");
    expect_cfg_error("{\"model_type\": \"gpt2\", " LLAMA_BASE "}", "model_type", "'gpt2'");
    expect_cfg_error("{\"model_type\": \"gpt2\", " LLAMA_BASE "}", "llama, qwen2, qwen3, mistral", NULL);
    expect_cfg_error("{" LLAMA_BASE "}", "model_type", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", \"vocab_size\": 32}", "hidden_size", "missing");
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"num_key_value_heads\": \"2\"}",
                     "num_key_value_heads", "string");
    expect_cfg_error("{\"model_type\": \"llama\", \"vocab_size\": 32.5, \"hidden_size\": 16}", "vocab_size", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rms_norm_eps\": \"1e-5\"}", "rms_norm_eps", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_theta\": \"1e4\"}", "rope_theta", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_parameters\": {\"rope_theta\": "
                     "\"x\"}}", "rope_parameters.rope_theta", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_scaling\": {\"type\": \"longrope\", "
                     "\"factor\": 2.0}}", "rope_scaling.type", "longrope");
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_scaling\": {\"factor\": 2.0}}",
                     "rope_scaling", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_parameters\": {\"rope_type\": "
                     "\"linear\", \"rope_theta\": 1e4}}", "rope_parameters.factor", "missing");
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"rope_parameters\": {\"rope_type\": "
                     "\"llama3\", \"factor\": 8, \"low_freq_factor\": 1}}", "high_freq_factor", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"partial_rotary_factor\": 0.5}",
                     "partial_rotary_factor", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"hidden_act\": \"gelu\"}", "hidden_act", "gelu");
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"mlp_bias\": true}", "mlp_bias", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"attention_bias\": 1}", "attention_bias", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"tie_word_embeddings\": \"yes\"}",
                     "tie_word_embeddings", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"eos_token_id\": \"</s>\"}", "eos_token_id", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"dtype\": \"int8\"}", "dtype", "int8");
    expect_cfg_error("{\"model_type\": \"llama\", " LLAMA_BASE ", \"num_key_value_heads\": 3}",
                     "num_key_value_heads", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", \"vocab_size\": 32, \"hidden_size\": 18, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 24}", "head_dim", NULL);
    expect_cfg_error("{\"model_type\": \"llama\",\n " LLAMA_BASE ",\n \"x\": }", "line 3", "JSON");
    expect_cfg_error("[1]", "object", NULL);
    expect_cfg_error("{\"model_type\": \"llama\", \"vocab_size\": 32, \"hidden_size\": 16, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 24, \"\xff\": 1}", "UTF-8", "byte");
    nx_model_config c;
    nx_err err = {{0}};
    CHECK(nx_hf_load_config("/nonexistent/dir", &c, &err) == NX_ERR && strstr(err.msg, "/nonexistent/dir/config.json"));
    nxt_tmp_remove();
}

/* A small random model of the given kind. */
static void make_model(nx_model *m, nx_arch arch, bool tied, bool bias, uint64_t seed) {
    nx_model_config c = {.arch = arch, .V = 40, .C = 16, .L = 2, .NH = 4, .KVH = 2, .HS = 6, .F = 24,
                         .max_pos = 128, .eps = 1e-5f, .rope_theta = 10000.0f, .tied = tied,
                         .qkv_bias = bias || arch == NX_ARCH_QWEN2, .o_bias = bias && arch != NX_ARCH_QWEN2,
                         .bos_id = 1, .eos_id = -1, .dtype = NX_F32};
    nx_err err;
    NX_ASSERT(nx_model_init(m, &c, &err) == NX_OK);
    nx_rng r;
    nx_rng_seed(&r, seed);
    nx_model_init_random(m, 0.5f, &r);
    /* biases are zero after init: make them non-trivial (padding between
     * tensors stays zero, as loading leaves it) */
    for (int i = 0; i < m->ntab; i++)
        if (strstr(m->tab[i].name, ".bias"))
            for (size_t k = 0; k < m->tab[i].numel; k++) nx_param_f32(&m->tab[i], m->data)[k] = 0.25f - 0.01f * k;
}

/* Every tensor of m widened to f32, in the f32 layout (padding zero). */
static float *all_f32(const nx_model *m) {
    nx_param *tab = malloc(sizeof *tab * m->ntab);
    nx_model_params(&m->cfg, NX_F32, tab);
    float *buf = calloc(nx_model_numel(&m->cfg), sizeof(float));
    for (int i = 0; i < m->ntab; i++) nx_model_get(m, i, nx_param_f32(&tab[i], buf));
    free(tab);
    return buf;
}

TEST(model_round_trip_dtypes) {
    nxt_tmp_make("hf");
    nx_arch archs[3] = {NX_ARCH_LLAMA, NX_ARCH_QWEN2, NX_ARCH_MISTRAL};
    nx_dtype dts[3] = {NX_F32, NX_BF16, NX_F16};
    for (int a = 0; a < 3; a++)
        for (int d = 0; d < 3; d++) {
            nx_model m, m2;
            make_model(&m, archs[a], a == 1, a == 0, 7 + a);
            nx_err err = {{0}};
            char dir[128];
            snprintf(dir, sizeof dir, "%s/m%d%d/sub", nxt_tmpdir(), a, d);
            CHECKF(nx_hf_save_model(dir, &m, dts[d], &err) == NX_OK, "%s", err.msg);
            CHECKF(nx_hf_load_model(dir, &m2, &err) == NX_OK, "%s", err.msg);
            CHECK(m2.nparams == m.nparams);
            nx_model_config c2 = m2.cfg;
            c2.dtype = m.cfg.dtype;
            const nx_model_config *c1 = &m.cfg; /* field by field: padding bytes are unspecified */
            CHECK(c2.arch == c1->arch && c2.V == c1->V && c2.C == c1->C && c2.L == c1->L && c2.NH == c1->NH &&
                  c2.KVH == c1->KVH && c2.HS == c1->HS && c2.F == c1->F && c2.max_pos == c1->max_pos &&
                  c2.eps == c1->eps && c2.rope_theta == c1->rope_theta && c2.tied == c1->tied &&
                  c2.qkv_bias == c1->qkv_bias && c2.o_bias == c1->o_bias && c2.bos_id == c1->bos_id &&
                  c2.eos_id == c1->eos_id);
            CHECK(m2.cfg.dtype == dts[d]);
            int bad = 0;
            for (size_t i = 0; i < m.nparams; i++) {
                float want = m.params[i];
                if (dts[d] == NX_BF16) want = nx_bf16_to_f32(nx_f32_to_bf16(want));
                if (dts[d] == NX_F16) want = nx_f16_to_f32(nx_f32_to_f16(want));
                bad += memcmp(&want, &m2.params[i], 4) != 0;
            }
            CHECKF(bad == 0, "arch %d dtype %d: %d params differ", a, d, bad);
            nx_model_free(&m);
            nx_model_free(&m2);
        }
    nx_err err;
    nx_model m;
    make_model(&m, NX_ARCH_LLAMA, false, false, 1);
    CHECK(nx_hf_save_model(nxt_tmpdir(), &m, NX_I8, &err) == NX_ERR && strstr(err.msg, "I8"));
    nx_model_free(&m);
    nxt_tmp_remove();
}

/* A teacher held in bf16: a bf16 checkpoint loads bit for bit, f32 ones
 * round to nearest even; the forward (matrices widened by the backend)
 * gives the same logits and attention maps as the f32-held model of the
 * same checkpoint; copying layers from it gives the same student. */
TEST(bf16_held_model_equals_f32_held) {
    nxt_tmp_make("hf");
    nx_arch archs[3] = {NX_ARCH_LLAMA, NX_ARCH_QWEN2, NX_ARCH_MISTRAL};
    for (int a = 0; a < 3; a++) {
        nx_model m, mf, mb;
        make_model(&m, archs[a], a == 1, a == 0, 17 + a);
        nx_err err = {{0}};
        char dir[128];
        snprintf(dir, sizeof dir, "%s/b%d", nxt_tmpdir(), a);
        CHECKF(nx_hf_save_model(dir, &m, NX_F32, &err) == NX_OK, "%s", err.msg);
        CHECKF(nx_hf_load_model_as(dir, &mb, NX_BF16, &err) == NX_OK, "%s", err.msg);
        CHECK(mb.params == NULL && mb.wtype == NX_BF16 && mb.nbytes < m.nbytes);
        float *got = all_f32(&mb);
        int bad = 0;
        for (int i = 0; i < m.ntab; i++) { /* matrices rounded, norms and biases as they were */
            const float *w = nx_param_f32(&m.tab[i], m.data), *g = nx_param_f32(&m.tab[i], got);
            for (size_t k = 0; k < m.tab[i].numel; k++) {
                float want = m.tab[i].ndim == 2 ? nx_bf16_to_f32(nx_f32_to_bf16(w[k])) : w[k];
                bad += memcmp(&want, &g[k], 4) != 0;
            }
        }
        CHECKF(bad == 0, "arch %d: %d values not rounded to nearest even (norms and biases stay f32)", a, bad);
        nx_model_free(&mb);
        /* the same bf16 checkpoint, held both ways */
        CHECK(nx_hf_save_model(dir, &m, NX_BF16, &err) == NX_OK);
        CHECK(nx_hf_load_model(dir, &mf, &err) == NX_OK && nx_hf_load_model_as(dir, &mb, NX_BF16, &err) == NX_OK);
        free(got);
        got = all_f32(&mb);
        CHECK(memcmp(got, mf.params, mf.nparams * sizeof(float)) == 0);
        int B = 2, T = 7;
        int32_t ids[14];
        for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + a) % m.cfg.V;
        nx_acts af, ab;
        CHECK(nx_acts_init(&af, &mf, B, T, NX_ACTS_KEEP_PROBS, NULL) == NX_OK);
        CHECK(nx_acts_init(&ab, &mb, B, T, NX_ACTS_KEEP_PROBS, NULL) == NX_OK);
        nx_model_forward(&mf, &af, ids, B, T, true);
        nx_model_forward(&mb, &ab, ids, B, T, true);
        CHECK(memcmp(af.logits, ab.logits, sizeof(float) * B * T * m.cfg.V) == 0);
        for (int l = 0; l < m.cfg.L; l++)
            CHECK(memcmp(nx_acts_probs(&af, &mf.cfg, l), nx_acts_probs(&ab, &mb.cfg, l),
                         sizeof(float) * B * m.cfg.NH * T * T) == 0);
        /* a one-layer student copied from layer 1 */
        nx_model_config sc = mf.cfg;
        sc.L = 1;
        nx_model s1, s2;
        int map[1] = {1};
        CHECK(nx_model_init(&s1, &sc, NULL) == NX_OK && nx_model_init(&s2, &sc, NULL) == NX_OK);
        CHECK(nx_student_copy_layers(&s1, &mf, map, 1, &err) == NX_OK);
        CHECK(nx_student_copy_layers(&s2, &mb, map, 1, &err) == NX_OK);
        CHECK(memcmp(s1.params, s2.params, s1.nparams * sizeof(float)) == 0);
        CHECK(memcmp(s1.w.layer[0].qkv.data, mf.w.layer[1].qkv.data, mf.w.layer[1].qkv.row_bytes * mf.w.layer[1].qkv.rows) == 0);
        CHECK(memcmp(s1.w.head.data, mf.w.head.data, sizeof(float) * sc.V * sc.C) == 0);
        nx_acts_free(&af), nx_acts_free(&ab);
        nx_model_free(&s1), nx_model_free(&s2);
        nx_model_free(&m), nx_model_free(&mf), nx_model_free(&mb);
        free(got);
    }
    nxt_tmp_remove();
}

/* Write the model's tensors with one dropped, renamed or added. */
static void write_tensors(const nx_model *m, const char *drop, const char *extra_name, const float *extra) {
    int np = m->ntab;
    const nx_param *tab = m->tab;
    nx_st_entry *e = calloc(np + 1, sizeof *e);
    int n = 0;
    for (int i = 0; i < np; i++) {
        if (drop && !strcmp(tab[i].name, drop)) continue;
        e[n] = (nx_st_entry){.name = tab[i].name, .dtype = NX_F32, .ndim = tab[i].ndim,
                             .shape = {tab[i].shape[0], tab[i].shape[1]}, .data = nx_param_f32(&tab[i], m->data)};
        n++;
    }
    if (extra_name)
        e[n++] = (nx_st_entry){.name = extra_name, .dtype = NX_F32, .ndim = 2,
                               .shape = {m->cfg.V, m->cfg.C}, .data = extra};
    nx_err err;
    NX_ASSERT(nx_st_write(nxt_tpath("model.safetensors"), e, n, &err) == NX_OK);
    free(e);
}

static void expect_load_error(const char *n1, const char *n2) {
    nx_model m;
    nx_err err = {{0}};
    CHECK(nx_hf_load_model(nxt_tmpdir(), &m, &err) == NX_ERR);
    CHECKF(strstr(err.msg, nxt_tmpdir()) != NULL, "no file: %s", err.msg);
    if (n1) CHECKF(strstr(err.msg, n1) != NULL, "lacks '%s': %s", n1, err.msg);
    if (n2) CHECKF(strstr(err.msg, n2) != NULL, "lacks '%s': %s", n2, err.msg);
    CHECK(m.data == NULL);
}

TEST(model_tensor_checks) {
    nxt_tmp_make("hf");
    nx_model m, m2;
    nx_err err = {{0}};
    make_model(&m, NX_ARCH_LLAMA, false, false, 3);
    CHECKF(nx_hf_save_model(nxt_tmpdir(), &m, NX_F32, &err) == NX_OK, "%s", err.msg);
    write_tensors(&m, "model.layers.1.mlp.up_proj.weight", NULL, NULL);
    expect_load_error("model.safetensors", "'model.layers.1.mlp.up_proj.weight'");
    write_tensors(&m, NULL, "model.layers.0.self_attn.q_proj.bias", m.params);
    expect_load_error("unexpected tensor", "'model.layers.0.self_attn.q_proj.bias'");
    /* old checkpoints carry rotary buffers: ignored */
    write_tensors(&m, NULL, "model.layers.0.self_attn.rotary_emb.inv_freq", m.params);
    CHECKF(nx_hf_load_model(nxt_tmpdir(), &m2, &err) == NX_OK, "%s", err.msg);
    CHECK(memcmp(m2.params, m.params, m.nparams * 4) == 0);
    nx_model_free(&m2);
    /* the config no longer matches the weights */
    write_tensors(&m, NULL, NULL, NULL);
    nx_model_config c2 = m.cfg;
    c2.F = 20;
    char *js = nx_hf_config_json(&c2, NX_F32);
    write_text(nxt_tpath("config.json"), js);
    free(js);
    expect_load_error("shape", "mlp");
    /* not a safetensors dir at all */
    remove(nxt_tpath("model.safetensors"));
    expect_load_error("no model.safetensors", NULL);
    nx_model_free(&m);
    nxt_tmp_remove();
}

TEST(tied_head) {
    nxt_tmp_make("hf");
    nx_model m, m2;
    nx_err err = {{0}};
    make_model(&m, NX_ARCH_QWEN2, true, false, 5);
    CHECKF(nx_hf_save_model(nxt_tmpdir(), &m, NX_F32, &err) == NX_OK, "%s", err.msg);
    /* an identical lm_head copy is accepted */
    write_tensors(&m, NULL, "lm_head.weight", m.w.wte.data);
    CHECKF(nx_hf_load_model(nxt_tmpdir(), &m2, &err) == NX_OK, "%s", err.msg);
    CHECK(m2.w.head.data == m2.w.wte.data && memcmp(m2.params, m.params, m.nparams * 4) == 0);
    nx_model_free(&m2);
    /* a different one is an error */
    size_t n = (size_t)m.cfg.V * m.cfg.C;
    float *other = malloc(n * 4);
    memcpy(other, m.w.wte.data, n * 4);
    other[n - 1] += 1.0f;
    write_tensors(&m, NULL, "lm_head.weight", other);
    expect_load_error("'lm_head.weight'", "tie_word_embeddings");
    free(other);
    nx_model_free(&m);
    nxt_tmp_remove();
}

TEST(sharded_model_and_unaligned) {
    nxt_tmp_make("hf");
    nx_model m, m2;
    nx_err err = {{0}};
    make_model(&m, NX_ARCH_LLAMA, false, true, 9);
    CHECKF(nx_hf_save_model(nxt_tmpdir(), &m, NX_BF16, &err) == NX_OK, "%s", err.msg);
    /* split into two shards by hand: embeddings alone, the rest */
    nx_safetensors st;
    CHECKF(nx_st_open(&st, nxt_tpath("model.safetensors"), &err) == NX_OK, "%s", err.msg);
    nx_st_entry *e = calloc(st.n, sizeof *e);
    int n1 = 0, n2 = 0;
    FILE *idx = fopen(nxt_tpath("model.safetensors.index.json"), "w");
    fprintf(idx, "{\"metadata\": {}, \"weight_map\": {");
    for (int pass = 0; pass < 2; pass++) {
        int k = 0;
        for (int i = 0; i < st.n; i++) {
            bool emb = strcmp(st.t[i].name, "model.embed_tokens.weight") == 0;
            if (emb != (pass == 0)) continue;
            e[k] = (nx_st_entry){.name = st.t[i].name, .dtype = st.t[i].dtype, .ndim = st.t[i].ndim,
                                 .data = st.t[i].data};
            memcpy(e[k].shape, st.t[i].shape, sizeof e[k].shape);
            fprintf(idx, "%s\"%s\": \"part-%d.safetensors\"", n1 + n2 + k ? ", " : "", st.t[i].name, pass);
            k++;
        }
        char name[32];
        snprintf(name, sizeof name, "part-%d.safetensors", pass);
        CHECKF(nx_st_write(nxt_tpath(name), e, k, &err) == NX_OK, "%s", err.msg);
        if (pass == 0) n1 = k;
        else n2 = k;
    }
    fprintf(idx, "}}");
    fclose(idx);
    free(e);
    nx_st_close(&st);
    remove(nxt_tpath("model.safetensors"));
    CHECK(n1 == 1 && n2 > 1);
    CHECKF(nx_hf_load_model(nxt_tmpdir(), &m2, &err) == NX_OK, "%s", err.msg);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] = nx_bf16_to_f32(nx_f32_to_bf16(m.params[i]));
    CHECK(m2.nparams == m.nparams && memcmp(m2.params, m.params, m.nparams * 4) == 0);
    nx_model_free(&m2);
    nx_model_free(&m);

    /* a header of odd length leaves BF16 data at odd addresses */
    nxt_tmp_remove();
    nxt_tmp_make("hf");
    make_model(&m, NX_ARCH_LLAMA, true, false, 11);
    CHECKF(nx_hf_save_model(nxt_tmpdir(), &m, NX_BF16, &err) == NX_OK, "%s", err.msg);
    FILE *f = fopen(nxt_tpath("model.safetensors"), "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len + 1);
    CHECK(fread(buf, 1, len, f) == (size_t)len);
    fclose(f);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | buf[i];
    while (buf[8 + h - 1] == ' ' && h % 2 == 0) h--; /* drop padding until odd */
    f = fopen(nxt_tpath("model.safetensors"), "wb");
    for (int i = 0; i < 8; i++) fputc((int)(h >> (8 * i)) & 0xff, f);
    uint64_t old = 0;
    for (int i = 7; i >= 0; i--) old = old << 8 | buf[i];
    fwrite(buf + 8, 1, h, f);
    fwrite(buf + 8 + old, 1, len - 8 - old, f);
    fclose(f);
    free(buf);
    CHECK(h % 2 == 1);
    CHECKF(nx_hf_load_model(nxt_tmpdir(), &m2, &err) == NX_OK, "%s", err.msg);
    for (size_t i = 0; i < m.nparams; i++) m.params[i] = nx_bf16_to_f32(nx_f32_to_bf16(m.params[i]));
    CHECK(memcmp(m2.params, m.params, m.nparams * 4) == 0);
    nx_model_free(&m2);
    nx_model_free(&m);
    nxt_tmp_remove();
}

TEST(copy_tokenizer) {
    nxt_tmp_make("hf");
    char src[128], dst[128];
    snprintf(src, sizeof src, "%s/src", nxt_tmpdir());
    snprintf(dst, sizeof dst, "%s/out/dst", nxt_tmpdir());
    mkdir(src, 0755);
    char p[256];
    snprintf(p, sizeof p, "%s/tokenizer.json", src);
    write_text(p, "{\"model\": {}}");
    snprintf(p, sizeof p, "%s/generation_config.json", src);
    write_text(p, "{\"bos_token_id\": 1}");
    nx_err err = {{0}};
    CHECKF(nx_hf_copy_tokenizer(src, dst, &err) == NX_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/tokenizer.json", dst);
    FILE *f = fopen(p, "r");
    char buf[64] = {0};
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 13 && !strcmp(buf, "{\"model\": {}}"));
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/generation_config.json", dst);
    CHECK(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dst);
    CHECK(access(p, F_OK) != 0);
    nxt_tmp_remove();
}

/* What nx_hf_config_json writes for the newer keys reads back the same:
 * rope scalings, sliding windows per family, qwen3's q/k norms. */
TEST(config_json_round_trips_rope_window_qk_norm) {
    nxt_tmp_make("hf");
    nx_model_config cs[3] = {
        {.arch = NX_ARCH_QWEN3, .V = 32, .C = 16, .L = 3, .NH = 4, .KVH = 2, .HS = 8, .F = 24, .max_pos = 512,
         .eps = 1e-6f, .rope_theta = 1e6f, .window = 64, .window_from = 2, .qk_norm = true, .bos_id = -1, .eos_id = 2,
         .rope = {.type = NX_ROPE_YARN, .factor = 4, .original_max_pos = 128, .beta_fast = 16, .mscale = 1,
                  .mscale_all_dim = 0.5, .no_truncate = true}},
        {.arch = NX_ARCH_LLAMA, .V = 32, .C = 16, .L = 2, .NH = 4, .KVH = 2, .HS = 4, .F = 24, .max_pos = 4096,
         .eps = 1e-5f, .rope_theta = 5e5f, .tied = true, .bos_id = 1, .eos_id = 2,
         .rope = {.type = NX_ROPE_LLAMA3, .factor = 8, .original_max_pos = 1024, .low_freq_factor = 1, .high_freq_factor = 4}},
        {.arch = NX_ARCH_MISTRAL, .V = 32, .C = 16, .L = 2, .NH = 4, .KVH = 2, .HS = 4, .F = 24, .max_pos = 4096,
         .eps = 1e-5f, .rope_theta = 1e4f, .window = 256, .bos_id = 1, .eos_id = 2,
         .rope = {.type = NX_ROPE_LINEAR, .factor = 2}},
    };
    for (int i = 0; i < 3; i++) {
        nx_model_config c = cs[i], r;
        c.dtype = NX_F32;
        char *js = nx_hf_config_json(&c, NX_F32);
        nx_err err = {{0}};
        CHECKF(load_cfg(js, &r, &err) == NX_OK, "%s\n%s", err.msg, js);
        CHECK(r.arch == c.arch && r.window == c.window && r.window_from == c.window_from && r.qk_norm == c.qk_norm &&
              r.HS == c.HS && r.rope_theta == c.rope_theta && r.tied == c.tied);
        CHECKF(memcmp(&r.rope, &c.rope, sizeof r.rope) == 0, "rope of %s differs after a round trip:\n%s",
               nx_arch_name(c.arch), js);
        free(js);
    }
    nxt_tmp_remove();
}
