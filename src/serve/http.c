/* http.c — the HTTP side of `nexus serve` on libmicrohttpd.
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): a handler may
 * block while its request waits for the engine, and a slow client holds
 * only its own thread (the connection limit bounds them all). For each
 * request:
 *
 *   1. headers: route, method (405), API key (401, compared in constant
 *      time), Content-Length above the body limit (413, before reading);
 *   2. body: appended up to the limit (413); a body still incomplete after
 *      --request-timeout seconds is answered 408, and an idle connection is
 *      closed by libmicrohttpd after the same time;
 *   3. generation: request.c validates the body (400), the model name is
 *      checked (404), the prompt is rendered (chat template) and tokenized,
 *      the context checked (400 context_length_exceeded), and the job
 *      submitted (429 queue full, 503 stopping). From here the connection
 *      has no idle timeout: generation may take long, and the server
 *      watches the socket itself — a client that hangs up (poll reports
 *      POLLRDHUP) has its job cancelled, freeing the slot at the next step.
 *   4. the answer: a whole JSON body, or with "stream": true a chunked
 *      text/event-stream whose reader callback blocks until the job has
 *      new final text and sends it as OpenAI's chunks, then the usage
 *      chunk (stream_options.include_usage) and "data: [DONE]".
 * The request-completed callback releases the job (cancelling it if it is
 * still running) and records the request in the metrics. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve_impl.h"

typedef struct conn {
    route r;
    bool post, responded;
    int status;
    double t0;
    char *body;
    size_t len;
    /* generation */
    job *j;
    int fd;
    resp_meta meta;
    char id[48];
    int nprompt;
    bool include_usage, role_sent, over;
    size_t sent;           /* bytes of the job's text already in events */
    char *pend;            /* an event not yet handed to libmicrohttpd */
    size_t pend_len, pend_off;
} conn;

static route route_of(const char *url) {
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions")) return R_COMPLETIONS;
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) return R_MODELS;
    if (!strcmp(url, "/health")) return R_HEALTH;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    if (!strcmp(url, "/openapi.json")) return R_OPENAPI;
    return R_OTHER;
}

static enum MHD_Result reply(conn *k, struct MHD_Connection *c, int status, const char *type, char *body) {
    if (!body) body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}"), status = 500;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    k->responded = true;
    k->status = status;
    return ok;
}

static enum MHD_Result reply_error(conn *k, struct MHD_Connection *c, const nx_api_error *e) {
    return reply(k, c, e->status, "application/json", resp_error(e));
}

static bool authorized(server *s, struct MHD_Connection *c) {
    if (!s->o.api_key || !s->o.api_key[0]) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    return nx_serve_key_equal(h, strlen(h), s->o.api_key);
}

bool nx_serve_key_equal(const char *given, size_t given_len, const char *expected) {
    size_t n = strlen(expected);
    volatile unsigned char diff = (unsigned char)(given_len != n);
    for (size_t i = 0; i < n; i++) /* always n steps; reads given only within its length */
        diff |= (unsigned char)(expected[i] ^ (i < given_len ? given[i] : 0));
    return diff == 0;
}

/* Has the client hung up? (POLLRDHUP: its half of the connection is closed) */
static bool gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void deadline(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    long ns = ts->tv_nsec + (long)(seconds * 1e9);
    ts->tv_sec += ns / 1000000000L;
    ts->tv_nsec = ns % 1000000000L;
}

/* ---- a generation request into a job --------------------------------------- */

static int start_job(server *s, conn *k, nx_api_error *e) {
    nx_serve_request req;
    nx_req_kind kind = k->r == R_CHAT ? NX_REQ_CHAT : NX_REQ_COMPLETION;
    if (nx_serve_parse_request(k->body ? k->body : "", k->len, kind, &s->lim, &req, e)) return NX_ERR;
    int rc = NX_ERR;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    job *j = NULL;
    if (strcmp(req.model, s->model_name) != 0) {
        nx_api_fail(e, 404, NULL, "model_not_found", "model",
                    "The model '%.200s' does not exist: this server serves '%.200s' (GET /v1/models).", req.model,
                    s->model_name);
        goto done;
    }
    if (kind == NX_REQ_CHAT) {
        if (!(text = chat_prompt(&s->chat, &req, e))) goto done;
    } else if (req.prompt) {
        text = strdup(req.prompt);
    }
    nx_err err;
    if (text) {
        if (nx_tokenizer_encode(s->tok, text, strlen(text), false, &ids, &n, &err)) {
            nx_api_fail(e, 400, NULL, "invalid_value", kind == NX_REQ_CHAT ? "messages" : "prompt", "%s", err.msg);
            goto done;
        }
    } else {
        n = (size_t)req.nprompt_ids;
        ids = nx_xmalloc(sizeof(int32_t) * (n ? n : 1));
        memcpy(ids, req.prompt_ids, sizeof(int32_t) * n);
        for (size_t i = 0; i < n; i++)
            if (ids[i] >= s->V) {
                nx_api_fail(e, 400, NULL, "invalid_value", "prompt",
                            "Token id %d at position %zu is outside the model's vocabulary of %d.", ids[i], i, s->V);
                goto done;
            }
    }
    if (n == 0) {
        nx_api_fail(e, 400, NULL, "invalid_value", kind == NX_REQ_CHAT ? "messages" : "prompt",
                    "The prompt is empty (no tokens).");
        goto done;
    }
    int room = s->ctx - (int)n;
    if (room < 1) {
        nx_api_fail(e, 400, NULL, "context_length_exceeded", kind == NX_REQ_CHAT ? "messages" : "prompt",
                    "This model's maximum context length is %d tokens. However, your %s resulted in %zu tokens. "
                    "Please reduce the length of the %s.", s->ctx, kind == NX_REQ_CHAT ? "messages" : "prompt", n,
                    kind == NX_REQ_CHAT ? "messages" : "prompt");
        goto done;
    }
    int max_tokens = req.max_tokens;
    if (max_tokens > 0 && max_tokens > room) {
        nx_api_fail(e, 400, NULL, "context_length_exceeded", "max_tokens",
                    "This model's maximum context length is %d tokens. However, you requested %zu tokens (%zu in the "
                    "%s, %d in the completion). Please reduce the length of the %s or completion.", s->ctx,
                    n + (size_t)max_tokens, n, kind == NX_REQ_CHAT ? "messages" : "prompt", max_tokens,
                    kind == NX_REQ_CHAT ? "messages" : "prompt");
        goto done;
    }
    if (max_tokens > s->o.max_tokens) {
        nx_api_fail(e, 400, NULL, "invalid_value", "max_tokens", "max_tokens is %d; this server allows at most %d.",
                    max_tokens, s->o.max_tokens);
        goto done;
    }
    if (max_tokens < 0) max_tokens = kind == NX_REQ_CHAT ? room : 16; /* OpenAI's defaults */
    if (max_tokens > room) max_tokens = room;
    if (max_tokens > s->o.max_tokens) max_tokens = s->o.max_tokens;

    j = job_new();
    j->prompt = ids, ids = NULL;
    j->nprompt = (int)n;
    for (int i = 0; i < req.nstops; i++) j->stops[i] = strdup(req.stops[i]);
    pthread_mutex_lock(&s->seq_mu);
    uint64_t seq = ++s->seq;
    pthread_mutex_unlock(&s->seq_mu);
    nx_sample_opts so = nx_sample_defaults();
    so.temperature = req.temperature, so.top_p = req.top_p;
    so.presence_penalty = req.presence_penalty, so.frequency_penalty = req.frequency_penalty;
    j->gp = (nx_gen_params){.sample = so,
                            .seed = req.has_seed ? req.seed : nx_fnv1a(&seq, sizeof seq, (uint64_t)time(NULL)),
                            .max_tokens = max_tokens, .eos_id = s->chat.eos_ids[0], .eos_more = s->chat.eos_ids + 1,
                            .neos_more = s->chat.neos > 1 ? s->chat.neos - 1 : 0, .stops = j->stops, .nstops = req.nstops};
    if (s->chat.neos == 0 || req.ignore_eos) j->gp.eos_id = -1, j->gp.neos_more = 0;
    nx_sampler probe; /* the sampling options, checked before queueing */
    if (nx_sampler_init(&probe, &so, 1, 0, &err)) {
        nx_api_fail(e, 400, NULL, "invalid_value", NULL, "%s", err.msg);
        goto done;
    }
    nx_sampler_free(&probe);
    if (engine_submit(&s->eng, j, e)) goto done;
    k->j = j, j = NULL;
    atomic_fetch_add(&s->open_jobs, 1);
    k->nprompt = (int)n;
    k->include_usage = req.include_usage;
    snprintf(k->id, sizeof k->id, "%s-%016llx", kind == NX_REQ_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)nx_fnv1a(&seq, sizeof seq, (uint64_t)s->created));
    k->meta = (resp_meta){.id = k->id, .model = s->model_name, .created = (long)time(NULL), .chat = kind == NX_REQ_CHAT};
    rc = req.stream ? 1 : 0;
done:
    if (j) job_unref(&s->eng, j);
    free(text), free(ids);
    nx_serve_request_free(&req);
    return rc;
}

/* ---- streaming ------------------------------------------------------------------ */

static void pend_add(conn *k, char *ev) {
    if (!ev) return;
    size_t n = strlen(ev);
    k->pend = realloc(k->pend, k->pend_len + n + 1);
    if (!k->pend) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
    memcpy(k->pend + k->pend_len, ev, n + 1);
    k->pend_len += n;
    free(ev);
}

typedef struct stream_ctx {
    server *s;
    conn *k;
} stream_ctx;

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    conn *k = sc->k;
    engine *e = &sc->s->eng;
    for (;;) {
        if (k->pend_off < k->pend_len) {
            size_t n = k->pend_len - k->pend_off < max ? k->pend_len - k->pend_off : max;
            memcpy(buf, k->pend + k->pend_off, n);
            k->pend_off += n;
            return (ssize_t)n;
        }
        free(k->pend);
        k->pend = NULL, k->pend_len = k->pend_off = 0;
        if (k->over) return MHD_CONTENT_READER_END_OF_STREAM;
        if (k->meta.chat && !k->role_sent) {
            k->role_sent = true;
            pend_add(k, resp_chunk(&k->meta, "", 0, true, NX_FINISH_NONE, k->include_usage));
            continue;
        }
        job *j = k->j;
        pthread_mutex_lock(&e->mu);
        while (!j->done && j->len == k->sent) {
            struct timespec ts;
            deadline(&ts, 0.1);
            pthread_cond_timedwait(&j->cv, &e->mu, &ts);
            if (!j->done && j->len == k->sent && gone(k->fd)) {
                pthread_mutex_unlock(&e->mu);
                engine_cancel(e, j);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        size_t len = j->len - k->sent;
        char *text = len ? nx_xmalloc(len) : NULL;
        if (len) memcpy(text, j->text + k->sent, len);
        k->sent = j->len;
        bool done = j->done;
        nx_finish f = j->finish;
        int ntok = j->ntok;
        char errmsg[256];
        snprintf(errmsg, sizeof errmsg, "%s", j->errmsg);
        pthread_mutex_unlock(&e->mu);
        if (len) pend_add(k, resp_chunk(&k->meta, text, len, false, NX_FINISH_NONE, k->include_usage));
        free(text);
        if (!done) continue;
        k->over = true;
        if (f == NX_FINISH_NONE || f == NX_FINISH_CANCELLED) { /* a failed start, or the server stopping */
            nx_api_error err;
            if (f == NX_FINISH_NONE) nx_api_fail(&err, 500, "server_error", NULL, NULL, "%s", errmsg);
            else nx_api_fail(&err, 503, "server_error", "shutting_down", NULL, "The server is shutting down.");
            char *js = resp_error(&err);
            size_t n = js ? strlen(js) : 0;
            char *ev = malloc(n + 9);
            if (ev) memcpy(ev, "data: ", 6), memcpy(ev + 6, js ? js : "", n), memcpy(ev + 6 + n, "\n\n", 3);
            free(js);
            pend_add(k, ev);
            continue;
        }
        pend_add(k, resp_chunk(&k->meta, "", 0, false, f, k->include_usage));
        if (k->include_usage) pend_add(k, resp_usage_chunk(&k->meta, k->nprompt, ntok));
        pend_add(k, strdup("data: [DONE]\n\n"));
    }
}

static void stream_free(void *cls) { free(cls); }

/* ---- the handler ---------------------------------------------------------------- */

static enum MHD_Result get_route(server *s, conn *k, struct MHD_Connection *c, const char *url) {
    switch (k->r) {
    case R_HEALTH:
        if (s->draining) return reply(k, c, 503, "application/json", strdup("{\"status\":\"shutting_down\"}"));
        return reply(k, c, 200, "application/json", strdup("{\"status\":\"ok\"}"));
    case R_METRICS: return reply(k, c, 200, "text/plain; version=0.0.4; charset=utf-8", mx_render(&s->mx));
    case R_OPENAPI: return reply(k, c, 200, "application/json", strdup(openapi_json()));
    case R_MODELS: {
        if (!strcmp(url, "/v1/models")) return reply(k, c, 200, "application/json", resp_models(s->model_name, s->created));
        const char *id = url + 11;
        if (strcmp(id, s->model_name) != 0) {
            nx_api_error e;
            nx_api_fail(&e, 404, NULL, "model_not_found", "model", "The model '%.200s' does not exist.", id);
            return reply_error(k, c, &e);
        }
        char *list = resp_models(s->model_name, s->created); /* {"object":"list","data":[X]}: X alone */
        char *x = list ? strstr(list, "[{") : NULL;
        char *one = x ? strndup(x + 1, strlen(x + 1) - 2) : NULL;
        free(list);
        return reply(k, c, 200, "application/json", one);
    }
    default: return MHD_NO;
    }
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    conn *k = *con_cls;
    nx_api_error e;
    if (!k) { /* headers are in */
        k = nx_xcalloc(1, sizeof *k);
        k->fd = -1;
        k->t0 = nx_now();
        k->r = route_of(url);
        *con_cls = k;
        bool gen = k->r == R_COMPLETIONS || k->r == R_CHAT;
        k->post = !strcmp(method, "POST");
        if (k->r == R_OTHER) {
            nx_api_fail(&e, 404, NULL, "unknown_url", NULL, "Unknown request URL: %s %.200s.", method, url);
            return reply_error(k, c, &e);
        }
        if (gen ? !k->post : strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            nx_api_fail(&e, 405, NULL, "method_not_allowed", NULL, "%s is not allowed on %.200s: use %s.", method, url,
                        gen ? "POST" : "GET");
            return reply_error(k, c, &e);
        }
        bool open = k->r == R_HEALTH || k->r == R_OPENAPI;
        if (!open && !authorized(s, c)) {
            nx_api_fail(&e, 401, NULL, "invalid_api_key", NULL,
                        "Incorrect API key provided. Send it as the header 'Authorization: Bearer KEY'.");
            return reply_error(k, c, &e);
        }
        if (!gen) return get_route(s, k, c, url);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            nx_api_fail(&e, 413, NULL, "request_too_large", NULL, "The request body is %s bytes; the limit is %zu.", cl,
                        s->o.max_body);
            return reply_error(k, c, &e);
        }
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        size_t n = *upload_size;
        *upload_size = 0;
        if (k->responded) return MHD_YES; /* already answered: the rest is dropped */
        if (nx_now() - k->t0 > s->o.request_timeout_s) {
            nx_api_fail(&e, 408, NULL, "request_timeout", NULL, "The request body did not arrive within %g seconds.",
                        s->o.request_timeout_s);
            return reply_error(k, c, &e);
        }
        if (k->len + n > s->o.max_body) {
            nx_api_fail(&e, 413, NULL, "request_too_large", NULL, "The request body exceeds the limit of %zu bytes.",
                        s->o.max_body);
            return reply_error(k, c, &e);
        }
        k->body = realloc(k->body, k->len + n + 1);
        if (!k->body) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
        memcpy(k->body + k->len, upload, n);
        k->len += n;
        return MHD_YES;
    }
    if (k->responded) return MHD_YES;
    /* the whole body is in: generate */
    int mode = start_job(s, k, &e);
    if (mode < 0) return reply_error(k, c, &e);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    k->fd = ci ? ci->connect_fd : -1;
    if (k->fd >= 0) { /* each event goes out as it is made, not held back for more (Nagle) */
        int one = 1;
        setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u); /* generation may take long: no idle timeout */
    if (mode == 1) {
        stream_ctx *sc = nx_xmalloc(sizeof *sc);
        sc->s = s, sc->k = k;
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, sc, stream_free);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        k->responded = true, k->status = 200;
        return ok;
    }
    job *j = k->j;
    engine *eg = &s->eng;
    pthread_mutex_lock(&eg->mu);
    while (!j->done) {
        struct timespec ts;
        deadline(&ts, 0.1);
        pthread_cond_timedwait(&j->cv, &eg->mu, &ts);
        if (!j->done && gone(k->fd)) {
            pthread_mutex_unlock(&eg->mu);
            engine_cancel(eg, j);
            return MHD_NO; /* nobody to answer: close */
        }
    }
    pthread_mutex_unlock(&eg->mu);
    if (j->finish == NX_FINISH_NONE) {
        nx_api_fail(&e, 500, "server_error", NULL, NULL, "%s", j->errmsg);
        return reply_error(k, c, &e);
    }
    if (j->finish == NX_FINISH_CANCELLED) {
        nx_api_fail(&e, 503, "server_error", "shutting_down", NULL, "The server is shutting down.");
        return reply_error(k, c, &e);
    }
    return reply(k, c, 200, "application/json",
                 resp_full(&k->meta, j->text ? j->text : "", j->finish, k->nprompt, j->ntok));
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c, (void)toe;
    server *s = cls;
    conn *k = *con_cls;
    if (!k) return;
    if (k->j) {
        engine_cancel(&s->eng, k->j); /* no-op when it is done */
        job_unref(&s->eng, k->j);
        atomic_fetch_sub(&s->open_jobs, 1);
    }
    mx_request(&s->mx, k->r, k->responded ? k->status : 499);
    free(k->body), free(k->pend), free(k);
    *con_cls = NULL;
}

int http_start(server *s, nx_err *err) {
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    const char *host = s->o.host ? s->o.host : "127.0.0.1";
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6, a->sin6_port = htons((uint16_t)s->o.port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return nx_fail(err, "--host %s: not an IPv6 address", host);
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET, a->sin_port = htons((uint16_t)s->o.port);
        if (!strcmp(host, "localhost")) host = "127.0.0.1";
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return nx_fail(err, "--host %s: not an IPv4 address (give one like 127.0.0.1 or 0.0.0.0)", host);
    }
    unsigned idle = s->o.request_timeout_s < 1 ? 1 : (unsigned)(s->o.request_timeout_s + 0.999);
    s->mhd = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &ss,
                              MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)s->o.max_connections, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                              MHD_OPTION_END);
    if (!s->mhd)
        return nx_fail(err, "cannot listen on %s port %d (in use, or not an address of this machine?)", host, s->o.port);
    return NX_OK;
}

int http_port(server *s) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : s->o.port;
}

void http_quiesce(server *s) {
    if (s->mhd) {
        MHD_socket fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
}

void http_stop(server *s) {
    if (s->mhd) MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
}
