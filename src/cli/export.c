/* export.c — `nexus export MODEL --format gguf|safetensors --out PATH
 * [--dtype TYPE] [--name NAME]`: a model (Hugging Face directory or
 * GGUF) written as one GGUF file for llama.cpp / Ollama, or as a Hugging
 * Face directory (config.json, model.safetensors, tokenizer files) for
 * transformers. The formats are io's (gguf.c, hf.c); this file picks them.
 *
 * The weights are read widened to f32 (exact from F32, F16 and BF16) and
 * rounded to --dtype (default: the dtype the model is stored in; for a
 * GGUF any weight type core's traits table gives a GGUF id), so an export
 * in the model's own dtype carries its tensors bit for bit. A GGUF
 * gets the tokenizer metadata llama.cpp needs, from tokenizer.json and
 * tokenizer_config.json (or copied from a GGUF source); a directory gets
 * the tokenizer files (or, from a GGUF, tokenizer.json written from its
 * metadata). Every file is written atomically. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/fsutil.h"
#include "nexus/gguf.h"
#include "nexus/hf.h"
#include "nexus/modelfile.h"

/* The last path component without a trailing slash or ".gguf". */
static void base_name(const char *path, char *out, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    size_t k = len - b;
    if (k > 5 && !strncasecmp(path + len - 5, ".gguf", 5)) k -= 5;
    snprintf(out, n, "%.*s", (int)k, path + b);
}

static int export_gguf(const char *src, const nx_model *m, nx_dtype dt, bool as_held, const char *name,
                       const char *out, nx_err *err) {
    nx_gguf_export o = {.dtype = dt, .as_held = as_held, .name = name};
    nx_gguf g = {0};
    nx_tokenizer *tok = NULL;
    char *cfg = NULL;
    int rc = NX_ERR;
    if (nx_modelfile_is_gguf(src)) {
        if (nx_gguf_open(&g, src, err)) return NX_ERR;
        if (!nx_gguf_find(&g, "tokenizer.ggml.model")) {
            nx_fail(err, "%s has no tokenizer metadata; llama.cpp needs one", src);
            goto done;
        }
        o.tok_from = &g;
    } else {
        if (!nx_modelfile_has_tokenizer(src)) {
            nx_fail(err, "%s has no tokenizer.json; a GGUF carries the tokenizer llama.cpp needs (copy "
                         "tokenizer.json, and tokenizer_config.json, from the model it was distilled from)", src);
            goto done;
        }
        if (nx_tokenizer_load(&tok, src, err)) goto done;
        char *p = nx_path_join(src, "tokenizer_config.json");
        if (access(p, R_OK) == 0 && !(cfg = nx_read_file(p, NX_MAX_JSON_CONFIG, NULL, err))) {
            free(p);
            goto done;
        }
        free(p);
        o.tok = tok, o.tok_config = cfg;
    }
    rc = nx_gguf_save_model(out, m, &o, err);
done:
    nx_gguf_close(&g);
    nx_tokenizer_free(tok);
    free(cfg);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *format = NULL, *out = NULL, *dtype = NULL, *name = NULL;
    const cli_opt opts[] = {
        {"--format", OPT_STR, &format, "gguf (one file for llama.cpp) or safetensors (a Hugging Face directory)"},
        {"--out", OPT_STR, &out, "the GGUF file, or the directory, to write"},
        {"--dtype", OPT_STR, &dtype, "the matrices' type: f32, bf16, f16 (and, for gguf, the block types nexus holds); default: the model's own"},
        {"--name", OPT_STR, &name, "GGUF general.name (default: the model's file or directory name)"},
    };
    const cli_spec spec = {
        "export", "MODEL --format gguf|safetensors --out PATH [--dtype f32|bf16|f16]",
        "Write MODEL (a Hugging Face model directory or a GGUF file) as a GGUF file with the tokenizer\n"
        "metadata llama.cpp needs (q/k permuted for RoPE as llama.cpp's converter does; norms in f32),\n"
        "or as a Hugging Face directory: config.json, model.safetensors and the tokenizer files.\n"
        "Exporting in the model's own dtype keeps every weight bit for bit. Files are written\n"
        "atomically: an error leaves nothing half-written. docs/FORMATS.md has the details.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos, rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (!format || (strcmp(format, "gguf") && strcmp(format, "safetensors"))) {
        fprintf(stderr, "nexus export: give --format gguf or --format safetensors\n");
        return EXIT_USAGE;
    }
    if (!out || !*out) {
        fprintf(stderr, "nexus export: give --out PATH\n");
        return EXIT_USAGE;
    }
    bool gguf = !strcmp(format, "gguf");
    nx_err err;
    nx_model_config cfg;
    if (nx_modelfile_config(pos[0], &cfg, &err)) return cli_error("export", err.msg);
    nx_dtype dt = cfg.dtype;
    if (dtype) {
        /* any weight type core knows with a GGUF form (safetensors: the plain ones) */
        char up[32];
        size_t k = 0;
        for (; dtype[k] && k + 1 < sizeof up; k++) up[k] = (char)toupper((unsigned char)dtype[k]);
        up[k] = 0;
        uint32_t id;
        bool plain = !nx_dtype_from_name(up, &dt) && nx_type(dt)->block == 1;
        if (nx_dtype_from_name(up, &dt) || !nx_type(dt)->weight || nx_ggml_type_of(dt, &id) || (!gguf && !plain)) {
            char list[256];
            nx_ggml_readable_types(list, sizeof list);
            fprintf(stderr, "nexus export: --dtype '%s': give one of %s\n", dtype,
                    gguf ? list : "F32, F16, BF16 (safetensors)");
            return EXIT_USAGE;
        }
    }
    nx_model m;
    if (nx_modelfile_load(pos[0], NX_F32, nx_backend_cpu(), &m, NULL, &err)) return cli_error("export", err.msg);
    char base[256];
    base_name(pos[0], base, sizeof base);
    /* a quantized model (nexus quantize's directory, a quantized GGUF) without --dtype: each
     * matrix in the block type it holds, its bytes copied (GGUF's layouts are core's) */
    bool as_held = !dtype && m.groups;
    if (as_held && !gguf) {
        nx_model_free(&m);
        return cli_error("export", "a quantized model has no safetensors form transformers reads; give --dtype "
                                   "f32, bf16 or f16 to widen it, or --format gguf to keep its blocks");
    }
    int r = gguf ? export_gguf(pos[0], &m, dt, as_held, name ? name : base, out, &err)
                 : nx_hf_save_model(out, &m, dt, &err) || nx_modelfile_copy_tokenizer(pos[0], out, &err) ? NX_ERR
                                                                                                         : NX_OK;
    size_t tensors = (size_t)m.ntab;
    nx_model_free(&m);
    if (r) return cli_error("export", err.msg);
    printf("wrote %s (%s, %s, %zu tensors, %.2f MiB)\n", out, gguf ? "GGUF" : "safetensors directory",
           as_held ? "as quantized" : nx_dtype_name(dt), tensors, nx_modelfile_disk_bytes(out) / (1024.0 * 1024.0));
    return EXIT_OK;
}
