# wsi2kafka — one non-recursive GNU Makefile (see README "Building").
#
#   make            build build/wsi2kafka
#   make deps       install missing Debian packages (apt-get; sudo when not root)
#   make check      deps, then build with ASan+UBSan and without (build/san,
#                   build/vg) and run every test, those of build/vg under
#                   valgrind: what CI runs (.ci/run). JOBS=N: integration
#                   tests at a time (tests/run, default 4)
#   make check-valgrind  only the valgrind half: build/vg, the unit tests and
#                   every integration test with the daemon under memcheck
#   make check-trixie  the build, the tests and the .deb in a Debian 13 root
#                   (debootstrap, cached in build/trixie-root); root only
#   make demo       deps, build, run the daemon against pbxsim + kmock
#   make bench      release build in build/bench, the end-to-end benchmark
#   make kafka      fetch the pinned Apache Kafka broker of the real-broker
#                   tests (tests/kafka/pom.xml) with Maven into build/kafka
#
# Project flags come first and the user's CPPFLAGS/CFLAGS/LDFLAGS last, so that
# dpkg-buildflags output drops in unchanged (style.md §15.9).

NAME       = wsi2kafka
VERSION    = 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
PKG_CONFIG ?= pkg-config

# B is the build directory; `make check` uses its own so sanitizer objects
# never mix with the release build.
B ?= build

DEPS      = libwebsockets openssl libcjson rdkafka libconfig libsystemd
# libclang-rt-dev: libFuzzer's runtime for the default clang (14 on
# Debian 12, 19 on Debian 13).
DEB_PKGS  = build-essential pkg-config libwebsockets-dev libssl-dev \
            libcjson-dev librdkafka-dev libconfig-dev libsystemd-dev \
            libcmocka-dev kcat openssl jq clang libclang-rt-dev curl \
            valgrind
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DEPS) 2>/dev/null)
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs $(DEPS) 2>/dev/null)

WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wundef \
       -Wno-format-nonliteral
HARDEN_CPPFLAGS = -D_FORTIFY_SOURCE=2
HARDEN_CFLAGS   = -fstack-protector-strong
HARDEN_LDFLAGS  = -Wl,-z,relro -Wl,-z,now
CFLAGS ?= -O2 -g
ifdef SANITIZE
  SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
              -fno-sanitize-recover=all
  HARDEN_CPPFLAGS =
endif
ALL_CPPFLAGS = -Iinclude -I$(B)/gen -DW2K_VERSION=\"$(VERSION)\" -D_GNU_SOURCE \
               $(HARDEN_CPPFLAGS) $(CPPFLAGS)
ALL_CFLAGS   = -std=c11 $(WARN) $(HARDEN_CFLAGS) $(SAN_FLAGS) $(DEP_CFLAGS) \
               $(CFLAGS)
ALL_LDFLAGS  = $(HARDEN_LDFLAGS) $(SAN_FLAGS) $(LDFLAGS)

SRC     = $(wildcard src/*.c)
LIB_OBJ = $(patsubst src/%.c,$(B)/obj/%.o,$(filter-out src/main.c,$(SRC)))
UNIT    = $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
HELPERS = $(B)/tests/pbxsim $(B)/tests/kmock

all: $(B)/$(NAME)

$(B)/$(NAME): $(B)/obj/main.o $(B)/libw2k.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS) $(LDLIBS)

$(B)/libw2k.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(B)/obj/%.o: src/%.c | $(B)/obj
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# unit_paths.h: the paths the unit lets the daemon write under
# ProtectSystem=strict (StateDirectory= and its kin, ReadWritePaths=),
# read from the unit itself, the one source: `wsi2kafka -t` warns when
# spool.dir is outside them (cfg_unit_may_write()). A prefix '-' or '+'
# and a ":LINK" suffix are systemd's syntax, not the path's.
$(B)/gen/unit_paths.h: systemd/$(NAME).service | $(B)/gen
	awk 'BEGIN { base["StateDirectory"] = "/var/lib/"; \
	        base["CacheDirectory"] = "/var/cache/"; \
	        base["LogsDirectory"] = "/var/log/"; \
	        base["RuntimeDirectory"] = "/run/"; \
	        print "/* Made by the Makefile from $<: do not edit. */"; \
	        print "static const char *const unit_writable[] = {" } \
	    { k = $$0; sub(/=.*/, "", k); v = $$0; sub(/^[^=]*=/, "", v) } \
	    k in base || k == "ReadWritePaths" { \
	        n = split(v, w, /[ \t]+/); \
	        for (i = 1; i <= n; i++) { if (w[i] == "") continue; \
	            p = w[i]; sub(/^[-+]+/, "", p); sub(/:.*/, "", p); \
	            if (k in base) p = base[k] p; printf "\t\"%s\",\n", p } } \
	    END { print "\tNULL"; print "};" }' $< >$@.tmp && mv $@.tmp $@
$(B)/obj/cfg.o: $(B)/gen/unit_paths.h

# Unit tests: one cmocka driver per module, linked against the real modules.
$(B)/tests/test_%: tests/unit/test_%.c $(B)/libw2k.a | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(B)/libw2k.a $(DEP_LIBS) -lcmocka $(LDLIBS)
# test_norm fails norm.c's allocations one by one through these wrappers.
$(B)/tests/test_norm: ALL_LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

# Test buddies: the PBX simulator and the Kafka mock cluster host.
$(B)/tests/pbxsim: tests/pbxsim/pbxsim.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(DEP_LIBS) $(LDLIBS)
$(B)/tests/kmock: tests/kmock/kmock.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(DEP_LIBS) $(LDLIBS)

# Fuzz targets (libFuzzer needs clang): every module but main, built together
# with the target, with ASan and UBSan.
FUZZ_CC    ?= clang
FUZZ_SECONDS ?= 10
FUZZ_SRC    = $(filter-out src/main.c,$(SRC))
FUZZ        = $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(B)/gen/unit_paths.h | $(B)/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
	    -Wall -Wextra -Werror $(ALL_CPPFLAGS) $(DEP_CFLAGS) -o $@ $< \
	    $(FUZZ_SRC) $(DEP_LIBS)

fuzz-build: $(FUZZ)

# make fuzz FUZZ_SECONDS=N: run every target for N seconds on its corpus
# and on tests/fuzz/regress/<target>/ (past failures, limits).
fuzz: deps
	$(MAKE) fuzz-build
	for f in $(FUZZ); do n=$${f##*/}; mkdir -p $(B)/corpus/$$n; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $(B)/corpus/$$n tests/fuzz/corpus/$$n \
	        $$(ls -d tests/fuzz/regress/$$n 2>/dev/null) || exit 1; done

$(B)/obj $(B)/tests $(B)/fuzz $(B)/gen:
	mkdir -p $@

-include $(wildcard $(B)/obj/*.d $(B)/tests/*.d)

tests: $(B)/$(NAME) $(UNIT) $(HELPERS)

# deps: install what is missing, nothing else. Runs before every target that
# needs the libraries, so a fresh Debian 12 machine needs no manual step.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' \
	        || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	        --no-install-recommends $$missing; \
	fi

# check: a sub-make so that pkg-config runs after deps installed the libraries.
# -DW2K_TESTING compiles test-only hooks in (ksink.c: SIGUSR2 injects a fatal
# producer error); release builds never have them.
#
# make check is what CI runs (.ci/run): the ASan+UBSan build's tests, then
# the valgrind pass of check-valgrind, the integration tests of both builds
# in one pool, JOBS at a time (tests/run; JOBS=1: one by one). pkg-deps: the
# package tests (190-deb, 192-rpm) need those tools, and two of them must
# not run apt-get at once. CHECK_J: the two builds compile on every core.
CHECK_J ?= -j$(shell nproc 2>/dev/null || echo 1)
check: pkg-deps kafka
	$(MAKE) $(CHECK_J) B=build/san SANITIZE=address,undefined \
	    CFLAGS="-O1 -g" CPPFLAGS="$(CPPFLAGS) -DW2K_TESTING" tests fuzz-build
	$(MAKE) $(CHECK_J) bench-tools
	$(MAKE) $(CHECK_J) $(VG_BUILD) tests
	B=build/san VG_B=build/vg VALGRIND="$(VALGRIND)" tests/run

# check-valgrind: the daemon built without sanitizers (valgrind and ASan do
# not mix), -O1 -g with the test hooks, in build/vg; the unit tests and
# every run of the daemon in the integration tests under memcheck (lib.sh:
# W2K_WRAP, waits scaled by W2K_TIME_SCALE). An error, or a definite,
# indirect or possible leak at a clean exit, fails the test; runs killed by
# SIGKILL are judged on the errors before the kill. tests/valgrind.supp:
# third-party noise only, each entry says why. --vgdb=no: no FIFO left in
# /tmp by a run killed with SIGKILL.
VG_BUILD = B=build/vg CFLAGS="-O1 -g" CPPFLAGS="$(CPPFLAGS) -DW2K_TESTING"
VALGRIND = valgrind --tool=memcheck --leak-check=full \
           --errors-for-leak-kinds=definite,indirect,possible \
           --show-leak-kinds=definite,indirect,possible --num-callers=24 \
           --error-exitcode=99 --vgdb=no \
           --suppressions=$(CURDIR)/tests/valgrind.supp
check-valgrind: deps kafka
	$(MAKE) $(CHECK_J) $(VG_BUILD) tests
	B=build/vg W2K_WRAP="$(VALGRIND)" tests/run

# kafka: the Apache Kafka broker the 300-kafka-* integration tests run
# (tests/kafka/broker.sh), the release pinned in tests/kafka/pom.xml, its
# jars and their dependencies copied by Maven into build/kafka/libs
# (shared by every build directory; Maven's ~/.m2 caches them too). Done
# again only when the pom changes. Java 17 runs the broker and the tools;
# the JDK (not only the JRE) runs tests/kafka/Partition.java from source.
# A failure stops make check with the reason: the tests that need the
# broker are never skipped.
KAFKA_PKGS = openjdk-17-jdk-headless maven
KAFKA_LIBS = build/kafka/libs
kafka: $(KAFKA_LIBS)/.fetched
$(KAFKA_LIBS)/.fetched: tests/kafka/pom.xml
	$(MAKE) --no-print-directory deps DEB_PKGS="$(KAFKA_PKGS)"
	rm -rf $(KAFKA_LIBS).new
	mvn -B -q -Dstyle.color=never -f tests/kafka/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS).new || { \
	    echo "make kafka: Maven could not fetch Apache Kafka (tests/kafka/pom.xml);" \
	         "the real-broker tests (tests/integration/300-kafka-*) need it" >&2; \
	    exit 1; }
	rm -rf $(KAFKA_LIBS)
	mv $(KAFKA_LIBS).new $(KAFKA_LIBS)
	touch $@

# check-trixie: the build, the tests (but those that need Maven), `make deb`
# and `apt install` of the package in a Debian 13 root made with debootstrap
# in build/trixie-root and kept between runs (tests/check-trixie.sh). Root
# only; not part of `make check`.
check-trixie:
	tests/check-trixie.sh

demo: deps
	$(MAKE) all tests
	B=$(B) tests/demo.sh

# Never through a mount: a check-trixie run killed with SIGKILL leaves
# /dev and /proc mounted in build/trixie-root (its next run unmounts them).
clean:
	@! findmnt -rn -o TARGET | grep '^$(CURDIR)/build/' || \
	    { echo "mounted under build/: not removing it"; exit 1; }
	rm -rf build

.PHONY: all tests deps check check-valgrind check-trixie demo clean fuzz fuzz-build kafka

# ---- install, packages (README "Installing and running as a service") -----
#
#   make install [DESTDIR=DIR] [PREFIX=/usr]  the binary, the unit, the
#            sysusers.d and tmpfiles.d files, the manual pages and the default
#            configuration (never over an existing one)
#   make uninstall   the same files; the configuration only when unchanged
#   make dist        $(PKGDIR)/wsi2kafka-VERSION.tar.gz: the tree, no build/
#   make deb         Debian packages from packaging/debian, checked by lintian
#   make rpm         RPMs from packaging/rpm/wsi2kafka.spec (Debian's rpmbuild)
#
# Packages are built from a copy of the tree (the dist tarball) by their own
# tools, with a clean make environment, and land in $(PKGDIR).
# DEB_BUILD_OPTIONS=nocheck and RPMBUILD_FLAGS=--nocheck skip their unit tests.

# Without systemd's pkg-config file (Debian 13 ships it in systemd-dev):
# /usr/lib, where Debian 13 wants units (lintian: aliased-location for
# /lib) and Debian 12 reads them too.
UNITDIR     ?= $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null),/usr/lib/systemd/system)
SYSUSERSDIR ?= $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd 2>/dev/null),/usr/lib/sysusers.d)
TMPFILESDIR ?= $(or $(shell $(PKG_CONFIG) --variable=tmpfilesdir systemd 2>/dev/null),/usr/lib/tmpfiles.d)
PKGDIR      ?= $(B)/pkg
DIST         = $(PKGDIR)/$(NAME)-$(VERSION).tar.gz
# The package tools, installed only when a package is built.
# elfutils: eu-strip, which Debian 13's rpmbuild (find-debuginfo) needs.
PKG_TOOLS    = debhelper dpkg-dev fakeroot lintian rpm elfutils
RPMBUILD_FLAGS ?=
CONFFILE     = $(DESTDIR)$(SYSCONFDIR)/$(NAME)/$(NAME).conf
# Package builds must not inherit this make's variables (B=build/san,
# SANITIZE, CFLAGS...): command-line ones reach a sub-make through MAKEFLAGS
# and the environment, and tests/run exports B (and its own settings, which
# would turn the package's `tests/run unit` into a valgrind pass).
CLEAN_ENV    = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
               $(foreach v,B SANITIZE PKGDIR DESTDIR PREFIX BINDIR MANDIR \
                   SYSCONFDIR UNITDIR SYSUSERSDIR TMPFILESDIR CFLAGS \
                   CPPFLAGS LDFLAGS LDLIBS VG_B VALGRIND W2K_WRAP \
                   W2K_TIME_SCALE JOBS,-u $(v))

# Manual pages get the version, the unit the installed binary's path (sed
# at every install: BINDIR may differ between two installs).
# /etc/wsi2kafka is 0750 and the configuration 0640, both root:wsi2kafka
# (contract §4: the file may hold a password). The group is set here when
# it exists and we are root, installing into this system (no DESTDIR);
# otherwise systemd-tmpfiles sets it (wsi2kafka.tmpfiles 'd' and 'z'), once
# systemd-sysusers made the user: the packages' scripts run both, and so
# does the operator after `make install` (README).
CONF_GROUP = $(if $(DESTDIR),,$(shell [ "$$(id -u)" = 0 ] && \
                 getent group $(NAME) >/dev/null && echo "-g $(NAME)"))
install: all
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(UNITDIR)" \
	    "$(DESTDIR)$(SYSUSERSDIR)" "$(DESTDIR)$(TMPFILESDIR)" \
	    "$(DESTDIR)$(MANDIR)/man5" "$(DESTDIR)$(MANDIR)/man8"
	install -d -m 0750 $(CONF_GROUP) "$(DESTDIR)$(SYSCONFDIR)/$(NAME)"
	install -m 0755 $(B)/$(NAME) "$(DESTDIR)$(BINDIR)/$(NAME)"
	sed 's,/usr/bin/$(NAME),$(BINDIR)/$(NAME),g' systemd/$(NAME).service \
	    >"$(DESTDIR)$(UNITDIR)/$(NAME).service"
	install -m 0644 systemd/$(NAME).sysusers "$(DESTDIR)$(SYSUSERSDIR)/$(NAME).conf"
	install -m 0644 systemd/$(NAME).tmpfiles "$(DESTDIR)$(TMPFILESDIR)/$(NAME).conf"
	sed 's/@VERSION@/$(VERSION)/g' man/$(NAME).8 >"$(DESTDIR)$(MANDIR)/man8/$(NAME).8"
	sed 's/@VERSION@/$(VERSION)/g' man/$(NAME).conf.5 \
	    >"$(DESTDIR)$(MANDIR)/man5/$(NAME).conf.5"
	chmod 0644 "$(DESTDIR)$(UNITDIR)/$(NAME).service" \
	    "$(DESTDIR)$(MANDIR)/man8/$(NAME).8" \
	    "$(DESTDIR)$(MANDIR)/man5/$(NAME).conf.5"
	if [ -e "$(CONFFILE)" ]; then echo "keeping the existing $(CONFFILE)"; \
	else install -m 0640 $(CONF_GROUP) conf/$(NAME).conf "$(CONFFILE)"; fi

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/$(NAME)" \
	    "$(DESTDIR)$(UNITDIR)/$(NAME).service" \
	    "$(DESTDIR)$(SYSUSERSDIR)/$(NAME).conf" \
	    "$(DESTDIR)$(TMPFILESDIR)/$(NAME).conf" \
	    "$(DESTDIR)$(MANDIR)/man8/$(NAME).8" \
	    "$(DESTDIR)$(MANDIR)/man5/$(NAME).conf.5"
	if cmp -s conf/$(NAME).conf "$(CONFFILE)"; then rm -f "$(CONFFILE)"; \
	elif [ -e "$(CONFFILE)" ]; then echo "keeping the edited $(CONFFILE)"; fi
	rmdir "$(DESTDIR)$(SYSCONFDIR)/$(NAME)" 2>/dev/null || true

# The tree as it is (committed or not), without build/ and .git.
dist:
	mkdir -p $(PKGDIR)
	tar -czf $(DIST) --sort=name --owner=0 --group=0 --numeric-owner \
	    --exclude-vcs --exclude=./build --exclude=./$(B) \
	    --transform 's,^\.,$(NAME)-$(VERSION),' .

# After deps, never beside it: two apt-get runs would fight over the lock.
pkg-deps: deps
	$(MAKE) --no-print-directory deps DEB_PKGS="$(PKG_TOOLS)"

deb: pkg-deps dist
	rm -rf $(PKGDIR)/deb $(PKGDIR)/$(NAME)*.deb $(PKGDIR)/$(NAME)_*.changes \
	    $(PKGDIR)/$(NAME)_*.buildinfo
	mkdir -p $(PKGDIR)/deb
	tar -xzf $(DIST) -C $(PKGDIR)/deb
	cp -R $(PKGDIR)/deb/$(NAME)-$(VERSION)/packaging/debian \
	    $(PKGDIR)/deb/$(NAME)-$(VERSION)/debian
	cd $(PKGDIR)/deb/$(NAME)-$(VERSION) && \
	    $(CLEAN_ENV) dpkg-buildpackage -us -uc -b -Jauto
	mv $(PKGDIR)/deb/*.deb $(PKGDIR)/deb/*.changes $(PKGDIR)/deb/*.buildinfo \
	    $(PKGDIR)/
	lintian --fail-on error $(PKGDIR)/$(NAME)_*.changes

# --nodeps: the BuildRequires name RPM packages; Debian's rpm database is
# empty, and `make deps` installed their Debian equivalents.
rpm: pkg-deps dist
	rm -rf $(PKGDIR)/rpmbuild $(PKGDIR)/$(NAME)*.rpm
	mkdir -p $(PKGDIR)/rpmbuild/SOURCES
	cp $(DIST) $(PKGDIR)/rpmbuild/SOURCES/
	$(CLEAN_ENV) rpmbuild -bb --nodeps \
	    --define "_topdir $(abspath $(PKGDIR)/rpmbuild)" \
	    $(RPMBUILD_FLAGS) packaging/rpm/$(NAME).spec
	mv $(PKGDIR)/rpmbuild/RPMS/*/*.rpm $(PKGDIR)/

# The sd_notify socket stand-in for the systemd tests.
$(B)/tests/notify_listen: tests/notify/notify_listen.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(LDLIBS)
tests: $(B)/tests/notify_listen

# The hostile PBX of the slow-loris tests (200-229): stalls and trickles.
$(B)/tests/slowpbx: tests/slowpbx/slowpbx.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(DEP_LIBS) -lpthread $(LDLIBS)
tests: $(B)/tests/slowpbx

# The read-path tests' PBX (230-239): random TLS record boundaries; --stamp.
$(B)/tests/tlsplay: tests/tlsplay/tlsplay.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(DEP_LIBS) $(LDLIBS)
tests: $(B)/tests/tlsplay

.PHONY: install uninstall dist pkg-deps deb rpm

# Test helper for the start-up tests: a spool backlog of a given size.
tests: $(B)/tests/spoolgen
$(B)/tests/spoolgen: tests/spoolgen/spoolgen.c $(B)/libw2k.a | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(B)/libw2k.a $(DEP_LIBS) $(LDLIBS)

# Test helper for the partitioner test: Java's Utils.murmur2 partition.
tests: $(B)/tests/jmurmur2
$(B)/tests/jmurmur2: tests/lib/jmurmur2.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(LDLIBS)

# Test helper for tests 150-179: a strict Prometheus text-format parser.
tests: $(B)/tests/promparse
$(B)/tests/promparse: tests/lib/promparse.c | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    -lm $(LDLIBS)

# bench-spool: what the spool costs in throughput (README "Spool"). A
# benchmark, not a test; run it on the disk the spool will live on:
#   make bench-spool [BENCH_DIR=/var/lib/wsi2kafka/bench] [BENCH_RECORDS=N]
BENCH_DIR     ?= $(B)/bench/spool
BENCH_RECORDS ?= 200000
$(B)/bench/spool_bench: tests/bench/spool_bench.c $(B)/libw2k.a
	mkdir -p $(B)/bench
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(B)/libw2k.a $(DEP_LIBS) $(LDLIBS)
bench-spool: $(B)/bench/spool_bench
	$(B)/bench/spool_bench $(BENCH_DIR) $(BENCH_RECORDS)

# bench-norm: norm_frame() frames per CPU second, per event kind and for
# pbxsim's flood mix (README "Performance"); equal digests show that two
# builds print the same records.
#   make bench-norm [BENCH_SECONDS=N]
BENCH_SECONDS ?= 1
$(B)/bench/norm_bench: tests/bench/norm_bench.c $(B)/libw2k.a
	mkdir -p $(B)/bench
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(B)/libw2k.a $(DEP_LIBS) $(LDLIBS)
bench-norm: $(B)/bench/norm_bench
	$(B)/bench/norm_bench $(BENCH_SECONDS)

.PHONY: bench-spool bench-norm

# bench: the end-to-end benchmark (docs/performance.md). A release build of
# its own in build/bench, then tests/bench/bench.sh on loopback: pbxsim ->
# wsi2kafka -> kmock throughput per spool.fsync, the kcat -P ceiling,
# latency at fixed rates, peak RSS, CPU per event (per thread group too),
# instructions per event (callgrind), the drain of a spool, the real-broker
# comparison, plus the bench-spool and bench-norm numbers; a table on
# stdout and build/bench/results.json. Not part of `make check`. Knobs
# (BENCH_EVENTS, BENCH_STAGES — add "profile" for perf's CPU per module —,
# BENCH_DRAIN_RECORDS, BENCH_RATES, BENCH_STRICT=1, ...): see bench.sh.
BENCH_B = build/bench
BENCH_TOOLS = $(BENCH_B)/tests/pbxsim $(BENCH_B)/tests/kmock \
    $(BENCH_B)/bench/spool_bench \
    $(if $(wildcard tests/bench/norm_bench.c),$(BENCH_B)/bench/norm_bench)
bench: deps kafka
	$(MAKE) B=$(BENCH_B) SANITIZE= all $(BENCH_TOOLS)
	B=$(BENCH_B) tests/bench/bench.sh

# bench-tools: make bench's tools at its -O2, built by make check and
# check-trixie too: some of gcc's warnings (format truncation) need the
# optimizer, and the tests build at -O1.
bench-tools:
	$(MAKE) B=$(BENCH_B) SANITIZE= $(BENCH_TOOLS)

.PHONY: bench bench-tools
