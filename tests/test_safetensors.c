/* test_safetensors.c — the safetensors reader and writer: round trips, and
 * every malformed-input case the reader must reject with a message naming
 * the file and the tensor or byte. Fixtures are written to a mkdtemp dir. */
#include <stdint.h>
#include <unistd.h>

#include "nexus/safetensors.h"
#include "nxtest.h"

/* A file with header length hlen (as stored), header bytes and ndata zero
 * bytes of data. */
static void write_raw_len(const char *path, uint64_t hlen, const char *hdr, size_t hn, size_t ndata) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8; i++) fputc((int)(hlen >> (8 * i)) & 0xff, f);
    fwrite(hdr, 1, hn, f);
    for (size_t i = 0; i < ndata; i++) fputc(i & 0xff, f);
    fclose(f);
}
static void write_raw(const char *path, const char *hdr, size_t ndata) {
    write_raw_len(path, strlen(hdr), hdr, strlen(hdr), ndata);
}

/* Opening must fail with a message holding every one of the needles. */
static void expect_open_error(const char *path, const char *n1, const char *n2) {
    nx_safetensors st;
    nx_err err = {{0}};
    int rc = nx_st_open(&st, path, &err);
    CHECKF(rc == NX_ERR, "expected an error for %s", path);
    if (rc == NX_OK) {
        nx_st_close(&st);
        return;
    }
    CHECKF(strstr(err.msg, path) != NULL, "message lacks file name: %s", err.msg);
    if (n1) CHECKF(strstr(err.msg, n1) != NULL, "message lacks '%s': %s", n1, err.msg);
    if (n2) CHECKF(strstr(err.msg, n2) != NULL, "message lacks '%s': %s", n2, err.msg);
    CHECK(st.n == 0 && st.t == NULL && st.nfiles == 0);
}

static bool same_file(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    bool eq = x && y;
    while (eq) {
        int c = fgetc(x), d = fgetc(y);
        if (c != d) eq = false;
        if (c == EOF || d == EOF) break;
    }
    if (x) fclose(x);
    if (y) fclose(y);
    return eq;
}

TEST(round_trip) {
    nxt_tmp_make("st");
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 7};
    uint16_t b[5] = {0x3f80, 0xc000, 0x7fc0, 0x0001, 0x8000};
    int64_t s = -42;
    nx_st_entry e[4] = {
        {.name = "w.a", .dtype = NX_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "b\"q\\uote\n", .dtype = NX_BF16, .ndim = 1, .shape = {5}, .data = b},
        {.name = "scalar", .dtype = NX_I64, .ndim = 0, .data = &s},
        {.name = "empty", .dtype = NX_U8, .ndim = 1, .shape = {0}, .data = NULL},
    };
    nx_err err = {{0}};
    const char *p = nxt_tpath("rt.safetensors"), *q = nxt_tpath("rt2.safetensors");
    CHECKF(nx_st_write(p, e, 4, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_st_write(q, e, 4, &err) == NX_OK, "%s", err.msg);
    CHECK(same_file(p, q));
    CHECK(access(nxt_tpath("rt.safetensors.tmp"), F_OK) != 0);
    FILE *f = fopen(p, "rb");
    unsigned char len8[8];
    CHECK(fread(len8, 1, 8, f) == 8);
    fclose(f);
    CHECK(len8[0] % 8 == 0);
    nx_safetensors st;
    CHECKF(nx_st_open(&st, p, &err) == NX_OK, "%s", err.msg);
    CHECK(st.n == 4 && st.nfiles == 1);
    for (int i = 0; i < 4; i++) {
        const nx_st_tensor *t = nx_st_find(&st, e[i].name);
        CHECKF(t != NULL, "tensor %s", e[i].name);
        if (!t) continue;
        CHECK(t->dtype == e[i].dtype && t->ndim == e[i].ndim);
        for (int d = 0; d < e[i].ndim; d++) CHECK(t->shape[d] == e[i].shape[d]);
        if (t->nbytes) CHECK(memcmp(t->data, e[i].data, t->nbytes) == 0);
        CHECK(t->file == 0);
    }
    /* sorted by offset, tiled */
    size_t at = 0;
    for (int i = 0; i < st.n; i++) {
        CHECK(st.t[i].offset == at);
        at += st.t[i].nbytes;
    }
    CHECK(at == 24 + 10 + 8);
    CHECK(nx_st_find(&st, "nope") == NULL);
    nx_st_close(&st);
    /* empty file list */
    CHECKF(nx_st_write(p, NULL, 0, &err) == NX_OK, "%s", err.msg);
    CHECKF(nx_st_open(&st, p, &err) == NX_OK, "%s", err.msg);
    CHECK(st.n == 0);
    nx_st_close(&st);
    nxt_tmp_remove();
}

TEST(writer_rejects_bad_entries) {
    nxt_tmp_make("st");
    float a[2] = {0};
    nx_st_entry e[2] = {{.name = "x", .dtype = NX_F32, .ndim = 1, .shape = {2}, .data = a},
                        {.name = "x", .dtype = NX_F32, .ndim = 1, .shape = {2}, .data = a}};
    nx_err err = {{0}};
    const char *p = nxt_tpath("w.safetensors");
    CHECK(nx_st_write(p, e, 2, &err) == NX_ERR && strstr(err.msg, "'x'") && strstr(err.msg, p));
    e[1].name = "__metadata__";
    CHECK(nx_st_write(p, e, 2, &err) == NX_ERR && strstr(err.msg, "reserved"));
    e[1].name = "y";
    e[1].shape[0] = -1;
    CHECK(nx_st_write(p, e, 2, &err) == NX_ERR && strstr(err.msg, "'y'"));
    CHECK(access(p, F_OK) != 0 && access(nxt_tpath("w.safetensors.tmp"), F_OK) != 0);
    nxt_tmp_remove();
}

TEST(short_and_truncated_files) {
    nxt_tmp_make("st");
    const char *p = nxt_tpath("short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\x05\0\0", 1, 3, f);
    fclose(f);
    expect_open_error(p, "byte 0", "too short");
    const char *q = nxt_tpath("trunc.safetensors");
    write_raw_len(q, 1000, "{}", 2, 0);
    expect_open_error(q, "byte 0", "past the end");
    write_raw_len(q, UINT64_MAX, "{}", 2, 0);
    expect_open_error(q, "byte 0", "past the end");
    expect_open_error(nxt_tpath("missing.safetensors"), "cannot open", NULL);
    nxt_tmp_remove();
}

TEST(bad_json_and_utf8) {
    nxt_tmp_make("st");
    const char *p = nxt_tpath("bad.safetensors");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\",, }", 0);
    expect_open_error(p, "not valid JSON", "byte");
    write_raw(p, "{\"a\xff\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_error(p, "UTF-8", "byte 11");   /* header byte 3 = file byte 11 */
    write_raw(p, "{\"a\xed\xa0\x80\": 1}", 0);  /* encoded surrogate */
    expect_open_error(p, "UTF-8", "byte 11");
    write_raw(p, "{\"a\xc0\xaf\": 1}", 0);       /* overlong */
    expect_open_error(p, "UTF-8", NULL);
    write_raw(p, "{\"a\": 1, \"\xe2\x82", 0);     /* truncated sequence */
    expect_open_error(p, "UTF-8", NULL);
    write_raw(p, "{} x", 0);
    expect_open_error(p, "unexpected bytes", "byte 11");
    write_raw(p, "[1, 2]", 0);
    expect_open_error(p, "JSON object", NULL);
    /* valid UTF-8 names are fine */
    write_raw(p, "{\"\xc3\xa9t\xc3\xa9\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}}   ", 2);
    nx_safetensors st;
    nx_err err = {{0}};
    CHECKF(nx_st_open(&st, p, &err) == NX_OK, "%s", err.msg);
    nx_st_close(&st);
    nxt_tmp_remove();
}

TEST(bad_keys) {
    nxt_tmp_make("st");
    const char *p = nxt_tpath("keys.safetensors");
    struct { const char *hdr; size_t nd; const char *n1, *n2; } cases[] = {
        {"{\"wq\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'wq'", "dtype"},
        {"{\"wq\": {\"dtype\": 3, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'wq'", "dtype"},
        {"{\"wq\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "'wq'", "F8_E4M3"},
        {"{\"wq\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "'wq'", "shape"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": \"1\", \"data_offsets\": [0, 4]}}", 4, "'wq'", "shape"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "'wq'", "shape[0]"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, "'wq'", "shape[0]"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4, "'wq'", "dimensions"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 4]}}", 4,
         "'wq'", "overflow"},
        {"{\"wq\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 4, "'wq'",
         "overflow"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "'wq'", "data_offsets"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "'wq'", "data_offsets"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, "'wq'", "end before"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4, "'wq'", "needs 8"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, "'wq'", "past the data"},
        {"{\"wq\": [1]}", 4, "'wq'", "object"},
        {"{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__", "format"},
        {"{\"__metadata__\": [], \"a\": 1}", 0, "__metadata__", NULL},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
         " \"wk\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [2, 10]}}", 10, "'wk'", "overlaps tensor 'wq'"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
         " \"wk\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12, "hole", "'wk'"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "hole", "[0, 4)"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 7, "trailing", "byte"},
        {"{\"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
         " \"wq\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "'wq'", "more than once"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(p, cases[i].hdr, cases[i].nd);
        expect_open_error(p, cases[i].n1, cases[i].n2);
    }
    nxt_tmp_remove();
}

TEST(parse_header_direct) {
    const char *h = "{\"b\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [4, 8]},"
                    " \"a\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [0, 4]}}";
    nx_st_tensor *t;
    int n;
    nx_err err = {{0}};
    CHECKF(nx_st_parse_header(h, strlen(h), 8, "mem", &t, &n, &err) == NX_OK, "%s", err.msg);
    CHECK(n == 2 && !strcmp(t[0].name, "a") && !strcmp(t[1].name, "b"));
    CHECK(t[0].ndim == 0 && t[0].nbytes == 4 && t[1].offset == 4 && t[1].data == NULL);
    nx_st_free_tensors(t, n);
    CHECK(nx_st_parse_header(h, strlen(h), 9, "mem", &t, &n, &err) == NX_ERR && t == NULL && n == 0);
    CHECK(strstr(err.msg, "mem:") == err.msg);
    CHECK(nx_st_parse_header("", 0, 0, "mem", &t, &n, &err) == NX_ERR);
}

/* Sharded directory: model.safetensors.index.json + two shards. */
static void make_shards(const char *index) {
    float a[2] = {1, 2}, b[3] = {3, 4, 5};
    nx_st_entry e1 = {.name = "a", .dtype = NX_F32, .ndim = 1, .shape = {2}, .data = a};
    nx_st_entry e2 = {.name = "b", .dtype = NX_F32, .ndim = 1, .shape = {3}, .data = b};
    nx_err err;
    nx_st_write(nxt_tpath("s-1.safetensors"), &e1, 1, &err);
    nx_st_write(nxt_tpath("s-2.safetensors"), &e2, 1, &err);
    FILE *f = fopen(nxt_tpath("model.safetensors.index.json"), "w");
    fputs(index, f);
    fclose(f);
}

static void expect_dir_error(const char *n1, const char *n2) {
    nx_safetensors st;
    nx_err err = {{0}};
    CHECK(nx_st_open_dir(&st, nxt_tmpdir(), &err) == NX_ERR);
    CHECKF(strstr(err.msg, nxt_tmpdir()) != NULL, "message lacks dir: %s", err.msg);
    if (n1) CHECKF(strstr(err.msg, n1) != NULL, "lacks '%s': %s", n1, err.msg);
    if (n2) CHECKF(strstr(err.msg, n2) != NULL, "lacks '%s': %s", n2, err.msg);
}

TEST(sharded_dir) {
    nxt_tmp_make("st");
    expect_dir_error("no model.safetensors", NULL);
    make_shards("{\"metadata\": {\"total_size\": 20}, \"weight_map\": {\"a\": \"s-1.safetensors\", "
                "\"b\": \"s-2.safetensors\"}}");
    nx_safetensors st;
    nx_err err = {{0}};
    CHECKF(nx_st_open_dir(&st, nxt_tmpdir(), &err) == NX_OK, "%s", err.msg);
    CHECK(st.n == 2 && st.nfiles == 2);
    const nx_st_tensor *b = nx_st_find(&st, "b");
    CHECK(b && strstr(st.paths[b->file], "s-2.safetensors") && ((const float *)b->data)[2] == 5);
    nx_st_close(&st);
    make_shards("{\"weight_map\": {\"a\": \"s-2.safetensors\", \"b\": \"s-2.safetensors\"}}");
    expect_dir_error("'a'", "missing");     /* listed for s-2, which lacks it */
    make_shards("{\"weight_map\": {\"a\": \"s-1.safetensors\", \"b\": \"s-1.safetensors\"}}");
    expect_dir_error("'b'", "missing");
    make_shards("{\"weight_map\": {\"a\": \"s-1.safetensors\", \"b\": \"s-2.safetensors\", "
                "\"c\": \"s-2.safetensors\"}}");
    expect_dir_error("'c'", "missing");
    /* a shard the index does not name is not part of the model */
    make_shards("{\"weight_map\": {\"a\": \"s-1.safetensors\"}}");
    CHECKF(nx_st_open_dir(&st, nxt_tmpdir(), &err) == NX_OK, "%s", err.msg);
    CHECK(st.n == 1 && st.nfiles == 1);
    nx_st_close(&st);
    make_shards("{\"weight_map\": {\"a\": \"../s-1.safetensors\"}}");
    expect_dir_error("'a'", "plain file name");
    make_shards("{\"weight_map\": {\"a\": 3}}");
    expect_dir_error("'a'", "string");
    make_shards("{\"weight_map\": [");
    expect_dir_error("JSON", NULL);
    make_shards("{\"weight_map\": {\"a\": \"s-1.safetensors\", \"b\": \"s-2.safetensors\", "
                "\"a\": \"s-1.safetensors\"}}");
    expect_dir_error("'a'", "twice");
    nxt_tmp_remove();
}

TEST(shard_extra_tensor) {
    nxt_tmp_make("st");
    /* s-2 holds b, which the index does not list */
    make_shards("{\"weight_map\": {\"a\": \"s-1.safetensors\", \"x\": \"s-2.safetensors\"}}");
    expect_dir_error("'b'", "not listed");
    nxt_tmp_remove();
}

TEST(shard_names_wrong_file) {
    nxt_tmp_make("st");
    /* both shards opened, but b is said to be in s-1 */
    make_shards("{\"weight_map\": {\"a\": \"s-1.safetensors\", \"b\": \"s-1.safetensors\", "
                "\"x\": \"s-2.safetensors\"}}");
    expect_dir_error("'b'", "s-2.safetensors");
    nxt_tmp_remove();
}
