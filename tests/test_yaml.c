/* test_yaml.c — the generic YAML reader (io/yaml.c): nodes keep
 * FILE:LINE:COL, inline values parse as scalars, flow lists and flow maps
 * located by their label, null is recognised only unquoted, and what a
 * configuration must not hold (aliases, two documents, duplicate keys,
 * non-scalar keys, deep nesting, bad syntax) fails with its place. */
#include "nexus/yaml.h"
#include "nxtest.h"

static nx_yaml *parse(const char *text, nx_err *e) {
    nx_yaml *root = NULL;
    e->msg[0] = '\0';
    if (nx_yaml_parse(text, strlen(text), "f.yaml", "test file", &root, e)) return NULL;
    return root;
}

static void expect_err(const char *text, const char *needle) {
    nx_err e;
    nx_yaml *r = parse(text, &e);
    CHECKF(r == NULL && strstr(e.msg, needle), "\"%s\" not in: %s", needle, e.msg);
    nx_yaml_free(r);
}

TEST(tree_with_positions) {
    nx_err e;
    nx_yaml *r = parse("a: 1\nb:\n  c: [x, 'y', ~]\n  d: \"\"\n", &e);
    CHECKF(r && r->kind == NX_YAML_MAP && r->n == 2, "%s", e.msg);
    int b = nx_yaml_find(r, "b");
    CHECK(b == 1 && nx_yaml_find(r, "z") < 0 && nx_yaml_find(NULL, "a") < 0);
    const nx_yaml *c = r->kids[b]->kids[nx_yaml_find(r->kids[b], "c")];
    char w[64];
    CHECK(c->kind == NX_YAML_SEQ && c->n == 3 && !strcmp(nx_yaml_where(c, w, sizeof w), "f.yaml:3:6"));
    CHECK(!strcmp(c->kids[0]->text, "x") && c->kids[0]->plain && !c->kids[1]->plain);
    CHECK(!strcmp(nx_yaml_where(c->kids[1], w, sizeof w), "f.yaml:3:10"));
    CHECK(nx_yaml_is_null(c->kids[2]) && !nx_yaml_is_null(c->kids[0]));
    const nx_yaml *d = r->kids[b]->kids[nx_yaml_find(r->kids[b], "d")];
    CHECK(!nx_yaml_is_null(d)); /* a quoted empty string is a value */
    CHECK(!strcmp(nx_yaml_describe(c), "a list") && !strcmp(nx_yaml_describe(r), "a mapping"));
    nx_yaml_free(r);
    CHECK(parse("", &e) == NULL && e.msg[0] == '\0'); /* empty stream: no root, no error */
}

TEST(inline_values) {
    nx_err e;
    nx_yaml *v;
    CHECK(nx_yaml_parse_value("[0, 2, 4]", "--set k=[0, 2, 4]", "test file", &v, &e) == NX_OK);
    char w[64];
    CHECK(v->kind == NX_YAML_SEQ && v->n == 3 && !strcmp(v->kids[2]->text, "4"));
    CHECK(!strcmp(nx_yaml_where(v->kids[1], w, sizeof w), "--set k=[0, 2, 4]"));
    nx_yaml_free(v);
    CHECK(nx_yaml_parse_value("{a: 1, b: [x]}", "L", "test file", &v, &e) == NX_OK);
    CHECK(v->kind == NX_YAML_MAP && v->n == 2 && v->kids[1]->kind == NX_YAML_SEQ);
    nx_yaml_free(v);
    CHECK(nx_yaml_parse_value("", "L", "test file", &v, &e) == NX_OK && nx_yaml_is_null(v));
    nx_yaml_free(v);
    CHECK(nx_yaml_parse_value("[0, 2", "--set k=[0, 2", "test file", &v, &e) == NX_ERR);
    CHECKF(strstr(e.msg, "--set k=[0, 2: invalid YAML value") == e.msg, "%s", e.msg);
}

TEST(rejections_name_the_place) {
    expect_err("a: [\n", "f.yaml:2:1: invalid YAML");
    expect_err("a: &x 1\nb: *x\n", "f.yaml:2:4: YAML aliases (*name) are not supported in test files");
    expect_err("a: 1\n---\nb: 2\n", "f.yaml:2:1: a test file holds one YAML document");
    expect_err("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: duplicate key `a`");
    expect_err("[a]: 1\n", "f.yaml:1:1: mapping keys must be plain words");
    char deep[200] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    expect_err(deep, "nested deeper than 32 levels");
}

TEST(building_and_grafting) {
    nx_yaml *m = nx_yaml_new(NX_YAML_MAP, "(none)", 0, 0);
    for (int i = 0; i < 20; i++) { /* past the first growth */
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        nx_yaml_push(m, nx_yaml_new_scalar(k, "(none)"), nx_yaml_new_scalar("v", "(none)"));
    }
    CHECK(m->n == 20 && nx_yaml_find(m, "k19") == 19);
    char w[32];
    CHECK(!strcmp(nx_yaml_where(m->kids[3], w, sizeof w), "(none)"));
    nx_yaml_free(m);
}
