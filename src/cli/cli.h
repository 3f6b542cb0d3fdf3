/* cli.h — what the subcommand files share: the declarative flag parser and
 * the entry points that src/main.c dispatches to. Only cli/ turns a status
 * into an exit code: 0 ok, 1 runtime failure, 2 usage error. */
#ifndef NEXUS_CLI_H
#define NEXUS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "nexus/core.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

typedef enum { OPT_FLAG, OPT_STR, OPT_INT, OPT_FLOAT, OPT_MULTI } cli_opt_kind;

typedef struct cli_opt {
    const char *name;  /* "--max-tokens", or its spellings: "-n, --max-tokens" */
    cli_opt_kind kind;
    void *dst;         /* bool*, const char**, long*, double*; OPT_MULTI: cli_multi* */
    const char *help;  /* shown by --help */
} cli_opt;

/* Repeated flag (--set a=b --set c=d). */
typedef struct cli_multi {
    const char *v[64];
    int n;
} cli_multi;

typedef struct cli_spec {
    const char *cmd;      /* "generate" */
    const char *usage;    /* "MODEL_DIR --prompt TEXT [options]" */
    const char *summary;  /* one paragraph */
    const cli_opt *opts;
    int nopts;
    int min_pos, max_pos; /* positional arguments allowed */
} cli_spec;

/* Parses argv[1..] (argv[0] is the subcommand). Positional arguments go to
 * pos[0..*npos). Returns EXIT_OK, EXIT_USAGE (after printing a one-line
 * error and the usage to stderr), or -1 when --help was printed (the caller
 * then exits 0). */
int cli_parse(const cli_spec *spec, int argc, char **argv, const char **pos, int *npos);
void cli_print_help(const cli_spec *spec, bool to_stderr);
/* EXIT_OK when lo <= v <= hi; else prints "nexus CMD: OPT must be between
 * lo and hi (got v)" with the usage and returns EXIT_USAGE. For OPT_INT
 * values, which are longs: check them before they narrow to an int. */
int cli_range(const cli_spec *spec, const char *opt, long v, long lo, long hi);
/* Prints "nexus CMD: message" to stderr; returns EXIT_RUNTIME. */
int cli_error(const char *cmd, const char *msg);
/* Is stderr a terminal (progress bars only then)? */
bool cli_stderr_tty(void);
/* For the commands that compute in parallel (argv[1]), makes OpenMP threads
 * sleep at barriers (OMP_WAIT_POLICY=passive) unless the environment says
 * otherwise, by starting the binary again with it (threads.c says why);
 * returns when nothing was to be done or exec failed. */
void cli_threads_policy(int argc, char **argv);
/* bytes with a binary unit, "1.50 GiB": the one style of every table. */
const char *cli_bytes(double bytes, char *buf, size_t n);
/* The model directory of a command that takes it first: the positional
 * argument, or --model (kept as an alias); NULL and err set (a usage
 * message) when both or neither are given. */
const char *cli_model_arg(const char *cmd, const char *flag, const char *const *pos, int npos, nx_err *err);

/* Subcommands. */
int cmd_generate(int argc, char **argv);
int cmd_benchmark(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_prepare_data(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_serve(int argc, char **argv);


#endif
