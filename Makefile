# orderflow: build, run and test. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := build

JOBS            ?= 2
BUILD_TYPE      ?= RelWithDebInfo
ASAN_BUILD_TYPE ?= Debug
PYTHON          ?= python3
VENV            := .venv
PYTEST          := $(VENV)/bin/pytest
PYTEST_ARGS     ?=
CTEST_ARGS      ?=
SYSTEM_TESTS    := tests/system

# Sanitizer settings for everything run from build-asan (the system-test
# harness sets the same for the services it starts).
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: help build asan deps up down test unit unit-asan system system-asan \
        bench fuzz fuzz-replay chaos valgrind venv clean distclean

# libFuzzer: seconds per target and targets run at once. make test runs a
# short pass (FUZZ_CI_SECONDS); make fuzz the long one.
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 10
FUZZ_JOBS       ?= 2

help:
	@echo "make build        release build (RelWithDebInfo) in build/"
	@echo "make asan         ASan+UBSan build in build-asan/ (-DOF_SANITIZE=ON)"
	@echo "make deps         install missing Debian packages, build librdkafka 2.3.0, fetch the Kafka jars"
	@echo "make up / down    start / stop the local stack (PostgreSQL, Kafka, services;"
	@echo "                  OF_KAFKA_NODES=3 OF_INVENTORY_REPLICAS=2 ...: a cluster, replicas)"
	@echo "make test         everything CI runs: deps, both builds, unit + system tests"
	@echo "make unit         CTest unit tests in build/ (unit-asan: in build-asan/)"
	@echo "make system       pytest system tests against build/bin (system-asan: build-asan/bin)"
	@echo "make venv         .venv with tests/system/requirements.txt"
	@echo "make fuzz         libFuzzer, FUZZ_SECONDS (60) per target (fuzz-replay: seeds only)"
	@echo "make valgrind     memcheck the services under a subset of the system tests"
	@echo "make chaos        5,000-payment chaos run (figures in bench/results/chaos-latest.json)"
	@echo "make bench        benchmarks (bench/run)"
	@echo "make clean        remove build dirs (distclean: also .venv and var/, after make down)"

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build build -j$(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=$(ASAN_BUILD_TYPE) -DOF_SANITIZE=ON
	cmake --build build-asan -j$(JOBS)

deps:
	deploy/install-deps.sh
	deploy/librdkafka.sh build
	deploy/kafka.sh fetch

up:
	deploy/up.sh

down:
	deploy/down.sh

venv: $(VENV)/.installed

$(VENV)/.installed: $(SYSTEM_TESTS)/requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r $(SYSTEM_TESTS)/requirements.txt
	@touch $@

unit: build
	ctest --test-dir build --output-on-failure $(CTEST_ARGS)

unit-asan: asan
	$(ASAN_ENV) ctest --test-dir build-asan --output-on-failure $(CTEST_ARGS)

system: build venv
	OF_BIN_DIR=build/bin $(PYTEST) $(SYSTEM_TESTS) $(PYTEST_ARGS)

system-asan: asan venv
	OF_BIN_DIR=build-asan/bin $(ASAN_ENV) $(PYTEST) $(SYSTEM_TESTS) $(PYTEST_ARGS)

# Sequential on purpose: deps must be in place before anything builds.
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory venv
	@echo "==> unit tests (build)"
	ctest --test-dir build --output-on-failure $(CTEST_ARGS)
	@echo "==> unit tests (build-asan)"
	$(ASAN_ENV) ctest --test-dir build-asan --output-on-failure $(CTEST_ARGS)
	@echo "==> system tests (build/bin; the slow fault tests run in the ASan pass)"
	OF_BIN_DIR=build/bin $(PYTEST) $(SYSTEM_TESTS) -m "not slow" $(PYTEST_ARGS)
	@echo "==> system tests (build-asan/bin)"
	OF_BIN_DIR=build-asan/bin $(ASAN_ENV) $(PYTEST) $(SYSTEM_TESTS) $(PYTEST_ARGS)
	@echo "==> fuzz (libFuzzer, $(FUZZ_CI_SECONDS) s per target, regressions replayed)"
	FUZZ_JOBS=$(FUZZ_JOBS) fuzz/run $(FUZZ_CI_SECONDS)

bench:
	@if [ -x bench/run ]; then bench/run; else echo "bench/run not present"; fi

fuzz:
	FUZZ_JOBS=$(FUZZ_JOBS) fuzz/run $(FUZZ_SECONDS)

fuzz-replay:
	fuzz/run 0

# memcheck on the services of a subset of the system tests (slow: ~15 min);
# zero errors and zero definite leaks, or the tests fail.
VALGRIND_TESTS ?= tests/system/test_payment_gw.py tests/system/test_inventory.py tests/system/test_notify.py
VALGRIND_PYTEST_ARGS ?= -k 'not test_breaker_opens_and_closes'
valgrind: build venv
	OF_BIN_DIR=build/bin OF_VALGRIND=1 $(PYTEST) $(VALGRIND_TESTS) --timeout=900 $(VALGRIND_PYTEST_ARGS)

# The long chaos run: 5,000 payments under 13 faults (docs/RELIABILITY.md);
# figures also go to bench/results/chaos-latest.json.
chaos: build venv
	OF_CHAOS_FULL=1 OF_BIN_DIR=build/bin $(PYTEST) $(SYSTEM_TESTS)/test_chaos.py -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf build build-asan

distclean: clean
	@if compgen -G 'var/run/*.pid' >/dev/null || compgen -G 'var/kafka/kafka.pid' >/dev/null \
		|| compgen -G 'var/kafka/node-*/kafka.pid' >/dev/null; then \
		echo "run 'make down' first"; exit 1; fi
	rm -rf $(VENV) var
