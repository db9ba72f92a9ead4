# SPDX-License-Identifier: GPL-2.0-only
#
# One `make` builds everything; `make check` runs every test; `make demo`
# runs the main job.  The module itself is built by Kbuild (see ./Kbuild).
#
# KDIR: a host that can load modules builds for its running kernel; this
# project's CI host cannot, so it builds for the Debian kernel the VM boots.

HOST_KDIR := /lib/modules/$(shell uname -r)/build
VM_KVER = $(shell tools/kver)
KDIR ?= $(if $(wildcard $(HOST_KDIR)/Makefile),$(if $(EVRING_VM),,$(HOST_KDIR)),)
ifeq ($(KDIR),)
KDIR = /lib/modules/$(VM_KVER)/build
endif

B := build
CC := gcc
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror \
	  -Wno-unused-parameter -D_GNU_SOURCE -Iuapi -Ilib
LDLIBS_LIB := -lmnl -lpthread

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS))
LIB := $(B)/lib/libevring.a
TOOL_SRCS := $(wildcard tools/*.c)
TOOLS := $(patsubst tools/%.c,$(B)/bin/%,$(TOOL_SRCS))
KTEST_SRCS := $(wildcard selftests/kmod/*_test.c)
KTESTS := $(patsubst %.c,$(B)/%,$(KTEST_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCHES := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))
HARNESS := $(B)/ext/kselftest_harness.h
# The harness's own macros trip these at -O2; test paths are bounded anyway.
TEST_CFLAGS := -I$(B)/ext -Wno-misleading-indentation -Wno-format-truncation

# evringd and evringctl: every daemon/*.c but the two mains is a module of
# libevringd.a, which the daemon unit tests link too.
DAEMON_MAINS := daemon/evringd.c daemon/evringctl.c
DAEMON_SRCS := $(filter-out $(DAEMON_MAINS),$(wildcard daemon/*.c))
DAEMON_OBJS := $(patsubst %.c,$(B)/%.o,$(DAEMON_SRCS))
DAEMON_LIB := $(B)/daemon/libevringd.a
DAEMON_BINS := $(patsubst daemon/%.c,$(B)/bin/%,$(wildcard $(DAEMON_MAINS)))
LDLIBS_DAEMON := -lsqlite3 -lzstd -lxxhash -ljansson -linih -lsystemd \
		 -lbpf -lelf -lz -lnats -lmicrohttpd $(LDLIBS_LIB)
DTEST_SRCS := $(wildcard selftests/daemon/*_test.c selftests/e2e/*_test.c \
		selftests/ship/*_test.c selftests/drill/*_test.c)
DTESTS := $(patsubst %.c,$(B)/%,$(DTEST_SRCS))

# The BPF capture programs, the libbpf-bootstrap way: vmlinux.h from this
# machine's BTF (CO-RE relocates the object to the running kernel's at
# load), the object, then its skeleton, which daemon/source_bpf.c includes.
BPF_CLANG ?= clang
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_OBJ := $(B)/bpf/evring_capture.bpf.o
BPF_SKEL := $(B)/bpf/evring_capture.skel.h
BTEST_SRCS := $(wildcard selftests/bpf/*_test.c)
BTESTS := $(patsubst %.c,$(B)/%,$(BTEST_SRCS))

.PHONY: all deps module userspace selftests check demo bench-kmod bench-spool \
	bench-bpf bench-ship clean checkpatch
all: module userspace selftests

deps:
	tools/deps

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

userspace: $(LIB) $(TOOLS) $(BENCHES) $(DAEMON_BINS)

$(B)/daemon/%.o: daemon/%.c $(wildcard daemon/*.h) lib/evring.h uapi/linux/evring.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Idaemon -c -o $@ $<

$(B)/bpf/vmlinux.h: $(VMLINUX_BTF)
	@mkdir -p $(dir $@)
	bpftool btf dump file $< format c >$@.tmp && mv $@.tmp $@

$(BPF_OBJ): bpf/evring_capture.bpf.c bpf/capture.h $(B)/bpf/vmlinux.h
	$(BPF_CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
		-I$(B)/bpf -Ibpf -c -o $@ $<

$(BPF_SKEL): $(BPF_OBJ)
	bpftool gen skeleton $< name evring_capture >$@.tmp && mv $@.tmp $@

$(DAEMON_OBJS): CFLAGS += -Ibpf -I$(B)/bpf
$(B)/daemon/config.o: bpf/capture.h
$(B)/daemon/source_bpf.o: bpf/capture.h $(BPF_SKEL)

$(DAEMON_LIB): $(DAEMON_OBJS)
	$(AR) rcs $@ $^

$(B)/bin/evringd $(B)/bin/evringctl: $(B)/bin/%: daemon/%.c $(DAEMON_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Idaemon -o $@ $< $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(B)/lib/%.o: lib/%.c lib/evring.h uapi/linux/evring.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	$(AR) rcs $@ $^

$(B)/bin/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS_LIB)

$(B)/bench/%: bench/%.c bench/bench_util.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS_LIB)

# bench-ship: the direct publisher links libnats; ship_bench also decodes
# batches (libevringd.a's batch.o) and consumes streams.
$(B)/bench/ship_direct $(B)/bench/ship_bench: bench/ship_event.h
$(B)/bench/ship_direct: LDLIBS_LIB := -lnats $(LDLIBS_LIB)
$(B)/bench/ship_bench: $(DAEMON_LIB)
$(B)/bench/ship_bench: LDLIBS_LIB := $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(HARNESS):
	tools/deps

selftests: $(KTESTS) $(DTESTS) $(BTESTS)

$(B)/selftests/daemon/%: selftests/daemon/%.c $(wildcard selftests/daemon/*.h) $(DAEMON_LIB) $(LIB) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -Idaemon -o $@ $< $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(B)/selftests/e2e/%: selftests/e2e/%.c $(wildcard selftests/e2e/*.h) $(DAEMON_LIB) $(LIB) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -Idaemon -o $@ $< $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(B)/selftests/ship/%: selftests/ship/%.c $(wildcard selftests/ship/*.h) $(DAEMON_LIB) $(LIB) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -Idaemon -o $@ $< $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(B)/selftests/drill/%: selftests/drill/%.c $(wildcard selftests/drill/*.h) $(DAEMON_LIB) $(LIB) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -Idaemon -o $@ $< $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(B)/selftests/bpf/%: selftests/bpf/%.c $(wildcard selftests/bpf/*.h) bpf/capture.h $(BPF_SKEL) $(DAEMON_LIB) $(LIB) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -Idaemon -Ibpf -I$(B)/bpf -o $@ $< $(DAEMON_LIB) $(LIB) $(LDLIBS_DAEMON)

$(B)/selftests/kmod/%: selftests/kmod/%.c selftests/kmod/*.h $(LIB) $(HARNESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -o $@ $< $(LIB) $(LDLIBS_LIB)

checkpatch: $(HARNESS)
	perl $(B)/ext/checkpatch/checkpatch.pl --no-tree --strict --terse \
		-f kmod/*.c kmod/*.h uapi/linux/evring.h

# The whole suite: deps, build, then every suite (a failing suite does not
# stop the others); the last line is `N passed, N failed, M skipped`, and
# the summary's exit status is the verdict.
check:
	tools/deps
	$(MAKE) EVRING_VM=1 all
	tools/check-report --reset
	-tools/check-report build -- tools/check-build
	-tools/check-report daemon -- selftests/daemon/run
	-tools/check-report drill -- selftests/drill/run
	-tools/check-report ship -- selftests/ship/run
	-tools/check-report kmod -- tools/vm-run -t 900 selftests/kmod/run
	-tools/check-report bpf -- selftests/bpf/run
	-tools/check-report bpf-vm -- tools/vm-run -t 1200 selftests/bpf/run
	-tools/check-report e2e -- tools/vm-run -t 1200 selftests/e2e/run
	tools/check-report --summary

demo:
	tools/deps
	$(MAKE) EVRING_VM=1 all
	tools/demo

bench-kmod:
	tools/deps
	$(MAKE) EVRING_VM=1 all
	tools/vm-run -t 1800 bench/run-kmod

bench-spool:
	tools/deps
	$(MAKE) EVRING_VM=1 all
	tools/vm-run -t 1800 bench/run-spool

# On the host (root), not in the VM: see bench/run-bpf.
bench-bpf:
	tools/deps
	$(MAKE) userspace
	bench/run-bpf

# On the host, not in the VM: nats-server and evringd on loopback, see
# bench/run-ship.
bench-ship:
	tools/deps
	$(MAKE) userspace
	bench/run-ship

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf $(B)
