/* server.c — nx_serve_run: the life of a server.
 *
 * Start: the tokenizer, the model (a Hugging Face directory, weights as
 * stored), the chat conventions (chat.c), the engine thread (engine.c),
 * then the HTTP daemon (http.c); the URL goes to stderr.
 * Stop (the caller's *stop flag, set by SIGINT/SIGTERM): /health turns
 * 503 and the listening socket is closed (no new connections); requests
 * in flight, queued ones included, may finish for grace_s seconds; what is
 * left is then cancelled (a stream gets an error event, a waiting request
 * 503), the engine thread stops, and the HTTP daemon waits for its
 * connection threads to end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nexus/backend.h"
#include "nexus/hf.h"
#include "serve_impl.h"

nx_serve_opts nx_serve_defaults(void) {
    return (nx_serve_opts){.host = "127.0.0.1", .port = 8080, .slots = 8, .ctx = 0, .chunk = 256, .queue = 64,
                           .max_tokens = 4096, .max_body = 1 << 20, .request_timeout_s = 30, .grace_s = 10,
                           .max_connections = 256, .threads = 0};
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int nx_serve_run(const nx_serve_opts *o, volatile sig_atomic_t *stop, nx_err *err) {
    server *s = nx_xcalloc(1, sizeof *s);
    s->o = *o;
    int rc = NX_ERR;
    bool have_engine = false;
    pthread_mutex_init(&s->seq_mu, NULL);
    if (o->slots < 1 || o->chunk < 1 || o->queue < 1 || o->max_tokens < 1 || o->max_body < 64 || o->max_connections < 1) {
        nx_fail(err, "slots, chunk, queue, max tokens and connections must be at least 1, the body limit at least 64 bytes");
        goto done;
    }
    const char *base = strrchr(o->model_path, '/');
    size_t plen = strlen(o->model_path);
    while (plen > 1 && o->model_path[plen - 1] == '/') plen--; /* "models/x/" names x */
    if (o->model_name) s->model_name = strdup(o->model_name);
    else {
        char *p = strndup(o->model_path, plen);
        base = strrchr(p, '/');
        s->model_name = strdup(base ? base + 1 : p);
        free(p);
    }
    nx_set_threads(o->threads);
    if (nx_tokenizer_load(&s->tok, o->model_path, err)) goto done;
    if (nx_hf_load_model(o->model_path, &s->model, err)) goto done;
    s->V = s->model.cfg.V;
    s->ctx = o->ctx > 0 ? o->ctx : s->model.cfg.max_pos;
    if (s->ctx > s->model.cfg.max_pos) {
        nx_fail(err, "--ctx %d is beyond the model's context of %d tokens (max_position_embeddings)", s->ctx,
                s->model.cfg.max_pos);
        goto done;
    }
    if (chat_load(&s->chat, o->model_path, s->tok, s->model.cfg.eos_id, err)) goto done;
    s->lim = nx_req_limits_default();
    s->lim.max_tokens = o->max_tokens;
    s->lim.max_prompt_ids = s->ctx;
    s->created = (long)time(NULL);
    mx_init(&s->mx, o->slots);
    if (engine_start(&s->eng, &s->model, s->tok, o->slots, s->ctx, o->chunk, o->queue, &s->mx, err)) {
        mx_free(&s->mx);
        goto done;
    }
    have_engine = true;
    if (http_start(s, err)) goto done;
    const char *host = o->host ? o->host : "127.0.0.1";
    fprintf(stderr, "nexus serve: model '%s' (%s), %d slots × %d tokens of context, %d threads%s\n", s->model_name,
            o->model_path, o->slots, s->ctx, nx_threads(), o->api_key && o->api_key[0] ? ", API key required" : "");
    fprintf(stderr, "nexus serve: listening on http://%s%s%s:%d (Ctrl-C to stop)\n", strchr(host, ':') ? "[" : "", host,
            strchr(host, ':') ? "]" : "", http_port(s));
    while (!*stop) nap(0.1);

    fprintf(stderr, "nexus serve: stopping: no new connections; %d requests in flight get %g s to finish\n",
            engine_load(&s->eng), o->grace_s);
    s->draining = true;
    http_quiesce(s);
    double t0 = nx_now();
    while (engine_load(&s->eng) > 0 && nx_now() - t0 < o->grace_s) nap(0.05);
    int left = engine_load(&s->eng);
    if (left) fprintf(stderr, "nexus serve: cancelling %d requests still running\n", left);
    engine_stop(&s->eng);
    /* the last events of cancelled streams (and the 503s of cancelled
     * waits) reach their clients before the daemon closes every connection */
    for (double t1 = nx_now(); atomic_load(&s->open_jobs) > 0 && nx_now() - t1 < 2.0;) nap(0.02);
    http_stop(s);
    fprintf(stderr, "nexus serve: stopped\n");
    rc = NX_OK;
done:
    if (have_engine) engine_stop(&s->eng);
    if (s->mhd) http_stop(s);
    engine_free(&s->eng);
    if (have_engine) mx_free(&s->mx);
    chat_free(&s->chat);
    if (s->model.be) nx_model_free(&s->model);
    nx_tokenizer_free(s->tok);
    pthread_mutex_destroy(&s->seq_mu);
    free(s->model_name);
    free(s);
    return rc;
}
