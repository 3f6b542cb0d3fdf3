/* transfer.c — steps 2 and 3 of a pull (src/io/hub.c says what they are):
 * every file through HEAD then GET on one curl multi handle, `jobs` at a
 * time. Each slot holds one file: the HEAD gives the ETag, size and download
 * location; a blob already in the cache is only linked; otherwise the slot
 * takes the blob's lock, opens blobs/<etag>.incomplete, hashes what is there
 * (sha256 for LFS files), GETs the rest with a Range header, and on the last
 * byte checks size and sha256, renames the blob into place and links
 * snapshots/<commit>/<path> to it.
 *
 * Failures are sorted by what helps: a dropped connection, a stall, a 5xx or
 * a 429 is retried after a short back-off (the GET resumes where the file
 * stopped); a server that ignores the Range is followed from byte 0; a
 * sha256 mismatch deletes the download and fetches it once more; anything
 * else fails that file while the others go on. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub_impl.h"
#include "nexus/fsutil.h"

enum { MAX_HOPS = 5 };

/* The ETag as huggingface_hub keys blobs by: weak marker and quotes dropped. */
static void normalize_etag(char *out, const char *in) {
    if (!strncmp(in, "W/", 2)) in += 2;
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') { in++; n -= 2; }
    if (n > HUB_ETAG_MAX) n = 0;  /* not a hash: refused by etag_ok */
    memcpy(out, in, n);
    out[n] = 0;
}

static bool etag_ok(const char *e) {
    if (!*e || *e == '.' || strlen(e) > HUB_ETAG_MAX) return false;
    for (const char *c = e; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("-_.", *c)))
            return false;
    return true;
}

typedef enum { S_IDLE, S_HEAD, S_GET } slot_state;

struct hub_ctx;
typedef struct slot {
    struct hub_ctx *c;
    CURL *h;
    slot_state st;
    hub_file *t;
    hub_resp r;
    int fd, lockfd;
    EVP_MD_CTX *md;
    bool body_started, body_is_error;
    char errbody[512];
    size_t nerrbody;
    char werr[512];      /* a failure inside the write callback */
    bool werr_fatal;
} slot;

static bool same_origin(const hub_ctx *c, const char *url) {
    size_t n = strlen(c->origin);
    return !strncmp(url, c->origin, n) && (url[n] == '/' || url[n] == 0);
}

/* snapshots/<commit>/<path> → ../../blobs/<etag> (one more ../ per '/' in path). */
static int link_pointer(hub_ctx *c, hub_file *t, nx_err *err) {
    char *ptr = hub_printf("%s/%s", c->snap, t->path);
    char *dir = hub_strdup(ptr);
    *strrchr(dir, '/') = 0;
    size_t depth = 2;
    for (const char *s = t->path; *s; s++) depth += *s == '/';
    char *rel = nx_xcalloc(depth * 3 + strlen(t->etag) + 8, 1);
    for (size_t i = 0; i < depth; i++) strcat(rel, "../");
    strcat(rel, "blobs/");
    strcat(rel, t->etag);
    int rc = nx_mkdirs(dir, err);
    if (!rc && unlink(ptr) && errno != ENOENT) rc = nx_fail(err, "%s: cannot replace: %s", ptr, strerror(errno));
    if (!rc && symlink(rel, ptr)) rc = nx_fail(err, "%s: cannot create the symlink: %s", ptr, strerror(errno));
    free(rel);
    free(dir);
    free(ptr);
    return rc;
}

/* ---- steps 2 and 3: the transfers -------------------------------------------- */

static void slot_release(slot *s) {
    if (s->fd >= 0) close(s->fd);
    if (s->lockfd >= 0) close(s->lockfd);  /* closing drops the flock */
    EVP_MD_CTX_free(s->md);
    s->fd = s->lockfd = -1;
    s->md = NULL;
    if (s->t) s->t->active = false;
    s->t = NULL;
    s->st = S_IDLE;
}

/* The file failed. The first failure becomes the pull's error message; later
 * ones are logged. A 401/403 (`access`) stops the pull: no other file of the
 * repo will do better. */
static void task_fail_as(slot *s, const char *msg, bool access) {
    hub_ctx *c = s->c;
    s->t->failed = true;
    if (c->nfailed++ == 0) nx_fail(&c->first, "%s", msg);
    else if (!(access && c->abort)) { hub_say(c, "nexus pull: %s", msg); c->nlogged++; }
    if (access) c->abort = true;
    slot_release(s);
}

static void task_fail(slot *s, const char *msg) { task_fail_as(s, msg, false); }

/* A dropped connection, a timeout, a 5xx: try again after a short back-off,
 * keeping what was downloaded; past opts->retries, the file fails. */
static void task_retry(slot *s, const char *msg) {
    hub_ctx *c = s->c;
    hub_file *t = s->t;
    int max = c->o->retries < 0 ? 5 : c->o->retries;
    if (++t->attempts > max) {
        char m[1100];
        snprintf(m, sizeof m, "%s (gave up after %d attempts; run the same command again to resume)", msg,
                 t->attempts);
        task_fail(s, m);
        return;
    }
    double wait = 0.25 * (1 << (t->attempts < 6 ? t->attempts - 1 : 5));  /* 0.25 s, 0.5 s, ... 8 s */
    hub_say(c, "nexus pull: %s; retrying in %.1f s (%d/%d)", msg, wait, t->attempts, max);
    t->not_before = nx_now() + wait;
    slot_release(s);
}

static void task_done(slot *s, bool fetched) {
    hub_ctx *c = s->c;
    hub_file *t = s->t;
    nx_err e;
    if (link_pointer(c, t, &e)) { task_fail(s, e.msg); return; }
    t->done = true;
    if (fetched) {
        c->res->fetched++;
        char h[32];
        if (!c->o->progress) hub_say(c, "fetched %s (%s)", t->path, hub_human(h, sizeof h, (double)t->size));
    } else c->res->cached++;
    slot_release(s);
}

static void start(slot *s, CURLM *m) {
    curl_multi_add_handle(m, s->h);
}

static void start_head(slot *s, hub_file *t, CURLM *m) {
    s->t = t;
    t->active = true;
    s->st = S_HEAD;
    hub_resp_reset(&s->r);
    curl_easy_reset(s->h);
    hub_curl_opts(s->h, t->url);
    curl_easy_setopt(s->h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->c->hdr_auth);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(s->h, CURLOPT_HEADERFUNCTION, hub_on_header);
    curl_easy_setopt(s->h, CURLOPT_HEADERDATA, &s->r);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    start(s, m);
}

static size_t on_body(char *p, size_t sz, size_t n, void *u) {
    slot *s = u;
    hub_file *t = s->t;
    size_t len = sz * n;
    if (!s->body_started) {
        s->body_started = true;
        long st = s->r.status;
        if (st == 206) {
            long long a = -1;
            if (sscanf(s->r.content_range, "bytes %lld-", &a) != 1 || a != t->have) {
                snprintf(s->werr, sizeof s->werr, "%s: the server resumed at byte %lld, not at %lld (Content-Range '%s')",
                         t->path, a, t->have, s->r.content_range);
                return 0;
            }
        } else if (st == 200) {
            if (t->have > 0) {  /* the server ignored the Range: start over */
                if (ftruncate(s->fd, 0) || lseek(s->fd, 0, SEEK_SET)) {
                    snprintf(s->werr, sizeof s->werr, "%s: cannot truncate: %s", t->path, strerror(errno));
                    s->werr_fatal = true;
                    return 0;
                }
                t->have = 0;
                if (s->md) EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
            }
        } else s->body_is_error = true;
    }
    if (s->body_is_error) {  /* keep the start of an error page for the message */
        size_t k = len < sizeof s->errbody - 1 - s->nerrbody ? len : sizeof s->errbody - 1 - s->nerrbody;
        memcpy(s->errbody + s->nerrbody, p, k);
        s->nerrbody += k;
        s->errbody[s->nerrbody] = 0;
        return len;
    }
    if (nx_write_all(s->fd, p, len)) {
        snprintf(s->werr, sizeof s->werr, "%s/%s.incomplete: write failed: %s%s", s->c->blobs, t->etag, strerror(errno),
                 errno == ENOSPC ? " (disk full: free space and run the same command again to resume)" : "");
        s->werr_fatal = true;
        return 0;
    }
    if (s->md) EVP_DigestUpdate(s->md, p, len);
    t->have += (long long)len;
    s->c->res->bytes += len;
    return len;
}

static void finish_blob(slot *s);

/* Open blobs/<etag>.incomplete (hashing what is already there) and GET the rest. */
static void start_get(slot *s, CURLM *m) {
    hub_ctx *c = s->c;
    hub_file *t = s->t;
    char msg[1100];
    char *inc = hub_printf("%s/%s.incomplete", c->blobs, t->etag);
    s->fd = open(inc, O_RDWR | O_CREAT, 0644);
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st)) {
        snprintf(msg, sizeof msg, "%s: cannot open: %s", inc, strerror(errno));
        free(inc);
        task_fail(s, msg);
        return;
    }
    t->have = st.st_size;
    if (t->size >= 0 && t->have > t->size) {  /* longer than the file: not a prefix of it */
        if (ftruncate(s->fd, 0)) t->have = -1;
        else t->have = 0;
    }
    if (t->have > 0 && t->lfs) hub_say(c, "%s: resuming at %lld bytes", t->path, t->have);
    if (t->lfs) {
        s->md = EVP_MD_CTX_new();
        NX_ASSERTM(s->md && EVP_DigestInit_ex(s->md, EVP_sha256(), NULL), "OpenSSL sha256 unavailable");
        char b[1 << 16];
        for (long long off = 0; off < t->have;) {
            ssize_t k = pread(s->fd, b, sizeof b, off);
            if (k <= 0) { t->have = -1; break; }
            EVP_DigestUpdate(s->md, b, (size_t)k);
            off += k;
        }
    }
    if (t->have < 0 || lseek(s->fd, t->have, SEEK_SET) < 0) {
        snprintf(msg, sizeof msg, "%s: cannot read or truncate: %s", inc, strerror(errno));
        free(inc);
        task_fail(s, msg);
        return;
    }
    free(inc);
    if (t->size >= 0 && t->have == t->size) { finish_blob(s); return; }
    s->st = S_GET;
    s->body_started = s->body_is_error = s->werr_fatal = false;
    s->nerrbody = 0;
    s->errbody[0] = s->werr[0] = 0;
    hub_resp_reset(&s->r);
    curl_easy_reset(s->h);
    hub_curl_opts(s->h, t->location);
    curl_easy_setopt(s->h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(s->h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(s->h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, same_origin(c, t->location) ? c->hdr_auth : c->hdr_plain);
    curl_easy_setopt(s->h, CURLOPT_HEADERFUNCTION, hub_on_header);
    curl_easy_setopt(s->h, CURLOPT_HEADERDATA, &s->r);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    char range[48];
    if (t->have > 0) {
        snprintf(range, sizeof range, "%lld-", t->have);
        curl_easy_setopt(s->h, CURLOPT_RANGE, range);  /* curl copies it */
    }
    start(s, m);
}

/* The whole file is in .incomplete: check size and sha256, rename, link. */
static void finish_blob(slot *s) {
    hub_ctx *c = s->c;
    hub_file *t = s->t;
    char msg[1100];
    char *inc = hub_printf("%s/%s.incomplete", c->blobs, t->etag);
    char *blob = hub_printf("%s/%s", c->blobs, t->etag);
    if (fsync(s->fd)) {
        snprintf(msg, sizeof msg, "%s: fsync failed: %s", inc, strerror(errno));
        task_fail(s, msg);
        goto out;
    }
    if (t->size >= 0 && t->have != t->size) {
        snprintf(msg, sizeof msg, "%s: the connection ended at %lld of %lld bytes", t->path, t->have, t->size);
        task_retry(s, msg);
        goto out;
    }
    if (t->lfs) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned dn = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        EVP_DigestFinal_ex(s->md, d, &dn);
        for (unsigned i = 0; i < dn; i++) sprintf(hex + 2 * i, "%02x", d[i]);
        if (strcasecmp(hex, t->etag)) {
            unlink(inc);
            t->have = 0;
            if (t->refetches++ == 0) {
                hub_say(c, "nexus pull: %s: sha256 mismatch (the bytes hash to %.12s..., the Hub's ETag is %.12s...): "
                    "deleted, fetching it once more", t->path, hex, t->etag);
                t->not_before = 0;
                slot_release(s);
            } else {
                snprintf(msg, sizeof msg, "%s: sha256 mismatch again (the bytes hash to %s, the Hub's ETag is %s): "
                         "the download was deleted; try again later, and report it to the repository's owner if "
                         "it persists", t->path, hex, t->etag);
                task_fail(s, msg);
            }
            goto out;
        }
    }
    if (rename(inc, blob)) {
        snprintf(msg, sizeof msg, "%s: cannot rename to %s: %s", inc, blob, strerror(errno));
        task_fail(s, msg);
        goto out;
    }
    if (t->size < 0) t->size = t->have;
    task_done(s, true);
out:
    free(inc);
    free(blob);
}

static void on_head_done(slot *s, CURLcode code, CURLM *m) {
    hub_ctx *c = s->c;
    hub_file *t = s->t;
    char msg[1100];
    long st = s->r.status;
    if (code != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s: %s (%s)", t->path, curl_easy_strerror(code), t->url);
        task_retry(s, msg);
        return;
    }
    if (st >= 300 && st < 400) {
        if (!s->r.location) {
            snprintf(msg, sizeof msg, "%s: HTTP %ld without a Location (%s)", t->path, st, t->url);
            task_fail(s, msg);
            return;
        }
        if (s->r.location[0] == '/') {  /* relative: a renamed repo on the Hub itself; follow it */
            if (++t->hops > MAX_HOPS) {
                snprintf(msg, sizeof msg, "%s: too many redirects (%s)", t->path, t->url);
                task_fail(s, msg);
                return;
            }
            char *u = hub_printf("%s%s", c->origin, s->r.location);
            free(t->url);
            t->url = u;
            start_head(s, t, m);
            return;
        }
        free(t->location);
        t->location = hub_strdup(s->r.location);
    } else if (st == 200) {
        free(t->location);
        t->location = hub_strdup(t->url);
    } else if (st >= 500 || st == 429) {
        snprintf(msg, sizeof msg, "%s: HTTP %ld from %s", t->path, st, t->url);
        task_retry(s, msg);
        return;
    } else {
        nx_err e;
        hub_http_fail(c, &e, st, &s->r, t->path, t->url);
        task_fail_as(s, e.msg, st == 401 || st == 403);
        return;
    }
    normalize_etag(t->etag, s->r.linked_etag[0] ? s->r.linked_etag : s->r.etag);
    if (!etag_ok(t->etag)) {
        snprintf(msg, sizeof msg, "%s: the server sent no usable ETag ('%.80s'): is HF_ENDPOINT (%s) a Hugging Face Hub?",
                 t->path, s->r.linked_etag[0] ? s->r.linked_etag : s->r.etag, c->ep);
        t->etag[0] = 0;
        task_fail(s, msg);
        return;
    }
    t->lfs = hub_is_hex(t->etag, 64);
    t->size = s->r.linked_size >= 0 ? s->r.linked_size : st == 200 ? s->r.content_length : -1;
    char *blob = hub_printf("%s/%s", c->blobs, t->etag);
    bool have_blob = hub_exists_file(blob);
    free(blob);
    if (have_blob) { task_done(s, false); return; }
    char *lock = hub_printf("%s/%s.lock", c->locks, t->etag);
    s->lockfd = open(lock, O_RDWR | O_CREAT, 0644);
    if (s->lockfd < 0) {
        snprintf(msg, sizeof msg, "%s: cannot open: %s", lock, strerror(errno));
        free(lock);
        task_fail(s, msg);
        return;
    }
    if (flock(s->lockfd, LOCK_EX | LOCK_NB)) {  /* another process is fetching this blob: wait for it */
        if (!t->waiting_logged) hub_say(c, "%s: waiting for another download of it (%s)", t->path, lock);
        t->waiting_logged = true;
        t->not_before = nx_now() + 1.0;
        free(lock);
        slot_release(s);
        return;
    }
    free(lock);
    blob = hub_printf("%s/%s", c->blobs, t->etag);
    have_blob = hub_exists_file(blob);  /* the other process may have finished it */
    free(blob);
    if (have_blob) { task_done(s, false); return; }
    start_get(s, m);
}

static void on_get_done(slot *s, CURLcode code) {
    hub_file *t = s->t;
    char msg[1100];
    long st = s->r.status;
    if (s->werr[0]) {
        snprintf(msg, sizeof msg, "%s", s->werr);
        if (s->werr_fatal) task_fail(s, msg);
        else {  /* a bad resume: start the file over */
            if (ftruncate(s->fd, 0) == 0) t->have = 0;
            task_retry(s, msg);
        }
        return;
    }
    if (code != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s: %s after %lld bytes", t->path, curl_easy_strerror(code), t->have);
        task_retry(s, msg);
        return;
    }
    if (st == 200 || st == 206) { finish_blob(s); return; }
    if (st == 416) {  /* the partial file is no prefix the server knows: start over */
        if (ftruncate(s->fd, 0) == 0) t->have = 0;
        snprintf(msg, sizeof msg, "%s: the server refused to resume (416)", t->path);
        task_retry(s, msg);
        return;
    }
    if (st >= 500 || st == 429) {
        snprintf(msg, sizeof msg, "%s: HTTP %ld from %s", t->path, st, t->location);
        task_retry(s, msg);
        return;
    }
    char body[200];  /* the start of the error page, on one line */
    size_t k = 0;
    for (size_t i = 0; i < s->nerrbody && k < sizeof body - 1; i++)
        if (!(k && body[k - 1] == ' ' && (unsigned char)s->errbody[i] <= ' '))
            body[k++] = (unsigned char)s->errbody[i] < ' ' ? ' ' : s->errbody[i];
    body[k] = 0;
    if (!same_origin(s->c, t->location)) {  /* the CDN: most likely an expired signed URL; a new HEAD gets a new one */
        snprintf(msg, sizeof msg, "%s: HTTP %ld from %s: %s", t->path, st, t->location, body);
        task_retry(s, msg);
        return;
    }
    if (!s->r.err_msg[0]) snprintf(s->r.err_msg, sizeof s->r.err_msg, "%s", body);
    nx_err e;
    hub_http_fail(s->c, &e, st, &s->r, t->path, t->location);
    task_fail_as(s, e.msg, st == 401 || st == 403);
}

/* Runs every task to done or failed; returns early when *stop is set. */
void hub_run_tasks(hub_ctx *c) {
    int jobs = c->o->jobs <= 0 ? 4 : c->o->jobs > HUB_MAX_JOBS ? HUB_MAX_JOBS : c->o->jobs;
    slot slots[HUB_MAX_JOBS];
    CURLM *m = curl_multi_init();
    NX_ASSERTM(m, "curl_multi_init failed");
    for (int i = 0; i < jobs; i++) {
        memset(&slots[i], 0, sizeof slots[i]);
        slots[i].c = c;
        slots[i].fd = slots[i].lockfd = -1;
        slots[i].h = curl_easy_init();
        NX_ASSERTM(slots[i].h, "curl_easy_init failed");
        hub_resp_reset(&slots[i].r);
    }
    for (;;) {
        if (c->o->stop && *c->o->stop) { c->res->interrupted = true; break; }
        double now = nx_now(), next = -1;
        int active = 0, left = 0;
        for (int i = 0; i < c->ntasks; i++) {
            hub_file *t = &c->tasks[i];
            if (t->done || t->failed) continue;
            left++;
            if (t->active || c->abort) continue;
            if (t->not_before > now) { if (next < 0 || t->not_before < next) next = t->not_before; continue; }
            for (int k = 0; k < jobs; k++)
                if (slots[k].st == S_IDLE && !slots[k].t) { start_head(&slots[k], t, m); break; }
        }
        for (int k = 0; k < jobs; k++) active += slots[k].st != S_IDLE;
        if (!left || (c->abort && !active)) break;
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            CURLcode code = msg->data.result;
            char *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            slot *s = (slot *)priv;
            NX_ASSERT(s && s->h == e);
            curl_multi_remove_handle(m, e);
            if (s->st == S_HEAD) on_head_done(s, code, m);
            else on_get_done(s, code);
        }
        int wait_ms = 100;
        if (!active && next > now) wait_ms = (int)((next - now) * 1000) + 1 < 100 ? (int)((next - now) * 1000) + 1 : 100;
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
        hub_draw(c, false);
    }
    for (int k = 0; k < jobs; k++) {  /* interrupted: keep .incomplete files for a resume */
        if (slots[k].st != S_IDLE) curl_multi_remove_handle(m, slots[k].h);
        slot_release(&slots[k]);
        curl_easy_cleanup(slots[k].h);
        hub_resp_reset(&slots[k].r);
        free(slots[k].r.location);
    }
    curl_multi_cleanup(m);
}
