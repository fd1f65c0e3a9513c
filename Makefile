# vitq - build the static and shared libraries, the CLI, tests, docs tables.
# make [OPENMP=1] | make test | make check-asan | make check-tsan | make fuzz | make demo | make results [IMAGENET=dir] | make install PREFIX=/usr/local DESTDIR=
.SUFFIXES:

# The version lives in include/vitq.h only (one source of truth).
MAJOR := $(shell sed -n 's/^\#define VITQ_VERSION_MAJOR \([0-9]*\)/\1/p' include/vitq.h)
MINOR := $(shell sed -n 's/^\#define VITQ_VERSION_MINOR \([0-9]*\)/\1/p' include/vitq.h)
PATCH := $(shell sed -n 's/^\#define VITQ_VERSION_PATCH \([0-9]*\)/\1/p' include/vitq.h)
VERSION := $(MAJOR).$(MINOR).$(PATCH)

CC ?= cc
PYTHON ?= python3
# Threads of the parallel loops (src/core/pool.h): 0, the default, the library's own pool (pthreads,
# idle threads sleep); 1, OpenMP (libgomp's threads spin at barriers, which collapses when other work
# wants the cores: docs/performance.md, "Threads on a busy machine"). -DVITQ_NO_THREADS in CFLAGS: none.
OPENMP ?= 0
SANITIZE ?= 0
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
OPT ?= -O3
CFLAGS ?=
BASE_CFLAGS = -std=c11 $(OPT) -g $(WARN) -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L \
	-DVITQ_BUILDING -Iinclude -Isrc
LDLIBS_LIB := -lm

ifeq ($(OPENMP),1)
  OMP_FLAGS := -fopenmp
  VARIANT := omp
else
  # the pool (pthreads; in libc itself from glibc 2.34, where -pthread changes nothing)
  OMP_FLAGS := -pthread
  VARIANT := noomp
endif
ifeq ($(SANITIZE),1)
  SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  VARIANT := $(VARIANT)-asan
  OPT := -O1
else ifeq ($(SANITIZE),thread)
  # ThreadSanitizer (make check-tsan): use with OPENMP=0 (the pool), TSan cannot see libgomp's synchronisation.
  # VITQ_NO_IFUNC: an instrumented ifunc resolver runs before the TSan runtime is up and crashes.
  SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -DVITQ_NO_IFUNC
  VARIANT := $(VARIANT)-tsan
  OPT := -O1
else
  SAN_FLAGS :=
endif

BUILD := build/$(VARIANT)
ALL_CFLAGS := $(BASE_CFLAGS) $(OMP_FLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS := $(OMP_FLAGS) $(SAN_FLAGS) $(LDFLAGS)

LIB_SRCS := $(sort $(shell find src -name '*.c'))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS := $(sort $(wildcard cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

STATIC := $(BUILD)/libvitq.a
SHARED := $(BUILD)/libvitq.so.$(VERSION)

.PHONY: all libs cli tests examples test check-asan demo results install uninstall clean FORCE

all: libs cli examples lib/vitq.pc

# lib/ holds the libraries of the last plain build; build/<variant>/ keeps each variant apart so
# `make OPENMP=0` and the sanitizer build never reuse objects of another configuration.
libs: lib/libvitq.a lib/libvitq.so

lib/libvitq.a: $(STATIC)
	@mkdir -p lib
	cp $< $@
lib/libvitq.so.$(VERSION): $(SHARED)
	@mkdir -p lib
	cp $< $@
lib/libvitq.so: lib/libvitq.so.$(VERSION)
	ln -sf libvitq.so.$(VERSION) lib/libvitq.so.$(MAJOR)
	ln -sf libvitq.so.$(MAJOR) lib/libvitq.so

$(BUILD)/%.o: %.c $(wildcard include/*.h) $(shell find src -name '*.h')
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJS) src/vitq.map
	$(CC) -shared $(ALL_LDFLAGS) -Wl,-soname,libvitq.so.$(MAJOR) -Wl,--version-script=src/vitq.map \
		-Wl,-z,defs -o $@ $(LIB_OBJS) $(LDLIBS_LIB)

cli: bin/vitq
# The CLI links the static library: it is one self-contained binary, usable without installing.
$(BUILD)/bin/vitq: $(CLI_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(STATIC) $(LDLIBS_LIB)
bin/vitq: $(BUILD)/bin/vitq
	@mkdir -p bin
	cp $< $@.tmp && mv -f $@.tmp $@  # a rename, so a running vitq keeps its file

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)
tests: $(TEST_BINS)

# Examples are built as a user would build them: the public header only, no internal paths.
EXAMPLE_CFLAGS = -std=c11 $(OPT) -g $(WARN) -Iinclude $(SAN_FLAGS) $(CFLAGS)
$(BUILD)/examples/%: examples/%.c include/vitq.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)
examples: $(EXAMPLE_BINS)

# The .pc file names install paths, so `make install` writes its own copy for the PREFIX it is given.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	-e 's|@VERSION@|$(VERSION)|' -e 's|@OMP@|$(OMP_FLAGS)|' pkgconfig/vitq.pc.in
lib/vitq.pc: pkgconfig/vitq.pc.in include/vitq.h
	@mkdir -p lib
	$(PC_SED) > $@

# make test: the suite on the normal build, then again under AddressSanitizer + UBSan.
test: all tests
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/run.sh
	$(MAKE) --no-print-directory check-asan

check-asan:
	$(MAKE) --no-print-directory SANITIZE=1 OPENMP=$(OPENMP) tests bin-asan
	BUILD=build/$(VARIANT)-asan VITQ_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=print_stacktrace=1 sh tests/run.sh --c-only

bin-asan: $(BUILD)/bin/vitq

# make check-tsan: several threads run vitq_model_forward on one model at once under ThreadSanitizer
# (tests/tsan/), and tests/unit/test_pool.c. The library is built OPENMP=0, with its own pool, whose
# synchronisation TSan sees (it does not see libgomp's barriers and would report races inside them):
# the test's pthreads and the pool's threads are the concurrency under test.
.PHONY: check-tsan
check-tsan:
	sh tests/tsan/check_concurrent_forward.sh
$(BUILD)/tests/tsan/%: tests/tsan/%.c include/vitq.h tests/unit/harness.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -g $(WARN) -D_POSIX_C_SOURCE=200809L -Iinclude -Itests/unit $(SAN_FLAGS) $(CFLAGS) -pthread \
		-o $@ $< $(STATIC) $(ALL_LDFLAGS) -pthread $(LDLIBS_LIB)

# make firmware: the freestanding subset (docs/firmware.md) cross-compiled from the same src/ files into
# $(BUILD)/firmware/libvitq.a, and examples/firmware/ linked against it for QEMU's mps2-an385 (Cortex-M3)
# with two models the host CLI quantizes and exports at build time (make firmware-run runs it;
# tests/build/check_firmware.sh compares it with the host). Needs gcc-arm-none-eabi and
# libnewlib-arm-none-eabi (for the string functions).
.PHONY: firmware firmware-run
FW_CC ?= arm-none-eabi-gcc
FW_AR ?= arm-none-eabi-ar
FW_CPU ?= cortex-m3
FW_IMAGES ?= 8
FW_BUILD := $(BUILD)/firmware
FW_ARCH := -mcpu=$(FW_CPU) -mthumb
FW_CFLAGS := -std=c11 -Os -g $(FW_ARCH) -ffunction-sections -fdata-sections $(WARN)
# the subset: the embedded model's loader and the integer-only runtime with what it calls, generic C paths
FW_SRCS := src/kernels/embedded.c src/kernels/embedded_walk.c src/kernels/intnl.c src/kernels/intnl_dispatch.c \
	src/kernels/requant.c src/kernels/igemm_int.c src/kernels/igemm_int_generic.c src/kernels/cpu.c \
	src/core/pool.c src/core/checked.c src/core/status.c src/core/format.c src/kernels/intvit.c
FW_OBJS := $(FW_SRCS:%.c=$(FW_BUILD)/%.o)
FW_GEN := $(FW_BUILD)/gen
FW_MODEL_FILES := $(FW_GEN)/vit_w8a8.c $(FW_GEN)/vit_w4a8.c $(FW_GEN)/fw_images.c
FW_QUANTIZE = $(BUILD)/bin/vitq quantize models/fmnist-vit --calib data/fashion-mnist/calib1000-images-idx3-ubyte.gz \
	--calib-n 64 --progress none --out $@

firmware: $(FW_BUILD)/firmware.elf

$(FW_BUILD)/src/%.o: src/%.c $(wildcard include/*.h) $(shell find src -name '*.h')
	@mkdir -p $(dir $@)
	$(FW_CC) $(FW_CFLAGS) -DVITQ_BUILDING -DVITQ_FREESTANDING -DVITQ_NO_THREADS -Iinclude -Isrc -c $< -o $@
$(FW_BUILD)/libvitq.a: $(FW_OBJS)
	@rm -f $@
	$(FW_AR) rcs $@ $^

# the models: W8A8 with I-BERT's integer LayerNorm, softmax and GELU, W4A8 with I-ViT's
$(FW_GEN)/vit_w8a8.safetensors: $(BUILD)/bin/vitq
	@mkdir -p $(dir $@)
	$(FW_QUANTIZE) --wbits 8 --abits 8 --nonlinear ibert
$(FW_GEN)/vit_w4a8.safetensors: $(BUILD)/bin/vitq
	@mkdir -p $(dir $@)
	$(FW_QUANTIZE) --wbits 4 --abits 8 --nonlinear ivit
$(FW_GEN)/%.c $(FW_GEN)/%.h: $(FW_GEN)/%.safetensors $(BUILD)/bin/vitq
	$(BUILD)/bin/vitq export-c $< --out $(FW_GEN)/$*.c --symbol $*
$(FW_GEN)/fw_images.c $(FW_GEN)/fw_images.h: examples/firmware/images_to_c.sh
	@mkdir -p $(dir $@)
	sh $< data/fashion-mnist/t10k-images-idx3-ubyte.gz data/fashion-mnist/t10k-labels-idx1-ubyte.gz $(FW_IMAGES) $(FW_GEN)

# the example: no start files (its own startup.c), newlib-nano for memcpy / memset / strlen only
$(FW_BUILD)/firmware.elf: $(wildcard examples/firmware/*.c examples/firmware/*.h examples/firmware/*.ld) \
		$(FW_MODEL_FILES) $(FW_BUILD)/libvitq.a
	$(FW_CC) $(FW_CFLAGS) -Iinclude -I$(FW_GEN) -Iexamples/firmware -nostartfiles --specs=nano.specs \
		-Wl,--gc-sections -T examples/firmware/mps2_an385.ld -Wl,-Map=$(FW_BUILD)/firmware.map \
		-o $@ examples/firmware/main.c examples/firmware/startup.c $(FW_MODEL_FILES) -L$(FW_BUILD) -lvitq

firmware-run: $(FW_BUILD)/firmware.elf
	qemu-system-arm -M mps2-an385 -nographic -monitor none -semihosting-config enable=on,target=native -kernel $<

# make fuzz: every fuzz/fuzz_*.c target under libFuzzer + ASan + UBSan for FUZZ_SECONDS each, seeds from
# fuzz/corpus/<target>/ (fuzz/README.md); FUZZ_TARGETS="json npy" runs some. The library is compiled
# again by clang with coverage instrumentation into build/fuzz/ (without OpenMP: one thread per input
# keeps every finding reproducible).
.PHONY: fuzz fuzz-build
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_BUILD := build/fuzz
# VITQ_NO_THREADS: one thread per input, so every input runs the same way twice and no pool threads
# outlive a crash report.
FUZZ_CFLAGS := -std=c11 -O1 -g $(WARN) -D_POSIX_C_SOURCE=200809L -DVITQ_BUILDING -DVITQ_NO_THREADS -Iinclude \
	-Isrc -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=$(FUZZ_BUILD)/%)
# zlib, when its header and library are there, is fuzz_idx_gzip's oracle for raw DEFLATE (it never goes
# into libvitq). Recursive (=): the probe runs only when that target is linked.
FUZZ_ZLIB = $(shell printf '\043include <zlib.h>\nint main(void) { return !zlibVersion(); }\n' | \
	$(FUZZ_CC) -x c - -lz -o $(FUZZ_BUILD)/zlib-probe >/dev/null 2>&1 && echo 1)

fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) sh fuzz/run.sh $(FUZZ_TARGETS)

$(FUZZ_BUILD)/src/%.o: src/%.c $(wildcard include/*.h) $(shell find src -name '*.h')
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_BUILD)/libvitq.a: $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(wildcard fuzz/*.h) $(FUZZ_BUILD)/libvitq.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libvitq.a -lm \
		$(if $(and $(filter idx_gzip,$*),$(FUZZ_ZLIB)),-DVITQ_FUZZ_ZLIB -lz)

demo: all
	sh tools/demo.sh

# docs/results.md: every scheme at W8A8..W3A3 on the bundled models, SEEDS calibration seeds; with
# IMAGENET=path/to/imagenet also the real DeiT-Tiny in the default and the paper setting. LIMIT=N
# evaluates the first N test images. Every run is cached (build/results/cache.json): a cut run resumes.
# On DeiT-Tiny a block search (ptq4vit, apq-vit, noisyquant over ptq4vit) takes about 4 minutes per run
# with 8 search images, so those run at the widths and seeds below only (docs/results.md says so).
IMAGENET ?=
LIMIT ?= 2000
SEEDS ?= 3
SEARCHED := ptq4vit apq-vit noisyquant+base=1
RESULTS_IMAGENET := --imagenet-seeds 3 --imagenet-settings paper,default \
	--imagenet-schemes minmax,percentile,omse,repq-vit,repq-vit+post_gelu=1,noisyquant,ptq4vit,apq-vit,noisyquant+base=1,mptq-vit \
	--imagenet-seeds-of paper:mptq-vit=0 --imagenet-widths-of mptq-vit=W8A8,W6A6,W4A4 \
	--opt mptq-vit:search_images=8 --imagenet-mp-methods minmax,repq-vit \
	$(foreach s,$(SEARCHED),--opt $(s):search_images=8 --imagenet-seeds-of $(s)=0) \
	--imagenet-seeds-of paper:ptq4vit@W4A4=3 --imagenet-seeds-of paper:apq-vit@W4A4=3 \
	--imagenet-seeds-of paper:ptq4vit@W6A6=3 --imagenet-seeds-of paper:apq-vit@W6A6=3 \
	--imagenet-seeds-of default:ptq4vit@W4A4=1 --imagenet-seeds-of default:apq-vit@W4A4=1 \
	--imagenet-seeds-of paper:noisyquant+base=1@W4A4=3 --imagenet-seeds-of paper:noisyquant+base=1@W6A6=3
results: all
	$(PYTHON) tools/results.py --limit $(LIMIT) --seeds $(SEEDS) --mp-seeds 2 \
		$(if $(IMAGENET),--imagenet $(IMAGENET) $(RESULTS_IMAGENET))

# make recon-results: block reconstruction with and without, on the Fashion-MNIST models and (IMAGENET=dir)
# the real DeiT-Tiny, into the marked section of docs/results.md (tools/recon_results.py; make results keeps it)
RECON_FMNIST := "minmax:W4A4:0" "minmax:W3A3:0" "minmax:W6A6:0" "ptq4vit:W4A4:0" "ptq4vit:W3A3:0" "ptq4vit:W6A6:0" \
	"apq-vit:W4A4:0" "apq-vit:W3A3:0" "apq-vit:W6A6:0" "repq-vit+post_gelu=1:W4A4:0" "repq-vit+post_gelu=1:W3A3:0" \
	"repq-vit+post_gelu=1:W6A6:0" "mptq-vit:W4A4:0" "mptq-vit:W3A3:0" "mptq-vit:W6A6:0"
# Left out on ImageNet for time (docs/results.md): ptq4vit and apq-vit at W3A3 and W6A6 (their block searches take
# about 25 minutes per calibration on the 2-core machine, 50 per pair), mptq-vit at W3A3 and W6A6
RECON_IMAGENET := "minmax:W4A4:0" "minmax:W3A3:0" "minmax:W6A6:0" "ptq4vit:W4A4:0" "apq-vit:W4A4:0" \
	"repq-vit+post_gelu=1:W4A4:0,1,2" "repq-vit+post_gelu=1+set=*.softmax.out=scheme:mpq:W3A3:0,1,2" \
	"repq-vit+post_gelu=1:W6A6:0" "mptq-vit:W4A4:0"
.PHONY: recon-results
recon-results: all
	VITQ_BIN=bin/vitq $(PYTHON) tools/recon_results.py --fmnist-runs $(RECON_FMNIST) \
		$(if $(IMAGENET),--imagenet $(IMAGENET) --runs $(RECON_IMAGENET)) \
		--intro tools/recon_results_intro.md --write docs/results.md

# make qat-results: quantization-aware training against the best PTQ result on the Fashion-MNIST models (trained on
# Debian's dataset-fashion-mnist) and (IMAGENET=dir) distillation-only QAT of the real DeiT-Tiny, into the marked
# section of docs/results.md (tools/qat_results.py; make results keeps it)
QAT_FMNIST := "minmax:W4A4" "minmax:W4A4:reg=0" "minmax:W4A4:epochs=2" "minmax:W3A3" "minmax:W2A2" "minmax:W2A2:reg=0" \
	"repq-vit+post_gelu=1:W4A4:lr=2e-4,recon=1" "lsq:W4A4"
QAT_IMAGENET := "repq-vit+post_gelu=1:W4A4:epochs=4,crops=4,batch=32,lr=2e-4,micro=16,recon=1"
.PHONY: qat-results
qat-results: all
	VITQ_BIN=bin/vitq $(PYTHON) tools/qat_results.py --fmnist-runs $(QAT_FMNIST) \
		$(if $(IMAGENET),--imagenet $(IMAGENET) --imagenet-runs $(QAT_IMAGENET)) \
		--intro tools/qat_results_intro.md --write docs/results.md

# make bench: vitq against ONNX Runtime and PyTorch on random DeiT-T, DeiT-S and ViT-B, one table per
# model (docs/performance.md), then the threads table idle and beside a competing CPU load
# (bench-threads). It builds the default library itself. BENCH_ARGS=--quick: a few minutes.
.PHONY: bench
BENCH_ARGS ?=
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-threads

# make bench-intnl: the integer non-linear kernels (src/kernels/intnl.c) against the exact functions on a
# model's real activations (default: the ImageNet DeiT-Tiny beside the checkout; docs/quantization.md).
.PHONY: bench-intnl
INTNL_ARGS ?=
bench-intnl: $(BUILD)/bench/intnl_error
	$(BUILD)/bench/intnl_error $(INTNL_ARGS)
$(BUILD)/bench/intnl_error: bench/intnl_error.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)

# make bench-intnl-speed: the integer non-linear kernels' time per path against the generic path on
# DeiT-Tiny-shaped rows (bench/bench_intnl.c). BENCH_INTNL_ARGS=--quick: fewer samples.
.PHONY: bench-intnl-speed
BENCH_INTNL_ARGS ?=
bench-intnl-speed: $(BUILD)/bench/bench_intnl
	$(BUILD)/bench/bench_intnl $(BENCH_INTNL_ARGS)
$(BUILD)/bench/bench_intnl: bench/bench_intnl.c bench/bench_time.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)

# make bench-kernels: the FP32 kernels' GFLOP/s against the measured FMA peak (bench/bench_kernels.c,
# an internal benchmark linked against the static library). BENCH_KERNELS_ARGS=--quick: fewer runs.
.PHONY: bench-kernels
BENCH_KERNELS_ARGS ?=
bench-kernels: $(BUILD)/bench/bench_kernels
	$(BUILD)/bench/bench_kernels $(BENCH_KERNELS_ARGS)
$(BUILD)/bench/bench_kernels: bench/bench_kernels.c bench/bench_time.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)

# make bench-igemm: the integer GEMM's GOP/s per kernel against the measured vpdpbusd peak, and the
# activation quantization (bench/bench_igemm.c, internal, static library). BENCH_IGEMM_ARGS=--quick.
.PHONY: bench-igemm
BENCH_IGEMM_ARGS ?=
bench-igemm: $(BUILD)/bench/bench_igemm
	$(BUILD)/bench/bench_igemm $(BENCH_IGEMM_ARGS)
$(BUILD)/bench/bench_igemm: bench/bench_igemm.c bench/bench_time.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)

# make bench-threads: ms/image of FP32 and W8A8 forward passes (models/fmnist-vit, batch 64) with the
# library's pool (default threads, and 1) and with OpenMP (default and passive wait policy), on an idle
# machine and beside one busy-loop process per CPU (bench/bench_threads.c; docs/performance.md,
# "Threads on a busy machine"). Builds build/noomp and, if it can, build/omp. About 1.5 minutes on 2
# cores; BENCH_THREADS_ARGS=--quick: about 30 s.
.PHONY: bench-threads
BENCH_THREADS_ARGS ?=
bench-threads:
	$(MAKE) --no-print-directory OPENMP=0 SANITIZE=0 BUILD=build/noomp build/noomp/bench/bench_threads
	-$(MAKE) --no-print-directory OPENMP=1 SANITIZE=0 BUILD=build/omp build/omp/bench/bench_threads
	build/noomp/bench/bench_threads --omp build/omp/bench/bench_threads $(BENCH_THREADS_ARGS)
$(BUILD)/bench/bench_threads: bench/bench_threads.c bench/bench_time.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(LDLIBS_LIB)

# The man page is made from the CLI's own help (vitq --help, vitq COMMAND --help) by tools/help2man.sh,
# so it says what the installed binary says.
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
MANPAGE := $(BUILD)/man/vitq.1
.PHONY: man
man: $(MANPAGE)
$(MANPAGE): $(BUILD)/bin/vitq tools/help2man.sh
	@mkdir -p $(dir $@)
	sh tools/help2man.sh $(BUILD)/bin/vitq > $@.tmp && mv -f $@.tmp $@

# The Python package (python/vitq, docs/python.md) goes to PYTHONDIR; vitq/_install.py records where the
# library is installed, so that the package finds it without LD_LIBRARY_PATH.
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages

install: all $(MANPAGE)
	mkdir -p $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	mkdir -p $(DESTDIR)$(PYTHONDIR)/vitq
	cp python/vitq/*.py $(DESTDIR)$(PYTHONDIR)/vitq/
	printf '"""Written by make install: the installed libvitq."""\nLIBRARY = "%s"\n' \
		'$(LIBDIR)/libvitq.so.$(MAJOR)' > $(DESTDIR)$(PYTHONDIR)/vitq/_install.py
	cp include/vitq.h $(DESTDIR)$(INCLUDEDIR)/
	cp lib/libvitq.a lib/libvitq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libvitq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libvitq.so.$(MAJOR)
	ln -sf libvitq.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libvitq.so
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/vitq.pc
	cp bin/vitq $(DESTDIR)$(BINDIR)/vitq
	chmod 755 $(DESTDIR)$(BINDIR)/vitq
	cp $(MANPAGE) $(DESTDIR)$(MANDIR)/man1/vitq.1
	chmod 644 $(DESTDIR)$(MANDIR)/man1/vitq.1

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/vitq.h $(DESTDIR)$(LIBDIR)/libvitq.* $(DESTDIR)$(LIBDIR)/pkgconfig/vitq.pc
	rm -f $(DESTDIR)$(BINDIR)/vitq $(DESTDIR)$(MANDIR)/man1/vitq.1
	rm -rf $(DESTDIR)$(PYTHONDIR)/vitq/__pycache__
	rm -f $(DESTDIR)$(PYTHONDIR)/vitq/*.py
	rmdir $(DESTDIR)$(PYTHONDIR)/vitq 2>/dev/null || true

clean:
	rm -rf build lib bin
