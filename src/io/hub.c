/* hub.c — the Hugging Face Hub over libcurl, into the huggingface_hub cache.
 *
 * A pull is three steps, the same ones huggingface_hub's snapshot_download
 * takes, so that both tools fill one cache the same way:
 *
 *   1. the API (GET {endpoint}/api/{models|datasets}/{repo}/revision/{rev})
 *      gives the commit sha the revision points to and the file list
 *      (siblings[].rfilename); include globs filter it; refs/<rev> records
 *      the commit;
 *   2. per file, a HEAD of {endpoint}/[datasets/]{repo}/resolve/{commit}/{file}
 *      without following redirects gives the file's ETag (X-Linked-Etag for
 *      LFS files, which the Hub answers with a 302 to its CDN; ETag for the
 *      others), its size (X-Linked-Size / Content-Length) and where to
 *      download it (the Location, or the resolve URL itself); the blob is
 *      blobs/<etag>, so a blob already there (another revision, another tool)
 *      is linked and not fetched;
 *   3. a GET of that location into blobs/<etag>.incomplete — resumed with a
 *      Range header when the file is already partly there, from a dropped
 *      connection, a Ctrl-C or a crash — then, for an LFS file, its sha256
 *      checked against the ETag, the rename to blobs/<etag> and the relative
 *      symlink snapshots/<commit>/<file> → ../../blobs/<etag>.
 *
 * Downloads run `jobs` at a time on one curl multi handle: each slot walks
 * its file through HEAD then GET and takes the next file. A dropped
 * connection, a timeout or a 5xx/429 is retried (a few times, with a short
 * back-off; the GET resumes where the file stopped); a 4xx is final for that
 * file; the other files go on either way and the first error is reported.
 * A downloaded LFS file whose sha256 does not match is deleted and fetched
 * once more, then the pull fails for it.
 *
 * The token is sent to the endpoint only: the GET to a CDN on another host
 * goes without it (curl also drops it on redirects to another host). Every
 * name that becomes a path — repo id, revision, file names, etags — is
 * checked first; nothing from the network is trusted.
 *
 * Concurrent pulls of one blob (two nexus runs, or nexus and Python) are
 * kept apart by flock(2) on .locks/<repo folder>/<etag>.lock, the lock file
 * huggingface_hub's filelock takes.
 *
 * This file holds the public API, the environment and the cache layout and
 * runs the steps; src/io/hub/http.c reads HTTP answers and calls the API;
 * src/io/hub/transfer.c does steps 2 and 3. */
#include "nexus/hub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/hub_impl.h"
#include "nexus/fsutil.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"

/* ---- small strings ----------------------------------------------------- */

char *hub_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(nx_xmalloc(n), s, n);
}

char *hub_printf(const char *fmt, ...) {
    va_list a, b;
    va_start(a, fmt);
    va_copy(b, a);
    int n = vsnprintf(NULL, 0, fmt, a);
    va_end(a);
    NX_ASSERT(n >= 0);
    char *s = nx_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, b);
    va_end(b);
    return s;
}

static const char *env(const char *k) {
    const char *v = getenv(k);
    return v && *v ? v : NULL;
}

bool hub_is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

/* "~/x" → "$HOME/x", as Python's expanduser for the paths read from the environment. */
static char *expand_user(const char *p) {
    if (p[0] != '~' || (p[1] && p[1] != '/')) return hub_strdup(p);
    const char *home = env("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : "/";
    }
    return hub_printf("%s%s", home, p + 1);
}

const char *hub_human(char *b, size_t n, double v) {
    if (v >= 1024.0 * 1024 * 1024) snprintf(b, n, "%.2f GiB", v / (1024.0 * 1024 * 1024));
    else if (v >= 1024.0 * 1024) snprintf(b, n, "%.1f MiB", v / (1024.0 * 1024));
    else if (v >= 1024.0) snprintf(b, n, "%.1f KiB", v / 1024.0);
    else snprintf(b, n, "%.0f B", v);
    return b;
}

/* Percent-encode all but unreserved characters and those in `safe`, as
 * Python's urllib.parse.quote (the revision with safe="", paths with "/"). */
char *hub_quote(const char *s, const char *safe) {
    char *o = nx_xmalloc(3 * strlen(s) + 1), *p = o;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            strchr("_.-~", *c) || (*c && strchr(safe, *c)))
            *p++ = (char)*c;
        else p += sprintf(p, "%%%02X", *c);
    }
    *p = 0;
    return o;
}

/* A relative path with no empty, "." or ".." component, no backslash or
 * control character: safe to join under a directory. */
bool hub_safe_relpath(const char *s) {
    if (!*s || *s == '/' || strlen(s) > 1024) return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '\\') return false;
    for (const char *c = s;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return false;
        if (!e) return true;
        c = e + 1;
    }
}

/* ---- environment, names -------------------------------------------------- */

static char *hf_home(void) {
    if (env("HF_HOME")) return expand_user(env("HF_HOME"));
    if (env("XDG_CACHE_HOME")) {
        char *x = expand_user(env("XDG_CACHE_HOME")), *r = hub_printf("%s/huggingface", x);
        free(x);
        return r;
    }
    char *c = expand_user("~/.cache/huggingface");
    return c;
}

char *nx_hub_cache_dir(void) {
    if (env("HF_HUB_CACHE")) return expand_user(env("HF_HUB_CACHE"));
    if (env("HUGGINGFACE_HUB_CACHE")) return expand_user(env("HUGGINGFACE_HUB_CACHE"));
    char *h = hf_home(), *r = hub_printf("%s/hub", h);
    free(h);
    return r;
}

char *nx_hub_endpoint(void) {
    char *e = hub_strdup(env("HF_ENDPOINT") ? env("HF_ENDPOINT") : DEFAULT_ENDPOINT);
    for (size_t n = strlen(e); n > 0 && e[n - 1] == '/'; n--) e[n - 1] = 0;
    return e;
}

char *nx_hub_token(void) {
    const char *t = env("HF_TOKEN") ? env("HF_TOKEN") : env("HUGGING_FACE_HUB_TOKEN");
    char *s = NULL;
    if (t) s = hub_strdup(t);
    else {
        char *h = hf_home();
        char *path = env("HF_TOKEN_PATH") ? expand_user(env("HF_TOKEN_PATH")) : hub_printf("%s/token", h);
        free(h);
        size_t n;
        s = nx_read_file(path, 4096, &n, NULL);
        free(path);
        if (!s) return NULL;
    }
    char *a = s;  /* trim whitespace (the token file ends in a newline) */
    while (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r') a++;
    size_t n = strlen(a);
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t' || a[n - 1] == '\n' || a[n - 1] == '\r')) n--;
    a[n] = 0;
    if (!n) { free(s); return NULL; }
    memmove(s, a, n + 1);
    return s;
}

int nx_hub_check_repo_id(const char *id, nx_err *err) {
    const char *why = NULL;
    size_t n = strlen(id);
    const char *slash = strchr(id, '/');
    if (!n || n > 96) why = "it must be 1 to 96 characters";
    else if (slash && strchr(slash + 1, '/')) why = "it has more than one '/'";
    else if (strstr(id, "--") || strstr(id, "..")) why = "'--' and '..' are not allowed";
    else {
        for (const char *c = id; *c && !why; c++)
            if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                  strchr("-_./", *c)))
                why = "only letters, digits, '-', '_', '.' and one '/' are allowed";
        for (const char *part = id; part && !why; part = strchr(part, '/') ? strchr(part, '/') + 1 : NULL) {
            size_t k = strchr(part, '/') ? (size_t)(strchr(part, '/') - part) : strlen(part);
            if (!k) why = "the organisation and the name must not be empty";
            else if (strchr("-.", part[0]) || strchr("-.", part[k - 1]))
                why = "a part must not start or end with '-' or '.'";
        }
    }
    if (why) return nx_fail(err, "'%s' is not a Hub repo id (like org/name): %s", id, why);
    return NX_OK;
}

char *nx_hub_repo_folder(nx_hub_type type, const char *repo_id) {
    char *f = hub_printf("%s--%s", type == NX_HUB_DATASET ? "datasets" : "models", repo_id);
    char *s;
    while ((s = strchr(f, '/'))) {  /* "/" → "--" */
        char *g = hub_printf("%.*s--%s", (int)(s - f), f, s + 1);
        free(f);
        f = g;
    }
    return f;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int check_revision(const char *rev, nx_err *err) {
    if (!hub_safe_relpath(rev) || strlen(rev) > 255)
        return nx_fail(err, "revision '%s' is not a branch, tag or commit name", rev);
    return NX_OK;
}

int nx_hub_snapshot(const char *cache_dir, nx_hub_type type, const char *repo_id, const char *revision,
                    char **path, nx_err *err) {
    *path = NULL;
    if (!revision) revision = "main";
    if (nx_hub_check_repo_id(repo_id, err) || check_revision(revision, err)) return NX_ERR;
    char *cache = cache_dir ? hub_strdup(cache_dir) : nx_hub_cache_dir();
    char *folder = nx_hub_repo_folder(type, repo_id);
    char *store = hub_printf("%s/%s", cache, folder);
    char commit[64] = "";
    if (hub_is_hex(revision, 40)) snprintf(commit, sizeof commit, "%s", revision);
    else {
        char *ref = hub_printf("%s/refs/%s", store, revision);
        size_t n;
        char *s = nx_read_file(ref, 256, &n, NULL);
        free(ref);
        if (s) {
            while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
            if (hub_is_hex(s, 40)) snprintf(commit, sizeof commit, "%s", s);
            free(s);
        }
    }
    int rc = NX_OK;
    char *snap = commit[0] ? hub_printf("%s/snapshots/%s", store, commit) : NULL;
    if (!snap || !is_dir(snap)) {
        rc = nx_fail(err, "%s%s at revision '%s' is not in the cache %s (%s): run `nexus pull %s%s%s%s` first",
                     type == NX_HUB_DATASET ? "dataset " : "", repo_id, revision, cache,
                     snap ? "its snapshot folder is missing" : "no refs entry for it", repo_id,
                     type == NX_HUB_DATASET ? " --repo-type dataset" : "",
                     strcmp(revision, "main") ? " --revision " : "", strcmp(revision, "main") ? revision : "");
        free(snap);
        snap = NULL;
    }
    *path = snap;
    free(store);
    free(folder);
    free(cache);
    return rc;
}

const char *hub_kind(const hub_ctx *c) { return c->type == NX_HUB_DATASET ? "dataset " : ""; }

/* One log line; clears the progress line first. */
void hub_say(hub_ctx *c, const char *fmt, ...) {
    if (!c->o->log) return;
    if (c->drawn) { fputs("\r\033[K", stderr); c->drawn = false; }
    va_list a;
    va_start(a, fmt);
    vfprintf(c->o->log, fmt, a);
    va_end(a);
    fputc('\n', c->o->log);
    fflush(c->o->log);
}

void hub_draw(hub_ctx *c, bool force) {
    if (!c->o->progress) return;
    double now = nx_now();
    if (!force && now - c->last_draw < 0.1) return;
    c->last_draw = now;
    long long have = 0, total = 0;
    int done = 0, todo = 0;
    for (int i = 0; i < c->ntasks; i++) {
        hub_file *t = &c->tasks[i];
        if (t->done) done++;
        todo++;
        if (t->size >= 0) { total += t->size; have += t->done ? t->size : t->have; }
    }
    char a[32], b[32], s[32];
    double dt = now - c->t0;
    fprintf(stderr, "\r\033[Kpull %s: %d/%d files, %s / %s, %s/s", c->repo, done, todo,
            hub_human(a, sizeof a, (double)have), hub_human(b, sizeof b, (double)total),
            hub_human(s, sizeof s, dt > 0 ? (double)c->res->bytes / dt : 0));
    fflush(stderr);
    c->drawn = true;
}

bool hub_included(const hub_ctx *c, const char *path) {
    if (c->o->ninclude == 0) return true;
    bool keep = false;
    for (int g = 0; g < c->o->ninclude && !keep; g++) {
        const char *pat = c->o->include[g];
        size_t pl = strlen(pat);
        /* a trailing "/" means the whole folder, as in huggingface_hub */
        char *full = pl && pat[pl - 1] == '/' ? hub_printf("%s*", pat) : hub_strdup(pat);
        keep = fnmatch(full, path, 0) == 0;
        free(full);
    }
    return keep;
}

/* ---- cache writes ------------------------------------------------------- */

static int write_ref(hub_ctx *c, nx_err *err) {
    if (!strcmp(c->rev, c->commit)) return NX_OK;
    char *ref = hub_printf("%s/refs/%s", c->store, c->rev);
    size_t n;
    char *old = nx_read_file(ref, 256, &n, NULL);
    int rc = NX_OK;
    if (!old || strcmp(old, c->commit)) {
        char *dir = hub_strdup(ref);
        *strrchr(dir, '/') = 0;
        const void *parts[1] = {c->commit};
        size_t lens[1] = {40};
        rc = nx_mkdirs(dir, err) ? NX_ERR : nx_write_atomic(ref, parts, lens, 1, err);
        free(dir);
    }
    free(old);
    free(ref);
    return rc;
}

bool hub_exists_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Copy (following symlinks) src to dst, creating dst's directories. */
static int copy_file(const char *src, const char *dst, nx_err *err) {
    char *dir = hub_strdup(dst);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    int rc = sl ? nx_mkdirs(dir, err) : NX_OK;
    free(dir);
    if (rc) return rc;
    int in = open(src, O_RDONLY), out = -1;
    if (in < 0) return nx_fail(err, "%s: cannot open: %s", src, strerror(errno));
    unlink(dst);  /* never write through a symlink left there */
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) { rc = nx_fail(err, "%s: cannot create: %s", dst, strerror(errno)); goto done; }
    bool plain = false;
    char b[1 << 16];
    for (;;) {
        ssize_t k;
        if (!plain) {
            k = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
            if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
                plain = true;
                continue;
            }
        } else {
            k = read(in, b, sizeof b);
            if (k > 0 && nx_write_all(out, b, (size_t)k)) k = -1;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { rc = nx_fail(err, "copying %s to %s: %s", src, dst, strerror(errno)); break; }
        if (k == 0) break;
    }
    if (close(out) && !rc) rc = nx_fail(err, "%s: close failed: %s", dst, strerror(errno));
done:
    close(in);
    return rc;
}

/* Offline: the files of the cached snapshot (symlinks or files), as done tasks. */
static void list_cached(hub_ctx *c, const char *rel) {
    char *dir = *rel ? hub_printf("%s/%s", c->snap, rel) : hub_strdup(c->snap);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *sub = *rel ? hub_printf("%s/%s", rel, e->d_name) : hub_strdup(e->d_name);
        char *full = hub_printf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode)) list_cached(c, sub);
        else if (hub_included(c, sub)) {
            c->tasks = realloc(c->tasks, sizeof *c->tasks * (size_t)(c->ntasks + 1));
            NX_ASSERTM(c->tasks, "out of memory");
            memset(&c->tasks[c->ntasks], 0, sizeof *c->tasks);
            c->tasks[c->ntasks].path = hub_strdup(sub);
            c->tasks[c->ntasks].done = true;
            c->ntasks++;
        }
        free(full);
        free(sub);
    }
    if (d) closedir(d);
    free(dir);
}

static int pull_offline(hub_ctx *c, nx_err *err) {
    if (nx_hub_snapshot(c->cache, c->type, c->repo, c->rev, &c->snap, err)) return NX_ERR;
    snprintf(c->res->commit, sizeof c->res->commit, "%s", strrchr(c->snap, '/') + 1);
    list_cached(c, "");
    c->res->cached = c->ntasks;
    hub_say(c, "HF_HUB_OFFLINE is set: %d cached files of %s%s, nothing fetched", c->ntasks, hub_kind(c), c->repo);
    if (!c->ntasks) return nx_fail(err, "the cached snapshot %s holds no file matching the --include patterns", c->snap);
    return NX_OK;
}

static int pull_online(hub_ctx *c, nx_err *err) {
    if (c->token) {
        char *h = hub_printf("Authorization: Bearer %s", c->token);
        c->hdr_auth = curl_slist_append(NULL, h);
        free(h);
    }
    c->hdr_auth = curl_slist_append(c->hdr_auth, "Accept-Encoding: identity");
    c->hdr_plain = curl_slist_append(NULL, "Accept-Encoding: identity");
    c->t0 = nx_now();
    if (hub_api_list(c, err)) return NX_ERR;
    if (c->res->interrupted) return NX_OK;
    memcpy(c->res->commit, c->commit, sizeof c->res->commit);
    c->snap = hub_printf("%s/snapshots/%s", c->store, c->commit);
    if (nx_mkdirs(c->blobs, err) || nx_mkdirs(c->locks, err) || nx_mkdirs(c->snap, err) || write_ref(c, err))
        return NX_ERR;
    char *base = hub_printf("%s/%s%s/resolve/%s/", c->ep, c->type == NX_HUB_DATASET ? "datasets/" : "", c->repo, c->commit);
    for (int i = 0; i < c->ntasks; i++) {
        hub_file *t = &c->tasks[i];
        char *ptr = hub_printf("%s/%s", c->snap, t->path);
        if (hub_exists_file(ptr)) { t->done = true; c->res->cached++; }  /* a snapshot entry is immutable */
        free(ptr);
        char *q = hub_quote(t->path, "/");
        t->url = hub_printf("%s%s", base, q);
        free(q);
    }
    free(base);
    if (c->res->cached < c->ntasks)
        hub_say(c, "pulling %s%s@%s (%s): %d files, %d already cached", hub_kind(c), c->repo, c->rev, c->commit, c->ntasks,
            c->res->cached);
    hub_run_tasks(c);
    hub_draw(c, true);
    if (c->drawn) { fputc('\n', stderr); c->drawn = false; }
    if (c->nfailed > 1)
        return nx_fail(err, "%s (and %d more file%s failed%s)", c->first.msg, c->nfailed - 1, c->nfailed > 2 ? "s" : "",
                       c->nlogged ? ": see above" : " the same way");
    if (c->nfailed) return nx_fail(err, "%s", c->first.msg);
    return NX_OK;
}

static void ctx_free(hub_ctx *c) {
    for (int i = 0; i < c->ntasks; i++) {
        free(c->tasks[i].path);
        free(c->tasks[i].url);
        free(c->tasks[i].location);
    }
    free(c->tasks);
    curl_slist_free_all(c->hdr_auth);
    curl_slist_free_all(c->hdr_plain);
    free(c->ep); free(c->origin); free(c->token); free(c->cache);
    free(c->store); free(c->blobs); free(c->locks); free(c->snap);
}

void nx_hub_result_free(nx_hub_result *r) {
    if (!r) return;
    free(r->snapshot);
    r->snapshot = NULL;
}

int nx_hub_pull(const nx_hub_opts *o, nx_hub_result *r, nx_err *err) {
    memset(r, 0, sizeof *r);
    hub_ctx c = {.o = o, .repo = o->repo_id, .rev = o->revision ? o->revision : "main", .type = o->type, .res = r};
    if (nx_hub_check_repo_id(c.repo, err) || check_revision(c.rev, err)) return NX_ERR;
    c.ep = o->endpoint ? hub_strdup(o->endpoint) : nx_hub_endpoint();
    for (size_t n = strlen(c.ep); n > 0 && c.ep[n - 1] == '/'; n--) c.ep[n - 1] = 0;
    if (strncmp(c.ep, "http://", 7) && strncmp(c.ep, "https://", 8)) {
        nx_fail(err, "endpoint '%s' is not an http(s) URL (HF_ENDPOINT)", c.ep);
        ctx_free(&c);
        return NX_ERR;
    }
    const char *path = strchr(strstr(c.ep, "://") + 3, '/');
    c.origin = path ? hub_printf("%.*s", (int)(path - c.ep), c.ep) : hub_strdup(c.ep);
    c.token = o->token ? hub_strdup(o->token) : nx_hub_token();
    c.cache = o->cache_dir ? hub_strdup(o->cache_dir) : nx_hub_cache_dir();
    char *folder = nx_hub_repo_folder(c.type, c.repo);
    c.store = hub_printf("%s/%s", c.cache, folder);
    c.blobs = hub_printf("%s/blobs", c.store);
    c.locks = hub_printf("%s/.locks/%s", c.cache, folder);
    free(folder);

    int rc;
    const char *off = env("HF_HUB_OFFLINE");
    if (off && (!strcmp(off, "1") || !strcasecmp(off, "true") || !strcasecmp(off, "yes") || !strcasecmp(off, "on")))
        rc = pull_offline(&c, err);
    else if (curl_global_init(CURL_GLOBAL_DEFAULT)) rc = nx_fail(err, "libcurl failed to initialise");
    else {
        rc = pull_online(&c, err);
        curl_global_cleanup();
    }
    for (int i = 0; !rc && !r->interrupted && o->out_dir && i < c.ntasks; i++) {
        char *src = hub_printf("%s/%s", c.snap, c.tasks[i].path), *dst = hub_printf("%s/%s", o->out_dir, c.tasks[i].path);
        rc = copy_file(src, dst, err);
        free(src);
        free(dst);
    }
    r->files = c.ntasks;
    if (!rc && c.snap) { r->snapshot = c.snap; c.snap = NULL; }
    ctx_free(&c);
    return rc;
}
