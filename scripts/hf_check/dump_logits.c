/* dump_logits.c — save a model directory as nexus writes it, with nexus's
 * logits for a list of token ids beside it (nexus_logits.safetensors), so
 * that compare.py can hold both against transformers on a machine that has
 * it (the device machine). With HOLD=bf16 the model is held in bf16 while
 * it computes and is saved in bf16.
 *
 *   make && cc -O2 -fopenmp -Iinclude -I/usr/include/cjson scripts/hf_check/dump_logits.c \
 *       build/libnexus.a $(make -s print-ldlibs) -o build/dump_logits
 *   build/dump_logits MODEL_DIR OUT_DIR ID ID ID ... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/fsutil.h"
#include "nexus/hf.h"
#include "nexus/safetensors.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: dump_logits MODEL_DIR OUT_DIR ID...\n");
        return 2;
    }
    bool bf16 = getenv("HOLD") && !strcmp(getenv("HOLD"), "bf16");
    nx_model m;
    nx_err err;
    if (nx_hf_load_model_as(argv[1], &m, bf16 ? NX_BF16 : NX_F32, &err) ||
        nx_hf_save_model(argv[2], &m, bf16 ? NX_BF16 : NX_F32, &err) ||
        nx_hf_copy_tokenizer(argv[1], argv[2], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int T = argc - 3;
    int32_t *ids = malloc(sizeof(int32_t) * T);
    for (int i = 0; i < T; i++) ids[i] = atoi(argv[3 + i]);
    nx_acts a;
    if (nx_acts_init(&a, &m, 1, T, NX_ACTS_INFER, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    nx_model_forward(&m, &a, ids, 1, T, true);
    nx_st_entry e[2] = {{.name = "input_ids", .dtype = NX_I32, .ndim = 2, .shape = {1, T}, .data = ids},
                        {.name = "logits", .dtype = NX_F32, .ndim = 3, .shape = {1, T, m.cfg.V}, .data = a.logits}};
    char *out = nx_path_join(argv[2], "nexus_logits.safetensors");
    if (nx_st_write(out, e, 2, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("%s: %s model (%s), logits of %d tokens\n", argv[2], nx_arch_name(m.cfg.arch), bf16 ? "bf16" : "f32", T);
    free(out);
    return 0;
}
