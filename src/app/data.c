/* data.c — a run's training or validation tokens, opened and checked
 * before any step: either a token shard from `nexus prepare-data` (mapped,
 * CRC-checked by io/dataset.c) or documents tokenized here in memory. A
 * shard made with another tokenizer, or token ids beyond the student's
 * vocabulary, fail now with the file named, not as garbage mid-run. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_internal.h"

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* A shard: of a set (always for a directory; for a .bin file when a
 * manifest.json lies beside it), checked against the set's manifest, or a
 * lone file. */
static int open_shard(run_data *d, const char *sp, bool dir_given, const nx_tokenizer *tok, int V, nx_err *err) {
    char dir[NX_RUN_PATH_MAX + 32], mpath[NX_RUN_PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", sp);
    char *slash = strrchr(dir, '/');
    const char *name = slash ? slash + 1 : sp;
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    snprintf(mpath, sizeof mpath, "%s/" NX_SHARD_MANIFEST, dir);
    bool in_set = dir_given || access(mpath, F_OK) == 0;
    if (in_set ? nx_shard_set_open(&d->shard, dir, name, err) : nx_shard_open(&d->shard, sp, err)) return NX_ERR;
    d->is_shard = true;
    nx_shard_info in = d->shard.info; /* the figures for the messages: closing zeroes the shard */
    if (in.fingerprint != nx_tokenizer_fingerprint(tok)) {
        nx_shard_close(&d->shard);
        return nx_fail(err, "%s: made with a different tokenizer than the teacher's (fingerprint "
                            "%016llx, teacher %016llx): run nexus prepare-data with the teacher's model",
                       sp, (unsigned long long)in.fingerprint, (unsigned long long)nx_tokenizer_fingerprint(tok));
    }
    if ((int64_t)in.vocab_size > V) {
        nx_shard_close(&d->shard);
        return nx_fail(err, "%s: token ids up to %u but the student's vocabulary has %d", sp, in.vocab_size, V);
    }
    d->view = nx_shard_tokens(&d->shard);
    return NX_OK;
}

int run_data_open(run_data *d, const char *path, const char *name, const nx_tokenizer *tok, const char *field,
                  int V, bool progress, nx_err *err) {
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st)) return nx_fail(err, "%s: %s (check data paths in the config)", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char shard_path[NX_RUN_PATH_MAX + 32];
        snprintf(shard_path, sizeof shard_path, "%s/%s", path, name);
        return open_shard(d, shard_path, true, tok, V, err);
    }
    if (ends_with(path, ".bin")) return open_shard(d, path, false, tok, V, err);

    const char *paths[1] = {path};
    nx_docs_opts o = {.field = field, .eos_id = nx_tokenizer_eos_id(tok), .progress = progress};
    if (o.eos_id < 0)
        return nx_fail(err, "%s: the teacher's tokenizer names no EOS token to separate documents", path);
    if (nx_dataset_tokenize(tok, paths, 1, &o, &d->stream, NULL, err)) return NX_ERR;
    for (size_t i = 0; i < d->stream.n; i++)
        if (d->stream.ids[i] >= V) {
            int32_t bad = d->stream.ids[i];
            nx_token_stream_free(&d->stream);
            return nx_fail(err, "%s: token id %d at position %zu is outside the student's vocabulary (%d)",
                           path, bad, i, V);
        }
    d->view = nx_stream_tokens(&d->stream);
    return NX_OK;
}

void run_data_close(run_data *d) {
    if (d->is_shard) nx_shard_close(&d->shard);
    else nx_token_stream_free(&d->stream);
    memset(d, 0, sizeof *d);
}
