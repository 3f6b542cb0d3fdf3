/* generate.c — `nexus generate MODEL --prompt TEXT`: text generation with
 * the KV-cache engine, streamed to stdout as tokens come.
 *
 * The prompt is encoded without special tokens (as a continuation), unless
 * --bos prepends the BOS id. Generation stops at max tokens, the EOS id
 * (unless --ignore-eos), a stop string (checked on the decoded text; the
 * stop string itself is not printed), or the end of the model's context
 * (max_position_embeddings): a prompt that does not leave room for one new
 * token is an error, as is an empty prompt without --bos.
 *
 * Generation itself is the library's (generate.h: one slot of nx_gen),
 * which hands out only text that is final; this file parses flags, encodes
 * the prompt, prints what comes, and reports timings. --json prints one
 * object at the end instead of streaming. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nexus/fsutil.h"
#include "nexus/generate.h"
#include "nexus/modelfile.h"
#include "nexus/tokenizer.h"

/* The detokenizer the generator calls for stop strings and streaming. */
static char *detok(void *ctx, const int32_t *ids, int n) {
    char *text = NULL;
    nx_err e;
    return nx_tokenizer_decode(ctx, ids, (size_t)n, true, &text, &e) ? NULL : text;
}

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL, *prompt_file = NULL, *device = "cpu", *precision = "fp32";
    long max_tokens = 128, top_k = 0, seed = 0, threads = 0;
    double temperature = 0, top_p = 1, min_p = 0, rep = 1;
    bool bos = false, json = false, ignore_eos = false;
    cli_multi stops = {0};
    const cli_opt opts[] = {
        {"-p, --prompt", OPT_STR, &prompt, "prompt text"},
        {"--prompt-file", OPT_STR, &prompt_file, "read the prompt from a file ('-': stdin)"},
        {"-n, --max-tokens", OPT_INT, &max_tokens, "new tokens at most (default 128)"},
        {"--temperature", OPT_FLOAT, &temperature, "sampling temperature; 0 = greedy (default 0)"},
        {"--top-k", OPT_INT, &top_k, "keep the k most likely tokens (0 = off)"},
        {"--top-p", OPT_FLOAT, &top_p, "nucleus sampling mass (1 = off)"},
        {"--min-p", OPT_FLOAT, &min_p, "drop tokens below min-p × the top probability (0 = off)"},
        {"--repetition-penalty", OPT_FLOAT, &rep, "penalise tokens already seen (1 = off)"},
        {"--stop", OPT_MULTI, &stops, "stop when the text contains this string (repeatable)"},
        {"--seed", OPT_INT, &seed, "random seed for sampling (default 0)"},
        {"-t, --threads", OPT_INT, &threads, "threads (default: all cores)"},
        {"--device", OPT_STR, &device, "cpu (default) or cuda"},
        {"--precision", OPT_STR, &precision, "matrix products: fp32 (default), tf32 or bf16 (cuda)"},
        {"--bos", OPT_FLAG, &bos, "prepend the BOS token to the prompt"},
        {"--ignore-eos", OPT_FLAG, &ignore_eos, "keep generating after the EOS token"},
        {"--json", OPT_FLAG, &json, "print one JSON object (ids, text, timings) instead of streaming"},
    };
    const cli_spec spec = {
        "generate", "MODEL (--prompt TEXT | --prompt-file F) [options]",
        "Generate text with a Hugging Face model directory (config.json, model.safetensors, "
        "tokenizer.json) or a GGUF file, streaming it to stdout. The prompt is encoded without special tokens "
        "unless --bos. Prompt plus new tokens are bounded by the model's context "
        "(max_position_embeddings): a prompt that fills it is an error.",
        opts, sizeof opts / sizeof opts[0], 1, 1};
    const char *pos[1];
    int npos, rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    if (!prompt == !prompt_file) {
        fprintf(stderr, "nexus generate: give exactly one of --prompt and --prompt-file\n");
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    /* longs, checked before they narrow to ints */
    if ((rc = cli_range(&spec, "--max-tokens", max_tokens, 1, 1 << 24)) ||
        (rc = cli_range(&spec, "--top-k", top_k, 0, 2147483647)) || (rc = cli_range(&spec, "--threads", threads, 0, 4096)))
        return rc;
    const char *dir = pos[0];
    nx_err err;
    if (!nx_modelfile_is_gguf(dir) && !nx_modelfile_has_tokenizer(dir)) { /* a GGUF says what it lacks on load */
        fprintf(stderr, "nexus generate: %s/tokenizer.json not found: generate needs the model's tokenizer "
                        "(copy tokenizer.json from the model it was trained or distilled from)\n", dir);
        return EXIT_RUNTIME;
    }
    nx_sample_opts so = {.temperature = (float)temperature, .top_k = (int)top_k, .top_p = (float)top_p,
                         .min_p = (float)min_p, .repetition_penalty = (float)rep};
    nx_sampler sampler;
    if (nx_sampler_init(&sampler, &so, 1, (uint64_t)seed, &err)) {
        fprintf(stderr, "nexus generate: %s\n", err.msg);
        return EXIT_USAGE;
    }
    nx_sampler_free(&sampler);
    nx_set_threads((int)threads);

    char *owned = NULL;
    size_t prompt_len = prompt ? strlen(prompt) : 0; /* a file's whole length: it may hold NUL bytes */
    if (prompt_file && !(prompt = owned = strcmp(prompt_file, "-")
                                              ? nx_read_file(prompt_file, NX_MAX_TEXT, &prompt_len, &err)
                                              : nx_read_stream(stdin, "-", NX_MAX_TEXT, &prompt_len, &err)))
        return cli_error("generate", err.msg);
    nx_tokenizer *tok = NULL;
    nx_model m = {0};
    int32_t *pids = NULL, *hist = NULL, *gen = NULL;
    int status = EXIT_RUNTIME;
    nx_gen g;
    bool have_gen = false;
    if (nx_modelfile_tokenizer(dir, &tok, &err)) goto done;
    size_t np = 0;
    if (nx_tokenizer_encode(tok, prompt, prompt_len, false, &pids, &np, &err)) {
        nx_fail_prefix(&err, "%s", prompt_file ? prompt_file : "--prompt");
        goto done;
    }
    nx_backend *be = nx_backend_by_name(device, &err);
    nx_precision prec;
    if (!be || nx_precision_parse(precision, &prec, &err) || nx_backend_set_precision(be, prec, &err) ||
        nx_modelfile_load(dir, nx_precision_hold(prec), be, &m, NULL, &err))
        goto done;
    const nx_model_config *c = &m.cfg;
    int32_t bos_id = nx_tokenizer_bos_id(tok) >= 0 ? nx_tokenizer_bos_id(tok) : c->bos_id;
    int32_t eos_id = nx_tokenizer_eos_id(tok) >= 0 ? nx_tokenizer_eos_id(tok) : c->eos_id;
    if (bos && bos_id < 0) {
        nx_fail(&err, "--bos: the tokenizer and config.json name no BOS token");
        goto done;
    }
    int P = (int)np + (bos ? 1 : 0);
    if (P == 0) {
        nx_fail(&err, "the prompt is empty (no tokens): give some text, or --bos to start from the BOS token");
        goto done;
    }
    if (P >= c->max_pos) {
        nx_fail(&err, "the prompt is %d tokens but the model's context is %d tokens "
                      "(max_position_embeddings), leaving no room to generate: shorten the prompt",
                P, c->max_pos);
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        if (pids[i] >= c->V) {
            nx_fail(&err, "prompt token %zu has id %d, beyond the model's vocabulary of %d: the "
                          "tokenizer does not match the model", i, pids[i], c->V);
            goto done;
        }
    int T = P + (int)max_tokens < c->max_pos ? P + (int)max_tokens : c->max_pos;
    hist = nx_xmalloc(sizeof(int32_t) * P);
    if (bos) hist[0] = bos_id;
    if (np) memcpy(hist + (bos ? 1 : 0), pids, sizeof(int32_t) * np);
    if (nx_gen_init(&g, &m, 1, T, P < 512 ? P : 512, detok, tok, &err)) goto done;
    have_gen = true;
    nx_gen_params gp = {.sample = so, .seed = (uint64_t)seed, .max_tokens = (int)max_tokens,
                        .eos_id = ignore_eos ? -1 : eos_id, .stops = (const char *const *)stops.v,
                        .nstops = stops.n};
    if (nx_gen_start(&g, 0, hist, P, &gp, &err)) goto done;
    nx_gen_event ev;
    while (nx_gen_busy(&g))
        if (nx_gen_step(&g, &ev) && !json && ev.text_len) {
            fwrite(ev.text, 1, ev.text_len, stdout);
            fflush(stdout);
        }
    const nx_gen_slot *sl = &g.slots[0];
    int ngen = sl->n - sl->n_prompt;
    gen = sl->ids + P;
    const char *text = sl->text ? sl->text : "";
    const char *reason = nx_finish_name(sl->finish);
    double t0 = sl->t_start, t_first = sl->t_first, t_end = sl->t_end;
    double ttft = (t_first - t0) * 1e3, dec_s = t_end - t_first;
    double dec_tps = ngen > 1 && dec_s > 0 ? (ngen - 1) / dec_s : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "prompt_tokens", P);
        cJSON_AddItemToObject(o, "prompt_ids", cJSON_CreateIntArray((const int *)hist, P));
        cJSON_AddItemToObject(o, "token_ids", cJSON_CreateIntArray((const int *)gen, ngen));
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddNumberToObject(o, "generated_tokens", ngen);
        cJSON_AddStringToObject(o, "stop_reason", reason);
        cJSON_AddNumberToObject(o, "ttft_ms", ttft);
        cJSON_AddNumberToObject(o, "prefill_tokens_per_s", P / (t_first - t0));
        cJSON_AddNumberToObject(o, "decode_tokens_per_s", dec_tps);
        cJSON_AddNumberToObject(o, "total_ms", (t_end - t0) * 1e3);
        cJSON_AddNumberToObject(o, "threads", nx_threads());
        char *js = cJSON_Print(o);
        printf("%s\n", js);
        free(js);
        cJSON_Delete(o);
    } else {
        printf("\n");
        fprintf(stderr, "[%d prompt tokens, %d generated (%s); first token %.1f ms, decode %.1f tokens/s]\n",
                P, ngen, reason, ttft, dec_tps);
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) cli_error("generate", err.msg);
    if (have_gen) nx_gen_free(&g);
    if (m.be) nx_model_free(&m);
    nx_tokenizer_free(tok);
    free(pids), free(hist), free(owned);
    return status;
}
