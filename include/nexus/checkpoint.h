/* checkpoint.h — training checkpoints that resume bit for bit.
 *
 * One file per checkpoint, `step-00000120.nxck`, written atomically (to a
 * temporary name, fsync, rename, fsync of the directory) so that a crash or
 * a full disk leaves the previous checkpoint intact. Layout (little-endian):
 *
 *   magic "NXCKPT\0\0" | u32 version | u32 header bytes | header | payload | u32 crc32
 *
 * header: config hash, step, tokens seen, rng state, data-loader state
 * (opaque bytes), flags, parameter count, AdamW step; payload: student
 * parameters, AdamW m and v (f32), then (flag bit 0) the sparsity mask of
 * a pruned student, one byte per parameter (1 kept, 0 held at zero). The
 * CRC covers header and payload. Version 2 files (no mask) still load. A file with
 * another magic, version, config hash or size is rejected with a message
 * that says which and what to do.
 *
 * A file format, so it lives in io/ and knows nothing of the optimizer: the
 * caller hands over host copies of the trained floats (parameters, then
 * AdamW's m and v, n floats each) and the AdamW step count. */
#ifndef NEXUS_CHECKPOINT_H
#define NEXUS_CHECKPOINT_H

#include "nexus/core.h"

/* 2: parameters in the layout of engine v2 (q/k/v and gate/up stacked, biases after their weights)
 * 3: + an optional sparsity mask (header flag bit 0) */
#define NX_CKPT_VERSION 3
#define NX_CKPT_DATA_STATE_MAX 256

typedef struct nx_ckpt_meta {
    uint64_t config_hash;
    int64_t step;                /* steps done */
    int64_t tokens;              /* tokens trained on */
    nx_rng rng;                  /* trainer RNG (data order, ...) */
    uint32_t data_state_len;
    uint8_t data_state[NX_CKPT_DATA_STATE_MAX];
    double best_val_loss;        /* for reporting; NAN when none */
} nx_ckpt_meta;

/* Writes DIR/step-XXXXXXXX.nxck holding params, m and v (n floats each),
 * adam_t (AdamW updates done) and mask (n bytes, or NULL: none); then
 * deletes this run's older ones (those of meta->config_hash) beyond the
 * newest keep (keep <= 0: keep all). Checkpoints of another config hash
 * are never deleted. */
int nx_ckpt_save(const char *dir, const nx_ckpt_meta *meta, size_t n, const float *params, const float *m,
                 const float *v, const uint8_t *mask, int64_t adam_t, int keep, nx_err *err);
/* Bytes of a checkpoint of n trained floats, with or without a mask. */
size_t nx_ckpt_bytes(size_t n, bool mask);
/* Path of the newest checkpoint in DIR into out; NX_ERR when none. */
int nx_ckpt_latest(const char *dir, char *out, size_t out_len, nx_err *err);
/* Deletes every checkpoint (step-*.nxck) in DIR, whatever run wrote it. */
int nx_ckpt_remove_all(const char *dir, nx_err *err);
/* Loads into meta, params, m and v (n floats each, n the count the file
 * must hold) and *adam_t; with a mask in the file, into mask (n bytes;
 * may be NULL to ignore it) and *has_mask (may be NULL) is set. Checks the
 * CRC before touching any of them; expect_hash != meta hash is an error. */
int nx_ckpt_load(const char *path, uint64_t expect_hash, nx_ckpt_meta *meta, size_t n, float *params, float *m,
                 float *v, uint8_t *mask, bool *has_mask, int64_t *adam_t, nx_err *err);

#endif
