/* pull.c — `nexus pull REPO_ID`: download a model or dataset repository from
 * the Hugging Face Hub into the huggingface_hub cache (io/hub.c), so that
 * transformers finds it too, and print the snapshot directory on stdout for
 * scripts (`nexus info $(nexus pull org/name)`). Ctrl-C stops at once and
 * keeps the partial files; the same command resumes them (exit 130). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/hub.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    if (g_stop) _exit(EXIT_INTERRUPTED);  /* a second Ctrl-C: at once (partial files stay resumable) */
    g_stop = 1;
}

int cmd_pull(int argc, char **argv) {
    const char *revision = NULL, *token = NULL, *out = NULL, *type = "model";
    long jobs = 4;
    bool quiet = false;
    cli_multi include = {0};
    const cli_opt opts[] = {
        {"--revision", OPT_STR, &revision, "branch, tag or commit sha (default main)"},
        {"--include", OPT_MULTI, &include, "only files matching this glob, e.g. '*.json' (repeatable)"},
        {"--token", OPT_STR, &token, "Hub access token (default: $HF_TOKEN, else the file `hf auth login` writes)"},
        {"-o, --out", OPT_STR, &out, "also copy the files into this directory as plain files"},
        {"--repo-type", OPT_STR, &type, "model (default) or dataset"},
        {"--jobs", OPT_INT, &jobs, "files downloaded at a time (default 4)"},
        {"--quiet", OPT_FLAG, &quiet, "no progress or per-file lines on stderr, errors only"},
    };
    const cli_spec spec = {
        "pull", "REPO_ID [--revision REV] [--include GLOB ...] [--token TOKEN] [--out DIR] [--repo-type model|dataset]",
        "Download a repository of the Hugging Face Hub into the huggingface_hub cache ($HF_HUB_CACHE, else "
        "$HF_HOME/hub, else ~/.cache/huggingface/hub) where transformers finds it too, and print the snapshot "
        "directory on stdout. Files already cached are not fetched again; partial files are resumed; LFS files "
        "are checked against their sha256. Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1 (cache only). "
        "Details: docs/HUB.md.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    nx_err err;
    nx_hub_type t;
    if (!strcmp(type, "model")) t = NX_HUB_MODEL;
    else if (!strcmp(type, "dataset")) t = NX_HUB_DATASET;
    else {
        fprintf(stderr, "nexus pull: --repo-type must be model or dataset, not '%s'\n", type);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    if (jobs < 1 || jobs > 32) {
        fprintf(stderr, "nexus pull: --jobs must be 1 to 32, not %ld\n", jobs);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    if (nx_hub_check_repo_id(pos[0], &err)) {
        fprintf(stderr, "nexus pull: %s\n", err.msg);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    nx_hub_opts o = {.repo_id = pos[0], .type = t, .revision = revision, .include = include.v,
                     .ninclude = include.n, .token = token, .out_dir = out, .jobs = (int)jobs, .retries = -1,
                     .log = quiet ? NULL : stderr, .progress = !quiet && cli_stderr_tty(), .stop = &g_stop};
    nx_hub_result r;
    if (nx_hub_pull(&o, &r, &err)) return cli_error("pull", err.msg);
    if (r.interrupted) {
        fprintf(stderr, "nexus pull: interrupted; partial files are kept: run the same command to resume\n");
        nx_hub_result_free(&r);
        return EXIT_INTERRUPTED;
    }
    if (!quiet) {
        char b[32];
        cli_bytes((double)r.bytes, b, sizeof b);
        fprintf(stderr, "%s%s: %d files (%d fetched, %s; %d cached) at %s%s%s\n", t == NX_HUB_DATASET ? "dataset " : "",
                pos[0], r.files, r.fetched, b, r.cached, r.commit, out ? ", copied to " : "", out ? out : "");
    }
    printf("%s\n", r.snapshot);
    nx_hub_result_free(&r);
    return EXIT_OK;
}
