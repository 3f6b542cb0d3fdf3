/* hf.h — Hugging Face model directories in and out: config.json (cJSON),
 * model.safetensors (or sharded), tokenizer files copied alongside.
 * This adapter turns files into a validated nx_model; the model module
 * itself knows nothing of JSON. */
#ifndef NEXUS_HF_H
#define NEXUS_HF_H

#include "nexus/model.h"
#include "nexus/safetensors.h"

/* config.json's name of a weight dtype: "float32", "bfloat16", "float16"
 * (any other dtype reads as "float32"). */
const char *nx_hf_dtype_name(nx_dtype t);
/* Read DIR/config.json. Accepts model_type llama, qwen2, qwen3, mistral;
 * rope_theta at top level (transformers 4) or in rope_parameters
 * (transformers 5); rope scaling default, linear, dynamic, yarn, llama3
 * (rope_parameters or rope_scaling); sliding windows (sliding_window,
 * use_sliding_window, max_window_layers, layer_types); head_dim;
 * tie_word_embeddings; attention_bias; rms_norm_eps. Rejects what it cannot
 * run (other activations and rope types, partial rotary factors, mlp_bias)
 * naming the key. */
int nx_hf_load_config(const char *dir, nx_model_config *cfg, nx_err *err);
/* The same for a config file given by its path (errors name that path). */
int nx_hf_load_config_file(const char *path, nx_model_config *cfg, nx_err *err);
/* The same from config.json text in memory (len bytes); path names it in
 * messages. */
int nx_hf_parse_config(const char *text, size_t len, const char *path, nx_model_config *cfg, nx_err *err);
/* Checks an open checkpoint against cfg: every tensor of nx_model_params()
 * present with its exact shape and a float dtype (F32, F16, BF16); nothing
 * else except '*.rotary_emb.inv_freq' buffers and, when tied, an
 * lm_head.weight (nx_hf_load_model checks that it equals the embeddings).
 * Errors name the file and the tensor. */
int nx_hf_check_tensors(const nx_model_config *cfg, const nx_safetensors *st, nx_err *err);
/* Config + weights (f32, f16 or bf16 on disk) widened to f32 into a model
 * allocated here (free with nx_model_free). Checks that every expected
 * tensor is present with the right shape and nothing else (see
 * nx_hf_check_tensors); a tied model's lm_head.weight, if present, must
 * equal the embeddings bit for bit. On error *m is zeroed. */
int nx_hf_load_model(const char *dir, nx_model *m, nx_err *err);
/* The same, with matrices held as hold (F32, BF16 or F16: a checkpoint in
 * that type is kept bit for bit, others widened exactly or rounded to
 * nearest even), on the CPU backend or on be. A quantized directory
 * (qstore.h) loads with its own stored types whatever hold says. */
int nx_hf_load_model_as(const char *dir, nx_model *m, nx_dtype hold, nx_err *err);
int nx_hf_load_model_on(const char *dir, nx_model *m, nx_dtype hold, nx_backend *be, nx_err *err);
/* Write DIR/config.json and DIR/model.safetensors (weights in dtype F32,
 * BF16 or F16, rounded to nearest even, from a model held in any type on
 * any backend), creating DIR and its parents.
 * Atomic per file. Tensors are sorted by name as the HF library sorts them,
 * so re-saving a loaded checkpoint in its own dtype gives the same bytes. */
int nx_hf_save_model(const char *dir, const nx_model *m, nx_dtype dtype, nx_err *err);
/* The config.json text nx_hf_save_model writes (malloc'd, caller frees):
 * rope_theta both top level (transformers 4) and in rope_parameters
 * (transformers 5), dtype and torch_dtype both naming dtype. */
char *nx_hf_config_json(const nx_model_config *cfg, nx_dtype dtype);
/* The sparsity mask of a pruned model (src/io/mask.c): DIR/NX_HF_MASK_FILE,
 * BOOL tensors named like the weights they mask, true = kept; weights
 * without one are all kept. In memory: one byte per float of the f32
 * parameter layout of cfg (nx_model_numel bytes), 1 kept, 0 pruned. */
#define NX_HF_MASK_FILE "sparsity_mask.safetensors"
/* Writes the tensors of cfg that have a pruned entry (atomically). */
int nx_hf_save_mask(const char *dir, const nx_model_config *cfg, const uint8_t *mask, nx_err *err);
/* Fills mask from DIR's mask file; all ones and *found false when there is
 * none. A tensor that names no weight of cfg, or has another shape or
 * dtype, is an error naming the file and the tensor. */
int nx_hf_load_mask(const char *dir, const nx_model_config *cfg, uint8_t *mask, bool *found, nx_err *err);
/* Copy tokenizer.json, tokenizer_config.json, special_tokens_map.json and
 * generation_config.json where they exist in src. */
int nx_hf_copy_tokenizer(const char *src_dir, const char *dst_dir, nx_err *err);

#endif
