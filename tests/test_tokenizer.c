/* test_tokenizer.c — the tokenizer on small hand-made tokenizer.json
 * fixtures (tests/fixtures/, written by make_fixtures.py), one per style:
 * GPT-2 byte-level, Llama-3 Split regex + byte-level with added tokens, and
 * SentencePiece-style (Prepend/Replace, byte fallback, unk, decoder chain),
 * plus Metaspace. Expected ids were derived by hand from the fixture
 * vocabularies and merge ranks (comments show the reasoning); the same code
 * reproduces the Hugging Face golden encodings in tests/golden_tokenizer.c.
 * Also the bad inputs: invalid UTF-8, broken merges, unsupported parts. */
#include <cJSON.h>
#include <dirent.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/fsutil.h"
#include "nexus/tokenizer.h"
#include "nxtest.h"

static nx_tokenizer *load(const char *dir) {
    nx_err err;
    nx_tokenizer *t;
    if (nx_tokenizer_load(&t, dir, &err)) { fprintf(stderr, "  %s\n", err.msg); return NULL; }
    return t;
}

/* encodes text and compares with want[0..nw); also checks decode(ids) == text
 * when roundtrip is set */
static void expect(const nx_tokenizer *t, const char *text, bool special, const int32_t *want, size_t nw, bool roundtrip) {
    int32_t *ids;
    size_t n;
    nx_err err;
    if (nx_tokenizer_encode(t, text, strlen(text), special, &ids, &n, &err)) { CHECKF(0, "%s", err.msg); return; }
    bool same = n == nw;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
    if (!same) {
        fprintf(stderr, "  \"%s\": got", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    CHECKF(same, "encoding of \"%s\"", text);
    if (roundtrip) {
        char *dec;
        CHECK(nx_tokenizer_decode(t, ids, n, special, &dec, &err) == NX_OK);
        CHECKF(!strcmp(dec, text), "decode: \"%s\" != \"%s\"", dec, text);
        free(dec);
    }
    free(ids);
}
#define EXPECT(t, text, special, rt, ...) do { const int32_t w_[] = {__VA_ARGS__}; expect(t, text, special, w_, sizeof w_ / sizeof w_[0], rt); } while (0)

static void expect_empty(const nx_tokenizer *t, const char *text) {
    int32_t *ids;
    size_t n = 99;
    nx_err err;
    CHECK(nx_tokenizer_encode(t, text, strlen(text), false, &ids, &n, &err) == NX_OK);
    CHECK(n == 0);
    free(ids);
}

TEST(bytelevel_gpt2_regex_and_merges) {
    nx_tokenizer *t = load("tests/fixtures/tok-bytelevel");
    CHECK(t);
    if (!t) return;
    /* "hello": h+e (rank 1), l+l (3), he+ll (4), hell+o (5) -> hello 261;
     * " the": Ġ+t (0), h+e (1), Ġt+he (2) -> 258; " world": Ġ+w (6) then bytes o r l d */
    EXPECT(t, "hello the world", false, true, 261, 258, 262, 111, 114, 108, 100);
    /* equal ranks: the leftmost pair merges first */
    EXPECT(t, "lll", false, true, 259, 108);
    /* GPT-2 regex keeps " ?\p{N}+" together: 3+4 merge (263) happens */
    EXPECT(t, "12345", false, true, 49, 50, 263, 53);
    /* "\s+(?!\S)": of three spaces before a word, two go alone, one joins the word */
    EXPECT(t, "a   b", false, true, 97, 32, 32, 32, 98);
    /* newline is byte 10 -> 'Ċ' (id 10); special token split out even with add_special off */
    EXPECT(t, "a\nhi<|endoftext|>", false, true, 97, 10, 104, 105, 265);
    /* multi-byte UTF-8: é = C3 A9 -> two byte tokens */
    EXPECT(t, "\xc3\xa9", false, true, 0xC3, 0xA9);
    /* ByteLevel post-processor adds nothing */
    EXPECT(t, "hello", true, true, 261);
    expect_empty(t, "");
    CHECK(nx_tokenizer_vocab_size(t) == 266);
    CHECK(nx_tokenizer_eos_id(t) == 265 && nx_tokenizer_bos_id(t) == 265);
    CHECK(nx_tokenizer_token_to_id(t, "Ġthe") == 258);
    CHECK(nx_tokenizer_token_to_id(t, "nope") == -1);
    CHECK(!strcmp(nx_tokenizer_id_to_token(t, 261), "hello"));
    CHECK(nx_tokenizer_id_to_token(t, 9999) == NULL);
    CHECK(nx_tokenizer_is_special(t, 265) && !nx_tokenizer_is_special(t, 261));
    /* skip_special drops <|endoftext|> */
    int32_t ids[] = {261, 265, 258};
    char *s;
    nx_err err;
    CHECK(nx_tokenizer_decode(t, ids, 3, true, &s, &err) == NX_OK && !strcmp(s, "hello the"));
    free(s);
    /* an id outside the vocabulary is an error naming its position */
    int32_t bad[] = {261, 5000};
    CHECK(nx_tokenizer_decode(t, bad, 2, false, &s, &err) == NX_ERR && strstr(err.msg, "position 1"));
    nx_tokenizer_free(t);
}

TEST(ignore_merges_uses_whole_word) {
    size_t len;
    nx_err rerr;
    char *js = nx_read_file("tests/fixtures/tok-bytelevel/tokenizer.json", 1u << 30, &len, &rerr);
    CHECKF(js, "%s", rerr.msg);
    if (!js) return;
    cJSON *root = cJSON_ParseWithLength(js, len);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "model"), "ignore_merges", cJSON_CreateTrue());
    char *j2 = cJSON_PrintUnformatted(root);
    nx_tokenizer *t;
    nx_err err;
    CHECK(nx_tokenizer_load_json(&t, j2, strlen(j2), "ignore.json", &err) == NX_OK);
    EXPECT(t, "lll", false, true, 264);        /* "lll" is in the vocab: taken whole */
    EXPECT(t, "hello", false, true, 261);
    CHECK(nx_tokenizer_fingerprint(t) != 0);
    nx_tokenizer *u = load("tests/fixtures/tok-bytelevel");
    CHECK(u && nx_tokenizer_fingerprint(u) == nx_tokenizer_fingerprint(t)); /* same vocab and merges */
    nx_tokenizer *v = load("tests/fixtures/tok-spm");
    CHECK(v && nx_tokenizer_fingerprint(u) != nx_tokenizer_fingerprint(v));
    nx_tokenizer_free(t);
    nx_tokenizer_free(u);
    nx_tokenizer_free(v);
    free(j2);
    cJSON_Delete(root);
    free(js);
}

TEST(split_regex_added_tokens_template) {
    nx_tokenizer *t = load("tests/fixtures/tok-split");
    CHECK(t);
    if (!t) return;
    /* Llama-3 regex cuts digits in groups of three: "123" "45", so 3+4 never merge */
    EXPECT(t, "12345", false, true, 49, 50, 51, 52, 53);
    /* "\s+(?!\S)" leaves one space to join the letter run: " " " x" */
    EXPECT(t, "  x", false, true, 32, 32, 120);
    /* TemplateProcessing: <s> $A </s> */
    EXPECT(t, "hello", true, true, 300, 261, 301);
    CHECK(nx_tokenizer_bos_id(t) == 300 && nx_tokenizer_eos_id(t) == 301);
    /* lstrip/rstrip: "[M]" swallows the spaces on both sides */
    EXPECT(t, "a [M] b", false, false, 97, 302, 98);
    /* single_word: "tok" alone matches, inside "tokens" or "atok" it does not */
    EXPECT(t, "tok tokens", false, true, 303, 256, 111, 107, 101, 110, 115);
    EXPECT(t, "atok", false, true, 97, 116, 111, 107);
    /* CRLF: "[\r\n]" runs stay together as one piece of bytes 13 10 */
    EXPECT(t, "a\r\nb", false, true, 97, 13, 10, 98);
    nx_tokenizer_free(t);
}

TEST(sentencepiece_style_byte_fallback_unk) {
    nx_tokenizer *t = load("tests/fixtures/tok-spm");
    CHECK(t);
    if (!t) return;
    /* "▁hello": ▁+h (0), e+l (1), l+o (2), ▁h+el (3), ▁hel+lo (4) -> 268 */
    EXPECT(t, "hello", false, true, 268);
    /* "▁hello▁wx": x has no token -> byte fallback <0x78> = 3 + 0x78 */
    EXPECT(t, "hello wx", false, true, 268, 259, 269, 3 + 0x78);
    /* é = C3 A9 -> <0xC3> <0xA9> */
    EXPECT(t, "\xc3\xa9", false, true, 259, 3 + 0xC3, 3 + 0xA9);
    /* TemplateProcessing adds <s> only */
    EXPECT(t, "hello", true, true, 1, 268);
    /* one space: Prepend + Replace -> "▁▁" */
    EXPECT(t, " ", false, true, 259, 259);
    expect_empty(t, "");  /* Prepend does not touch an empty string */
    /* the literal text "<s>" is the special token; Prepend then applies to
     * the piece after it as well (HF normalizes each piece) */
    EXPECT(t, "<s>hello", false, false, 1, 268);
    /* a lone byte token decodes to U+FFFD, as ByteFallback does */
    int32_t ids[] = {268, 3 + 0xC3};
    char *s;
    nx_err err;
    CHECK(nx_tokenizer_decode(t, ids, 2, false, &s, &err) == NX_OK && !strcmp(s, "hello\xef\xbf\xbd"));
    free(s);
    nx_tokenizer_free(t);
}

static nx_tokenizer *spm_variant(const char *model_key, cJSON *model_val, const char *key, cJSON *val,
                                 const char *key2, cJSON *val2) {
    size_t len;
    nx_err rerr;
    char *js = nx_read_file("tests/fixtures/tok-spm/tokenizer.json", 1u << 30, &len, &rerr);
    if (!js) { fprintf(stderr, "  %s\n", rerr.msg); return NULL; }
    cJSON *root = cJSON_ParseWithLength(js, len);
    free(js);
    if (model_key) cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "model"), model_key, model_val);
    if (key) cJSON_ReplaceItemInObject(root, key, val);
    if (key2) cJSON_ReplaceItemInObject(root, key2, val2);
    char *j2 = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    nx_tokenizer *t;
    nx_err err;
    int rc = nx_tokenizer_load_json(&t, j2, strlen(j2), "variant.json", &err);
    free(j2);
    if (rc) { fprintf(stderr, "  %s\n", err.msg); return NULL; }
    return t;
}

TEST(unk_fused_and_unfused) {
    /* without byte fallback, x and y are unknown: fuse_unk gives one <unk> */
    nx_tokenizer *t = spm_variant("byte_fallback", cJSON_CreateFalse(), NULL, NULL, NULL, NULL);
    CHECK(t);
    if (t) EXPECT(t, "xy", false, false, 259, 0);
    nx_tokenizer_free(t);
    /* fuse_unk off as well: one <unk> per character */
    size_t len;
    nx_err rerr;
    char *js = nx_read_file("tests/fixtures/tok-spm/tokenizer.json", 1u << 30, &len, &rerr);
    CHECKF(js, "%s", rerr.msg);
    if (!js) return;
    char *a = strstr(js, "\"fuse_unk\": true"), *b = strstr(js, "\"byte_fallback\": true");
    CHECK(a && b);
    if (a && b) {
        memcpy(a, "\"fuse_unk\":false", 16);       /* same length: the file stays valid */
        memcpy(b, "\"byte_fallback\":false", 21);
        nx_err err;
        CHECKF(nx_tokenizer_load_json(&t, js, len, "v.json", &err) == NX_OK, "%s", err.msg);
        if (t) EXPECT(t, "xy", false, false, 259, 0, 0);
        nx_tokenizer_free(t);
    }
    free(js);
}

TEST(metaspace_pretokenizer_and_decoder) {
    const char *ms = "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"%s\",\"split\":true}";
    char buf[256];
    snprintf(buf, sizeof buf, ms, "first");
    nx_tokenizer *t = spm_variant(NULL, NULL, "pre_tokenizer", cJSON_Parse(buf), "normalizer", cJSON_CreateNull());
    CHECK(t);
    if (t) {
        /* "hello hello" -> "▁hello▁hello" -> pieces "▁hello" "▁hello" */
        EXPECT(t, "hello hello", false, true, 268, 268);
        /* prepend_scheme first: the piece after "<s>" does not start the input -> no ▁;
         * h e l l o: e+l (1), l+o (2) -> h el lo */
        EXPECT(t, "<s>hello", false, false, 1, 260, 265, 266);
    }
    nx_tokenizer_free(t);
    snprintf(buf, sizeof buf, ms, "always");
    t = spm_variant(NULL, NULL, "pre_tokenizer", cJSON_Parse(buf), "normalizer", cJSON_CreateNull());
    CHECK(t);
    if (t) EXPECT(t, "<s>hello", false, false, 1, 268);
    nx_tokenizer_free(t);
    /* Metaspace decoder: the first token loses its ▁, later ones become spaces */
    snprintf(buf, sizeof buf, ms, "first");
    t = spm_variant(NULL, NULL, "decoder", cJSON_Parse(buf), NULL, NULL);
    CHECK(t);
    if (!t) return;
    int32_t ids[] = {268, 268};
    char *s;
    nx_err err;
    CHECK(nx_tokenizer_decode(t, ids, 2, false, &s, &err) == NX_OK && !strcmp(s, "hello hello"));
    free(s);
    nx_tokenizer_free(t);
}

TEST(invalid_utf8_is_an_error_with_offset) {
    nx_tokenizer *t = load("tests/fixtures/tok-bytelevel");
    CHECK(t);
    if (!t) return;
    const char *cases[] = {"ab\xff", "ab\xc3", "ab\xed\xa0\x80" /* surrogate */, "ab\xc0\xaf" /* overlong */};
    for (int i = 0; i < 4; i++) {
        int32_t *ids;
        size_t n;
        nx_err err;
        CHECK(nx_tokenizer_encode(t, cases[i], strlen(cases[i]), false, &ids, &n, &err) == NX_ERR);
        CHECKF(strstr(err.msg, "byte offset 2"), "%s", err.msg);
        CHECK(ids == NULL && n == 0);
    }
    nx_tokenizer_free(t);
}

/* A key given twice in model.vocab, sharing an id with another string (the
 * fuzzer's leak: the second private key copy replaced the first in the map,
 * which alone freed them). The later id wins, as in HF. */
TEST(vocab_key_given_twice) {
    const char *js = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0,\"b\":0,\"c\":1,\"c\":2},"
                     "\"merges\":[]}}";
    nx_tokenizer *t;
    nx_err err;
    CHECKF(nx_tokenizer_load_json(&t, js, strlen(js), "twice.json", &err) == NX_OK, "%s", err.msg);
    CHECK(nx_tokenizer_token_to_id(t, "a") == 0);
    nx_tokenizer_free(t);
}

static void expect_load_error(const char *json, const char *needle) {
    nx_tokenizer *t = (nx_tokenizer *)1;
    nx_err err;
    CHECK(nx_tokenizer_load_json(&t, json, strlen(json), "bad.json", &err) == NX_ERR);
    CHECK(t == NULL);
    CHECKF(strstr(err.msg, needle), "\"%s\" not in: %s", needle, err.msg);
}

TEST(broken_tokenizer_json_is_rejected) {
    const char *V = "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2}";
    char js[1024];
    snprintf(js, sizeof js, "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[\"a c\"]}}", V);
    expect_load_error(js, "model.merges[0]");
    expect_load_error(js, "\"c\" is not in model.vocab");
    snprintf(js, sizeof js, "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[\"a b\",\"ab\"]}}", V);
    expect_load_error(js, "model.merges[1]");
    snprintf(js, sizeof js, "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[[\"a\",\"b\",\"c\"]]}}", V);
    expect_load_error(js, "model.merges[0]");
    snprintf(js, sizeof js, "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[[\"b\",\"a\"]]}}", V); /* "ba" missing */
    expect_load_error(js, "\"ba\" is not in model.vocab");
    snprintf(js, sizeof js, "{\"model\":{\"type\":\"WordPiece\",%s}}", V);
    expect_load_error(js, "WordPiece");
    snprintf(js, sizeof js, "{\"normalizer\":{\"type\":\"Lowercase\"},\"model\":{\"type\":\"BPE\",%s,\"merges\":[]}}", V);
    expect_load_error(js, "Lowercase");
    snprintf(js, sizeof js, "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",%s,\"merges\":[]}}", V);
    expect_load_error(js, "Whitespace");
    snprintf(js, sizeof js, "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},"
             "\"model\":{\"type\":\"BPE\",%s,\"merges\":[]}}", V);
    expect_load_error(js, "regex does not compile");
    snprintf(js, sizeof js, "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[],\"unk_token\":\"<unk>\"}}", V);
    expect_load_error(js, "unk_token");
    expect_load_error("{\"model\": [", "invalid JSON");
    /* strings that reach the encoder must be UTF-8 (a fuzz finding: an invalid Prepend string) */
    snprintf(js, sizeof js, "{\"normalizer\":{\"type\":\"Prepend\",\"prepend\":\"\xe2\xfe\xff\"},"
             "\"model\":{\"type\":\"BPE\",%s,\"merges\":[]}}", V);
    expect_load_error(js, "the string of key \"prepend\" is not valid UTF-8 (byte 0 of it is 0xe2)");
    snprintf(js, sizeof js, "{\"normalizer\":{\"type\":\"Prepend\",\"prepend\":\"\\udc80\"},"
             "\"model\":{\"type\":\"BPE\",%s,\"merges\":[]}}", V);
    nx_tokenizer *lone = NULL; /* a lone surrogate escape: refused by cJSON or here, never encoded */
    CHECK(nx_tokenizer_load_json(&lone, js, strlen(js), "bad.json", &(nx_err){0}) == NX_ERR && !lone);
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\xff\":0},\"merges\":[]}}", "a JSON key is not valid UTF-8");
    nx_err err;
    nx_tokenizer *t;
    CHECK(nx_tokenizer_load(&t, "/nonexistent/dir", &err) == NX_ERR && strstr(err.msg, "/nonexistent/dir"));
}

TEST(concurrent_encode_matches_serial) {
    nx_tokenizer *t = load("tests/fixtures/tok-split");
    CHECK(t);
    if (!t) return;
    const char *texts[] = {"hello the world", "tok tokens 12345", "a [M] b\r\n", "  x  y  ", "\xc3\xa9t\xc3\xa9 34"};
    int32_t *ref[5];
    size_t nref[5];
    nx_err err;
    for (int i = 0; i < 5; i++) CHECK(nx_tokenizer_encode(t, texts[i], strlen(texts[i]), false, &ref[i], &nref[i], &err) == NX_OK);
    int bad = 0;
    #pragma omp parallel for num_threads(2) reduction(+ : bad)
    for (int k = 0; k < 2000; k++) {
        int i = k % 5;
        int32_t *ids;
        size_t n;
        nx_err e;
        if (nx_tokenizer_encode(t, texts[i], strlen(texts[i]), false, &ids, &n, &e) || n != nref[i] ||
            memcmp(ids, ref[i], n * sizeof(int32_t)))
            bad++;
        free(ids);
    }
    CHECK(bad == 0);
    for (int i = 0; i < 5; i++) free(ref[i]);
    nx_tokenizer_free(t);
}

/* ---- the tokenizer styles the teachers ship (tests/fixtures/teachers/tok-*:
 * trained and run by `tokenizers` 0.23 in scripts/make_teacher_fixtures.py):
 * NFC, NFD, NFKC, NFKD, Replace, Prepend and ByteLevel normalizers, Split,
 * ByteLevel, Metaspace and Digits pre-tokenizers, on unicode-heavy texts
 * (CJK, emoji sequences, combining marks, RTL, fullwidth, digits of other
 * scripts, characters the vocabulary lacks). */
#define STYLES "tests/fixtures/teachers/"

static cJSON *read_golden(const char *path) {
    size_t n;
    nx_err e;
    char *txt = nx_read_file(path, 1u << 30, &n, &e);
    if (!txt) return fprintf(stderr, "  %s\n", e.msg), NULL;
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    return j;
}

/* Every tokenizer style: ids with and without special tokens, decoding. */
TEST(tokenizer_styles_exact_on_unicode_texts) {
    DIR *d = opendir(STYLES);
    NX_ASSERT(d);
    struct dirent *de;
    int styles = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "tok-", 4)) continue;
        char tp[300], gp[300];
        snprintf(tp, sizeof tp, STYLES "%s/tokenizer.json", de->d_name);
        snprintf(gp, sizeof gp, STYLES "%s/golden.json", de->d_name);
        nx_tokenizer *t;
        nx_err e;
        if (nx_tokenizer_load(&t, tp, &e)) {
            CHECKF(0, "%s", e.msg);
            continue;
        }
        cJSON *j = read_golden(gp), *cs;
        int cases = 0, bad = 0;
        cJSON_ArrayForEach(cs, cJSON_GetObjectItem(j, "cases")) {
            const char *text = cJSON_GetObjectItem(cs, "text")->valuestring;
            for (int sp = 0; sp < 2; sp++) {
                cJSON *want = cJSON_GetObjectItem(cs, sp ? "ids_special" : "ids");
                int32_t *ids;
                size_t n;
                if (nx_tokenizer_encode(t, text, strlen(text), sp, &ids, &n, &e)) {
                    CHECKF(0, "%s: %s", de->d_name, e.msg);
                    continue;
                }
                bool same = (int)n == cJSON_GetArraySize(want);
                for (size_t i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
                CHECKF(same, "%s: ids of \"%s\"%s differ from tokenizers'", de->d_name, text, sp ? " (special)" : "");
                bad += !same;
                if (!sp) {
                    char *dec;
                    NX_ASSERT(nx_tokenizer_decode(t, ids, n, false, &dec, &e) == NX_OK);
                    const char *wd = cJSON_GetObjectItem(cs, "decoded")->valuestring;
                    CHECKF(!strcmp(dec, wd), "%s: decode of \"%s\" is \"%s\", tokenizers \"%s\"", de->d_name, text, dec, wd);
                    bad += strcmp(dec, wd) != 0;
                    free(dec);
                }
                free(ids);
            }
            cases++;
        }
        printf("  %-20s %d texts, %d differences\n", de->d_name, cases, bad);
        styles++;
        cJSON_Delete(j);
        nx_tokenizer_free(t);
    }
    closedir(d);
    CHECK(styles >= 7);
}

/* Issue 15, item 11: a word that maps to no ids at all (BPE without an
 * unknown token or byte fallback, a character outside the vocabulary)
 * encodes to nothing, cleanly (UBSan: no memcpy from a NULL buffer). */
TEST(word_with_no_ids_encodes_to_nothing) {
    size_t len;
    nx_err rerr;
    char *js = nx_read_file("tests/fixtures/tok-spm/tokenizer.json", 1u << 30, &len, &rerr);
    CHECKF(js, "%s", rerr.msg);
    if (!js) return;
    cJSON *root = cJSON_ParseWithLength(js, len), *model = cJSON_GetObjectItem(root, "model");
    cJSON_ReplaceItemInObject(model, "unk_token", cJSON_CreateNull());
    cJSON_ReplaceItemInObject(model, "byte_fallback", cJSON_CreateFalse());
    cJSON_ReplaceItemInObject(root, "normalizer", cJSON_CreateNull());
    cJSON_ReplaceItemInObject(root, "post_processor", cJSON_CreateNull());
    char *j2 = cJSON_PrintUnformatted(root);
    nx_tokenizer *t;
    nx_err err;
    CHECKF(nx_tokenizer_load_json(&t, j2, strlen(j2), "nounk.json", &err) == NX_OK, "%s", err.msg);
    int32_t *ids = NULL;
    size_t n = 99;
    for (int k = 0; k < 2; k++) { /* the second time from the word cache */
        CHECK(nx_tokenizer_encode(t, "\xe2\x82\xac", 3, false, &ids, &n, &err) == NX_OK && n == 0);
        free(ids);
    }
    nx_tokenizer_free(t);
    free(j2);
    cJSON_Delete(root);
    free(js);
}
