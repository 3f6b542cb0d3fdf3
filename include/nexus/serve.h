/* serve.h — `nexus serve`: an OpenAI-compatible HTTP server over the
 * library's generation slots (generate.h).
 *
 * Three parts are public because the tests, the fuzzer and the CLI drive
 * them directly:
 *
 *   requests   a JSON body of POST /v1/completions or /v1/chat/completions
 *              into a plain validated struct, or an OpenAI-style error
 *              (HTTP status, type, code, param, message). Never trusts the
 *              input: every field's type and range is checked, sizes are
 *              bounded; unknown fields are ignored (clients send extras).
 *   templates  the chat templates of tokenizer_config.json: the subset of
 *              Jinja that real Llama-3, Qwen2/2.5 and Mistral templates use,
 *              rendered as transformers' apply_chat_template renders them
 *              (trim_blocks, lstrip_blocks, raise_exception, tojson).
 *   the server nx_serve_run: loads the model, starts one engine thread that
 *              owns the model and the nx_gen and steps it while any slot is
 *              busy, and serves HTTP (libmicrohttpd, a thread per
 *              connection) until *stop is set; then stops accepting,
 *              lets requests in flight finish for a grace period, cancels
 *              the rest and returns.
 *
 * The implementation is src/serve/: request.c, template/, chat.c,
 * engine.c, http.c, respond.c, metrics.c, openapi.c, server.c
 * (serve_impl.h says which does what). docs/SERVE.md is the user's guide. */
#ifndef NEXUS_SERVE_H
#define NEXUS_SERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nexus/core.h"

/* ---- requests ------------------------------------------------------------ */

typedef enum nx_req_kind { NX_REQ_COMPLETION, NX_REQ_CHAT } nx_req_kind;

/* An OpenAI error: {"error": {"message", "type", "param", "code"}} with an
 * HTTP status. */
typedef struct nx_api_error {
    int status;          /* 400, 401, 404, 405, 408, 413, 429, 500, 503 */
    char type[32];       /* "invalid_request_error", ... */
    char code[40];       /* "context_length_exceeded", ... ("" for null) */
    char param[40];      /* the offending field ("" for null) */
    char message[512];
} nx_api_error;

/* Fills e and returns NX_ERR. */
int nx_api_fail(nx_api_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

typedef struct nx_chat_msg {
    const char *role;    /* "system", "user", "assistant", "tool", "developer" */
    const char *content; /* text parts joined; "" when null (an assistant turn with tool calls) */
} nx_chat_msg;

enum { NX_REQ_MAX_STOPS = 4 };

typedef struct nx_serve_request {
    nx_req_kind kind;
    const char *model;           /* as given */
    /* completions: the prompt as text, or as token ids */
    const char *prompt;          /* NULL when prompt_ids */
    int32_t *prompt_ids;
    int nprompt_ids;
    /* chat */
    nx_chat_msg *messages;
    int nmessages;
    const char *messages_json;   /* the messages array as JSON text, for templates (malloc'd) */
    int max_tokens;              /* -1: not given (max_tokens or max_completion_tokens) */
    float temperature;           /* default 1 */
    float top_p;                 /* default 1 */
    float presence_penalty, frequency_penalty; /* default 0, in [-2, 2] */
    bool has_seed;
    uint64_t seed;
    const char *stops[NX_REQ_MAX_STOPS];
    int nstops;
    bool stream, include_usage;  /* stream_options.include_usage */
    bool ignore_eos;             /* an extension (vLLM's name): generate past the end tokens */
    void *json_;                 /* the parsed body the strings point into */
} nx_serve_request;

typedef struct nx_req_limits {
    int max_tokens;              /* largest max_tokens accepted */
    int max_messages;            /* largest messages array */
    int max_prompt_ids;          /* largest token-id prompt */
} nx_req_limits;

nx_req_limits nx_req_limits_default(void); /* 1 << 20 tokens, 1024 messages, 1 << 20 ids */

/* Parses and validates len bytes of a request body (need not be
 * NUL-terminated). On NX_ERR *req is empty (nothing to free) and e says
 * what is wrong, naming the field; the status is 400 for anything the
 * client sent. On NX_OK free *req with nx_serve_request_free. */
int nx_serve_parse_request(const char *body, size_t len, nx_req_kind kind, const nx_req_limits *lim,
                           nx_serve_request *req, nx_api_error *e);
void nx_serve_request_free(nx_serve_request *req);

/* ---- chat templates ------------------------------------------------------- */

typedef struct nx_chat_template nx_chat_template;

/* Parses a Jinja template. NX_ERR (err names the construct and the byte
 * offset) on syntax outside the supported subset: the caller falls back. */
int nx_chat_template_parse(nx_chat_template **out, const char *src, nx_err *err);
void nx_chat_template_free(nx_chat_template *t);

typedef enum nx_render_status {
    NX_RENDER_OK,
    NX_RENDER_RAISED,    /* the template called raise_exception: the request's fault */
    NX_RENDER_FAILED,    /* anything else (a type error, an unsupported filter) */
} nx_render_status;

/* Renders with the variables of context_json (a JSON object: messages,
 * add_generation_prompt, bos_token, eos_token, tools, ...) into a
 * malloc'd *out. err says why when not NX_RENDER_OK. */
nx_render_status nx_chat_template_render(const nx_chat_template *t, const char *context_json, char **out,
                                         nx_err *err);

/* The fallback when a model has no chat template or its template cannot be
 * rendered: each message as "<Role>: <content>\n\n" (Role capitalised),
 * then "Assistant:" when a reply is wanted. malloc'd. */
char *nx_chat_fallback(const nx_chat_msg *msgs, int n, bool add_generation_prompt);

/* ---- the server ----------------------------------------------------------- */

typedef struct nx_serve_opts {
    const char *model_path;      /* a Hugging Face model directory */
    const char *model_name;      /* the id clients use; NULL: the directory's name */
    const char *host;            /* default "127.0.0.1" */
    int port;                    /* 0: any free port (logged) */
    const char *api_key;         /* NULL or "": no key */
    int slots;                   /* sequences decoded together */
    int ctx;                     /* positions per slot; 0: the model's max_position_embeddings */
    int chunk;                   /* prefill tokens per step */
    int queue;                   /* requests waiting for a slot before 429 */
    int max_tokens;              /* largest max_tokens a request may ask */
    size_t max_body;             /* bytes */
    double request_timeout_s;    /* to receive a whole request body */
    double grace_s;              /* on stop: how long requests in flight may finish */
    int max_connections;
    int threads;                 /* 0: all cores */
} nx_serve_opts;

nx_serve_opts nx_serve_defaults(void);

/* Serves until *stop becomes non-zero (a signal handler sets it), then
 * shuts down gracefully (see above) and returns NX_OK. NX_ERR when the
 * model cannot be loaded or the port cannot be bound. Logs to stderr,
 * among them "nexus serve: listening on http://HOST:PORT". */
int nx_serve_run(const nx_serve_opts *o, volatile sig_atomic_t *stop, nx_err *err);

/* Constant-time comparison of a presented key with the expected one (time
 * depends on the expected key's length only). */
bool nx_serve_key_equal(const char *given, size_t given_len, const char *expected);

#endif
