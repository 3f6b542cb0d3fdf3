/* tokenizer.h — Hugging Face `tokenizer.json` tokenizers, encoded and decoded
 * exactly as the Rust `tokenizers` library does for the supported subset:
 *
 *   model          BPE (ranked merges in either JSON form, ignore_merges,
 *                  byte_fallback, fuse_unk, unk_token, continuing_subword_prefix,
 *                  end_of_word_suffix)
 *   normalizer     Prepend, Replace, Strip, Sequence (or none)
 *   pre_tokenizer  ByteLevel, Split (PCRE2 regex or literal string, every
 *                  behavior, invert), Metaspace, Sequence (or none)
 *   post_processor TemplateProcessing, ByteLevel, RobertaProcessing,
 *                  BertProcessing, Sequence (or none)
 *   decoder        ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
 *                  Sequence (or none: tokens joined by spaces)
 *   added tokens   split out before the normalizer (normalized=false) or after
 *                  it (normalized=true), with single_word, lstrip and rstrip.
 * Anything else (WordPiece, Unigram, NFC, ...) is rejected at load with an
 * error naming the component: never a silent approximation. docs/TOKENIZER.md
 * has the details, including where our regex engine (PCRE2) is made to agree
 * with the Oniguruma engine that `tokenizers` uses.
 *
 * Input text must be valid UTF-8 (Rust's &str guarantees it for HF): invalid
 * bytes are an error naming the byte offset, never replaced silently.
 *
 * The implementation is src/io/tokenizer/, one file per component;
 * src/io/tokenizer/internal.h says which file does what. */
#ifndef NEXUS_TOKENIZER_H
#define NEXUS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nexus/core.h"

typedef struct nx_tokenizer nx_tokenizer;

/* Loads a tokenizer. path_or_dir is either a tokenizer.json file or a
 * directory holding tokenizer.json. A tokenizer_config.json in the same
 * directory is read when present (bos_token, eos_token, add_bos_token,
 * add_eos_token). On success *out owns everything; free it with
 * nx_tokenizer_free. On failure returns NX_ERR, *out is NULL and err names
 * the file and the key (e.g. "model.merges[12]") that is wrong, or the
 * component type that is not supported. */
int nx_tokenizer_load(nx_tokenizer **out, const char *path_or_dir, nx_err *err);
/* Same, from a tokenizer.json text in memory (no tokenizer_config.json);
 * `name` (NULL: "tokenizer.json") is used in error messages. */
int nx_tokenizer_load_json(nx_tokenizer **out, const char *json, size_t len, const char *name,
                           nx_err *err);
void nx_tokenizer_free(nx_tokenizer *t); /* NULL is fine */

/* Encodes len bytes of UTF-8 text. add_special: add the post-processor's
 * tokens (BOS/EOS) — special tokens written literally in the text are always
 * recognised, as in HF. On success *ids is a malloc'd array of *n ids (free
 * it; it may be non-NULL with *n == 0). Invalid UTF-8 returns NX_ERR naming
 * the byte offset. Thread-safe: any number of threads may encode with the
 * same tokenizer at once (the word cache is internally locked). */
int nx_tokenizer_encode(const nx_tokenizer *t, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n, nx_err *err);
/* Appends the encoding to a caller-owned growable array (*ids, *n, *cap;
 * NULL, 0, 0 to start), reallocating *ids as needed: for bulk tokenization
 * without a malloc per document. On error *n is back to its value before
 * the call (*ids may have moved and stays the caller's to free). */
int nx_tokenizer_encode_append(const nx_tokenizer *t, const char *text, size_t len,
                               bool add_special, int32_t **ids, size_t *n, size_t *cap,
                               nx_err *err);

/* Decodes ids through the decoder chain into a malloc'd NUL-terminated
 * string *out (free it). skip_special drops special added tokens. An id
 * outside [0, vocab_size) or with no token is an error naming its position
 * (HF would drop it silently). Invalid UTF-8 produced by byte tokens becomes
 * U+FFFD exactly as HF does (String::from_utf8_lossy). Thread-safe. */
int nx_tokenizer_decode(const nx_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        char **out, nx_err *err);

/* max id + 1 over the model vocabulary and the added tokens: the number of
 * rows an embedding table needs. */
int32_t nx_tokenizer_vocab_size(const nx_tokenizer *t);
/* -1 when the token is unknown. Looks at added tokens, then the model. */
int32_t nx_tokenizer_token_to_id(const nx_tokenizer *t, const char *token);
/* NULL when id has no token. The string lives as long as the tokenizer. */
const char *nx_tokenizer_id_to_token(const nx_tokenizer *t, int32_t id);
bool nx_tokenizer_is_special(const nx_tokenizer *t, int32_t id);
/* BOS/EOS ids, -1 when unknown. From tokenizer_config.json's bos_token /
 * eos_token when present, else the first / last token the post-processor
 * adds. */
int32_t nx_tokenizer_bos_id(const nx_tokenizer *t);
int32_t nx_tokenizer_eos_id(const nx_tokenizer *t);
/* 64-bit FNV-1a (nx_fnv1a) over the merge list in order, then over (id,
 * token) for every id: two tokenizers that agree here map text to the same
 * ids. Token shards record it: changing how it is computed invalidates them. */
uint64_t nx_tokenizer_fingerprint(const nx_tokenizer *t);

/* Same as nx_tokenizer_load_json, with the text of a tokenizer_config.json
 * beside it (config NULL: none): what a tokenizer rebuilt from another
 * format (GGUF metadata) is loaded through. */
int nx_tokenizer_load_texts(nx_tokenizer **out, const char *json, size_t len, const char *config,
                            size_t config_len, const char *name, nx_err *err);

/* ---- for exporters (GGUF's tokenizer metadata) ------------------------------
 * What another format needs to describe the tokenizer: its family, the
 * pre-tokenizer's regex, the merges in rank order, which ids are added
 * tokens. The family is decided from the components:
 *   BYTELEVEL  GPT-2 byte-level BPE: a ByteLevel pre-tokenizer (without
 *              add_prefix_space), alone or after one Split (Isolated, not
 *              inverted); no normalizer; no byte fallback;
 *   SPM        SentencePiece-style BPE: byte_fallback, no pre-tokenizer,
 *              a normalizer of Replace " " → "▁" (after a Prepend "▁" or not);
 *   OTHER      anything else. */
typedef enum nx_tokenizer_family { NX_TOK_OTHER, NX_TOK_BYTELEVEL, NX_TOK_SPM } nx_tokenizer_family;

typedef struct nx_tokenizer_info {
    nx_tokenizer_family family;
    const char *split_regex;  /* BYTELEVEL: the Split's regex as tokenizer.json writes it, or NULL */
    bool bytelevel_regex;     /* BYTELEVEL: the ByteLevel stage splits with GPT-2's regex (use_regex) */
    bool add_prefix_space;    /* SPM: "▁" is prepended to the text */
    bool ignore_merges;
    int32_t unk_id;           /* -1: none */
    bool adds_bos, adds_eos;  /* encode with add_special puts BOS first / EOS last */
    int32_t n_merges;
} nx_tokenizer_info;

void nx_tokenizer_describe(const nx_tokenizer *t, nx_tokenizer_info *info);
/* The merge of rank r (0 <= r < n_merges) as the ids of its two tokens. */
void nx_tokenizer_merge(const nx_tokenizer *t, int32_t r, int32_t *left, int32_t *right);
/* true when id is one of tokenizer.json's added_tokens. */
bool nx_tokenizer_is_added(const nx_tokenizer *t, int32_t id);

#endif
