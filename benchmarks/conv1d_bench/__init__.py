"""conv1d_ext against F.conv1d: the benchmark behind benchmarks/bench.py.

  shapes    the sweep (named shape records) and its --quick derivation; dtype names
  cases     one (shape, dtype, mode): inputs, check against F.conv1d, timing -> a result row
  checking  tolerances and the normalized error of each result tensor
  timing    CPU and CUDA timers that interleave the two sides
  machine   the device under test: description, ceilings (start and end of the run), peaks per dtype
  ceilings  the ceiling measurements themselves (FMA loop, copy rate, GPU datasheets)
  report    console lines, CSV, markdown, PNG
  cli       the command line: sweep loop, outputs
  malloc_env  glibc malloc settings, applied by re-executing the entry point before torch loads

Nothing here imports torch at package import time, so bench.py can re-execute itself first.
"""
