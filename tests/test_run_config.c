/* test_run_config.c — YAML run configs: every shipped config validates,
 * print -> parse round trips to the same struct, each error class names
 * FILE:LINE:COL (or the --set argument), the key path and a suggestion,
 * --set reaches nested keys and lists, the hash is stable and sensitive,
 * and the presets have the parameter counts docs/CONFIG.md states.
 * Runs from the repository root (tests/run.sh); needs no ../shared. */
#include <dirent.h>
#include <unistd.h>

#include "nexus/run_config.h"
#include "nxtest.h"

/* A minimal valid config used as the base of most tests. */
static const char *BASE =
    "teacher:\n"
    "  path: teacher-dir\n"
    "student:\n"
    "  from_teacher: true\n"
    "  num_layers: 4\n"
    "  init:\n"
    "    copy_layers: [0, 2, 4, 6]\n"
    "data:\n"
    "  train: data/train.jsonl\n"
    "  validation: data/val.jsonl\n"
    "loss:\n"
    "  alpha: 0.5\n"
    "  temperature: 2\n"
    "optimizer:\n"
    "  lr: 1.0e-3\n"
    "  steps: 150\n";

static int parse(nx_run_config *rc, const char *text, const char *const *sets, int nsets, nx_err *e) {
    e->msg[0] = '\0';
    return nx_run_config_parse(rc, text, strlen(text), "cfgs/x.yaml", sets, nsets, e);
}

/* Expect failure with every needle in the message. */
static void expect_err(const char *text, const char *const *sets, int nsets, const char *n1, const char *n2,
                       const char *n3) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    int r = parse(rc, text, sets, nsets, &e);
    CHECKF(r == NX_ERR, "expected an error containing \"%s\"", n1);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) CHECKF(strstr(e.msg, needles[i]) != NULL, "\"%s\" not in: %s", needles[i], e.msg);
    free(rc);
}

/* BASE with one line replaced (old must occur once). */
static char *with(const char *old, const char *new_) {
    const char *at = strstr(BASE, old);
    NX_ASSERT(at);
    size_t n = strlen(BASE) - strlen(old) + strlen(new_) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - BASE), BASE, new_, at + strlen(old));
    return s;
}

static bool same_config(const nx_run_config *a, const nx_run_config *b) {
    nx_run_config *x = malloc(sizeof *x), *y = malloc(sizeof *y);
    memcpy(x, a, sizeof *x);
    memcpy(y, b, sizeof *y);
    memset(x->source, 0, sizeof x->source);
    memset(y->source, 0, sizeof y->source);
    bool same = memcmp(x, y, sizeof *x) == 0;
    free(x);
    free(y);
    return same;
}

/* print a, parse the text back (from a file in another directory, so that
 * relative paths would show up), and compare. */
static void check_roundtrip(const nx_run_config *a, const char *label) {
    char dir[] = "/tmp/nx_rcfg_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/printed.yaml", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    nx_run_config_print(f, a);
    fclose(f);
    nx_run_config *b = malloc(sizeof *b);
    nx_err e;
    int r = nx_run_config_load(b, path, NULL, 0, &e);
    CHECKF(r == NX_OK, "%s: reparse failed: %s", label, e.msg);
    if (r == NX_OK) {
        CHECKF(same_config(a, b), "%s: round trip changed the config", label);
        CHECK(nx_run_config_hash(a) == nx_run_config_hash(b));
    }
    free(b);
    unlink(path);
    rmdir(dir);
}

TEST(base_parses_with_defaults) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    int r = parse(rc, BASE, NULL, 0, &e);
    CHECKF(r == NX_OK, "%s", e.msg);
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    char want[1200];
    snprintf(want, sizeof want, "%s/cfgs/teacher-dir", cwd); /* relative to the file's directory */
    CHECKF(!strcmp(rc->teacher.path, want), "%s", rc->teacher.path);
    snprintf(want, sizeof want, "%s/cfgs/data/train.jsonl", cwd);
    CHECK(!strcmp(rc->data.train, want));
    snprintf(want, sizeof want, "%s/runs/x", cwd); /* default output: ./runs/<stem> */
    CHECKF(!strcmp(rc->output.dir, want), "%s", rc->output.dir);
    snprintf(want, sizeof want, "%s/runs/x/metrics.jsonl", cwd);
    CHECK(!strcmp(rc->log.metrics_file, want));
    snprintf(want, sizeof want, "%s/runs/x/checkpoints", cwd);
    CHECK(!strcmp(rc->checkpoint.dir, want));
    CHECK(rc->student.init.kind == NX_INIT_COPY_LAYERS); /* inferred from the list */
    CHECK(rc->student.init.copy_layers.n == 4 && rc->student.init.copy_layers.v[3] == 6);
    CHECK(rc->teacher.dtype == NX_F32);
    CHECK(rc->optimizer.betas[0] == 0.9 && rc->optimizer.betas[1] == 0.95);
    CHECK(rc->optimizer.weight_decay == 0.1 && rc->optimizer.clip == 1.0);
    CHECK(rc->optimizer.schedule == NX_SCHED_COSINE);
    CHECK(rc->data.seq_len == 256 && rc->data.batch_size == 8 && rc->data.grad_accum == 1);
    CHECK(!strcmp(rc->data.text_field, "text"));
    CHECK(rc->eval.metrics == (NX_METRIC_PPL | NX_METRIC_AGREEMENT | NX_METRIC_KL));
    CHECK(rc->seed == 42 && rc->threads == 0 && rc->log.every == 10);
    CHECK(nx_run_config_student_layers(rc) == 4);
    check_roundtrip(rc, "base");
    free(rc);
}

static int load_dir(const char *dir, int *count) {
    DIR *d = opendir(dir);
    if (!d) return NX_ERR;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".yaml")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        nx_run_config *rc = malloc(sizeof *rc);
        nx_err e;
        int r = nx_run_config_load(rc, path, NULL, 0, &e);
        CHECKF(r == NX_OK, "%s: %s", path, e.msg);
        if (r == NX_OK) {
            check_roundtrip(rc, path);
            nx_model_config sh;
            if (!rc->student.from_teacher) CHECKF(nx_run_config_student_shape(rc, NULL, &sh, &e) == NX_OK, "%s", e.msg);
        }
        (*count)++;
        free(rc);
    }
    closedir(d);
    return NX_OK;
}

TEST(shipped_configs_validate_and_roundtrip) {
    int n = 0;
    CHECK(load_dir("configs", &n) == NX_OK);
    CHECK(load_dir("bench", &n) == NX_OK);
    CHECKF(n >= 7, "found only %d configs", n);
}

/* teacher-19m's shape (../shared/models/teacher-19m/config.json), written out
 * so that the default suite needs no ../shared. */
static nx_model_config teacher19m(void) {
    nx_model_config t = {.arch = NX_ARCH_LLAMA, .V = 8192, .C = 384, .L = 8, .NH = 6, .KVH = 2, .HS = 64,
                         .F = 1024, .max_pos = 1024, .eps = 1e-5f, .rope_theta = 10000.0f, .tied = false,
                         .bos_id = 0, .eos_id = 0, .dtype = NX_BF16};
    return t;
}

static size_t true_count(const nx_model_config *c) {
    int n = nx_model_params(c, NX_F32, NULL);
    nx_param *tab = malloc(sizeof *tab * n);
    nx_model_params(c, NX_F32, tab);
    size_t s = 0;
    for (int i = 0; i < n; i++) s += tab[i].numel;
    free(tab);
    return s;
}

TEST(bench_configs_encode_the_protocols) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    nx_model_config t = teacher19m(), s;
    CHECK(nx_model_numel(&t) == 18880896 && true_count(&t) == 18880896); /* "18.9 M parameters" */

    CHECKF(nx_run_config_load(rc, "bench/p0.yaml", NULL, 0, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->optimizer.steps == 10 && rc->data.batch_size == 4 && rc->data.seq_len == 128);
    CHECK(rc->data.order == NX_ORDER_SEQUENTIAL && rc->optimizer.schedule == NX_SCHED_CONSTANT);
    CHECK(rc->optimizer.weight_decay == 0 && rc->optimizer.lr == 1e-3 && rc->optimizer.clip == 1.0);
    CHECK(rc->loss.alpha == 0.5 && rc->loss.temperature == 2 && rc->teacher.dtype == NX_F32);
    CHECK(strstr(rc->data.train, "/shared/data/corpus/validation.jsonl") != NULL);
    CHECK(strstr(rc->teacher.path, "/shared/models/teacher-19m") != NULL);
    CHECK(!strstr(rc->teacher.path, "..")); /* normalised */
    CHECKF(nx_run_config_student_shape(rc, &t, &s, &e) == NX_OK, "%s", e.msg);
    CHECK(s.L == 4 && s.C == 384 && s.V == 8192);
    CHECKF(nx_model_numel(&s) == 12586368, "L0246 has %zu parameters", nx_model_numel(&s)); /* "12.6 M" */

    CHECKF(nx_run_config_load(rc, "bench/p1-l0246.yaml", NULL, 0, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->optimizer.steps == 150 && rc->data.batch_size == 16 && rc->data.seq_len == 256);
    CHECK(rc->optimizer.warmup_steps == 15 && rc->optimizer.min_lr == 1e-4);
    CHECK(rc->optimizer.betas[0] == 0.9 && rc->optimizer.betas[1] == 0.95 && rc->optimizer.eps == 1e-8);
    CHECK(rc->student.init.kind == NX_INIT_COPY_LAYERS && rc->student.init.copy_layers.v[2] == 4);

    CHECKF(nx_run_config_load(rc, "bench/p1-s7m-kd.yaml", NULL, 0, &e) == NX_OK, "%s", e.msg);
    CHECKF(nx_run_config_student_shape(rc, &t, &s, &e) == NX_OK, "%s", e.msg);
    CHECK(s.V == 8192 && s.C == 256 && s.F == 704 && s.L == 4 && s.NH == 4 && s.KVH == 2 && s.HS == 64);
    CHECK(!s.tied && rc->student.init.kind == NX_INIT_RANDOM && rc->student.init.std == 0.02);
    CHECKF(nx_model_numel(&s) == 7145728, "S7M has %zu parameters", nx_model_numel(&s)); /* "7.15 M" */
    uint64_t h_kd = nx_run_config_hash(rc);

    CHECKF(nx_run_config_load(rc, "bench/p1-s7m-scratch.yaml", NULL, 0, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->loss.alpha == 0);
    CHECK(nx_run_config_hash(rc) != h_kd);
    free(rc);
}

TEST(presets_parameter_counts) {
    int n;
    const nx_run_preset *p = nx_run_presets(&n);
    CHECK(n == 2 && !strcmp(p[0].name, "nano") && !strcmp(p[1].name, "standard"));
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    nx_model_config s;
    const char *sets[] = {"student=nano"};
    char *text = with("  from_teacher: true\n  num_layers: 4\n  init:\n    copy_layers: [0, 2, 4, 6]\n", "");
    CHECKF(parse(rc, text, sets, 1, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_run_config_student_shape(rc, NULL, &s, &e) == NX_OK);
    size_t nano = nx_model_numel(&s);
    CHECKF(nano == 1490126848 && true_count(&s) == nano, "nano: %zu", nano);
    CHECK(nano > 1.3e9 && nano < 1.7e9);
    CHECK(nano * 2 <= 4000000000ull); /* bf16, GB = 1e9 bytes */

    sets[0] = "student.preset=standard";
    CHECKF(parse(rc, text, sets, 1, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_run_config_student_shape(rc, NULL, &s, &e) == NX_OK);
    size_t std_ = nx_model_numel(&s);
    CHECKF(std_ == 13015864320ull && true_count(&s) == std_, "standard: %zu", std_);
    CHECK(std_ > 12e9 && std_ < 14e9);
    CHECK(std_ * 1 <= 16000000000ull); /* int8 */

    /* with a teacher the vocabulary is the teacher's */
    nx_model_config t = teacher19m();
    CHECK(nx_run_config_student_shape(rc, &t, &s, &e) == NX_OK);
    CHECK(s.V == 8192 && s.C == 5120 && s.bos_id == 0);
    free(text);
    free(rc);
}

TEST(error_unknown_key_suggests) {
    char *t = with("  temperature: 2\n", "  temprature: 2\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:13:3: loss.temprature: unknown key", "did you mean `temperature`?", NULL);
    free(t);
    t = with("optimizer:\n", "optimiser:\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:14:1: optimiser: unknown key", "did you mean `optimizer`?", NULL);
    free(t);
    t = with("  temperature: 2\n", "  zzzzzzzzz: 2\n"); /* nothing close: list the valid keys */
    expect_err(t, NULL, 0, "loss.zzzzzzzzz: unknown key", "valid: alpha, temperature, kind, hidden, attention", NULL);
    free(t);
    t = with("  temperature: 2\n", "  kind: forward_kll\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:13:9: loss.kind: unknown value \"forward_kll\"", "did you mean `forward_kl`?", NULL);
    free(t);
}

TEST(error_wrong_type) {
    char *t = with("  lr: 1.0e-3\n", "  lr: fast\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:15:7: optimizer.lr: expected a number, got \"fast\"", NULL, NULL);
    free(t);
    t = with("  steps: 150\n", "  steps: 1.5\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:16:10: optimizer.steps: expected an integer", NULL, NULL);
    free(t);
    t = with("  from_teacher: true\n", "  from_teacher: yes please\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:4:17: student.from_teacher: expected true or false", NULL, NULL);
    free(t);
    t = with("  steps: 150\n", "  steps: 150\n  betas: 0.9\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:17:10: optimizer.betas: expected a list of two numbers", NULL, NULL);
    free(t);
    t = with("loss:\n", "loss: [1, 2]\nx:\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:11:7: loss: expected a mapping", NULL, NULL);
    free(t);
    expect_err("- a\n- b\n", NULL, 0, "cfgs/x.yaml:1:1: (top level): a run config is a mapping", NULL, NULL);
    expect_err("teacher: [unclosed\n", NULL, 0, "cfgs/x.yaml:2:1: invalid YAML", NULL, NULL);
    char deep[400] = "a: "; /* 100 balanced brackets: valid YAML, too deep */
    for (int i = 0; i < 100; i++) deep[3 + i] = '[', deep[104 + i] = ']';
    deep[103] = '0';
    deep[204] = '\0';
    expect_err(deep, NULL, 0, "cfgs/x.yaml:1:", "nested deeper than 32 levels", NULL);
    t = with("  alpha: 0.5\n", "  alpha: &a 0.5\n  kind: *a\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:13:9: YAML aliases", NULL, NULL);
    free(t);
    t = with("  alpha: 0.5\n", "  alpha: 0.5\n  alpha: 0.6\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:13:3: duplicate key `alpha`", NULL, NULL);
    free(t);
}

TEST(error_out_of_range) {
    char *t = with("  alpha: 0.5\n", "  alpha: 1.5\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:12:10: loss.alpha: must be in [0, 1], got 1.5", NULL, NULL);
    free(t);
    t = with("  temperature: 2\n", "  temperature: 0\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:13:16: loss.temperature: must be in (0,", NULL, NULL);
    free(t);
    t = with("  lr: 1.0e-3\n", "  lr: -1\n");
    expect_err(t, NULL, 0, "optimizer.lr: must be in (0, 10], got -1", NULL, NULL);
    free(t);
    t = with("  train: data/train.jsonl\n", "  train: data/train.jsonl\n  seq_len: 1\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:10:12: data.seq_len: must be in [2,", NULL, NULL);
    free(t);
    t = with("[0, 2, 4, 6]", "[0, 2, 2, 6]");
    expect_err(t, NULL, 0, "cfgs/x.yaml:7:25: student.init.copy_layers: layer 2 is listed twice", NULL, NULL);
    free(t);
    t = with("[0, 2, 4, 6]", "[0, -2, 4, 6]");
    expect_err(t, NULL, 0, "cfgs/x.yaml:7:22: student.init.copy_layers: must be in [0, 255], got -2", NULL, NULL);
    free(t);
    t = with("[0, 2, 4, 6]", "[0, 2, 4]");
    expect_err(t, NULL, 0, "cfgs/x.yaml:7:18: student.init.copy_layers: lists 3 layers but the student has 4", NULL, NULL);
    free(t);
    t = with("  steps: 150\n", "  steps: 150\n  betas: [0.9, 1.0]\n");
    expect_err(t, NULL, 0, "optimizer.betas: must be in [0, 1), got 1", NULL, NULL);
    free(t);
    t = with("  steps: 150\n", "  steps: 150\n  min_lr: 0.01\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:17:11: optimizer.min_lr: 0.01 is above optimizer.lr", NULL, NULL);
    free(t);
    t = with("  steps: 150\n", "  steps: 150\n  tokens: 1000\n");
    expect_err(t, NULL, 0, "optimizer.tokens: give optimizer.steps or optimizer.tokens, not both", NULL, NULL);
    free(t);
    t = with("  temperature: 2\n", "  temperature: 2\n  hidden: {weight: 1}\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:14:11: loss.hidden.layer_map: missing", NULL, NULL);
    free(t);
    t = with("  temperature: 2\n", "  temperature: 2\n  hidden: {weight: 1, layer_map: [[0, 1], [4, 7]]}\n");
    expect_err(t, NULL, 0, "loss.hidden.layer_map: student layer 4 out of range", NULL, NULL);
    free(t);
    /* an integer written as a double past 2^63 (found by fuzz_run_config: UB in the cast) */
    t = with("  steps: 150\n", "  tokens: 8.12222e+33\n");
    expect_err(t, NULL, 0, "optimizer.tokens: must be in", NULL, NULL);
    free(t);
    /* issue 15, item 11: a micro-batch of more tokens than an int counts */
    const char *big[] = {"data.batch_size=1048576", "data.seq_len=1048576"};
    expect_err(BASE, big, 2, "data.batch_size: 1048576 rows of data.seq_len 1048576 tokens", NULL, NULL);
}

TEST(error_missing_required) {
    char *t = with("  path: teacher-dir\n", "  dtype: bf16\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:2:3: teacher.path: missing required key", NULL, NULL);
    free(t);
    t = with("  steps: 150\n", "");
    expect_err(t, NULL, 0, "cfgs/x.yaml:15:3: optimizer.steps: missing", "optimizer.tokens", NULL);
    free(t);
    t = with("  from_teacher: true\n  num_layers: 4\n", "  hidden_size: 64\n  num_layers: 4\n");
    expect_err(t, NULL, 0, "cfgs/x.yaml:4:3: student: missing num_heads, intermediate_size", "student.preset", NULL);
    free(t);
    t = with("  num_layers: 4\n", "");
    expect_err(t, NULL, 0, "student.num_layers: missing: from_teacher needs num_layers", NULL, NULL);
    free(t);
    expect_err("", NULL, 0, "cfgs/x.yaml: teacher.path: missing required key", NULL, NULL);
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    const char *s[] = {"student=nano"};
    CHECK(nx_run_config_load(rc, NULL, s, 1, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "(no config file): teacher.path: missing required key") != NULL, "%s", e.msg);
    free(rc);
}

TEST(set_overrides) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    const char *sets[] = {"optimizer.lr=3e-4", "student.init.copy_layers=[1, 3,5,7]", "loss.kind=jsd",
                          "loss.hidden={weight: 0.5, layer_map: [[0, 1], [3, 7]]}", "optimizer.betas=[0.8, 0.99]",
                          "eval.metrics=[ppl]", "data.train=/abs/t.jsonl", "output.dir=out",
                          "student.tie_word_embeddings=true", "seed=7"};
    CHECKF(parse(rc, BASE, sets, 10, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->optimizer.lr == 3e-4);
    CHECK(rc->student.init.copy_layers.n == 4 && rc->student.init.copy_layers.v[0] == 1 &&
          rc->student.init.copy_layers.v[3] == 7);
    CHECK(rc->loss.kind == NX_KD_JSD);
    CHECK(rc->loss.hidden.weight == 0.5 && rc->loss.hidden.layer_map.n == 2 &&
          rc->loss.hidden.layer_map.pair[1][0] == 3 && rc->loss.hidden.layer_map.pair[1][1] == 7);
    CHECK(rc->optimizer.betas[0] == 0.8 && rc->optimizer.betas[1] == 0.99);
    CHECK(rc->eval.metrics == NX_METRIC_PPL);
    CHECK(!strcmp(rc->data.train, "/abs/t.jsonl"));
    char cwd[1024], want[1200];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(want, sizeof want, "%s/out", cwd); /* --set paths: relative to the current directory */
    CHECKF(!strcmp(rc->output.dir, want), "%s", rc->output.dir);
    snprintf(want, sizeof want, "%s/out/metrics.jsonl", cwd); /* derived after overrides */
    CHECK(!strcmp(rc->log.metrics_file, want));
    CHECK(rc->student.tie_word_embeddings == 1 && rc->seed == 7);
    check_roundtrip(rc, "overrides");

    /* sections that are absent or given as shorthand scalars are created / expanded */
    char *t = with("  init:\n    copy_layers: [0, 2, 4, 6]\n", "  init: random\n");
    const char *s2[] = {"student.init.std=0.05", "checkpoint.every=5", "student.num_layers=2"};
    CHECKF(parse(rc, t, s2, 3, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->student.init.kind == NX_INIT_RANDOM && rc->student.init.std == 0.05);
    CHECK(rc->checkpoint.every == 5 && nx_run_config_student_layers(rc) == 2);
    /* a whole section replaced by a flow mapping */
    const char *s3[] = {"student.init={copy_layers: [0, 7]}", "student.num_layers=2"};
    CHECKF(parse(rc, t, s3, 2, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->student.init.kind == NX_INIT_COPY_LAYERS && rc->student.init.copy_layers.v[1] == 7);
    /* null resets to the default */
    const char *s4[] = {"loss.temperature=null", "student.init.kind=auto", "student.init.copy_layers=~"};
    CHECKF(parse(rc, BASE, s4, 3, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->loss.temperature == 2.0 && rc->student.init.kind == NX_INIT_AUTO);
    free(t);

    /* no file at all: everything from --set */
    const char *s5[] = {"teacher=/m/t", "student=nano", "data.train=/d/t.jsonl", "optimizer.tokens=1e6"};
    CHECKF(nx_run_config_load(rc, NULL, s5, 4, &e) == NX_OK, "%s", e.msg);
    CHECK(!strcmp(rc->teacher.path, "/m/t") && rc->student.preset == 0);
    CHECK(rc->optimizer.tokens == 1000000 && rc->optimizer.steps == (1000000 + 2047) / 2048);
    check_roundtrip(rc, "tokens budget");
    free(rc);
}

TEST(set_errors) {
    const char *a[] = {"optimizer.lrr=1e-3"};
    expect_err(BASE, a, 1, "--set optimizer.lrr=1e-3: unknown key optimizer.lrr", "did you mean `lr`?", NULL);
    const char *b[] = {"optimizer.lr=fast"};
    expect_err(BASE, b, 1, "--set optimizer.lr=fast: optimizer.lr: expected a number, got \"fast\"", NULL, NULL);
    const char *c[] = {"optimizer.lr"};
    expect_err(BASE, c, 1, "--set optimizer.lr: expected KEY.PATH=VALUE", NULL, NULL);
    const char *d[] = {"optimizer.lr.x=1"};
    expect_err(BASE, d, 1, "--set optimizer.lr.x=1: optimizer.lr is a value, not a section", NULL, NULL);
    const char *f[] = {"student.init.copy_layers=[0, 2, 4, 9, 9]"};
    expect_err(BASE, f, 1, "--set student.init.copy_layers=[0, 2, 4, 9, 9]: student.init.copy_layers: layer 9 is listed twice",
               NULL, NULL);
    const char *g[] = {"student.init.copy_layers=[0, 2"};
    expect_err(BASE, g, 1, "--set student.init.copy_layers=[0, 2: invalid YAML value", NULL, NULL);
    const char *h[] = {"loss.alpha=2"};
    expect_err(BASE, h, 1, "--set loss.alpha=2: loss.alpha: must be in [0, 1], got 2", NULL, NULL);
    const char *i[] = {"student.init.kind=random"}; /* the file's copy_layers contradict it */
    expect_err(BASE, i, 1, "cfgs/x.yaml:7:18: student.init.copy_layers: given but student.init.kind is random", NULL, NULL);
}

TEST(hash_stable_and_sensitive) {
    nx_run_config *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    nx_err e;
    CHECK(parse(a, BASE, NULL, 0, &e) == NX_OK);
    CHECK(parse(b, BASE, NULL, 0, &e) == NX_OK);
    uint64_t h = nx_run_config_hash(a);
    CHECK(h == nx_run_config_hash(b));
    /* keys that may change on resume leave it alone */
    const char *keep[] = {"optimizer.steps=300", "eval.every=5", "checkpoint.keep=1", "output.dir=/o",
                          "log.every=1", "threads=2", "output.dtype=bf16"};
    CHECK(parse(b, BASE, keep, 7, &e) == NX_OK);
    CHECK(nx_run_config_hash(b) == h);
    /* keys that change the trained model change it */
    const char *change[] = {"optimizer.lr=2e-3", "seed=1", "loss.alpha=0.7", "student.init.copy_layers=[0,1,2,3]",
                            "data.seq_len=128", "teacher.dtype=bf16", "optimizer.betas=[0.9, 0.999]"};
    for (int i = 0; i < 7; i++) {
        CHECKF(parse(b, BASE, &change[i], 1, &e) == NX_OK, "%s", e.msg);
        CHECKF(nx_run_config_hash(b) != h, "%s did not change the hash", change[i]);
    }
    /* Pinned: the defaults hash to this on every machine and build. If a key
     * is added or renamed this changes, and old checkpoints stop resuming:
     * update it on purpose (and say so in the commit). */
    nx_run_config_defaults(a);
    CHECKF(nx_run_config_hash(a) == 0x63fa3805dc283f3dULL, "defaults hash %016llx",
           (unsigned long long)nx_run_config_hash(a));
    free(a);
    free(b);
}

/* A config that sets every hashed key to a non-default value (every key
 * type: paths, enums, tri-state, lists, pairs, betas) hashes to the value
 * the single-file parser of before src/app/ gave, so checkpoints written
 * then still resume. */
TEST(hash_pinned_for_a_full_config) {
    static const char *full =
        "teacher: {path: /abs/teacher, dtype: bf16}\n"
        "student:\n"
        "  arch: qwen2\n  vocab_size: 1000\n  hidden_size: 64\n  num_layers: 3\n  num_heads: 4\n"
        "  num_kv_heads: 2\n  head_dim: 16\n  intermediate_size: 96\n  max_position_embeddings: 512\n"
        "  rope_theta: 500000\n  rms_norm_eps: 1.0e-6\n  tie_word_embeddings: true\n"
        "  init: {kind: copy_layers, std: 0.03, copy_layers: [0, 2, 5], importance_batches: 4}\n"
        "data: {train: /abs/train.bin, validation: /abs/val.bin, text_field: content, seq_len: 65,\n"
        "       batch_size: 3, grad_accum: 2, order: sequential}\n"
        "loss: {alpha: 0.25, temperature: 1.5, kind: jsd, attention: 0.3,\n"
        "       hidden: {weight: 0.7, layer_map: [[0, 1], [2, 5]], projection: none}}\n"
        "optimizer: {lr: 3.0e-4, betas: [0.9, 0.999], eps: 1.0e-7, weight_decay: 0.01, schedule: linear,\n"
        "            warmup_steps: 7, min_lr: 1.0e-5, clip: 0.5, tokens: 100000}\n"
        "eval: {every: 5, batches: 2, metrics: [ppl, kl]}\n"
        "checkpoint: {every: 3, keep: 1, dir: /abs/ck}\n"
        "output: {dir: /abs/out, dtype: f16}\n"
        "log: {every: 2, metrics_file: /abs/m.jsonl}\n"
        "seed: 1234567\nthreads: 2\n";
    static const char *preset = "teacher: /abs/t\nstudent: nano\ndata: {train: /abs/d.jsonl}\noptimizer: {steps: 10}\n";
    static const char *auto_ = "teacher: /abs/t\nstudent: {from_teacher: true, num_layers: 2, init: auto}\n"
                               "data: {train: /abs/d.jsonl}\noptimizer: {steps: 10, lr: 0.1}\nloss: {kind: reverse_kl}\n";
    const char *text[] = {full, preset, auto_};
    const uint64_t want[] = {0x01e1c9ee2d95c708ULL, 0xca3347eb8f81ce79ULL, 0xf4a6546b6ca7d4a7ULL};
    nx_run_config *rc = malloc(sizeof *rc);
    for (int i = 0; i < 3; i++) {
        nx_err e;
        CHECKF(nx_run_config_parse(rc, text[i], strlen(text[i]), "/abs/x.yaml", NULL, 0, &e) == NX_OK, "%s", e.msg);
        CHECKF(nx_run_config_hash(rc) == want[i], "config %d hashes to %016llx, expected %016llx", i,
               (unsigned long long)nx_run_config_hash(rc), (unsigned long long)want[i]);
    }
    free(rc);
}

TEST(student_shape_teacher_checks) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    nx_model_config t = teacher19m(), s;
    const char *a[] = {"student.init.copy_layers=[0, 2, 4, 8]"};
    CHECK(parse(rc, BASE, a, 1, &e) == NX_OK);
    CHECK(nx_run_config_student_shape(rc, &t, &s, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "student.init.copy_layers: teacher layer 8 out of range") != NULL, "%s", e.msg);
    const char *b[] = {"student.num_layers=9", "student.init=random"};
    CHECK(parse(rc, BASE, b, 2, &e) == NX_OK);
    CHECK(nx_run_config_student_shape(rc, &t, &s, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "more than the teacher's 8 layers") != NULL, "%s", e.msg);
    /* from_teacher needs the teacher */
    CHECK(parse(rc, BASE, NULL, 0, &e) == NX_OK);
    CHECK(nx_run_config_student_shape(rc, NULL, &s, &e) == NX_ERR);
    /* width pruning: teacher shape, fewer heads and a narrower MLP */
    const char *c[] = {"student.num_heads=4", "student.intermediate_size=512", "student.init=random"};
    CHECK(parse(rc, BASE, c, 3, &e) == NX_OK);
    CHECKF(nx_run_config_student_shape(rc, &t, &s, &e) == NX_OK, "%s", e.msg);
    CHECK(s.NH == 4 && s.KVH == 2 && s.HS == 64 && s.F == 512 && s.C == 384 && s.L == 4);
    /* a different vocabulary cannot be distilled on logits */
    const char *d[] = {"student={hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 100}"};
    /* replacing the student section drops the file's init (copy_layers) with it */
    CHECKF(parse(rc, BASE, d, 1, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->student.init.kind == NX_INIT_RANDOM && !rc->student.from_teacher);
    const char *d2[] = {d[0], "student.init=random"};
    CHECKF(parse(rc, BASE, d2, 2, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_run_config_student_shape(rc, &t, &s, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "needs the teacher's vocabulary") != NULL, "%s", e.msg);
    /* head_dim must divide evenly when not given */
    const char *f[] = {"student={hidden_size: 100, num_layers: 2, num_heads: 3, intermediate_size: 128}",
                       "student.init=random"};
    expect_err(BASE, f, 2, "student: hidden_size 100 is not a multiple of num_heads 3", NULL, NULL);
    free(rc);
}

/* student.init kinds prune and load: their keys only with their kind and
 * method, a target for minitron, sparsity or a pattern for the others; the
 * keys count in the hash only when given. */
TEST(prune_and_load_init_keys) {
    nx_run_config *rc = malloc(sizeof *rc), *b = malloc(sizeof *b);
    nx_err e;
    const char *ok1[] = {"student.init={kind: prune, method: wanda, sparsity: 0.5}", "student.num_layers=null"};
    CHECKF(parse(rc, BASE, ok1, 2, &e) == NX_OK, "%s", e.msg);
    nx_sparse_opts so;
    CHECK(nx_run_config_sparse_opts(rc, &so, &e) == NX_OK && so.method == NX_PRUNE_WANDA && so.sparsity == 0.5);
    const char *ok2[] = {"student.init={kind: prune, method: magnitude, pattern: \"2:4\"}", "student.num_layers=null"};
    CHECKF(parse(rc, BASE, ok2, 2, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_run_config_sparse_opts(rc, &so, &e) == NX_OK && so.n == 2 && so.m == 4);
    const char *ok3[] = {"student.init={kind: prune, target_params: 1000000, axes: [hidden, ffn, heads]}",
                         "student.num_layers=null"};
    CHECKF(parse(rc, BASE, ok3, 2, &e) == NX_OK, "%s", e.msg);
    CHECK(rc->student.init.axes == (NX_AXIS_HIDDEN | NX_AXIS_FFN | NX_AXIS_HEADS) && rc->student.init.method < 0);
    /* the pruned shape from a teacher: width keys are the target, GQA groups kept whole */
    nx_model_config t = {.arch = NX_ARCH_LLAMA, .V = 100, .C = 64, .L = 4, .NH = 6, .KVH = 2, .HS = 16, .F = 128,
                         .max_pos = 64, .eps = 1e-5f, .rope_theta = 1e4f, .bos_id = -1, .eos_id = -1};
    nx_model_config s;
    const char *ok4[] = {"student.init=prune", "student.hidden_size=48", "student.num_heads=3"};
    CHECKF(parse(rc, BASE, ok4, 3, &e) == NX_OK, "%s", e.msg);
    CHECKF(nx_run_config_student_shape(rc, &t, &s, &e) == NX_OK, "%s", e.msg);
    CHECK(s.C == 48 && s.NH == 3 && s.KVH == 1 && s.L == 4 && s.F == 128 && s.HS == 16);
    const char *bad4[] = {"student.init=prune", "student.num_heads=4"};
    CHECK(parse(rc, BASE, bad4, 2, &e) == NX_OK);
    CHECK(nx_run_config_student_shape(rc, &t, &s, &e) == NX_ERR && strstr(e.msg, "not a whole number"));
    /* errors at the key to change */
    const char *e1[] = {"student.init.sparsity=0.5"};
    expect_err(BASE, e1, 1, "student.init.sparsity: given but student.init.kind is copy_layers", NULL, NULL);
    const char *e2[] = {"student.init=prune", "student.num_layers=null"};
    expect_err(BASE, e2, 2, "student.init: init kind prune with method minitron needs a target", NULL, NULL);
    const char *e3[] = {"student.init={kind: prune, pattern: \"2:4\"}", "student.hidden_size=32"};
    expect_err(BASE, e3, 2, "student.init.pattern: is for unstructured pruning", NULL, NULL);
    const char *e4[] = {"student.init={kind: prune, method: wanda}", "student.num_layers=null"};
    expect_err(BASE, e4, 2, "student.init.sparsity: missing", NULL, NULL);
    const char *e5[] = {"student.init={kind: prune, method: wanda, sparsity: 0.5, pattern: \"2:4\"}",
                        "student.num_layers=null"};
    expect_err(BASE, e5, 2, "not both", NULL, NULL);
    const char *e6[] = {"student.init={kind: prune, method: wanda, sparsity: 0.5, scope: global}",
                        "student.num_layers=null"};
    expect_err(BASE, e6, 2, "scope global is for magnitude", NULL, NULL);
    const char *e7[] = {"student.init={kind: prune, method: wanda, sparsity: 1.5}", "student.num_layers=null"};
    expect_err(BASE, e7, 2, "student.init.sparsity: must be in [0, 1)", NULL, NULL);
    const char *e8[] = {"student.init={kind: prune, method: wanda, pattern: \"4:2\"}", "student.num_layers=null"};
    expect_err(BASE, e8, 2, "expected two integers 0 < N < M", NULL, NULL);
    const char *e9[] = {"student.init={kind: prune, method: wanda, sparsity: 0.5}"};
    expect_err(BASE, e9, 1, "student.num_layers: unstructured pruning (method wanda) keeps the teacher's shape", NULL,
               NULL);
    const char *e10[] = {"student.init={kind: prune, target_params: 100}", "student.hidden_size=32"};
    expect_err(BASE, e10, 2, "not both", NULL, NULL);
    const char *e11[] = {"student.init={kind: load, path: /nonexistent/model}", "student.from_teacher=false",
                         "student.num_layers=null"};
    expect_err(BASE, e11, 3, "/nonexistent/model", NULL, NULL);
    const char *e12[] = {"student.init={kind: load, path: /x}"};
    expect_err(BASE, e12, 1, "init kind load takes the shape of /x", NULL, NULL);
    const char *e13[] = {"student.init={kind: random, path: /x}"};
    expect_err(BASE, e13, 1, "student.init.path: given but student.init.kind is random", NULL, NULL);
    const char *e14[] = {"student.init=prune", "student.from_teacher=false", "student.hidden_size=32",
                         "student.num_heads=2", "student.intermediate_size=64"};
    expect_err(BASE, e14, 5, "student.from_teacher: missing: init kind prune starts from the teacher's shape", NULL,
               NULL);
    /* the hash: unchanged without the new keys (pinned above), changed by them */
    CHECK(parse(rc, BASE, ok1, 2, &e) == NX_OK && parse(b, BASE, ok2, 2, &e) == NX_OK);
    CHECK(nx_run_config_hash(rc) != nx_run_config_hash(b));
    const char *ok1b[] = {"student.init={kind: prune, method: wanda, sparsity: 0.6}", "student.num_layers=null"};
    CHECK(parse(b, BASE, ok1b, 2, &e) == NX_OK && nx_run_config_hash(rc) != nx_run_config_hash(b));
    /* printing round-trips the new keys */
    const char *ok5[] = {"student.init={kind: prune, target_params: 1000000, axes: [hidden, ffn], multiple: 8, "
                         "layer_metric: ppl}",
                         "student.num_layers=null"};
    CHECK(parse(rc, BASE, ok5, 2, &e) == NX_OK);
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    nx_run_config_print(f, rc);
    fclose(f);
    CHECKF(parse(b, txt, NULL, 0, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_run_config_hash(rc) == nx_run_config_hash(b) && b->student.init.multiple == 8 &&
          b->student.init.layer_metric == NX_LAYER_PPL && b->student.init.target_params == 1000000);
    free(txt);
    free(rc), free(b);
}

/* data.validation left out: the val.bin beside a prepare-data data.train
 * (the README recipe sets only data.train). */
TEST(validation_defaults_to_the_val_bin_beside_train) {
    nx_run_config *rc = malloc(sizeof *rc);
    nx_err e;
    char *t = with("  validation: data/val.jsonl\n", "");
    const char *dir[] = {"data.train=/abs/shards/"}, *bin[] = {"data.train=/abs/x/train.bin"},
               *js[] = {"data.train=/abs/x.jsonl"};
    CHECKF(parse(rc, t, dir, 1, &e) == NX_OK, "%s", e.msg);
    CHECKF(!strcmp(rc->data.validation, "/abs/shards"), "got '%s'", rc->data.validation);
    CHECKF(parse(rc, t, bin, 1, &e) == NX_OK, "%s", e.msg);
    CHECKF(!strcmp(rc->data.validation, "/abs/x/val.bin"), "got '%s'", rc->data.validation);
    CHECKF(parse(rc, t, js, 1, &e) == NX_OK, "%s", e.msg);
    CHECKF(rc->data.validation[0] == '\0', "got '%s'", rc->data.validation);
    const char *js_eval[] = {"data.train=/abs/x.jsonl", "eval.every=10"};
    expect_err(t, js_eval, 2, "eval.every", "data.validation", NULL);
    free(t);
    free(rc);
}
