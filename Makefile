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
#                   and against the engine of BENCH_BASE built beside this one)
#   make fuzz       libFuzzer targets (clang): the safetensors header, then
#                   the server's request parser and chat templates, each for
#                   FUZZ_SECONDS; new inputs go to build/fuzz/corpus*, seeds
#                   stay in tests/fuzz/corpus*

CC       ?= cc
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
CFLAGS   += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -fopenmp $(OPT) -g \
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
# sm_90: H100/H200; PTX for the rest
NVFLAGS   ?= -O2 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
CU_SRC    := $(wildcard src/backend/cuda/*.cu)
LIB_OBJ   += $(CU_SRC:%.cu=$(BUILD)/%.o)
CFLAGS    += -DNX_HAVE_CUDA
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++

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

# The README's main job: distill the bundled demo teacher (no network).
demo: $(BIN)
	./$(BIN) distill configs/demo.yaml

sanitize:
	$(MAKE) BUILD=build-san OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    BIN=build-san/nexus test

bench: $(BIN) $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ./$$b || exit 1; done
	@echo "== the engine against commit $(BENCH_BASE) (bench/compare.sh)"
	@if git cat-file -e $(BENCH_BASE) 2>/dev/null; then sh bench/compare.sh $(BENCH_BASE); \
	 else echo "compare: skipped ($(BENCH_BASE) is not in this clone)"; fi

fuzz: | $(DEPS_STAMP)
	@mkdir -p $(BUILD)/fuzz
	clang -std=c11 -D_GNU_SOURCE -Iinclude -I/usr/include/cjson -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $(BUILD)/fuzz/fuzz_safetensors tests/fuzz/fuzz_safetensors.c src/io/safetensors.c src/io/fsutil.c src/io/json.c src/core/*.c \
	    -I$(BLAS_INC) -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lcjson -lm -fopenmp
	@mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_safetensors -max_total_time=$${FUZZ_SECONDS:-180} -max_len=4096 \
	    $(BUILD)/fuzz/corpus tests/fuzz/corpus
	clang -std=c11 -D_GNU_SOURCE -Iinclude -I/usr/include/cjson -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $(BUILD)/fuzz/fuzz_request tests/fuzz/fuzz_request.c src/serve/request.c src/serve/template/*.c \
	    src/io/json.c src/core/*.c \
	    -I$(BLAS_INC) -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lcjson -lm -fopenmp
	@mkdir -p $(BUILD)/fuzz/corpus_request
	$(BUILD)/fuzz/fuzz_request -max_total_time=$${FUZZ_SECONDS:-180} -max_len=8192 -timeout=10 \
	    $(BUILD)/fuzz/corpus_request tests/fuzz/corpus_request

clean:
	rm -rf build build-san build-cuda build-base nexus

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

print-ldlibs:
	@echo $(LDLIBS)
