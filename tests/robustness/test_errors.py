"""Bad input: conv1d_ext.conv1d and conv1d_ext.conv_transpose1d raise exactly the exception type F.conv1d /
F.conv_transpose1d raise for the same call (the expected type is computed by calling PyTorch's in the
test), with a message that names the problem; the caller's tensors are never modified; the ops themselves
reject malformed arguments cleanly; the causal-conv1d interface names what is wrong with its arguments."""

import itertools
import re

import pytest
import torch
import torch.nn.functional as F
from conv_ref import assert_raises_like

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
    "weight_2d": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, device=d)), {}),
                  r"^weight should have at least three dimensions$"),
    "weight_1d_same": (lambda d: ((t(2, 4, 10, device=d), t(6, device=d)), {"padding": "same"}),
                       r"^weight should have at least three dimensions$"),
    "weight_4d": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, 1, device=d)), {}),
                  r"Expected 4-dimensional input for 4-dimensional weight \[6, 4, 3, 1\], but got 3-dimensional "
                  r"input of size \[2, 4, 10\] instead"),
    "weight_4d_same": (lambda d: ((t(4, 10, device=d), t(6, 4, 3, 1, device=d)), {"padding": "same"}),
                       r"Expected 4-dimensional input for 4-dimensional weight\[6, 4, 3, 1\], but got "
                       r"3-dimensional input of size \[1, 4, 10\] instead"),
    "stride_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": 0}),
                 r"non-positive stride"),
    "stride_negative": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"stride": (-2,)}),
                        r"non-positive stride"),
    "dilation_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"dilation": 0}),
                   r"non-positive dilation"),
    # PyTorch reports a negative dilation early with its own message, a zero one last (measured)
    "dilation_negative": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"dilation": -1}),
                          r"^dilation should be greater than zero$"),
    "dilation_negative_same": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)),
                                          {"dilation": -1, "padding": "same"}), r"negative padding"),
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
                                r"should be the same"),
    "double_input_float_weight": (lambda d: ((t(2, 4, 10, device=d).double(), t(6, 4, 3, device=d)), {}),
                                  r"should be the same"),
    "float_input_int_weight": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d).long()), {}),
                               r"^Input type \(torch\.\S*FloatTensor\) and weight type \(torch\.\S*LongTensor\) "
                               r"should be the same"),
    # mixed dtypes are reported before the integer dtype we have no kernels for
    "int_input_double_bias": (lambda d: ((t(2, 4, 10, device=d).long(), t(6, 4, 3, device=d).long(),
                                          t(6, dtype=torch.float64, device=d)), {}),
                              r"^Input type \(long int\) and bias type \(double\) should be the same$"),
    "int_input_double_bias_unbatched": (lambda d: ((t(4, 10, device=d).long(), t(6, 4, 3, device=d).long(),
                                                    t(6, dtype=torch.float64, device=d)), {"stride": (1, 2)}),
                                        r"^Input type \(long int\) and bias type \(double\) should be the same$"),
    "int_input_float_weight_valid": (lambda d: ((t(2, 4, 10, device=d).long(), t(6, 4, 3, device=d)),
                                                {"padding": "valid"}), r"should be the same"),
    "bool": (lambda d: ((t(2, 4, 10, device=d).bool(), t(6, 4, 3, device=d).bool()), {}),
             r"float32, float64, float16 or bfloat16, but got Bool"),
    "bias_size": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d), t(5, device=d)), {}),
                  r"expected bias to be 1-dimensional with 6 elements"),
    "bias_2d": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d), t(6, 1, device=d)), {}),
                r"expected bias to be 1-dimensional"),
    "same_strided": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": "same",
                                                                                "stride": 2}),
                     r"padding='same' is not supported for strided convolutions"),
    "same_stride_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)), {"padding": "same", "stride": 0}),
                      r"padding='same' is not supported for strided convolutions"),
    "same_stride_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)),
                                       {"padding": "same", "stride": (1, 1)}),
                            r"^stride cannot broadcast to 1 dimensions$"),
    "same_groups_0_strided": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 3, device=d)),
                                         {"padding": "same", "stride": 2, "groups": 0}), r"non-positive groups"),
    "kernel_size_0": (lambda d: ((t(2, 4, 10, device=d), t(6, 4, 0, device=d)), {}),
                      r"kernel size should be greater than zero"),
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
    assert_raises_like(F.conv1d, conv1d_ext.conv1d, args, kwargs, message)


# kind -> (PyTorch's function, ours, CPU operands x, w, b of a valid call)
KINDS = {
    "conv1d": (F.conv1d, conv1d_ext.conv1d, lambda: (t(2, 4, 10), t(6, 4, 3), t(6))),
    "transposed": (F.conv_transpose1d, conv1d_ext.conv_transpose1d, lambda: (t(2, 4, 10), t(4, 3, 3), t(3))),
}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("which", ["weight", "bias", "input"])
def test_device_mismatch(kind, which):
    theirs, ours, operands = KINDS[kind]
    x, w, b = operands()
    if which == "input":
        x = x.cuda()
    elif which == "weight":
        w = w.cuda()
    else:
        x, w = x.cuda(), w.cuda()
    assert_raises_like(theirs, ours, (x, w, b), message="device|type")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.complex64])
def test_unsupported_dtypes_are_a_clear_error(dtype):
    """F.conv1d computes integer (CPU) and complex convolutions; conv1d_ext does floating point only and
    says so, naming the supported dtypes, with NotImplementedError (a RuntimeError, what PyTorch raises for
    a dtype it has no kernel for) instead of computing something else."""
    x = torch.ones(1, 2, 5).to(dtype)
    w = torch.ones(3, 2, 3).to(dtype)
    with pytest.raises(NotImplementedError, match="float32, float64, float16 or bfloat16"):
        conv1d_ext.conv1d(x, w)


# Which check fires when a call has two problems: the one PyTorch reports. Each problem changes one part
# of a valid call; every pair that F.conv1d rejects is tried, and the two messages must name the same
# problem (PyTorch words some of them differently per backend, hence the classes). Left out: a zero
# dilation and an empty kernel, which PyTorch's CPU backends check at different points (float32 after the
# dtypes, float64 before them).
PROBLEMS = {
    "input_1d": {"x": (10,)}, "input_4d": {"x": (1, 4, 2, 10)},
    "weight_2d": {"w": (6, 4)}, "weight_4d": {"w": (6, 4, 3, 1)},
    "stride_0": {"stride": 0}, "stride_negative": {"stride": -1}, "dilation_negative": {"dilation": -1},
    "padding_negative": {"padding": -1}, "groups_0": {"groups": 0},
    "stride_2": {"stride": (1, 1)}, "padding_2": {"padding": (1, 1)}, "dilation_2": {"dilation": (1, 1)},
    "weight_fewer_than_groups": {"groups": 8, "w": (6, 1, 3), "x": (2, 8, 10)},
    "weight_not_divisible": {"groups": 4, "w": (6, 1, 3)},
    "channels": {"x": (2, 5, 10)}, "bias_size": {"b": (5,)}, "bias_2d": {"b": (6, 1)},
    "kernel_too_big": {"x": (2, 4, 2)},
    "weight_double": {"w_dtype": torch.float64}, "bias_double": {"b_dtype": torch.float64},
    "weight_double_no_bias": {"b": None, "w_dtype": torch.float64},
    "input_int": {"x_dtype": torch.int64}, "input_half": {"x_dtype": torch.float16},
    "input_double_no_bias": {"b": None, "x_dtype": torch.float64},
    "int_double_bias": {"x_dtype": torch.int64, "w_dtype": torch.int64, "b_dtype": torch.float64},
    "same_strided": {"padding": "same", "stride": 2}, "padding_string": {"padding": "full"},
    "valid": {"padding": "valid"}, "same": {"padding": "same"},
}
MESSAGE_CLASSES = [
    r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d", r"weight should have at least three dimensions",
    r"-dimensional input for \d+-dimensional weight", r"expected stride to be a single",
    r"expected padding to be a single", r"expected dilation to be a single", r"cannot broadcast",
    r"negative padding", r"non-positive stride", r"non-positive dilation|dilation should be greater than zero",
    r"non-positive groups", r"expected weight to be at least", r"expected weight to be divisible",
    r"channels, but got \d+ channels instead", r"expected bias to be 1-dimensional",
    r"Kernel size can't be greater than actual input size", r"should be the same|expected scalar type",
    r"padding='same' is not supported for strided", r"Invalid padding string",
]


def _call(conv, problem):
    call = {"x": (2, 4, 10), "w": (6, 4, 3), "b": (6,), "stride": 1, "padding": 0, "dilation": 1, "groups": 1,
            **problem}
    x = t(*call["x"]).to(call.get("x_dtype", torch.float32))
    w = t(*call["w"]).to(call.get("w_dtype", torch.float32))
    b = None if call["b"] is None else t(*call["b"]).to(call.get("b_dtype", torch.float32))
    try:
        conv(x, w, b, call["stride"], call["padding"], call["dilation"], call["groups"])
    except Exception as e:
        return e
    return None


def _message_class(error):
    classes = [c for c in MESSAGE_CLASSES if re.search(c, str(error))]
    return classes[0] if classes else str(error)


def test_check_order_matches_pytorch():
    torch.manual_seed(0)
    checked = 0
    for (name1, p1), (name2, p2) in itertools.permutations(PROBLEMS.items(), 2):
        if set(p1) & set(p2):
            continue  # both change the same part of the call
        problem = {**p1, **p2}
        expected = _call(F.conv1d, problem)
        if expected is None:
            continue  # together they are no problem
        got = _call(conv1d_ext.conv1d, problem)
        assert got is not None and type(got) is type(expected), (name1, name2, expected, got)
        assert _message_class(got) == _message_class(expected), (name1, name2, str(expected), str(got))
        checked += 1
    assert checked > 400


def test_huge_stride_and_dilation_compute_like_pytorch():
    """Values F.conv1d accepts however large (one output position, one tap) must not reach the kernels'
    index arithmetic."""
    x, w1, w3 = t(2, 4, 10), t(6, 4, 1), t(6, 4, 3)
    for w, kwargs in [(w3, {"stride": 2**31}), (w3, {"stride": 2**62}), (w1, {"dilation": 2**62}),
                      (w1, {"dilation": 2**62, "stride": 2**62})]:
        torch.testing.assert_close(conv1d_ext.conv1d(x, w, **kwargs), F.conv1d(x, w, **kwargs))


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


# ---------------------------------------------------------------------------------------------------
# conv_transpose1d: the exception type F.conv_transpose1d raises for the same call
# ---------------------------------------------------------------------------------------------------

# name -> (lambda device: (args, kwargs)), a regex our message must match
TRANSPOSED_CASES = {
    "input_1d": (lambda d: ((t(10, device=d), t(4, 3, 3, device=d)), {}), r"Expected 2D \(unbatched\) or 3D"),
    "input_4d": (lambda d: ((t(1, 4, 2, 10, device=d), t(4, 3, 3, device=d)), {}), r"\[1, 4, 2, 10\]"),
    "channels": (lambda d: ((t(2, 5, 10, device=d), t(4, 3, 3, device=d)), {}),
                 r"expected input\[2, 5, 10\] to have 4 channels, but got 5 channels"),
    "unbatched_channels": (lambda d: ((t(5, 10, device=d), t(4, 3, 3, device=d)), {}), r"channels"),
    "groups_channels": (lambda d: ((t(2, 4, 10, device=d), t(6, 1, 3, device=d)), {"groups": 2}), r"channels"),
    "weight_not_divisible": (lambda d: ((t(2, 3, 10, device=d), t(3, 1, 3, device=d)), {"groups": 2}),
                             r"divisible by 2"),
    "weight_fewer_than_groups": (lambda d: ((t(2, 2, 10, device=d), t(2, 1, 3, device=d)), {"groups": 4}),
                                 r"at least 4"),
    "zero_input_channels": (lambda d: ((t(2, 0, 10, device=d), t(0, 3, 3, device=d)), {}), r"at least 1"),
    "weight_2d": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, device=d)), {}), r"weight"),
    "weight_4d": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, 1, device=d)), {}), r"weight"),
    "kernel_size_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 0, device=d)), {}), r"kernel_size"),
    "stride_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": 0}),
                 r"non-positive stride"),
    "stride_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": (-2,)}),
                        r"non-positive stride"),
    "dilation_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": 0}),
                   r"non-positive dilation"),
    "dilation_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": -1}),
                          r"non-positive dilation"),
    "groups_0": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"groups": 0}),
                 r"non-positive groups"),
    "groups_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"groups": -1}),
                        r"non-positive groups"),
    "padding_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": -1}),
                         r"negative padding"),
    "output_padding_negative": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                           {"stride": 2, "output_padding": -1}), r"negative output_padding"),
    "output_padding_without_stride": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                                 {"output_padding": 1}), r"smaller than either stride or dilation"),
    "output_padding_eq_stride": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                            {"stride": 2, "output_padding": 2}), r"smaller than either"),
    "output_padding_eq_dilation": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                              {"stride": 2, "dilation": 3, "output_padding": 3}),
                                   r"smaller than either"),
    "output_too_small": (lambda d: ((t(2, 4, 1, device=d), t(4, 3, 3, device=d)), {"padding": 2}),
                         r"Output size is too small"),
    "output_too_small_empty_batch": (lambda d: ((t(0, 4, 1, device=d), t(4, 3, 2, device=d)), {"padding": 2}),
                                     r"Output size is too small"),
    "empty_length": (lambda d: ((t(2, 4, 0, device=d), t(4, 3, 3, device=d)), {}), r"Only zero batch"),
    "empty_length_unbatched": (lambda d: ((t(4, 0, device=d), t(4, 3, 3, device=d)), {}), r"Only zero batch"),
    "weight_dtype": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, dtype=torch.float64, device=d)), {}),
                     r"should be the same"),
    "bias_dtype": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), t(3, dtype=torch.float64, device=d)),
                              {}), r"should be the same"),
    "half_input_float_weight": (lambda d: ((t(2, 4, 10, device=d).half(), t(4, 3, 3, device=d)), {}), r"type"),
    "bias_size": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), t(4, device=d)), {}),
                  r"expected bias to be 1-dimensional with 3 elements"),
    "bias_2d": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), t(3, 1, device=d)), {}),
                r"expected bias to be 1-dimensional"),
    "stride_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": (1, 1)}),
                       r"expected stride to be a single integer value or a list of 1 values"),
    "padding_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": (1, 1)}),
                        r"expected padding"),
    "output_padding_tuple_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)),
                                          {"stride": 2, "output_padding": (1, 1)}), r"expected output_padding"),
    "dilation_list_2": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": [1, 2]}),
                        r"expected dilation"),
    "stride_empty": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": ()}), r"expected stride"),
    "stride_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": 1.0}), r"stride"),
    "padding_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": 1.5}), r"padding"),
    "output_padding_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"output_padding": 0.0}),
                             r"output_padding"),
    "dilation_tuple_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"dilation": (2.0,)}),
                             r"dilation"),
    "padding_list_bool": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": [True]}),
                          r"padding"),
    "groups_float": (lambda d: ((t(2, 4, 10, device=d), t(4, 2, 3, device=d)), {"groups": 2.0}), r"groups"),
    "groups_bool": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"groups": True}), r"groups"),
    "padding_none": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": None}), r"padding"),
    "padding_same": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"padding": "same"}), r"padding"),
    "stride_string": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d)), {"stride": "1"}), r"stride"),
    "input_not_tensor": (lambda d: ((t(2, 4, 10).tolist(), t(4, 3, 3, device=d)), {}), r"input"),
    "weight_not_tensor": (lambda d: ((t(2, 4, 10, device=d), 3.0), {}), r"weight"),
    "bias_not_tensor": (lambda d: ((t(2, 4, 10, device=d), t(4, 3, 3, device=d), 3.0), {}), r"bias"),
}


@pytest.mark.parametrize("case", list(TRANSPOSED_CASES))
def test_transposed_same_exception_type_as_pytorch(device, case):
    make, message = TRANSPOSED_CASES[case]
    args, kwargs = make(device)
    assert_raises_like(F.conv_transpose1d, conv1d_ext.conv_transpose1d, args, kwargs, message)


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_transposed_unsupported_dtypes_are_a_clear_runtime_error(dtype):
    """F.conv_transpose1d computes integer (CPU) and complex ones; we do floating point only and say so."""
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        conv1d_ext.conv_transpose1d(torch.ones(1, 2, 5).to(dtype), torch.ones(2, 3, 3).to(dtype))


# ---------------------------------------------------------------------------------------------------
# The causal-conv1d interface
# ---------------------------------------------------------------------------------------------------


def test_causal_errors():
    x, w = torch.randn(2, 4, 8), torch.randn(4, 3)
    with pytest.raises(NotImplementedError, match="activation must be None, silu, or swish"):
        conv1d_ext.causal_conv1d_fn(x, w, activation="relu")
    with pytest.raises(RuntimeError, match="weight of shape"):
        conv1d_ext.causal_conv1d_fn(x, torch.randn(5, 3))
    with pytest.raises(RuntimeError, match="weight of shape"):
        conv1d_ext.causal_conv1d_fn(x, torch.randn(4, 0))
    with pytest.raises(RuntimeError, match="x of shape"):
        conv1d_ext.causal_conv1d_fn(x[0], w)
    with pytest.raises(RuntimeError, match="bias of shape"):
        conv1d_ext.causal_conv1d_fn(x, w, torch.randn(3))
    with pytest.raises(RuntimeError, match="seq_idx must be int32"):
        conv1d_ext.causal_conv1d_fn(x, w, seq_idx=torch.zeros(2, 8, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="seq_idx of shape"):
        conv1d_ext.causal_conv1d_fn(x, w, seq_idx=torch.zeros(2, 7, dtype=torch.int32))
    with pytest.raises(RuntimeError, match="initial_states of shape"):
        conv1d_ext.causal_conv1d_fn(x, w, initial_states=torch.randn(2, 4, 3), dilation=1)
    with pytest.raises(RuntimeError, match="dilation must be positive"):
        conv1d_ext.causal_conv1d_fn(x, w, dilation=0)
    with pytest.raises(RuntimeError, match="should be the same"):
        conv1d_ext.causal_conv1d_fn(x, w.double())
    with pytest.raises(RuntimeError, match="float32, float64"):
        conv1d_ext.causal_conv1d_fn(x.int(), w.int())
    with pytest.raises(RuntimeError, match="state_len >= width - 1"):
        conv1d_ext.causal_conv1d_update(x[..., 0], torch.randn(2, 4, 1), w)
    with pytest.raises(RuntimeError, match="conv_state_indices"):
        conv1d_ext.causal_conv1d_update(x[..., 0], torch.randn(3, 4, 2), w)
    with pytest.raises(RuntimeError, match="cache_seqlens must be int32"):
        conv1d_ext.causal_conv1d_update(x[..., 0], torch.randn(2, 4, 2), w, cache_seqlens=torch.zeros(2))
