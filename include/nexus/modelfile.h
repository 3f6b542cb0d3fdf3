/* modelfile.h — "a model" given by a path, whatever its format: a Hugging
 * Face model directory (config.json, safetensors, tokenizer files) or one
 * GGUF file (llama.cpp's format, with its tokenizer metadata). Commands
 * that take a model (generate, benchmark, info, distill's teacher.path) go
 * through these calls, so each accepts both; hf.h and gguf.h stay the
 * format-specific layers underneath. */
#ifndef NEXUS_MODELFILE_H
#define NEXUS_MODELFILE_H

#include "nexus/model.h"
#include "nexus/tokenizer.h"

/* true when path is a regular file that starts with the GGUF magic. */
bool nx_modelfile_is_gguf(const char *path);
/* The model's config (config.json, or a GGUF's metadata). */
int nx_modelfile_config(const char *path, nx_model_config *cfg, nx_err *err);
/* Weights into a model allocated here, matrices held as hold (F32, BF16,
 * F16) on be, and, when tok is not NULL, its tokenizer (*tok, free with
 * nx_tokenizer_free). Errors name the file and what is wrong; on error
 * nothing is left allocated (*m zeroed, *tok NULL). */
int nx_modelfile_load(const char *path, nx_dtype hold, nx_backend *be, nx_model *m, nx_tokenizer **tok,
                      nx_err *err);
/* The tokenizer alone. */
int nx_modelfile_tokenizer(const char *path, nx_tokenizer **tok, nx_err *err);
/* false when the model at path surely has no tokenizer: a directory
 * without tokenizer.json, a GGUF without tokenizer.ggml.model. (A GGUF that
 * does not parse counts as having one, so that loading it reports why.) */
bool nx_modelfile_has_tokenizer(const char *path);
/* The tokenizer files a Hugging Face directory needs, into dst_dir
 * (created): copied from a model directory (nx_hf_copy_tokenizer), or
 * tokenizer.json, tokenizer_config.json and generation_config.json (the
 * special ids) written from a GGUF's metadata. */
int nx_modelfile_copy_tokenizer(const char *src, const char *dst_dir, nx_err *err);
/* Bytes on disk: the GGUF file, or the directory's files. */
double nx_modelfile_disk_bytes(const char *path);

#endif
