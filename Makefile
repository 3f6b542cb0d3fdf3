# nexus — one binary, one library (build/libnexus.a) that the binary, the
# tests and the benchmarks link against. Sources are found by wildcard: add a
# .c file under src/ (or a folder of it) and it is built; add tests/test_<name>.c and it is a test.
#
#   make            build ./nexus (installs missing Debian packages as root)
#   make demo       distill the bundled demo teacher (the README's main job)
#   make test       self-contained suite (no ../shared needed)
#   make golden     extended checks against ../shared (golden files, teacher)
#   make check      both
#   make sanitize   the self-contained suite under ASan + UBSan
#   make bench      benchmarks (print ratios against baselines run in-process,
#                   against the engine of BENCH_BASE built beside this one, and
#                   against llama.cpp when LLAMA_CPP names its bin directory)
#   make PORTABLE=1 a portable binary (x86-64-v3; PORTABLE=v2: x86-64-v2) in build-portable/
#   make fuzz       every libFuzzer target (tests/fuzz: the parsers, the server's
#                   requests and templates, the GGUF reader), FUZZ_SECONDS each (clang)

CC       ?= cc
# make PORTABLE=1: a binary for any x86-64-v3 CPU (AVX2, FMA, F16C), PORTABLE=v2
# for x86-64-v2 (SSE4.2), in their own build dirs; the int8 kernels still pick
# AVX-512 VNNI or AVX2 at run time where the CPU has them (src/backend/cpu/quant.c)
ifeq ($(PORTABLE),1)
OPT      ?= -O3 -march=x86-64-v3 -mtune=generic
BUILD    ?= build-portable
BIN      ?= build-portable/nexus
else ifeq ($(PORTABLE),v2)
OPT      ?= -O3 -march=x86-64-v2 -mtune=generic
BUILD    ?= build-portable-v2
BIN      ?= build-portable-v2/nexus
endif
# make CUDA=1: the CUDA backend too (nvcc and cuBLAS), in its own build dir
ifeq ($(CUDA),1)
BUILD    ?= build-cuda
BIN      ?= $(BUILD)/nexus
else
BUILD    ?= build
endif
OPT      ?= -O3 -march=native
BLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_INC ?= /usr/include/x86_64-linux-gnu/openblas-openmp
CFLAGS   += -std=c11 -Wall -Wextra -Wpointer-arith -Werror -D_GNU_SOURCE -fopenmp $(OPT) -g \
            -Iinclude -I/usr/include/cjson -I$(BLAS_INC)
# Only what the code uses; --as-needed: a binary records only the libraries
# it calls (the tests that never reach io/hub.c do not load libcurl or
# libcrypto). libcrypto (OpenSSL's EVP sha256) comes with
# libcurl4-openssl-dev, which depends on libssl-dev. libmicrohttpd
# (scripts/deps.sh) is the HTTP server of src/serve/.
LDLIBS   += -Wl,--as-needed -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lyaml -lcjson -lz \
            -lcurl -lcrypto -lpcre2-8 -lutf8proc -lmicrohttpd -lm -fopenmp -lpthread

# make STATIC=1: the Debian libraries linked in, for a binary that runs on
# a machine without them (the GPU machine); cJSON has no static library in
# Debian: carry libcjson.so.1 beside the binary (LD_LIBRARY_PATH)
ifeq ($(STATIC),1)
LDLIBS   := -L$(BLAS_DIR) -Wl,-Bstatic -lopenblas -lgfortran -lquadmath -lyaml -lz -lpcre2-8 -lutf8proc -lgomp \
            -Wl,-Bdynamic -lcjson -lmicrohttpd -lm -lpthread -ldl
endif

LIB_SRC   := $(filter-out src/main.c,$(wildcard src/*/*.c src/*/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)

ifeq ($(CUDA),1)
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
# sm_90a: H100/H200, with Hopper's warpgroup products (flash.cu); PTX of
# compute_90 (without them) for newer GPUs
NVFLAGS   ?= -O2 -std=c++17 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90
CU_SRC    := $(wildcard src/backend/cuda/*.cu)
LIB_OBJ   += $(CU_SRC:%.cu=$(BUILD)/%.o)
CFLAGS    += -DNX_HAVE_CUDA
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++

$(BUILD)/%.o: %.cu | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -DNX_HAVE_CUDA -Iinclude -MMD -MP -c $< -o $@
endif
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
GOLD_SRC  := $(wildcard tests/golden_*.c)
GOLD_BIN  := $(GOLD_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
DEPS_STAMP := $(BUILD)/.deps
BIN      ?= nexus
# the commit `make bench` measures this engine against, side by side
# (engine v1, the last commit before the backend seam)
BENCH_BASE ?= 4f7dc87

.PHONY: all test golden check sanitize bench fuzz clean deps demo
all: $(BIN)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(BUILD)
	@sh scripts/deps.sh
	@touch $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libnexus.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(BUILD)/libnexus.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/nxtest.h $(BUILD)/libnexus.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libnexus.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libnexus.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libnexus.a $(LDLIBS)

test: $(BIN) $(TEST_BIN)
	@NEXUS=./$(BIN) sh tests/run.sh $(TEST_BIN) tests/cli_*.sh tests/lint_*.sh

golden: $(BIN) $(GOLD_BIN)
	@NEXUS=./$(BIN) sh tests/run.sh $(GOLD_BIN) tests/golden_*.sh

check: test golden

# The README's main job: distill the bundled demo teacher (no network);
# --overwrite: a second `make demo` replaces the first one's run.
demo: $(BIN)
	./$(BIN) distill configs/demo.yaml --overwrite

sanitize:
	$(MAKE) BUILD=build-san OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    BIN=build-san/nexus test

bench: $(BIN) $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ./$$b || exit 1; done
	@echo "== the engine against commit $(BENCH_BASE) (bench/compare.sh)"
	@if git cat-file -e $(BENCH_BASE) 2>/dev/null; then sh bench/compare.sh $(BENCH_BASE); \
	 else echo "compare: skipped ($(BENCH_BASE) is not in this clone)"; fi
	@echo "== nexus against llama.cpp on the same GGUF files (bench/llama_compare.sh; LLAMA_CPP=DIR of llama-bench)"
	@NEXUS=./$(BIN) sh bench/llama_compare.sh

# make fuzz: every libFuzzer target tests/fuzz/fuzz_NAME.c, built with clang
# (ASan + UBSan, the library's sources instrumented alongside), each run for
# FUZZ_SECONDS (default 60) from its seeds: build/fuzz/seeds/NAME, made by
# tests/fuzz/seeds.sh from tests/fixtures and the shipped configs, and
# tests/fuzz/corpus/NAME where committed. New inputs go to
# build/fuzz/corpus/NAME, findings to build/fuzz/crash-* (the run stops).
# Targets: the parsers (config_json, tokenizer, encode, run_config, jsonl,
# shard, checkpoint, safetensors) and the server's requests and templates
# (request), the GGUF reader (gguf); a target's own libFuzzer flags are in the loop's case.
FUZZ_DIR  := $(BUILD)/fuzz
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_OBJ  := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -I/usr/include/cjson -I$(BLAS_INC) -g -O1 -fno-omit-frame-pointer \
               -fopenmp -fsanitize=address,undefined -fno-sanitize-recover=undefined
# clang, libFuzzer (libclang-rt) and clang's OpenMP runtime: Debian 12 packages
FUZZ_PKGS := clang libclang-rt-14-dev libomp-14-dev

$(FUZZ_DIR)/.deps: scripts/deps.sh
	@mkdir -p $(FUZZ_DIR)
	@NEXUS_EXTRA_PKGS="$(FUZZ_PKGS)" sh scripts/deps.sh
	@touch $@

$(FUZZ_DIR)/obj/%.o: %.c | $(FUZZ_DIR)/.deps
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/libnexus.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_DIR)/libnexus.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libnexus.a $(LDLIBS)

fuzz: $(FUZZ_BIN) $(BIN)
	@sh tests/fuzz/seeds.sh $(FUZZ_DIR)/seeds ./$(BIN)
	@for b in $(FUZZ_BIN); do n=$${b##*/fuzz_}; mkdir -p $(FUZZ_DIR)/corpus/$$n $(FUZZ_DIR)/seeds/$$n; \
	    case $$n in safetensors) o=-max_len=4096;; request) o="-max_len=8192 -timeout=10";; gguf) o=-max_len=65536;; *) o=;; esac; \
	    echo "== fuzz_$$n for $${FUZZ_SECONDS:-60} s"; \
	    $$b -max_total_time=$${FUZZ_SECONDS:-60} -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/ $$o \
	        $(FUZZ_DIR)/corpus/$$n $(FUZZ_DIR)/seeds/$$n $$(ls -d tests/fuzz/corpus/$$n 2>/dev/null) \
	        2>&1 | grep -E "^#[0-9]+ *DONE|^Done [0-9]+ runs|^stat::number_of_executed_units|ERROR|SUMMARY|^==" ; \
	    [ "$$(ls $(FUZZ_DIR)/crash-* $(FUZZ_DIR)/leak-* $(FUZZ_DIR)/timeout-* $(FUZZ_DIR)/oom-* 2>/dev/null)" ] && \
	        { echo "fuzz_$$n: finding in $(FUZZ_DIR)"; exit 1; }; done; true

clean:
	rm -rf build build-san build-cuda build-base build-portable build-portable-v2 nexus

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

print-ldlibs:
	@echo $(LDLIBS)
