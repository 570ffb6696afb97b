# One-command entry points (see README). Each target sets everything up from a clean clone first.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# torch 2.14.1 is the build this project is developed and tested with (CUDA 13.0 build from PyPI).
TORCH_SPEC ?= torch==2.14.1
export MAX_JOBS ?= 2

.PHONY: setup test bench emulated clean

setup:
	$(PIP) install -q "$(TORCH_SPEC)" ninja pytest hypothesis numpy expecttest matplotlib tqdm
	$(PIP) install -q --no-build-isolation -e .
	$(PYTHON) -c "import conv1d_ext; print(conv1d_ext.build_info())"

test: setup
	$(PYTHON) -m pytest -q tests

bench: setup
	$(PYTHON) benchmarks/bench.py

clean:
	rm -rf build *.egg-info conv1d_ext/*.so .emu_build
