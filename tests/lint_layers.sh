#!/bin/sh
# lint_layers.sh — no include points upward. The layers, lowest first
# (docs/ARCHITECTURE.md): core → backend → model → {train, io} → compress → app → serve → cli.
# A source file in src/<module>/ may include the public headers of its own
# module and of the modules below it; train and io stand side by side and
# include neither the other. Every public header belongs to exactly one
# module in the table below: a new header must be added to it.
. tests/lib.sh

module_of_header() {
    case "$1" in
    core.h | blocks.h) echo core ;;
    backend.h | ops.h | cpu.h) echo backend ;;
    model.h | generate.h | bench.h) echo model ;;
    train.h | optim.h | eval.h) echo train ;;
    safetensors.h | hf.h | tokenizer.h | dataset.h | fsutil.h | json.h | yaml.h | checkpoint.h | hub.h | qstore.h | gguf.h | modelfile.h) echo io ;;
    quantize.h | prune.h) echo compress ;;
    run.h | run_config.h) echo app ;;
    serve.h) echo serve ;;
    *) echo unknown ;;
    esac
}
rank() {
    case "$1" in
    core) echo 0 ;; backend) echo 1 ;; model) echo 2 ;; train | io) echo 3 ;; compress) echo 4 ;; app) echo 5 ;; serve) echo 6 ;;
    cli) echo 7 ;;
    *) echo 9 ;;
    esac
}

for f in include/nexus/*.h; do
    h=$(basename "$f")
    [ "$(module_of_header "$h")" = unknown ] && bad "include/nexus/$h is in no layer of tests/lint_layers.sh"
done

# src/<module>/... and the public headers of each module, as includers
files=$(find src -name '*.c' -o -name '*.h' -o -name '*.cu' | grep -v '^src/main.c$')
upward=0
for f in $files include/nexus/*.h; do
    case "$f" in
    include/*) from=$(module_of_header "$(basename "$f")") ;;
    *) from=$(echo "$f" | cut -d/ -f2) ;;
    esac
    for inc in $(sed -n 's/^#include "nexus\/\([a-z_]*\.h\)".*/\1/p' "$f"); do
        to=$(module_of_header "$inc")
        rf=$(rank "$from")
        rt=$(rank "$to")
        if [ "$rt" -gt "$rf" ] || { [ "$rt" -eq "$rf" ] && [ "$to" != "$from" ]; }; then
            bad "$f ($from) includes nexus/$inc ($to): an include pointing upward or sideways"
            upward=$((upward + 1))
        fi
    done
done
[ "$upward" -eq 0 ] && ok "no include points upward ($(echo "$files" | wc -w) sources, $(ls include/nexus/*.h | wc -l) headers)"
summary
