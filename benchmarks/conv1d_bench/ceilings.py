"""This machine's measured ceilings, for putting benchmark numbers in context.

CPU: an FMA-bound loop (12 independent AVX2 FMA chains per thread, one thread per core; Zen 3 has two FMA
pipes of latency 4, so 8 chains would already saturate it) and a scale loop over 256 MB (read + write);
on CPUs with AVX512-BF16 also a bfloat16 dot-product loop (12 vdpbf16ps zmm chains per thread: 32
multiply-adds each), the ceiling of the bfloat16 kernels of that build.
The FMA loop is a few lines of C compiled once with the system C compiler and loaded with ctypes: no torch
headers, so it builds in about a second instead of the minute a torch extension takes here.

CUDA: a large device-to-device copy (read + write) and the card's datasheet limits.
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

_FMA_SOURCE = r"""
#include <immintrin.h>
#include <pthread.h>
#include <time.h>

typedef struct { long iters; float result; } job_t;

/* 12 independent accumulator chains: each FMA depends only on its own chain's previous value. */
__attribute__((target("avx2,fma"))) static void* fma_job(void* arg) {
  job_t* job = (job_t*)arg;
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps(1.00f), a1 = _mm256_set1_ps(1.01f), a2 = _mm256_set1_ps(1.02f);
  __m256 a3 = _mm256_set1_ps(1.03f), a4 = _mm256_set1_ps(1.04f), a5 = _mm256_set1_ps(1.05f);
  __m256 a6 = _mm256_set1_ps(1.06f), a7 = _mm256_set1_ps(1.07f), a8 = _mm256_set1_ps(1.08f);
  __m256 a9 = _mm256_set1_ps(1.09f), a10 = _mm256_set1_ps(1.10f), a11 = _mm256_set1_ps(1.11f);
  for (long i = 0; i < job->iters; ++i) {
    a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
    a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
    a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  job->result = out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
  return 0;
}

/* The same with vdpbf16ps on zmm: 16 lanes x 2 bfloat16 products per instruction. */
__attribute__((target("avx512f,avx512bf16"))) static void* dot_job(void* arg) {
  job_t* job = (job_t*)arg;
  const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  __m512 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm512_set1_ps(1.0f + 0.01f * k);
  for (long i = 0; i < job->iters; ++i) {
    a[0] = _mm512_dpbf16_ps(a[0], x, y); a[1] = _mm512_dpbf16_ps(a[1], x, y); a[2] = _mm512_dpbf16_ps(a[2], x, y);
    a[3] = _mm512_dpbf16_ps(a[3], x, y); a[4] = _mm512_dpbf16_ps(a[4], x, y); a[5] = _mm512_dpbf16_ps(a[5], x, y);
    a[6] = _mm512_dpbf16_ps(a[6], x, y); a[7] = _mm512_dpbf16_ps(a[7], x, y); a[8] = _mm512_dpbf16_ps(a[8], x, y);
    a[9] = _mm512_dpbf16_ps(a[9], x, y); a[10] = _mm512_dpbf16_ps(a[10], x, y); a[11] = _mm512_dpbf16_ps(a[11], x, y);
  }
  float s = 0.f;
  for (int k = 0; k < 12; ++k) s += _mm512_reduce_add_ps(a[k]);
  job->result = s;
  return 0;
}

int dot_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

int fma_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static double run_jobs(void* (*job_fn)(void*), int threads, long iters, double flops_per_iter);

/* GFLOP/s of `threads` threads each running `iters` iterations (12 chains x 8 lanes x 2 flops). */
double fma_gflops(int threads, long iters) { return run_jobs(fma_job, threads, iters, 12.0 * 8.0 * 2.0); }

/* The same for the dot-product loop (12 chains x 16 lanes x 2 products x 2 flops). */
double dot_gflops(int threads, long iters) { return run_jobs(dot_job, threads, iters, 12.0 * 16.0 * 4.0); }

static double run_jobs(void* (*job_fn)(void*), int threads, long iters, double flops_per_iter) {
  pthread_t tid[256];
  job_t jobs[256];
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int t = 0; t < threads; ++t) {
    jobs[t].iters = iters;
    pthread_create(&tid[t], 0, job_fn, &jobs[t]);
  }
  float sink = 0.f;
  for (int t = 0; t < threads; ++t) { pthread_join(tid[t], 0); sink += jobs[t].result; }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double sec = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  if (sink == 12345.f) sec += 1e-12; /* keep the results alive */
  return (double)threads * iters * flops_per_iter / sec * 1e-9;
}
"""


def _fma_library():
    """Compile (once, cached by source hash) and load the FMA loop; None when no compiler/AVX2."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None, "no C compiler found"
    digest = hashlib.sha1(_FMA_SOURCE.encode()).hexdigest()[:12]
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "conv1d_ext_bench")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError:
        cache = tempfile.gettempdir()
    lib = os.path.join(cache, f"fma_{digest}.so")
    if not os.path.exists(lib):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "fma.c")
            with open(src, "w") as f:
                f.write(_FMA_SOURCE)
            tmp_lib = os.path.join(tmp, "fma.so")
            r = subprocess.run(
                [cc, "-O2", "-shared", "-fPIC", "-pthread", src, "-o", tmp_lib],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                return None, f"compile failed: {r.stderr.strip()[:200]}"
            shutil.move(tmp_lib, lib)
    so = ctypes.CDLL(lib)
    so.fma_gflops.restype = ctypes.c_double
    so.fma_gflops.argtypes = [ctypes.c_int, ctypes.c_long]
    so.fma_supported.restype = ctypes.c_int
    so.dot_gflops.restype = ctypes.c_double
    so.dot_gflops.argtypes = [ctypes.c_int, ctypes.c_long]
    so.dot_supported.restype = ctypes.c_int
    if not so.fma_supported():
        return None, "CPU has no AVX2+FMA"
    return so, "ok"


def cpu_fma_gflops(threads, seconds=0.08, tries=8):
    """Best of `tries` short runs of the FMA loop on `threads` threads (short and many, so that one of them
    finds the cores free on a shared machine); (GFLOP/s or None, note)."""
    try:
        so, note = _fma_library()
    except OSError as e:  # loading failed
        return None, str(e)
    if so is None:
        return None, note
    rate = so.fma_gflops(threads, 2_000_000)  # warm up, estimate
    iters = max(1_000_000, int(rate * 1e9 * seconds / (threads * 192)))
    return max(so.fma_gflops(threads, iters) for _ in range(tries)), "12 AVX2 FMA chains per thread"


def cpu_bf16_dot_gflops(threads, seconds=0.08, tries=8):
    """Best of `tries` short runs of the vdpbf16ps loop; None where the CPU has no AVX512-BF16."""
    try:
        so, _ = _fma_library()
    except OSError:
        return None
    if so is None or not so.dot_supported():
        return None
    rate = so.dot_gflops(threads, 1_000_000)
    iters = max(500_000, int(rate * 1e9 * seconds / (threads * 768)))
    return max(so.dot_gflops(threads, iters) for _ in range(tries))


def cpu_scale_gbps(torch, mbytes=256, seconds=0.3):
    """out = a * s over `mbytes` MB of float32 with torch's own threads; GB/s counting read + write."""
    from torch.utils import benchmark

    n = mbytes * 1024 * 1024 // 4
    a = torch.ones(n)
    out = torch.empty_like(a)
    torch.mul(a, 1.5, out=out)  # fault the pages in
    t = benchmark.Timer(
        "torch.mul(a, 1.5, out=out)",
        globals={"torch": torch, "a": a, "out": out},
        num_threads=torch.get_num_threads(),
    )
    sec = min(t.blocked_autorange(min_run_time=seconds).times)  # best block: the machine is shared
    return 2 * n * 4 / sec / 1e9


def cuda_copy_gbps(torch, mbytes=1024, reps=20):
    """Device-to-device copy of `mbytes` MB; GB/s counting read + write."""
    n = mbytes * 1024 * 1024 // 4
    a = torch.ones(n, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    sec = start.elapsed_time(end) / 1e3 / reps
    del a, b
    torch.cuda.empty_cache()
    return 2 * n * 4 / sec / 1e9


# Datasheet limits (dense, no sparsity): HBM GB/s and TFLOP/s per kind of math (fp32/fp64: CUDA cores,
# *_tc: tensor cores).
_GPU_SPECS = [
    # (substring of the device name, label, {key: value})
    (
        "H200",
        "H200 SXM",
        {"gbps": 4800, "fp32": 67, "tf32_tc": 495, "bf16_tc": 989, "fp16_tc": 989, "fp64": 34},
    ),
    (
        "H100 PCIe",
        "H100 PCIe",
        {"gbps": 2000, "fp32": 51, "tf32_tc": 378, "bf16_tc": 756, "fp16_tc": 756, "fp64": 26},
    ),
    (
        "H100",
        "H100 SXM",
        {"gbps": 3350, "fp32": 67, "tf32_tc": 495, "bf16_tc": 989, "fp16_tc": 989, "fp64": 34},
    ),
    (
        "A100",
        "A100 SXM",
        {"gbps": 2039, "fp32": 19.5, "tf32_tc": 156, "bf16_tc": 312, "fp16_tc": 312, "fp64": 9.7},
    ),
]


def gpu_spec(name):
    for key, label, spec in _GPU_SPECS:
        if key in name:
            return label, spec
    return None, {}
