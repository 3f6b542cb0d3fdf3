/* presets.c — the named student shapes (`student: nano`), one table.
 *
 * Parameter counts (vocab 32000, untied head), computed by nx_model_numel:
 *   nano:     1,490,126,848  -> 2.98 GB in bf16 (GB = 1e9 bytes)
 *   standard: 13,015,864,320 -> 13.0 GB in int8
 * tests/test_run_config.c checks these numbers and the size bounds. The
 * vocabulary is the teacher's at run time; V here is used only without one. */
#include "internal.h"

const nx_run_preset CFG_PRESETS[] = {
    {"nano", "~1.5B Llama-style student; bf16 weights fit 4 GB",
     {.arch = NX_ARCH_LLAMA, .V = 32000, .C = 2048, .L = 24, .NH = 16, .KVH = 8, .HS = 128,
      .F = 7168, .max_pos = 2048, .eps = 1e-5f, .rope_theta = 10000.0f, .tied = false,
      .bos_id = -1, .eos_id = -1, .dtype = NX_BF16}},
    {"standard", "~13B Llama-2-13B-shaped student; int8 weights fit 16 GB",
     {.arch = NX_ARCH_LLAMA, .V = 32000, .C = 5120, .L = 40, .NH = 40, .KVH = 40, .HS = 128,
      .F = 13824, .max_pos = 4096, .eps = 1e-5f, .rope_theta = 10000.0f, .tied = false,
      .bos_id = -1, .eos_id = -1, .dtype = NX_BF16}},
};
const int CFG_NPRESETS = sizeof CFG_PRESETS / sizeof CFG_PRESETS[0];

const nx_run_preset *nx_run_presets(int *n) {
    if (n) *n = CFG_NPRESETS;
    return CFG_PRESETS;
}
