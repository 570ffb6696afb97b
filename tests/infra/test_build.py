"""The build holds what it should: every op has a CPU kernel, and a CUDA kernel when CUDA was built.

CI builds with CONV1D_EXT_CUDA=1 on machines without a GPU and sets CONV1D_EXT_EXPECT_CUDA=1, so a build
that silently dropped the CUDA sources fails here instead of passing with CUDA tests skipped.
"""

import os

import pytest
import torch

import conv1d_ext


@pytest.mark.parametrize("op", conv1d_ext.OP_NAMES)
def test_every_op_has_a_cpu_kernel(op):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"conv1d_ext::{op}", "CPU")


@pytest.mark.parametrize("op", conv1d_ext.OP_NAMES)
def test_every_op_has_a_cuda_kernel_when_expected(op):
    expected = os.environ.get("CONV1D_EXT_EXPECT_CUDA") == "1" or torch.cuda.is_available()
    has = torch._C._dispatch_has_kernel_for_dispatch_key(f"conv1d_ext::{op}", "CUDA")
    if not expected and not has:
        pytest.skip("built without CUDA and CONV1D_EXT_EXPECT_CUDA is not set")
    assert has, f"conv1d_ext::{op} has no CUDA kernel registered"


def test_build_info_is_consistent():
    info = conv1d_ext.build_info()
    assert info["torch"] == torch.__version__
    assert info["cpu_isa"] in ("avx512bf16", "avx2", "default")
    forced = os.environ.get("CONV1D_EXT_CPU_KERNELS") == "direct"
    assert info["cpu_kernels"] == ("direct" if forced else "auto")
    if os.environ.get("CONV1D_EXT_EXPECT_CUDA") == "1":
        assert info["cuda_kernels"]


def test_outputs_are_nan_poisoned_in_this_run():
    """conftest.py sets CONV1D_EXT_POISON_OUTPUTS=1 before the library loads, so an element a kernel
    forgets to write is NaN and fails the comparisons instead of passing on what the memory held."""
    assert conv1d_ext.build_info()["poison_outputs"] is True
