# Convenience targets around CMake and the test runners. `make test` is the whole suite.
BUILD ?= build
ASAN_BUILD ?= build-asan
PY ?= /usr/bin/python3
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPT_WERROR=ON

.PHONY: all build test unit integration asan asan-test fuzz soak format format-check bench clean quickstart

all: build

build:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure

integration: build
	PORTICO_BIN=$(abspath $(BUILD))/portico $(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

# Every test: unit tests (CTest), then the integration suite (pytest) against the real binary.
test: unit integration

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer (clang).
asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DPT_WERROR=ON -DPT_SANITIZE=address,undefined >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

asan-test: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure
	PORTICO_BIN=$(abspath $(ASAN_BUILD))/portico PORTICO_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

fuzz:
	bash tests/fuzz/run.sh

# The sanitized binary under mixed good and hostile traffic for SOAK_SECONDS (tests/soak/soak.sh).
SOAK_SECONDS ?= 60
soak: asan
	bash tests/soak/soak.sh $(SOAK_SECONDS)

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

format-check:
	clang-format --dry-run --Werror $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

bench: build
	bash bench/run.sh

quickstart:
	bash scripts/quickstart.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
