/* nxtest.h — a minimal test harness. Each tests/test_<module>.c is one
 * executable: TEST(name) { ... } blocks registered at start-up, CHECK()
 * that records failures without stopping, SKIP() for a test that cannot
 * run here (said as "skip NAME: reason", never counted as a pass), NEED()
 * for a file a test cannot do without (missing: a failure naming it), and
 * a closing line "N passed, N failed, N skipped" that tests/run.sh adds up
 * across executables. */
#ifndef NXTEST_H
#define NXTEST_H

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*nxt_fn)(void);
static struct { const char *name; nxt_fn fn; } nxt_tests[512];
static int nxt_count, nxt_failed_checks;
static char nxt_skip_reason[512];
static int nxt_skipping;

#define TEST(tname)                                                           \
    static void test_##tname(void);                                           \
    __attribute__((constructor)) static void reg_##tname(void) {              \
        nxt_tests[nxt_count].name = #tname;                                   \
        nxt_tests[nxt_count++].fn = test_##tname;                             \
    }                                                                         \
    static void test_##tname(void)

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
            nxt_failed_checks++;                                              \
        }                                                                     \
    } while (0)

#define CHECKF(c, ...)                                                        \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #c); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            nxt_failed_checks++;                                              \
        }                                                                     \
    } while (0)

/* Ends the current test as skipped: printf-style reason, e.g.
 * SKIP("needs root to mount a tmpfs"). Only in the TEST body itself (it
 * returns from it). A test that failed a CHECK before skipping fails. */
#define SKIP(...)                                                             \
    do {                                                                      \
        snprintf(nxt_skip_reason, sizeof nxt_skip_reason, __VA_ARGS__);      \
        nxt_skipping = 1;                                                     \
        return;                                                               \
    } while (0)

/* True when every path exists; otherwise one failed check that names each
 * missing one. For inputs a test cannot do without (golden files under
 * ../shared): if (!NEED(a, b)) return; — missing input fails, never skips. */
#define NEED(...) nxt_need(__FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)
static inline int nxt_need(const char *file, int line, ...) {
    va_list ap;
    va_start(ap, line);
    int ok = 1;
    for (const char *p; (p = va_arg(ap, const char *)) != NULL;)
        if (access(p, F_OK) != 0) {
            fprintf(stderr, "  %s:%d: missing %s (the golden tests need ../shared; see README.md)\n", file, line, p);
            ok = 0;
        }
    va_end(ap);
    if (!ok) nxt_failed_checks++;
    return ok;
}

/* A scratch directory for tests that write files: nxt_tmp_make("hf")
 * creates /tmp/nx_hf_XXXXXX, nxt_tmpdir() names it, nxt_tpath("x") is a path
 * inside it (four rotating buffers), nxt_tmp_remove() deletes it all. */
static inline char *nxt_tmpdir(void) {
    static char dir[64];
    return dir;
}
static inline int nxt_rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) {
    (void)s, (void)f, (void)w;
    return remove(p);
}
static inline void nxt_tmp_make(const char *tag) {
    snprintf(nxt_tmpdir(), 64, "/tmp/nx_%.20s_XXXXXX", tag);
    if (!mkdtemp(nxt_tmpdir())) abort();
}
static inline void nxt_tmp_remove(void) { nftw(nxt_tmpdir(), nxt_rm_cb, 8, FTW_DEPTH | FTW_PHYS); }
static inline const char *nxt_tpath(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", nxt_tmpdir(), name);
    return p[k];
}

/* ‖a−b‖/‖b‖ (absolute norm when ‖b‖ is 0). */
static inline double nxt_rel_err(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#define CHECK_REL(a, b, n, tol)                                               \
    do {                                                                      \
        double e_ = nxt_rel_err((a), (b), (n));                               \
        CHECKF(e_ <= (tol), "relative error %.3g > %.3g", e_, (double)(tol)); \
    } while (0)

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int i = 0; i < nxt_count; i++) {
        if (only && !strstr(nxt_tests[i].name, only)) continue;
        int before = nxt_failed_checks;
        nxt_skipping = 0;
        nxt_tests[i].fn();
        if (nxt_failed_checks != before) {
            failed++;
            printf("FAIL %s\n", nxt_tests[i].name);
        } else if (nxt_skipping) {
            skipped++;
            printf("skip %s: %s\n", nxt_tests[i].name, nxt_skip_reason);
        } else {
            passed++;
            printf("ok   %s\n", nxt_tests[i].name);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif
