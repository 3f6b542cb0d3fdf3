/* gguf.h — GGUF, the single-file model format of llama.cpp / ggml: the
 * file format itself (a validating, memory-mapped reader and an atomic
 * writer), the Llama-family mapping between a GGUF and an nx_model
 * (tensor names, hyper-parameter keys, the q/k row permutation), and the
 * tokenizer metadata llama.cpp reads (tokenizer.ggml.*).
 *
 * The format, version 3, all little-endian (learned from ggml's
 * docs/gguf.md and gguf.cpp; the code here is our own):
 *
 *   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
 *   n_kv      × { str key, u32 value type, value }
 *   n_tensors × { str name, u32 n_dims (1..4), u64 ne[n_dims], u32 ggml type, u64 offset }
 *   zero padding to the alignment (key general.alignment, a u32 power of
 *   two; 32 when absent), then the data section: each tensor at
 *   data start + offset, offsets multiples of the alignment.
 *
 *   str   = u64 byte length + bytes (UTF-8, no terminating NUL)
 *   value = one of 13 types: u8 i8 u16 i16 u32 i32 f32 bool str u64 i64
 *           f64, or an array: u32 element type, u64 count, the elements
 *           (arrays of arrays are refused, as llama.cpp refuses them).
 *
 * ne[0] is the innermost (fastest) dimension, so a row-major (rows, cols)
 * matrix of Hugging Face has ne = {cols, rows}. Tensor types are ggml's
 * (F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, BF16 = 30, ...): the
 * one table in gguf.c gives each its block size and bytes per block, so
 * that the reader can validate any file, and its nx_dtype where nexus can
 * hold it.
 *
 * The reader trusts nothing: every count, length and offset is checked
 * against the bytes that are there (no allocation is sized by an unchecked
 * count), tensors must lie inside the file without overlapping, and every
 * error names the file and the key, tensor or byte offset. */
#ifndef NEXUS_GGUF_H
#define NEXUS_GGUF_H

#include "nexus/model.h"
#include "nexus/tokenizer.h"

/* ---- the file format ------------------------------------------------------- */

typedef enum nx_gguf_type {
    NX_GGUF_U8 = 0, NX_GGUF_I8 = 1, NX_GGUF_U16 = 2, NX_GGUF_I16 = 3, NX_GGUF_U32 = 4, NX_GGUF_I32 = 5,
    NX_GGUF_F32 = 6, NX_GGUF_BOOL = 7, NX_GGUF_STRING = 8, NX_GGUF_ARRAY = 9, NX_GGUF_U64 = 10,
    NX_GGUF_I64 = 11, NX_GGUF_F64 = 12, NX_GGUF_TYPE_COUNT
} nx_gguf_type;

#define NX_GGUF_MAX_DIMS 4
#define NX_GGUF_DEFAULT_ALIGNMENT 32
#define NX_GGUF_MAX_NAME 63 /* bytes of a tensor name llama.cpp accepts (GGML_MAX_NAME − 1) */

/* "u32", "string", "array", ...; "?" for an id outside the enum. */
const char *nx_gguf_type_name(uint32_t t);

/* A string inside a file or a caller's buffer: not NUL-terminated. */
typedef struct nx_gguf_str {
    const char *s;
    uint64_t len;
} nx_gguf_str;

/* A metadata value. Scalars have n = 1. Numbers and booleans are their
 * little-endian bytes at data (possibly unaligned: read them with the
 * accessors below); strings are str[0] (a scalar) or str[0..n) (an array
 * of strings, elem STRING). */
typedef struct nx_gguf_value {
    nx_gguf_type type;   /* a scalar type, or NX_GGUF_ARRAY */
    nx_gguf_type elem;   /* arrays: the element type (never ARRAY); scalars: == type */
    uint64_t n;
    const void *data;    /* numeric and bool values (n elements) */
    nx_gguf_str *str;    /* string values (n of them) */
} nx_gguf_value;

/* Element i of a numeric or bool value as a signed / floating number
 * (u64 above INT64_MAX clamps). Asserts the type and i < n. */
int64_t nx_gguf_value_int(const nx_gguf_value *v, uint64_t i);
double nx_gguf_value_f64(const nx_gguf_value *v, uint64_t i);

typedef struct nx_gguf_kv {
    char *key;           /* malloc'd, NUL-terminated */
    nx_gguf_value v;
} nx_gguf_kv;

typedef struct nx_gguf_tensor {
    char *name;          /* malloc'd, NUL-terminated */
    int ndim;
    int64_t ne[NX_GGUF_MAX_DIMS]; /* ne[0] innermost; 1 past ndim */
    uint32_t type;       /* ggml type id */
    uint64_t offset;     /* from the start of the data section */
    size_t nbytes;
    const void *data;    /* into the file */
} nx_gguf_tensor;

typedef struct nx_gguf {
    char *path;          /* labels errors (malloc'd) */
    const uint8_t *base; /* the file's bytes (mapped by nx_gguf_open) */
    size_t size;
    bool mapped;
    uint32_t version;    /* 2 or 3 (the same layout for little-endian files) */
    uint32_t alignment;
    size_t data_start;   /* byte offset of the data section */
    nx_gguf_kv *kv;
    int nkv;
    nx_gguf_tensor *t;   /* in file order */
    int nt;
} nx_gguf;

/* Parses and validates a whole GGUF held in buf[0..size) (which must stay
 * valid while g is used; nothing is copied but names). name labels errors.
 * On error g is left empty (nothing to close). Used by nx_gguf_open and by
 * the fuzzer. */
int nx_gguf_parse(nx_gguf *g, const void *buf, size_t size, const char *name, nx_err *err);
/* Memory-maps path read-only and parses it. Tensor data and string values
 * point into the mapping until nx_gguf_close. */
int nx_gguf_open(nx_gguf *g, const char *path, nx_err *err);
/* Frees everything and unmaps; g is left empty. Safe on an empty g. */
void nx_gguf_close(nx_gguf *g);
/* The pair or tensor of that name, or NULL. */
const nx_gguf_kv *nx_gguf_find(const nx_gguf *g, const char *key);
const nx_gguf_tensor *nx_gguf_find_tensor(const nx_gguf *g, const char *name);

/* Typed look-ups whose errors name the file and the key. Integers accept
 * any integer type whose value fits [lo, hi]; floats accept f32 or f64;
 * strings are returned as views into the file. `required` false: an absent
 * key leaves *out untouched and returns NX_OK. */
int nx_gguf_get_int(const nx_gguf *g, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                    nx_err *err);
int nx_gguf_get_f64(const nx_gguf *g, const char *key, bool required, double *out, nx_err *err);
int nx_gguf_get_bool(const nx_gguf *g, const char *key, bool required, bool *out, nx_err *err);
int nx_gguf_get_str(const nx_gguf *g, const char *key, bool required, nx_gguf_str *out, nx_err *err);
/* An array of elem (any integer type when elem is I64, f32 or f64 when elem
 * is F64) with at least min_n elements. */
int nx_gguf_get_array(const nx_gguf *g, const char *key, nx_gguf_type elem, uint64_t min_n,
                      const nx_gguf_value **out, nx_err *err);

/* ---- tensor types ---------------------------------------------------------
 * One row per ggml type this table knows: block size and bytes per block,
 * so that any file can be validated. The nx_dtype nexus holds a ggml type
 * as is the weight type of the same name in core's traits table (core.h)
 * with the same block and block bytes: adding a block type to core makes
 * it readable and writable here. */
typedef struct nx_ggml_type {
    uint32_t id;
    const char *name;    /* "F32", "Q8_0", "Q4_K", ... */
    int block;
    size_t block_bytes;
} nx_ggml_type;

/* NULL for an id the table does not know. */
const nx_ggml_type *nx_ggml_type_info(uint32_t id);
/* The nx_dtype that holds ggml type id, or -1 when nexus has none. */
int nx_ggml_dtype(uint32_t id);
/* The ggml id of weight dtype t; NX_ERR when t has no GGUF form. */
int nx_ggml_type_of(nx_dtype t, uint32_t *id);
/* "F32, F16, BF16, ..." — the ggml types nexus holds, for messages. */
void nx_ggml_readable_types(char *buf, size_t n);
/* NX_OK and *out when nexus can hold tensor t's type, else an error
 * "FILE: tensor NAME: unsupported tensor type Q5_K; this nexus reads F32,
 * F16, BF16 (...)". */
int nx_gguf_tensor_dtype(const nx_gguf *g, const nx_gguf_tensor *t, nx_dtype *out, nx_err *err);

/* ---- writing ----------------------------------------------------------------
 * Collect pairs and tensors, then write once:
 *
 *   nx_gguf_writer *w = nx_gguf_writer_new();
 *   nx_gguf_set_str(w, "general.architecture", "llama");
 *   nx_gguf_set_u32(w, "llama.block_count", 8);
 *   nx_gguf_add_tensor(w, "token_embd.weight", 30, 2, (int64_t[]){384, 8192}, data);
 *   int rc = nx_gguf_write(w, "model.gguf", err);
 *   nx_gguf_writer_free(w);
 *
 * Setters copy their values; a key set twice keeps its first position and
 * the last value. Tensor data is NOT copied: it must stay valid until
 * nx_gguf_write returns. Pairs and tensors are written in the order they
 * were first given, each tensor padded to the alignment (general.alignment
 * when set as a u32, else 32), so the same calls give the same bytes. The
 * file is written atomically (fsutil): on any error nothing is left at
 * PATH or PATH.tmp. */
typedef struct nx_gguf_writer nx_gguf_writer;

nx_gguf_writer *nx_gguf_writer_new(void);
void nx_gguf_writer_free(nx_gguf_writer *w);
/* Any value (v's arrays and strings are copied). */
void nx_gguf_set(nx_gguf_writer *w, const char *key, const nx_gguf_value *v);
void nx_gguf_set_u32(nx_gguf_writer *w, const char *key, uint32_t x);
void nx_gguf_set_i32(nx_gguf_writer *w, const char *key, int32_t x);
void nx_gguf_set_f32(nx_gguf_writer *w, const char *key, float x);
void nx_gguf_set_bool(nx_gguf_writer *w, const char *key, bool x);
void nx_gguf_set_str(nx_gguf_writer *w, const char *key, const char *s);
/* An array of n numbers of type elem (host order = little-endian). */
void nx_gguf_set_array(nx_gguf_writer *w, const char *key, nx_gguf_type elem, const void *data, uint64_t n);
void nx_gguf_set_str_array(nx_gguf_writer *w, const char *key, const char *const *s, uint64_t n);
/* Removes key if it was set. */
void nx_gguf_unset(nx_gguf_writer *w, const char *key);
/* A tensor of ggml type `type` with ne[0..ndim) (ne[0] innermost), its
 * nx_row_bytes-packed data at data. Checked by nx_gguf_write. */
void nx_gguf_add_tensor(nx_gguf_writer *w, const char *name, uint32_t type, int ndim, const int64_t *ne,
                        const void *data);
/* Validates (keys non-empty UTF-8, names unique and at most
 * NX_GGUF_MAX_NAME bytes, known types, rows a whole number of blocks, a
 * power-of-two alignment) and writes path atomically. */
int nx_gguf_write(const nx_gguf_writer *w, const char *path, nx_err *err);

/* ---- Llama-family models -----------------------------------------------------
 * Architectures: "llama" (nexus llama and mistral) and "qwen2". Tensor
 * names, Hugging Face → GGUF:
 *   model.embed_tokens.weight                   token_embd.weight
 *   model.layers.N.input_layernorm.weight       blk.N.attn_norm.weight
 *   model.layers.N.self_attn.{q,k,v,o}_proj.*   blk.N.attn_{q,k,v,output}.*
 *   model.layers.N.post_attention_layernorm.*   blk.N.ffn_norm.weight
 *   model.layers.N.mlp.{gate,up,down}_proj.*    blk.N.ffn_{gate,up,down}.weight
 *   model.norm.weight                           output_norm.weight
 *   lm_head.weight                              output.weight (absent when tied)
 * For "llama", llama.cpp's converter permutes the rows of q_proj and k_proj
 * (weights and biases) within each head from Hugging Face's rotate-half
 * RoPE layout to the interleaved layout ggml's RoPE uses; reading undoes it
 * (nx_gguf_permute_qk). */

/* The GGUF name of a Hugging Face tensor name (buf of n bytes); NX_ERR
 * when it has none. */
int nx_gguf_name_of(const char *hf_name, char *buf, size_t n);
/* Rows of a (rows, row_bytes) matrix (or a bias: row_bytes = 4) regrouped
 * per head of rows/heads rows: to_gguf true applies llama.cpp's permute
 * (row h·HS + 2i + j ← h·HS + j·HS/2 + i), false undoes it. dst and src
 * must not overlap. */
void nx_gguf_permute_qk(void *dst, const void *src, int64_t rows, size_t row_bytes, int heads, bool to_gguf);

/* The model config a GGUF describes ({arch}.* keys; tied from the absence
 * of output.weight, biases from the presence of blk.0.attn_{q,output}.bias;
 * bos/eos from tokenizer.ggml.*). Refuses what nexus cannot run (rope
 * scaling, partial rotary dims, other architectures) naming the key. */
int nx_gguf_model_config(const nx_gguf *g, nx_model_config *cfg, nx_err *err);
/* Config + every tensor checked (names, shapes, types) and loaded into a
 * model allocated here with matrices held as hold on be (F32 / F16 / BF16
 * tensors converted as nx_model_set does; q/k un-permuted). On error *m is
 * zeroed and err names the file and tensor. */
int nx_gguf_load_model(const nx_gguf *g, nx_model *m, nx_dtype hold, nx_backend *be, nx_err *err);

/* Export options. */
typedef struct nx_gguf_export {
    nx_dtype dtype;          /* matrices and embeddings: any weight type with a GGUF id; 1-D tensors stay F32 */
    bool as_held;            /* instead: each matrix in the type m holds it in (its bytes, copied) */
    const char *name;        /* general.name, or NULL */
    /* tokenizer metadata, one of: */
    const nx_tokenizer *tok; /* + tok_config (the tokenizer_config.json text, or NULL) */
    const char *tok_config;
    const nx_gguf *tok_from; /* copy every tokenizer.* pair of this GGUF */
} nx_gguf_export;
/* Writes m (any weight types, any backend) as a GGUF at path, atomically:
 * general.* and {arch}.* keys as llama.cpp's converter writes them, the
 * tokenizer metadata, tensors in Hugging Face name order with q/k rows
 * permuted for "llama". A matrix held in the type it is written in is
 * copied byte for byte; otherwise it is widened to f32 and rounded with
 * the type's from_f32 (core's traits). An error, before anything is
 * written, names a tensor whose type has no GGUF id or whose rows are not
 * whole blocks of it. */
int nx_gguf_save_model(const char *path, const nx_model *m, const nx_gguf_export *o, nx_err *err);

/* ---- tokenizer metadata ------------------------------------------------------
 * tokenizer.ggml.model "gpt2" (byte-level BPE: tokens, token_type, merges,
 * pre = "llama-bpe" | "gpt-2" | "qwen2" naming the pre-tokenizer regex) or
 * "llama" (SentencePiece-style BPE with byte fallback: tokens, scores,
 * token_type), special ids, add_bos/add_eos, chat_template. */

/* Adds the tokenizer.* pairs that describe tok to w, for a model of
 * n_vocab tokens (ids the tokenizer lacks become "[PADn]", type UNUSED, as
 * the converter writes them). config_json is the tokenizer_config.json text
 * or NULL: its chat_template, add_bos_token and add_eos_token are written
 * when present, as llama.cpp's converter does; otherwise add_bos_token is
 * written true when the tokenizer's post-processor adds BOS (likewise EOS).
 * A tokenizer llama.cpp cannot reproduce (a pre-tokenizer regex without a
 * llama.cpp name, WordPiece-style prefixes) is an error saying so. */
int nx_gguf_put_tokenizer(nx_gguf_writer *w, const nx_tokenizer *tok, int32_t n_vocab, const char *config_json,
                          nx_err *err);
/* The tokenizer a GGUF describes, as the tokenizer.json and
 * tokenizer_config.json texts (malloc'd) nexus loads and that distill
 * writes beside a student: the same token ids llama.cpp gives (its
 * pre-tokenizer regex, ignore_merges for llama-bpe, BOS added when llama.cpp
 * adds it; for "llama" the merges are derived from the scores as
 * transformers derives them from a SentencePiece model). */
int nx_gguf_tokenizer_json(const nx_gguf *g, char **tokenizer_json, char **config_json, nx_err *err);
/* The same, loaded. */
int nx_gguf_load_tokenizer(const nx_gguf *g, nx_tokenizer **tok, nx_err *err);

#endif
