/* quantize.c — `nexus quantize MODEL --type T --out DIR [--calib F]
 * [--keep-sensitive N]`: flags in, nx_quantize_dir (src/compress/) does the
 * work, a table of what each matrix group became out. Progress goes to
 * stderr on a terminal only. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nexus/quantize.h"

int cmd_quantize(int argc, char **argv) {
    const char *type = NULL, *out = NULL, *calib = NULL, *keep_dtype = "f16";
    long keep = 0, windows = 32, seq = 256, threads = 0;
    double max_mib = 0;
    bool quiet = false;
    const cli_opt opts[] = {
        {"--type", OPT_STR, &type, "q8_0 | q4_0 | q4_k_m | w8a8 | w8a8-static"},
        {"--out", OPT_STR, &out, "output directory (must not exist, or be empty)"},
        {"--calib", OPT_STR, &calib, "calibration JSONL (field \"text\") or text: activation-aware search"},
        {"--keep-sensitive", OPT_INT, &keep, "keep the N matrix groups of highest measured KL at --keep-dtype"},
        {"--keep-dtype", OPT_STR, &keep_dtype, "f16 (default) or bf16 for the kept groups"},
        {"--max-mib", OPT_FLOAT, &max_mib, "q4_0/q4_k_m with --calib: upgrade the groups of most KL per byte to Q8_0 within this size"},
        {"--calib-windows", OPT_INT, &windows, "calibration windows (default 32)"},
        {"--calib-seq", OPT_INT, &seq, "tokens per calibration window (default 256)"},
        {"--threads", OPT_INT, &threads, "threads (default: all cores)"},
        {"--quiet", OPT_FLAG, &quiet, "print nothing but errors"},
    };
    const cli_spec spec = {
        "quantize", "MODEL_DIR --type TYPE --out DIR [options]",
        "Quantize a model's matrices to 8 or 4 bits (GGUF's Q8_0, Q4_0, Q4_K blocks) into a nexus model "
        "directory that generate and benchmark load. Without --calib each block is rounded to nearest; with "
        "it, block scales are searched to minimise each layer's output error on the calibration "
        "activations, each matrix group's KL alone is measured, and --keep-sensitive N keeps the N most "
        "sensitive groups in 16 bits. q4_k_m falls back for matrices whose rows are not a multiple "
        "of 256 to IQ4_NL (reported). Details: docs/QUANTIZATION.md.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos, rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (!type || !out) {
        fprintf(stderr, "nexus quantize: --type and --out are required\n");
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    if (keep < 0 || windows < 1 || seq < 2 || max_mib < 0) {
        fprintf(stderr, "nexus quantize: --keep-sensitive must be >= 0, --calib-windows >= 1, --calib-seq >= 2\n");
        return EXIT_USAGE;
    }
    if (strcmp(keep_dtype, "f16") && strcmp(keep_dtype, "bf16")) {
        fprintf(stderr, "nexus quantize: --keep-dtype must be f16 or bf16\n");
        return EXIT_USAGE;
    }
    if (threads > 0) nx_set_threads((int)threads);
    nx_quantize_opts o = {.type = type, .calib = calib, .keep_sensitive = (int)keep,
                          .keep_dtype = strcmp(keep_dtype, "bf16") ? NX_F16 : NX_BF16, .calib_windows = (int)windows,
                          .calib_seq = (int)seq, .max_mib = max_mib, .threads = (int)threads, .progress = !quiet && cli_stderr_tty()};
    nx_quantize_report r;
    nx_err err;
    if (nx_quantize_dir(pos[0], out, &o, &r, &err)) return cli_error("quantize", err.msg);
    if (!quiet) {
        printf("%-8s %s -> %s: %.2f MiB (f32 %.2f MiB), method %s%s%s\n", type, pos[0], out, r.out_bytes / 1048576.0,
               r.src_bytes / 1048576.0, r.method, r.calib_tokens ? ", calibration hash " : "",
               r.calib_tokens ? r.calib_hash : "");
        int counts[NX_DTYPE_COUNT] = {0};
        for (int g = 0; g < r.ngroups; g++) counts[r.chosen[g].type]++;
        printf("matrix groups:");
        for (int t = 0; t < NX_DTYPE_COUNT; t++)
            if (counts[t]) printf(" %d %s", counts[t], nx_dtype_name((nx_dtype)t));
        printf("\n");
        if (r.nfallback)
            printf("fallback: %d groups have rows that are not a multiple of 256 and are IQ4_NL instead of Q4_K\n",
                   r.nfallback);
        if (r.kl) {
            double top = 0;
            int gi = -1;
            for (int g = 0; g < r.ngroups; g++)
                if (!isnan(r.kl[g]) && r.kl[g] > top) top = r.kl[g], gi = g;
            if (gi >= 0) printf("most sensitive group: %d (KL alone %.3g); every group in %s/quantization.json\n", gi, top, out);
        }
    }
    nx_quantize_report_free(&r);
    return EXIT_OK;
}
