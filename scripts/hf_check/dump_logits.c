/* dump_logits.c — write nexus's logits for a model directory and a list of
 * token ids to a safetensors file, so that compare.py can hold them against
 * transformers on a machine that has it (the device machine).
 *
 *   make && cc -O2 -fopenmp -Iinclude -I/usr/include/cjson scripts/hf_check/dump_logits.c \
 *       build/libnexus.a $(make -s print-ldlibs) -o build/dump_logits
 *   build/dump_logits MODEL_DIR OUT.safetensors ID ID ID ... */
#include <stdio.h>
#include <stdlib.h>

#include "nexus/hf.h"
#include "nexus/safetensors.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: dump_logits MODEL_DIR OUT.safetensors ID...\n");
        return 2;
    }
    nx_model m;
    nx_err err;
    if (nx_hf_load_model(argv[1], &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int T = argc - 3;
    int32_t *ids = malloc(sizeof(int32_t) * T);
    for (int i = 0; i < T; i++) ids[i] = atoi(argv[3 + i]);
    nx_acts a;
    if (nx_acts_init(&a, &m.cfg, 1, T, NX_ACTS_INFER, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    nx_model_forward(&m, &a, ids, 1, T, true);
    nx_st_entry e[2] = {{.name = "input_ids", .dtype = NX_I32, .ndim = 2, .shape = {1, T}, .data = ids},
                        {.name = "logits", .dtype = NX_F32, .ndim = 3, .shape = {1, T, m.cfg.V}, .data = a.logits}};
    if (nx_st_write(argv[2], e, 2, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}
