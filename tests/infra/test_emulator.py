"""The CUDA emulator (tests/cuda_emu/) tested on its own, and proof that the emulated suite catches bugs.

(a) Self-tests with the emulator's own kernels (tests/cuda_emu/selftest_kernels.cu): barrier semantics
    (a kernel that needs __syncthreads is wrong without it), warp intrinsics against a reference of the
    CUDA semantics, atomics under concurrent blocks, poisoned dynamic shared memory, static shared
    memory per block, built-in index variables, misuse reported as errors, launch limits.
(b) Fault injection on copies of the project's real kernels (csrc/cuda/*.cu): each fault must make the
    conformance check against F.conv1d fail, while the unmodified kernels pass the same check.

Run: python -m pytest tests/infra/test_emulator.py  (builds into .emu_build/ on first use; see
support/emulated.py)
"""
from __future__ import annotations

import os

import emulated
import pytest
import torch
from causal_ref import check_causal_ops_quick
from conv_ref import make_operands, run_conv_ops

# Every op output starts as NaN (csrc/core/op_common.h), so an element a kernel never writes fails the check.
os.environ.setdefault("CONV1D_EXT_POISON_OUTPUTS", "1")

# The whole file is the emulator tier (`make test-emulated`), outside the quick CPU loop.
pytestmark = pytest.mark.emulated


@pytest.fixture(scope="module")
def st():
    return emulated.selftest_ops()


# ---------------------------------------------------------------------------------------------------
# (a) emulator self-tests


@pytest.mark.parametrize("n", [32, 64, 250, 1024])
def test_barrier_makes_shared_memory_exchange_correct(st, n):
    x = torch.randn(3, n)
    torch.testing.assert_close(st.reverse(x, 1), x.flip(1), rtol=0, atol=0)
    # Without the barrier some thread reads a slot that is still poisoned (NaN) or stale.
    assert not torch.equal(st.reverse(x, 0), x.flip(1))


@pytest.mark.parametrize("n", [32, 100, 256])
def test_missing_second_barrier_is_a_visible_race(st, n):
    x = torch.randn(5, n)
    expected = x.roll(-1, dims=1).sum(0)
    torch.testing.assert_close(st.tiled(x, 1), expected)
    assert not torch.allclose(st.tiled(x, 0), expected)


@pytest.mark.parametrize("threads", [64, 256])
def test_warp_running_ahead_exposes_scratch_reuse_race(st, threads):
    x = torch.randn(6, threads)
    torch.testing.assert_close(st.sums(x, 1), x.sum(1))
    assert not torch.allclose(st.sums(x, 0), x.sum(1))


POISON = -1  # a lane reading an inactive lane gets all-ones bytes: -1 as int32


def _warp_reference(x, op, param, width, mask):
    """CUDA semantics of the warp intrinsics (CUDA C++ Programming Guide, warp shuffle functions)."""
    n = len(x)
    out = []
    for t in range(n):
        lane, base = t % 32, t - t % 32
        if not (mask >> lane) & 1:
            out.append(-1)
            continue
        group = {p for p in range(32) if (mask >> p) & 1 and base + p < n}
        seg, in_seg = lane & ~(width - 1), lane & (width - 1)
        if op <= 3:
            if op == 0:
                src = seg + (param & (width - 1))
            elif op == 1:
                src = lane - param if param <= in_seg else lane
            elif op == 2:
                src = lane + param if in_seg + param < width else lane
            else:
                src = (lane ^ param) & 31
                src = lane if src >= seg + width else src
            out.append(x[base + src] if src in group else POISON)
        elif op == 4:
            out.append(sum(1 << p for p in group if x[base + p]))
        elif op == 5:
            out.append(int(any(x[base + p] for p in group)))
        elif op == 6:
            out.append(int(all(x[base + p] for p in group)))
        else:
            out.append(x[t])
    return out


WARP_CASES = [
    (op, param, width)
    for op, params in [(0, [0, 5, 31, 37]), (1, [1, 3, 16]), (2, [1, 2, 8, 16]), (3, [1, 4, 16, 31])]
    for param in params
    for width in [32, 16, 8, 4]
] + [(op, 0, 32) for op in (4, 5, 6, 7)]


@pytest.mark.parametrize("n", [64, 48])  # 48: the second warp is partial
@pytest.mark.parametrize("mask", [0xFFFFFFFF, 0x0000FFFF, 0x55555555])
@pytest.mark.parametrize("op,param,width", WARP_CASES)
def test_warp_intrinsics_follow_cuda_semantics(st, op, param, width, mask, n):
    g = torch.Generator().manual_seed(op * 1000 + param * 10 + width)
    if op >= 4:
        x = (torch.rand(n, generator=g) < 0.5).to(torch.int32)
        if op == 6:
            x[:16] = 1  # make "all" true for some masks
    else:
        x = torch.randint(0, 1000, (n,), generator=g, dtype=torch.int32)
    got = st.warp_op(x, op, param, width, mask - (1 << 32) if mask >= 1 << 31 else mask).tolist()
    assert got == _warp_reference(x.tolist(), op, param, width, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("blocks,threads", [(1, 32), (3, 256), (2, 96), (4, 1024)])
def test_shuffle_reduction_and_a_wrong_lane(st, dtype, blocks, threads):
    x = torch.randn(5000).to(dtype)
    idx = torch.arange(x.numel())
    expected = torch.stack([x.float()[(idx // threads) % blocks == b].sum() for b in range(blocks)])
    torch.testing.assert_close(st.block_sum(x, blocks, threads, 0).float(), expected,
                               rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-3)
    assert not torch.allclose(st.block_sum(x, blocks, threads, 1).float(), expected, rtol=1e-2, atol=1e-3)


def test_atomics_are_atomic_across_concurrent_blocks(st):
    blocks, threads = 64, 128
    with emulated.torch_threads(2):  # blocks on two OS threads at once
        counter, fsum, imax, cas, dsum = st.atomics(blocks, threads).tolist()
    total = blocks * threads
    assert (counter, fsum, imax, cas, dsum) == (total, total, total - 1, total, total / 2)


def test_dynamic_shared_memory_is_poisoned_at_every_block_start(st):
    out = st.smem_poison(16, 300)
    assert torch.isnan(out).all()


def test_static_shared_memory_is_poisoned_at_every_block_start(st):
    # buf[64] floats + other[3] doubles + the tiled and static_smem kernels' arrays, at least
    assert st.static_shared_poison_bytes() >= 64 * 4 + 3 * 8 + 256 * 4 + 129 * 4
    out = st.static_smem_poison(32)
    assert torch.isnan(out).all()


def test_static_shared_memory_belongs_to_its_block(st):
    blocks, threads = 64, 128
    out = st.static_smem(blocks, threads)
    t = torch.arange(threads)
    expected = torch.arange(blocks)[:, None] * 1000 + (t[None, :] + 1) % threads
    assert torch.equal(out, expected.int())


@pytest.mark.parametrize("grid,block", [((3, 2, 2), (5, 4, 3)), ((1, 1, 1), (1024, 1, 1)), ((70, 1, 1), (33, 1, 1))])
def test_builtin_index_variables(st, grid, block):
    out = st.ids(list(grid), list(block))
    rows = []
    for bz in range(grid[2]):
        for by in range(grid[1]):
            for bx in range(grid[0]):
                for tz in range(block[2]):
                    for ty in range(block[1]):
                        for tx in range(block[0]):
                            rows.append([bx, by, bz, tx, ty, tz, *block, *grid])
    assert torch.equal(out, torch.tensor(rows))


@pytest.mark.parametrize("kind,threads,message", [
    (0, 64, "divergent __syncthreads"),       # only part of the block reaches the barrier
    (1, 64, "divergent __syncthreads"),       # a thread exits before a barrier
    (2, 64, "divergent __syncthreads"),       # threads wait at two different barriers
    (3, 32, "named in the mask"),             # a shuffle names a lane that exited
    (4, 32, "not in the mask"),               # a lane calls a shuffle whose mask excludes it
    (5, 32, "divergent warp intrinsics"),     # lanes disagree on the mask
    (6, 32, r"__trap\(\)"),
    (7, 64, "deadlock"),                      # a shuffle while the rest of the warp waits at a barrier
])
def test_misuse_is_reported_not_computed(st, kind, threads, message):
    with pytest.raises(RuntimeError, match=message):
        st.misuse(kind, threads)
    st.misuse(8, threads)  # and the emulator is usable afterwards (kind 8: no-op)


@pytest.mark.parametrize("kind,message", [
    (0, None), (4, None),
    (1, "invalid launch configuration"), (2, "invalid launch configuration"),
    (3, "dynamic shared memory"),
])
def test_launch_limits_of_a_gpu(st, kind, message):
    if message is None:
        st.launch_config(kind)
    else:
        with pytest.raises(RuntimeError, match=message):
            st.launch_config(kind)


# ---------------------------------------------------------------------------------------------------
# (b) the project's kernels (csrc/cuda/*.cu) through the emulator, and faults injected into copies of them

FAMILIES = emulated.FAMILIES  # dispatch's choice, then each family forced
CASES = emulated.EDGE_CASES + emulated.random_cases(20, seed=0)


@pytest.fixture(scope="module")
def ops():
    ops = emulated.emulated_ops()
    assert ops._poison_outputs(), "the emulated library must NaN-poison its outputs in the tests"
    return ops


def test_every_cuda_kernel_conforms_and_runs(ops):
    emulated.kernel_launches(reset=True)
    failures = emulated.conformance_failures(ops, CASES, families=FAMILIES)
    assert not failures, "\n".join(failures[:20])
    check_causal_ops_quick(ops)
    launched = emulated.kernel_launches()
    assert emulated.project_kernels(), "no __global__ kernels found in csrc/cuda"
    assert emulated.unlaunched_kernels(launched) == [], f"kernels never launched; launched: {sorted(launched)}"


@pytest.mark.parametrize("dtype", emulated.DTYPES)
def test_results_do_not_depend_on_the_schedule(ops, dtype, monkeypatch):
    """The kernels promise bit-identical results run to run (no float atomics, fixed reduction order):
    another thread schedule (CUDA_EMU_SEED) and blocks on 1 or 2 OS threads must not change one bit."""
    cases = emulated.EDGE_CASES[:5] + emulated.random_cases(6, seed=3)

    run = run_conv_ops(ops)

    def run_all():
        outs = []
        for c in cases:
            outs += run(c, *make_operands(c, dtype, "cpu"))
        return outs

    with emulated.torch_threads(1):
        first = run_all()
    monkeypatch.setenv("CUDA_EMU_SEED", "987654321")
    with emulated.torch_threads(2):
        second = run_all()
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


# (name, file, text, replacement): each is a bug a kernel author could plausibly write.
FAULTS = [
    # An off-by-one in a bound: the position one past the input row is read instead of zero padding.
    ("bound_off_by_one", "csrc/cuda/gemm_problems.cuh",
     "(pos >= 0 && pos < p.in_len) ? to_acc(input[", "(pos >= 0 && pos <= p.in_len) ? to_acc(input["),
    # The one barrier per K step of the pipelined GEMM: the next tiles are stored into the other buffer
    # and must be complete before anyone reads them (RAW), and read by all before being overwritten (WAR).
    ("gemm_missing_syncthreads", "csrc/cuda/implicit_gemm.cuh",
     "if (has_next) store_step(buf ^ 1);\n    __syncthreads();\n", "if (has_next) store_step(buf ^ 1);\n"),
    # The barrier between staging the input span in shared memory and reading it (RAW).
    ("depthwise_missing_syncthreads", "csrc/cuda/depthwise.cu",
     "const int lead = stage_span(x_row, job.x_len, start, span, smem);\n        __syncthreads();",
     "const int lead = stage_span(x_row, job.x_len, start, span, smem);"),
    # A wrong shuffle lane in the warp reduction.
    ("wrong_shuffle_lane", "csrc/cuda/reductions.cuh",
     "v += __shfl_down_sync(0xffffffffu, v, offset);", "v += __shfl_down_sync(0xffffffffu, v, offset + 1);"),
    # The barrier protecting block_sum's scratch from the previous call's readers: only a schedule in
    # which one warp runs ahead of another shows this race.
    ("block_sum_missing_leading_syncthreads", "csrc/cuda/reductions.cuh",
     "__syncthreads();  // scratch may still be read by a previous call", ""),
    # The second pass of the two-pass reductions (split-K backward-weight, depthwise, bias, causal) drops
    # the last split.
    ("split_k_drops_last_partial", "csrc/cuda/reductions.cuh",
     "for (int64_t s = 0; s < splits; ++s) sum += partials",
     "for (int64_t s = 0; s + 1 < splits; ++s) sum += partials"),
    # The GEMM's reduction over batch x length stops one short: the last output position of the last
    # sample is missing from every grad_weight element (one term of batch * out_len).
    ("backward_weight_drops_last_position", "csrc/cuda/gemm_problems.cuh",
     "const int64_t k_total = p.batch * p.out_len;\n    zi.k_begin",
     "const int64_t k_total = p.batch * p.out_len - 1;\n    zi.k_begin"),
]


@pytest.mark.parametrize("name,path,old,new", FAULTS, ids=[f[0] for f in FAULTS])
def test_injected_fault_is_caught(ops, name, path, old, new):
    """Caught in float32 and, separately, in bfloat16 (whose tolerance is the loosest)."""
    faulty = emulated.faulty_ops(name, path, old, new)
    for dtype in (torch.float32, torch.bfloat16):
        failures = emulated.conformance_failures(faulty, CASES, dtypes=(dtype,), families=FAMILIES,
                                                 stop_at_first=True)
        assert failures, f"fault {name} in {path} was not caught by the conformance check in {dtype}"
