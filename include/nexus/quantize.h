/* quantize.h — making a model smaller: weights in 8 and 4 bits (the block
 * types of blocks.h), chosen by recipe, by calibration and by measured
 * sensitivity (the compress layer: above model, train and io; below app).
 *
 * Recipes (o.type):
 *   q8_0          every matrix Q8_0 (8.5 bits per weight)
 *   q4_0          every matrix Q4_0 (4.5 bits), the head Q8_0
 *   q4_k_m        Q4_K where a matrix's rows hold whole super-blocks of 256,
 *                 IQ4_NL (4.5 bits, 32-blocks) where they do not (reported
 *                 per matrix group), the head Q8_0; with calibration, groups
 *                 climb a ladder 4-bit → Q5_0 → Q8_0, the steps of largest
 *                 KL drop per extra byte first (each step's KL estimated
 *                 from the group's measured KL (below) and the ratio of
 *                 its importance-weighted errors), while the model stays
 *                 within max_mib (default: an eighth of the way from this
 *                 4-bit size to all-Q8_0)
 *   w8a8          Q8_0 weights, activations quantized per row at run time
 *                 (dynamic W8A8)
 *   w8a8-static   Q8_0 weights, activations at one scale per matrix fixed
 *                 by calibration (static W8A8; needs --calib)
 *
 * Round to nearest without calibration. With calibration data (token ids),
 * the source model runs over it once and every matrix group's inputs are
 * summed: E[x_c²] per input column (an importance matrix, as llama.cpp's
 * imatrix) and max |x| (the static activation scale). Each block's scale
 * (Q4_K: each sub-block's scale and min) is then searched to minimise the
 * importance-weighted squared error Σ_c E[x_c²]·(w_c − ŵ_c)², which is
 * the expected squared error of the layer's output under independent
 * inputs — the layer output error AWQ and imatrix minimise.
 *
 * Sensitivity: with calibration, each group is quantized alone (the rest
 * left in f32) and the mean KL(source ‖ that model) over the calibration
 * windows measured; keep_sensitive N keeps the N highest at keep_dtype
 * (F16 or BF16), and the report lists every group's figure. */
#ifndef NEXUS_QUANTIZE_H
#define NEXUS_QUANTIZE_H

#include "nexus/model.h"

typedef struct nx_quantize_opts {
    const char *type;      /* recipe, above */
    const char *calib;     /* calibration JSONL / text (nx_quantize_dir), or NULL */
    int keep_sensitive;    /* groups kept at keep_dtype (needs calibration) */
    nx_dtype keep_dtype;   /* NX_F16 (default when 0-initialised: F32 means F16) or NX_BF16 */
    int calib_windows;     /* calibration windows (default 32) */
    int calib_seq;         /* tokens per window (default 256) */
    double max_mib;        /* q4_0 / q4_k_m with calibration: upgrade groups (Q5_0, Q8_0) while
                              the model stays within this size (0: q4_k_m's default, none for q4_0) */
    int threads;           /* <= 0: all cores */
    bool progress;         /* progress line on stderr (the caller decides: a TTY) */
} nx_quantize_opts;

/* What quantization did, per matrix group and overall. */
typedef struct nx_quantize_report {
    int ngroups;
    nx_group_type *chosen;   /* [ngroups] */
    double *kl;              /* [ngroups] measured KL of each group alone, or NULL without calibration */
    bool *fallback;          /* [ngroups] a Q4_K group whose rows cannot hold super-blocks */
    int nfallback;           /* of those, how many stayed in the fallback type (not upgraded) */
    double src_bytes, out_bytes; /* the model's tensors */
    char method[64];
    char calib_hash[24];
    long long calib_tokens;
} nx_quantize_report;

/* Quantizes src (an f32 model on the CPU backend) by o into *out (allocated
 * here on the CPU backend; free with nx_model_free). calib: token ids (n
 * 0 for none); recipes that need it fail without it. rep (may be NULL) is
 * filled; free with nx_quantize_report_free. */
int nx_quantize_model(const nx_model *src, nx_tokens calib, const nx_quantize_opts *o, nx_model *out,
                      nx_quantize_report *rep, nx_err *err);
void nx_quantize_report_free(nx_quantize_report *r);

/* The whole command: load the model directory src, tokenize o->calib with
 * its tokenizer, quantize, and write a quantized directory out (qstore.h)
 * recording type, method and calibration hash. rep as above. */
int nx_quantize_dir(const char *src, const char *out, const nx_quantize_opts *o, nx_quantize_report *rep,
                    nx_err *err);

/* The block searches, for tests and tools: n elements of src (a multiple
 * of t's block) into dst of type t (Q8_0, Q4_0, Q4_K), minimising
 * Σ imp[i mod cols]·(x − x̂)² (imp NULL: round to nearest, as the type's
 * from_f32). cols: the row length imp describes. */
void nx_quantize_weighted(nx_dtype t, void *dst, const float *src, int64_t n, int cols, const float *imp);

#endif
