/* http.c — the HTTP side of the Hub client that is not a file transfer:
 * reading the headers a pull needs from an answer (ETag, X-Linked-Etag,
 * X-Linked-Size, Location, Content-Range, and the Hub's X-Error-Code /
 * X-Error-Message), the curl options every request shares, the error
 * message for each HTTP status (a 401/403 says to pass a token or accept the
 * licence, a 404 names the repo, revision or file), and step 1 of a pull:
 * the repo API call that gives the commit and the file list. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hub_impl.h"

enum { MAX_API_BYTES = 64 << 20 };

/* ---- HTTP responses ---------------------------------------------------------
 * The header callback keeps the headers of the last response only: curl
 * passes every response of a redirect chain, each starting with its status
 * line. */

void hub_resp_reset(hub_resp *r) {
    free(r->location);
    memset(r, 0, sizeof *r);
    r->content_length = r->linked_size = -1;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

size_t hub_on_header(char *b, size_t sz, size_t nitems, void *u) {
    hub_resp *r = u;
    size_t len = sz * nitems;
    if (len >= 5 && !strncmp(b, "HTTP/", 5)) {
        hub_resp_reset(r);
        char line[64];
        copy_value(line, sizeof line, b, len);
        const char *sp = strchr(line, ' ');
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return len;
    }
    const char *colon = memchr(b, ':', len);
    if (!colon) return len;
    size_t nl = (size_t)(colon - b);
    const char *v = colon + 1, *end = b + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t vl = (size_t)(end - v);
#define IS(name) (nl == sizeof(name) - 1 && !strncasecmp(b, name, nl))
    char num[32];
    if (IS("ETag")) copy_value(r->etag, sizeof r->etag, v, vl);
    else if (IS("X-Linked-Etag")) copy_value(r->linked_etag, sizeof r->linked_etag, v, vl);
    else if (IS("X-Error-Code")) copy_value(r->err_code, sizeof r->err_code, v, vl);
    else if (IS("X-Error-Message")) copy_value(r->err_msg, sizeof r->err_msg, v, vl);
    else if (IS("Content-Range")) copy_value(r->content_range, sizeof r->content_range, v, vl);
    else if (IS("Location")) {
        free(r->location);
        r->location = nx_xmalloc(vl + 1);
        copy_value(r->location, vl + 1, v, vl);
    } else if (IS("Content-Length") || IS("X-Linked-Size")) {
        copy_value(num, sizeof num, v, vl);
        char *e;
        long long x = strtoll(num, &e, 10);
        if (*num && !*e && x >= 0) *(IS("Content-Length") ? &r->content_length : &r->linked_size) = x;
    }
#undef IS
    return len;
}

void hub_curl_opts(CURL *h, const char *url) {
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "nexus/" NX_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* a stalled connection (no byte for 60 s) is a dropped one: retried, resumed */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
}

/* The message for an HTTP error answer; file NULL for the API call. */
void hub_http_fail(const hub_ctx *c, nx_err *err, long status, const hub_resp *r, const char *file, const char *url) {
    char what[1200];
    if (file) snprintf(what, sizeof what, "%s (%s%s at %s)", file, hub_kind(c), c->repo, c->commit);
    else snprintf(what, sizeof what, "%s%s at revision '%s'", hub_kind(c), c->repo, c->rev);
    char hub[300] = "";
    if (r->err_msg[0]) snprintf(hub, sizeof hub, " [the Hub says: %.250s]", r->err_msg);
    const char *page_pre = c->type == NX_HUB_DATASET ? "/datasets/" : "/";
    if (status == 401 && !strcmp(r->err_code, "GatedRepo"))
        nx_fail(err, "401 Unauthorized for %s: the repository is gated; %s, and accept its licence at %s%s%s "
                "while logged in%s", what, c->token ? "the token was refused" : "pass a token (--token or HF_TOKEN)",
                c->ep, page_pre, c->repo, hub);
    else if (status == 401)
        nx_fail(err, "401 Unauthorized for %s: the repository is private or gated, or does not exist; %s "
                "(tokens: https://huggingface.co/settings/tokens) and, for a gated model, accept its licence at %s%s%s%s",
                what, c->token ? "the token was refused: check it is valid and has read access"
                               : "pass a token with read access with --token TOKEN or HF_TOKEN",
                c->ep, page_pre, c->repo, hub);
    else if (status == 403)
        nx_fail(err, "403 Forbidden for %s: the token has no access to it; accept the licence at %s%s%s with the "
                "token's account (a fine-grained token also needs read access to gated repos)%s",
                what, c->ep, page_pre, c->repo, hub);
    else if (status == 404 && !strcmp(r->err_code, "RevisionNotFound"))
        nx_fail(err, "404: revision '%s' not found in %s%s: check the branch, tag or commit%s", c->rev, hub_kind(c),
                c->repo, hub);
    else if (status == 404 && file)
        nx_fail(err, "404: %s not found in %s%s at %s%s", file, hub_kind(c), c->repo, c->commit, hub);
    else if (status == 404)
        nx_fail(err, "404: %s not found on %s: check the repo id and the revision%s%s", what, c->ep,
                c->type == NX_HUB_MODEL ? " (a dataset needs --repo-type dataset)" : "", hub);
    else nx_fail(err, "HTTP %ld for %s (%s)%s", status, what, url, hub);
}

/* ---- step 1: the API ------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t n, cap;
    bool over;
} buf;

static size_t on_api_body(char *p, size_t sz, size_t n, void *u) {
    buf *b = u;
    size_t len = sz * n;
    if (b->n + len > MAX_API_BYTES) { b->over = true; return 0; }
    if (b->n + len + 1 > b->cap) {
        b->cap = (b->n + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        NX_ASSERTM(b->p, "out of memory");
    }
    memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = 0;
    return len;
}

static int on_api_progress(void *u, curl_off_t a, curl_off_t b, curl_off_t x, curl_off_t y) {
    (void)a; (void)b; (void)x; (void)y;
    const volatile sig_atomic_t *stop = u;
    return stop && *stop;
}

static int reach_fail(const hub_ctx *c, nx_err *err, CURLcode code, const char *url) {
    return nx_fail(err, "cannot reach %s (%s, %s): check the network or HF_ENDPOINT; HF_HUB_OFFLINE=1 "
                   "uses what is cached", c->ep, curl_easy_strerror(code), url);
}

/* Fills c->commit and the task list (paths only), filtered by the include globs. */
int hub_api_list(hub_ctx *c, nx_err *err) {
    char *qrev = hub_quote(c->rev, "");
    char *url = hub_printf("%s/api/%s/%s/revision/%s", c->ep, c->type == NX_HUB_DATASET ? "datasets" : "models",
                        c->repo, qrev);
    free(qrev);
    CURL *h = curl_easy_init();
    NX_ASSERTM(h, "curl_easy_init failed");
    buf b = {0};
    hub_resp r = {0};
    hub_resp_reset(&r);
    hub_curl_opts(h, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_auth);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_api_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hub_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_api_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->o->stop);
    CURLcode code = curl_easy_perform(h);
    curl_easy_cleanup(h);
    int rc = NX_OK;
    cJSON *j = NULL;
    if (code == CURLE_ABORTED_BY_CALLBACK) { c->res->interrupted = true; goto out; }
    if (b.over) { rc = nx_fail(err, "%s: answer larger than %d MiB", url, MAX_API_BYTES >> 20); goto out; }
    if (code != CURLE_OK) { rc = reach_fail(c, err, code, url); goto out; }
    if (r.status != 200) { hub_http_fail(c, err, r.status, &r, NULL, url); rc = NX_ERR; goto out; }
    j = b.p ? cJSON_Parse(b.p) : NULL;
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
    if (!cJSON_IsString(sha) || !hub_is_hex(sha->valuestring, 40) || !cJSON_IsArray(sib)) {
        rc = nx_fail(err, "%s: not the Hub's repo API answer (no 40-hex 'sha' or no 'siblings' list): is HF_ENDPOINT "
                     "(%s) a Hugging Face Hub?", url, c->ep);
        goto out;
    }
    for (int i = 0; i < 40; i++) c->commit[i] = (char)(sha->valuestring[i] | 0x20);  /* lowercase */
    c->commit[40] = 0;
    int n = cJSON_GetArraySize(sib), k = 0;
    c->tasks = nx_xcalloc((size_t)n + 1, sizeof *c->tasks);
    const cJSON *s;
    cJSON_ArrayForEach(s, sib) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(s, "rfilename");
        if (!cJSON_IsString(f)) continue;
        const char *p = f->valuestring;
        if (!hub_safe_relpath(p)) {
            rc = nx_fail(err, "%s: the file list holds an unsafe name '%.200s'; refusing to write it", url, p);
            goto out;
        }
        if (!hub_included(c, p)) continue;
        hub_file *t = &c->tasks[k++];
        t->path = hub_strdup(p);
        t->size = -1;
    }
    c->ntasks = k;
    if (k == 0) {
        char names[600] = "";
        size_t used = 0;
        cJSON_ArrayForEach(s, sib) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(s, "rfilename");
            if (!cJSON_IsString(f) || used > 400) continue;
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", f->valuestring);
        }
        rc = nx_fail(err, "%s%s at '%s' has %s: nothing to pull%s%s", hub_kind(c), c->repo, c->rev,
                     n ? "no file matching the --include patterns" : "no files", n ? "; it holds: " : "", names);
    }
out:
    cJSON_Delete(j);
    free(b.p);
    hub_resp_reset(&r);
    free(url);
    return rc;
}
