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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "nexus/checkpoint.h"
#include "nexus/fsutil.h"
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

/* nexus distill ROOT/yaml into out (--resume), its stderr to log (NULL: /dev/null). */
static pid_t spawn_log(const char *yaml, const char *out, bool resume, const char *log) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char cfg[256], set[300];
        snprintf(cfg, sizeof cfg, "%s/%s", root, yaml);
        snprintf(set, sizeof set, "output.dir=%s", out);
        freopen(log ? log : "/dev/null", "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(nexus_bin(), nexus_bin(), "distill", cfg, "--set", set, resume ? "--resume" : NULL, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static pid_t spawn(const char *yaml, const char *out, bool resume) { return spawn_log(yaml, out, resume, NULL); }

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

/* nexus distill ROOT/yaml into ROOT/out with --set sets (space-separated
 * key=value), quietly; its exit status. */
static int distill_with(const char *yaml, const char *out, const char *sets) {
    char cmd[1200], args[600] = "";
    size_t u = 0;
    for (const char *p = sets; *p;) {
        size_t n = strcspn(p, " ");
        u += (size_t)snprintf(args + u, sizeof args - u, " --set %.*s", (int)n, p);
        p += n + (p[n] == ' ');
    }
    snprintf(cmd, sizeof cmd, "%s distill %s/%s --set output.dir=%s/%s%s > %s/%s.log 2>&1", nexus_bin(), root, yaml, root,
             out, args, root, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* recompute: true (activation recomputation) trains the same student, bit
 * for bit, also with the hidden-state loss through learned projections;
 * with attention transfer it is refused before anything runs. */
TEST(recomputed_activations_train_the_same_student) {
    if (!root[0]) make_fixture();
    const char *cases[][2] = {{"run.yaml", ""}, {"narrow.yaml", "loss.attention=0"}};
    for (int i = 0; i < 2; i++) {
        char off[64], on[64], sets[200], fa[256], fb[256];
        snprintf(off, sizeof off, "rc-off-%d", i);
        snprintf(on, sizeof on, "rc-on-%d", i);
        snprintf(sets, sizeof sets, "%s%srecompute=true", cases[i][1], cases[i][1][0] ? " " : "");
        CHECK(distill_with(cases[i][0], off, cases[i][1]) == 0);
        CHECK(distill_with(cases[i][0], on, sets) == 0);
        snprintf(fa, sizeof fa, "%s/%s", root, off);
        snprintf(fb, sizeof fb, "%s/%s", root, on);
        char *a = losses(fa), *b = losses(fb);
        CHECKF(strcmp(a, b) == 0 && strlen(a) > 0, "%s: losses differ with recompute: true", cases[i][0]);
        free(a), free(b);
        snprintf(fa, sizeof fa, "%s/%s/model.safetensors", root, off);
        snprintf(fb, sizeof fb, "%s/%s/model.safetensors", root, on);
        CHECKF(same_file(fa, fb), "%s: students differ with recompute: true", cases[i][0]);
    }
    CHECK(distill_with("narrow.yaml", "rc-att", "recompute=true") != 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q 'recompute: cannot be combined with loss.attention' %s/rc-att.log", root);
    CHECK(system(cmd) == 0);
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
    /* the message shows the shard's fingerprint, not a closed shard's zeros (issue 15, item 13) */
    expect_error(set, "data.validation=null", "tokenizer than the teacher's (fingerprint ");
    {
        char cfg[256];
        snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
        const char *sets[] = {"optimizer.steps=20", "eval.every=0", set, "data.validation=null"};
        nx_run_config rc;
        nx_err e = {{0}};
        nx_run_opts o = {.distill = true};
        nx_run_summary s;
        CHECK(nx_run_config_load(&rc, cfg, sets, 4, &e) == NX_OK && nx_run(&rc, &o, &s, &e) == NX_ERR);
        CHECKF(!strstr(e.msg, "fingerprint 0000000000000000"), "%s", e.msg);
    }
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

/* Issue 15, item 1: no output path may overlap an input (equal, inside or
 * containing), and nothing is written before that is checked. */
TEST(output_overlapping_an_input_is_refused) {
    if (!root[0]) make_fixture();
    char cmd[1200], set[400], set2[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s/t2 && cp -r %s/teacher %s/t2 && cp %s/data.jsonl %s/d2.jsonl && "
             "ln -sfn t2 %s/link", root, root, root, root, root, root);
    CHECK(system(cmd) == 0);
    snprintf(set, sizeof set, "teacher.path=%s/t2", root);
    const char *outs[][2] = {
        {"output.dir=%s/t2", "teacher.path"},          /* equal */
        {"output.dir=%s/t2/student", "teacher.path"},  /* inside */
        {"output.dir=%s", "teacher.path"},             /* containing */
        {"checkpoint.dir=%s/t2", "teacher.path"},
        {"log.metrics_file=%s/d2.jsonl", "data.train"},
        {"output.dir=%s/link/../t2/x", "teacher.path"}, /* through a symbolic link */
        {"output.dir=%s/link", "teacher.path"},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        char o[400];
        snprintf(o, sizeof o, outs[i][0], root);
        snprintf(set2, sizeof set2, "data.train=%s/d2.jsonl", root);
        char cfg[256];
        snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
        const char *sets[7] = {"optimizer.steps=12", "eval.every=0", set, set2, o, "checkpoint.every=0",
                               "output.dir=/tmp/nx-overlap-unused"};
        int n = strncmp(o, "output.dir", 10) ? 7 : 6;
        nx_run_config rc;
        nx_err e = {{0}};
        int r = nx_run_config_load(&rc, cfg, sets, n, &e);
        if (r == NX_OK) {
            nx_run_opts op = {.distill = true};
            nx_run_summary s;
            r = nx_run(&rc, &op, &s, &e);
        }
        CHECKF(r == NX_ERR && strstr(e.msg, "overlaps") && strstr(e.msg, outs[i][1]), "%s: got %s", o,
               r == NX_ERR ? e.msg : "success");
    }
    /* the inputs are untouched */
    snprintf(cmd, sizeof cmd, "cmp -s %s/teacher/model.safetensors %s/t2/model.safetensors && "
                              "cmp -s %s/teacher/config.json %s/t2/config.json && cmp -s %s/data.jsonl %s/d2.jsonl && "
                              "test ! -e %s/t2/student && test ! -e %s/t2/metrics.jsonl && test ! -e %s/t2/checkpoints",
             root, root, root, root, root, root, root, root, root);
    CHECKF(system(cmd) == 0, "an input was written to");
    system("rm -rf /tmp/nx-overlap-unused");
}

/* Issue 15, item 2: a new run into a directory that holds another run is
 * refused (its checkpoints and metrics untouched) unless --resume or
 * --overwrite. */
TEST(new_run_into_another_runs_directory_is_refused) {
    if (!root[0]) make_fixture();
    char cfg[256], out[300], ck[300];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    snprintf(out, sizeof out, "output.dir=%s/occupied", root);
    snprintf(ck, sizeof ck, "%s/occupied/checkpoints/step-00000012.nxck", root);
    const char *a[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=4", "seed=11", out};
    const char *b[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=4", "seed=99", out};
    nx_run_config rc;
    nx_err e = {{0}};
    nx_run_summary s;
    nx_run_opts op = {.distill = true};
    CHECK(nx_run_config_load(&rc, cfg, a, 5, &e) == NX_OK && nx_run(&rc, &op, &s, &e) == NX_OK);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/occupied", root);
    int lines = count_lines(dir);
    CHECK(lines == 12 && access(ck, F_OK) == 0);
    /* another config, no --resume: refused, nothing touched */
    CHECK(nx_run_config_load(&rc, cfg, b, 5, &e) == NX_OK);
    int r = nx_run(&rc, &op, &s, &e);
    CHECKF(r == NX_ERR && strstr(e.msg, "--resume") && strstr(e.msg, "--overwrite"), "got %s",
           r == NX_ERR ? e.msg : "success");
    CHECK(count_lines(dir) == lines && access(ck, F_OK) == 0);
    /* the same config again, no --resume: refused as well */
    CHECK(nx_run_config_load(&rc, cfg, a, 5, &e) == NX_OK);
    CHECK(nx_run(&rc, &op, &s, &e) == NX_ERR && strstr(e.msg, "--overwrite"));
    /* --overwrite that fails while loading leaves the earlier run as it was */
    char bad[400];
    snprintf(bad, sizeof bad, "data.train=%s/missing.jsonl", root);
    const char *c[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=4", "seed=99", out, bad};
    nx_run_opts ow = {.distill = true, .overwrite = true};
    CHECK(nx_run_config_load(&rc, cfg, c, 6, &e) == NX_OK && nx_run(&rc, &ow, &s, &e) == NX_ERR);
    CHECK(count_lines(dir) == lines && access(ck, F_OK) == 0);
    /* --overwrite replaces it: the new run's checkpoints only, and they resume */
    CHECK(nx_run_config_load(&rc, cfg, b, 5, &e) == NX_OK && nx_run(&rc, &ow, &s, &e) == NX_OK);
    CHECK(count_lines(dir) == 12);
    const char *b16[] = {"optimizer.steps=16", "eval.every=0", "checkpoint.every=4", "seed=99", out};
    nx_run_opts re = {.distill = true, .resume = true};
    CHECKF(nx_run_config_load(&rc, cfg, b16, 5, &e) == NX_OK && nx_run(&rc, &re, &s, &e) == NX_OK, "%s", e.msg);
    CHECK(count_lines(dir) == 16);
}

/* Issue 15, item 3: a second run into a directory in use is refused at
 * once, naming the process that holds it. */
TEST(second_run_into_a_busy_directory_is_refused) {
    if (!root[0]) make_fixture();
    char out[200], log[256];
    snprintf(out, sizeof out, "%s/busy", root);
    snprintf(log, sizeof log, "%s/busy.log", root);
    pid_t a = spawn("run.yaml", out, false);
    double t0 = nx_now();
    while (count_lines(out) < 3 && nx_now() - t0 < 60) usleep(2000);
    pid_t b = spawn_log("run.yaml", out, true, log);
    int rb = -1;
    for (t0 = nx_now(); nx_now() - t0 < 20;) {
        int st;
        if (waitpid(b, &st, WNOHANG) == b) {
            rb = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        usleep(10000);
    }
    if (rb < 0) kill(b, SIGKILL), wait_rc(b);
    kill(a, SIGKILL);
    wait_rc(a);
    char *msg = nx_read_file(log, 1u << 30, NULL, NULL), pid[32];
    snprintf(pid, sizeof pid, "pid %d", (int)a);
    CHECKF(rb == 1 && msg && strstr(msg, "in use") && strstr(msg, pid), "second run: exit %d, said: %s", rb,
           msg ? msg : "(nothing)");
    free(msg);
}

/* Issue 15, item 4: what would fail late (the evaluation windows, the
 * teacher's context, room for the checkpoints) fails before the first
 * step, and leaves nothing behind. */
static void expect_early(const char *name, const char *set1, const char *set2, const char *needle) {
    char cfg[256], out[400], dir[300];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(out, sizeof out, "output.dir=%s", dir);
    const char *sets[5] = {"optimizer.steps=20", "checkpoint.every=0", out, set1, set2};
    int n = 3 + (set1 != NULL) + (set2 != NULL);
    nx_run_config rc;
    nx_err e = {{0}};
    int r = nx_run_config_load(&rc, cfg, sets, n, &e);
    if (r == NX_OK) {
        nx_run_opts o = {.distill = true};
        nx_run_summary s;
        r = nx_run(&rc, &o, &s, &e);
    }
    CHECKF(r == NX_ERR && strstr(e.msg, needle), "%s: expected an error containing \"%s\", got: %s", name, needle,
           r == NX_ERR ? e.msg : "success");
    CHECKF(count_lines(dir) == 0, "%s: %d steps ran before the error", name, count_lines(dir));
}

TEST(late_failures_are_caught_before_the_first_step) {
    if (!root[0]) make_fixture();
    /* evaluation windows are seq_len tokens: 65 > max_position_embeddings 64 */
    expect_early("late-seq", "data.seq_len=65", NULL, "max_position_embeddings");
    /* a student with a longer context than the teacher's: the teacher cannot run the windows */
    expect_early("late-tctx", "student.max_position_embeddings=128", "data.seq_len=100", "teacher");
    /* no room for a checkpoint */
    char mnt[300], cmd[400];
    snprintf(mnt, sizeof mnt, "%s/small", root);
    mkdir(mnt, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=256k tmpfs %s 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) SKIP("cannot mount a 256 KiB tmpfs here (needs root)");
    expect_early("small/out", NULL, NULL, "free");
    snprintf(cmd, sizeof cmd, "umount %s", mnt);
    CHECK(system(cmd) == 0);
}

/* Issue 15, item 5: a run that does not fit in memory is refused before
 * anything heavy is loaded, with the plan, the memory available and the
 * knobs (here the memory is a data rlimit of 400 MB; the student needs
 * about 540 MB for weights, gradients and AdamW alone). */
TEST(run_that_does_not_fit_in_memory_is_refused_at_once) {
#ifdef __SANITIZE_ADDRESS__
    SKIP("ASan's shadow memory cannot be mapped under the 400 MB RLIMIT_DATA this test sets");
#endif
    if (!root[0]) make_fixture();
    int fd[2];
    CHECK(pipe(fd) == 0);
    double t0 = nx_now();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit lim = {400u << 20, 400u << 20};
        setrlimit(RLIMIT_DATA, &lim);
        char cfg[256], out[300];
        snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
        snprintf(out, sizeof out, "output.dir=%s/big", root);
        const char *sets[] = {"student={hidden_size: 512, num_layers: 8, num_heads: 8, intermediate_size: 2048, "
                              "max_position_embeddings: 64, init: random}", "loss.hidden=null", out};
        nx_run_config rc;
        nx_err e = {{0}};
        int r = nx_run_config_load(&rc, cfg, sets, 3, &e);
        if (r == NX_OK) {
            nx_run_opts o = {.distill = true};
            nx_run_summary s;
            r = nx_run(&rc, &o, &s, &e);
        }
        if (r == NX_OK) snprintf(e.msg, sizeof e.msg, "success");
        write(fd[1], e.msg, strlen(e.msg) + 1);
        _exit(0);
    }
    close(fd[1]);
    char msg[1100] = "";
    ssize_t k = read(fd[0], msg, sizeof msg - 1);
    msg[k > 0 ? k : 0] = 0;
    close(fd[0]);
    wait_rc(pid);
    double dt = nx_now() - t0;
    CHECKF(strstr(msg, "the run needs") && strstr(msg, "available") && strstr(msg, "ulimit -d") &&
           strstr(msg, "data.batch_size 1 with data.grad_accum 4") && strstr(msg, "data.seq_len 4"),
           "got: %s", msg);
    CHECKF(dt < 2, "took %.1f s", dt);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/big", root);
    CHECK(access(dir, F_OK) != 0); /* nothing created */
}

/* Issue 15, item 9: every field read from a checkpoint is checked against
 * the run, not only the CRC: a crafted loader position (2^64 - 10, CRC
 * recomputed) is refused with a message, not read out of bounds. */
static void craft(const char *path, size_t at, const void *val, size_t n) {
    FILE *f = fopen(path, "r+b");
    NX_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    unsigned char *b = malloc(size);
    fseek(f, 0, SEEK_SET);
    NX_ASSERT(fread(b, 1, size, f) == (size_t)size);
    memcpy(b + at, val, n);
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), b + 16, (uInt)(size - 20));
    memcpy(b + size - 4, &crc, 4);
    fseek(f, 0, SEEK_SET);
    fwrite(b, 1, size, f);
    fclose(f);
    free(b);
}

TEST(crafted_checkpoint_fields_are_refused) {
    if (!root[0]) make_fixture();
    char cfg[256], out[400], ck[400], log[300], dir[200];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    snprintf(dir, sizeof dir, "%s/crafted", root);
    snprintf(out, sizeof out, "output.dir=%s", dir);
    snprintf(ck, sizeof ck, "%s/checkpoints/step-00000012.nxck", dir);
    snprintf(log, sizeof log, "%s/crafted.log", root);
    const char *sets[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=4", "checkpoint.keep=0",
                          "data.order=sequential", out};
    nx_run_config rc;
    nx_err e = {{0}};
    nx_run_summary s;
    nx_run_opts op = {.distill = true};
    CHECKF(nx_run_config_load(&rc, cfg, sets, 6, &e) == NX_OK && nx_run(&rc, &op, &s, &e) == NX_OK, "%s", e.msg);
    char keep[1500];
    snprintf(keep, sizeof keep, "cp %s %s.orig", ck, ck);
    CHECK(system(keep) == 0);
    /* header: magic 8 | version 4 | length 4 | config hash 8 | step 8 | tokens 8 | rng 32 | data-state length 4,
     * pad 4 | data state (the loader's: pos 8, epoch 8, rng 32) */
    const size_t H = 16, STEP = H + 8, TOKENS = H + 16, POS = H + 64;
    uint64_t pos = UINT64_MAX - 9;
    int64_t neg = -5, big = 1000;
    struct { size_t at; const void *v; const char *needle; } cases[] = {
        {POS, &pos, "position"}, {STEP, &neg, "step"}, {TOKENS, &big, "tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(keep, sizeof keep, "rm -f %s/checkpoints/step-*.nxck && cp %s.orig %s", dir, ck, ck);
        CHECK(system(keep) == 0);
        craft(ck, cases[i].at, cases[i].v, 8);
        /* resumed in its own process: a bad read must not take the test down */
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            freopen(log, "w", stderr);
            freopen("/dev/null", "w", stdout);
            execl(nexus_bin(), nexus_bin(), "distill", cfg, "--resume", "--set", "optimizer.steps=16", "--set",
                  "eval.every=0", "--set", "checkpoint.every=4", "--set", "checkpoint.keep=0", "--set",
                  "data.order=sequential", "--set", out, (char *)NULL);
            _exit(127);
        }
        int r = wait_rc(pid);
        char *msg = nx_read_file(log, 1u << 30, NULL, NULL);
        CHECKF(r == 1 && msg && strstr(msg, "step-00000012.nxck") && strstr(msg, cases[i].needle),
               "case %zu: exit %d, said: %s", i, r, msg ? msg : "");
        free(msg);
    }
}

/* Issue 15, item 13: `nexus train` (no teacher, no logits to distill) may
 * give the student a larger vocabulary than the teacher's tokenizer needs,
 * whatever loss.alpha says; distilling still may not. */
TEST(train_takes_a_larger_student_vocabulary) {
    if (!root[0]) make_fixture();
    char cfg[256], out[300];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    snprintf(out, sizeof out, "output.dir=%s/trainvocab", root);
    const char *sets[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=0", "student.vocab_size=300",
                          "student.init=random", "loss.alpha=0.5", out};
    nx_run_config rc;
    nx_err e = {{0}};
    nx_run_opts o = {.distill = false};
    nx_run_summary s;
    CHECKF(nx_run_config_load(&rc, cfg, sets, 7, &e) == NX_OK && nx_run(&rc, &o, &s, &e) == NX_OK, "%s", e.msg);
}

/* A kill -9 during a checkpoint (or the student's) write leaves its
 * temporary file behind, as large as a checkpoint: the next run into the
 * directory (which holds its lock) removes what nexus itself writes there. */
TEST(stale_temporary_files_are_removed_on_resume) {
    if (!root[0]) make_fixture();
    char cfg[256], out[300], dir[200], cmd[1200];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    snprintf(dir, sizeof dir, "%s/stale", root);
    snprintf(out, sizeof out, "output.dir=%s", dir);
    const char *sets[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=4", out};
    nx_run_config rc;
    nx_err e = {{0}};
    nx_run_summary s;
    nx_run_opts op = {.distill = true};
    CHECK(nx_run_config_load(&rc, cfg, sets, 4, &e) == NX_OK && nx_run(&rc, &op, &s, &e) == NX_OK);
    snprintf(cmd, sizeof cmd, "head -c 100000 /dev/zero > %s/checkpoints/step-00000099.nxck.tmp && "
                              "touch %s/special_tokens_map.json.tmp %s/mine.tmp", dir, dir, dir);
    CHECK(system(cmd) == 0);
    const char *more[] = {"optimizer.steps=16", "eval.every=0", "checkpoint.every=4", out};
    nx_run_opts re = {.distill = true, .resume = true};
    CHECKF(nx_run_config_load(&rc, cfg, more, 4, &e) == NX_OK && nx_run(&rc, &re, &s, &e) == NX_OK, "%s", e.msg);
    snprintf(cmd, sizeof cmd, "test ! -e %s/checkpoints/step-00000099.nxck.tmp && test ! -e %s/special_tokens_map.json.tmp "
                              "&& test -e %s/mine.tmp", dir, dir, dir);
    CHECKF(system(cmd) == 0, "the stale temporary files are still there (or a file not nexus' was removed)");
}

/* A metrics line that cannot be written (a full disk; here /dev/full) stops
 * the run with the reason, instead of leaving metrics.jsonl silently short. */
TEST(a_metrics_write_that_fails_stops_the_run) {
    if (!root[0]) make_fixture();
    char cfg[256], out[300];
    snprintf(cfg, sizeof cfg, "%s/run.yaml", root);
    snprintf(out, sizeof out, "output.dir=%s/devfull", root);
    const char *sets[] = {"optimizer.steps=12", "eval.every=0", "checkpoint.every=0", "log.metrics_file=/dev/full", out};
    nx_run_config rc;
    nx_err e = {{0}};
    nx_run_summary s;
    nx_run_opts op = {.distill = true};
    CHECK(nx_run_config_load(&rc, cfg, sets, 5, &e) == NX_OK);
    int r = nx_run(&rc, &op, &s, &e);
    CHECKF(r == NX_ERR && strstr(e.msg, "/dev/full") && strstr(e.msg, "No space"), "got %s", r ? e.msg : "success");
}

__attribute__((destructor)) static void cleanup(void) {
    if (root[0] && !getenv("KEEP")) sh("rm -rf %s%s", root, "");
}
