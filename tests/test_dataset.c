/* test_dataset.c — token shards (round trip, u16/u32, and every way a shard
 * can be broken: flipped payload byte, truncation, unknown version, bad
 * magic), the batch loader (sequential windows, random windows, state save
 * and restore), and tokenizing JSONL/text/gzip documents with the fixture
 * tokenizer (EOS after each document, bad lines with file:line, skipping). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nexus/dataset.h"
#include "nxtest.h"

static char dir[64];

static void mk(void) {
    strcpy(dir, "/tmp/nx_dataset_XXXXXX");
    NX_ASSERT(mkdtemp(dir));
}
static void rmdir_all(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    NX_ASSERT(system(cmd) == 0);
}
static void write_file(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    NX_ASSERT(f);
    fwrite(s, 1, n, f);
    fclose(f);
}

TEST(shard_roundtrip_u16_u32) {
    mk();
    char p[128];
    snprintf(p, sizeof p, "%s/a.bin", dir);
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = (i * 7919) % 50000;
    nx_err err;
    nx_shard s;
    CHECK(nx_shard_write(p, ids, 1000, 50000, 0, 3, 0x1234567890abcdefULL, &err) == NX_OK);
    CHECKF(nx_shard_open(&s, p, &err) == NX_OK, "%s", err.msg);
    CHECK(s.info.width == 2 && s.info.n_tokens == 1000 && s.info.vocab_size == 50000);
    CHECK(s.info.eos_id == 0 && s.info.n_docs == 3 && s.info.fingerprint == 0x1234567890abcdefULL);
    nx_tokens v = nx_shard_tokens(&s);
    int bad = 0;
    for (int i = 0; i < 1000; i++) bad += nx_tokens_at(v, (uint64_t)i) != ids[i];
    CHECK(bad == 0);
    nx_shard_close(&s);
    for (int i = 0; i < 1000; i++) ids[i] = 70000 + i; /* needs u32 */
    CHECK(nx_shard_write(p, ids, 1000, 80000, -1, 1, 0, &err) == NX_OK);
    CHECK(nx_shard_open(&s, p, &err) == NX_OK);
    CHECK(s.info.width == 4 && s.info.eos_id == -1 && nx_tokens_at(nx_shard_tokens(&s), 999) == 70999);
    nx_shard_close(&s);
    /* an id outside the vocabulary is refused at write */
    ids[5] = 80000;
    CHECK(nx_shard_write(p, ids, 1000, 80000, -1, 1, 0, &err) == NX_ERR && strstr(err.msg, "token 5"));
    /* ... leaving the previous shard whole and no temporary behind */
    char tmp[140];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    CHECK(access(tmp, F_OK) != 0);
    CHECK(nx_shard_open(&s, p, &err) == NX_OK && s.info.width == 4);
    nx_shard_close(&s);
    /* an unwritable place: the error names the temporary it could not create */
    ids[5] = 0;
    snprintf(tmp, sizeof tmp, "%s/no/such/b.bin", dir);
    CHECK(nx_shard_write(tmp, ids, 1000, 80000, -1, 1, 0, &err) == NX_ERR && strstr(err.msg, "no/such/b.bin.tmp"));
    rmdir_all();
}

static void corrupt_and_expect(const char *p, long off, int delta, long truncate_to, const char *needle) {
    FILE *f = fopen(p, "r+b");
    NX_ASSERT(f);
    if (off >= 0) {
        fseek(f, off, SEEK_SET);
        int c = fgetc(f);
        fseek(f, off, SEEK_SET);
        fputc((c + delta) & 0xFF, f);
    }
    fclose(f);
    if (truncate_to >= 0) NX_ASSERT(truncate(p, truncate_to) == 0);
    nx_shard s;
    nx_err err;
    CHECK(nx_shard_open(&s, p, &err) == NX_ERR);
    CHECKF(strstr(err.msg, needle) && strstr(err.msg, p), "\"%s\" not in: %s", needle, err.msg);
}

TEST(shard_corruption_detected_on_open) {
    mk();
    char p[128];
    snprintf(p, sizeof p, "%s/c.bin", dir);
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i;
    nx_err err;
    CHECK(nx_shard_write(p, ids, 100, 1000, 0, 1, 0, &err) == NX_OK);
    corrupt_and_expect(p, 64 + 17, 1, -1, "CRC32");               /* payload byte flipped */
    CHECK(nx_shard_write(p, ids, 100, 1000, 0, 1, 0, &err) == NX_OK);
    corrupt_and_expect(p, -1, 0, 64 + 150, "truncated");          /* cut mid-payload */
    CHECK(nx_shard_write(p, ids, 100, 1000, 0, 1, 0, &err) == NX_OK);
    corrupt_and_expect(p, -1, 0, 20, "header");                   /* cut mid-header */
    CHECK(nx_shard_write(p, ids, 100, 1000, 0, 1, 0, &err) == NX_OK);
    corrupt_and_expect(p, 8, 1, -1, "version 2");                 /* unknown version */
    CHECK(nx_shard_write(p, ids, 100, 1000, 0, 1, 0, &err) == NX_OK);
    corrupt_and_expect(p, 0, 1, -1, "magic");
    CHECK(nx_shard_write(p, ids, 100, 1000, 0, 1, 0, &err) == NX_OK);
    corrupt_and_expect(p, 17, 1, -1, "header checksum");          /* token count changed */
    nx_shard s;
    CHECK(nx_shard_open(&s, "/nonexistent.bin", &err) == NX_ERR);
    rmdir_all();
}

TEST(loader_sequential_and_state) {
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i;
    nx_token_stream st = {.ids = ids, .n = 100};
    nx_loader l;
    nx_err err;
    CHECK(nx_loader_init(&l, nx_stream_tokens(&st), 2, 4, NX_BATCH_SEQUENTIAL, 1, &err) == NX_OK);
    int32_t in[8], tg[8];
    nx_loader_next(&l, in, tg);
    /* windows of T+1 = 5: [0..5) and [5..10) */
    CHECK(in[0] == 0 && in[3] == 3 && tg[0] == 1 && tg[3] == 4);
    CHECK(in[4] == 5 && tg[7] == 9);
    nx_loader_state saved = l.st;
    int32_t a[8], b[8], ta[8], tb[8];
    nx_loader_next(&l, a, ta);
    l.st = saved;
    nx_loader_next(&l, b, tb);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(ta, tb, sizeof ta) && a[0] == 10);
    /* 100 tokens hold 20 windows: the 11th batch wraps to 0 */
    for (int k = 0; k < 8; k++) nx_loader_next(&l, in, tg);
    CHECK(l.st.epoch == 0);
    nx_loader_next(&l, in, tg);
    CHECK(l.st.epoch == 1 && in[0] == 0);
    CHECK(nx_loader_init(&l, nx_stream_tokens(&st), 1, 100, NX_BATCH_SEQUENTIAL, 1, &err) == NX_ERR);
    CHECK(nx_loader_init(&l, nx_stream_tokens(&st), 1, 99, NX_BATCH_SEQUENTIAL, 1, &err) == NX_OK);
}

TEST(loader_random_reproducible) {
    int32_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = i;
    nx_token_stream st = {.ids = ids, .n = 50};
    nx_loader l1, l2;
    nx_err err;
    CHECK(nx_loader_init(&l1, nx_stream_tokens(&st), 3, 9, NX_BATCH_RANDOM, 42, &err) == NX_OK);
    CHECK(nx_loader_init(&l2, nx_stream_tokens(&st), 3, 9, NX_BATCH_RANDOM, 42, &err) == NX_OK);
    int32_t a[27], b[27], ta[27], tb[27];
    bool seen_last = false, ok = true;
    for (int k = 0; k < 500; k++) {
        nx_loader_next(&l1, a, ta);
        nx_loader_next(&l2, b, tb);
        ok = ok && !memcmp(a, b, sizeof a);
        for (int r = 0; r < 3; r++) {
            ok = ok && a[r * 9] >= 0 && a[r * 9] <= 40 && ta[r * 9 + 8] == a[r * 9] + 9; /* contiguous window */
            seen_last = seen_last || a[r * 9] == 40;  /* the last possible start is reachable */
        }
    }
    CHECK(ok && seen_last);
    nx_loader_state s = l1.st;
    nx_loader_next(&l1, a, ta);
    l1.st = s;
    nx_loader_next(&l1, b, tb);
    CHECK(!memcmp(a, b, sizeof a));
}

static void expect_stream(const nx_token_stream *s, const int32_t *want, size_t n) {
    bool same = s->n == n;
    for (size_t i = 0; same && i < n; i++) same = s->ids[i] == want[i];
    CHECK(same);
}

TEST(tokenize_jsonl_text_gzip) {
    mk();
    nx_tokenizer *t;
    nx_err err;
    CHECK(nx_tokenizer_load(&t, "tests/fixtures/tok-bytelevel", &err) == NX_OK);
    char p[128], gz[128], txt[128], bad[128];
    snprintf(p, sizeof p, "%s/d.jsonl", dir);
    snprintf(gz, sizeof gz, "%s/d.jsonl.gz", dir);
    snprintf(txt, sizeof txt, "%s/d.txt", dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    const char *jl = "{\"text\": \"hello\"}\n\n{\"text\": \" the\", \"id\": 2}\r\n{\"body\": \"x\", \"text\": \"lll\"}";
    write_file(p, jl, strlen(jl));
    gzFile g = gzopen(gz, "wb");
    gzwrite(g, jl, (unsigned)strlen(jl));
    gzclose(g);
    write_file(txt, "hello\n\nhello", 12);
    const int32_t want[] = {261, 265, 258, 265, 259, 108, 265};
    for (int th = 1; th <= 2; th++) {
        nx_docs_opts o = {.eos_id = 265, .threads = th};
        nx_token_stream s = {0};
        nx_docs_stats st;
        const char *paths[] = {p};
        CHECKF(nx_dataset_tokenize(t, paths, 1, &o, &s, &st, &err) == NX_OK, "%s", err.msg);
        expect_stream(&s, want, 7);
        CHECK(s.n_docs == 3 && s.doc_end[0] == 2 && s.doc_end[2] == 7 && st.docs == 3 && st.bytes == 12);
        nx_token_stream_free(&s);
        const char *gpaths[] = {gz};
        CHECK(nx_dataset_tokenize(t, gpaths, 1, &o, &s, &st, &err) == NX_OK);
        expect_stream(&s, want, 7);
        nx_token_stream_free(&s);
    }
    /* plain text: the whole file is one document */
    nx_docs_opts o = {.eos_id = 265};
    nx_token_stream s = {0};
    const char *tpaths[] = {txt, p};
    CHECK(nx_dataset_tokenize(t, tpaths, 2, &o, &s, NULL, &err) == NX_OK);
    const int32_t wt[] = {261, 10, 10, 261, 265, 261, 265, 258, 265, 259, 108, 265};
    expect_stream(&s, wt, 12);
    CHECK(s.n_docs == 4);
    nx_token_stream_free(&s);
    /* bad lines: not JSON (line 2), missing field (line 3), invalid UTF-8 (line 4) */
    const char *bl = "{\"text\": \"hello\"}\n{\"text\": hello}\n{\"body\": \"x\"}\n{\"text\": \"a\xff\"}\n{\"text\": \"lll\"}\n";
    write_file(bad, bl, strlen(bl));
    const char *bpaths[] = {bad};
    CHECK(nx_dataset_tokenize(t, bpaths, 1, &o, &s, NULL, &err) == NX_ERR);
    CHECKF(strstr(err.msg, "bad.jsonl:2:") && strstr(err.msg, "not valid JSON"), "%s", err.msg);
    nx_token_stream_free(&s);
    const char *l3 = strstr(bl, "{\"body"), *l4 = strstr(bl, "{\"text\": \"a");
    write_file(bad, l3, strlen(l3)); /* from line 3 on */
    CHECK(nx_dataset_tokenize(t, bpaths, 1, &o, &s, NULL, &err) == NX_ERR);
    CHECKF(strstr(err.msg, "bad.jsonl:1:") && strstr(err.msg, "\"text\""), "%s", err.msg);
    nx_token_stream_free(&s);
    write_file(bad, l4, strlen(l4)); /* from line 4 on */
    CHECK(nx_dataset_tokenize(t, bpaths, 1, &o, &s, NULL, &err) == NX_ERR);
    CHECKF(strstr(err.msg, "bad.jsonl:1:") && strstr(err.msg, "UTF-8"), "%s", err.msg);
    nx_token_stream_free(&s);
    write_file(bad, bl, strlen(bl));
    o.skip_bad_lines = true;
    nx_docs_stats st;
    CHECK(nx_dataset_tokenize(t, bpaths, 1, &o, &s, &st, &err) == NX_OK);
    CHECK(st.bad_lines == 3 && st.docs == 2);
    const int32_t wb[] = {261, 265, 259, 108, 265};
    expect_stream(&s, wb, 5);
    nx_token_stream_free(&s);
    nx_tokenizer_free(t);
    rmdir_all();
}

/* Issue 15, item 6: a gzip stream that ends early (the 10-byte header only,
 * or cut in the middle) is an error naming the file and the byte offset,
 * also with skip_bad_lines — never a clean end of file. */
TEST(truncated_gzip_is_an_error_with_offset) {
    mk();
    nx_tokenizer *t;
    nx_err err;
    CHECK(nx_tokenizer_load(&t, "tests/fixtures/tok-bytelevel", &err) == NX_OK);
    char gz[128], txt[128];
    snprintf(gz, sizeof gz, "%s/c.jsonl.gz", dir);
    snprintf(txt, sizeof txt, "%s/c.txt.gz", dir);
    const char *paths[2][1] = {{gz}, {txt}};
    for (int kind = 0; kind < 2; kind++) {
        gzFile g = gzopen(paths[kind][0], "wb");
        nx_rng r;
        nx_rng_seed(&r, 5);
        for (int d = 0; d < 520; d++) {
            gzprintf(g, "{\"text\": \"doc %d", d);
            for (int w = 0; w < 20; w++) gzprintf(g, " w%llu", (unsigned long long)nx_rng_below(&r, 100000));
            gzprintf(g, "\"}\n");
        }
        gzclose(g);
        FILE *f = fopen(paths[kind][0], "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        long cuts[2] = {10, size / 2};
        for (int c = 0; c < 2; c++) {
            CHECK(truncate(paths[kind][0], cuts[c]) == 0);
            for (int skip = 0; skip < 2; skip++) {
                nx_docs_opts o = {.eos_id = 265, .skip_bad_lines = skip};
                nx_token_stream s = {0};
                nx_docs_stats st = {0};
                int rc = nx_dataset_tokenize(t, paths[kind], 1, &o, &s, &st, &err);
                CHECKF(rc == NX_ERR && strstr(err.msg, paths[kind][0]) && strstr(err.msg, "truncated") &&
                       strstr(err.msg, "byte"),
                       "%s cut at %ld (skip %d): %s (%zu documents read)", paths[kind][0], cuts[c], skip,
                       rc ? err.msg : "no error", st.docs);
                nx_token_stream_free(&s);
            }
        }
    }
    nx_tokenizer_free(t);
    rmdir_all();
}

/* Issue 15, item 7: each JSONL line is parsed strictly — trailing garbage,
 * a raw NUL byte, a \u0000 escape in the text and a repeated text field
 * are errors at file:line (skipped and counted with skip_bad_lines), and a
 * bad line never swallows the next one. */
TEST(jsonl_lines_are_parsed_strictly) {
    mk();
    nx_tokenizer *t;
    nx_err err;
    CHECK(nx_tokenizer_load(&t, "tests/fixtures/tok-bytelevel", &err) == NX_OK);
    char p[128];
    snprintf(p, sizeof p, "%s/s.jsonl", dir);
    const char *paths[] = {p};
    static const struct { const char *text; size_t len; const char *needle; } cases[] = {
        {"{\"text\": \"hello\"}\n{\"text\": \"hello\"} GARBAGE\n{\"text\": \"lll\"}\n", 0, "not valid JSON"},
        {"{\"text\": \"hello\"}\n{\"text\": \"a\0b\"}\n{\"text\": \"lll\"}\n", 50, "NUL"},
        {"{\"text\": \"hello\"}\n{\"text\": \"a\\u0000b\"}\n{\"text\": \"lll\"}\n", 0, "\\u0000"},
        {"{\"text\": \"hello\"}\n{\"text\": \"a\", \"text\": \"b\"}\n{\"text\": \"lll\"}\n", 0, "more than once"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        write_file(p, cases[i].text, len);
        nx_docs_opts o = {.eos_id = 265};
        nx_token_stream s = {0};
        nx_docs_stats st = {0};
        int rc = nx_dataset_tokenize(t, paths, 1, &o, &s, &st, &err);
        CHECKF(rc == NX_ERR && strstr(err.msg, "s.jsonl:2:") && strstr(err.msg, cases[i].needle), "case %zu: %s",
               i, rc ? err.msg : "no error");
        nx_token_stream_free(&s);
        o.skip_bad_lines = true;
        rc = nx_dataset_tokenize(t, paths, 1, &o, &s, &st, &err);
        /* "hello" and "lll": 261 EOS 259 108 EOS */
        const int32_t want[] = {261, 265, 259, 108, 265};
        CHECKF(rc == NX_OK && st.bad_lines == 1 && st.docs == 2, "case %zu skipped: rc %d, %zu bad, %zu docs", i,
               rc, st.bad_lines, st.docs);
        if (rc == NX_OK) expect_stream(&s, want, 5);
        nx_token_stream_free(&s);
    }
    nx_tokenizer_free(t);
    rmdir_all();
}

/* Issue 15, item 8: shard sets are written and read as a whole. */
TEST(shard_set_written_and_read_as_a_whole) {
    mk();
    nx_err e;
    int32_t a[40], b[50];
    for (int i = 0; i < 40; i++) a[i] = i % 7;
    for (int i = 0; i < 50; i++) b[i] = (i * 3) % 11;
    nx_shard_part pa[2] = {{"train.bin", a, 30, 3}, {"val.bin", a + 30, 10, 1}};
    nx_shard_part pb[2] = {{"train.bin", b, 40, 4}, {"val.bin", b + 40, 10, 2}};
    CHECK(nx_shard_set_write(dir, pa, 2, 100, 6, 0x1234, &e) == NX_OK);
    nx_shard s;
    CHECK(nx_shard_set_open(&s, dir, "val.bin", &e) == NX_OK && s.info.n_tokens == 10);
    nx_shard_close(&s);
    char p[256], q[256], cmd[600];
    snprintf(p, sizeof p, "%s/val.bin", dir);
    snprintf(q, sizeof q, "%s/val-a.bin", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", p, q);
    CHECK(system(cmd) == 0);
    /* a second set without validation: val.bin goes */
    CHECK(nx_shard_set_write(dir, pa, 1, 100, 6, 0x1234, &e) == NX_OK);
    CHECK(access(p, F_OK) != 0);
    CHECK(nx_shard_set_open(&s, dir, "val.bin", &e) == NX_ERR && strstr(e.msg, "without a validation split"));
    CHECK(nx_shard_set_open(&s, dir, "train.bin", &e) == NX_OK);
    nx_shard_close(&s);
    /* another set's val.bin copied in: refused */
    CHECK(nx_shard_set_write(dir, pb, 2, 100, 6, 0x1234, &e) == NX_OK);
    snprintf(cmd, sizeof cmd, "cp %s %s", q, p);
    CHECK(system(cmd) == 0);
    CHECKF(nx_shard_set_open(&s, dir, "val.bin", &e) == NX_ERR && strstr(e.msg, "does not belong"), "%s", e.msg);
    /* no manifest (an interrupted write): refused */
    snprintf(p, sizeof p, "%s/" NX_SHARD_MANIFEST, dir);
    CHECK(unlink(p) == 0);
    CHECK(nx_shard_set_open(&s, dir, "train.bin", &e) == NX_ERR && strstr(e.msg, "no manifest.json"));
    rmdir_all();
}

/* Issue 15, item 11: an empty text is a document of no tokens (just the
 * EOS), also as the very first one (UBSan: no memcpy into a NULL stream). */
TEST(empty_text_is_an_empty_document) {
    mk();
    nx_tokenizer *t;
    nx_err err;
    CHECK(nx_tokenizer_load(&t, "tests/fixtures/tok-bytelevel", &err) == NX_OK);
    char p[128];
    snprintf(p, sizeof p, "%s/e.jsonl", dir);
    const char *jl = "{\"text\": \"\"}\n{\"text\": \"lll\"}\n{\"text\": \"\"}\n";
    write_file(p, jl, strlen(jl));
    const char *paths[] = {p};
    nx_docs_opts o = {.eos_id = -1};
    nx_token_stream s = {0};
    CHECKF(nx_dataset_tokenize(t, paths, 1, &o, &s, NULL, &err) == NX_OK, "%s", err.msg);
    const int32_t want[] = {259, 108};
    expect_stream(&s, want, 2);
    CHECK(s.n_docs == 3 && s.doc_end[0] == 0 && s.doc_end[2] == 2);
    nx_token_stream_free(&s);
    nx_tokenizer_free(t);
    rmdir_all();
}
