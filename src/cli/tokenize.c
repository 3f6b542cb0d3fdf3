/* tokenize.c — `nexus tokenize`: encode a text with a model's tokenizer and
 * print the ids (space-separated) or, with --json, {"ids": [...], "decoded": "..."}.
 * Handy to compare against `tokenizers` in Python by eye or in a script. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nexus/fsutil.h"
#include "nexus/tokenizer.h"

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool json = false, no_special = false, special = false;
    const cli_opt opts[] = {
        {"--model", OPT_STR, &model, "the model, as the first argument does (kept for older scripts)"},
        {"-p, --text", OPT_STR, &text, "text to encode"},
        {"--file", OPT_STR, &file, "file whose whole content is encoded ('-': stdin)"},
        {"--json", OPT_FLAG, &json, "print {\"ids\": [...], \"decoded\": \"...\"}"},
        {"--special", OPT_FLAG, &special, "add the post-processor's special tokens (BOS/EOS) (default)"},
        {"--no-special", OPT_FLAG, &no_special, "do not add BOS/EOS"},
    };
    const cli_spec spec = {"tokenize", "MODEL (--text STR | --file F) [options]",
                           "Encode text with a Hugging Face tokenizer.json exactly as the `tokenizers` library "
                           "does and print the ids on stdout. MODEL is a model directory (tokenizer.json [+ "
                           "tokenizer_config.json]) or a tokenizer.json.",
                           opts, sizeof opts / sizeof opts[0], 0, 1};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc) return rc;
    nx_err err;
    if (!(model = cli_model_arg("tokenize", model, pos, npos, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    if ((!text == !file) || (special && no_special)) {
        fprintf(stderr, "nexus tokenize: need exactly one of --text / --file (and not both --special and --no-special)\n");
        cli_print_help(&spec, true);
        return EXIT_USAGE;
    }
    nx_tokenizer *t;
    if (nx_tokenizer_load(&t, model, &err)) return cli_error("tokenize", err.msg);
    size_t len = 0;
    char *owned = NULL;
    if (file) {
        owned = strcmp(file, "-") ? nx_read_file(file, NX_MAX_TEXT, &len, &err)
                                    : nx_read_stream(stdin, "-", NX_MAX_TEXT, &len, &err);
        if (!owned) { nx_tokenizer_free(t); return cli_error("tokenize", err.msg); }
        text = owned;
    } else len = strlen(text);
    int32_t *ids;
    size_t n;
    char *dec = NULL;
    rc = EXIT_OK;
    if (nx_tokenizer_encode(t, text, len, !no_special, &ids, &n, &err) ||
        nx_tokenizer_decode(t, ids, n, false, &dec, &err)) {
        rc = cli_error("tokenize", err.msg);
    } else if (json) {
        cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
        cJSON_AddStringToObject(o, "decoded", dec);
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    if (rc == EXIT_OK) free(ids);
    free(dec);
    free(owned);
    nx_tokenizer_free(t);
    return rc;
}
