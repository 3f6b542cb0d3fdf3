/* generate.h — text generation in the library: sampling, stop strings,
 * and a generator of many sequences at once ("slots") over one KV cache.
 *
 * A slot holds one request: its prompt and generated ids, its own sampler
 * (options and seed), stop conditions (max tokens, an EOS id, stop
 * strings) and the text generated so far. Slots start, finish and are
 * released independently. Each nx_gen_step runs one forward over a batch
 * of rows built from every active slot: one decode row per slot that is
 * generating, plus prefill chunks of prompts (up to `chunk` tokens per
 * step) — continuous batching with chunked prefill, so a long prompt does
 * not stall the others. `nexus generate`, `nexus benchmark` and `nexus
 * serve` all drive this one loop.
 *
 * Stop strings and streaming need text: the caller gives a detokenizer
 * callback (the model module knows no tokenizers). Text is handed out only
 * when final: never inside an incomplete UTF-8 character (shown by
 * decoders as a trailing U+FFFD until its last byte arrives) and never a
 * tail that could still grow into a stop string. */
#ifndef NEXUS_GENERATE_H
#define NEXUS_GENERATE_H

#include "nexus/model.h"

/* ---- sampling ------------------------------------------------------------
 * The order of transformers' generate: repetition penalty on the raw logits
 * (each distinct token of the history once: logit < 0 ? logit·p : logit/p),
 * then, unless greedy, temperature, top-k, top-p and min-p, each filter
 * renormalising over what the previous kept, then one draw from nx_rng.
 * Greedy (temperature 0) is argmax, the lowest id on ties as torch.argmax.
 * OpenAI's presence and frequency penalties come first, on the raw logits,
 * over the tokens this sampler has drawn (the generated ones, not the
 * prompt, as vLLM counts them): logit[j] -= count[j]·frequency +
 * (count[j] > 0)·presence. */
typedef struct nx_sample_opts {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off; in (0, 1] */
    float min_p;              /* 0: off; in [0, 1) */
    float repetition_penalty; /* 1: off; > 0 */
    float presence_penalty;   /* 0: off; finite */
    float frequency_penalty;  /* 0: off; finite */
} nx_sample_opts;

nx_sample_opts nx_sample_defaults(void); /* greedy, all filters off */

typedef struct nx_sampler {
    nx_sample_opts o;
    int V;
    nx_rng rng;
    float *work;      /* (V) */
    int32_t *idx;     /* (V) */
    uint8_t *seen;    /* (V) */
    int32_t *counts;  /* (V) tokens drawn so far; only with a presence or frequency penalty */
} nx_sampler;

/* Is every draw the argmax of the logits as they come (greedy, with no
 * penalty)? Then the argmax may be taken where the logits are. */
bool nx_sampler_greedy(const nx_sampler *s);
/* Validates o (names the bad option) and plans the sampler's buffers. */
int nx_sampler_init(nx_sampler *s, const nx_sample_opts *o, int V, uint64_t seed, nx_err *err);
void nx_sampler_free(nx_sampler *s);
/* Next token from logits (V), given the ids so far (prompt and generated,
 * for the repetition penalty; may be NULL when nhist is 0). With a
 * presence or frequency penalty the drawn token is counted. */
int32_t nx_sampler_sample(nx_sampler *s, const float *logits, const int32_t *hist, int nhist);

/* ---- stop strings ---------------------------------------------------------
 * Streaming text with stop strings: given the decoded text so far (len
 * bytes), returns the offset of the earliest complete occurrence of any stop
 * string, or −1. *safe receives how many bytes may be printed now: up to
 * the stop (when found), else short of any tail that could still grow into
 * a stop string, and never inside an incomplete UTF-8 character. */
long nx_stop_scan(const char *text, size_t len, const char *const *stops, int nstops,
                  size_t *safe);


/* ---- generation slots ----------------------------------------------------- */

typedef enum nx_finish {
    NX_FINISH_NONE,       /* still running */
    NX_FINISH_LENGTH,     /* max_tokens generated */
    NX_FINISH_EOS,        /* the EOS token was generated (it is the last id) */
    NX_FINISH_STOP,       /* a stop string appeared (the text ends before it) */
    NX_FINISH_CONTEXT,    /* the context is full */
    NX_FINISH_CANCELLED,  /* nx_gen_cancel */
} nx_finish;

/* "length", "eos", "stop", "context", "cancelled" ("" while running). */
const char *nx_finish_name(nx_finish f);

/* Text of n generated ids (malloc'd, NUL-terminated UTF-8), or NULL. */
typedef char *(*nx_detok_fn)(void *ctx, const int32_t *ids, int n);

typedef struct nx_gen_params {
    nx_sample_opts sample;
    uint64_t seed;
    int max_tokens;           /* new tokens at most (>= 1) */
    int32_t eos_id;           /* finish after this token; -1: none */
    const int32_t *eos_more;  /* further end tokens (copied; generation_config's list), */
    int neos_more;            /* at most NX_GEN_MAX_EOS */
    const char *const *stops; /* stop strings (copied); need a detokenizer */
    int nstops;
} nx_gen_params;

enum { NX_GEN_MAX_EOS = 8 };

typedef enum nx_slot_state { NX_SLOT_FREE, NX_SLOT_PREFILL, NX_SLOT_DECODE, NX_SLOT_DONE } nx_slot_state;

typedef struct nx_gen_slot {
    nx_slot_state state;
    int32_t *ids;            /* (ctx) prompt, then generated ids */
    int n_prompt, n;         /* prompt length, ids so far */
    int n_cached;            /* ids whose keys and values are in the cache */
    int max_new;
    int32_t eos_id;
    int32_t eos_more[NX_GEN_MAX_EOS];
    int neos_more;
    char **stops;
    int nstops;
    nx_sampler sampler;
    char *text;              /* generated text so far (with a detokenizer), cut at a stop string */
    size_t emitted;          /* bytes of text handed out in events */
    nx_finish finish;
    double t_start, t_first, t_end; /* nx_now() at start, first token, finish */
} nx_gen_slot;

/* One new token of one slot, from a step. */
typedef struct nx_gen_event {
    int slot;
    int32_t token;
    const char *text;        /* new final text (valid until the next step), may be empty */
    size_t text_len;
    nx_finish finish;        /* NX_FINISH_NONE unless this token ended the slot */
} nx_gen_event;

typedef struct nx_gen {
    const nx_model *m;
    int S, ctx, chunk;       /* slots, positions per slot, prefill tokens per step */
    bool prefill_first;      /* while a prompt is pending, steps run prefill only */
    nx_kv_cache kv;
    nx_acts acts;
    nx_gen_slot *slots;
    nx_detok_fn detok;
    void *detok_ctx;
    int32_t *ids;            /* (S + chunk) host: the rows of a step */
    nx_span *spans;          /* (S) host */
    int *span_slot;          /* (S) */
    float *logits;           /* (S, V) host copy when the backend's memory is not the host's */
    int32_t *argmax_dev;     /* (S) on such a backend: greedy steps download ids, not logits */
    int32_t *argmax_host;    /* (S) */
    int next_prefill;        /* round-robin start among prompts */
    /* (2·S) decode steps of n rows, replayed (nx_backend_replay): [2(n−1)]
     * ends in logits, [2(n−1) + 1] in the device's argmax */
    nx_replay **replay;
} nx_gen;

/* Plans S slots of up to ctx positions each (ctx <= max_position_embeddings)
 * and prefill chunks of up to chunk tokens per step. detok may be NULL
 * (then no text and no stop strings). */
int nx_gen_init(nx_gen *g, const nx_model *m, int S, int ctx, int chunk, nx_detok_fn detok, void *detok_ctx,
                nx_err *err);
void nx_gen_free(nx_gen *g);
/* A free slot's index, or -1. */
int nx_gen_free_slot(const nx_gen *g);
/* Starts a request in free slot s. Fails (with a message, nothing started)
 * on an empty prompt, a prompt that leaves no room in the context, ids
 * outside the vocabulary, bad sampling options, more than NX_GEN_MAX_EOS
 * further end tokens, or stop strings without a detokenizer. */
int nx_gen_start(nx_gen *g, int s, const int32_t *prompt, int n, const nx_gen_params *p, nx_err *err);
/* Ends slot s now (NX_FINISH_CANCELLED) without another event. */
void nx_gen_cancel(nx_gen *g, int s);
/* Frees a finished (or cancelled) slot for the next request. */
void nx_gen_release(nx_gen *g, int s);
/* Is any slot prefilling or decoding? */
bool nx_gen_busy(const nx_gen *g);
/* One forward over the active slots; writes one event per slot that got a
 * token (at most S) to ev and returns how many. Slots that finish move to
 * NX_SLOT_DONE. */
int nx_gen_step(nx_gen *g, nx_gen_event *ev);

/* Bytes of weights a batch-1 decode step reads: every tensor but the
 * embeddings, of which one row. */
double nx_gen_bytes_per_token(const nx_model *m);

#endif
