/* generate.c — generation slots over one KV cache (see generate.h).
 *
 * A step gathers rows from the slots: every decoding slot contributes its
 * last token (one row, at its next position), and prompts waiting to be
 * prefilled contribute chunks, taken round-robin until `chunk` prompt
 * tokens are in the step. The forward stores every row's keys and values
 * in the cache and returns the logits of each span's last row; a decoding
 * slot, or a prompt whose last chunk this was, then samples its next
 * token, and the slot's stop conditions are checked in the order
 * transformers' generate applies them to a streamed text: a stop string,
 * the EOS token, the token budget, the end of the context. */
#include <stdlib.h>
#include <string.h>

#include "nexus/generate.h"

const char *nx_finish_name(nx_finish f) {
    static const char *names[] = {"", "length", "eos", "stop", "context", "cancelled"};
    return names[f];
}

int nx_gen_init(nx_gen *g, const nx_model *m, int S, int ctx, int chunk, nx_detok_fn detok, void *detok_ctx,
                nx_err *err) {
    memset(g, 0, sizeof *g);
    if (S <= 0 || ctx <= 0 || chunk <= 0)
        return nx_fail(err, "generation sizes must be positive: %d slots, context %d, chunk %d", S, ctx, chunk);
    if (chunk > ctx) chunk = ctx;
    *g = (nx_gen){.m = m, .S = S, .ctx = ctx, .chunk = chunk, .detok = detok, .detok_ctx = detok_ctx};
    if (nx_kv_cache_init(&g->kv, m, S, ctx, err)) return NX_ERR;
    if (nx_acts_init_rows(&g->acts, m, S + chunk, S, ctx, NX_ACTS_STREAM, err)) {
        nx_kv_cache_free(&g->kv);
        return NX_ERR;
    }
    g->slots = nx_xcalloc(S, sizeof *g->slots);
    for (int s = 0; s < S; s++) g->slots[s].ids = nx_xmalloc(sizeof(int32_t) * ctx);
    g->ids = nx_xmalloc(sizeof(int32_t) * (S + chunk));
    g->spans = nx_xmalloc(sizeof(nx_span) * S);
    g->span_slot = nx_xmalloc(sizeof(int) * S);
    g->replay = nx_xcalloc(2 * (size_t)S, sizeof *g->replay);
    if (!m->be->host_memory) {
        g->logits = nx_xmalloc(sizeof(float) * S * m->cfg.V);
        g->argmax_host = nx_xmalloc(sizeof(int32_t) * S);
        if (!(g->argmax_dev = nx_backend_alloc(m->be, sizeof(int32_t) * S, "generation ids", err))) {
            nx_gen_free(g);
            return NX_ERR;
        }
    }
    return NX_OK;
}

static void clear_slot(nx_gen_slot *sl) {
    if (sl->sampler.work) nx_sampler_free(&sl->sampler);
    for (int i = 0; i < sl->nstops; i++) free(sl->stops[i]);
    free(sl->stops);
    free(sl->text);
    int32_t *ids = sl->ids;
    memset(sl, 0, sizeof *sl);
    sl->ids = ids;
}

void nx_gen_free(nx_gen *g) {
    if (!g->slots) return;
    for (int s = 0; s < g->S; s++) {
        clear_slot(&g->slots[s]);
        free(g->slots[s].ids);
    }
    for (int i = 0; i < 2 * g->S; i++) nx_backend_replay_free(g->m->be, g->replay[i]);
    free(g->slots), free(g->ids), free(g->spans), free(g->span_slot), free(g->logits), free(g->argmax_host);
    free(g->replay);
    if (g->argmax_dev) nx_backend_free(g->m->be, g->argmax_dev);
    nx_acts_free(&g->acts);
    nx_kv_cache_free(&g->kv);
    memset(g, 0, sizeof *g);
}

int nx_gen_free_slot(const nx_gen *g) {
    for (int s = 0; s < g->S; s++)
        if (g->slots[s].state == NX_SLOT_FREE) return s;
    return -1;
}

int nx_gen_start(nx_gen *g, int s, const int32_t *prompt, int n, const nx_gen_params *p, nx_err *err) {
    NX_ASSERT(s >= 0 && s < g->S);
    nx_gen_slot *sl = &g->slots[s];
    NX_ASSERTM(sl->state == NX_SLOT_FREE, "slot in use");
    const nx_model_config *c = &g->m->cfg;
    if (n < 1) return nx_fail(err, "the prompt is empty (no tokens)");
    if (n >= g->ctx)
        return nx_fail(err, "the prompt is %d tokens but the context is %d tokens, leaving no room to generate: "
                            "shorten the prompt", n, g->ctx);
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= c->V)
            return nx_fail(err, "prompt token %d has id %d, outside the model's vocabulary of %d: the tokenizer "
                                "does not match the model", i, prompt[i], c->V);
    if (p->max_tokens < 1) return nx_fail(err, "max tokens must be at least 1 (got %d)", p->max_tokens);
    if (p->neos_more < 0 || p->neos_more > NX_GEN_MAX_EOS)
        return nx_fail(err, "%d further end tokens, at most %d", p->neos_more, NX_GEN_MAX_EOS);
    if (p->nstops > 0 && !g->detok) return nx_fail(err, "stop strings need a detokenizer");
    for (int i = 0; i < p->nstops; i++)
        if (!p->stops[i][0]) return nx_fail(err, "stop string %d is empty", i);
    if (nx_sampler_init(&sl->sampler, &p->sample, c->V, p->seed, err)) return NX_ERR;
    memcpy(sl->ids, prompt, sizeof(int32_t) * n);
    sl->n_prompt = sl->n = n;
    sl->max_new = p->max_tokens;
    sl->eos_id = p->eos_id;
    sl->neos_more = p->neos_more;
    if (p->neos_more) memcpy(sl->eos_more, p->eos_more, sizeof(int32_t) * p->neos_more);
    sl->nstops = p->nstops;
    sl->stops = p->nstops ? nx_xcalloc(p->nstops, sizeof(char *)) : NULL;
    for (int i = 0; i < p->nstops; i++) sl->stops[i] = strdup(p->stops[i]);
    sl->state = NX_SLOT_PREFILL;
    sl->t_start = nx_now();
    return NX_OK;
}

void nx_gen_cancel(nx_gen *g, int s) {
    nx_gen_slot *sl = &g->slots[s];
    if (sl->state == NX_SLOT_PREFILL || sl->state == NX_SLOT_DECODE) {
        sl->state = NX_SLOT_DONE;
        sl->finish = NX_FINISH_CANCELLED;
        sl->t_end = nx_now();
    }
}

void nx_gen_release(nx_gen *g, int s) {
    NX_ASSERT(s >= 0 && s < g->S);
    clear_slot(&g->slots[s]);
}

bool nx_gen_busy(const nx_gen *g) {
    for (int s = 0; s < g->S; s++)
        if (g->slots[s].state == NX_SLOT_PREFILL || g->slots[s].state == NX_SLOT_DECODE) return true;
    return false;
}

/* Hold back trailing U+FFFD (EF BF BD): an incomplete character so far. */
static size_t hold_replacement(const char *t, size_t safe) {
    while (safe >= 3 && memcmp(t + safe - 3, "\xEF\xBF\xBD", 3) == 0) safe -= 3;
    return safe;
}

/* Slot sl took token t: update its text, decide whether it is finished, and
 * fill its event. */
static bool is_eos(const nx_gen_slot *sl, int32_t t) {
    if (t == sl->eos_id) return true;
    for (int i = 0; i < sl->neos_more; i++)
        if (t == sl->eos_more[i]) return true;
    return false;
}

static void took(nx_gen *g, int s, int32_t t, nx_gen_event *ev) {
    nx_gen_slot *sl = &g->slots[s];
    sl->ids[sl->n++] = t;
    if (sl->n == sl->n_prompt + 1) sl->t_first = nx_now();
    int ngen = sl->n - sl->n_prompt;
    nx_finish f = NX_FINISH_NONE;
    long stop_at = -1;
    size_t safe = 0, len = 0;
    if (g->detok) {
        char *text = g->detok(g->detok_ctx, sl->ids + sl->n_prompt, ngen);
        free(sl->text);
        sl->text = text ? text : strdup("");
        len = strlen(sl->text);
        stop_at = nx_stop_scan(sl->text, len, (const char *const *)sl->stops, sl->nstops, &safe);
    }
    if (stop_at >= 0) f = NX_FINISH_STOP;
    else if (is_eos(sl, t)) f = NX_FINISH_EOS;
    else if (ngen >= sl->max_new) f = NX_FINISH_LENGTH;
    else if (sl->n >= g->ctx) f = NX_FINISH_CONTEXT;
    if (g->detok) {
        if (f == NX_FINISH_NONE) safe = hold_replacement(sl->text, safe);
        else if (stop_at < 0) safe = len;
        if (stop_at >= 0) sl->text[stop_at] = '\0';
    }
    *ev = (nx_gen_event){.slot = s, .token = t, .finish = f};
    if (g->detok && safe > sl->emitted) {
        ev->text = sl->text + sl->emitted;
        ev->text_len = safe - sl->emitted;
        sl->emitted = safe;
    } else {
        ev->text = "";
    }
    sl->state = f == NX_FINISH_NONE ? NX_SLOT_DECODE : NX_SLOT_DONE;
    sl->finish = f;
    if (f != NX_FINISH_NONE) sl->t_end = nx_now();
}

/* A step's ops: the forward, and the argmax on the device if it is taken there. */
struct step_ops {
    nx_gen *g;
    const nx_batch *b;
    bool argmax;
};

static void step_compute(void *ctx) {
    struct step_ops *so = ctx;
    nx_gen *g = so->g;
    nx_model_compute(g->m, &g->acts, so->b);
    if (so->argmax) nx_argmax(g->m->be, g->argmax_dev, g->acts.logits, so->b->nspans, g->m->cfg.V);
}

int nx_gen_step(nx_gen *g, nx_gen_event *ev) {
    const nx_model_config *c = &g->m->cfg;
    int N = 0, ns = 0;
    bool prompts = false;
    for (int s = 0; s < g->S; s++) prompts = prompts || g->slots[s].state == NX_SLOT_PREFILL;
    if (!(prompts && g->prefill_first))
        for (int s = 0; s < g->S; s++) {
            nx_gen_slot *sl = &g->slots[s];
            if (sl->state != NX_SLOT_DECODE) continue;
            g->ids[N++] = sl->ids[sl->n - 1];
            g->span_slot[ns] = s;
            g->spans[ns++] = (nx_span){s, sl->n_cached, 1};
        }
    for (int k = 0, start = g->next_prefill, budget = g->chunk; k < g->S && budget > 0; k++) {
        int s = (start + k) % g->S;
        nx_gen_slot *sl = &g->slots[s];
        if (sl->state != NX_SLOT_PREFILL) continue;
        int len = sl->n - sl->n_cached < budget ? sl->n - sl->n_cached : budget;
        memcpy(g->ids + N, sl->ids + sl->n_cached, sizeof(int32_t) * len);
        N += len;
        budget -= len;
        g->span_slot[ns] = s;
        g->spans[ns++] = (nx_span){s, sl->n_cached, len};
        g->next_prefill = (s + 1) % g->S;
    }
    if (ns == 0) return 0;
    /* greedy draws on a device: the argmax there, and ids come back instead of logits */
    bool argmax_there = g->argmax_dev != NULL;
    for (int i = 0; i < ns && argmax_there; i++) {
        const nx_gen_slot *sl = &g->slots[g->span_slot[i]];
        argmax_there = sl->n_cached + g->spans[i].len < sl->n || nx_sampler_greedy(&sl->sampler);
    }
    nx_batch b = {.N = N, .ids = g->ids, .spans = g->spans, .nspans = ns, .kv = &g->kv, .out = NX_OUT_LAST};
    struct step_ops so = {g, &b, argmax_there};
    nx_model_prepare(g->m, &g->acts, &b);
    if (N == ns) /* decode rows only: a fixed sequence of ops for N rows */
        nx_backend_replay(g->m->be, &g->replay[2 * (N - 1) + argmax_there], step_compute, &so);
    else
        step_compute(&so);
    const float *logits = g->acts.logits;
    if (argmax_there) {
        nx_backend_download(g->m->be, g->argmax_host, g->argmax_dev, sizeof(int32_t) * ns);
    } else if (g->logits) {
        nx_backend_download(g->m->be, g->logits, logits, sizeof(float) * ns * c->V);
        logits = g->logits;
    }
    int nev = 0;
    for (int i = 0; i < ns; i++) {
        int s = g->span_slot[i];
        nx_gen_slot *sl = &g->slots[s];
        sl->n_cached += g->spans[i].len;
        if (sl->n_cached < sl->n) continue; /* more of the prompt to come */
        int32_t t = argmax_there ? g->argmax_host[i]
                                 : nx_sampler_sample(&sl->sampler, logits + (size_t)i * c->V, sl->ids, sl->n);
        took(g, s, t, &ev[nev++]);
    }
    return nev;
}

double nx_gen_bytes_per_token(const nx_model *m) {
    double bytes = 0;
    for (int i = 0; i < m->ntab; i++) bytes += (double)m->tab[i].nbytes;
    if (!m->cfg.tied) bytes -= (double)m->tab[0].nbytes; /* the embeddings are not read whole... */
    return bytes + (double)m->w.wte.row_bytes;           /* ...only one row of them */
}
