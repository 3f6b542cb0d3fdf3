/* test_gguf.c — the GGUF reader, writer and Llama mapping, self-contained:
 *   - every value type written and read back, alignment honoured, the same
 *     calls giving the same bytes;
 *   - hand-made bad files (lying counts and lengths, unknown types, nested
 *     arrays, duplicate names, tensors past the end, misaligned or
 *     overlapping) and every truncation of a good file: an error naming the
 *     file and what is wrong, never a crash (ASan/UBSan in make sanitize);
 *   - atomic output: a refused write leaves nothing, not even PATH.tmp;
 *   - the tiny Llama fixture through GGUF (F32, BF16, F16) and back: the same
 *     tensors and logits, q/k rows permuted exactly as llama.cpp's converter
 *     permutes them; a tensor of a type nexus cannot hold, a missing or an
 *     extra tensor, rope scaling: clear errors;
 *   - tokenizer fixtures (GPT-2 byte-level, Llama-3 split + template, and
 *     SentencePiece-style) through GGUF metadata: the same ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/gguf.h"
#include "nexus/hf.h"
#include "nexus/modelfile.h"
#include "nxtest.h"

#define TINY "tests/fixtures/tiny-llama"

/* ---- a byte builder for hand-made files ------------------------------------ */

typedef struct { uint8_t b[16384]; size_t n; } raw;

static void r_put(raw *r, const void *p, size_t n) { memcpy(r->b + r->n, p, n), r->n += n; }
static void r_u32(raw *r, uint32_t x) { r_put(r, &x, 4); }
static void r_u64(raw *r, uint64_t x) { r_put(r, &x, 8); }
static void r_str(raw *r, const char *s) { r_u64(r, strlen(s)), r_put(r, s, strlen(s)); }
static void r_hdr(raw *r, uint32_t version, uint64_t nt, uint64_t nkv) {
    r->n = 0;
    r_put(r, "GGUF", 4), r_u32(r, version), r_u64(r, nt), r_u64(r, nkv);
}
static void r_kv_u32(raw *r, const char *k, uint32_t v) { r_str(r, k), r_u32(r, NX_GGUF_U32), r_u32(r, v); }
static void r_tensor(raw *r, const char *name, int nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    r_str(r, name), r_u32(r, (uint32_t)nd);
    for (int d = 0; d < nd; d++) r_u64(r, ne[d]);
    r_u32(r, type), r_u64(r, off);
}
static void r_pad(raw *r, size_t a, size_t data) {
    while (r->n % a) r->b[r->n++] = 0;
    memset(r->b + r->n, 0x5a, data), r->n += data;
}

/* NX_ERR with needle (and the file name) in the message. */
static void expect_bad(const raw *r, const char *needle, int line) {
    nx_gguf g;
    nx_err err = {{0}};
    int rc = nx_gguf_parse(&g, r->b, r->n, "bad.gguf", &err);
    if (rc == NX_OK) nx_gguf_close(&g);
    if (rc != NX_ERR || !strstr(err.msg, needle) || !strstr(err.msg, "bad.gguf")) {
        fprintf(stderr, "  line %d: want an error with '%s', got rc %d: %s\n", line, needle, rc, err.msg);
        nxt_failed_checks++;
    }
}
#define BAD(r, needle) expect_bad(r, needle, __LINE__)

TEST(bad_files_are_refused_with_a_reason) {
    raw r;
    uint64_t v16[1] = {16}, big3[3] = {1ull << 32, 1ull << 32, 1ull << 32};
    r_hdr(&r, 3, 0, 0), memcpy(r.b, "GGUX", 4);
    BAD(&r, "not a GGUF file");
    r_hdr(&r, 3, 0, 0), memcpy(r.b, "FUGG", 4);
    BAD(&r, "big-endian");
    r_hdr(&r, 1, 0, 0);
    BAD(&r, "version 1");
    r_hdr(&r, 3, 0, 1ull << 40);
    BAD(&r, "claims 1099511627776 key-value pairs");
    r_hdr(&r, 3, 1ull << 33, 0);
    BAD(&r, "claims 8589934592 tensors");
    r_hdr(&r, 3, 0, 1), r_u64(&r, 1ull << 40), r_pad(&r, 1, 32);
    BAD(&r, "past the end of the file");
    r_hdr(&r, 3, 0, 1), r_str(&r, ""), r_u32(&r, NX_GGUF_U8), r_pad(&r, 1, 32);
    BAD(&r, "must be 1 to 65535");
    r_hdr(&r, 3, 0, 1), r_str(&r, "a\xff"), r_u32(&r, NX_GGUF_U8), r_pad(&r, 1, 32);
    BAD(&r, "not valid UTF-8");
    r_hdr(&r, 3, 0, 1), r_str(&r, "k"), r_u32(&r, 13), r_pad(&r, 1, 32);
    BAD(&r, "value type 13");
    r_hdr(&r, 3, 0, 1), r_str(&r, "k"), r_u32(&r, NX_GGUF_STRING), r_u64(&r, 1ull << 50), r_pad(&r, 1, 32);
    BAD(&r, "past the end of the file");
    r_hdr(&r, 3, 0, 1), r_str(&r, "k"), r_u32(&r, NX_GGUF_ARRAY), r_u32(&r, NX_GGUF_U32), r_u64(&r, 1ull << 61);
    r_pad(&r, 1, 32);
    BAD(&r, "claims 2305843009213693952 elements of u32");
    r_hdr(&r, 3, 0, 1), r_str(&r, "k"), r_u32(&r, NX_GGUF_ARRAY), r_u32(&r, NX_GGUF_STRING), r_u64(&r, 1000);
    r_pad(&r, 1, 32);
    BAD(&r, "claims 1000 strings");
    r_hdr(&r, 3, 0, 1), r_str(&r, "k"), r_u32(&r, NX_GGUF_ARRAY), r_u32(&r, NX_GGUF_ARRAY), r_u64(&r, 0);
    r_pad(&r, 1, 32);
    BAD(&r, "array of arrays");
    r_hdr(&r, 3, 0, 2), r_kv_u32(&r, "k", 1), r_kv_u32(&r, "k", 2), r_pad(&r, 1, 32);
    BAD(&r, "key 'k' (byte 41) appears twice");
    r_hdr(&r, 3, 0, 1), r_str(&r, "general.alignment"), r_u32(&r, NX_GGUF_U64), r_u64(&r, 32), r_pad(&r, 1, 32);
    BAD(&r, "must be a u32");
    r_hdr(&r, 3, 0, 1), r_kv_u32(&r, "general.alignment", 48), r_pad(&r, 1, 32);
    BAD(&r, "power of two");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 5, (uint64_t[]){1, 1, 1, 1, 1}, 0, 0), r_pad(&r, 32, 64);
    BAD(&r, "has 5 dimensions");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 1, (uint64_t[]){0}, 0, 0), r_pad(&r, 32, 64);
    BAD(&r, "empty tensors");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 3, big3, 0, 0), r_pad(&r, 32, 64);
    BAD(&r, "overflows");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 1, v16, 99, 0), r_pad(&r, 32, 64);
    BAD(&r, "ggml type id 99");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 1, (uint64_t[]){33}, 8, 0), r_pad(&r, 32, 64);
    BAD(&r, "not a multiple of the 32 elements of a Q8_0 block");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 1, v16, 0, 32), r_pad(&r, 32, 64);
    BAD(&r, "tensor 't' (64 bytes at data offset 32");
    r_hdr(&r, 3, 1, 0), r_tensor(&r, "t", 1, v16, 0, 4), r_pad(&r, 32, 128);
    BAD(&r, "not a multiple of the alignment 32");
    r_hdr(&r, 3, 2, 0), r_tensor(&r, "a", 1, v16, 0, 0), r_tensor(&r, "b", 1, v16, 0, 32), r_pad(&r, 32, 128);
    BAD(&r, "tensors 'a' (data bytes 0 to 64) and 'b' (from 32) overlap");
    r_hdr(&r, 3, 2, 0), r_tensor(&r, "a", 1, v16, 0, 0), r_tensor(&r, "a", 1, v16, 0, 64), r_pad(&r, 32, 128);
    BAD(&r, "tensor 'a'");
    BAD(&r, "appears twice");
    /* the same layout without the lies parses */
    r_hdr(&r, 3, 2, 1), r_kv_u32(&r, "general.alignment", 64), r_tensor(&r, "a", 1, v16, 0, 0);
    r_tensor(&r, "b", 1, v16, 1, 64), r_pad(&r, 64, 96);
    nx_gguf g;
    nx_err err;
    CHECKF(nx_gguf_parse(&g, r.b, r.n, "good.gguf", &err) == NX_OK, "%s", err.msg);
    CHECK(g.nt == 2 && g.alignment == 64 && g.data_start % 64 == 0 && g.t[1].nbytes == 32);
    CHECK((const uint8_t *)g.t[1].data == r.b + g.data_start + 64);
    nx_gguf_close(&g);
}

/* ---- writing and reading back -------------------------------------------------- */

static nx_gguf_writer *every_type(void) {
    nx_gguf_writer *w = nx_gguf_writer_new();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 1ull << 63;
    int64_t i64 = -(1ll << 62);
    double f64 = -1.25e300;
    nx_gguf_value v = {.n = 1};
    struct { nx_gguf_type t; const void *p; const char *k; } sc[] = {
        {NX_GGUF_U8, &u8, "s.u8"}, {NX_GGUF_I8, &i8, "s.i8"}, {NX_GGUF_U16, &u16, "s.u16"},
        {NX_GGUF_I16, &i16, "s.i16"}, {NX_GGUF_U64, &u64, "s.u64"}, {NX_GGUF_I64, &i64, "s.i64"},
        {NX_GGUF_F64, &f64, "s.f64"}};
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        v.type = v.elem = sc[i].t, v.data = sc[i].p;
        nx_gguf_set(w, sc[i].k, &v);
    }
    nx_gguf_set_u32(w, "s.u32", 4000000000u);
    nx_gguf_set_i32(w, "s.i32", -2000000000);
    nx_gguf_set_f32(w, "s.f32", 0.1f);
    nx_gguf_set_bool(w, "s.bool", true);
    nx_gguf_set_str(w, "s.str", "h\xc3\xa9llo");
    nx_gguf_set_str(w, "s.empty", "");
    int16_t a16[3] = {-1, 2, -3};
    float af[2] = {1.5f, -2.5f};
    uint8_t ab[3] = {1, 0, 1};
    const char *as[3] = {"a", "", "\xe2\x96\x81x"};
    nx_gguf_set_array(w, "a.i16", NX_GGUF_I16, a16, 3);
    nx_gguf_set_array(w, "a.f32", NX_GGUF_F32, af, 2);
    nx_gguf_set_array(w, "a.bool", NX_GGUF_BOOL, ab, 3);
    nx_gguf_set_array(w, "a.empty", NX_GGUF_U64, NULL, 0);
    nx_gguf_set_str_array(w, "a.str", as, 3);
    nx_gguf_set_u32(w, "general.alignment", 64);
    nx_gguf_set_u32(w, "s.u32", 7); /* set twice: first position, last value */
    return w;
}

TEST(every_value_type_round_trips_and_output_is_deterministic) {
    nxt_tmp_make("ggw");
    nx_gguf_writer *w = every_type();
    static float t1[3 * 5];
    static uint16_t t2[64];
    static uint8_t q8[2 * 34];
    for (int i = 0; i < 15; i++) t1[i] = (float)i - 7.5f;
    for (int i = 0; i < 64; i++) t2[i] = (uint16_t)(i * 977);
    for (int i = 0; i < 68; i++) q8[i] = (uint8_t)(i * 13);
    nx_gguf_add_tensor(w, "t.f32", 0, 2, (int64_t[]){5, 3}, t1);
    nx_gguf_add_tensor(w, "t.bf16", 30, 1, (int64_t[]){64}, t2);
    nx_gguf_add_tensor(w, "t.q8_0", 8, 2, (int64_t[]){32, 2}, q8);
    nx_gguf_add_tensor(w, "t.q4_1", 3, 1, (int64_t[]){32}, q8);
    nx_err err;
    CHECKF(nx_gguf_write(w, nxt_tpath("a.gguf"), &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_gguf_write(w, nxt_tpath("b.gguf"), &err) == NX_OK, "%s", err.msg);
    nx_gguf_writer_free(w);
    size_t na, nb;
    char *a = nx_read_file(nxt_tpath("a.gguf"), 1u << 30, &na, &err), *b = nx_read_file(nxt_tpath("b.gguf"), 1u << 30, &nb, &err);
    CHECK(a && b && na == nb && !memcmp(a, b, na));
    free(a), free(b);
    nx_gguf g;
    if (nx_gguf_open(&g, nxt_tpath("a.gguf"), &err)) { CHECKF(0, "%s", err.msg); return; }
    CHECK(g.version == 3 && g.alignment == 64 && g.nkv == 19 && g.nt == 4);
    CHECK(!strcmp(g.kv[7].key, "s.u32") && nx_gguf_value_int(&g.kv[7].v, 0) == 7);
    int64_t x;
    double d;
    bool bl;
    nx_gguf_str s;
    CHECK(nx_gguf_get_int(&g, "s.u8", true, 0, 1000, &x, &err) == NX_OK && x == 200);
    CHECK(nx_gguf_get_int(&g, "s.i8", true, -1000, 1000, &x, &err) == NX_OK && x == -100);
    CHECK(nx_gguf_get_int(&g, "s.u16", true, 0, 100000, &x, &err) == NX_OK && x == 60000);
    CHECK(nx_gguf_get_int(&g, "s.i16", true, -100000, 0, &x, &err) == NX_OK && x == -30000);
    CHECK(nx_gguf_get_int(&g, "s.i32", true, INT64_MIN, 0, &x, &err) == NX_OK && x == -2000000000);
    CHECK(nx_gguf_get_int(&g, "s.i64", true, INT64_MIN, 0, &x, &err) == NX_OK && x == -(1ll << 62));
    CHECK(nx_gguf_get_int(&g, "s.u64", true, 0, 10, &x, &err) == NX_ERR && strstr(err.msg, "between 0 and 10"));
    CHECK(nx_gguf_get_f64(&g, "s.f64", true, &d, &err) == NX_OK && d == -1.25e300);
    CHECK(nx_gguf_get_f64(&g, "s.f32", true, &d, &err) == NX_OK && d == (double)0.1f);
    CHECK(nx_gguf_get_bool(&g, "s.bool", true, &bl, &err) == NX_OK && bl);
    CHECK(nx_gguf_get_str(&g, "s.str", true, &s, &err) == NX_OK && s.len == 6 && !memcmp(s.s, "h\xc3\xa9llo", 6));
    CHECK(nx_gguf_get_str(&g, "s.empty", true, &s, &err) == NX_OK && s.len == 0);
    CHECK(nx_gguf_get_str(&g, "s.u8", true, &s, &err) == NX_ERR && strstr(err.msg, "key 's.u8' is a u8; it must be a string"));
    CHECK(nx_gguf_get_int(&g, "nope", true, 0, 1, &x, &err) == NX_ERR && strstr(err.msg, "missing key 'nope'"));
    x = 42;
    CHECK(nx_gguf_get_int(&g, "nope", false, 0, 1, &x, &err) == NX_OK && x == 42);
    const nx_gguf_value *v;
    CHECK(nx_gguf_get_array(&g, "a.i16", NX_GGUF_I64, 3, &v, &err) == NX_OK && nx_gguf_value_int(v, 2) == -3);
    CHECK(nx_gguf_get_array(&g, "a.f32", NX_GGUF_F64, 2, &v, &err) == NX_OK && nx_gguf_value_f64(v, 1) == -2.5);
    CHECK(nx_gguf_get_array(&g, "a.bool", NX_GGUF_BOOL, 3, &v, &err) == NX_OK && nx_gguf_value_int(v, 1) == 0);
    CHECK(nx_gguf_get_array(&g, "a.empty", NX_GGUF_U64, 0, &v, &err) == NX_OK && v->n == 0);
    CHECK(nx_gguf_get_array(&g, "a.str", NX_GGUF_STRING, 3, &v, &err) == NX_OK && v->str[1].len == 0 &&
          v->str[2].len == 4 && !memcmp(v->str[2].s, "\xe2\x96\x81x", 4));
    CHECK(nx_gguf_get_array(&g, "a.str", NX_GGUF_STRING, 4, &v, &err) == NX_ERR && strstr(err.msg, "at least 4"));
    const nx_gguf_tensor *t = nx_gguf_find_tensor(&g, "t.q8_0");
    CHECK(t && t->nbytes == 68 && t->ne[0] == 32 && t->ne[1] == 2 && !memcmp(t->data, q8, 68));
    CHECK((size_t)((const uint8_t *)t->data - g.base) % 64 == 0);
    t = nx_gguf_find_tensor(&g, "t.f32");
    CHECK(t && t->ndim == 2 && !memcmp(t->data, t1, sizeof t1));
    nx_dtype dt;
    CHECK(nx_gguf_tensor_dtype(&g, nx_gguf_find_tensor(&g, "t.bf16"), &dt, &err) == NX_OK && dt == NX_BF16);
    CHECK(nx_gguf_tensor_dtype(&g, nx_gguf_find_tensor(&g, "t.q4_1"), &dt, &err) == NX_ERR);
    CHECKF(strstr(err.msg, "a.gguf: tensor 't.q4_1': unsupported tensor type Q4_1; this nexus reads F32, F16"), "%s",
           err.msg);
    /* every truncation of the file short of its last tensor's end is refused */
    size_t end = 0;
    for (int i = 0; i < g.nt; i++) {
        size_t e = g.data_start + g.t[i].offset + g.t[i].nbytes;
        end = e > end ? e : end;
    }
    int bad = 0;
    for (size_t n = 0; n < end; n++) {
        nx_gguf h;
        if (nx_gguf_parse(&h, g.base, n, "cut.gguf", &err) == NX_OK) nx_gguf_close(&h), bad++;
        else if (!strstr(err.msg, "cut.gguf")) bad++;
    }
    CHECKF(bad == 0, "%d truncations parsed or gave no file name", bad);
    nx_gguf_close(&g);
    nxt_tmp_remove();
}

TEST(refused_writes_leave_nothing) {
    nxt_tmp_make("gga");
    nx_err err;
    const char *p = nxt_tpath("x.gguf");
    NX_ASSERT(nx_write_atomic(p, (const void *[]){"old"}, (size_t[]){3}, 1, &err) == NX_OK);
    float x[4] = {0};
    struct { const char *name; uint32_t type; int64_t ne0; const char *needle; } cases[] = {
        {"a-name-that-is-far-too-long-for-llama-cpp-whose-limit-is-63-bytes!", 0, 4, "1 to 63 bytes"},
        {"t", 77, 4, "ggml type id 77"},
        {"t", 8, 4, "not a multiple of the 32"},
        {"", 0, 4, "1 to 63 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nx_gguf_writer *w = nx_gguf_writer_new();
        nx_gguf_add_tensor(w, cases[i].name, cases[i].type, 1, &cases[i].ne0, x);
        CHECK(nx_gguf_write(w, p, &err) == NX_ERR && strstr(err.msg, cases[i].needle));
        nx_gguf_writer_free(w);
    }
    nx_gguf_writer *w = nx_gguf_writer_new();
    nx_gguf_add_tensor(w, "t", 0, 1, (int64_t[]){4}, x);
    nx_gguf_add_tensor(w, "t", 0, 1, (int64_t[]){4}, x);
    CHECK(nx_gguf_write(w, p, &err) == NX_ERR && strstr(err.msg, "given twice"));
    nx_gguf_writer_free(w);
    w = nx_gguf_writer_new();
    nx_gguf_set_u32(w, "general.alignment", 24);
    CHECK(nx_gguf_write(w, p, &err) == NX_ERR && strstr(err.msg, "power of two"));
    CHECK(nx_gguf_write(w, "/nonexistent-dir/x.gguf", &err) == NX_ERR);
    nx_gguf_writer_free(w);
    size_t n;
    char *old = nx_read_file(p, 1u << 30, &n, &err);
    CHECK(old && n == 3 && !memcmp(old, "old", 3));
    free(old);
    struct stat sb;
    CHECK(stat(nxt_tpath("x.gguf.tmp"), &sb) != 0);
    nxt_tmp_remove();
}

/* ---- the Llama mapping ------------------------------------------------------------ */

TEST(names_and_the_qk_permutation) {
    char b[64];
    CHECK(nx_gguf_name_of("model.layers.12.self_attn.o_proj.weight", b, sizeof b) == NX_OK &&
          !strcmp(b, "blk.12.attn_output.weight"));
    CHECK(nx_gguf_name_of("model.layers.0.self_attn.q_proj.bias", b, sizeof b) == NX_OK && !strcmp(b, "blk.0.attn_q.bias"));
    CHECK(nx_gguf_name_of("model.layers.3.post_attention_layernorm.weight", b, sizeof b) == NX_OK &&
          !strcmp(b, "blk.3.ffn_norm.weight"));
    CHECK(nx_gguf_name_of("lm_head.weight", b, sizeof b) == NX_OK && !strcmp(b, "output.weight"));
    CHECK(nx_gguf_name_of("model.layers.3.mlp.experts.weight", b, sizeof b) == NX_ERR);
    /* 2 heads of 4 rows: GGUF row 2i + j of a head holds HF row j·2 + i */
    int32_t hf[8] = {0, 1, 2, 3, 4, 5, 6, 7}, gg[8], back[8];
    nx_gguf_permute_qk(gg, hf, 8, 4, 2, true);
    int32_t want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    CHECK(!memcmp(gg, want, sizeof want));
    nx_gguf_permute_qk(back, gg, 8, 4, 2, false);
    CHECK(!memcmp(back, hf, sizeof hf));
    int32_t hf2[16], gg2[16];
    for (int i = 0; i < 16; i++) hf2[i] = i;
    nx_gguf_permute_qk(gg2, hf2, 16, 4, 2, true); /* HS 8: rows 0,4,1,5,2,6,3,7 */
    CHECK(gg2[0] == 0 && gg2[1] == 4 && gg2[2] == 1 && gg2[3] == 5 && gg2[6] == 3 && gg2[7] == 7 && gg2[9] == 12);
}

static float *logits(const nx_model *m) {
    enum { T = 12 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (i * 7 + 3) % m->cfg.V;
    nx_acts a;
    NX_ASSERT(nx_acts_init(&a, m, 1, T, NX_ACTS_INFER, NULL) == NX_OK);
    nx_model_forward(m, &a, ids, 1, T, true);
    float *o = nx_xmalloc(sizeof *o * T * m->cfg.V);
    memcpy(o, a.logits, sizeof *o * T * m->cfg.V);
    nx_acts_free(&a);
    return o;
}

static bool same_tensors(const nx_model *a, const nx_model *b) {
    bool same = a->ntab == b->ntab;
    for (int i = 0; same && i < a->ntab; i++) {
        float *x = nx_xmalloc(4 * a->tab[i].numel), *y = nx_xmalloc(4 * a->tab[i].numel);
        nx_model_get(a, i, x), nx_model_get(b, i, y);
        same = !memcmp(x, y, 4 * a->tab[i].numel);
        free(x), free(y);
    }
    return same;
}

TEST(tiny_llama_through_gguf_and_back) {
    nxt_tmp_make("ggm");
    nx_err err;
    nx_model hf;
    if (nx_hf_load_model(TINY, &hf, &err)) { CHECKF(0, "%s", err.msg); return; }
    float *want = logits(&hf);
    nx_dtype types[3] = {NX_F32, NX_BF16, NX_F16};
    for (int k = 0; k < 3; k++) {
        nx_gguf_export o = {.dtype = types[k], .name = "tiny"};
        const char *p = nxt_tpath("tiny.gguf");
        CHECKF(nx_gguf_save_model(p, &hf, &o, &err) == NX_OK, "%s", err.msg);
        nx_model back;
        CHECKF(nx_modelfile_load(p, NX_F32, nx_backend_cpu(), &back, NULL, &err) == NX_OK, "%s", err.msg);
        if (!back.data) continue;
        CHECK(!memcmp(&back.cfg.V, &hf.cfg.V, sizeof(int) * 8) && back.cfg.eps == hf.cfg.eps);
        /* the fixture holds bf16 values: exact in F32 and BF16, rounded in F16 */
        float *got = logits(&back);
        if (types[k] != NX_F16) {
            CHECKF(same_tensors(&hf, &back), "%s", nx_dtype_name(types[k]));
            CHECK(!memcmp(got, want, sizeof *got * 12 * hf.cfg.V));
        } else CHECK_REL(got, want, 12 * hf.cfg.V, 1e-2);
        free(got);
        nx_model_free(&back);
    }
    /* in the F32 file, q and k rows are llama.cpp's permutation of Hugging Face's */
    nx_gguf_export o = {.dtype = NX_F32};
    const char *p = nxt_tpath("tiny32.gguf");
    CHECKF(nx_gguf_save_model(p, &hf, &o, &err) == NX_OK, "%s", err.msg);
    nx_gguf g;
    CHECKF(nx_gguf_open(&g, p, &err) == NX_OK, "%s", err.msg);
    const char *names[2] = {"model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"};
    const char *gnames[2] = {"blk.1.attn_q.weight", "blk.1.attn_k.weight"};
    int heads[2] = {hf.cfg.NH, hf.cfg.KVH};
    for (int q = 0; q < 2; q++) {
        int i = nx_model_find(&hf, names[q]);
        const nx_param *pr = &hf.tab[i];
        float *h = nx_xmalloc(4 * pr->numel);
        nx_model_get(&hf, i, h);
        const nx_gguf_tensor *t = nx_gguf_find_tensor(&g, gnames[q]);
        CHECK(t && t->type == 0 && t->ne[0] == pr->shape[1] && t->ne[1] == pr->shape[0]);
        int64_t C = pr->shape[1], HS = hf.cfg.HS, bad = 0;
        for (int hh = 0; t && hh < heads[q]; hh++)
            for (int64_t r = 0; r < HS; r++) { /* w.reshape(n, 2, HS/2, C).swapaxes(1, 2) */
                int64_t i2 = r / 2, j = r % 2, src = hh * HS + j * (HS / 2) + i2;
                bad += memcmp((const float *)t->data + (hh * HS + r) * C, h + src * C, 4 * C) != 0;
            }
        CHECKF(bad == 0, "%s: %lld rows not where llama.cpp's converter puts them", gnames[q], (long long)bad);
        free(h);
    }
    nx_gguf_close(&g);
    free(want);
    nx_model_free(&hf);
    nxt_tmp_remove();
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    nx_err err;
    char *x = nx_read_file(a, 1u << 30, &na, &err), *y = nx_read_file(b, 1u << 30, &nb, &err);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x), free(y);
    return same;
}

/* Core's weight types and GGUF's tensor types: every weight type has a
 * GGUF id with the same block (so a block type added to core is read and
 * written with no change to io), a model held in a type is written as it
 * is held, and a type or shape GGUF cannot take is refused before
 * anything is written. */
TEST(weight_types_map_to_gguf) {
    for (int t = 0; t < NX_DTYPE_COUNT; t++) {
        uint32_t id = 999;
        if (!nx_type((nx_dtype)t)->weight) {
            CHECK(nx_ggml_type_of((nx_dtype)t, &id) == NX_ERR);
            continue;
        }
        CHECKF(nx_ggml_type_of((nx_dtype)t, &id) == NX_OK, "%s has no GGUF id", nx_dtype_name((nx_dtype)t));
        const nx_ggml_type *g = nx_ggml_type_info(id);
        CHECKF(g && nx_ggml_dtype(id) == t && g->block == nx_type((nx_dtype)t)->block &&
                   g->block_bytes == nx_type((nx_dtype)t)->block_bytes,
               "%s", nx_dtype_name((nx_dtype)t));
    }
    CHECK(nx_ggml_dtype(3) == -1 && nx_ggml_dtype(31) == -1); /* Q4_1; an id ggml never used */
    nxt_tmp_make("ggh");
    nx_err err;
    nx_model f32, b16;
    if (nx_hf_load_model(TINY, &f32, &err)) { CHECKF(0, "%s", err.msg); return; }
    CHECKF(nx_modelfile_load(TINY, NX_BF16, nx_backend_cpu(), &b16, NULL, &err) == NX_OK, "%s", err.msg);
    const char *a = nxt_tpath("a.gguf"), *b = nxt_tpath("b.gguf"), *c = nxt_tpath("c.gguf");
    nx_gguf_export o = {.dtype = NX_BF16};
    CHECKF(nx_gguf_save_model(a, &f32, &o, &err) == NX_OK, "%s", err.msg);
    nx_gguf_export held = {.dtype = NX_F32, .as_held = true}; /* dtype ignored */
    CHECKF(nx_gguf_save_model(b, &b16, &held, &err) == NX_OK, "%s", err.msg);
    CHECK(same_file(a, b));
    nx_gguf_export bad = {.dtype = NX_I32};
    CHECK(nx_gguf_save_model(c, &f32, &bad, &err) == NX_ERR && access(c, F_OK) != 0);
    CHECKF(strstr(err.msg, "c.gguf: cannot write tensor") && strstr(err.msg, "as I32"), "%s", err.msg);
    /* block types: the fixture's rows of 16 are no whole number of any block of 32 or 256 */
    for (int t = 0; t < NX_DTYPE_COUNT; t++) {
        if (!nx_type((nx_dtype)t)->weight || nx_type((nx_dtype)t)->block == 1) continue;
        nx_gguf_export q = {.dtype = (nx_dtype)t};
        CHECK(nx_gguf_save_model(c, &f32, &q, &err) == NX_ERR && access(c, F_OK) != 0);
        CHECKF(strstr(err.msg, "rows of 16 elements, not a whole number of") && strstr(err.msg, nx_dtype_name(q.dtype)),
               "%s", err.msg);
    }
    nx_model_free(&f32);
    nx_model_free(&b16);
    nxt_tmp_remove();
}

/* The F32 tiny GGUF rebuilt through the writer with one change. */
static int rebuild(const char *src, const char *dst, const char *retype, uint32_t type, const char *drop,
                   const char *extra, const char *key, nx_err *err) {
    nx_gguf g;
    if (nx_gguf_open(&g, src, err)) return NX_ERR;
    nx_gguf_writer *w = nx_gguf_writer_new();
    for (int i = 0; i < g.nkv; i++) nx_gguf_set(w, g.kv[i].key, &g.kv[i].v);
    if (key) nx_gguf_set_str(w, key, "linear");
    for (int i = 0; i < g.nt; i++) {
        const nx_gguf_tensor *t = &g.t[i];
        if (drop && !strcmp(t->name, drop)) continue;
        bool re = retype && !strcmp(t->name, retype);
        nx_gguf_add_tensor(w, t->name, re ? type : t->type, t->ndim, t->ne, t->data);
    }
    if (extra) nx_gguf_add_tensor(w, extra, 0, 1, g.t[0].ne, g.t[0].data);
    int rc = nx_gguf_write(w, dst, err);
    nx_gguf_writer_free(w);
    nx_gguf_close(&g);
    return rc;
}

TEST(model_level_errors_name_the_tensor) {
    nxt_tmp_make("gge");
    nx_err err;
    nx_model hf, m;
    if (nx_hf_load_model(TINY, &hf, &err)) { CHECKF(0, "%s", err.msg); return; }
    nx_gguf_export o = {.dtype = NX_F32};
    const char *src = nxt_tpath("tiny.gguf"), *bad = nxt_tpath("bad.gguf");
    CHECKF(nx_gguf_save_model(src, &hf, &o, &err) == NX_OK, "%s", err.msg);
    nx_model_free(&hf);
    struct { const char *retype; uint32_t type; const char *drop, *extra, *key, *needle; } cases[] = {
        {"blk.0.ffn_up.weight", 26, NULL, NULL, NULL,
         "tensor 'blk.0.ffn_up.weight': unsupported tensor type I32; this nexus reads F32, F16, Q4_0"},
        {NULL, 0, "blk.1.attn_v.weight", NULL, NULL, "missing tensor 'blk.1.attn_v.weight'"},
        {NULL, 0, NULL, "blk.0.ffn_extra.weight", NULL, "unexpected tensor 'blk.0.ffn_extra.weight'"},
        {NULL, 0, NULL, NULL, "llama.rope.scaling.type", "rope scaling is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECKF(rebuild(src, bad, cases[i].retype, cases[i].type, cases[i].drop, cases[i].extra, cases[i].key,
                       &err) == NX_OK, "%s", err.msg);
        CHECK(nx_modelfile_load(bad, NX_F32, nx_backend_cpu(), &m, NULL, &err) == NX_ERR);
        CHECKF(strstr(err.msg, cases[i].needle) && strstr(err.msg, "bad.gguf"), "%s", err.msg);
    }
    nxt_tmp_remove();
}

/* ---- tokenizers through GGUF metadata ------------------------------------------------ */

static nx_tokenizer *via_gguf(const nx_tokenizer *t, const char *cfg, nx_err *err) {
    nx_gguf_writer *w = nx_gguf_writer_new();
    nx_tokenizer *back = NULL;
    nx_gguf g;
    if (nx_gguf_put_tokenizer(w, t, nx_tokenizer_vocab_size(t) + 3, cfg, err) == NX_OK &&
        nx_gguf_write(w, nxt_tpath("t.gguf"), err) == NX_OK && nx_gguf_open(&g, nxt_tpath("t.gguf"), err) == NX_OK) {
        nx_gguf_load_tokenizer(&g, &back, err);
        nx_gguf_close(&g);
    }
    nx_gguf_writer_free(w);
    return back;
}

TEST(tokenizer_fixtures_through_gguf_metadata) {
    nxt_tmp_make("ggt");
    const char *dirs[3] = {"tests/fixtures/tok-bytelevel", "tests/fixtures/tok-split", "tests/fixtures/tok-spm"};
    nx_tokenizer_family fam[3] = {NX_TOK_BYTELEVEL, NX_TOK_BYTELEVEL, NX_TOK_SPM};
    const char *texts[] = {"Hello world", "  spaces   and\ttabs\n\nnew lines", "caf\xc3\xa9 \xe2\x82\xac 12345 don't",
                           "<s>special</s> x</s>", "\xf0\x9f\x98\x80 emoji", ""};
    /* (GGUF has no lstrip / rstrip / single_word flags for added tokens: tok-split's "[M]" and "tok" lose them,
     * in llama.cpp as here; docs/FORMATS.md) */
    for (int d = 0; d < 3; d++) {
        nx_err err;
        nx_tokenizer *t = NULL, *b = NULL;
        if (nx_tokenizer_load(&t, dirs[d], &err)) { CHECKF(0, "%s", err.msg); continue; }
        nx_tokenizer_info info;
        nx_tokenizer_describe(t, &info);
        CHECK(info.family == fam[d]);
        if (!(b = via_gguf(t, NULL, &err))) { CHECKF(0, "%s: %s", dirs[d], err.msg); nx_tokenizer_free(t); continue; }
        CHECK(nx_tokenizer_vocab_size(b) == nx_tokenizer_vocab_size(t) + 3); /* [PADn] rows */
        CHECK(nx_tokenizer_bos_id(b) == nx_tokenizer_bos_id(t) && nx_tokenizer_eos_id(b) == nx_tokenizer_eos_id(t));
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
            for (int sp = 0; sp < 2; sp++) {
                int32_t *x = NULL, *y = NULL;
                size_t nx = 0, ny = 0;
                CHECK(nx_tokenizer_encode(t, texts[k], strlen(texts[k]), sp, &x, &nx, &err) == NX_OK);
                CHECK(nx_tokenizer_encode(b, texts[k], strlen(texts[k]), sp, &y, &ny, &err) == NX_OK);
                CHECKF(nx == ny && (nx == 0 || !memcmp(x, y, 4 * nx)), "%s: \"%s\" (add_special %d) encodes "
                       "differently", dirs[d], texts[k], sp);
                char *dx = NULL, *dy = NULL;
                CHECK(nx_tokenizer_decode(t, x, nx, false, &dx, &err) == NX_OK);
                CHECK(nx_tokenizer_decode(b, y, ny, false, &dy, &err) == NX_OK);
                CHECKF(dx && dy && !strcmp(dx, dy), "%s: decode \"%s\" vs \"%s\"", dirs[d], dx, dy);
                free(x), free(y), free(dx), free(dy);
            }
        nx_tokenizer_free(t);
        nx_tokenizer_free(b);
    }
    /* a byte-level regex llama.cpp has no name for is refused */
    const char *json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]},"
                       "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                       "{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\","
                       "\"add_prefix_space\":false,\"use_regex\":false}]}}";
    nx_tokenizer *t = NULL;
    nx_err err;
    CHECKF(nx_tokenizer_load_json(&t, json, strlen(json), "odd.json", &err) == NX_OK, "%s", err.msg);
    nx_gguf_writer *w = nx_gguf_writer_new();
    CHECK(t && nx_gguf_put_tokenizer(w, t, 3, NULL, &err) == NX_ERR && strstr(err.msg, "no llama.cpp name"));
    nx_gguf_writer_free(w);
    nx_tokenizer_free(t);
    nxt_tmp_remove();
}
