/* fuzz_shard.c — token shards (io/dataset.c): the input is a shard file
 * opened with nx_shard_open; one that opens is read through the batch
 * loader (sequential and random windows, a few batches), as a run would.
 * The same bytes are also offered as a shard set's manifest.json beside a
 * fixed valid shard, through nx_shard_set_open. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "nexus/dataset.h"

static char setdir[96];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(setdir, sizeof setdir, "/dev/shm/nxfuzz-%d-set", (int)getpid());
    mkdir(setdir, 0700);
    atexit(fuzz_cleanup);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 7) % 50;
    nx_shard_part p = {"train.bin", ids, 40, 4};
    nx_err err;
    NX_ASSERT(nx_shard_set_write(setdir, &p, 1, 64, 49, 0x1234, &err) == NX_OK);
    return 0;
}

static void batches(nx_tokens v, nx_batch_mode mode) {
    nx_loader l;
    nx_err err;
    int32_t in[2 * 5], tg[2 * 5];
    if (nx_loader_init(&l, v, 2, 5, mode, 7, &err)) return;
    for (int k = 0; k < 4; k++) nx_loader_next(&l, in, tg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nx_shard s;
    nx_err err;
    if (nx_shard_open(&s, fuzz_file(data, size, ".bin"), &err) == NX_OK) {
        nx_tokens v = nx_shard_tokens(&s);
        for (uint64_t i = 0; i < v.n; i++) NX_ASSERT((uint32_t)nx_tokens_at(v, i) < s.info.vocab_size);
        batches(v, NX_BATCH_SEQUENTIAL);
        batches(v, NX_BATCH_RANDOM);
        nx_shard_close(&s);
    }
    char man[160];
    snprintf(man, sizeof man, "%s/" NX_SHARD_MANIFEST, setdir);
    FILE *f = fopen(man, "wb");
    fwrite(data, 1, size, f);
    fclose(f);
    if (nx_shard_set_open(&s, setdir, "train.bin", &err) == NX_OK) nx_shard_close(&s);
    return 0;
}
