/* test_checkpoint.c — checkpoints round-trip exactly, keep the newest K,
 * and reject what they must: corrupt bytes (CRC), truncation, another
 * config, another student size. A sparsity mask round-trips and version-2
 * files (before masks) still load. A full disk during a save leaves the
 * previous checkpoint intact (on a 256 KiB tmpfs when we may mount one). */
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/checkpoint.h"
#include "nxtest.h"

static char dir[64];

static void fill(float *x, size_t n, float k) {
    for (size_t i = 0; i < n; i++) x[i] = k * (float)i + 0.5f;
}

/* What an optimizer hands over: AdamW's moments and step count. */
typedef struct {
    float *m, *v;
    int64_t t;
} moments;

static moments moments_new(size_t n) { return (moments){calloc(n, 4), calloc(n, 4), 0}; }
static void moments_free(moments *o) { free(o->m), free(o->v); }

static nx_ckpt_meta meta_at(int64_t step) {
    nx_ckpt_meta m = {.config_hash = 0xabcdef, .step = step, .tokens = step * 100, .best_val_loss = 3.5};
    nx_rng_seed(&m.rng, (uint64_t)step);
    m.data_state_len = 3;
    memcpy(m.data_state, "xyz", 3);
    return m;
}

TEST(roundtrip_keep_and_latest) {
    strcpy(dir, "/tmp/nxckXXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    size_t n = 1000;
    float *p = malloc(n * 4), *q = malloc(n * 4);
    moments o = moments_new(n), o2 = moments_new(n);
    fill(p, n, 1), fill(o.m, n, 2), fill(o.v, n, 3);
    o.t = 7;
    nx_err e;
    for (int s = 10; s <= 40; s += 10) {
        nx_ckpt_meta m = meta_at(s);
        CHECK(nx_ckpt_save(dir, &m, n, p, o.m, o.v, NULL, o.t, 2, &e) == NX_OK);
    }
    char path[256];
    CHECK(nx_ckpt_latest(dir, path, sizeof path, &e) == NX_OK && strstr(path, "step-00000040.nxck"));
    char old[300];
    snprintf(old, sizeof old, "%s/step-00000020.nxck", dir);
    CHECK(access(old, F_OK) != 0); /* only the newest 2 kept */
    nx_ckpt_meta got;
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, NULL, NULL, &o2.t, &e) == NX_OK);
    CHECK(memcmp(p, q, n * 4) == 0 && memcmp(o.m, o2.m, n * 4) == 0 && memcmp(o.v, o2.v, n * 4) == 0);
    nx_ckpt_meta want = meta_at(40);
    CHECK(got.step == 40 && got.tokens == 4000 && o2.t == 7 && got.data_state_len == 3);
    CHECK(memcmp(got.rng.s, want.rng.s, sizeof want.rng.s) == 0);
    /* another config */
    CHECK(nx_ckpt_load(path, 0x1234, &got, n, q, o2.m, o2.v, NULL, NULL, &o2.t, &e) == NX_ERR && strstr(e.msg, "different configuration"));
    /* another student size */
    moments o3 = moments_new(n + 1);
    float *r = malloc((n + 1) * 4);
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n + 1, r, o3.m, o3.v, NULL, NULL, &o3.t, &e) == NX_ERR && strstr(e.msg, "student"));
    /* corrupt one byte in the payload */
    FILE *f = fopen(path, "r+b");
    fseek(f, 2000, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    memset(q, 0, n * 4);
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, NULL, NULL, &o2.t, &e) == NX_ERR && strstr(e.msg, "CRC") && strstr(e.msg, path));
    CHECK(q[0] == 0.0f); /* nothing half-loaded */
    /* truncation */
    CHECK(truncate(path, 500) == 0);
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, NULL, NULL, &o2.t, &e) == NX_ERR && strstr(e.msg, "truncated"));
    CHECK(nx_ckpt_load("/nonexistent/x.nxck", 0, &got, n, q, o2.m, o2.v, NULL, NULL, &o2.t, &e) == NX_ERR && strstr(e.msg, "/nonexistent/x.nxck"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(p), free(q), free(r);
    moments_free(&o), moments_free(&o2), moments_free(&o3);
}

TEST(mask_roundtrip_and_version_2_files) {
    char d[] = "/tmp/nxckmXXXXXX";
    CHECK(mkdtemp(d) != NULL);
    size_t n = 777;
    float *p = malloc(n * 4), *q = malloc(n * 4);
    uint8_t *mk = malloc(n), *got_mk = calloc(n, 1);
    moments o = moments_new(n), o2 = moments_new(n);
    fill(p, n, 1), fill(o.m, n, 2), fill(o.v, n, 3);
    for (size_t i = 0; i < n; i++) mk[i] = (i % 3) != 0;
    nx_err e;
    nx_ckpt_meta m = meta_at(5), got;
    CHECK(nx_ckpt_save(d, &m, n, p, o.m, o.v, mk, 5, 0, &e) == NX_OK);
    char path[256];
    bool has = false;
    CHECK(nx_ckpt_latest(d, path, sizeof path, &e) == NX_OK);
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, got_mk, &has, &o2.t, &e) == NX_OK);
    CHECK(has && memcmp(mk, got_mk, n) == 0 && memcmp(p, q, n * 4) == 0 && o2.t == 5);
    /* a corrupt mask byte fails the CRC */
    struct stat st;
    CHECK(stat(path, &st) == 0);
    FILE *f = fopen(path, "r+b");
    fseek(f, st.st_size - 10, SEEK_SET);
    fputc(7, f);
    fclose(f);
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, got_mk, &has, &o2.t, &e) == NX_ERR && strstr(e.msg, "CRC"));
    /* a version-2 file (no mask: the same bytes with version 2) loads, without a mask */
    CHECK(nx_ckpt_save(d, &m, n, p, o.m, o.v, NULL, 5, 0, &e) == NX_OK);
    f = fopen(path, "r+b");
    uint32_t v2 = 2;
    fseek(f, 8, SEEK_SET);
    fwrite(&v2, 4, 1, f);
    fclose(f);
    has = true;
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, got_mk, &has, &o2.t, &e) == NX_OK && !has);
    /* an unknown version is refused with a hint */
    f = fopen(path, "r+b");
    uint32_t v9 = 9;
    fseek(f, 8, SEEK_SET);
    fwrite(&v9, 4, 1, f);
    fclose(f);
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, n, q, o2.m, o2.v, got_mk, &has, &o2.t, &e) == NX_ERR &&
          strstr(e.msg, "version 9"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
    free(p), free(q), free(mk), free(got_mk);
    moments_free(&o), moments_free(&o2);
}

TEST(full_disk_keeps_previous_checkpoint) {
    char mnt[] = "/tmp/nxfullXXXXXX";
    CHECK(mkdtemp(mnt) != NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=256k tmpfs %s 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) {
        rmdir(mnt);
        SKIP("cannot mount a 256 KiB tmpfs here (needs root)");
    }
    size_t small = 10000, big = 40000; /* 3 × 40 KB fits 256 KiB once, not twice */
    float *p = calloc(big, 4);
    moments o = moments_new(small);
    nx_err e;
    nx_ckpt_meta m = meta_at(1);
    CHECK(nx_ckpt_save(mnt, &m, small, p, o.m, o.v, NULL, o.t, 0, &e) == NX_OK);
    moments ob = moments_new(big);
    m = meta_at(2);
    CHECK(nx_ckpt_save(mnt, &m, big, p, ob.m, ob.v, NULL, ob.t, 0, &e) == NX_ERR && strstr(e.msg, "disk full"));
    char path[256];
    CHECK(nx_ckpt_latest(mnt, path, sizeof path, &e) == NX_OK && strstr(path, "step-00000001"));
    nx_ckpt_meta got;
    CHECK(nx_ckpt_load(path, 0xabcdef, &got, small, p, o.m, o.v, NULL, NULL, &o.t, &e) == NX_OK && got.step == 1);
    snprintf(cmd, sizeof cmd, "umount %s", mnt);
    CHECK(system(cmd) == 0);
    rmdir(mnt);
    free(p);
    moments_free(&o), moments_free(&ob);
}

/* Issue 15, item 2: pruning keeps the newest `keep` checkpoints of this run
 * (its config hash) and never deletes another run's. */
TEST(pruning_keeps_only_this_runs_newest) {
    char d[] = "/tmp/nxprXXXXXX";
    CHECK(mkdtemp(d) != NULL);
    size_t n = 10;
    float p[10] = {0};
    moments o = moments_new(n);
    nx_err e;
    nx_ckpt_meta foreign = meta_at(30);
    foreign.config_hash = 0x777;
    uint8_t mk[10];
    memset(mk, 1, sizeof mk);
    CHECK(nx_ckpt_save(d, &foreign, n, p, o.m, o.v, NULL, 0, 2, &e) == NX_OK);
    for (int s = 1; s <= 4; s++) { /* this run's with a mask, as a pruned student's: pruned all the same */
        nx_ckpt_meta m = meta_at(s);
        CHECK(nx_ckpt_save(d, &m, n, p, o.m, o.v, mk, 0, 2, &e) == NX_OK);
    }
    const char *want[] = {"step-00000003.nxck", "step-00000004.nxck", "step-00000030.nxck"};
    const char *gone[] = {"step-00000001.nxck", "step-00000002.nxck"};
    char path[300];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", d, want[i]);
        CHECKF(access(path, F_OK) == 0, "%s was deleted", want[i]);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", d, gone[i]);
        CHECKF(access(path, F_OK) != 0, "%s was kept", gone[i]);
    }
    snprintf(path, sizeof path, "rm -rf %s", d);
    CHECK(system(path) == 0);
    moments_free(&o);
}
