/* fuzz_safetensors.c — libFuzzer entry for the safetensors header parser.
 *
 * The input is read as a whole file would be: the first 8 bytes are the
 * little-endian header length N (inputs shorter than 8 bytes are rejected as
 * the reader rejects such files), then N header bytes (clamped to what is
 * there), and whatever follows is the data section. This drives the same
 * bounds checks as nx_st_open without touching the file system. Any crash,
 * leak or UB report from ASan/UBSan is a bug; a clean NX_ERR is fine.
 * Build and run: FUZZ_SECONDS=180 make fuzz. */
#include <stddef.h>
#include <stdint.h>

#include "nexus/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8) return 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    size_t avail = size - 8;
    size_t hlen = n < avail ? (size_t)n : avail;
    nx_st_tensor *t = NULL;
    int nt = 0;
    nx_err err;
    if (nx_st_parse_header((const char *)data + 8, hlen, avail - hlen, "fuzz.safetensors", &t, &nt, &err) == NX_OK) {
        /* Invariants the reader relies on: sorted, tiling, in bounds. */
        size_t at = 0;
        for (int i = 0; i < nt; i++) {
            NX_ASSERT(t[i].offset == at);
            at += t[i].nbytes;
        }
        NX_ASSERT(at == avail - hlen);
        nx_st_free_tensors(t, nt);
    }
    return 0;
}
