# One-command entry points (see README). Each target sets everything up from a clean clone first.
#
# Python: the active virtual environment ($VIRTUAL_ENV) if there is one, else the project's .venv, created
# on first use, so nothing is installed into the system Python (Debian/Ubuntu refuse that: PEP 668).
BASE_PYTHON ?= python3
VENV ?= $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
PYTHON := $(VENV)/bin/python
# torch 2.14.1 is the build this project is developed and tested with (CUDA 13.0 build from PyPI).
TORCH_SPEC ?= torch==2.14.1
export MAX_JOBS ?= 2
ARGS ?=

# The requirements are listed once, in pyproject.toml (build-system.requires and the "dev" extra); they
# are installed once per environment and torch spec, and again when pyproject.toml changes.
DEPS_STAMP := $(VENV)/.conv1d_ext-deps-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d' ' -f1)
READ_REQUIREMENTS := import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	reqs = p["build-system"]["requires"] + p["project"]["optional-dependencies"]["dev"]; \
	print(" ".join(r for r in reqs if not r.startswith("torch")))

.PHONY: setup build test test-cpu test-emulated test-slow test-edge-torch test-sanitize test-sanitize-cpu \
	test-sanitize-emulated lint lint-ruff lint-cxx format bench clean

$(PYTHON):
	$(BASE_PYTHON) -m venv $(VENV)

$(DEPS_STAMP): pyproject.toml | $(PYTHON)
	$(PYTHON) -m pip install -q "$(TORCH_SPEC)" $$($(PYTHON) -c '$(READ_REQUIREMENTS)')
	touch $@

# An editable install whose objects persist in build/temp: a rebuild compiles only what changed.
build: $(DEPS_STAMP)
	$(PYTHON) -m pip install -q --no-build-isolation --no-deps -e .

setup: build
	$(PYTHON) -c "import conv1d_ext; print(conv1d_ext.build_info())"

test: setup
	$(PYTHON) -m pytest -q tests

# The quick loops: the CPU kernels and Python API only (no emulator, no torch.compile, no child
# processes), or the emulated CUDA kernels only.
test-cpu: setup
	$(PYTHON) -m pytest -q tests -m "not emulated and not compile and not subprocess and not faults" $(ARGS)

test-emulated: setup
	$(PYTHON) -m pytest -q tests -m emulated $(ARGS)

# By hand, not in CI: tensors of more than 2^31 elements (≈4.5 min and ≈9 GB of memory on 2 cores).
test-slow: setup
	$(PYTHON) -m pytest -q tests -m slow $(ARGS)

# The quick tier against the other edge of the supported torch range (docs/compatibility.md: 2.11 to 2.15): torch 2.11.0,
# the GPU machines' torch, in its own environment and a copy of the tree (so the main build is untouched).
# The CUDA sources are built too wherever the main build builds them (CONV1D_EXT_CUDA, default auto), so
# the GPU machines' build is checked here; the tests are the CPU ones.
EDGE_TORCH_SPEC ?= torch==2.11.0
EDGE_VENV ?= $(CURDIR)/.venv-edge
EDGE_TREE := $(CURDIR)/build/edge-tree

test-edge-torch:
	test -x $(EDGE_VENV)/bin/python || $(BASE_PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install -q "$(EDGE_TORCH_SPEC)" $$($(EDGE_VENV)/bin/python -c '$(READ_REQUIREMENTS)')
	rm -rf $(EDGE_TREE) && mkdir -p $(EDGE_TREE)
	git ls-files -z | xargs -0 tar -c --ignore-failed-read 2>/dev/null | tar -x -C $(EDGE_TREE)
	cd $(EDGE_TREE) && $(EDGE_VENV)/bin/python setup.py -q build_ext --inplace
	cd $(EDGE_TREE) && $(EDGE_VENV)/bin/python -c "import conv1d_ext; print(conv1d_ext.build_info())"
	cd $(EDGE_TREE) && $(EDGE_VENV)/bin/python -m pytest -q tests \
		-m "not emulated and not compile and not subprocess and not faults" $(ARGS)

# The sanitizer tier (docs/testing.md, Sanitizers): the extension (CPU sources) and the emulated CUDA library built with
# ASan + UBSan in a copy of the tree (objects kept between runs; the main build is untouched), then the
# quick tier under them in two parallel streams, the CPU kernels and the emulated CUDA kernels.
SANITIZE ?= address,undefined
SAN_TREE := $(CURDIR)/build/sanitize-tree
# The sanitizer runtime and libstdc++ preloaded, leaks not checked (why: tests/support/emulated.py
# sanitizer_env()), UBSan reports with a stack.
SAN_ENV = cd $(SAN_TREE) && env -u CONV1D_EXT_EXPECT_CUDA CONV1D_EXT_SANITIZE=$(SANITIZE) CONV1D_EXT_CUDA=0 \
	LD_PRELOAD=$$(g++ -print-file-name=libasan.so):$$(g++ -print-file-name=libstdc++.so) \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 CONV1D_EXT_TEST_SCALE=0.3
# --capture=sys: a sanitizer report reaches the log (pytest's fd capture would drop it with the process).
SAN_PYTEST = $(PYTHON) -m pytest -q -p no:cacheprovider --capture=sys
SAN_CPU = -m "not emulated and not compile and not subprocess and not cuda"
SAN_CAUSAL = tests/ops/test_causal_ops.py::test_ops_match_pytorch tests/ops/test_causal_ops.py::test_decode_loop_ops

test-sanitize: $(DEPS_STAMP)
	mkdir -p $(SAN_TREE) && cd $(SAN_TREE) && rm -rf csrc tests conv1d_ext/*.py
	git ls-files -z | xargs -0 tar -c --ignore-failed-read 2>/dev/null | tar -x -C $(SAN_TREE)
	cd $(SAN_TREE) && CONV1D_EXT_SANITIZE=$(SANITIZE) CONV1D_EXT_CUDA=0 $(PYTHON) setup.py -q build_ext --inplace
	cd $(SAN_TREE) && CONV1D_EXT_SANITIZE=$(SANITIZE) $(PYTHON) -c \
		'import sys; sys.path.insert(0, "tests/support"); import emulated; emulated.emulated_library()'
	$(MAKE) -j2 --output-sync=target test-sanitize-cpu test-sanitize-emulated

# Every op and dtype on the CPU kernels: the families dispatch picks by shape, then the direct kernels
# forced, then the baseline ISA's build; the error cases; the planted out-of-bounds reads.
test-sanitize-cpu:
	$(SAN_ENV) $(SAN_PYTEST) $(SAN_CPU) tests/ops/test_conv1d_ops.py $(SAN_CAUSAL) \
		tests/robustness/test_errors.py tests/robustness/test_sanitize.py $(ARGS)
	$(SAN_ENV) CONV1D_EXT_CPU_KERNELS=direct $(SAN_PYTEST) $(SAN_CPU) tests/ops/test_conv1d_ops.py \
		-k match_pytorch $(ARGS)
	$(SAN_ENV) CONV1D_EXT_CPU_ISA=default $(SAN_PYTEST) $(SAN_CPU) tests/ops/test_conv1d_ops.py $(SAN_CAUSAL) \
		-k match_pytorch $(ARGS)

# Every emulated CUDA kernel in every dtype and family (tests/robustness/test_sanitize.py), and the causal
# ops.
test-sanitize-emulated:
	$(SAN_ENV) $(SAN_PYTEST) -m emulated tests/robustness/test_sanitize.py $(SAN_CAUSAL) $(ARGS)

# The house style: ruff (pyproject.toml) and clang-format (.clang-format), the versions pyproject.toml pins.
# .pre-commit-config.yaml runs the same two checks on the files being committed (lint-ruff / lint-cxx with
# FILES=...) and .ci/commit_msg.py on the commit message (docs/testing.md, Contributing).
CXX_SOURCES = $(filter-out %.md,$(shell git ls-files 'csrc/*.h' 'csrc/*.cpp' 'csrc/*.cu' 'csrc/*.cuh' \
	'tests/cuda_emu/*' 'tests/cpu_faults/*'))
RUFF = $(PYTHON) -m ruff
CLANG_FORMAT = $(VENV)/bin/clang-format
FILES ?=

lint: $(DEPS_STAMP)
	$(RUFF) check .
	$(CLANG_FORMAT) --dry-run --Werror $(CXX_SOURCES)

lint-ruff:
	$(RUFF) check $(or $(FILES),.)

lint-cxx:
	$(CLANG_FORMAT) --dry-run --Werror $(or $(FILES),$(CXX_SOURCES))

format: $(DEPS_STAMP)
	$(RUFF) check --fix .
	$(CLANG_FORMAT) -i $(CXX_SOURCES)

bench: setup
	$(PYTHON) benchmarks/bench.py $(ARGS)

clean:
	rm -rf build *.egg-info conv1d_ext/*.so .emu_build .venv-edge
