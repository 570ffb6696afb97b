"""Shared fixtures: devices, op backends, hypothesis profiles.

Every op output starts as NaN during the tests (CONV1D_EXT_POISON_OUTPUTS=1, read when the library
loads, so it is set before anything imports conv1d_ext): an element a kernel forgets to write fails the
comparison instead of passing on whatever the memory held.
"""

import os

os.environ["CONV1D_EXT_POISON_OUTPUTS"] = "1"

import dataclasses  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import conv1d_ext  # noqa: E402, F401  (loads the ops with poisoning on)

TESTS_DIR = pathlib.Path(__file__).resolve().parent
HAVE_CUDA = torch.cuda.is_available()

# Hypothesis: "ci" (the default) is derandomized, so a run is reproducible and CI is not flaky; "explore"
# draws fresh random examples each run (CONV1D_EXT_HYPOTHESIS=explore, with CONV1D_EXT_TEST_SCALE=10
# for ten times the examples). deadline=None: kernel timings vary with machine load.
_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("ci", derandomize=True, database=None, **_common)
settings.register_profile("explore", **_common)
settings.load_profile(os.environ.get("CONV1D_EXT_HYPOTHESIS", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device")
    config.addinivalue_line("markers", "emulated: runs the CUDA kernels under the CPU emulator (slow)")
    config.addinivalue_line("markers", "compile: uses torch.compile (slow to compile)")
    config.addinivalue_line("markers", "subprocess: runs part of the suite in a child process")


_cuda_param = pytest.param("cuda", marks=[pytest.mark.cuda,
                                          pytest.mark.skipif(not HAVE_CUDA, reason="no CUDA device")])


@pytest.fixture(params=["cpu", _cuda_param])
def device(request):
    """Where the Python-level tests (functional, module, autograd, compile, errors) run."""
    return request.param


@dataclasses.dataclass(frozen=True)
class Backend:
    """One implementation of the four conv1d_ext ops under test."""

    name: str
    ops: object  # has conv1d, conv1d_backward_input, conv1d_backward_weight, conv1d_backward_bias
    device: str
    small: bool  # only small shapes (the emulator runs every GPU thread on the CPU)


def _emulated_backend():
    if not (TESTS_DIR / "emulated.py").exists():
        pytest.skip("tests/emulated.py (the CUDA emulator harness) is not in this tree")
    from emulated import emulated_ops  # tests/ is on sys.path (pytest rootdir-relative import)

    # The same problem sizes as the CPU: measured, 50 examples per dtype take ~20 s of CPU time each.
    return Backend("emulated", emulated_ops(), "cpu", small=False)


@pytest.fixture(scope="session", params=[
    "cpu",
    _cuda_param,
    pytest.param("emulated", marks=pytest.mark.emulated),
])
def backend(request):
    """The op implementation the op-level conformance tests run: this project's CPU kernels, its CUDA
    kernels on a GPU, or its CUDA kernels under the CPU emulator (torch.ops.conv1d_ext_emu)."""
    if request.param == "emulated":
        return _emulated_backend()
    return Backend(request.param, torch.ops.conv1d_ext, request.param, small=False)


@pytest.fixture
def strict_fp32():
    """CUDA float32 as true float32 (no TF32) while a test runs; restores PyTorch's setting after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
