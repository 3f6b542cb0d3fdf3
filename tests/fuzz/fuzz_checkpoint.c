/* fuzz_checkpoint.c — training checkpoints (io/checkpoint.c): the input is
 * a checkpoint file, loaded for as many trained floats as its size implies,
 * without a mask (12 bytes a float) and with one (13) (so the size check passes and the CRC, header and fields are what is
 * fuzzed; a CRC that matches is then only as likely as the fuzzer makes
 * it, so a second pass re-stamps the CRC over the input, as a crafted file
 * would). The data-loader state it holds is restored through
 * nx_loader_restore and batches are drawn, as a resumed run does. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "nexus/checkpoint.h"
#include "nexus/dataset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

static void load_as(const uint8_t *data, size_t size, size_t stride) {
    size_t fixed = nx_ckpt_bytes(0, false);
    if (size < fixed || (size - fixed) % stride) return;
    size_t n = (size - fixed) / stride;
    float *p = malloc(n * 4 + 4), *m = malloc(n * 4 + 4), *v = malloc(n * 4 + 4);
    uint8_t *mask = malloc(n + 1);
    bool has_mask;
    nx_ckpt_meta meta;
    int64_t t;
    nx_err err;
    uint64_t hash; /* the file's own config hash, so that check passes too */
    memcpy(&hash, data + 16, 8);
    if (nx_ckpt_load(fuzz_file(data, size, ".nxck"), hash, &meta, n, p, m, v, mask, &has_mask, &t, &err) == NX_OK &&
        meta.data_state_len == sizeof(nx_loader_state)) {
        static int32_t ids[64];
        for (int i = 0; i < 64; i++) ids[i] = i;
        nx_tokens src = {ids, 4, 64};
        nx_loader_state st;
        memcpy(&st, meta.data_state, sizeof st);
        for (int mode = 0; mode < 2; mode++) {
            nx_loader l;
            NX_ASSERT(nx_loader_init(&l, src, 2, 7, mode ? NX_BATCH_SEQUENTIAL : NX_BATCH_RANDOM, 1, &err) == NX_OK);
            if (nx_loader_restore(&l, &st, &err)) continue;
            int32_t in[14], tg[14];
            for (int k = 0; k < 5; k++) nx_loader_next(&l, in, tg);
        }
    }
    free(p), free(m), free(v), free(mask);
}

static void load(const uint8_t *data, size_t size) {
    load_as(data, size, 12); /* no mask */
    load_as(data, size, 13); /* a mask byte a float */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load(data, size);
    if (size >= 20) { /* the same bytes with a CRC that matches */
        uint8_t *c = malloc(size);
        memcpy(c, data, size);
        uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), c + 16, (uInt)(size - 20));
        memcpy(c + size - 4, &crc, 4);
        load(c, size);
        free(c);
    }
    return 0;
}
