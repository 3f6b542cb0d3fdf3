/* prepare_data.c — `nexus prepare-data`: tokenize JSONL / text corpora with
 * the teacher's tokenizer into token shards (train.bin, val.bin) that the
 * trainer memory-maps. The work is in src/io/dataset.c; this file parses
 * flags, splits off the validation documents and prints the summary. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "nexus/dataset.h"
#include "nexus/tokenizer.h"

int cmd_prepare_data(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL, *field = "text", *eos = NULL;
    cli_multi inputs = {0};
    double val_fraction = 0;
    long val_docs = LONG_MIN, threads = 0; /* LONG_MIN: --val-docs not given */
    bool skip_bad = false;
    const cli_opt opts[] = {
        {"--model", OPT_STR, &model, "the model, as the first argument does (kept for older scripts)"},
        {"-i, --input", OPT_MULTI, &inputs, "input file (repeatable): .jsonl[.gz] = one JSON document per line, else whole file = one document"},
        {"-o, --out", OPT_STR, &outdir, "output directory for train.bin and val.bin"},
        {"--field", OPT_STR, &field, "JSONL field holding the text (default: text)"},
        {"--val-fraction", OPT_FLOAT, &val_fraction, "last fraction of the documents goes to val.bin"},
        {"--val-docs", OPT_INT, &val_docs, "last N documents go to val.bin"},
        {"--eos", OPT_STR, &eos, "token appended after every document (default: the tokenizer's EOS)"},
        {"--skip-bad-lines", OPT_FLAG, &skip_bad, "skip and count bad JSONL lines instead of failing"},
        {"-t, --threads", OPT_INT, &threads, "tokenizer threads (default: all cores)"},
    };
    const cli_spec spec = {"prepare-data", "MODEL --input F [--input F2 ...] --out DIR [options]",
                           "Tokenize documents with MODEL's tokenizer (a model directory whose tokenizer.json "
                           "is used) without special tokens, append EOS after each, and write the token stream "
                           "as train.bin (and val.bin) shards.",
                           opts, sizeof opts / sizeof opts[0], 0, 1};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    nx_err err;
    if (!(model = cli_model_arg("prepare-data", model, pos, npos, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    if ((val_docs != LONG_MIN && (rc = cli_range(&spec, "--val-docs", val_docs, 0, LONG_MAX))) ||
        (rc = cli_range(&spec, "--threads", threads, 0, 4096)))
        return rc;
    const char *why = !inputs.n ? "at least one --input is required"
                    : !outdir ? "--out is required"
                    : (val_fraction < 0 || val_fraction >= 1) ? "--val-fraction must be in [0, 1)"
                    : (val_docs >= 0 && val_fraction > 0) ? "give --val-fraction or --val-docs, not both" : NULL;
    if (why) {
        fprintf(stderr, "nexus prepare-data: %s\n", why);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    nx_tokenizer *t;
    if (nx_tokenizer_load(&t, model, &err)) return cli_error("prepare-data", err.msg);
    int32_t eos_id = eos ? nx_tokenizer_token_to_id(t, eos) : nx_tokenizer_eos_id(t);
    if (eos_id < 0) {
        nx_tokenizer_free(t);
        snprintf(err.msg, sizeof err.msg, eos ? "--eos token \"%s\" is not in the vocabulary"
                 : "%s: the tokenizer has no EOS token (no eos_token in tokenizer_config.json, none added by "
                 "the post-processor); name one with --eos", eos ? eos : model);
        return cli_error("prepare-data", err.msg);
    }
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        nx_tokenizer_free(t);
        snprintf(err.msg, sizeof err.msg, "%s: cannot create directory (%s)", outdir, strerror(errno));
        return cli_error("prepare-data", err.msg);
    }
    nx_docs_opts o = {.field = field, .eos_id = eos_id, .skip_bad_lines = skip_bad,
                      .threads = (int)threads, .progress = cli_stderr_tty()};
    nx_token_stream s = {0};
    nx_docs_stats st;
    rc = EXIT_OK;
    if (nx_dataset_tokenize(t, inputs.v, inputs.n, &o, &s, &st, &err)) {
        rc = cli_error("prepare-data", err.msg);
        goto done;
    }
    size_t nval = val_docs >= 0 ? (size_t)val_docs : (size_t)(val_fraction * (double)s.n_docs + 0.5);
    if (nval > s.n_docs || (nval == s.n_docs && nval > 0)) {
        snprintf(err.msg, sizeof err.msg, "%zu validation documents requested but only %zu documents were read; "
                 "at least one must stay in train.bin", nval, s.n_docs);
        rc = cli_error("prepare-data", err.msg);
        goto done;
    }
    size_t ntrain_docs = s.n_docs - nval;
    size_t ntrain = ntrain_docs ? s.doc_end[ntrain_docs - 1] : 0;
    uint32_t V = (uint32_t)nx_tokenizer_vocab_size(t);
    uint64_t fp = nx_tokenizer_fingerprint(t);
    nx_shard_part parts[2] = {{"train.bin", s.ids, ntrain, ntrain_docs}, {"val.bin", s.ids + ntrain, s.n - ntrain, nval}};
    if (nx_shard_set_write(outdir, parts, nval ? 2 : 1, V, eos_id, fp, &err)) {
        rc = cli_error("prepare-data", err.msg);
        goto done;
    }
    for (int i = 0; i < (nval ? 2 : 1); i++)
        printf("%s/%s: %llu documents, %zu tokens\n", outdir, parts[i].name, (unsigned long long)parts[i].n_docs,
               parts[i].n);
    printf("tokenized %zu documents (%.1f MiB) into %zu tokens in %.2f s: %.0f documents/s, %.0f tokens/s, %.2f MiB/s",
           st.docs, (double)st.bytes / 1048576.0, s.n, st.seconds, (double)st.docs / st.seconds,
           (double)s.n / st.seconds, (double)st.bytes / 1048576.0 / st.seconds);
    if (skip_bad) printf(", %zu bad lines skipped", st.bad_lines);
    printf("\n");
done:
    nx_token_stream_free(&s);
    nx_tokenizer_free(t);
    return rc;
}
