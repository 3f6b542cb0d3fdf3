/* safetensors.h — read (memory-mapped) and write safetensors files.
 *
 * Format: u64 little-endian header length N, then N bytes of UTF-8 JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {str: str}}, then the data section. The reader
 * validates everything against the file: offsets in range, no overlap and
 * no gaps, end - begin == numel × dtype size, known dtypes, UTF-8, unique
 * names. Every error names the file and the tensor or byte. */
#ifndef NEXUS_SAFETENSORS_H
#define NEXUS_SAFETENSORS_H

#include "nexus/core.h"

typedef struct nx_st_tensor {
    char *name;
    nx_dtype dtype;
    int ndim;
    int64_t shape[NX_MAX_DIMS];
    const void *data;   /* into the mapping (NULL after parse-only) */
    size_t offset;      /* from the start of the data section */
    size_t nbytes;
    int file;           /* which shard */
} nx_st_tensor;

typedef struct nx_safetensors {
    nx_st_tensor *t;
    int n;
    int nfiles;
    void **maps;        /* [nfiles] */
    size_t *map_sizes;  /* [nfiles] */
    char **paths;       /* [nfiles] */
} nx_safetensors;

/* Parse a header buffer (the bytes after the 8-byte length) for a file
 * whose data section holds data_len bytes. fname only labels errors.
 * On success *out (malloc'd, names too) holds *n tensors sorted by offset;
 * free with nx_st_free_tensors. Used by the reader and the fuzzer. */
int nx_st_parse_header(const char *hdr, size_t hdr_len, size_t data_len, const char *fname,
                       nx_st_tensor **out, int *n, nx_err *err);
void nx_st_free_tensors(nx_st_tensor *t, int n);
/* Offset of the first byte of s[0..len) that is not well-formed UTF-8
 * (RFC 3629: no overlongs, surrogates or code points above U+10FFFF), or
 * len when all of it is. Shared with the other JSON readers of io/. */
size_t nx_st_utf8_invalid_at(const void *s, size_t len);

/* Open one .safetensors file: mmap it read-only and validate the header
 * against the file size. Tensor data pointers stay valid until
 * nx_st_close. On error *st is left empty (nothing to close) and err names
 * the file and the tensor or byte. */
int nx_st_open(nx_safetensors *st, const char *path, nx_err *err);
/* Open a model directory: the shards listed by model.safetensors.index.json
 * when it exists (each tensor must be in the shard the index names; a
 * tensor the index lists but its shard lacks, or one a shard holds but the
 * index does not list, is an error; shard names must be plain file names),
 * else model.safetensors. Same ownership and errors as nx_st_open. */
int nx_st_open_dir(nx_safetensors *st, const char *dir, nx_err *err);
/* The tensor called name, or NULL (linear search). */
const nx_st_tensor *nx_st_find(const nx_safetensors *st, const char *name);
/* Unmaps every file and frees everything; st is left empty. Safe on an
 * empty (zeroed) st. */
void nx_st_close(nx_safetensors *st);

typedef struct nx_st_entry {
    const char *name;
    nx_dtype dtype;          /* dtype of data as given */
    int ndim;
    int64_t shape[NX_MAX_DIMS];
    const void *data;
} nx_st_entry;

/* Write entries (in the given order) atomically: to PATH.tmp, fsync,
 * rename. Output is deterministic: the same entries give the same bytes.
 * Layout as the Hugging Face library writes it: compact JSON header with
 * "__metadata__": {"format": "pt"} first, padded with spaces to a multiple
 * of 8 bytes; data in entry order. Names must be unique, non-empty and not
 * "__metadata__"; on error nothing is left at PATH or PATH.tmp. */
int nx_st_write(const char *path, const nx_st_entry *e, int n, nx_err *err);

#endif
