/* prune.c — `nexus prune MODEL --out DIR --method M ...`: parse the flags
 * into an nx_prune_job, run it (app/prune.c), print what was removed and
 * the perplexity before and after (or the report as JSON). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nexus/hf.h"
#include "nexus/run.h"

static int usage(const char *msg, const char *arg) {
    fprintf(stderr, "nexus prune: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\nrun 'nexus prune --help' for the options\n");
    return EXIT_USAGE;
}

/* "hidden,ffn,heads,layers" → NX_AXIS_* bits */
static int parse_axes(const char *s, unsigned *out) {
    static const char *const names[] = {"hidden", "ffn", "heads", "layers"};
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    *out = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < 4 && strcmp(t, names[i])) i++;
        if (i == 4) return NX_ERR;
        *out |= 1u << i;
    }
    return *out ? NX_OK : NX_ERR;
}

static void print_summary(const nx_prune_job *j, const nx_prune_result *r) {
    const nx_model_config *a = &r->before, *b = &r->after;
    printf("%-22s %14s %14s\n", "", "before", "after");
    printf("%-22s %14zu %14zu\n", "parameters", r->params_before, r->params_after);
    printf("%-22s %14d %14d\n", "hidden_size", a->C, b->C);
    printf("%-22s %14d %14d\n", "intermediate_size", a->F, b->F);
    printf("%-22s %14d %14d\n", "attention heads", a->NH, b->NH);
    printf("%-22s %14d %14d\n", "KV heads", a->KVH, b->KVH);
    printf("%-22s %14d %14d\n", "layers", a->L, b->L);
    if (j->method != NX_PRUNE_MINITRON)
        printf("%-22s %14s %13.2f%%  (%zu of %zu layer weights; %.2f%% of the model)\n", "sparsity", "0",
               100.0 * r->sparse.pruned / r->sparse.prunable, r->sparse.pruned, r->sparse.prunable,
               100.0 * r->sparse.pruned / r->sparse.params);
    if (!isnan(r->ppl_before))
        printf("%-22s %14.3f %14.3f  (%lld windows of %s)\n", "perplexity", r->ppl_before, r->ppl_after,
               (long long)r->eval_windows, j->eval);
    printf("pruned model written to %s (%.1f s)\n", j->out, r->seconds);
}

int cmd_prune(int argc, char **argv) {
    const char *out = NULL, *method = NULL, *pattern = NULL, *scope = NULL, *axes = NULL, *metric = NULL;
    const char *calib = NULL, *eval = NULL, *dtype = NULL, *field = NULL;
    double sparsity = 0;
    long hidden = 0, ffn = 0, heads = 0, kv = 0, layers = 0, target = 0, multiple = 1;
    long samples = 128, clen = 0, elen = 0, ewin = 0, batch = 8, seed = 0, threads = 0;
    bool json = false;
    const cli_opt opts[] = {
        {"-o, --out", OPT_STR, &out, "output directory (required; not the model's own)"},
        {"--method", OPT_STR, &method, "magnitude | wanda (zero weights) | minitron (remove heads, channels, layers)"},
        {"--sparsity", OPT_FLOAT, &sparsity, "magnitude/wanda: fraction of the layers' weights to zero, in [0, 1)"},
        {"--pattern", OPT_STR, &pattern, "magnitude/wanda: N:M semi-structured sparsity instead, e.g. 2:4 or 4:8"},
        {"--scope", OPT_STR, &scope, "magnitude: layer (each matrix, default) or global (one threshold)"},
        {"--hidden", OPT_INT, &hidden, "minitron: hidden size to keep"},
        {"--ffn", OPT_INT, &ffn, "minitron: intermediate size to keep"},
        {"--heads", OPT_INT, &heads, "minitron: attention heads to keep (whole KV groups unless --kv-heads)"},
        {"--kv-heads", OPT_INT, &kv, "minitron: KV groups to keep"},
        {"--layers", OPT_INT, &layers, "minitron: layers to keep"},
        {"--target-params", OPT_INT, &target, "minitron: largest shape with at most N parameters (instead of a shape)"},
        {"--axes", OPT_STR, &axes, "with --target-params: axes to shrink, of hidden,ffn,heads,layers (default hidden,ffn)"},
        {"--multiple", OPT_INT, &multiple, "with --target-params: hidden and ffn sizes a multiple of N (default 1)"},
        {"--layer-metric", OPT_STR, &metric, "minitron: rank layers by bi (block influence, default) or ppl"},
        {"--calib", OPT_STR, &calib, "calibration data (wanda, minitron): .jsonl[.gz] / text, or a prepare-data dir (train.bin)"},
        {"--calib-samples", OPT_INT, &samples, "calibration sequences, random windows of the data (default 128)"},
        {"--calib-len", OPT_INT, &clen, "tokens per calibration sequence (default 256, or the model's context if shorter)"},
        {"--eval", OPT_STR, &eval, "perplexity before/after on this data (.jsonl or a dir with val.bin)"},
        {"--eval-len", OPT_INT, &elen, "evaluation window in tokens (default 256, or the model's context if shorter)"},
        {"--eval-windows", OPT_INT, &ewin, "evaluate the first N windows only (default all)"},
        {"--batch", OPT_INT, &batch, "sequences per forward (default 8)"},
        {"--seed", OPT_INT, &seed, "seed of the calibration windows (default 0)"},
        {"--dtype", OPT_STR, &dtype, "weights written as f32, bf16 or f16 (default: the model's)"},
        {"--text-field", OPT_STR, &field, "JSONL field holding the text (default text)"},
        {"-t, --threads", OPT_INT, &threads, "threads (default: all cores)"},
        {"--json", OPT_FLAG, &json, "print the report (prune_report.json) instead of the table"},
    };
    const cli_spec spec = {
        "prune", "MODEL_DIR --out DIR --method magnitude|wanda|minitron [options]",
        "Prune a model into a new Hugging Face model directory. magnitude and wanda zero the lowest-scoring "
        "weights of every layer matrix (|W|, or |W| x input norm per output row) to --sparsity or an N:M "
        "--pattern, and write the mask beside the weights (sparsity_mask.safetensors) so that distill keeps "
        "the zeros. minitron removes attention heads (whole KV groups), FFN neurons, hidden channels and "
        "layers ranked by activation importance on --calib data, down to a target shape or --target-params, "
        "and writes the smaller model. Perplexity before and after on --eval data; prune_report.json records "
        "what was removed. docs/PRUNING.md.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    nx_prune_job j = {.model = pos[0], .out = out, .calib = calib, .eval = eval, .text_field = field,
                      .target_params = target, .multiple = (int)multiple, .calib_samples = (int)samples,
                      .calib_len = (int)clen, .eval_len = (int)elen, .eval_windows = ewin, .batch = (int)batch,
                      .seed = (uint64_t)seed, .threads = (int)threads, .progress = true,
                      .axes = NX_AXIS_HIDDEN | NX_AXIS_FFN, .layer_metric = NX_LAYER_BI};
    if (!out) return usage("missing --out DIR%s", "");
    if (!method) return usage("missing --method (magnitude, wanda or minitron)%s", "");
    if (nx_prune_method_parse(method, &j.method)) return usage("unknown --method '%s' (magnitude, wanda, minitron)", method);
    j.sparse.method = j.method;
    j.sparse.sparsity = sparsity;
    if (sparsity < 0 || sparsity >= 1) return usage("--sparsity must be in [0, 1) (the fraction of weights zeroed)%s", "");
    nx_err err;
    if (pattern && nx_sparse_parse_pattern(pattern, &j.sparse.n, &j.sparse.m, &err)) return usage("%s", err.msg);
    if (scope && strcmp(scope, "layer") && strcmp(scope, "global")) return usage("--scope '%s': layer or global", scope);
    j.sparse.global = scope && !strcmp(scope, "global");
    if (axes && parse_axes(axes, &j.axes)) return usage("--axes '%s': a comma list of hidden, ffn, heads, layers", axes);
    if (metric && strcmp(metric, "bi") && strcmp(metric, "ppl")) return usage("--layer-metric '%s': bi or ppl", metric);
    if (metric && !strcmp(metric, "ppl")) j.layer_metric = NX_LAYER_PPL;
    long shape[] = {hidden, ffn, heads, kv, layers, target, multiple};
    for (int i = 0; i < 7; i++)
        if (shape[i] < 0 || shape[i] > 2147483647L) return usage("sizes must be positive integers%s", "");
    j.shape = (nx_prune_shape){(int)hidden, (int)ffn, (int)heads, (int)kv, (int)layers};
    if (samples < 1 || clen < 0 || clen == 1 || elen < 0 || elen == 1 || batch < 1 || ewin < 0 || multiple < 1)
        return usage("--calib-samples, --batch and --multiple must be >= 1, --calib-len and --eval-len >= 2%s", "");
    nx_model_config cfg;
    if (dtype) {
        if (!strcmp(dtype, "f32")) j.dtype = NX_F32;
        else if (!strcmp(dtype, "bf16")) j.dtype = NX_BF16;
        else if (!strcmp(dtype, "f16")) j.dtype = NX_F16;
        else return usage("--dtype '%s': f32, bf16 or f16", dtype);
    } else {
        j.dtype = NX_F32;
        if (nx_hf_load_config(pos[0], &cfg, &err) == NX_OK) j.dtype = cfg.dtype; /* else the job reports it */
    }
    nx_prune_result r;
    if (nx_prune_job_run(&j, &r, &err)) return cli_error("prune", err.msg);
    if (json) printf("%s\n", r.report);
    else print_summary(&j, &r);
    nx_prune_result_free(&r);
    return EXIT_OK;
}
