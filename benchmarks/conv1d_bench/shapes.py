"""The benchmark sweep: conv1d shapes taken from real models, as data. Add a shape by adding a record.

A record with transposed=True is a transposed convolution (the upsampling layers of vocoders and codec
decoders): ours is conv1d_ext.conv_transpose1d against F.conv_transpose1d, L is the input length and the
weight is (C_in, C_out / groups, k).

A record with causal=True is a causal depthwise convolution (Mamba, Conformer; family "causal"): ours is
conv1d_ext.causal_conv1d_fn against PyTorch's best expression, F.conv1d(x, w, b, padding=k-1,
groups=C)[..., :L] (then F.silu with activation="silu"); the weight is (C, 1, k), padding = k - 1 and the
output has L positions. layout="channels_last" gives x as a (N, L, C) contiguous tensor transposed.

A record with decode=True (family "causal_decode") is one decode step of a causal convolution: ours is
conv1d_ext.causal_conv1d_update on x (N, C) and a conv_state (N, C, k - 1), against causal-conv1d's
reference roll-and-sum (conv_state.copy_(roll(conv_state, -1)); conv_state[..., -1] = x;
sum(conv_state·w) + b, then F.silu), which keeps a (N, C, k) state; forward only (L = 1)."""

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Shape:
    name: str
    family: str  # dense | dilated | grouped | depthwise | frontend | pointwise | transposed
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
    transposed: bool = False  # a transposed convolution (F.conv_transpose1d)
    output_padding: int = 0  # transposed only
    causal: bool = False  # a causal depthwise convolution (conv1d_ext.causal_conv1d_fn)
    activation: str | None = None  # causal only: None or "silu"
    layout: str = "contiguous"  # causal only: "contiguous" or "channels_last" (x as (N, L, C) transposed)
    decode: bool = False  # causal only: one decode step (conv1d_ext.causal_conv1d_update), L = 1

    @property
    def out_len(self):
        if self.transposed:
            return ((self.L - 1) * self.stride - 2 * self.padding + self.dilation * (self.k - 1)
                    + self.output_padding + 1)
        if self.causal:
            return self.L
        return (self.L + 2 * self.padding - self.dilation * (self.k - 1) - 1) // self.stride + 1

    def conv_args(self):
        """The arguments after (input, weight, bias) of F.conv1d, or of F.conv_transpose1d if transposed."""
        if self.transposed:
            return self.stride, self.padding, self.output_padding, self.groups, self.dilation
        return self.stride, self.padding, self.dilation, self.groups

    @property
    def weight_shape(self):
        if self.transposed:
            return self.C_in, self.C_out // self.groups, self.k
        return self.C_out, self.C_in // self.groups, self.k

    def flops_fwd(self):
        if self.transposed:  # every input element meets C_out/groups·k weights
            return 2 * self.N * self.C_in * self.L * (self.C_out // self.groups) * self.k
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
        s = f"{'convT ' if self.transposed else ''}B{self.N} C{self.C_in}→{self.C_out} L{self.L} k{self.k}"
        for key, val, default in (
            ("s", self.stride, 1),
            ("d", self.dilation, 1),
            ("p", self.padding, 0),
            ("op", self.output_padding, 0),
            ("g", self.groups, 1),
        ):
            if val != default:
                s += f" {key}{val}"
        if self.decode:
            s += " decode step"
        if self.causal:
            s += " causal" + (f" {self.activation}" if self.activation else "") + (
                " CL" if self.layout == "channels_last" else "")
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
    # Wav2Vec2 / HuBERT (base): the feature encoder's first two layers on 1 s of 16 kHz audio, and the
    # grouped positional convolution over 10 s of frames (50 per second).
    Shape("w2v2_fe0_c1to512_k10s5", "frontend", N=8, C_in=1, C_out=512, L=16000, k=10, stride=5,
          source="Wav2Vec2 feature encoder layer 0: Conv1d(1, 512, 10, stride=5), 1 s at 16 kHz"),
    Shape("w2v2_fe1_c512_k3s2", "dense", N=8, C_in=512, C_out=512, L=3199, k=3, stride=2,
          source="Wav2Vec2 feature encoder layer 1: Conv1d(512, 512, 3, stride=2)"),
    Shape("w2v2_posconv_c768_k128g16", "grouped", N=8, C_in=768, C_out=768, L=500, k=128, padding=64,
          groups=16, source="Wav2Vec2 positional conv: Conv1d(768, 768, 128, padding=64, groups=16), 10 s"),
    # Transposed (upsampling) convolutions of vocoders and codec decoders; L = input frames.
    Shape("convT_hifigan_b4_c512_k16s8", "transposed", N=4, C_in=512, C_out=256, L=86, k=16, stride=8,
          padding=4, transposed=True,
          source="HiFi-GAN V1 first upsampler ConvTranspose1d(512, 256, 16, 8, padding=4): 86 mel frames "
                 "(1 s at 22.05 kHz, hop 256)"),
    Shape("convT_hifigan_b16_c512_k16s8", "transposed", N=16, C_in=512, C_out=256, L=86, k=16, stride=8,
          padding=4, transposed=True, source="HiFi-GAN V1 first upsampler, batch 16 (training)"),
    Shape("convT_encodec_c512_k16s8", "transposed", N=8, C_in=512, C_out=256, L=75, k=16, stride=8,
          transposed=True,
          source="SEANet/EnCodec decoder ratio 8 (k = 2·stride, padding 0, trimmed after): 1 s at 75 "
                 "frames/s"),
    Shape("convT_encodec_c256_k10s5", "transposed", N=8, C_in=256, C_out=128, L=600, k=10, stride=5,
          transposed=True, source="SEANet/EnCodec decoder ratio 5, 1 s (600 frames after ×8)"),
    Shape("convT_encodec_c128_k8s4", "transposed", N=8, C_in=128, C_out=64, L=3000, k=8, stride=4,
          transposed=True, source="SEANet/EnCodec decoder ratio 4, 1 s (3000 frames after ×40)"),
    Shape("convT_encodec_c64_k4s2", "transposed", N=8, C_in=64, C_out=32, L=12000, k=4, stride=2,
          transposed=True, source="SEANet/EnCodec decoder ratio 2, 1 s (12000 frames after ×160)"),
    Shape("convT_dac_c1536_k16s8", "transposed", N=4, C_in=1536, C_out=768, L=100, k=16, stride=8,
          padding=4, transposed=True,
          source="DAC decoder first block ConvTranspose1d(1536, 768, 16, 8, padding=ceil(8/2)): 100 frames"),
    Shape("convT_dw_c512_k4s2", "transposed", N=8, C_in=512, C_out=512, L=2048, k=4, stride=2, padding=1,
          groups=512, transposed=True, source="depthwise transposed upsampler ×2 (k4 s2 p1, groups = channels)"),
    # Causal depthwise convolutions (conv1d_ext.causal_conv1d_fn against F.conv1d(pad k-1)[..., :L] + silu).
    Shape("causal_mamba_c1536_k4_silu", "causal", N=8, C_in=1536, C_out=1536, L=2048, k=4, groups=1536,
          padding=3, causal=True, activation="silu",
          source="Mamba (d_inner 1536) causal conv1d k4 + SiLU, (B, D, L) layout"),
    Shape("causal_mamba_c1536_k4_silu_cl", "causal", N=8, C_in=1536, C_out=1536, L=2048, k=4, groups=1536,
          padding=3, causal=True, activation="silu", layout="channels_last",
          source="Mamba causal conv1d k4 + SiLU, channels-last x ((B, L, D) transposed)"),
    Shape("causal_conformer_c256_k31", "causal", N=8, C_in=256, C_out=256, L=4096, k=31, groups=256,
          padding=30, causal=True, source="streaming (causal) Conformer conv module: depthwise k31"),
    Shape("causal_conformer_c256_k31_cl", "causal", N=8, C_in=256, C_out=256, L=4096, k=31, groups=256,
          padding=30, causal=True, layout="channels_last",
          source="streaming Conformer depthwise k31, channels-last x ((B, T, C) transposed, as Conformer "
                 "blocks hold it)"),
    Shape("causal_mamba_c2048_k4_silu", "causal", N=8, C_in=2048, C_out=2048, L=2048, k=4, groups=2048,
          padding=3, causal=True, activation="silu",
          source="Mamba (d_inner 2048, e.g. Mamba-370M) causal conv1d k4 + SiLU, (B, D, L) layout"),
    # One decode step (causal_conv1d_update) against causal-conv1d's reference roll-and-sum.
    Shape("causal_decode_b1_c2048_k4_silu", "causal_decode", N=1, C_in=2048, C_out=2048, L=1, k=4,
          groups=2048, padding=3, causal=True, activation="silu", decode=True,
          source="Mamba decode step (d_inner 2048), batch 1: causal_conv1d_update vs roll-and-sum"),
    Shape("causal_decode_b64_c2048_k4_silu", "causal_decode", N=64, C_in=2048, C_out=2048, L=1, k=4,
          groups=2048, padding=3, causal=True, activation="silu", decode=True,
          source="Mamba decode step (d_inner 2048), batch 64: causal_conv1d_update vs roll-and-sum"),
]
# fmt: on


def quick_shape(s):
    """The same configuration, tiny: batch ≤ 2, length / 16 (long enough for the kernel span); a decode
    step keeps its length 1."""
    if s.decode:
        return replace(s, N=min(s.N, 2))
    span = s.dilation * (s.k - 1) + 1
    return replace(s, N=min(s.N, 2), L=max(s.L // 16, span + 2 * s.stride))


def scaled_shape(s, batch_scale):
    """The same configuration with batch_scale times the batch (a GPU needs more work per call than
    these CPU-sized shapes give: the GPU sweep wants >= 100 us per cuDNN call); decode steps unchanged."""
    return s if s.decode or batch_scale == 1 else replace(s, N=s.N * batch_scale)


def select(keys, quick=False, batch_scale=1):
    """The sweep's shapes whose name contains one of `keys` or whose family is one (all when keys is empty);
    tiny versions with quick, else batch_scale times the batch. Raises ValueError when nothing matches."""
    shapes = [s for s in SWEEP if not keys or any(k in s.name or k == s.family for k in keys)]
    if not shapes:
        raise ValueError(f"{','.join(keys)!r} matches none of: {', '.join(s.name for s in SWEEP)}")
    return [quick_shape(s) for s in shapes] if quick else [scaled_shape(s, batch_scale) for s in shapes]


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
