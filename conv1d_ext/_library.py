"""The op library and what every op family's Python registrations share.

Importing this module loads conv1d_ext._C, the C++ library that defines the op schemas
(csrc/core/op_list.h) and registers their CPU (and, when built, CUDA) kernels. ``ops`` is the op
namespace, torch.ops.conv1d_ext. The conv ops' registrations live in _conv_ops.py, the causal ops' in
_causal_ops.py; both use the helpers here.
"""

import torch

from . import _C  # noqa: F401  (loads the op library)

NAMESPACE = "conv1d_ext"
ops = torch.ops.conv1d_ext

# The dtypes the kernels are built for (csrc/core/op_common.h's check_floating).
FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def require(op, condition, what):
    """A fake kernel's check: RuntimeError "conv1d_ext::<op>: <what>" unless `condition` (which may be
    symbolic). The fake kernels reject what the real kernels reject with the same exception type; the
    detailed messages (PyTorch's wording) live once, in the C++ checks."""
    torch._check(condition, lambda: f"{NAMESPACE}::{op}: {what}")

