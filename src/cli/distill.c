/* distill.c — `nexus distill CONFIG.yaml` and `nexus train CONFIG.yaml`:
 * load the run config (with --set overrides), optionally print it, install
 * SIGINT/SIGTERM handlers that ask the run to checkpoint and stop, run, and
 * print the teacher-vs-student table. Exit 130 after an interruption. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/run.h"

static volatile sig_atomic_t g_stop;
/* First SIGINT/SIGTERM: finish the step, checkpoint, exit 130. A second
 * one exits at once (the newest checkpoint on disk stays valid). */
static void on_signal(int sig) {
    (void)sig;
    if (g_stop) _exit(EXIT_INTERRUPTED);
    g_stop = 1;
}

static void human_bytes(char *buf, size_t n, double b) { cli_bytes(b, buf, n); }

/* "-" for a figure not measured (no validation data) */
static const char *fig(char *buf, size_t n, const char *fmt, double v) {
    if (isnan(v)) snprintf(buf, n, "-");
    else snprintf(buf, n, fmt, v);
    return buf;
}

static void print_table(const nx_run_summary *s) {
    char tb[32], sb[32], p1[32], p2[32], agree[32];
    human_bytes(sb, sizeof sb, s->student.bytes);
    printf("\n%-10s %14s %12s %10s %10s\n", "model", "parameters", "size", "val ppl", "agreement");
    if (s->has_teacher) {
        human_bytes(tb, sizeof tb, s->teacher.bytes);
        printf("%-10s %14zu %12s %10s %10s\n", "teacher", s->teacher.params, tb,
               fig(p1, sizeof p1, "%.2f", s->teacher.ppl), "1");
    }
    printf("%-10s %14zu %12s %10s %10s\n", s->has_teacher ? "student" : "model", s->student.params, sb,
           fig(p2, sizeof p2, "%.2f", s->student.ppl), fig(agree, sizeof agree, "%.4f", s->student.agreement));
    if (s->has_teacher && s->teacher.params) {
        printf("student/teacher: %.1f%% of the parameters", 100.0 * s->student.params / s->teacher.params);
        if (!isnan(s->student.ppl) && !isnan(s->teacher.ppl))
            printf(", perplexity ratio %.3f", s->student.ppl / s->teacher.ppl);
        putchar('\n');
    }
    printf("trained %lld steps, %lld tokens", (long long)s->steps_done, (long long)s->tokens);
    if (s->tokens_per_s > 0) printf(", %.0f tokens/s this session\n", s->tokens_per_s);
    else printf(" (no steps left to run this session)\n");
    if (s->gpu) {
        char a[32], b[32], c[32], d[32];
        human_bytes(a, sizeof a, s->gpu_plan), human_bytes(b, sizeof b, s->gpu_peak_allocated);
        human_bytes(c, sizeof c, s->gpu_peak_used), human_bytes(d, sizeof d, s->gpu_total);
        printf("GPU memory: plan %s, peak allocated %s, peak used on the device %s of %s (%.3f of the plan)\n", a, b, c,
               d, s->gpu_plan > 0 ? s->gpu_peak_used / s->gpu_plan : 0);
    }
}

static int run_cmd(const char *name, bool distill, int argc, char **argv) {
    bool print_config = false, resume = false, overwrite = false, init_only = false;
    cli_multi sets = {0};
    const char *out = NULL, *threads = NULL;
    const cli_opt opts[] = {
        {"--set", OPT_MULTI, &sets, "override a config key, e.g. --set optimizer.lr=3e-4 (repeatable)"},
        {"-o, --out", OPT_STR, &out, "where the student goes: --set output.dir=DIR"},
        {"-t, --threads", OPT_STR, &threads, "threads: --set threads=N (0: all cores)"},
        {"--print-config", OPT_FLAG, &print_config, "print the resolved config as YAML and exit"},
        {"--resume", OPT_FLAG, &resume, "continue from the newest checkpoint in checkpoint.dir"},
        {"--overwrite", OPT_FLAG, &overwrite, "replace an earlier run in output.dir (its checkpoints and metrics)"},
        {"--init-only", OPT_FLAG, &init_only, "write the initialised student to output.dir and stop (a random "
                                              "model of any shape, e.g. a stand-in teacher; drawn on every core)"},
    };
    const cli_spec spec = {
        name, "CONFIG.yaml [--set key=value ...] [-o DIR] [-t N] [--resume | --overwrite] [--init-only] [--print-config]",
        distill ? "Distill the config's teacher into a smaller student and write it as a Hugging Face "
                  "model directory (config.json, model.safetensors, tokenizer) with metrics.jsonl. "
                  "Ctrl-C saves a checkpoint; --resume continues bit for bit. Keys: docs/CONFIG.md."
                : "Train the config's student from its data with no teacher (the teacher path gives the "
                  "tokenizer only). Checkpoints and --resume as for distill. Keys: docs/CONFIG.md.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (init_only && resume) {
        fprintf(stderr, "nexus %s: --init-only starts a student: not with --resume\n", name);
        return EXIT_USAGE;
    }
    if (resume && overwrite) {
        fprintf(stderr, "nexus %s: give --resume or --overwrite, not both\n", name);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    /* the shortcuts are --set of their keys, after the others (the later wins) */
    char out_set[4200], threads_set[64];
    if (out && sets.n < 64) snprintf(out_set, sizeof out_set, "output.dir=%s", out), sets.v[sets.n++] = out_set;
    if (threads && sets.n < 64) snprintf(threads_set, sizeof threads_set, "threads=%s", threads), sets.v[sets.n++] = threads_set;
    nx_run_config cfg;
    nx_err err;
    if (nx_run_config_load(&cfg, pos[0], sets.v, sets.n, &err)) { /* the config is the command's argument */
        cli_error(name, err.msg);
        return EXIT_USAGE;
    }
    if (print_config) {
        nx_run_config_print(stdout, &cfg);
        return EXIT_OK;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    nx_run_opts o = {.distill = distill, .resume = resume, .overwrite = overwrite, .progress = cli_stderr_tty(), .stop = &g_stop,
                     .init_only = init_only};
    nx_run_summary sum;
    if (nx_run(&cfg, &o, &sum, &err)) return cli_error(name, err.msg);
    if (sum.interrupted) return EXIT_INTERRUPTED;
    if (init_only) {
        printf("initialised student (%zu parameters) written to %s\n", sum.student.params, cfg.output.dir);
        return EXIT_OK;
    }
    print_table(&sum);
    printf("student written to %s\n", cfg.output.dir);
    return EXIT_OK;
}

int cmd_distill(int argc, char **argv) { return run_cmd("distill", true, argc, argv); }
int cmd_train(int argc, char **argv) { return run_cmd("train", false, argc, argv); }
