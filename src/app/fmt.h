/* fmt.h — number formatting the app's text outputs share (not public):
 * the printed run config and metrics.jsonl write reals that read back
 * exactly, in as few digits as that takes. */
#ifndef NEXUS_APP_FMT_H
#define NEXUS_APP_FMT_H

#include <stdbool.h>
#include <stddef.h>

/* The shortest "%.Ng" (N = 1..17) of v that strtod reads back as v; with
 * as_float, the shortest (N = 1..9) that strtof reads back as (float)v, for
 * values that are floats ("0.0005", not "0.000500000024"). v finite. */
void app_fmt_real(char *buf, size_t n, double v, bool as_float);

#endif
