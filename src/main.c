/* main.c — the nexus binary: a dispatch table from subcommand name to the
 * function in src/cli/ that implements it. Subcommands are thin: they parse
 * flags, call the library, and print. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "nexus/core.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command COMMANDS[] = {
    {"generate", cmd_generate, "generate text with a model (KV cache, streaming)"},
    {"benchmark", cmd_benchmark, "perplexity, agreement, speed and cost of models"},
    {"distill", cmd_distill, "distill a teacher into a smaller student from a YAML config"},
    {"train", cmd_train, "train a model from a YAML config with no teacher"},
    {"prune", cmd_prune, "prune a model: zero weights (magnitude, Wanda, N:M) or remove heads, channels, layers"},
    {"tokenize", cmd_tokenize, "encode text with a model's tokenizer and print the ids"},
    {"prepare-data", cmd_prepare_data, "tokenize JSONL/text corpora into token shards (train.bin, val.bin)"},
    {"serve", cmd_serve, "serve a model over an OpenAI-compatible HTTP API (continuous batching)"},
    {"pull", cmd_pull, "download a model or dataset from the Hugging Face Hub into its cache"},
    {"quantize", cmd_quantize, "quantize a model's weights to 8 or 4 bits (Q8_0, Q4_0, Q4_K, W8A8)"},
    {"info", cmd_info, "architecture, parameter counts, sizes and memory needs of a model"},
    {"export", cmd_export, "write a model as a GGUF file (llama.cpp) or a Hugging Face directory"},
};
enum { NCOMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static void usage(FILE *f) {
    fprintf(f, "usage: nexus <command> [options]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-14s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "  %-14s %s\n", "help", "show this list");
    fprintf(f, "\nrun 'nexus <command> --help' for a command's options; 'nexus --version' for the version\n");
}

int main(int argc, char **argv) {
    cli_threads_policy(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("nexus %s\n", NX_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return EXIT_OK;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, COMMANDS[i].name)) {
            int rc = COMMANDS[i].fn(argc - 1, argv + 1);
            return rc < 0 ? EXIT_OK : rc;
        }
    fprintf(stderr, "nexus: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
