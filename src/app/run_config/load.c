/* load.c — nx_run_config_load / nx_run_config_parse: the stages in order.
 *
 *  1. the file's YAML into a located tree (io/yaml.c); its top level must
 *     be a mapping of sections;
 *  2. each --set override grafted into the tree (overrides.c);
 *  3. one schema walk from tree to struct, types and ranges checked
 *     (convert.c);
 *  4. the cross-key checks and derived defaults (validate.c).
 * Keeping the tree until the end lets every stage name the place of a bad
 * value, cross-key errors included. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "nexus/fsutil.h"

/* Was student.init.kind stated (directly or as the `init:` shorthand)? A
 * copy_layers list then does not imply the copy_layers kind. */
static bool init_kind_given(const nx_yaml *root) {
    int i = nx_yaml_find(root, "student");
    const nx_yaml *s = i >= 0 ? root->kids[i] : NULL;
    i = nx_yaml_find(s, "init");
    s = i >= 0 ? s->kids[i] : NULL;
    if (s && s->kind == NX_YAML_SCALAR) return !nx_yaml_is_null(s);
    if (s && s->kind == NX_YAML_MAP) {
        i = nx_yaml_find(s, "kind");
        return i >= 0 && !nx_yaml_is_null(s->kids[i]);
    }
    return false;
}

int nx_run_config_parse(nx_run_config *rc, const char *text, size_t len, const char *name,
                        const char *const *sets, int nsets, nx_err *err) {
    cfg_ctx c = {.err = err};
    nx_run_config_defaults(rc);
    if (!getcwd(c.cwd, sizeof c.cwd)) return nx_fail(err, "cannot read the current directory: %s", strerror(errno));
    const char *display = name ? name : "<config>";
    c.file = text ? display : NULL;
    /* the file's directory, absolute */
    char dir[3 * NX_RUN_PATH_MAX];
    const char *slash = strrchr(display, '/');
    if (!slash) snprintf(dir, sizeof dir, "%s", c.cwd);
    else if (display[0] == '/') snprintf(dir, sizeof dir, "%.*s", (int)(slash - display), display);
    else snprintf(dir, sizeof dir, "%s/%.*s", c.cwd, (int)(slash - display), display);
    if (strlen(dir) >= NX_RUN_PATH_MAX) return nx_fail(err, "%s: path too long", display);
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    cfg_normalise(dir);
    cfg_copy_str(c.file_dir, sizeof c.file_dir, dir);
    /* the stem names the default output directory */
    char stem[256];
    snprintf(stem, sizeof stem, "%s", text && name ? (slash ? slash + 1 : display) : "run");
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    if (text && name) snprintf(rc->source, sizeof rc->source, "%s", name);

    if (text && nx_yaml_parse(text, len, display, "run config", &c.root, err)) return NX_ERR;
    int status = NX_ERR;
    if (!nx_yaml_is_null(c.root) && c.root->kind != NX_YAML_MAP) {
        cfg_fail(&c, c.root, "(top level)", "a run config is a mapping of sections (teacher:, student:, data:, ...)");
        goto done;
    }
    for (int i = 0; i < nsets; i++)
        if (cfg_apply_set(&c, sets[i])) goto done;
    if (c.root && c.root->kind == NX_YAML_MAP && cfg_convert_section(&c, c.root, CFG_TOP, "", rc)) goto done;
    if (cfg_validate(&c, rc, init_kind_given(c.root), stem)) goto done;
    status = NX_OK;
done:
    nx_yaml_free(c.root);
    return status;
}

int nx_run_config_load(nx_run_config *rc, const char *path, const char *const *sets, int nsets, nx_err *err) {
    if (!path) return nx_run_config_parse(rc, NULL, 0, NULL, sets, nsets, err);
    size_t n;
    char *buf = nx_read_file(path, 1 << 20, &n, err); /* a run config is small: 1 MiB at most */
    if (!buf) return nx_fail_prefix(err, "run config");
    int status = nx_run_config_parse(rc, buf, n, path, sets, nsets, err);
    free(buf);
    return status;
}
