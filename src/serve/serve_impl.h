/* serve_impl.h — the server's parts and what they share (serve.h is the
 * public face):
 *
 *   request.c        JSON body → nx_serve_request (validation, API errors)
 *   template/        the chat-template engine (template/internal.h)
 *   chat.c           a model's chat template and end tokens from its
 *                    tokenizer_config.json / generation_config.json; a
 *                    request's messages → prompt text, with the fallback
 *   engine.c         the engine thread: the one owner of the model and the
 *                    nx_gen; a bounded queue of jobs; events → jobs
 *   respond.c        OpenAI response bodies and stream chunks (cJSON)
 *   metrics.c        counters and histograms, Prometheus text
 *   openapi.c        the OpenAPI document of GET /openapi.json
 *   http.c           libmicrohttpd handlers: routing, auth, bodies, SSE
 *   server.c         nx_serve_run: load, start, wait for stop, drain */
#ifndef NEXUS_SERVE_IMPL_H
#define NEXUS_SERVE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "nexus/generate.h"
#include "nexus/serve.h"
#include "nexus/tokenizer.h"

/* ---- metrics -------------------------------------------------------------- */
enum { MX_BUCKETS = 14, MX_ROUTES = 8, MX_STATUSES = 12 };

typedef struct mx_hist {
    uint64_t count[MX_BUCKETS + 1]; /* the last: +Inf */
    double sum;
    uint64_t n;
} mx_hist;

typedef struct metrics {
    pthread_mutex_t mu;
    uint64_t requests[MX_ROUTES][MX_STATUSES];
    uint64_t prompt_tokens, completion_tokens, cancelled, rejected_full;
    int queue_depth, slots_busy, slots_total, in_flight;
    mx_hist ttft, token_latency, duration;
    double t_start;
} metrics;

typedef enum { R_COMPLETIONS, R_CHAT, R_MODELS, R_HEALTH, R_METRICS, R_OPENAPI, R_OTHER } route;

void mx_init(metrics *m, int slots);
void mx_free(metrics *m);
void mx_request(metrics *m, route r, int status);
void mx_observe(metrics *m, mx_hist *h, double seconds);
char *mx_render(metrics *m); /* Prometheus text exposition format, malloc'd */

/* ---- chat ------------------------------------------------------------------- */
typedef struct chat {
    nx_chat_template *tpl;     /* NULL: the fallback */
    char *source;              /* the template text (NULL: none) */
    char *bos, *eos;           /* token texts for the template's bos_token / eos_token */
    int32_t eos_ids[NX_GEN_MAX_EOS + 1];
    int neos;
    bool warned;
} chat;

/* Reads DIR/tokenizer_config.json (chat_template, bos/eos tokens) and
 * DIR/generation_config.json (eos_token_id, an id or a list). A template
 * that does not parse is logged and replaced by the fallback. */
int chat_load(chat *c, const char *dir, const nx_tokenizer *tok, int32_t cfg_eos, nx_err *err);
void chat_free(chat *c);
/* The prompt text of a chat request (malloc'd), or NULL with e filled
 * (400 when the template raised an exception). */
char *chat_prompt(chat *c, const nx_serve_request *r, nx_api_error *e);

/* The detokenizer the slots call (ctx: the nx_tokenizer): special tokens skipped. */
char *serve_detok(void *ctx, const int32_t *ids, int n);

/* ---- engine --------------------------------------------------------------- */
typedef struct job {
    /* set before submit, read-only after */
    int32_t *prompt;
    int nprompt;
    nx_gen_params gp;
    const char *stops[NX_REQ_MAX_STOPS];
    double t_submit;
    /* under the engine's lock */
    int refs;
    bool cancelled;            /* the client left, or the server is stopping */
    bool started, done;
    char *text;                /* final text so far */
    size_t len, cap;
    int ntok;
    nx_finish finish;
    char errmsg[256];          /* a start that failed (done, finish NONE) */
    double t_first, t_last;
    pthread_cond_t cv;
} job;

typedef struct engine {
    nx_gen g;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    job **queue;               /* ring of qcap = qlimit + slots */
    int qcap, qhead, qn;
    int qlimit;                /* jobs that may wait beyond the free slots (--queue) */
    job **slot_job;            /* (S) */
    bool accepting, quit, stopped;
    metrics *mx;
} engine;

int engine_start(engine *e, const nx_model *m, nx_tokenizer *tok, int slots, int ctx, int chunk, int queue,
                 metrics *mx, nx_err *err);
/* Stops the thread, cancelling whatever is left (handlers waiting on jobs
 * wake up); engine_free then frees the rest, once no handler is left. */
void engine_stop(engine *e);
void engine_free(engine *e);
job *job_new(void);
/* Queues j (the engine takes a reference): NX_ERR with 429 when the queue
 * is full, 503 when the server is stopping. */
int engine_submit(engine *e, job *j, nx_api_error *err);
/* Marks j cancelled; the engine frees its slot at the next step. */
void engine_cancel(engine *e, job *j);
void engine_cancel_all(engine *e);
void job_unref(engine *e, job *j);
/* Requests queued or in slots. */
int engine_load(engine *e);

/* ---- responses ---------------------------------------------------------------- */
char *resp_error(const nx_api_error *e);
const char *resp_finish(nx_finish f); /* "stop", "length" (OpenAI's names) */
typedef struct resp_meta {
    const char *id, *model;
    long created;
    bool chat;
} resp_meta;
char *resp_full(const resp_meta *m, const char *text, nx_finish f, int prompt_tokens, int completion_tokens);
/* One SSE event ("data: {...}\n\n"), malloc'd. role_chunk: the first chat
 * chunk (role, empty content). finish NX_FINISH_NONE: not the last. */
char *resp_chunk(const resp_meta *m, const char *text, size_t len, bool role_chunk, nx_finish f, bool usage_null);
char *resp_usage_chunk(const resp_meta *m, int prompt_tokens, int completion_tokens);
char *resp_models(const char *model, long created);

const char *openapi_json(void);

/* ---- the HTTP side ---------------------------------------------------------- */
typedef struct server {
    nx_serve_opts o;
    char *model_name;
    nx_model model;
    nx_tokenizer *tok;
    chat chat;
    engine eng;
    metrics mx;
    nx_req_limits lim;
    int ctx, V;
    long created;
    void *mhd;
    volatile bool draining;
    _Atomic int open_jobs;     /* connections holding a job, until their response is done */
    uint64_t seq;              /* request ids and default seeds */
    pthread_mutex_t seq_mu;
} server;

int http_start(server *s, nx_err *err);
void http_quiesce(server *s);
void http_stop(server *s);
int http_port(server *s);

#endif
