/* hub_impl.h — what the three files of the Hub client share (not public):
 * the pull's state, the parsed HTTP answer, and small helpers.
 *
 *   src/io/hub.c           the public API: environment, names, cache layout, the pull's steps
 *   src/io/hub/http.c      HTTP answers (headers, error messages) and the repo API call
 *   src/io/hub/transfer.c  the file downloads: HEAD, ranged GET, sha256, blob and snapshot link */
#ifndef NEXUS_HUB_IMPL_H
#define NEXUS_HUB_IMPL_H

#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "nexus/hub.h"

enum { HUB_ETAG_MAX = 128, HUB_MAX_JOBS = 32 };

/* The headers of one HTTP answer that a pull reads (the last answer of a
 * redirect chain: the header callback starts over at each status line). */
typedef struct hub_resp {
    long status;
    long long content_length, linked_size;  /* -1: absent */
    char etag[256], linked_etag[256], err_code[64], err_msg[512], content_range[128];
    char *location;                         /* malloc'd or NULL */
} hub_resp;

/* One file of the pull. */
typedef struct hub_file {
    char *path;          /* in the repo: "model.safetensors", "sub/x.json" */
    char *url;           /* resolve URL (after relative redirects) */
    char *location;      /* where to GET it, from the HEAD */
    char etag[HUB_ETAG_MAX + 1];
    long long size;      /* -1: unknown */
    long long have;      /* bytes in blobs/<etag>.incomplete */
    bool lfs, active, done, failed, waiting_logged;
    int attempts, hops, refetches;
    double not_before;   /* nx_now() before which it is not retried */
} hub_file;

/* The pull. Paths are malloc'd; store = <cache>/<repo folder>. */
typedef struct hub_ctx {
    const nx_hub_opts *o;
    const char *repo, *rev;
    nx_hub_type type;
    char *ep, *origin, *token, *cache, *store, *blobs, *locks, *snap;
    struct curl_slist *hdr_auth, *hdr_plain;  /* with / without the token */
    char commit[41];
    hub_file *tasks;
    int ntasks;
    nx_err first;        /* the first file's failure */
    int nfailed, nlogged; /* failed files; those of them logged (all but the first) */
    bool abort;          /* a 401/403: start no other file */
    nx_hub_result *res;
    double t0, last_draw;
    bool drawn;          /* a progress line is on the terminal */
} hub_ctx;

/* hub.c */
char *hub_strdup(const char *s);
char *hub_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool hub_is_hex(const char *s, size_t n);
const char *hub_human(char *b, size_t n, double bytes);   /* "12.3 MiB" into b */
char *hub_quote(const char *s, const char *safe);         /* urllib.parse.quote */
bool hub_safe_relpath(const char *s);
bool hub_included(const hub_ctx *c, const char *path);     /* the --include globs */
bool hub_exists_file(const char *p);
const char *hub_kind(const hub_ctx *c);                   /* "dataset " or "" */
void hub_say(hub_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hub_draw(hub_ctx *c, bool force);

/* http.c */
void hub_resp_reset(hub_resp *r);
size_t hub_on_header(char *b, size_t sz, size_t nitems, void *r);
void hub_curl_opts(CURL *h, const char *url);
void hub_http_fail(const hub_ctx *c, nx_err *err, long status, const hub_resp *r, const char *file, const char *url);
int hub_api_list(hub_ctx *c, nx_err *err);

/* transfer.c */
void hub_run_tasks(hub_ctx *c);

#endif
