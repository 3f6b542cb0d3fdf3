/* paths.c — the lexical path work of the run config. Every path in an
 * nx_run_config is absolute and normalised, so that a printed config reads
 * back the same from any directory and two spellings of one directory hash
 * the same. Only strings are touched: nothing here asks the file system
 * (a path may name what the run will create). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

void cfg_copy_str(char *dst, size_t size, const char *src) {
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void cfg_normalise(char *p) {
    char *parts[512];
    int np = 0;
    char tmp[NX_RUN_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", p);
    char *save = NULL;
    for (char *s = strtok_r(tmp, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (!strcmp(s, ".")) continue;
        if (!strcmp(s, "..")) {
            if (np) np--;
            continue;
        }
        if (np < 512) parts[np++] = s;
    }
    char out[NX_RUN_PATH_MAX] = "";
    size_t used = 0;
    for (int i = 0; i < np; i++) used += snprintf(out + used, sizeof out - used, "/%s", parts[i]);
    if (!np) snprintf(out, sizeof out, "/");
    cfg_copy_str(p, NX_RUN_PATH_MAX, out);
}

int cfg_join(char *dst, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a && dir[a - 1] != '/';
    if (a + slash + b >= NX_RUN_PATH_MAX) return NX_ERR;
    memcpy(dst, dir, a);
    if (slash) dst[a] = '/';
    memcpy(dst + a + slash, name, b + 1);
    return NX_OK;
}
