/* fuzz_run_config.c — the run-config YAML (app/run_config/ over io/yaml.c)
 * with --set overrides: the input up to its first NUL byte is the file;
 * after it, each newline-separated line is one `--set KEY=VALUE` (at most
 * 8). A config that loads is printed, read back (it must give the same
 * struct and hash), hashed and its student resolved without a teacher. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nexus/run_config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data, *nul = memchr(text, '\0', size);
    size_t tlen = nul ? (size_t)(nul - text) : size;
    char *rest = NULL;
    const char *sets[8];
    int nsets = 0;
    if (nul) {
        size_t rl = size - tlen - 1;
        rest = malloc(rl + 1);
        memcpy(rest, nul + 1, rl);
        rest[rl] = '\0';
        for (char *s = rest, *e; s && *s && nsets < 8; s = e ? e + 1 : NULL) {
            e = strchr(s, '\n');
            if (e) *e = '\0';
            sets[nsets++] = s;
        }
    }
    nx_run_config *rc = malloc(sizeof *rc), *back = malloc(sizeof *back);
    nx_err err;
    if (nx_run_config_parse(rc, text, tlen, "fuzz/run.yaml", sets, nsets, &err) == NX_OK) {
        char *out = NULL;
        size_t olen = 0;
        FILE *f = open_memstream(&out, &olen);
        nx_run_config_print(f, rc);
        fclose(f);
        /* the printed config reads back (relative paths are absolute now) */
        NX_ASSERTM(nx_run_config_parse(back, out, olen, "fuzz/printed.yaml", NULL, 0, &err) == NX_OK, err.msg);
        NX_ASSERT(nx_run_config_hash(back) == nx_run_config_hash(rc));
        free(out);
        nx_model_config s;
        (void)nx_run_config_student_shape(rc, NULL, &s, &err);
    }
    free(rc), free(back), free(rest);
    return 0;
}
