# wsi2kafka — one non-recursive GNU Makefile (see README "Building").
#
#   make            build build/wsi2kafka
#   make deps       install missing Debian packages (apt-get; sudo when not root)
#   make check      deps, then build with ASan+UBSan and run every test
#   make demo       deps, build, run the daemon against pbxsim + kmock
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
DEB_PKGS  = build-essential pkg-config libwebsockets-dev libssl-dev \
            libcjson-dev librdkafka-dev libconfig-dev libsystemd-dev \
            libcmocka-dev kcat openssl jq clang libclang-rt-14-dev
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
ALL_CPPFLAGS = -Iinclude -DW2K_VERSION=\"$(VERSION)\" -D_GNU_SOURCE \
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

# Unit tests: one cmocka driver per module, linked against the real modules.
$(B)/tests/test_%: tests/unit/test_%.c $(B)/libw2k.a | $(B)/tests
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< \
	    $(B)/libw2k.a $(DEP_LIBS) -lcmocka $(LDLIBS)

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
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) | $(B)/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
	    -Wall -Wextra -Werror $(ALL_CPPFLAGS) $(DEP_CFLAGS) -o $@ $< \
	    $(FUZZ_SRC) $(DEP_LIBS)

fuzz-build: $(FUZZ)

# make fuzz FUZZ_SECONDS=N: run every target for N seconds on its corpus.
fuzz: deps
	$(MAKE) fuzz-build
	for f in $(FUZZ); do n=$${f##*/}; mkdir -p $(B)/corpus/$$n; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $(B)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; done

$(B)/obj $(B)/tests $(B)/fuzz:
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
check: deps
	$(MAKE) B=build/san SANITIZE=address,undefined CFLAGS="-O1 -g" tests fuzz-build
	B=build/san tests/run

demo: deps
	$(MAKE) all tests
	B=$(B) tests/demo.sh

clean:
	rm -rf build

.PHONY: all tests deps check demo clean fuzz fuzz-build
