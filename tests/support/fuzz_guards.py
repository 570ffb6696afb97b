"""The hostile-argument fuzz's shared pieces (robustness/test_fuzz_*.py): the hostile integers (near 2^31,
2^32, 2^62, 2^63 - 1, past int64), tensors in hostile layouts (channels-last, expanded, storage offset,
overlapping, strided views) with the whole storage behind them, and the guards each call runs under: time,
resident memory (Guarded), inputs unmodified (the whole storage compared), the exception type PyTorch
raises, conv_ref's tolerance with no NaN poison left, and a cap on the process's data segment while a fuzz
test runs (memory_cap, autouse in each fuzz module)."""

import re
import time

import pytest
import torch
from conv_ref import output_rounding, tolerance
from hypothesis import assume
from hypothesis import strategies as st

INT64_MAX = 2**63 - 1
MID = [2**16 + 1, 2**17, 2**20 - 1]  # padding beyond the kernels' compact-geometry rule, still cheap
HUGE = [2**31 - 1, 2**31, 2**31 + 1, 2**32, 2**32 + 1, 2**40 + 3, 2**61, 2**62 - 1, 2**62, 2**62 + 1, INT64_MAX]
PAST_INT64 = [2**63, 2**64, -(2**63) - 1]
# Outputs this test computes for real; bigger ones are skipped unless no allocator could hold them
# (then both sides must fail to allocate, cleanly).
MAX_COMPUTED_NUMEL = 1 << 16
IMPOSSIBLE_BYTES = 1 << 40  # more than RAM + swap: malloc refuses at once
# Extra resident memory one call may take beyond its tensors (scratch rows, OpenMP stacks, allocator).
MAX_EXTRA_BYTES = 64 << 20
MAX_SECONDS = 20.0  # a call on these tiny tensors that takes longer is a hang


def _hostile_int(small_lo=1):
    return st.one_of(st.integers(small_lo, 3), st.integers(1, 3), st.sampled_from(HUGE), st.sampled_from(MID),
                     st.integers(-2, 0) | st.sampled_from(PAST_INT64))


def _skip_if_real_but_big(numel, itemsize=8):
    """Outputs between what this test computes and what no allocator could hold would really be allocated
    (and NaN-filled): gigabytes on a shared machine. Such examples are skipped, before any call."""
    assume(numel <= MAX_COMPUTED_NUMEL or numel * itemsize > IMPOSSIBLE_BYTES)


# ---------------------------------------------------------------------------------------------------
# Tensors in hostile layouts
# ---------------------------------------------------------------------------------------------------

LAYOUTS = ["contiguous", "contiguous", "channels_last", "expanded", "offset", "overlapping", "strided"]


def _view(shape, dtype, layout, gen):
    """(tensor of `shape` stored in `layout`, the whole base tensor behind it)."""
    n, c, length = shape

    def rand(*s):
        return torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)

    if layout == "contiguous" or n * c * length == 0:
        base = rand(n, c, length)
        return base, base
    if layout == "channels_last":
        base = rand(n, length, c)
        return base.transpose(1, 2), base
    if layout == "expanded":  # one sample broadcast over the batch (stride 0)
        base = rand(1, c, length)
        return base.expand(n, c, length), base
    if layout == "offset":  # a slice with a storage offset and padded strides
        base = rand(n + 1, c + 2, length + 3)
        return base[1:, 1:1 + c, 2:2 + length], base
    if layout == "overlapping":  # every sample and channel shifted by one element: overlapping windows
        base = rand(n + c + length)
        return base.as_strided((n, c, length), (1, 1, 1)), base
    if layout == "strided":
        base = rand(n, c, 2 * length)
        return base[:, :, ::2], base
    raise ValueError(layout)


@st.composite
def tensor_layout(draw):
    return draw(st.sampled_from(LAYOUTS))


# ---------------------------------------------------------------------------------------------------
# Guards: memory, time, inputs, poison
# ---------------------------------------------------------------------------------------------------


def _rss_peak_reset():
    """Resets the process's peak resident size (VmHWM) to the current one; False where the kernel does not
    allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Guarded:
    """Runs fn() and records what it returned or raised, how long it took and how far the process's resident
    memory peaked above where it started (None where /proc cannot say)."""

    def __init__(self, fn):
        can_measure = _rss_peak_reset()
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        self.value, self.error = None, None
        try:
            self.value = fn()
        except Exception as e:  # noqa: BLE001  (compared with PyTorch's by the caller)
            self.error = e
        self.seconds = time.perf_counter() - start
        self.extra_bytes = (_status_kib("VmHWM") - before) * 1024 if can_measure else None

    def check_cheap(self, allowed_bytes=0):
        assert self.seconds < MAX_SECONDS, f"took {self.seconds:.1f} s"
        if self.extra_bytes is not None:
            assert self.extra_bytes <= MAX_EXTRA_BYTES + allowed_bytes, \
                f"resident memory peaked {self.extra_bytes / 2**20:.0f} MiB above its start"


def _snapshot(tensors):
    """Clones of the whole storage behind each tensor (a write anywhere in it is a modified input)."""
    out = []
    for t in tensors:
        if t is None:
            continue
        base = t._base if t._base is not None else t
        out.append((base, base.detach().clone()))
    return out


def _assert_unmodified(snapshot):
    for base, saved in snapshot:
        assert torch.equal(base.detach(), saved), "an op modified its input"


def _run(fn):
    """Calls fn(); returns (value, exception)."""
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001
        return None, e


def _same_error(ours, theirs, context):
    assert ours is not None, f"PyTorch raises {type(theirs).__name__}: {theirs}; conv1d_ext returned. {context}"
    assert type(ours) is type(theirs), (f"PyTorch raises {type(theirs).__name__}: {theirs}; conv1d_ext raises "
                                        f"{type(ours).__name__}: {ours}. {context}")


def _assert_matches(name, got, ref, magnitude, reduction_len, dtype, context, extra_rounding=False):
    """got (dtype) against PyTorch's float64 result, elementwise within conv_ref's tolerance (plus one more
    rounding to dtype of the magnitude with extra_rounding); finite everywhere (an unwritten element keeps
    its NaN poison)."""
    assert got.dtype == dtype and tuple(got.shape) == tuple(ref.shape), \
        f"{name}: {got.dtype} {tuple(got.shape)}, expected {dtype} {tuple(ref.shape)}. {context}"
    got = got.detach().double()
    assert torch.isfinite(got).all(), f"{name}: not finite (unwritten, still NaN-poisoned?). {context}"
    tol = tolerance(dtype, ref, magnitude, reduction_len)
    if extra_rounding:
        tol = tol + output_rounding(dtype) * magnitude
    err = (got - ref).abs()
    assert (err <= tol).all(), f"{name}: max error {err.max().item():.3g} (tolerance {tol.max().item():.3g}). {context}"


def _in_int64(*values):
    return all(not isinstance(v, int) or -(2**63) <= v <= INT64_MAX for v in values)


def _stricter_on_empty_input(x, error, torch_error=None):
    """Known difference (stricter): for an input with no elements PyTorch takes its empty-input path, which
    skips some argument checks (zero dilation, an empty kernel, output_padding too large) and returns an
    empty result (even one with a dimension past 2^62, whose strides overflow at::empty here), or fails
    inside (IndexError "select(): index 0 out of range" for an empty kernel and an empty batch); conv1d_ext
    makes those checks (RuntimeError) whatever the sizes."""
    return (x.numel() == 0 and isinstance(error, RuntimeError) and (torch_error is None or
                                                                    isinstance(torch_error, IndexError))
            and re.search(r"dilation|kernel size|output padding|negative padding|Stride calculation overflowed",
                          str(error)) is not None)


@pytest.fixture(autouse=True)
def memory_cap():
    """A cap on this process's data segment (RLIMIT_DATA: heap and private mappings) while a fuzz test runs,
    4 GiB above its current size: a runaway allocation (ours or PyTorch's: F.conv1d with padding 2^31 pads a
    copy of the input on some paths) fails with an exception instead of exhausting a shared machine's memory.
    Restored afterwards."""
    try:
        import resource
    except ImportError:  # not POSIX
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = _status_kib("VmData") * 1024 + (4 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
