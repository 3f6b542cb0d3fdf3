/* test_hub.c — the network-free half of io/hub.c: repo id rules, the cache
 * folder names, the environment read as huggingface_hub reads it (cache,
 * endpoint, token), and resolving a cached snapshot through refs/ or a
 * commit sha, with the errors naming what is missing. The downloads
 * themselves are tested against a mock Hub by tests/cli_pull.sh. */
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nexus/fsutil.h"
#include "nexus/hub.h"
#include "nxtest.h"

static char tmpdir[64];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) {
    (void)s, (void)f, (void)w;
    return remove(p);
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nx_hub_XXXXXX");
    if (!mkdtemp(tmpdir)) abort();
}
static void teardown(void) { nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS); }

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

static const char *const ENV_VARS[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME",
                                       "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"};
static void clear_env(void) {
    for (size_t i = 0; i < sizeof ENV_VARS / sizeof *ENV_VARS; i++) unsetenv(ENV_VARS[i]);
}

TEST(repo_ids) {
    nx_err e;
    const char *good[] = {"gpt2", "meta-llama/Llama-3.2-1B", "Qwen/Qwen2.5-0.5B", "a_b/c.d", "x/y"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECKF(nx_hub_check_repo_id(good[i], &e) == NX_OK, "%s", good[i]);
    const char *bad[] = {"", "a/b/c", "/name", "org/", "a--b/c", "a/..b", "-a/b", "a/b.", "a b/c", "a/b?c", "../x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECKF(nx_hub_check_repo_id(bad[i], &e) == NX_ERR, "'%s'", bad[i]);
    CHECK(nx_hub_check_repo_id("a/b/c", &e) == NX_ERR && strstr(e.msg, "'a/b/c' is not a Hub repo id"));
}

TEST(repo_folders) {
    char *f = nx_hub_repo_folder(NX_HUB_MODEL, "meta-llama/Llama-3.2-1B");
    CHECK(!strcmp(f, "models--meta-llama--Llama-3.2-1B"));
    free(f);
    f = nx_hub_repo_folder(NX_HUB_DATASET, "HuggingFaceFW/fineweb");
    CHECK(!strcmp(f, "datasets--HuggingFaceFW--fineweb"));
    free(f);
    f = nx_hub_repo_folder(NX_HUB_MODEL, "gpt2");
    CHECK(!strcmp(f, "models--gpt2"));
    free(f);
}

TEST(environment) {
    setup();
    clear_env();
    setenv("HOME", "/home/u", 1);
    char *c = nx_hub_cache_dir();
    CHECKF(!strcmp(c, "/home/u/.cache/huggingface/hub"), "%s", c);
    free(c);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    c = nx_hub_cache_dir();
    CHECKF(!strcmp(c, "/xdg/huggingface/hub"), "%s", c);
    free(c);
    setenv("HF_HOME", "~/hf", 1);  /* expanded as Python's expanduser */
    c = nx_hub_cache_dir();
    CHECKF(!strcmp(c, "/home/u/hf/hub"), "%s", c);
    free(c);
    setenv("HF_HUB_CACHE", "/cache", 1);
    c = nx_hub_cache_dir();
    CHECKF(!strcmp(c, "/cache"), "%s", c);
    free(c);

    char *ep = nx_hub_endpoint();
    CHECK(!strcmp(ep, "https://huggingface.co"));
    free(ep);
    setenv("HF_ENDPOINT", "http://mirror.example:8080//", 1);
    ep = nx_hub_endpoint();
    CHECKF(!strcmp(ep, "http://mirror.example:8080"), "%s", ep);
    free(ep);

    /* token: HF_TOKEN, else the legacy variable, else the token file (trimmed), else none */
    setenv("HF_HOME", tmpdir, 1);
    CHECK(nx_hub_token() == NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/token", tmpdir);
    write_text(path, "  hf_from_file\n");
    char *t = nx_hub_token();
    CHECK(t && !strcmp(t, "hf_from_file"));
    free(t);
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
    t = nx_hub_token();
    CHECK(t && !strcmp(t, "hf_legacy"));
    free(t);
    setenv("HF_TOKEN", "hf_env", 1);
    t = nx_hub_token();
    CHECK(t && !strcmp(t, "hf_env"));
    free(t);
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    write_text(path, "\n");
    CHECK(nx_hub_token() == NULL);  /* an empty token file is no token */
    clear_env();
    teardown();
}

TEST(cached_snapshot) {
    setup();
    nx_err e;
    const char *commit = "0123456789abcdef0123456789abcdef01234567";
    char p[512];
    snprintf(p, sizeof p, "%s/models--org--m/snapshots/%s", tmpdir, commit);
    CHECK(nx_mkdirs(p, &e) == NX_OK);
    snprintf(p, sizeof p, "%s/models--org--m/refs/refs/pr", tmpdir);
    CHECK(nx_mkdirs(p, &e) == NX_OK);
    snprintf(p, sizeof p, "%s/models--org--m/refs/main", tmpdir);
    write_text(p, commit);  /* huggingface_hub writes no newline */
    snprintf(p, sizeof p, "%s/models--org--m/refs/refs/pr/1", tmpdir);
    write_text(p, "0123456789abcdef0123456789abcdef01234567\n");
    char want[512];
    snprintf(want, sizeof want, "%s/models--org--m/snapshots/%s", tmpdir, commit);

    char *s = NULL;
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/m", NULL, &s, &e) == NX_OK && s && !strcmp(s, want));
    free(s);
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/m", "refs/pr/1", &s, &e) == NX_OK && s && !strcmp(s, want));
    free(s);
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/m", commit, &s, &e) == NX_OK && s && !strcmp(s, want));
    free(s);

    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/m", "dev", &s, &e) == NX_ERR && !s);
    CHECKF(strstr(e.msg, "org/m at revision 'dev' is not in the cache") && strstr(e.msg, "nexus pull org/m --revision dev"),
           "%s", e.msg);
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_DATASET, "org/m", NULL, &s, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "dataset org/m") && strstr(e.msg, "--repo-type dataset"), "%s", e.msg);
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/m", "../../etc", &s, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "not a branch, tag or commit"), "%s", e.msg);
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/../m", NULL, &s, &e) == NX_ERR);

    /* a ref to a snapshot that is gone */
    snprintf(p, sizeof p, "%s/models--org--m/refs/old", tmpdir);
    write_text(p, "89abcdef0123456789abcdef0123456789abcdef");
    CHECK(nx_hub_snapshot(tmpdir, NX_HUB_MODEL, "org/m", "old", &s, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "snapshot folder is missing"), "%s", e.msg);
    teardown();
}

TEST(pull_refuses_bad_input_before_the_network) {
    setup();
    nx_err e;
    nx_hub_result r;
    nx_hub_opts o = {.repo_id = "a/b/c"};
    CHECK(nx_hub_pull(&o, &r, &e) == NX_ERR && strstr(e.msg, "not a Hub repo id"));
    o = (nx_hub_opts){.repo_id = "org/m", .revision = "../x"};
    CHECK(nx_hub_pull(&o, &r, &e) == NX_ERR && strstr(e.msg, "not a branch"));
    o = (nx_hub_opts){.repo_id = "org/m", .endpoint = "ftp://x", .cache_dir = tmpdir};
    CHECK(nx_hub_pull(&o, &r, &e) == NX_ERR && strstr(e.msg, "not an http(s) URL"));
    teardown();
}

