#!/usr/bin/env python3
"""conv1d_ext against F.conv1d, same process, same inputs, over conv1d shapes taken from real models.

For every (dtype, shape, mode) it checks our results (output; with --modes fwdbwd also grad_input,
grad_weight, grad_bias) against F.conv1d, then times both sides interleaved, and reports time, speedup,
GFLOP/s and GB/s beside this machine's measured ceilings. Writes a CSV, a PNG plot and a markdown table
to benchmarks/out/ (--out); only --update-results also copies them to the committed benchmarks/results/.

  python benchmarks/bench.py                      # full sweep on the present device (cuda if available)
  python benchmarks/bench.py --quick              # tiny shapes, smoke test of the whole pipeline
  python benchmarks/bench.py --device cpu --dtypes float32 --shapes dw_,dense
  python benchmarks/bench.py --self-test-against-torch   # "ours" = F.conv1d (harness check: ~1.0x)
  python benchmarks/bench.py --update-results     # full sweep, then refresh benchmarks/results/

This file is the entry point only; the benchmark is the conv1d_bench package beside it (its __init__
lists the modules; the sweep's shapes are data in conv1d_bench/shapes.py). It re-executes itself first
when the glibc malloc settings are missing (conv1d_bench/malloc_env.py), before torch is loaded.
"""

import sys

from conv1d_bench import malloc_env

if __name__ == "__main__":
    malloc_env.reexec_with_malloc_env(__file__)
    from conv1d_bench.cli import main

    sys.exit(main())
