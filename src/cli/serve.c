/* serve.c — `nexus serve MODEL_DIR`: an OpenAI-compatible HTTP server
 * (the library's serve.h). This file parses flags, installs the
 * SIGINT/SIGTERM handlers that ask the server to stop gracefully (a second
 * signal exits at once), and turns the outcome into an exit code: 0 after
 * a graceful stop, 1 when the model cannot be loaded or the port bound. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/serve.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    if (g_stop) _exit(EXIT_INTERRUPTED); /* a second signal: now */
    g_stop = 1;
}

/* The compute threads should sleep, not spin, between the engine's steps:
 * the cores are shared with the connection threads that write each token
 * out, and a spinning OpenMP worker takes a core from them (measured: twice
 * the aggregate tokens/s with 64 streams on 2 cores, docs/BENCHMARKS.md).
 * libgomp reads OMP_WAIT_POLICY once, when it loads, so unless the user set
 * it the command runs itself again with it set. */
static void passive_openmp(int argc, char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("NEXUS_SERVE_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    char **av = calloc((size_t)argc + 2, sizeof(char *));
    if (!av) return;
    av[0] = "nexus";
    for (int i = 0; i < argc; i++) av[i + 1] = argv[i]; /* argv[0] is "serve" */
    execv("/proc/self/exe", av);
    free(av); /* exec failed: carry on with the default policy */
}

int cmd_serve(int argc, char **argv) {
    passive_openmp(argc, argv);
    nx_serve_opts o = nx_serve_defaults();
    const char *host = o.host, *key = NULL, *name = NULL;
    long port = o.port, slots = o.slots, ctx = 0, chunk = o.chunk, queue = o.queue, max_tokens = o.max_tokens;
    long max_body = (long)o.max_body, conns = o.max_connections, threads = 0;
    double timeout = o.request_timeout_s, grace = o.grace_s;
    const cli_opt opts[] = {
        {"--host", OPT_STR, &host, "address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: all)"},
        {"--port", OPT_INT, &port, "TCP port (default 8080; 0: any free port, logged)"},
        {"--api-key", OPT_STR, &key, "require 'Authorization: Bearer KEY' (default: $NEXUS_API_KEY, else none)"},
        {"--model-name", OPT_STR, &name, "the model id clients send (default: the directory's name)"},
        {"--slots", OPT_INT, &slots, "requests generated at once, batched together (default 8)"},
        {"--ctx", OPT_INT, &ctx, "tokens of context per request (default: the model's max_position_embeddings)"},
        {"--chunk", OPT_INT, &chunk, "prompt tokens prefilled per step, shared by waiting prompts (default 256)"},
        {"--queue", OPT_INT, &queue, "requests that may wait for a slot before 429 (default 64)"},
        {"--max-tokens", OPT_INT, &max_tokens, "largest max_tokens a request may ask (default 4096)"},
        {"--max-body", OPT_INT, &max_body, "largest request body in bytes (default 1048576)"},
        {"--request-timeout", OPT_FLOAT, &timeout, "seconds to receive a request; also the idle limit (default 30)"},
        {"--grace", OPT_FLOAT, &grace, "on SIGINT/SIGTERM, seconds requests in flight may finish (default 10)"},
        {"--max-connections", OPT_INT, &conns, "open connections at most (default 256)"},
        {"-t, --threads", OPT_INT, &threads, "compute threads (default: all cores)"},
    };
    const cli_spec spec = {
        "serve", "MODEL_DIR [--host H] [--port P] [--api-key KEY] [--slots N] [--ctx N] [options]",
        "Serve a Hugging Face model directory (config.json, model.safetensors, tokenizer.json) over an "
        "OpenAI-compatible HTTP API: POST /v1/completions and /v1/chat/completions (streaming with "
        "\"stream\": true), GET /v1/models, /health, /metrics (Prometheus), /openapi.json. Requests are "
        "batched together as they come (continuous batching). SIGINT/SIGTERM stop it gracefully. "
        "docs/SERVE.md has examples.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos, rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (port < 0 || port > 65535 || slots < 1 || chunk < 1 || queue < 1 || max_tokens < 1 || ctx < 0 ||
        max_body < 64 || conns < 1 || !(timeout > 0) || !(grace >= 0) || threads < 0) {
        fprintf(stderr, "nexus serve: bad option: ports are 0..65535; slots, chunk, queue, max tokens and connections "
                        "at least 1; --max-body at least 64; --request-timeout above 0; --grace at least 0\n");
        return EXIT_USAGE;
    }
    if (!key) key = getenv("NEXUS_API_KEY");
    o.model_path = pos[0], o.model_name = name, o.host = host, o.port = (int)port, o.api_key = key;
    o.slots = (int)slots, o.ctx = (int)ctx, o.chunk = (int)chunk, o.queue = (int)queue;
    o.max_tokens = (int)max_tokens, o.max_body = (size_t)max_body, o.request_timeout_s = timeout;
    o.grace_s = grace, o.max_connections = (int)conns, o.threads = (int)threads;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that leaves mid-write is an error return, not a signal */
    nx_err err;
    if (nx_serve_run(&o, &g_stop, &err)) return cli_error("serve", err.msg);
    return EXIT_OK;
}
