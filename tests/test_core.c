/* test_core.c — dtypes, arenas, rng, and the GEMM wrapper against its naive
 * reference on random shapes (odd sizes, vectors, transposes). */
#include "nexus/core.h"
#include "nexus/backend.h"
#include "nexus/cpu.h"
#include "nxtest.h"

TEST(bf16_roundtrip_and_rounding) {
    CHECK(nx_bf16_to_f32(nx_f32_to_bf16(1.0f)) == 1.0f);
    CHECK(nx_bf16_to_f32(nx_f32_to_bf16(-2.5f)) == -2.5f);
    /* 1 + 2^-8 lies halfway between two bf16 values: ties to even (1.0) */
    CHECK(nx_bf16_to_f32(nx_f32_to_bf16(1.0f + 0x1p-8f)) == 1.0f);
    CHECK(nx_bf16_to_f32(nx_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-12f)) == 1.0f + 0x1p-7f);
    CHECK(isnan(nx_bf16_to_f32(nx_f32_to_bf16(NAN))));
    for (uint32_t h = 0; h < 65536; h++) { /* every finite bf16 survives f32 and back */
        float f = nx_bf16_to_f32((uint16_t)h);
        if (!isnan(f)) CHECK(nx_f32_to_bf16(f) == h);
    }
}

TEST(f16_roundtrip_every_value) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nx_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (nx_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0);
    CHECK(nx_f16_to_f32(0x3c00) == 1.0f);
    CHECK(nx_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(nx_f32_to_f16(65520.0f) == 0x7c00); /* rounds to inf */
    CHECK(nx_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00); /* tie to even */
}

TEST(dtype_names) {
    nx_dtype t;
    CHECK(nx_dtype_from_name("BF16", &t) == NX_OK && t == NX_BF16);
    CHECK(nx_dtype_from_name("F8_E4M3", &t) == NX_ERR);
    CHECK(nx_dtype_size(NX_I64) == 8);
}

TEST(arena_plan_then_alloc) {
    nx_arena a = nx_arena_counting();
    CHECK(nx_arena_floats(&a, 3) == NULL);
    CHECK(nx_arena_floats(&a, 100) == NULL);
    size_t need = a.used;
    nx_arena r;
    CHECK(nx_arena_init(&r, nx_backend_cpu(), need, NULL) == NX_OK);
    float *x = nx_arena_floats(&r, 3), *y = nx_arena_floats(&r, 100);
    CHECK(((uintptr_t)x & 63) == 0 && ((uintptr_t)y & 63) == 0);
    CHECK(r.used == need);
    nx_arena_free(&r);
}

TEST(rng_reproducible_and_uniform) {
    nx_rng a, b;
    nx_rng_seed(&a, 42);
    nx_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(nx_rng_u64(&a) == nx_rng_u64(&b));
    double sum = 0, sq = 0;
    int n = 200000, hist[7] = {0};
    for (int i = 0; i < n; i++) {
        float z = nx_rng_normal(&a);
        sum += z;
        sq += z * z;
        hist[nx_rng_below(&a, 7)]++;
    }
    CHECK(fabs(sum / n) < 0.01 && fabs(sq / n - 1) < 0.02);
    for (int k = 0; k < 7; k++) CHECK(fabs(hist[k] / (double)n - 1.0 / 7) < 0.005);
}

static void fill(float *x, long n, nx_rng *r) {
    for (long i = 0; i < n; i++) x[i] = nx_rng_normal(r);
}

TEST(gemm_matches_reference_on_random_shapes) {
    nx_rng r;
    nx_rng_seed(&r, 7);
    for (int it = 0; it < 60; it++) {
        int M = 1 + (int)nx_rng_below(&r, 70), N = 1 + (int)nx_rng_below(&r, 70),
            K = 1 + (int)nx_rng_below(&r, 70);
        if (it % 5 == 0) M = 1;
        if (it % 7 == 0) N = 1;
        bool ta = nx_rng_below(&r, 2), tb = nx_rng_below(&r, 2);
        float beta = it % 3 == 0 ? 0.0f : 0.5f, alpha = it % 4 == 0 ? 2.0f : 1.0f;
        int lda = (ta ? M : K) + (int)nx_rng_below(&r, 3), ldb = (tb ? K : N) + (int)nx_rng_below(&r, 3);
        int ldc = N + (int)nx_rng_below(&r, 3);
        long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
        float *A = malloc(na * 4), *B = malloc(nb * 4), *C1 = malloc(nc * 4), *C2 = malloc(nc * 4);
        fill(A, na, &r);
        fill(B, nb, &r);
        fill(C1, nc, &r);
        memcpy(C2, C1, nc * 4);
        nx_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
        nx_gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        CHECK_REL(C1, C2, nc, 1e-5);
        free(A), free(B), free(C1), free(C2);
    }
}

TEST(type_traits_and_convert) {
    CHECK(nx_type(NX_BF16)->block == 1 && nx_type(NX_BF16)->block_bytes == 2 && nx_type(NX_BF16)->weight);
    CHECK(!nx_type(NX_I32)->weight && nx_row_bytes(NX_F16, 10) == 20);
    float src[37], back[37];
    uint16_t h[37];
    for (int i = 0; i < 37; i++) src[i] = (float)i * 0.37f - 5.0f;
    nx_convert(h, NX_BF16, src, NX_F32, 37);
    for (int i = 0; i < 37; i++) CHECK(h[i] == nx_f32_to_bf16(src[i]));
    nx_convert(back, NX_F32, h, NX_BF16, 37);
    for (int i = 0; i < 37; i++) CHECK(back[i] == nx_bf16_to_f32(h[i]));
    uint16_t f16[37];
    nx_convert(f16, NX_F16, h, NX_BF16, 37); /* through f32 */
    for (int i = 0; i < 37; i++) CHECK(f16[i] == nx_f32_to_f16(nx_bf16_to_f32(h[i])));
}
