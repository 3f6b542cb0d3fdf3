/* qstore.h — quantized models on disk as nexus model directories, until
 * GGUF output carries them to other runtimes:
 *
 *   config.json         the Hugging Face config, as for any model
 *   model.safetensors   every tensor; a matrix of a block type (Q8_0, Q4_0,
 *                       Q4_K) holds its raw blocks (blocks.h, GGUF's byte
 *                       layout) as dtype U8, shape [rows, row_bytes], since
 *                       safetensors has no block types; other matrices and
 *                       the norms and biases as F32 / F16 / BF16
 *   quantization.json   what the bytes are and how they were made:
 *                       {"format": "nexus-quantized", "version": 1,
 *                        "type": "q4_k_m", "method": "imatrix+mixed",
 *                        "calibration": {"file", "hash", "tokens"} or null,
 *                        "source": DIR, "keep_sensitive": N,
 *                        "tensors": {NAME: {"type": "Q4_K", "act": "block"
 *                                   | "row" | "static", "act_scale": X}},
 *                        "report": {...}   (the quantizer's notes: fallbacks,
 *                                   sensitivities; never read back)}
 *   tokenizer files     copied from the source model
 *
 * The presence of quantization.json makes a directory quantized:
 * nx_hf_load_model and its variants load such a directory with its stored
 * types (the hold type they are given applies to float checkpoints only).
 * Transformers cannot load it (the U8 tensors). The directory is written
 * whole or not at all: built beside DIR and renamed into place. */
#ifndef NEXUS_QSTORE_H
#define NEXUS_QSTORE_H

#include "nexus/model.h"

typedef struct nx_quant_meta {
    char type[32];          /* the recipe asked for: "q8_0", "q4_0", "q4_k_m", "w8a8", ... */
    char method[64];        /* how: "rtn", "imatrix", "imatrix+mixed", ... */
    char calib_file[512];   /* "" without calibration */
    char calib_hash[24];    /* FNV-1a 64 of the calibration token ids, hex */
    long long calib_tokens;
    char source[512];       /* the source model directory, as given */
    int keep_sensitive;
    char *report;           /* JSON object text stored under "report", or NULL (not loaded back) */
} nx_quant_meta;

/* Is DIR a quantized model directory (DIR/quantization.json exists)? */
bool nx_qstore_is(const char *dir);
/* Writes m (any mix of types, on any backend) as a quantized directory DIR
 * with tokenizer files copied from tok_dir (may be NULL). DIR must not
 * exist or be an empty directory; on error nothing is left at DIR. */
int nx_qstore_save(const char *dir, const nx_model *m, const nx_quant_meta *meta, const char *tok_dir,
                   nx_err *err);
/* Loads DIR onto be with each group's stored type and activation scaling;
 * meta (may be NULL) gets what quantization.json says (report NULL).
 * Errors name the file and the tensor: a missing or unexpected tensor, a
 * shape or byte count that does not match its type, a type a stacked group
 * does not share, an unknown type, a backend that cannot hold it. */
int nx_qstore_load(const char *dir, nx_model *m, nx_backend *be, nx_quant_meta *meta, nx_err *err);

#endif
