/* json.c — see json.h. */
#include "nexus/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/core.h"

const char *nx_json_kind(const cJSON *x) {
    if (!x) return "missing";
    if (cJSON_IsString(x)) return "a string";
    if (cJSON_IsNumber(x)) return "a number";
    if (cJSON_IsArray(x)) return "an array";
    if (cJSON_IsObject(x)) return "an object";
    if (cJSON_IsBool(x)) return "a boolean";
    if (cJSON_IsNull(x)) return "null";
    return "invalid";
}

void nx_fmt_real(char *buf, size_t n, double v, bool as_float) {
    /* 9 significant digits always round-trip a float, 17 a double */
    for (int p = 1; p <= (as_float ? 9 : 17); p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (as_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) return;
    }
}

cJSON *nx_json_float(float v, bool as_float) {
    char buf[40];
    nx_fmt_real(buf, sizeof buf, v, true);
    if (as_float && !strpbrk(buf, ".eEn")) strcat(buf, ".0"); /* "inf", "nan" have an n */
    cJSON *x = cJSON_CreateRaw(buf);
    NX_ASSERTM(x, "out of memory");
    return x;
}
