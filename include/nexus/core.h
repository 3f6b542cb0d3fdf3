/* core.h — the few things every nexus module shares: error reporting,
 * always-on assertions, dtypes, tensor views, arenas and the seeded RNG.
 *
 * Two kinds of error (STYLE.md). Anything that comes from outside (files,
 * configs, user input) returns NX_ERR and fills a caller-supplied nx_err
 * whose message names the file, key, line or byte and says what to do.
 * Broken internal invariants hit NX_ASSERT, which is compiled in always. */
#ifndef NEXUS_CORE_H
#define NEXUS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NX_VERSION "0.1.0"

enum { NX_OK = 0, NX_ERR = -1 };

typedef struct nx_err {
    char msg[1024];
} nx_err;

/* Fill err (may be NULL) with a printf-style message; returns NX_ERR so that
 * callers can write `return nx_fail(err, "...", ...);`. */
int nx_fail(nx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix an existing message: "prefix: old message". Returns NX_ERR. */
int nx_fail_prefix(nx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void nx_assert_fail(const char *expr, const char *file, int line, const char *msg)
    __attribute__((noreturn));
#define NX_ASSERT(c) ((c) ? (void)0 : nx_assert_fail(#c, __FILE__, __LINE__, NULL))
#define NX_ASSERTM(c, m) ((c) ? (void)0 : nx_assert_fail(#c, __FILE__, __LINE__, (m)))

/* Out of memory, handled one way: host allocations of set-up size
 * (tables, names, small buffers) use these, which exit with a message
 * naming the size; memory that scales with the model or the batch comes
 * from a backend (nx_backend_alloc, nx_arena_init), whose failure is an
 * error the caller reports with what it was for and how large. */
void *nx_xmalloc(size_t n);
void *nx_xcalloc(size_t n, size_t size);
void *nx_aligned_alloc(size_t n); /* 64-byte aligned, zeroed; free with free() */

/* ---- element and weight types -----------------------------------------
 * One enum names every type a file or a tensor can hold; one traits row
 * per type says how it is stored (learned from ggml's type traits). Plain
 * types have blocks of one element; block types (int8 and 4-bit weights,
 * added by the quantizer) store `block` elements in `block_bytes` bytes,
 * with the layout GGUF uses, so that export is a copy. */
typedef enum nx_dtype {
    NX_F32, NX_F16, NX_BF16, NX_F64, NX_I8, NX_U8, NX_I16, NX_U16,
    NX_I32, NX_U32, NX_I64, NX_U64, NX_BOOL,
    NX_Q8_0, NX_Q4_0, NX_Q4_K, NX_IQ4_NL, NX_Q5_0, /* block types: layouts in blocks.h */
    NX_DTYPE_COUNT
} nx_dtype;

typedef struct nx_type_traits {
    const char *name;        /* "F32", "BF16", ... (safetensors spelling; GGUF's for block types) */
    int block;               /* elements per block (1 for plain types) */
    size_t block_bytes;      /* bytes per block */
    bool weight;             /* may hold model weights (F32, F16, BF16, block types) */
    /* Reference conversions of n elements (n a multiple of block): exact
     * widening to f32, and rounding to nearest (even) from f32. NULL for
     * types that hold no weights. */
    void (*to_f32)(float *dst, const void *src, int64_t n);
    void (*from_f32)(void *dst, const float *src, int64_t n);
} nx_type_traits;

const nx_type_traits *nx_type(nx_dtype t);
size_t nx_dtype_size(nx_dtype t);        /* bytes of one element; asserts a plain type */
const char *nx_dtype_name(nx_dtype t);
int nx_dtype_from_name(const char *s, nx_dtype *out); /* NX_OK or NX_ERR */
/* Bytes of n elements of t (n a multiple of the block, asserted). */
size_t nx_row_bytes(nx_dtype t, int64_t n);
/* dst[0..n) of type dt from src of type st (both weight types or F64 as a
 * source): a copy when the types agree, else widened to f32 and rounded. */
void nx_convert(void *dst, nx_dtype dt, const void *src, nx_dtype st, int64_t n);

float nx_bf16_to_f32(uint16_t h);
uint16_t nx_f32_to_bf16(float f);        /* round to nearest even, NaN kept */
float nx_f16_to_f32(uint16_t h);
uint16_t nx_f32_to_f16(float f);         /* round to nearest even */
/* Widen n elements of src (F32, F16, BF16 or F64) to f32. */
void nx_convert_to_f32(float *dst, const void *src, nx_dtype t, size_t n);

#define NX_MAX_DIMS 4  /* dimensions of a tensor in a file */

/* ---- token views ----------------------------------------------------------
 * A read-only run of token ids as a shard or an in-memory stream holds
 * them: n little-endian ids of width 2 or 4 bytes. */
typedef struct nx_tokens {
    const void *data;
    uint32_t width;        /* 2 or 4 */
    uint64_t n;
} nx_tokens;

static inline int32_t nx_tokens_at(nx_tokens t, uint64_t i) {
    return t.width == 2 ? (int32_t)((const uint16_t *)t.data)[i] : ((const int32_t *)t.data)[i];
}

/* ---- arenas -------------------------------------------------------------
 * Memory is planned up front: a layout function runs once against a
 * counting arena (base == NULL) to learn the size, then against a real one
 * that a backend allocated (nx_arena_init in backend.h). Every allocation
 * is 64-byte aligned. Nothing is freed individually. */
struct nx_backend;
typedef struct nx_arena {
    char *base;      /* NULL: counting only */
    size_t size;     /* capacity (real arena) */
    size_t used;
    struct nx_backend *be; /* owner of base */
} nx_arena;

nx_arena nx_arena_counting(void);
void *nx_arena_alloc(nx_arena *a, size_t bytes);          /* NULL when counting */
float *nx_arena_floats(nx_arena *a, size_t n);

/* ---- random numbers ------------------------------------------------------
 * xoshiro256** seeded through splitmix64. The whole state is the struct, so
 * a checkpoint saves it by value and a resumed run continues bit for bit. */
typedef struct nx_rng {
    uint64_t s[4];
} nx_rng;

void nx_rng_seed(nx_rng *r, uint64_t seed);
uint64_t nx_rng_u64(nx_rng *r);
uint64_t nx_rng_below(nx_rng *r, uint64_t n);  /* uniform in [0, n), unbiased */
double nx_rng_uniform(nx_rng *r);              /* [0, 1) with 53 bits */
float nx_rng_normal(nx_rng *r);                /* N(0,1), Box–Muller */

/* ---- hashing --------------------------------------------------------------
 * 64-bit FNV-1a: the one non-cryptographic hash of nexus (config hashes,
 * tokenizer fingerprints, hash tables). Chain calls by passing the previous
 * result as h; start from NX_FNV_INIT. */
#define NX_FNV_INIT 0xcbf29ce484222325ULL
uint64_t nx_fnv1a(const void *p, size_t n, uint64_t h);

/* ---- misc ------------------------------------------------------------ */
double nx_now(void);             /* monotonic seconds */

/* A long operation reports how far it is: what it is doing and done of
 * total units (total 0: unknown), from the thread that runs it. A zeroed
 * struct reports nothing. The numeric modules call it; only app/ and cli/
 * turn it into something on the terminal. */
typedef struct nx_progress {
    void (*fn)(void *ctx, const char *what, int64_t done, int64_t total);
    void *ctx;
} nx_progress;
static inline void nx_progress_report(const nx_progress *p, const char *what, int64_t done, int64_t total) {
    if (p && p->fn) p->fn(p->ctx, what, done, total);
}
int nx_threads(void);            /* OpenMP threads in use */
/* Parallel sums that do not depend on the order the threads finish in: a
 * loop of `threads` threads (static schedule) puts each thread's partial
 * in part[omp_get_thread_num()] of a zeroed array on the caller's stack
 * (double part[threads]: nothing is allocated in a step), and
 * nx_parts_sum adds them in thread order. (OpenMP's reduction clause and a
 * critical section add them in the order the threads arrive: from 3
 * threads on, a sum that differs from run to run.) */
double nx_parts_sum(const double *part, int threads);

#endif
