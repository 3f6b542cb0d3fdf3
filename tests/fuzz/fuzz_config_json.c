/* fuzz_config_json.c — config.json (io/hf.c) into an nx_model_config, and
 * for every config it accepts, the parameter table and the sizes that
 * loading, info and the memory plan compute from it (model.c, forward.c):
 * a shape that passes the check must be countable without overflow. */
#include <stdlib.h>

#include "fuzz.h"
#include "nexus/hf.h"
#include "nexus/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nx_model_config c;
    nx_err err;
    if (nx_hf_parse_config((const char *)data, size, "fuzz/config.json", &c, &err)) return 0;
    size_t n = nx_model_count(&c);
    NX_ASSERT(n > 0 && nx_model_size(&c, NX_F32) >= n * sizeof(float));
    (void)nx_model_bytes(&c, NX_BF16);
    (void)nx_acts_bytes(&c, 8, c.max_pos < 1024 ? c.max_pos : 1024, NX_ACTS_TRAIN);
    (void)nx_acts_bytes(&c, 1 << 20, c.max_pos, NX_ACTS_KEEP_PROBS);
    return 0;
}
