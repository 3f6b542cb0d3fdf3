/* engine.c — the one thread that owns the model and the generation slots.
 *
 * HTTP handler threads never touch the model: they validate and tokenize
 * a request into a job and submit it to a bounded queue (full: 429). The
 * engine thread loops: under its lock it retires cancelled jobs (a client
 * that left, or shutdown), moves queued jobs into free slots
 * (nx_gen_start), and sleeps when nothing is busy; outside the lock it
 * runs one nx_gen_step — one forward over a decode row per generating slot
 * plus prompt chunks of waiting ones (continuous batching, chunked
 * prefill); back under the lock it appends each event's final text to its
 * job, wakes the job's handler, and frees the slots that finished.
 *
 * A job is shared by its handler and the engine and freed by whichever
 * drops the last reference (job_unref). All job fields after submission
 * are read and written under the engine's lock; a handler waits on its
 * job's condition variable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"

job *job_new(void) {
    job *j = nx_xcalloc(1, sizeof *j);
    j->refs = 1;
    pthread_cond_init(&j->cv, NULL);
    return j;
}

static void job_free(job *j) {
    pthread_cond_destroy(&j->cv);
    for (int i = 0; i < NX_REQ_MAX_STOPS; i++) free((char *)j->stops[i]);
    free(j->prompt);
    free(j->text);
    free(j);
}

void job_unref(engine *e, job *j) {
    pthread_mutex_lock(&e->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (last) job_free(j);
}

/* under the lock: the job is over (finished, cancelled or failed to start) */
static void job_done(engine *e, job *j, nx_finish f) {
    j->done = true;
    j->finish = f;
    pthread_cond_broadcast(&j->cv);
    if (--j->refs == 0) job_free(j);
    (void)e;
}

static void append(job *j, const char *s, size_t n) {
    if (!n) return;
    if (j->len + n + 1 > j->cap) {
        j->cap = (j->len + n + 1) * 2;
        j->text = realloc(j->text, j->cap);
        if (!j->text) nx_assert_fail("realloc", __FILE__, __LINE__, "out of memory");
    }
    memcpy(j->text + j->len, s, n);
    j->len += n;
    j->text[j->len] = 0;
}

static void gauges(engine *e) {
    int busy = 0;
    for (int s = 0; s < e->g.S; s++) busy += e->slot_job[s] != NULL;
    pthread_mutex_lock(&e->mx->mu);
    e->mx->queue_depth = e->qn;
    e->mx->slots_busy = busy;
    pthread_mutex_unlock(&e->mx->mu);
}

static void *loop(void *arg) {
    engine *e = arg;
    nx_gen_event *ev = nx_xmalloc(sizeof *ev * e->g.S);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        int cancelled = 0;
        for (int s = 0; s < e->g.S; s++) { /* retire cancelled jobs */
            job *j = e->slot_job[s];
            if (!j || !j->cancelled) continue;
            nx_gen_cancel(&e->g, s);
            nx_gen_release(&e->g, s);
            e->slot_job[s] = NULL;
            job_done(e, j, NX_FINISH_CANCELLED);
            cancelled++;
        }
        int s;
        while (e->qn > 0 && (s = nx_gen_free_slot(&e->g)) >= 0) { /* admit queued jobs */
            job *j = e->queue[e->qhead];
            e->qhead = (e->qhead + 1) % e->qcap, e->qn--;
            if (j->cancelled) {
                job_done(e, j, NX_FINISH_CANCELLED);
                cancelled++;
                continue;
            }
            nx_err err;
            if (nx_gen_start(&e->g, s, j->prompt, j->nprompt, &j->gp, &err)) {
                snprintf(j->errmsg, sizeof j->errmsg, "%.250s", err.msg);
                job_done(e, j, NX_FINISH_NONE);
                continue;
            }
            j->started = true;
            e->slot_job[s] = j;
        }
        if (cancelled) {
            pthread_mutex_lock(&e->mx->mu);
            e->mx->cancelled += (uint64_t)cancelled;
            pthread_mutex_unlock(&e->mx->mu);
        }
        gauges(e);
        if (!nx_gen_busy(&e->g)) {
            if (e->quit) break;
            pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        int n = nx_gen_step(&e->g, ev);
        double now = nx_now();
        pthread_mutex_lock(&e->mu);
        pthread_mutex_lock(&e->mx->mu);
        for (int i = 0; i < n; i++) {
            job *j = e->slot_job[ev[i].slot];
            NX_ASSERT(j);
            append(j, ev[i].text, ev[i].text_len);
            if (j->ntok++ == 0) {
                j->t_first = now;
                mx_observe(e->mx, &e->mx->ttft, now - j->t_submit);
            } else {
                mx_observe(e->mx, &e->mx->token_latency, now - j->t_last);
            }
            j->t_last = now;
            e->mx->completion_tokens++;
            if (ev[i].finish != NX_FINISH_NONE) {
                mx_observe(e->mx, &e->mx->duration, now - j->t_submit);
                nx_gen_release(&e->g, ev[i].slot);
                e->slot_job[ev[i].slot] = NULL;
                job_done(e, j, ev[i].finish);
            } else {
                pthread_cond_broadcast(&j->cv);
            }
        }
        pthread_mutex_unlock(&e->mx->mu);
    }
    pthread_mutex_unlock(&e->mu);
    free(ev);
    return NULL;
}

int engine_start(engine *e, const nx_model *m, nx_tokenizer *tok, int slots, int ctx, int chunk, int queue,
                 metrics *mx, nx_err *err) {
    memset(e, 0, sizeof *e);
    if (queue < 1) return nx_fail(err, "the queue must hold at least one request (got %d)", queue);
    if (nx_gen_init(&e->g, m, slots, ctx, chunk, serve_detok, tok, err)) return NX_ERR;
    e->qlimit = queue;
    e->qcap = queue + slots; /* the waiting ones, and those about to take a free slot */
    e->queue = nx_xcalloc(e->qcap, sizeof(job *));
    e->slot_job = nx_xcalloc(slots, sizeof(job *));
    e->accepting = true;
    e->mx = mx;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (pthread_create(&e->th, NULL, loop, e)) {
        nx_gen_free(&e->g);
        free(e->queue), free(e->slot_job);
        return nx_fail(err, "cannot start the engine thread");
    }
    return NX_OK;
}

int engine_submit(engine *e, job *j, nx_api_error *err) {
    pthread_mutex_lock(&e->mu);
    if (!e->accepting) {
        pthread_mutex_unlock(&e->mu);
        return nx_api_fail(err, 503, "server_error", "shutting_down", NULL, "The server is shutting down.");
    }
    int free_slots = 0; /* not yet claimed: the jobs queued for them are not waiting */
    for (int s = 0; s < e->g.S; s++) free_slots += e->slot_job[s] == NULL;
    if (e->qn >= e->qlimit + free_slots) {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_lock(&e->mx->mu);
        e->mx->rejected_full++;
        pthread_mutex_unlock(&e->mx->mu);
        return nx_api_fail(err, 429, "rate_limit_error", "queue_full", NULL,
                           "The server is busy: %d requests are already waiting. Retry later.", e->qlimit);
    }
    j->refs++;
    j->t_submit = nx_now();
    e->queue[(e->qhead + e->qn++) % e->qcap] = j;
    pthread_mutex_lock(&e->mx->mu);
    e->mx->prompt_tokens += (uint64_t)j->nprompt;
    e->mx->queue_depth = e->qn;
    pthread_mutex_unlock(&e->mx->mu);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return NX_OK;
}

void engine_cancel(engine *e, job *j) {
    pthread_mutex_lock(&e->mu);
    if (!j->done) {
        j->cancelled = true;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->mu);
}

void engine_cancel_all(engine *e) {
    pthread_mutex_lock(&e->mu);
    e->accepting = false;
    for (int s = 0; s < e->g.S; s++)
        if (e->slot_job[s]) e->slot_job[s]->cancelled = true;
    for (int k = 0; k < e->qn; k++) e->queue[(e->qhead + k) % e->qcap]->cancelled = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

int engine_load(engine *e) {
    pthread_mutex_lock(&e->mu);
    int n = e->qn;
    for (int s = 0; s < e->g.S; s++) n += e->slot_job[s] != NULL;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void engine_stop(engine *e) {
    if (!e->queue || e->stopped) return;
    engine_cancel_all(e);
    pthread_mutex_lock(&e->mu);
    e->quit = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->th, NULL);
    /* the loop retired every job before it left (nothing busy, queue drained) */
    nx_gen_free(&e->g);
    e->stopped = true;
}

void engine_free(engine *e) {
    if (!e->queue) return;
    if (!e->stopped) engine_stop(e);
    free(e->queue), free(e->slot_job);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    e->queue = NULL;
}
