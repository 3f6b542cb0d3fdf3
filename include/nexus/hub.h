/* hub.h — the Hugging Face Hub: pull a model or dataset repository into the
 * huggingface_hub cache, and find a cached snapshot again.
 *
 * The cache is the one `huggingface_hub` (and so `transformers`) reads and
 * writes, laid out the same way, so that a model pulled by nexus is found by
 * transformers and a model transformers downloaded is found by nexus:
 *
 *   $HF_HUB_CACHE/models--org--name/          (datasets--org--name for datasets)
 *       blobs/<etag>                          file contents; etag = sha256 for LFS files,
 *                                             the git blob sha1 for the others
 *       blobs/<etag>.incomplete               a download in progress (resumed by HTTP Range)
 *       snapshots/<commit>/<path>             relative symlinks ../../blobs/<etag>
 *       refs/<revision>                       the commit sha the revision pointed to
 *   $HF_HUB_CACHE/.locks/models--org--name/<etag>.lock   flock(2), as huggingface_hub's filelock
 *
 * Everything from the network is checked: file names and etags before they
 * become paths, sizes, and the sha256 of every LFS file (a mismatch deletes
 * the blob, fetches it once more, then fails). docs/HUB.md has the details. */
#ifndef NEXUS_HUB_H
#define NEXUS_HUB_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nexus/core.h"

typedef enum nx_hub_type { NX_HUB_MODEL, NX_HUB_DATASET } nx_hub_type;

typedef struct nx_hub_opts {
    const char *repo_id;         /* "org/name" or "name" (nx_hub_check_repo_id) */
    nx_hub_type type;
    const char *revision;        /* branch, tag or commit sha; NULL: "main" */
    const char *const *include;  /* fnmatch globs on the repo path ('*' crosses '/', as
                                    huggingface_hub's allow_patterns); none: every file */
    int ninclude;
    const char *token;           /* NULL: nx_hub_token() */
    const char *endpoint;        /* NULL: nx_hub_endpoint() */
    const char *cache_dir;       /* NULL: nx_hub_cache_dir() */
    const char *out_dir;         /* non-NULL: also copy the pulled files there as plain files */
    int jobs;                    /* files downloaded at a time; <= 0: 4 */
    int retries;                 /* per file, after a dropped connection or a 5xx; < 0: 5 */
    FILE *log;                   /* one line per fetched file, retries, warnings; NULL: none */
    bool progress;               /* redraw one progress line on stderr (the caller checks the TTY) */
    volatile sig_atomic_t *stop; /* set asynchronously (SIGINT): stop soon, keep the partial
                                    files to resume; NULL: never */
} nx_hub_opts;

typedef struct nx_hub_result {
    char commit[41];   /* the snapshot's commit sha */
    char *snapshot;    /* malloc'd: <cache>/<repo folder>/snapshots/<commit> */
    int files;         /* files in the pull (after the include globs) */
    int fetched;       /* downloaded by this call */
    int cached;        /* already in the cache */
    uint64_t bytes;    /* bytes received by this call */
    bool interrupted;  /* *stop was set: partial files kept, snapshot incomplete */
} nx_hub_result;

/* Download opts->repo_id at opts->revision into the cache: the file list
 * and commit from the Hub's API, each file through its `resolve` URL
 * (following the redirect to the CDN), opts->jobs at a time, partial files
 * resumed with HTTP Range, sha256 checked for LFS files. Files whose
 * snapshot entry already exists are not fetched again. With HF_HUB_OFFLINE=1
 * in the environment nothing is fetched: the snapshot comes from the cache.
 * Returns NX_OK with *r filled (free with nx_hub_result_free) — also when
 * interrupted (r->interrupted) — or NX_ERR with a message that names the
 * repo, revision or file and, for a 401/403, says to pass a token or accept
 * the licence. Files fetched before an error stay in the cache. */
int nx_hub_pull(const nx_hub_opts *opts, nx_hub_result *r, nx_err *err);
void nx_hub_result_free(nx_hub_result *r);

/* The cached snapshot of repo_id at revision (a branch or tag through
 * refs/<revision>, or a commit sha) under cache_dir (NULL: nx_hub_cache_dir()),
 * malloc'd into *path. NX_ERR (naming the cache and saying to run `nexus
 * pull`) when it is not there. No network. */
int nx_hub_snapshot(const char *cache_dir, nx_hub_type type, const char *repo_id,
                    const char *revision, char **path, nx_err *err);

/* NX_OK when repo_id is "name" or "org/name" made of letters, digits, '-',
 * '_' and '.', without "--" or ".." and not starting or ending in '-' or
 * '.' (the Hub's rule, and what keeps the cache folder name unambiguous). */
int nx_hub_check_repo_id(const char *repo_id, nx_err *err);

/* "models--org--name" / "datasets--org--name", malloc'd. */
char *nx_hub_repo_folder(nx_hub_type type, const char *repo_id);

/* The environment as huggingface_hub reads it, malloc'd:
 *   cache:    HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub; HF_HOME defaults to
 *             $XDG_CACHE_HOME/huggingface, and that to ~/.cache/huggingface;
 *   endpoint: HF_ENDPOINT (trailing '/' dropped), else https://huggingface.co;
 *   token:    HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file HF_TOKEN_PATH or
 *             $HF_HOME/token (`hf auth login` writes it); NULL when none. */
char *nx_hub_cache_dir(void);
char *nx_hub_endpoint(void);
char *nx_hub_token(void);

#endif
