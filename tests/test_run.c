/* test_run.c — whole runs of `nexus distill` on a tiny teacher made here
 * (random weights, the byte-level fixture tokenizer, generated JSONL):
 *   - 150 steps straight = the same run killed with SIGKILL part-way and
 *     resumed = the same run interrupted with SIGINT (exit 130) and
 *     resumed: identical losses at every step, bit for bit, and identical
 *     student files;
 *   - the same for a narrower student trained with hidden-state loss through
 *     learned projections and attention transfer from a teacher held in
 *     bf16 (the projections and their optimiser state are in the
 *     checkpoint);
 *   - a student pruned from the teacher (Wanda, 50%) keeps its zeros through
 *     distillation, a checkpoint and a resume: straight and killed-then-
 *     resumed runs give the same losses and the same student, whose pruned
 *     weights are all still zero and whose mask is written beside it;
 *     a `nexus prune` directory (2:4) as `init: load` keeps its zeros too;
 *     a Minitron-pruned student has the target shape;
 *   - bad input is caught before the first step with a clear message. */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nexus/checkpoint.h"
#include "nexus/hf.h"
#include "nexus/prune.h"
#include "nexus/run.h"
#include "nxtest.h"

static char root[64];
static const char *nexus_bin(void) {
    const char *b = getenv("NEXUS");
    return b ? b : "./nexus";
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0) fprintf(stderr, "  command failed: %s\n", cmd);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void make_fixture(void) {
    strcpy(root, "/tmp/nxrunXXXXXX");
    NX_ASSERT(mkdtemp(root));
    char p[256];
    nx_model_config c = {.arch = NX_ARCH_LLAMA, .V = 266, .C = 32, .L = 3, .NH = 4, .KVH = 2, .HS = 8,
                         .F = 64, .max_pos = 64, .eps = 1e-5f, .rope_theta = 10000, .bos_id = -1,
                         .eos_id = 265, .dtype = NX_F32};
    nx_model m;
    nx_rng r;
    nx_rng_seed(&r, 3);
    NX_ASSERT(nx_model_init(&m, &c, NULL) == NX_OK);
    nx_model_init_random(&m, 0.3f, &r);
    snprintf(p, sizeof p, "%s/teacher", root);
    nx_err e;
    NX_ASSERT(nx_hf_save_model(p, &m, NX_F32, &e) == NX_OK);
    nx_model_free(&m);
    sh("cp tests/fixtures/tok-bytelevel/tokenizer.json tests/fixtures/tok-bytelevel/tokenizer_config.json %s/%s", root, "teacher/");
    snprintf(p, sizeof p, "%s/data.jsonl", root);
    FILE *f = fopen(p, "w");
    const char *words[] = {"the", "cat", "hello", "world", "sat", "on", "a", "mat", "and", "then"};
    for (int d = 0; d < 120; d++) {
        fputs("{\"text\": \"", f);
        int n = 5 + (int)nx_rng_below(&r, 20);
        for (int w = 0; w < n; w++) fprintf(f, "%s%s", w ? " " : "", words[nx_rng_below(&r, 10)]);
        fputs(".\"}\n", f);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/run.yaml", root);
    write_file(p, "teacher: {path: teacher}\n"
                  "student: {from_teacher: true, num_layers: 2, init: {copy_layers: [0, 2]}}\n"
                  "data: {train: data.jsonl, validation: data.jsonl, seq_len: 16, batch_size: 4}\n"
                  "loss: {alpha: 0.5, temperature: 2}\n"
                  "optimizer: {lr: 3.0e-3, warmup_steps: 10, min_lr: 1.0e-4, steps: 150}\n"
                  "eval: {every: 50, batches: 2}\n"
                  "checkpoint: {every: 1, keep: 2}\n"
                  "log: {every: 1000}\n"
                  "seed: 11\n");
    snprintf(p, sizeof p, "%s/narrow.yaml", root);
    write_file(p, "teacher: {path: teacher, dtype: bf16}\n"
                  "student: {from_teacher: true, num_layers: 2, hidden_size: 24, intermediate_size: 48,\n"
                  "          num_heads: 3, num_kv_heads: 1, init: {kind: random, std: 0.02}}\n"
                  "data: {train: data.jsonl, validation: data.jsonl, seq_len: 16, batch_size: 4}\n"
                  "loss: {alpha: 0.5, temperature: 2, attention: 0.3,\n"
                  "       hidden: {weight: 0.5, layer_map: [[0, 1], [1, 2]]}}\n"
                  "optimizer: {lr: 3.0e-3, warmup_steps: 10, min_lr: 1.0e-4, steps: 150}\n"
                  "eval: {every: 50, batches: 2}\n"
                  "checkpoint: {every: 1, keep: 2}\n"
                  "log: {every: 1000}\n"
                  "seed: 12\n");
    snprintf(p, sizeof p, "%s/sparse.yaml", root);
    write_file(p, "teacher: {path: teacher}\n"
                  "student: {from_teacher: true,\n"
                  "          init: {kind: prune, method: wanda, sparsity: 0.5, importance_batches: 2}}\n"
                  "data: {train: data.jsonl, validation: data.jsonl, seq_len: 16, batch_size: 4}\n"
                  "loss: {alpha: 0.5, temperature: 2}\n"
                  "optimizer: {lr: 3.0e-3, warmup_steps: 10, min_lr: 1.0e-4, steps: 150}\n"
                  "eval: {every: 50, batches: 2}\n"
                  "checkpoint: {every: 1, keep: 2}\n"
                  "log: {every: 1000}\n"
                  "seed: 13\n");
    snprintf(p, sizeof p, "%s/load.yaml", root);
    write_file(p, "teacher: {path: teacher}\n"
                  "student: {init: {kind: load, path: pruned24}}\n"
                  "data: {train: data.jsonl, validation: data.jsonl, seq_len: 16, batch_size: 4}\n"
                  "optimizer: {lr: 3.0e-3, steps: 30}\n"
                  "eval: {batches: 2}\n"
                  "log: {every: 1000}\n");
    snprintf(p, sizeof p, "%s/minitron.yaml", root);
    write_file(p, "teacher: {path: teacher}\n"
                  "student: {from_teacher: true, hidden_size: 24, intermediate_size: 40, num_kv_heads: 1,\n"
                  "          num_layers: 2, init: {kind: prune, importance_batches: 2, layer_metric: ppl}}\n"
                  "data: {train: data.jsonl, validation: data.jsonl, seq_len: 16, batch_size: 4}\n"
                  "optimizer: {lr: 3.0e-3, steps: 30}\n"
                  "eval: {batches: 2}\n"
                  "log: {every: 1000}\n");
}

/* DIR/metrics.jsonl line by line. steps_only: "step, loss, ..., grad_norm"
 * of the step lines (what must match bit for bit, even while a run is still
 * writing). Otherwise every line with the timings (step_s, tokens_per_s) cut
 * off, evaluations included, each checked to be a JSON object (no bare nan). */
static char *metrics(const char *dir, bool steps_only) {
    char p[256], line[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "r");
    if (!f) return strdup("");
    size_t cap = 1 << 18, len = 0;
    char *out = calloc(cap, 1);
    while (fgets(line, sizeof line, f) && len < cap - 1100) {
        if (steps_only && (!strstr(line, "\"loss\": ") || !strstr(line, "\"grad_norm\": ") || strstr(line, "\"eval\"")))
            continue;
        if (!steps_only)
            CHECKF(line[0] == '{' && !strstr(line, "nan") && !strstr(line, "inf"), "not JSON: %s", line);
        char *cut = strstr(line, steps_only ? "\"lr\"" : ", \"step_s\"");
        if (cut) strcpy(cut, "\n");
        len += snprintf(out + len, cap - len, "%s", line);
    }
    fclose(f);
    return out;
}

static char *losses(const char *dir) { return metrics(dir, true); }

static int count_lines(const char *dir) {
    char *s = losses(dir);
    int n = 0;
    for (char *p = s; *p; p++) n += *p == '\n';
    free(s);
    return n;
}

static pid_t spawn(const char *yaml, const char *out, bool resume) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char cfg[256], set[300];
        snprintf(cfg, sizeof cfg, "%s/%s", root, yaml);
        snprintf(set, sizeof set, "output.dir=%s", out);
        freopen("/dev/null", "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(nexus_bin(), nexus_bin(), "distill", cfg, "--set", set, resume ? "--resume" : NULL, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_rc(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool same_file(const char *a, const char *b) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    return system(cmd) == 0;
}

static void interrupted_run(const char *yaml, const char *name, int sig, int expect_rc, const char *straight) {
    char out[200];
    snprintf(out, sizeof out, "%s/%s", root, name);
    pid_t pid = spawn(yaml, out, false);
    double t0 = nx_now();
    while (count_lines(out) < 30 && nx_now() - t0 < 60) usleep(2000);
    kill(pid, sig);
    int rc = wait_rc(pid);
    int done = count_lines(out);
    CHECKF(rc == expect_rc, "%s: exit %d, expected %d", name, rc, expect_rc);
    CHECKF(done < 150, "%s: the run finished before the signal (%d steps)", name, done);
    CHECK(wait_rc(spawn(yaml, out, true)) == 0);
    char *a = losses(straight), *b = losses(out);
    CHECKF(strcmp(a, b) == 0 && strlen(a) > 0, "%s: losses differ after resume", name);
    free(a), free(b);
    a = metrics(straight, false), b = metrics(out, false);
    CHECKF(strcmp(a, b) == 0, "%s: metrics.jsonl differs after resume (beyond timings)", name);
    char fa[256], fb[256];
    snprintf(fa, sizeof fa, "%s/model.safetensors", straight);
    snprintf(fb, sizeof fb, "%s/model.safetensors", out);
    CHECKF(same_file(fa, fb), "%s: students differ", name);
    printf("  %s after %d steps, resumed: 150 identical losses, identical student\n", name, done);
    free(a), free(b);
}

TEST(resume_after_kill_and_sigint_is_bit_identical) {
    make_fixture();
    char straight[200];
    snprintf(straight, sizeof straight, "%s/straight", root);
    CHECK(wait_rc(spawn("run.yaml", straight, false)) == 0);
    CHECK(count_lines(straight) == 150);
    interrupted_run("run.yaml", "killed", SIGKILL, 128 + SIGKILL, straight);
    interrupted_run("run.yaml", "sigint", SIGINT, 130, straight);
}

TEST(resume_with_projections_attention_and_bf16_teacher_is_bit_identical) {
    if (!root[0]) make_fixture();
    char straight[200], p[300];
    snprintf(straight, sizeof straight, "%s/narrow-straight", root);
    CHECK(wait_rc(spawn("narrow.yaml", straight, false)) == 0);
    CHECK(count_lines(straight) == 150);
    /* the hidden and attention terms are live in every step line */
    snprintf(p, sizeof p, "test $(grep -c '\"hidden\": [0-9.]*[1-9][0-9.e-]*, \"attention\": [0-9.]*[1-9]' %s/metrics.jsonl) -eq 150", straight);
    CHECK(system(p) == 0);
    interrupted_run("narrow.yaml", "narrow-killed", SIGKILL, 128 + SIGKILL, straight);
}

/* DIR's student and mask: every masked weight is zero; returns how many
 * weights the mask holds at zero (−1 without a mask file). */
static long check_zeros(const char *dir) {
    nx_model m;
    nx_err e;
    if (nx_hf_load_model(dir, &m, &e)) {
        fprintf(stderr, "  %s\n", e.msg);
        return -2;
    }
    uint8_t *mk = malloc(m.nparams);
    bool found;
    long pruned = -1;
    if (nx_hf_load_mask(dir, &m.cfg, mk, &found, &e) == NX_OK && found) {
        pruned = 0;
        for (size_t i = 0; i < m.nparams; i++)
            if (!mk[i]) {
                pruned++;
                if (m.params[i] != 0.0f) {
                    pruned = -3;
                    break;
                }
            }
    }
    free(mk);
    nx_model_free(&m);
    return pruned;
}

/* Weights of the teacher's layer matrices: what 50% or 2:4 halves. */
static long layer_weights(void) {
    char p[256];
    snprintf(p, sizeof p, "%s/teacher", root);
    nx_model_config c;
    nx_err e;
    NX_ASSERT(nx_hf_load_config(p, &c, &e) == NX_OK);
    return (long)c.L * ((c.NH + 2 * c.KVH) * c.HS * c.C + c.C * c.NH * c.HS + 3 * c.F * c.C);
}

TEST(sparse_student_keeps_its_zeros_through_distill_checkpoint_and_resume) {
    if (!root[0]) make_fixture();
    char straight[200], p[300];
    snprintf(straight, sizeof straight, "%s/sparse-straight", root);
    CHECK(wait_rc(spawn("sparse.yaml", straight, false)) == 0);
    CHECK(count_lines(straight) == 150);
    long half = layer_weights() / 2, z = check_zeros(straight);
    CHECKF(z == half, "the distilled student holds %ld masked weights at zero, want %ld (-1: no mask, -3: a "
                      "masked weight moved)", z, half);
    interrupted_run("sparse.yaml", "sparse-killed", SIGKILL, 128 + SIGKILL, straight);
    snprintf(p, sizeof p, "%s/sparse-killed", root);
    CHECK(check_zeros(p) == half);
    /* the newest checkpoint holds the mask, and zeros where it says */
    char ck[300], cfgp[300], set[300];
    nx_err e;
    snprintf(p, sizeof p, "%s/sparse-straight/checkpoints", root);
    CHECK(nx_ckpt_latest(p, ck, sizeof ck, &e) == NX_OK);
    snprintf(cfgp, sizeof cfgp, "%s/sparse.yaml", root);
    snprintf(set, sizeof set, "output.dir=%s", straight);
    const char *sets[] = {set};
    nx_run_config rc;
    CHECK(nx_run_config_load(&rc, cfgp, sets, 1, &e) == NX_OK);
    nx_model_config c;
    snprintf(p, sizeof p, "%s/teacher", root);
    CHECK(nx_hf_load_config(p, &c, &e) == NX_OK);
    size_t n = nx_model_numel(&c);
    float *prm = malloc(4 * n), *m1 = malloc(4 * n), *v1 = malloc(4 * n);
    uint8_t *mk = malloc(n);
    bool has = false;
    int64_t t;
    nx_ckpt_meta meta;
    CHECKF(nx_ckpt_load(ck, nx_run_config_hash(&rc), &meta, n, prm, m1, v1, mk, &has, &t, &e) == NX_OK, "%s", e.msg);
    long zeros = 0, moved = 0;
    for (size_t i = 0; i < n && has; i++) zeros += !mk[i], moved += !mk[i] && prm[i] != 0.0f;
    CHECKF(has && zeros == half && moved == 0, "checkpoint: mask %d, %ld masked, %ld not zero", has, zeros, moved);
    free(prm), free(m1), free(v1), free(mk);
}

TEST(pruned_directory_as_init_load_and_minitron_init) {
    if (!root[0]) make_fixture();
    char cmd[1200], out[200];
    snprintf(cmd, sizeof cmd, "%s prune %s/teacher --out %s/pruned24 --method magnitude --pattern 2:4 >/dev/null 2>&1",
             nexus_bin(), root, root);
    CHECK(system(cmd) == 0);
    snprintf(out, sizeof out, "%s/pruned24", root);
    long half = layer_weights() / 2;
    CHECK(check_zeros(out) == half);
    snprintf(out, sizeof out, "%s/load-out", root);
    CHECK(wait_rc(spawn("load.yaml", out, false)) == 0);
    CHECKF(check_zeros(out) == half, "init load: %ld", check_zeros(out));
    snprintf(out, sizeof out, "%s/minitron-out", root);
    CHECK(wait_rc(spawn("minitron.yaml", out, false)) == 0);
    nx_model_config c;
    nx_err e;
    CHECK(nx_hf_load_config(out, &c, &e) == NX_OK);
    CHECKF(c.C == 24 && c.F == 40 && c.NH == 2 && c.KVH == 1 && c.L == 2 && c.HS == 8, "shape %d %d %d %d %d", c.C,
           c.F, c.NH, c.KVH, c.L);
    CHECK(check_zeros(out) == -1); /* structured: no mask */
}

static void expect_error(const char *set1, const char *set2, const char *needle) {
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    const char *sets[4] = {"optimizer.steps=20", "eval.every=0", set1, set2};
    int n = 2 + (set1 != NULL) + (set2 != NULL);
    nx_run_config rc;
    nx_err e = {{0}};
    int r = nx_run_config_load(&rc, cfg, sets, n, &e);
    if (r == NX_OK) {
        nx_run_opts o = {.distill = true};
        nx_run_summary s;
        r = nx_run(&rc, &o, &s, &e);
    }
    CHECKF(r == NX_ERR && strstr(e.msg, needle), "expected an error containing \"%s\", got: %s", needle,
           r == NX_ERR ? e.msg : "success");
}

TEST(bad_input_is_reported_before_training) {
    if (!root[0]) make_fixture();
    char p[300];
    snprintf(p, sizeof p, "%s/missing.jsonl", root);
    char set[400];
    snprintf(set, sizeof set, "data.train=%s", p);
    expect_error(set, NULL, "missing.jsonl");
    expect_error("output.dir=/dev/null/out", NULL, "/dev/null");
    expect_error("student.vocab_size=300", NULL, "vocab");
    expect_error("data.seq_len=200", NULL, "max_position_embeddings");
    /* a shard made with another tokenizer */
    snprintf(p, sizeof p, "%s/spm", root);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s prepare-data --model tests/fixtures/tok-spm --input %s/data.jsonl --out %s --eos '</s>' >/dev/null 2>&1",
             nexus_bin(), root, p);
    CHECK(system(cmd) == 0);
    snprintf(set, sizeof set, "data.train=%s", p);
    expect_error(set, "data.validation=null", "different tokenizer");
    /* a teacher directory without tokenizer.json */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/notok && cp %s/teacher/config.json %s/teacher/model.safetensors %s/notok/",
             root, root, root, root);
    CHECK(system(cmd) == 0);
    snprintf(set, sizeof set, "teacher.path=%s/notok", root);
    expect_error(set, NULL, "tokenizer");
    /* pruned students: targets the teacher cannot give, options that do not fit */
    expect_error("student.init=prune", "student.hidden_size=40", "larger than the model's 32");
    expect_error("student.init=prune", "student.num_heads=3", "not a whole number of the model's KV groups");
    expect_error("student.init={kind: prune, target_params: 99999999}", "student.num_layers=null",
                 "larger than the model's");
    expect_error("student.init={kind: prune, method: wanda, pattern: \"3:5\"}", "student.num_layers=null",
                 "multiple of 5");
    expect_error("student.init={kind: prune, method: wanda, sparsity: 0.5}", NULL,
                 "keeps the teacher's shape");
    snprintf(set, sizeof set, "student.init={kind: load, path: %s/nowhere}", root);
    expect_error(set, "student.from_teacher=false", "nowhere");
}

__attribute__((destructor)) static void cleanup(void) {
    if (root[0] && !getenv("KEEP")) sh("rm -rf %s%s", root, "");
}
