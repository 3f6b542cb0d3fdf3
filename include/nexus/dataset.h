/* dataset.h — token streams for training and evaluation.
 *
 * Three pieces:
 *   - tokenizing documents (JSONL with a text field, or plain text files,
 *     gzipped or not) into one in-memory stream: each document's ids (no
 *     special tokens), then the EOS id, in file order (PROTOCOLS.md "token
 *     stream"); documents are tokenized in parallel, order preserved;
 *   - a token-shard file (.bin) holding such a stream: magic, version,
 *     token width (u16 when the vocabulary fits, else u32), counts, the
 *     tokenizer fingerprint and a CRC32 of the payload (layout in
 *     docs/TOKENIZER.md); opened memory-mapped and verified before use;
 *   - a batch loader over either: B windows of T+1 tokens, split into inputs
 *     (B, T) and next-token targets (B, T), drawn at random from an explicit
 *     nx_rng or taken sequentially; its whole state is a small struct that a
 *     checkpoint saves by value. */
#ifndef NEXUS_DATASET_H
#define NEXUS_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nexus/core.h"
#include "nexus/tokenizer.h"

/* ---- tokenizing documents ------------------------------------------- */

typedef struct nx_token_stream {
    int32_t *ids;      /* n tokens, malloc'd */
    size_t n;
    size_t *doc_end;   /* doc_end[d]: one past the last token (EOS included) of document d */
    size_t n_docs;
} nx_token_stream;

typedef struct nx_docs_opts {
    const char *field;   /* JSONL text field; NULL means "text" */
    int32_t eos_id;      /* appended after every document; -1: nothing appended */
    bool skip_bad_lines; /* JSONL: skip (and count) lines that are not JSON, lack the
                            field, or hold invalid UTF-8, instead of failing */
    int threads;         /* <= 0: all OpenMP threads */
    bool progress;       /* progress line on stderr (the caller decides: TTY only) */
} nx_docs_opts;

typedef struct nx_docs_stats {
    size_t docs, bad_lines;
    uint64_t bytes;      /* text bytes tokenized */
    double seconds;
} nx_docs_stats;

/* Tokenizes the documents of every path, in order, appending to *out (which
 * must be zeroed or hold an earlier stream). A path ending in .jsonl,
 * .jsonl.gz, .json or .json.gz is JSONL: one JSON object per line, its
 * `field` string is a document, blank lines are ignored. Any other path is
 * plain text: the whole file is one document. gzip is detected from the
 * content, not the name. Errors name the file and line ("f.jsonl:12: not
 * JSON"). stats may be NULL. Free the stream with nx_token_stream_free. */
int nx_dataset_tokenize(const nx_tokenizer *t, const char *const *paths, int npaths,
                        const nx_docs_opts *o, nx_token_stream *out, nx_docs_stats *stats,
                        nx_err *err);
void nx_token_stream_free(nx_token_stream *s);

/* ---- shards ------------------------------------------------------------ */

#define NX_SHARD_MAGIC "NXTOKENS"
#define NX_SHARD_VERSION 1u
#define NX_SHARD_HEADER_BYTES 64

typedef struct nx_shard_info {
    uint32_t version;
    uint32_t width;        /* bytes per token: 2 or 4 */
    uint64_t n_tokens;
    uint32_t vocab_size;
    int32_t eos_id;        /* -1: none */
    uint64_t n_docs;
    uint64_t fingerprint;  /* nx_tokenizer_fingerprint of the tokenizer used */
    uint32_t crc32;        /* zlib crc32 of the payload */
} nx_shard_info;

/* Writes ids[0..n) to path atomically (nx_atomic_open/commit: path.tmp,
 * fsync, rename), so a crash never leaves a half-written shard under the
 * real name; on error path keeps what it held and path.tmp is gone. Every
 * id must be in [0, vocab_size): an id outside is an error naming its
 * position. */
int nx_shard_write(const char *path, const int32_t *ids, size_t n, uint32_t vocab_size,
                   int32_t eos_id, uint64_t n_docs, uint64_t fingerprint, nx_err *err);

typedef struct nx_shard {
    nx_shard_info info;
    const void *tokens;    /* into the mapping: n_tokens little-endian u16/u32 */
    void *map;
    size_t map_len;
} nx_shard;

/* Memory-maps path and verifies everything before returning: magic, version
 * (unknown ones are rejected with a hint), header checksum, file size
 * (truncation), payload CRC32 and that every token is < vocab_size. Close
 * with nx_shard_close. */
int nx_shard_open(nx_shard *s, const char *path, nx_err *err);
void nx_shard_close(nx_shard *s);

/* ---- shard sets ----------------------------------------------------------
 * A directory of shards prepared together (train.bin, val.bin) with
 * manifest.json naming each one's size, token and document counts and
 * payload CRC32. */

#define NX_SHARD_MANIFEST "manifest.json"

typedef struct nx_shard_part {
    const char *name;      /* "train.bin" */
    const int32_t *ids;
    size_t n;
    uint64_t n_docs;
} nx_shard_part;

/* Writes parts into dir as one set: either the whole new set (shards and
 * manifest) is in place afterwards, with the earlier set's shards that the
 * new one lacks deleted, or — on an error or a crash — the directory has no
 * manifest.json and readers refuse it. Staging files (.NAME.new) are
 * removed on error. */
int nx_shard_set_write(const char *dir, const nx_shard_part *parts, int nparts, uint32_t vocab_size,
                       int32_t eos_id, uint64_t fingerprint, nx_err *err);
/* nx_shard_open of DIR/name, which dir's manifest.json must list with the
 * same size, counts and CRC32; no manifest, an unlisted or a mismatched
 * shard is an error that says what to do. */
int nx_shard_set_open(nx_shard *s, const char *dir, const char *name, nx_err *err);

/* ---- batches ------------------------------------------------------------ */

/* Token views (nx_tokens, core.h) of a shard's payload or a stream. */
nx_tokens nx_shard_tokens(const nx_shard *s);
nx_tokens nx_stream_tokens(const nx_token_stream *s);

typedef enum nx_batch_mode {
    NX_BATCH_RANDOM,      /* window starts uniform in [0, n - T - 1] */
    NX_BATCH_SEQUENTIAL   /* consecutive non-overlapping windows of T+1 tokens from pos,
                             wrapping to 0 (epoch + 1) when the next one does not fit */
} nx_batch_mode;

/* Everything that determines the next batch: save it in a checkpoint and
 * restore it to continue bit for bit. */
typedef struct nx_loader_state {
    uint64_t pos;    /* sequential: start of the next window */
    uint64_t epoch;  /* sequential: completed passes */
    nx_rng rng;      /* random: window starts */
} nx_loader_state;

typedef struct nx_loader {
    nx_tokens src;
    int B, T;
    nx_batch_mode mode;
    nx_loader_state st;
} nx_loader;

/* Fails when the source holds fewer than T+1 tokens or B, T < 1. */
int nx_loader_init(nx_loader *l, nx_tokens src, int B, int T, nx_batch_mode mode, uint64_t seed,
                   nx_err *err);
/* Restores a saved state (a checkpoint's) after checking that it is one
 * this loader can be in: a sequential position at a window start within
 * the data, a random state that is not all zero. */
int nx_loader_restore(nx_loader *l, const nx_loader_state *st, nx_err *err);
/* Fills inputs and targets, each (B, T): row b is a window w of T+1 tokens,
 * inputs[b] = w[0..T), targets[b] = w[1..T+1). */
void nx_loader_next(nx_loader *l, int32_t *inputs, int32_t *targets);

#endif
