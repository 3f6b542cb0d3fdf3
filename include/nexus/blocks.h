/* blocks.h — the byte layouts of the quantized weight types (core.h's
 * NX_Q8_0, NX_Q4_0, NX_Q4_K), identical to GGUF's so that a GGUF file
 * holds them as they are in memory (export is a copy, import a mapping).
 * Learned from ggml-common.h; every field is little-endian, the scales
 * IEEE binary16.
 *
 *   Q8_0  blocks of 32: d (f16), qs[32] int8             x = d·q
 *         34 bytes, 8.5 bits per weight
 *   Q4_0  blocks of 32: d (f16), qs[16] nibbles          x = d·(q − 8)
 *         element j < 16 is the low nibble of qs[j], element j + 16 its
 *         high nibble; 18 bytes, 4.5 bits per weight
 *   IQ4_NL blocks of 32: d (f16), qs[16] nibbles       x = d·V[q]
 *         Q4_0's layout, but each nibble indexes 16 non-uniform levels
 *         V (nx_iq4nl_values, denser near 0 where weights are); 18 bytes,
 *         4.5 bits per weight: the 32-block type q4_k_m falls back to
 *   Q5_0  blocks of 32: d (f16), qh[4], qs[16] nibbles  x = d·(q − 16)
 *         q = low nibble (Q4_0's layout) | bit j of qh (little-endian
 *         u32) << 4 for element j; 22 bytes, 5.5 bits per weight: the
 *         middle step between the 4-bit types and Q8_0 of the mixes
 *   Q4_K  super-blocks of 256 = 8 sub-blocks of 32: d, dmin (f16),
 *         scales[12] (eight 6-bit scales sc and eight 6-bit mins m, packed
 *         as nx_q4k_scale_min unpacks them), qs[128] nibbles
 *                                                       x = d·sc·q − dmin·m
 *         the 64 elements of sub-blocks 2i and 2i+1 share qs[32i..32i+32):
 *         sub-block 2i in the low nibbles, 2i+1 in the high ones;
 *         144 bytes, 4.5 bits per weight
 *
 * The reference conversions (dtype.c) and every kernel read these structs;
 * the static assertions pin their sizes. */
#ifndef NEXUS_BLOCKS_H
#define NEXUS_BLOCKS_H

#include <stdint.h>

enum { NX_QK = 32, NX_QK_K = 256 };

typedef struct nx_block_q8_0 {
    uint16_t d;
    int8_t qs[NX_QK];
} nx_block_q8_0;

typedef struct nx_block_q4_0 {
    uint16_t d;
    uint8_t qs[NX_QK / 2];
} nx_block_q4_0;

typedef struct nx_block_q4_0 nx_block_iq4_nl;

typedef struct nx_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[NX_QK / 2];
} nx_block_q5_0;

static const int8_t nx_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

typedef struct nx_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[NX_QK_K / 2];
} nx_block_q4_k;

_Static_assert(sizeof(nx_block_q8_0) == 2 + NX_QK, "Q8_0 block must be 34 bytes (GGUF layout)");
_Static_assert(sizeof(nx_block_q4_0) == 2 + NX_QK / 2, "Q4_0 block must be 18 bytes (GGUF layout)");
_Static_assert(sizeof(nx_block_q5_0) == 2 + 4 + NX_QK / 2, "Q5_0 block must be 22 bytes (GGUF layout)");
_Static_assert(sizeof(nx_block_q4_k) == 4 + 12 + NX_QK_K / 2, "Q4_K block must be 144 bytes (GGUF layout)");

/* Integers q[32] in 0..31 into a Q5_0 block's nibbles and high bits (dtype.c). */
void nx_q5_0_pack(void *blk, const uint8_t *q);

/* Scale and min (6 bits each) of sub-block j (0..7) of a Q4_K block:
 * sub-blocks 0..3 keep theirs in the low 6 bits of scales[j] and
 * scales[j+4]; 4..7 keep the low 4 bits in scales[j+4] (scale low nibble,
 * min high nibble) and the top 2 bits in the spare top bits of
 * scales[j−4] (scale) and scales[j] (min). */
static inline void nx_q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* The inverse: packs eight 6-bit scales and mins (each < 64) into s[12]. */
static inline void nx_q4k_pack_scales(uint8_t s[12], const uint8_t sc[8], const uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
}

#endif
