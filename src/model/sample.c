/* sample.c — choosing the next token, and stop strings on streamed text.
 *
 * Sampling mirrors transformers' generate: RepetitionPenaltyLogitsProcessor
 * on raw logits, then the warpers Temperature → TopK → TopP → MinP, each
 * working on the candidates the previous one kept, then a multinomial draw
 * from an explicit nx_rng (same seed, same tokens). Candidates are kept as
 * an index list; sorting (O(V log V)) happens only when top-k or top-p ask
 * for an order, so plain temperature sampling stays O(V). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/generate.h"

nx_sample_opts nx_sample_defaults(void) {
    return (nx_sample_opts){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0,
                            .repetition_penalty = 1};
}

int nx_sampler_init(nx_sampler *s, const nx_sample_opts *o, int V, uint64_t seed, nx_err *err) {
    memset(s, 0, sizeof *s);
    if (!(o->temperature >= 0) || !isfinite(o->temperature))
        return nx_fail(err, "temperature must be >= 0 (0 = greedy), got %g", o->temperature);
    if (o->top_k < 0) return nx_fail(err, "top-k must be >= 0 (0 = off), got %d", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return nx_fail(err, "top-p must be in (0, 1] (1 = off), got %g", o->top_p);
    if (!(o->min_p >= 0 && o->min_p < 1))
        return nx_fail(err, "min-p must be in [0, 1) (0 = off), got %g", o->min_p);
    if (!(o->repetition_penalty > 0) || !isfinite(o->repetition_penalty))
        return nx_fail(err, "repetition penalty must be > 0 (1 = off), got %g", o->repetition_penalty);
    if (!isfinite(o->presence_penalty) || !isfinite(o->frequency_penalty))
        return nx_fail(err, "presence and frequency penalties must be finite, got %g and %g", o->presence_penalty,
                       o->frequency_penalty);
    if (V <= 0) return nx_fail(err, "vocabulary size must be positive");
    s->o = *o;
    s->V = V;
    nx_rng_seed(&s->rng, seed);
    s->work = nx_xmalloc(sizeof(float) * V);
    s->idx = nx_xmalloc(sizeof(int32_t) * V);
    s->seen = nx_xcalloc(V, 1);
    if (o->presence_penalty != 0 || o->frequency_penalty != 0) s->counts = nx_xcalloc(V, sizeof(int32_t));
    return NX_OK;
}

void nx_sampler_free(nx_sampler *s) {
    free(s->work);
    free(s->idx);
    free(s->seen);
    free(s->counts);
    memset(s, 0, sizeof *s);
}

static const float *sort_keys; /* qsort has no context argument; sampling is single-threaded */
static int by_logit_desc(const void *a, const void *b) {
    float x = sort_keys[*(const int32_t *)a], y = sort_keys[*(const int32_t *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b; /* stable: lower id first */
}

static int32_t draw(nx_sampler *s, const float *logits, const int32_t *hist, int nhist);

bool nx_sampler_greedy(const nx_sampler *s) {
    return s->o.temperature == 0 && !s->counts && s->o.repetition_penalty == 1.0f;
}

int32_t nx_sampler_sample(nx_sampler *s, const float *logits, const int32_t *hist, int nhist) {
    int32_t t = draw(s, logits, hist, nhist);
    if (s->counts) s->counts[t]++;
    return t;
}

static int32_t draw(nx_sampler *s, const float *logits, const int32_t *hist, int nhist) {
    int V = s->V;
    float *w = s->work;
    memcpy(w, logits, sizeof(float) * V);
    if (s->counts) /* mu[j] -= c[j] * alpha_frequency + (c[j] > 0) * alpha_presence */
        for (int v = 0; v < V; v++)
            if (s->counts[v]) w[v] -= (float)s->counts[v] * s->o.frequency_penalty + s->o.presence_penalty;
    if (s->o.repetition_penalty != 1.0f) {
        /* score = where(score < 0, score * penalty, score / penalty), once per distinct id */
        float pen = s->o.repetition_penalty;
        for (int i = 0; i < nhist; i++) {
            int32_t t = hist[i];
            if (t < 0 || t >= V || s->seen[t]) continue;
            s->seen[t] = 1;
            w[t] = w[t] < 0 ? w[t] * pen : w[t] / pen;
        }
        for (int i = 0; i < nhist; i++)
            if (hist[i] >= 0 && hist[i] < V) s->seen[hist[i]] = 0;
    }
    if (s->o.temperature == 0) {
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (w[v] > w[best]) best = v;
        return best;
    }
    float invt = 1.0f / s->o.temperature;
    int n = 0;
    for (int v = 0; v < V; v++) {
        w[v] *= invt;
        if (!isinf(w[v]) || w[v] > 0) s->idx[n++] = v; /* −inf logits are never candidates */
    }
    if (n == 0) return 0;
    bool sorted = false;
    if (s->o.top_k > 0 && s->o.top_k < n) {
        sort_keys = w;
        qsort(s->idx, n, sizeof(int32_t), by_logit_desc);
        sorted = true;
        n = s->o.top_k;
    }
    /* unnormalised probabilities of the candidates, in place: p[id] = exp(w[id] − max) */
    float *p = w, mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = w[s->idx[i]] > mx ? w[s->idx[i]] : mx;
    double total = 0;
    for (int i = 0; i < n; i++) total += p[s->idx[i]] = expf(w[s->idx[i]] - mx);
    if (s->o.top_p < 1.0f) {
        if (!sorted) {
            sort_keys = p;
            qsort(s->idx, n, sizeof(int32_t), by_logit_desc);
            sorted = true;
        }
        /* keep the smallest prefix whose mass reaches top_p (at least one) */
        double cum = 0, need = s->o.top_p * total;
        int keep = 0;
        while (keep < n && (keep == 0 || cum < need)) cum += p[s->idx[keep++]];
        n = keep;
        total = cum;
    }
    if (s->o.min_p > 0) {
        /* MinP: drop tokens whose probability is below min_p × the top one */
        float top = 0;
        for (int i = 0; i < n; i++) top = p[s->idx[i]] > top ? p[s->idx[i]] : top;
        float thr = s->o.min_p * top;
        int k = 0;
        total = 0;
        for (int i = 0; i < n; i++)
            if (p[s->idx[i]] >= thr) {
                s->idx[k++] = s->idx[i];
                total += p[s->idx[i]];
            }
        n = k;
    }
    double u = nx_rng_uniform(&s->rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += p[s->idx[i]];
        if (u < acc) return s->idx[i];
    }
    return s->idx[n - 1];
}

/* Bytes at the end of text[0..len) that form an incomplete UTF-8 character. */
static size_t utf8_incomplete_tail(const char *text, size_t len) {
    size_t back = 0;
    while (back < len && back < 4) {
        unsigned char ch = (unsigned char)text[len - 1 - back];
        back++;
        if ((ch & 0xC0) != 0x80) { /* a lead byte (or ASCII): how long should it be? */
            size_t need = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3
                        : (ch & 0xF8) == 0xF0 ? 4 : 1;
            return need > back ? back : 0;
        }
    }
    return 0;
}

long nx_stop_scan(const char *text, size_t len, const char *const *stops, int nstops, size_t *safe) {
    long first = -1;
    for (int i = 0; i < nstops; i++) {
        size_t sl = strlen(stops[i]);
        if (sl == 0 || sl > len) continue;
        const char *hit = memmem(text, len, stops[i], sl);
        if (hit && (first < 0 || hit - text < first)) first = hit - text;
    }
    if (first >= 0) {
        *safe = (size_t)first;
        return first;
    }
    size_t hold = utf8_incomplete_tail(text, len);
    for (int i = 0; i < nstops; i++) { /* a tail that is a proper prefix of a stop string */
        size_t sl = strlen(stops[i]);
        for (size_t k = sl - (sl > 0); k > hold && k > 0; k--)
            if (k <= len && memcmp(text + len - k, stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    *safe = len - hold;
    return -1;
}
