"""Bad input: conv1d_ext.conv1d raises exactly the exception type F.conv1d raises for the same call (the
expected type is computed by calling F.conv1d in the test), with a message that names the problem; the
caller's tensors are never modified; the ops themselves reject malformed arguments cleanly."""

import pytest
import torch
import torch.nn.functional as F

import conv1d_ext

ops = torch.ops.conv1d_ext


def t(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device)


# name -> (lambda device: (args, kwargs)), a regex our message must match
CASES = {
    "input_1d": (lambda d: ((t(10, device=d), t(6, 2, 3, device=d)), {"groups": 2}),
                 r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d, but got input of size: "
                 r"\[10\]"),
    "input_4d": (lambda d: ((t(1, 4, 2, 10, device=d), t(6, 2, 3, device=d)), {"groups": 2}),
                 r"Expected 2D \(unbatched\) or 3D \(batched\) input.*\[1, 4, 2, 10\]"),
    "channels_vs_groups": (lambda d: ((t(2, 4, 10, device=d), t(6, 3, 3, device=d)), {"groups": 2}),
                           r"expected input\[2, 4, 10\] to have 6 channels, but got 4 channels"),
    "channels_dense": (lambda d: ((t(2, 5, 10, device=d), t(6, 4, 3, device=d)), {}),
                       r"to have 4 channels, but got 5"),
    "unbatched_channels": (lambda d: ((t(5, 10, device=d), t(6, 4, 3, device=d)), {}), r"channels"),
    "weight_not_divisible": (lambda d: ((t(2, 4, 10, device=d), t(5, 2, 3, device=d)), {"groups": 2}),
                             r"divisible by 2"),
    "weight_fewer_than_groups": (lambda d: ((t(2, 4, 10, device=d), t(1, 1, 3, device=d)), {"groups": 4}),
                                 r"at least 4"),
    "weight_2d": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, device=d)), {}), r"weight"),
    "weight_4d": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, 1, device=d)), {}), r"weight"),
    "stride_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": 0}),
                 r"non-positive stride"),
    "stride_negative": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": (-2,)}),
                        r"non-positive stride"),
    "dilation_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"dilation": 0}),
                   r"non-positive dilation"),
    "groups_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"groups": 0}),
                 r"non-positive groups"),
    "groups_negative": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"groups": -2}),
                        r"non-positive groups"),
    "padding_negative": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": -1}),
                         r"negative padding"),
    "kernel_too_big": (lambda d: ((t(2, 4, 2, device=d), t(6, 4, 3, device=d)), {}),
                       r"Kernel size can't be greater than actual input size"),
    "dilated_kernel_too_big": (lambda d: ((t(2, 4, 6, device=d), t(6, 4, 3, device=d)), {"dilation": 3,
                                                                                         "padding": 0}),
                               r"Kernel size: \(7\)"),
    "weight_dtype": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, dtype=torch.float64, device=d)), {}),
                     r"should be the same"),
    "bias_dtype": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d),
                               t(6, dtype=torch.float64, device=d)), {}), r"should be the same"),
    "half_input_float_weight": (lambda d: ((t(2, 4, 10, device=d).half(), t(6, 4, 3, device=d)), {}),
                                r"type"),
    "bias_size": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d), t(5, device=d)), {}),
                  r"expected bias to be 1-dimensional with 6 elements"),
    "bias_2d": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d), t(6, 1, device=d)), {}),
                r"expected bias to be 1-dimensional"),
    "same_strided": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": "same",
                                                                                "stride": 2}),
                     r"padding='same' is not supported for strided convolutions"),
    "padding_string": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": "full"}),
                       r"Invalid padding string: 'full'"),
    "padding_string_case": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": "SAME"}),
                            r"Invalid padding string"),
    "stride_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": (1, 1)}),
                       r"expected stride to be a single integer value or a list of 1 values"),
    "padding_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": (1, 1)}),
                        r"expected padding to be a single integer"),
    "dilation_list_2": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"dilation": [1, 2]}),
                        r"expected dilation to be a single integer"),
    "stride_empty": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": ()}),
                     r"expected stride"),
    "stride_float": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": 1.0}),
                     r"stride"),
    "padding_float": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": 1.5}),
                      r"padding"),
    "dilation_tuple_float": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"dilation": (2.0,)}),
                             r"dilation"),
    "groups_float": (lambda d: ((t(2, 4, 10, device=d), t(6, 2, 3, device=d)), {"groups": 2.0}), r"groups"),
    "groups_bool": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"groups": True}),
                    r"groups"),
    "padding_none": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": None}),
                     r"padding"),
    "stride_string": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": "1"}), r"stride"),
    "input_not_tensor": (lambda d: ((t(2, 4, 10).tolist(), t(6, 4, 3, device=d)), {}), r"input"),
    "bias_not_tensor": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d), 3.0), {}), r"bias"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_exception_type_as_pytorch(device, case):
    make, message = CASES[case]
    args, kwargs = make(device)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    before = [a.clone() for a in tensors]
    with pytest.raises(Exception) as expected:
        F.conv1d(*args, **kwargs)
    with pytest.raises(Exception, match=message) as got:
        conv1d_ext.conv1d(*args, **kwargs)
    assert type(got.value) is type(expected.value), \
        f"F.conv1d raises {type(expected.value).__name__}: {expected.value}; we raise " \
        f"{type(got.value).__name__}: {got.value}"
    assert all(torch.equal(a, b) for a, b in zip(tensors, before, strict=False))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("which", ["weight", "bias", "input"])
def test_device_mismatch(which):
    x, w, b = t(2, 4, 10), t(6, 4, 3), t(6)
    if which == "input":
        x = x.cuda()
    elif which == "weight":
        w = w.cuda()
    else:
        x, w = x.cuda(), w.cuda()
    with pytest.raises(Exception) as expected:
        F.conv1d(x, w, b)
    with pytest.raises(Exception, match="device|type") as got:
        conv1d_ext.conv1d(x, w, b)
    assert type(got.value) is type(expected.value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.complex64])
def test_unsupported_dtypes_are_a_clear_runtime_error(dtype):
    """F.conv1d computes integer (CPU) and complex convolutions; conv1d_ext does floating point only and
    says so with a RuntimeError instead of computing something else."""
    x = torch.ones(1, 2, 5).to(dtype)
    w = torch.ones(3, 2, 3).to(dtype)
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        conv1d_ext.conv1d(x, w)


def test_module_forward_errors_match_nn_conv1d():
    torch.manual_seed(0)
    ref = torch.nn.Conv1d(4, 6, 3, padding=2, padding_mode="reflect")
    ours = conv1d_ext.Conv1dExt(4, 6, 3, padding=2, padding_mode="reflect")
    for bad in [t(2, 3, 10), t(2, 4, 2), t(4), t(2, 4, 10, dtype=torch.float64)]:
        with pytest.raises(Exception) as expected:
            ref(bad)
        with pytest.raises(Exception) as got:
            ours(bad)
        assert type(got.value) is type(expected.value), (bad.shape, got.value, expected.value)


# The ops are public too (torch.ops.conv1d_ext.*): malformed calls must raise, never crash or write
# out of bounds. PyTorch has no such ops, so the expected type is PyTorch's for argument errors.
bwd_in, bwd_w = ops.conv1d_backward_input, ops.conv1d_backward_weight
OP_CASES = {
    "conv1d_input_2d": lambda: ops.conv1d(t(4, 10), t(6, 4, 3), None, 1, 0, 0, 1, 1),
    "conv1d_channels": lambda: ops.conv1d(t(2, 5, 10), t(6, 4, 3), None, 1, 0, 0, 1, 1),
    "conv1d_pad_left_negative": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), None, 1, -1, 0, 1, 1),
    "conv1d_pad_right_negative": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), None, 1, 0, -1, 1, 1),
    "conv1d_kernel_size_0": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 0), None, 1, 0, 0, 1, 1),
    "conv1d_bias_dtype": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), t(6).double(), 1, 0, 0, 1, 1),
    "conv1d_bias_size": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), t(5), 1, 0, 0, 1, 1),
    "conv1d_weight_2d": lambda: ops.conv1d(t(2, 4, 10), t(6, 4), None, 1, 0, 0, 1, 1),
    "conv1d_stride_0": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), None, 0, 0, 0, 1, 1),
    "conv1d_dilation_0": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), None, 1, 0, 0, 0, 1),
    "conv1d_groups_0": lambda: ops.conv1d(t(2, 4, 10), t(6, 4, 3), None, 1, 0, 0, 1, 0),
    "conv1d_weight_not_divisible": lambda: ops.conv1d(t(2, 4, 10), t(5, 2, 3), None, 1, 0, 0, 1, 2),
    "conv1d_kernel_too_long": lambda: ops.conv1d(t(2, 4, 2), t(6, 4, 3), None, 1, 0, 0, 1, 1),
    "conv1d_int_input": lambda: ops.conv1d(torch.ones(2, 4, 10, dtype=torch.int64),
                                           torch.ones(6, 4, 3, dtype=torch.int64), None, 1, 0, 0, 1, 1),
    "backward_input_len_mismatch": lambda: bwd_in(t(2, 6, 7), t(6, 4, 3), 10, 1, 0, 0, 1, 1),
    "backward_input_negative_len": lambda: bwd_in(t(2, 6, 7), t(6, 4, 3), -1, 1, 0, 0, 1, 1),
    "backward_input_channels": lambda: bwd_in(t(2, 5, 8), t(6, 4, 3), 10, 1, 0, 0, 1, 1),
    "backward_input_groups": lambda: bwd_in(t(2, 6, 8), t(6, 4, 3), 10, 1, 0, 0, 1, 4),
    "backward_weight_batch": lambda: bwd_w(t(3, 6, 8), t(2, 4, 10), 3, 1, 0, 0, 1, 1),
    "backward_weight_len": lambda: bwd_w(t(2, 6, 9), t(2, 4, 10), 3, 1, 0, 0, 1, 1),
    "backward_weight_kernel_0": lambda: bwd_w(t(2, 6, 11), t(2, 4, 10), 0, 1, 0, 0, 1, 1),
    "backward_weight_groups": lambda: bwd_w(t(2, 6, 8), t(2, 4, 10), 3, 1, 0, 0, 1, 3),
    "backward_weight_dtype": lambda: bwd_w(t(2, 6, 8), t(2, 4, 10).double(), 3, 1, 0, 0,
                                                                1, 1),
    "backward_bias_2d": lambda: ops.conv1d_backward_bias(t(6, 8)),
    "backward_bias_int": lambda: ops.conv1d_backward_bias(torch.ones(2, 6, 8, dtype=torch.int64)),
}


@pytest.mark.parametrize("case", list(OP_CASES))
def test_ops_reject_malformed_arguments(case):
    with pytest.raises(RuntimeError):
        OP_CASES[case]()


@pytest.mark.parametrize("case", list(OP_CASES))
def test_fake_kernels_reject_what_the_kernels_reject(case):
    """Under FakeTensorMode (torch.compile's tracing) the same calls fail with the same exception type as
    the real kernels, raised by the fake kernel's own check (its message starts with the op's name; a
    missing fake kernel would raise another RuntimeError), instead of tracing impossible shapes."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with pytest.raises(Exception) as real:
        OP_CASES[case]()
    with FakeTensorMode(), pytest.raises(Exception, match=r"^conv1d_ext::\w+: ") as fake:
        OP_CASES[case]()
    assert type(fake.value) is type(real.value), (real.value, fake.value)
