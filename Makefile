# rcstore: the two commands of the README, and a few more for developers.
#   make run    install what is missing, build, run rcstored on 127.0.0.1:7373,
#               durable in ./data (git-ignored)
#   make test   install what is missing, build, run the whole test suite
# Everything is driven through CMake presets (CMakePresets.json).

PACKAGES := cmake make gcc libc6-dev pkg-config libuv1-dev libmsgpack-dev \
            libcmocka-dev libedit-dev libinih-dev libmicrohttpd-dev libsystemd-dev libraft-dev \
            libssl-dev openssl \
            python3 python3-msgpack python3-yaml python3-cryptography \
            python3-prometheus-client python3-pytest python3-setuptools python3-pip python3-venv
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

FUZZ_SECONDS ?= 30
SOAK_SECONDS ?= 600

.PHONY: all deps deps-format deps-fuzz deps-valgrind build run test test-fast test-asan asan \
        test-tsan tsan debug \
        fuzz valgrind soak format format-check clean

all: build

# Installs only what dpkg reports missing; needs root (or sudo) only then.
# $(1): the packages.
define install_missing
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(PACKAGES))

deps-format:
	$(call install_missing,clang-format)

deps-fuzz:
	$(call install_missing,clang libclang-rt-14-dev)

deps-valgrind:
	$(call install_missing,valgrind)

build/CMakeCache.txt: | deps
	cmake --preset release

build: deps build/CMakeCache.txt
	cmake --build --preset release -j $(JOBS)

run: build
	./build/server/rcstored --listen tcp://127.0.0.1:7373 --data-dir data

test: build
	ctest --preset release -j $(JOBS)

# The suite without the tests labelled slow (the million-object ones).
test-fast: build
	ctest --preset release -j $(JOBS) -LE slow

# The asan+ubsan build, with -Werror, running the unit and integration tests.
build-asan/CMakeCache.txt: | deps
	cmake --preset asan

asan: deps build-asan/CMakeCache.txt
	cmake --build --preset asan -j $(JOBS)

test-asan: asan
	ctest --preset asan -j $(JOBS) -L 'unit|integration'

# ThreadSanitizer: rcstored and the thread test of librcstore (several clients
# on several threads), nothing else, to keep CI short.
build-tsan/CMakeCache.txt: | deps
	cmake --preset tsan

tsan: deps build-tsan/CMakeCache.txt
	cmake --build --preset tsan -j $(JOBS)

test-tsan: tsan
	ctest --preset tsan -j $(JOBS)

# libFuzzer targets (clang, ASan, UBSan), each run for FUZZ_SECONDS.
fuzz: deps deps-fuzz
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)
	bash tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# Every unit test under valgrind memcheck, without the pool allocator.
valgrind: deps deps-valgrind
	cmake --preset valgrind
	cmake --build --preset valgrind -j $(JOBS)
	bash tests/valgrind.sh build-valgrind

# A long mixed run with disconnects, lease expiries and hand-offs; not in CI.
soak: build
	/usr/bin/python3 tests/soak/soak.py build $(SOAK_SECONDS)

debug: deps
	cmake --preset debug && cmake --build --preset debug -j $(JOBS)

format: deps-format
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check: deps-format
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-debug build-asan build-tsan build-fuzz build-valgrind
