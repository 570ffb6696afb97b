"""The benchmark sweep: conv1d shapes taken from real models, as data. Add a shape by adding a record."""

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Shape:
    name: str
    family: str  # dense | dilated | grouped | depthwise | frontend | pointwise
    N: int
    C_in: int
    C_out: int
    L: int
    k: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    source: str = ""  # the model this comes from; its padding is what that model uses

    @property
    def out_len(self):
        return (self.L + 2 * self.padding - self.dilation * (self.k - 1) - 1) // self.stride + 1

    def flops_fwd(self):
        return 2 * self.N * self.C_out * self.out_len * (self.C_in // self.groups) * self.k

    def numels(self):
        """(x, w, b, y) element counts."""
        return (
            self.N * self.C_in * self.L,
            self.C_out * (self.C_in // self.groups) * self.k,
            self.C_out,
            self.N * self.C_out * self.out_len,
        )

    def describe(self):
        s = f"B{self.N} C{self.C_in}→{self.C_out} L{self.L} k{self.k}"
        for key, val, default in (
            ("s", self.stride, 1),
            ("d", self.dilation, 1),
            ("p", self.padding, 0),
            ("g", self.groups, 1),
        ):
            if val != default:
                s += f" {key}{val}"
        return s


# fmt: off
SWEEP = [
    Shape("dense_c64_k3", "dense", N=8, C_in=64, C_out=64, L=4096, k=3, padding=1,
          source="1D ResNet / U-Net block, 'same'"),
    Shape("dense_c256_k3", "dense", N=8, C_in=256, C_out=256, L=2048, k=3, padding=1,
          source="1D ResNet / U-Net block, 'same'"),
    Shape("strided_c128_k7s2", "dense", N=8, C_in=128, C_out=128, L=4096, k=7, stride=2, padding=3,
          source="downsampling stem (ResNet-style k7 s2 p3)"),
    Shape("tcn_c64_k3d8", "dilated", N=8, C_in=64, C_out=64, L=8192, k=3, dilation=8, padding=16,
          source="TCN (Bai et al.): pad (k-1)·d both sides, chomp the right (k-1)·d after"),
    Shape("tcn_c128_k2d64", "dilated", N=4, C_in=128, C_out=128, L=8192, k=2, dilation=64, padding=64,
          source="WaveNet/TCN k2 dilation 64, causal via pad (k-1)·d + chomp"),
    Shape("grouped_c256_k5d2g8", "grouped", N=8, C_in=256, C_out=256, L=2048, k=5, dilation=2, groups=8,
          padding=4, source="grouped conv (ResNeXt-style), 'same'"),
    Shape("dw_mamba_c512_k4", "depthwise", N=8, C_in=512, C_out=512, L=4096, k=4, groups=512, padding=3,
          source="Mamba short conv: nn.Conv1d(k=4, groups=C, padding=3), output[..., :L]"),
    Shape("dw_conformer_c256_k31", "depthwise", N=8, C_in=256, C_out=256, L=4096, k=31, groups=256,
          padding=15, source="Conformer conv module: depthwise k31, padding 15"),
    Shape("wave_c1to64_k80s4", "frontend", N=16, C_in=1, C_out=64, L=16000, k=80, stride=4,
          source="raw-waveform front end (M5-style k80 s4), 1 s at 16 kHz, no padding"),
    Shape("pointwise_c256to512", "pointwise", N=8, C_in=256, C_out=512, L=2048, k=1,
          source="pointwise 1x1 (channel mixing)"),
]
# fmt: on


def quick_shape(s):
    """The same configuration, tiny: batch ≤ 2, length / 16 (long enough for the kernel span)."""
    span = s.dilation * (s.k - 1) + 1
    return replace(s, N=min(s.N, 2), L=max(s.L // 16, span + 2 * s.stride))


def select(keys, quick=False):
    """The sweep's shapes whose name contains one of `keys` or whose family is one (all when keys is empty);
    tiny versions with quick. Raises ValueError when nothing matches."""
    shapes = [s for s in SWEEP if not keys or any(k in s.name or k == s.family for k in keys)]
    if not shapes:
        raise ValueError(f"{','.join(keys)!r} matches none of: {', '.join(s.name for s in SWEEP)}")
    return [quick_shape(s) for s in shapes] if quick else shapes


def source_of(name):
    return next((s.source for s in SWEEP if s.name == name), "")


DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "float16": torch.float16,
}
SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float64: "fp64", torch.float16: "fp16"}
DTYPES_BY_SHORT = {v: k for k, v in SHORT.items()}
