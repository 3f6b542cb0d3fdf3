/* nxtest.h — a minimal test harness. Each tests/test_<module>.c is one
 * executable: TEST(name) { ... } blocks registered at start-up, CHECK()
 * that records failures without stopping, and a closing line
 * "N passed, N failed" that tests/run.sh adds up across executables. */
#ifndef NXTEST_H
#define NXTEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*nxt_fn)(void);
static struct { const char *name; nxt_fn fn; } nxt_tests[512];
static int nxt_count, nxt_failed_checks;

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
    int passed = 0, failed = 0;
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int i = 0; i < nxt_count; i++) {
        if (only && !strstr(nxt_tests[i].name, only)) continue;
        int before = nxt_failed_checks;
        nxt_tests[i].fn();
        if (nxt_failed_checks == before) {
            passed++;
            printf("ok   %s\n", nxt_tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", nxt_tests[i].name);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
