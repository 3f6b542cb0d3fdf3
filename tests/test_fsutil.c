/* test_fsutil.c — the one whole-file reader and the one atomic writer:
 * contents, size limits, and that no error leaves anything at PATH.tmp or a
 * torn file at PATH (full disk included, on a small tmpfs when root); and
 * the JSON helpers the adapters share (json.h). */
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/json.h"
#include "nxtest.h"

static bool holds(const char *path, const char *want) {
    size_t n;
    nx_err e;
    char *got = nx_read_file(path, 1 << 20, &n, &e);
    bool same = got && n == strlen(want) && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

TEST(read_file_and_stream) {
    nxt_tmp_make("fs");
    nx_err e = {{0}};
    const char *p = nxt_tpath("a.txt");
    const void *parts[2] = {"hello ", "world"};
    size_t lens[2] = {6, 5};
    CHECKF(nx_write_atomic(p, parts, lens, 2, &e) == NX_OK, "%s", e.msg);
    size_t n = 99;
    char *s = nx_read_file(p, 1 << 20, &n, &e);
    CHECK(s && n == 11 && !strcmp(s, "hello world"));
    free(s);
    s = nx_read_file(p, 11, NULL, &e); /* exactly at the limit; len may be NULL */
    CHECK(s && !strcmp(s, "hello world"));
    free(s);
    CHECK(nx_read_file(p, 10, &n, &e) == NULL && strstr(e.msg, p) && strstr(e.msg, "larger than 10"));
    CHECK(nx_read_file(nxt_tpath("none"), 1 << 20, &n, &e) == NULL && strstr(e.msg, "none: cannot open"));
    /* a stream larger than the first 64 KiB buffer */
    FILE *f = tmpfile();
    for (int i = 0; i < 100000; i++) fputc('a' + i % 26, f);
    rewind(f);
    s = nx_read_stream(f, "-", 1 << 20, &n, &e);
    CHECK(s && n == 100000 && s[99999] == 'a' + 99999 % 26 && s[n] == 0);
    free(s);
    rewind(f);
    CHECK(nx_read_stream(f, "-", 99999, &n, &e) == NULL && strstr(e.msg, "larger than 99999"));
    fclose(f);
    /* not a file: a directory, a FIFO (never waited on), a device */
    CHECK(nx_read_file(nxt_tmpdir(), 1 << 20, &n, &e) == NULL && strstr(e.msg, "is a directory"));
    const char *fifo = nxt_tpath("fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(nx_read_file(fifo, 1 << 20, &n, &e) == NULL && strstr(e.msg, "not a regular file (a FIFO)"));
    CHECK(nx_read_file("/dev/zero", 1 << 20, &n, &e) == NULL && strstr(e.msg, "not a regular file (a device)"));
    nxt_tmp_remove();
}

TEST(atomic_commit_replaces_abort_keeps) {
    nxt_tmp_make("fs");
    nx_err e = {{0}};
    const char *p = nxt_tpath("f"), *tmp = nxt_tpath("f.tmp");
    nx_atomic_file f;
    CHECKF(nx_atomic_open(&f, p, &e) == NX_OK, "%s", e.msg);
    CHECK(nx_atomic_write(&f, "one", 3, &e) == NX_OK && nx_atomic_write(&f, NULL, 0, &e) == NX_OK);
    CHECK(exists(tmp) && !exists(p));
    CHECKF(nx_atomic_commit(&f, &e) == NX_OK, "%s", e.msg);
    CHECK(holds(p, "one") && !exists(tmp));
    nx_atomic_abort(&f); /* no-op once committed */
    CHECK(holds(p, "one"));
    /* abandoned: the old file stays, the temporary goes; abort twice is fine */
    CHECK(nx_atomic_open(&f, p, &e) == NX_OK && nx_atomic_write(&f, "two", 3, &e) == NX_OK);
    nx_atomic_abort(&f);
    nx_atomic_abort(&f);
    CHECK(holds(p, "one") && !exists(tmp));
    /* no directory: the error names PATH.tmp */
    const char *q = nxt_tpath("no/such/dir/x");
    CHECK(nx_atomic_open(&f, q, &e) == NX_ERR && strstr(e.msg, "no/such/dir/x.tmp") && strstr(e.msg, "cannot create"));
    nx_atomic_abort(&f);
    /* the rename fails (PATH is a non-empty directory): the temporary goes */
    const char *d = nxt_tpath("dir");
    CHECK(mkdir(d, 0755) == 0);
    CHECK(nx_write_atomic(nxt_tpath("dir/inner"), (const void *const[]){"x"}, (size_t[]){1}, 1, &e) == NX_OK);
    CHECK(nx_atomic_open(&f, d, &e) == NX_OK && nx_atomic_write(&f, "x", 1, &e) == NX_OK);
    CHECK(nx_atomic_commit(&f, &e) == NX_ERR && strstr(e.msg, "rename failed") && strstr(e.msg, d));
    CHECK(!exists(nxt_tpath("dir.tmp")) && holds(nxt_tpath("dir/inner"), "x"));
    nxt_tmp_remove();
}

TEST(atomic_full_disk_leaves_old_file) {
    char mnt[] = "/tmp/nxfsfullXXXXXX";
    CHECK(mkdtemp(mnt) != NULL);
    char cmd[300], p[300], tmp[300];
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=64k tmpfs %s 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) {
        rmdir(mnt);
        SKIP("cannot mount a 64 KiB tmpfs here (needs root)");
    }
    snprintf(p, sizeof p, "%s/f", mnt);
    snprintf(tmp, sizeof tmp, "%s/f.tmp", mnt);
    nx_err e = {{0}};
    const void *parts[1] = {"old"};
    size_t n = 3;
    CHECKF(nx_write_atomic(p, parts, &n, 1, &e) == NX_OK, "%s", e.msg);
    char *big = calloc(1, 1 << 20);
    nx_atomic_file f;
    CHECK(nx_atomic_open(&f, p, &e) == NX_OK);
    CHECK(nx_atomic_write(&f, big, 1 << 20, &e) == NX_ERR && strstr(e.msg, "disk full") && strstr(e.msg, tmp));
    nx_atomic_abort(&f); /* already closed by the failed write: a no-op */
    CHECK(holds(p, "old") && !exists(tmp));
    free(big);
    snprintf(cmd, sizeof cmd, "umount %s", mnt);
    CHECK(system(cmd) == 0);
    rmdir(mnt);
}

static bool raw_is(float v, bool as_float, const char *want) {
    cJSON *x = nx_json_float(v, as_float);
    bool ok = cJSON_IsRaw(x) && !strcmp(x->valuestring, want);
    if (!ok) fprintf(stderr, "  nx_json_float(%.9g, %d) = %s, want %s\n", (double)v, as_float, x->valuestring, want);
    cJSON_Delete(x);
    return ok;
}

TEST(json_float_and_kind) {
    CHECK(raw_is(1e-5f, true, "1e-05"));
    CHECK(raw_is(1e-6f, false, "1e-06"));
    CHECK(raw_is(0.1f, true, "0.1"));
    CHECK(raw_is(10000.0f, true, "1e+04")); /* shortest, and a float to Python already */
    CHECK(raw_is(10000.0f, false, "1e+04"));
    CHECK(raw_is(3.0f, true, "3.0"));
    CHECK(raw_is(3.0f, false, "3"));
    CHECK(raw_is(-2.0f, true, "-2.0"));
    CHECK(raw_is(16777217.0f, true, "16777216.0")); /* rounds to the float first */
    CHECK(raw_is(0.1234567f, true, "0.1234567"));
    cJSON *o = cJSON_Parse("{\"s\":\"x\",\"n\":1,\"a\":[],\"o\":{},\"b\":true,\"z\":null}");
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "s")), "a string"));
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "n")), "a number"));
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "a")), "an array"));
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "o")), "an object"));
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "b")), "a boolean"));
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "z")), "null"));
    CHECK(!strcmp(nx_json_kind(cJSON_GetObjectItem(o, "q")), "missing"));
    cJSON_Delete(o);
}
