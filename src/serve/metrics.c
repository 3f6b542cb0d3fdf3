/* metrics.c — what GET /metrics reports, in the Prometheus text exposition
 * format (version 0.0.4): requests by route and status, prompt and
 * completion tokens, requests queued, in flight and cancelled, slots busy,
 * and histograms of time to first token, per-token latency (between two
 * tokens of one stream) and request duration. One mutex; every update is a
 * few additions. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"

static const double BUCKETS[MX_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25, 0.5, 1, 2.5, 5, 10, 30};
static const char *ROUTES[MX_ROUTES] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health",
                                        "/metrics", "/openapi.json", "other", ""};
static const int STATUSES[MX_STATUSES] = {200, 400, 401, 404, 405, 408, 413, 429, 499, 500, 503, 0};

void mx_init(metrics *m, int slots) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->slots_total = slots;
    m->t_start = nx_now();
}

void mx_free(metrics *m) { pthread_mutex_destroy(&m->mu); }

void mx_request(metrics *m, route r, int status) {
    int k = 0;
    while (k < MX_STATUSES - 1 && STATUSES[k] && STATUSES[k] != status) k++;
    pthread_mutex_lock(&m->mu);
    m->requests[r][k]++;
    pthread_mutex_unlock(&m->mu);
}

/* the caller holds m->mu */
void mx_observe(metrics *m, mx_hist *h, double s) {
    (void)m;
    int k = 0;
    while (k < MX_BUCKETS && s > BUCKETS[k]) k++;
    h->count[k]++;
    h->sum += s;
    h->n++;
}

typedef struct sb {
    char *s;
    size_t n, cap;
} sb;

static void add(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(sb *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)k + 64;
        b->s = realloc(b->s, b->cap);
        if (!b->s) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
    }
}

static void hist(sb *b, const char *name, const char *help, const mx_hist *h) {
    add(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int k = 0; k < MX_BUCKETS; k++) {
        cum += h->count[k];
        add(b, "%s_bucket{le=\"%g\"} %llu\n", name, BUCKETS[k], (unsigned long long)cum);
    }
    cum += h->count[MX_BUCKETS];
    add(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name, h->sum,
        name, (unsigned long long)h->n);
}

char *mx_render(metrics *m) {
    sb b = {.s = malloc(4096), .cap = 4096};
    if (!b.s) return NULL;
    b.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    add(&b, "# HELP nexus_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE nexus_requests_total counter\n");
    for (int r = 0; r < MX_ROUTES; r++)
        for (int k = 0; k < MX_STATUSES; k++)
            if (m->requests[r][k])
                add(&b, "nexus_requests_total{route=\"%s\",status=\"%d\"} %llu\n", ROUTES[r], STATUSES[k],
                    (unsigned long long)m->requests[r][k]);
    add(&b, "# HELP nexus_prompt_tokens_total Prompt tokens of generation requests.\n"
            "# TYPE nexus_prompt_tokens_total counter\nnexus_prompt_tokens_total %llu\n",
        (unsigned long long)m->prompt_tokens);
    add(&b, "# HELP nexus_completion_tokens_total Tokens generated.\n"
            "# TYPE nexus_completion_tokens_total counter\nnexus_completion_tokens_total %llu\n",
        (unsigned long long)m->completion_tokens);
    add(&b, "# HELP nexus_requests_cancelled_total Generations cancelled (client gone, or shutdown).\n"
            "# TYPE nexus_requests_cancelled_total counter\nnexus_requests_cancelled_total %llu\n",
        (unsigned long long)m->cancelled);
    add(&b, "# HELP nexus_requests_rejected_total Requests refused with 429 because the queue was full.\n"
            "# TYPE nexus_requests_rejected_total counter\nnexus_requests_rejected_total %llu\n",
        (unsigned long long)m->rejected_full);
    add(&b, "# HELP nexus_queue_depth Requests waiting for a slot.\n# TYPE nexus_queue_depth gauge\n"
            "nexus_queue_depth %d\n", m->queue_depth);
    add(&b, "# HELP nexus_slots_busy Slots generating or prefilling.\n# TYPE nexus_slots_busy gauge\n"
            "nexus_slots_busy %d\n", m->slots_busy);
    add(&b, "# HELP nexus_slots_total Slots (sequences decoded together).\n# TYPE nexus_slots_total gauge\n"
            "nexus_slots_total %d\n", m->slots_total);
    hist(&b, "nexus_time_to_first_token_seconds", "From the request's arrival in the queue to its first token.",
         &m->ttft);
    hist(&b, "nexus_time_per_output_token_seconds", "Between two consecutive tokens of one request.",
         &m->token_latency);
    hist(&b, "nexus_request_duration_seconds", "From the request's arrival in the queue to its last token.",
         &m->duration);
    add(&b, "# HELP nexus_uptime_seconds Seconds since the server started.\n# TYPE nexus_uptime_seconds gauge\n"
            "nexus_uptime_seconds %.3f\n", nx_now() - m->t_start);
    pthread_mutex_unlock(&m->mu);
    return b.s;
}
