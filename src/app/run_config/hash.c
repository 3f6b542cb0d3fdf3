/* hash.c — nx_run_config_hash: the identity of a configuration that a
 * checkpoint must match to be resumed.
 *
 * 64-bit FNV-1a (nx_fnv1a) over a versioned text: "nexus-run-config-v1\n",
 * then "KEY.PATH=VALUE\n" for every key that changes the trained model, in
 * schema order, VALUE written as --print-config writes it ("~" when not
 * given). Sections and keys flagged F_NOHASH (eval, checkpoint, output,
 * log, threads, optimizer.steps/tokens) are left out, so that a run may be
 * resumed with more steps or another output directory. Keys added after
 * the value was pinned (F_HASHGIVEN) count only when given, so configs
 * that do not use them keep their hash. Text rather than
 * struct bytes keeps the hash independent of padding, compiler and
 * platform; the value is pinned by tests/test_run_config.c, because every
 * checkpoint written so far records it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t hash_str(uint64_t h, const char *s) { return nx_fnv1a(s, strlen(s), h); }

static uint64_t hash_section(uint64_t h, const cfg_field *kids, const nx_run_config *rc, const char *prefix,
                             char *buf) {
    for (const cfg_field *k = kids; k->name; k++) {
        if (k->flags & F_NOHASH) continue;
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k->name);
        if (k->t == T_SEC) {
            h = hash_section(h, k->kids, rc, path, buf);
            continue;
        }
        bool given = cfg_fmt_value(k, rc, buf, CFG_VALBUF);
        if (!given && (k->flags & F_HASHGIVEN)) continue;
        h = hash_str(h, path);
        h = hash_str(h, "=");
        h = hash_str(h, given ? buf : "~");
        h = hash_str(h, "\n");
    }
    return h;
}

uint64_t nx_run_config_hash(const nx_run_config *rc) {
    char *buf = nx_xmalloc(CFG_VALBUF);
    uint64_t h = hash_str(NX_FNV_INIT, "nexus-run-config-v1\n");
    h = hash_section(h, CFG_TOP, rc, "", buf);
    free(buf);
    return h;
}
