/* benchmark.c — `nexus benchmark MODEL [MODEL ...] --data F.jsonl`: quality
 * (perplexity; with --teacher, top-1 agreement, KL and ratios to the
 * teacher), speed (TTFT, prefill and decode tokens/s, per-token latency)
 * and cost (parameters, size on disk, peak resident memory) of each model,
 * as an aligned table, --json, and an SVG scatter (--plot).
 *
 * Each model is measured in its own forked child process, so that its peak
 * resident memory (VmHWM) is its own: the child loads the tokenizer, the
 * data and the model, runs the speed benchmark, reads VmHWM (before any
 * teacher is loaded), then evaluates, and sends a fixed-size result back
 * through a pipe. The measurements themselves live in src/model/eval.c. */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/dataset.h"
#include "nexus/bench.h"
#include "nexus/eval.h"
#include "nexus/hf.h"
#include "nexus/modelfile.h"
#include "nexus/tokenizer.h"

/* Peak resident set of this process so far, in bytes (VmHWM from
 * /proc/self/status; getrusage's ru_maxrss where /proc is missing). */
static double peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        fclose(f);
        if (kb >= 0) return kb * 1024.0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024.0;
}

typedef struct {
    const char *teacher, *data, *field;
    long seq_len, eval_batch, max_windows, threads;
    const char *device, *precision;
    nx_bench_opts bo;
    bool no_speed;
} settings;

typedef struct {
    int ok;
    char err[1024];
    bool is_teacher, has_teacher;
    double params, disk_bytes, peak_rss, data_tokens;
    nx_bench_speed sp;
    nx_eval_result ev;
} result;

static bool same_dir(const char *a, const char *b) {
    char ra[4096], rb[4096];
    if (!realpath(a, ra) || !realpath(b, rb)) return strcmp(a, b) == 0;
    return strcmp(ra, rb) == 0;
}

static double disk_size(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) return (double)sb.st_size; /* a GGUF */
    DIR *d = opendir(dir);
    if (!d) return 0;
    double total = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") || !strcmp(e->d_name, NX_HF_MASK_FILE)) continue;
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0) total += st.st_size;
    }
    closedir(d);
    return total;
}

/* --data as prepare-data tokens: a shard directory (its val.bin, else its
 * train.bin) or a .bin file; false for documents to tokenize. */
static bool shard_path(const char *data, char *out, size_t n) {
    struct stat sb;
    size_t len = strlen(data);
    if (len > 4 && !strcmp(data + len - 4, ".bin")) {
        snprintf(out, n, "%s", data);
        return true;
    }
    if (stat(data, &sb) || !S_ISDIR(sb.st_mode)) return false;
    snprintf(out, n, "%s/val.bin", data);
    if (access(out, R_OK) != 0) snprintf(out, n, "%s/train.bin", data);
    return true;
}

/* Progress of the child on stderr: each stage named when it starts, and on
 * a terminal a counter updated in place. */
typedef struct {
    const char *model, *stage;
    bool tty;
    double last;
} progress_ctx;

static void show_progress(void *ctx_, const char *what, int64_t done, int64_t total) {
    progress_ctx *c = ctx_;
    double now = nx_now();
    bool new_stage = !c->stage || strcmp(c->stage, what) != 0;
    if (new_stage) {
        if (c->stage && c->tty) fputc('\n', stderr);
        c->stage = what;
        if (!c->tty) fprintf(stderr, "benchmark: %s: %lld %s\n", c->model, (long long)total, what);
    }
    if (c->tty && (new_stage || done == total || now - c->last > 0.2)) {
        fprintf(stderr, "\r  %s: %s %lld/%lld", c->model, what, (long long)done, (long long)total);
        c->last = now;
    }
}

/* Everything measured for one model, in this (child) process. */
static int measure(const char *dir, const settings *st_, result *r, nx_err *err) {
    settings copy = *st_, *st = &copy;
    progress_ctx pc = {.model = dir, .tty = cli_stderr_tty()};
    st->bo.progress = (nx_progress){show_progress, &pc};
    nx_set_threads((int)st->threads);
    const char *tokdir = dir;
    if (!nx_modelfile_has_tokenizer(dir)) {
        if (!st->teacher)
            return nx_fail(err, "%s has no tokenizer (tokenizer.json or GGUF tokenizer metadata): the data must be "
                                "tokenized with the model's tokenizer", dir);
        tokdir = st->teacher; /* a student without its tokenizer shares the teacher's */
    }
    nx_tokenizer *tok = NULL;
    nx_model m = {0}, t = {0};
    nx_token_stream ts = {0};
    nx_shard shard;
    bool have_shard = false;
    nx_tokens data = {0};
    int rc = NX_ERR;
    nx_backend *be = nx_backend_by_name(st->device, err);
    nx_precision prec;
    if (!be || nx_precision_parse(st->precision, &prec, err) || nx_backend_set_precision(be, prec, err) ||
        nx_modelfile_tokenizer(tokdir, &tok, err))
        goto out;
    if (nx_modelfile_load(dir, nx_precision_hold(prec), be, &m, NULL, err)) goto out;
    r->params = (double)nx_model_count(&m.cfg);
    r->disk_bytes = disk_size(dir);
    if (st->data) {
        char sp[4200];
        if (shard_path(st->data, sp, sizeof sp)) { /* prepare-data tokens: the model's tokenizer must have made them */
            if (nx_shard_open(&shard, sp, err)) goto out;
            have_shard = true;
            if (shard.info.fingerprint != nx_tokenizer_fingerprint(tok)) {
                nx_fail(err, "%s: made with another tokenizer than %s's (fingerprint %016llx, tokenizer %016llx): "
                             "run nexus prepare-data with this model", sp, tokdir,
                        (unsigned long long)shard.info.fingerprint, (unsigned long long)nx_tokenizer_fingerprint(tok));
                goto out;
            }
            data = nx_shard_tokens(&shard);
        } else {
            nx_docs_opts o = {.field = st->field,
                              .eos_id = nx_tokenizer_eos_id(tok) >= 0 ? nx_tokenizer_eos_id(tok) : m.cfg.eos_id,
                              .threads = (int)st->threads};
            if (nx_dataset_tokenize(tok, &st->data, 1, &o, &ts, NULL, err)) goto out;
            data = nx_stream_tokens(&ts);
        }
        r->data_tokens = (double)data.n;
    }
    if (!st->no_speed && nx_bench_speed_run(&m, &st->bo, &r->sp, err)) goto out;
    r->peak_rss = peak_rss_bytes();
    if (st->data) {
        r->is_teacher = st->teacher && same_dir(dir, st->teacher);
        r->has_teacher = st->teacher && !r->is_teacher;
        if (r->has_teacher && nx_modelfile_load(st->teacher, nx_precision_hold(prec), be, &t, NULL, err)) {
            nx_fail_prefix(err, "teacher");
            goto out;
        }
        for (uint64_t i = 0; i < data.n; i++)
            if (nx_tokens_at(data, i) < 0 || nx_tokens_at(data, i) >= m.cfg.V) {
                nx_fail(err, "%s: token %llu of the stream has id %d, outside the model's vocabulary of %d: "
                             "the tokenizer does not match the model", st->data, (unsigned long long)i,
                        nx_tokens_at(data, i), m.cfg.V);
                goto out;
            }
        if (nx_eval(&m, r->has_teacher ? &t : NULL, data, (int)st->seq_len, (int)st->eval_batch,
                    st->max_windows, &r->ev, &st->bo.progress, err)) {
            nx_fail_prefix(err, "%s", st->data);
            goto out;
        }
    }
    rc = NX_OK;
out:
    if (pc.stage && pc.tty) fputc('\n', stderr);
    if (have_shard) nx_shard_close(&shard);
    nx_token_stream_free(&ts);
    if (m.be) nx_model_free(&m);
    if (t.be) nx_model_free(&t);
    nx_tokenizer_free(tok);
    return rc;
}

static int run_child(const char *dir, const settings *st, result *r) {
    int fd[2];
    memset(r, 0, sizeof *r);
    if (pipe(fd)) {
        snprintf(r->err, sizeof r->err, "pipe: %s", strerror(errno));
        return NX_ERR;
    }
    fflush(stdout), fflush(stderr);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        snprintf(r->err, sizeof r->err, "fork: %s", strerror(errno));
        return NX_ERR;
    }
    if (pid == 0) {
        /* the child dies with its parent (SIGTERM, SIGKILL, a crash): it is
         * never left measuring on its own */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        close(fd[0]);
        nx_err err = {{0}};
        result mine = {0};
        mine.ok = measure(dir, st, &mine, &err) == NX_OK;
        if (!mine.ok) snprintf(mine.err, sizeof mine.err, "%s", err.msg);
        size_t off = 0;
        while (off < sizeof mine) {
            ssize_t k = write(fd[1], (char *)&mine + off, sizeof mine - off);
            if (k <= 0) _exit(1);
            off += (size_t)k;
        }
        _exit(0);
    }
    close(fd[1]);
    size_t off = 0;
    ssize_t k;
    while (off < sizeof *r && (k = read(fd[0], (char *)r + off, sizeof *r - off)) > 0) off += (size_t)k;
    close(fd[0]);
    int wst;
    waitpid(pid, &wst, 0);
    if (off != sizeof *r) {
        snprintf(r->err, sizeof r->err, "the measuring process died (%s %d) before reporting",
                 WIFSIGNALED(wst) ? "signal" : "exit status", WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
        r->ok = 0;
    }
    return r->ok ? NX_OK : NX_ERR;
}

static cJSON *stat_json(nx_bench_stat s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "min", s.min);
    cJSON_AddNumberToObject(o, "median", s.median);
    cJSON_AddNumberToObject(o, "max", s.max);
    return o;
}

static const char *base_name(const char *p) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s", p);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    const char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

/* Quality (perplexity, log axis, lower is better) against speed (decode
 * tokens/s at batch 1); marker area proportional to size on disk. */
static int write_plot(const char *path, const char *const *names, const result *r, int n, nx_err *err) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY, smax = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].ok || !(r[i].ev.perplexity > 0) || !(r[i].sp.decode_tps.median > 0)) continue;
        double x = r[i].sp.decode_tps.median, y = r[i].ev.perplexity;
        xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        smax = fmax(smax, r[i].disk_bytes);
        k++;
    }
    if (k == 0) return nx_fail(err, "--plot %s: no model has both a perplexity and a decode speed to plot", path);
    FILE *f = fopen(path, "w");
    if (!f) return nx_fail(err, "--plot %s: cannot create the file: %s", path, strerror(errno));
    /* x: linear from 0 to a round number above the fastest; y: log, whole decades or 1-2-5 steps */
    double xstep = pow(10, floor(log10(xmax > 0 ? xmax : 1)));
    if (xmax / xstep < 3) xstep /= 2;
    double xhi = ceil(xmax * 1.15 / xstep) * xstep;
    double ylo = pow(10, floor(log10(ymin / 1.2))), yhi = pow(10, ceil(log10(ymax * 1.2)));
    const double W = 720, H = 480, L = 80, R = 40, Tp = 50, Bm = 60;
#define PX(x) (L + (x) / xhi * (W - L - R))
#define PY(y) (H - Bm - (log10(y) - log10(ylo)) / (log10(yhi) - log10(ylo)) * (H - Tp - Bm))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"28\" font-size=\"15\" text-anchor=\"middle\">Quality vs speed (marker area ∝ size on disk)</text>\n", W / 2);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", L, H - Bm, W - R, H - Bm);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", L, Tp, L, H - Bm);
    for (double x = 0; x <= xhi + 1e-9; x += xstep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PX(x), Tp, PX(x), H - Bm);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", PX(x), H - Bm, PX(x), H - Bm + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(x), H - Bm + 18, x);
    }
    for (double d = ylo; d <= yhi * 1.0001; d *= 10)
        for (int mul = 1; mul <= 5; mul += (mul == 1 ? 1 : 3)) { /* 1, 2, 5 × 10^k */
            double y = d * mul;
            if (y < ylo * 0.999 || y > yhi * 1.001) continue;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, PY(y), W - R, PY(y));
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", L - 5, PY(y), L, PY(y));
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 8, PY(y) + 4, y);
        }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">decode tokens/s (batch 1, higher is better)</text>\n", (L + W - R) / 2, H - 15);
    fprintf(f, "<text transform=\"translate(20 %.0f) rotate(-90)\" text-anchor=\"middle\">perplexity (log scale, lower is better)</text>\n", (Tp + H - Bm) / 2);
    for (int i = 0; i < n; i++) {
        if (!r[i].ok || !(r[i].ev.perplexity > 0) || !(r[i].sp.decode_tps.median > 0)) continue;
        double x = PX(r[i].sp.decode_tps.median), y = PY(r[i].ev.perplexity);
        double rad = smax > 0 ? 4 + 26 * sqrt(r[i].disk_bytes / smax) : 8;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"#3b7dd8\" fill-opacity=\"0.45\" stroke=\"#1d4f91\"/>\n", x, y, rad);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + rad + 4, y + 4);
        xml_text(f, names[i]);
        fprintf(f, " (%.0f MiB)</text>\n", r[i].disk_bytes / 1048576.0);
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    if (fclose(f)) return nx_fail(err, "--plot %s: write error", path);
    return NX_OK;
}

int cmd_benchmark(int argc, char **argv) {
    settings st = {.seq_len = 256, .eval_batch = 8, .threads = 0, .device = "cpu", .precision = "fp32", .bo = nx_bench_defaults()};
    long prompt_tokens = 256, decode_tokens = 128, batch = 8, reps = 3;
    bool json = false;
    const char *plot = NULL;
    const cli_opt opts[] = {
        {"--data", OPT_STR, &st.data, "evaluation data: JSONL[.gz] or text, or prepare-data tokens (a shard directory: its val.bin, else train.bin; or a .bin)"},
        {"--field", OPT_STR, &st.field, "JSONL field holding the text (default: text)"},
        {"--teacher", OPT_STR, &st.teacher, "teacher model (directory or GGUF): agreement, KL and ratios against it"},
        {"--reference", OPT_STR, &st.teacher, "the same as --teacher: the f32/bf16 model a quantized one is measured against"},
        {"--seq-len", OPT_INT, &st.seq_len, "evaluation window (default 256)"},
        {"--eval-batch", OPT_INT, &st.eval_batch, "windows per forward during evaluation (default 8)"},
        {"--max-windows", OPT_INT, &st.max_windows, "evaluate at most this many windows (default 0: all)"},
        {"--prompt-tokens", OPT_INT, &prompt_tokens, "prompt length for TTFT and prefill speed (default 256)"},
        {"--decode-tokens", OPT_INT, &decode_tokens, "tokens decoded per speed run (default 128)"},
        {"--batch", OPT_INT, &batch, "the larger decode batch (default 8)"},
        {"--reps", OPT_INT, &reps, "measured repetitions, after one warm-up (default 3)"},
        {"--no-speed", OPT_FLAG, &st.no_speed, "skip the speed measurements"},
        {"-t, --threads", OPT_INT, &st.threads, "threads (default 0: all cores)"},
        {"--device", OPT_STR, &st.device, "cpu (default) or cuda"},
        {"--precision", OPT_STR, &st.precision, "matrix products: fp32 (default), tf32 or bf16 (cuda)"},
        {"--json", OPT_FLAG, &json, "print every figure and the settings as JSON"},
        {"--plot", OPT_STR, &plot, "write an SVG scatter: perplexity vs decode tokens/s, area ∝ size"},
    };
    const cli_spec spec = {
        "benchmark", "MODEL [MODEL ...] [--teacher MODEL] --data F.jsonl|SHARD_DIR [options]",
        "Each MODEL is a Hugging Face model directory or a GGUF file. Measure quality (perplexity over non-overlapping --seq-len windows of the data's token "
        "stream; with --teacher, top-1 agreement, KL(teacher||model) and the perplexity ratio), "
        "speed (time to first token, prefill and decode tokens/s at batch 1 and --batch, per-token "
        "latency) and cost (parameters, size on disk, peak resident memory, each model measured in "
        "its own process). Definitions: docs/BENCHMARKS.md.",
        opts, sizeof opts / sizeof opts[0], 1, 32};
    const char *pos[32];
    int npos, rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (!st.data && st.no_speed) {
        fprintf(stderr, "nexus benchmark: nothing to measure: give --data, or drop --no-speed\n");
        return EXIT_USAGE;
    }
    if (plot && st.no_speed) {
        fprintf(stderr, "nexus benchmark: --plot draws perplexity against decode speed: drop --no-speed\n");
        return EXIT_USAGE;
    }
    /* longs, checked before they narrow to ints */
    if ((rc = cli_range(&spec, "--seq-len", st.seq_len, 2, 1 << 24)) ||
        (rc = cli_range(&spec, "--eval-batch", st.eval_batch, 1, 1 << 20)) ||
        (rc = cli_range(&spec, "--max-windows", st.max_windows, 0, 1L << 40)) ||
        (rc = cli_range(&spec, "--prompt-tokens", prompt_tokens, 1, 1 << 24)) ||
        (rc = cli_range(&spec, "--decode-tokens", decode_tokens, 1, 1 << 24)) ||
        (rc = cli_range(&spec, "--batch", batch, 1, 4096)) || (rc = cli_range(&spec, "--reps", reps, 1, 1 << 20)) ||
        (rc = cli_range(&spec, "--threads", st.threads, 0, 4096)))
        return rc;
    if (st.data && access(st.data, R_OK) != 0) {
        fprintf(stderr, "nexus benchmark: %s: cannot read the data file\n", st.data);
        return EXIT_RUNTIME;
    }
    st.bo.prompt_tokens = (int)prompt_tokens, st.bo.decode_tokens = (int)decode_tokens;
    st.bo.batch = (int)batch, st.bo.reps = (int)reps;
    /* the teacher is measured too (first row) unless it is among the models */
    const char *dirs[33];
    int nd = 0;
    bool listed = false;
    for (int i = 0; i < npos; i++) listed |= st.teacher && same_dir(pos[i], st.teacher);
    if (st.teacher && !listed) dirs[nd++] = st.teacher;
    for (int i = 0; i < npos; i++) dirs[nd++] = pos[i];
    result *res = nx_xcalloc(nd, sizeof *res);
    int failed = 0;
    for (int i = 0; i < nd; i++) {
        fprintf(stderr, "benchmark: %s\n", dirs[i]);
        if (run_child(dirs[i], &st, &res[i])) {
            fprintf(stderr, "nexus benchmark: %s: %s\n", dirs[i], res[i].err);
            failed++;
        }
    }
    double tppl = 0;
    for (int i = 0; i < nd; i++)
        if (res[i].ok && res[i].is_teacher) tppl = res[i].ev.perplexity;
    if (json) {
        cJSON *o = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(o, "settings");
        cJSON_AddStringToObject(s, "data", st.data ? st.data : "");
        if (st.teacher) cJSON_AddStringToObject(s, "teacher", st.teacher);
        cJSON_AddNumberToObject(s, "seq_len", st.seq_len);
        cJSON_AddNumberToObject(s, "prompt_tokens", prompt_tokens);
        cJSON_AddNumberToObject(s, "decode_tokens", decode_tokens);
        cJSON_AddNumberToObject(s, "batch", batch);
        cJSON_AddNumberToObject(s, "reps", reps);
        cJSON_AddNumberToObject(s, "threads", st.threads > 0 ? st.threads : sysconf(_SC_NPROCESSORS_ONLN));
        cJSON_AddStringToObject(s, "peak_rss", "VmHWM of a child process per model, read after loading and the speed runs, before the teacher is loaded");
        if (tppl > 0) cJSON_AddNumberToObject(o, "teacher_perplexity", tppl);
        cJSON *arr = cJSON_AddArrayToObject(o, "models");
        for (int i = 0; i < nd; i++) {
            const result *r = &res[i];
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "path", dirs[i]);
            cJSON_AddBoolToObject(m, "is_teacher", r->is_teacher);
            if (!r->ok) {
                cJSON_AddStringToObject(m, "error", r->err);
                cJSON_AddItemToArray(arr, m);
                continue;
            }
            cJSON_AddNumberToObject(m, "parameters", r->params);
            cJSON_AddNumberToObject(m, "disk_bytes", r->disk_bytes);
            cJSON_AddNumberToObject(m, "peak_rss_bytes", r->peak_rss);
            if (st.data) {
                cJSON_AddNumberToObject(m, "data_tokens", r->data_tokens);
                cJSON_AddNumberToObject(m, "windows", (double)r->ev.windows);
                cJSON_AddNumberToObject(m, "positions", (double)r->ev.positions);
                cJSON_AddNumberToObject(m, "mean_ce", r->ev.loss);
                cJSON_AddNumberToObject(m, "perplexity", r->ev.perplexity);
                if (r->has_teacher) {
                    cJSON_AddNumberToObject(m, "agreement", r->ev.agreement);
                    cJSON_AddNumberToObject(m, "kl", r->ev.kl);
                }
                if (tppl > 0) cJSON_AddNumberToObject(m, "perplexity_ratio", r->ev.perplexity / tppl);
            }
            if (!st.no_speed) {
                cJSON_AddItemToObject(m, "ttft_ms", stat_json(r->sp.ttft_ms));
                cJSON_AddItemToObject(m, "prefill_tokens_per_s", stat_json(r->sp.prefill_tps));
                cJSON_AddItemToObject(m, "decode_tokens_per_s", stat_json(r->sp.decode_tps));
                cJSON_AddItemToObject(m, "decode_batch_tokens_per_s", stat_json(r->sp.decode_batch_tps));
                cJSON_AddNumberToObject(m, "latency_p50_ms", r->sp.latency_p50_ms);
                cJSON_AddNumberToObject(m, "latency_p95_ms", r->sp.latency_p95_ms);
                cJSON_AddNumberToObject(m, "latency_p99_ms", r->sp.latency_p99_ms);
            }
            cJSON_AddItemToArray(arr, m);
        }
        char *js = cJSON_Print(o);
        printf("%s\n", js);
        free(js);
        cJSON_Delete(o);
    } else {
        printf("%-24s %8s %8s %8s %9s", "model", "params M", "disk MiB", "RSS MiB", "ppl");
        if (tppl > 0) printf(" %7s %7s %7s", "ppl/tch", "agree", "KL");
        if (!st.no_speed)
        {
            char bh[32];
            snprintf(bh, sizeof bh, "b%ld tok/s", batch);
            printf(" %8s %9s %9s %9s %17s", "TTFT ms", "prefill/s", "decode/s", bh, "lat p50/95/99 ms");
        }
        printf("\n");
        for (int i = 0; i < nd; i++) {
            const result *r = &res[i];
            if (!r->ok) {
                printf("%-24s error: %s\n", base_name(dirs[i]), r->err);
                continue;
            }
            char label[300];
            snprintf(label, sizeof label, "%s%s", base_name(dirs[i]), r->is_teacher ? " (teacher)" : "");
            printf("%-24s %8.2f %8.1f %8.1f", label, r->params / 1e6, r->disk_bytes / 1048576.0, r->peak_rss / 1048576.0);
            if (st.data) printf(" %9.3f", r->ev.perplexity);
            else printf(" %9s", "-");
            if (tppl > 0) {
                if (r->has_teacher) printf(" %7.3f %7.4f %7.4f", r->ev.perplexity / tppl, r->ev.agreement, r->ev.kl);
                else printf(" %7.3f %7s %7s", r->ev.perplexity / tppl, "-", "-");
            }
            if (!st.no_speed)
                printf(" %8.1f %9.0f %9.1f %9.1f %5.2f/%.2f/%.2f", r->sp.ttft_ms.median, r->sp.prefill_tps.median,
                       r->sp.decode_tps.median, r->sp.decode_batch_tps.median, r->sp.latency_p50_ms,
                       r->sp.latency_p95_ms, r->sp.latency_p99_ms);
            printf("\n");
        }
        if (tppl > 0) printf("teacher perplexity: %.3f\n", tppl);
        if (!st.no_speed)
            printf("speed: median of %ld reps after a warm-up; prompt %ld tokens, %ld decoded tokens, batch %ld\n",
                   reps, prompt_tokens, decode_tokens, batch);
    }
    int status = failed ? EXIT_RUNTIME : EXIT_OK;
    if (plot) {
        const char **names = nx_xmalloc(sizeof(char *) * nd);
        char (*nb)[256] = nx_xmalloc(256 * (size_t)nd);
        for (int i = 0; i < nd; i++) {
            snprintf(nb[i], 256, "%s", base_name(dirs[i]));
            names[i] = nb[i];
        }
        nx_err err;
        if (write_plot(plot, names, res, nd, &err)) status = cli_error("benchmark", err.msg);
        free(names), free(nb);
    }
    free(res);
    return status;
}
