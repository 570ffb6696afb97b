"""Shared fixtures: devices, op backends, hypothesis profiles.

Every op output starts as NaN during the tests (CONV1D_EXT_POISON_OUTPUTS=1, read when the library
loads, so it is set before anything imports conv1d_ext): an element a kernel forgets to write fails the
comparison instead of passing on whatever the memory held. The libraries report it (build_info()
["poison_outputs"], the emulated ops' _poison_outputs()) and the tests assert it (infra/test_build.py, the
emulated fixtures).
"""

import os

os.environ["CONV1D_EXT_POISON_OUTPUTS"] = "1"

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "support"))  # the shared helpers

import pytest  # noqa: E402
import torch  # noqa: E402
from conv_ref import run_conv_ops, torch_threads  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from repo_paths import SUPPORT  # noqa: E402

import conv1d_ext  # noqa: E402, F401  (loads the ops with poisoning on)

HAVE_CUDA = torch.cuda.is_available()

# Hypothesis profiles (CONV1D_EXT_HYPOTHESIS):
#   "ci" (the default): derandomized, so a run is reproducible and CI is not flaky; each test seeds its
#       draws per parameter (conv_ref.seeded), so every dtype and backend sees examples of its own.
#   "explore" (opt-in): a fresh seed every run (printed with a failure, and failures are replayed from
#       .hypothesis/ on the next run) and ten times the examples (conv_ref.examples;
#       CONV1D_EXT_TEST_SCALE overrides the factor). E.g.
#       CONV1D_EXT_HYPOTHESIS=explore pytest tests/ops/test_conv1d_ops.py -m "not emulated"
# deadline=None: kernel timings vary with machine load.
_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("ci", derandomize=True, database=None, **_common)
settings.register_profile("explore", derandomize=False, **_common)
settings.load_profile(os.environ.get("CONV1D_EXT_HYPOTHESIS", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device")
    config.addinivalue_line("markers", "emulated: runs the CUDA kernels under the CPU emulator (slow)")
    config.addinivalue_line("markers", "compile: uses torch.compile (slow to compile)")
    config.addinivalue_line("markers", "subprocess: runs part of the suite in a child process")
    config.addinivalue_line("markers", "faults: builds copies of the CPU kernels with planted bugs (~1.5 min cold)")
    config.addinivalue_line("markers", "sanitize: the sanitizer tier's own tests (make test-sanitize; skip elsewhere)")
    config.addinivalue_line("markers", "slow: tensors of more than 2^31 elements (4+ GB each, minutes); skipped "
                                       "unless selected with -m slow or CONV1D_EXT_SLOW=1")


def pytest_collection_modifyitems(config, items):
    """The slow tier runs only on request (tests/robustness/test_large.py): `pytest -m slow tests` or
    CONV1D_EXT_SLOW=1."""
    if os.environ.get("CONV1D_EXT_SLOW") == "1" or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow tier (> 2^31-element tensors): pytest -m slow, or CONV1D_EXT_SLOW=1")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


_cuda_param = pytest.param("cuda", marks=[pytest.mark.cuda,
                                          pytest.mark.skipif(not HAVE_CUDA, reason="no CUDA device")])


@pytest.fixture(params=["cpu", _cuda_param])
def device(request):
    """Where the Python-level tests (functional, module, autograd, compile, errors) run."""
    return request.param


# The kernel families CONV1D_EXT_CUDA_FAMILY forces (csrc/cuda/dispatch.cu): the op-level tests run the
# CUDA kernels (on a GPU or under the emulator) with dispatch's choice and with each family forced.
CUDA_FAMILIES = ("direct", "dense", "depthwise", "tensor_core")


@dataclasses.dataclass(frozen=True)
class Backend:
    """One implementation of the four conv1d_ext ops under test."""

    name: str  # "cpu", "cuda", "emulated", or "cuda-<family>" / "emulated-<family>"
    kind: str  # "cpu", "cuda" or "emulated"
    ops: object  # has conv1d, conv1d_backward_input, conv1d_backward_weight, conv1d_backward_bias
    device: str
    cuda_family: str | None = None  # the family forced while the ops run; None: dispatch's choice

    def run_ops(self):
        """run_ops(case, x, w, b, gy) for conv_ref.conformance_problems, with the family forced. The
        emulator runs its blocks on one OS thread here (as in infra/test_emulator.py's conformance check, whose
        schedule test covers two): OpenMP's spinning barriers make it ~2x slower on a loaded machine."""
        from emulated import cuda_family  # the environment switch only (builds nothing)

        run = run_conv_ops(self.ops)

        def run_forced(*args):
            threads = torch_threads(1) if self.kind == "emulated" else contextlib.nullcontext()
            with cuda_family(self.cuda_family), threads:
                return run(*args)

        return run_forced


def _emulated_ops():
    if not (SUPPORT / "emulated.py").exists():
        pytest.skip("tests/support/emulated.py (the CUDA emulator harness) is not in this tree")
    from emulated import emulated_ops

    ops = emulated_ops()
    assert ops._poison_outputs(), "the emulated library must NaN-poison its outputs in the tests"
    return ops


def _cuda_params(kind, marks):
    return [pytest.param(kind, marks=marks)] + [pytest.param(f"{kind}-{f}", marks=marks) for f in CUDA_FAMILIES]


@pytest.fixture(scope="session", params=[
    "cpu",
    *_cuda_params("cuda", _cuda_param.marks),
    *_cuda_params("emulated", [pytest.mark.emulated]),
])
def backend(request):
    """The op implementation the op-level conformance tests run: this project's CPU kernels, its CUDA
    kernels on a GPU, or its CUDA kernels under the CPU emulator (torch.ops.conv1d_ext_emu); the CUDA
    kernels with dispatch's choice of family and with each family forced."""
    kind, _, family = request.param.partition("-")
    if kind == "emulated":
        return Backend(request.param, kind, _emulated_ops(), "cpu", family or None)
    return Backend(request.param, kind, torch.ops.conv1d_ext, kind, family or None)


@pytest.fixture
def strict_fp32():
    """CUDA float32 as true float32 (no TF32) while a test runs; restores PyTorch's setting after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
