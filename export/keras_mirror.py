"""A Keras copy of the student (ResNet1D, TCN or the spectral CNN) with the PyTorch weights, the path to a TFLM-only INT8
flatbuffer.

Built from ``edgekd.model.block_specs`` / ``edgekd.tcn.dilations`` so the two never disagree on shapes. Layout is channels-last
([N, 200, C]) because that is what TFLite's Conv1D lowering (EXPAND_DIMS -> CONV_2D -> RESHAPE) wants and
what firmware fills sample by sample. Facts that make the float outputs match (REFERENCE.md section 5):
BatchNorm epsilon 1e-5; the convolutions' "same" padding puts the smaller half on the left like TF SAME;
the shortcut max-pool pads a zero on the right, so it is an explicit pad and a 'valid' pool.
"""

from __future__ import annotations

import keras  # this module is imported only when exporting: TensorFlow takes seconds to load
import numpy as np
import torch

from edgekd import arch, spectral_net, tcn
from edgekd.arch import family
from edgekd.geometry import WINDOW
from edgekd.model import BN_EPS, KERNEL, STEM_WIDTH, ResNet1D, block_specs
from edgekd.spectral_input import EVIDENCE


class ChannelPad(keras.layers.Layer):
    """Zero channels on both sides: the weightless widening shortcut (lowers to one PAD op)."""

    def __init__(self, left: int, right: int, **kwargs):
        super().__init__(**kwargs)
        self.left, self.right = left, right

    def call(self, x):
        return keras.ops.pad(x, [[0, 0], [0, 0], [self.left, self.right]])


def _bn(sd: dict[str, np.ndarray], x, prefix: str, name: str, eps: float):
    layer = keras.layers.BatchNormalization(epsilon=eps, name=name)
    y = layer(x)
    layer.set_weights([sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], sd[f"{prefix}.running_mean"],
                       sd[f"{prefix}.running_var"]])
    return y


class ToImage(keras.layers.Layer):
    """[N, L, C] -> [N, L, 1, C] as one EXPAND_DIMS (a Reshape with a dynamic batch lowers to SHAPE/PACK ops)."""

    def call(self, x):
        return keras.ops.expand_dims(x, 2)


class ToVector(keras.layers.Layer):
    """[N, L, 1, 1] -> [N, L]: a squeeze lowers to one RESHAPE with a constant shape (a keras Reshape with a
    dynamic batch lowers to SHAPE, STRIDED_SLICE and PACK ops before it)."""

    def call(self, x):
        return keras.ops.squeeze(x, axis=(2, 3))


def build_keras(model: torch.nn.Module):
    """A keras.Model computing the same logits as ``edgekd.arch.graph_module(model)`` (eval mode) on its
    input channels-last: [N, 200, C] windows, or [N, 180, 7] spectra for a spectral student."""
    builders = {"tcn": _build_tcn, "spectral": _build_spectral, "resnet": _build_resnet}
    return builders[family(model.config())](model)


def _fold_bn(sd: dict[str, np.ndarray], conv: str, bn: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights [out, in, k] and bias with the following eval-mode BatchNorm folded in (per out channel)."""
    g = sd[f"{bn}.weight"] / np.sqrt(sd[f"{bn}.running_var"] + eps)
    w = sd[f"{conv}.weight"] * g[:, None, None]
    b = (sd[f"{conv}.bias"] - sd[f"{bn}.running_mean"]) * g + sd[f"{bn}.bias"]
    return w.astype(np.float32), b.astype(np.float32)


def _build_tcn(model: tcn.TCN):
    """The TCN as a 2-D graph of width-1 images: one EXPAND_DIMS of the window to [N, 200, 1, C], then Conv2D /
    DepthwiseConv2D with (k, 1) kernels (SAME padding, strided stem and even blocks) and pointwise 1x1 convs.
    Keras' Conv1D would wrap every convolution in EXPAND_DIMS + RESHAPE (two ops and two tensors each, a third
    of a small model's flatbuffer). Each BatchNorm is folded into the convolution before it."""
    L = keras.layers
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    inp = keras.Input((WINDOW, model.in_channels), batch_size=None, name="window")
    h = ToImage(name="to_2d")(inp)

    def conv(x, conv_key: str, bn_key: str, kernel: int, stride: int, name: str, depthwise: bool, relu: bool):
        kw = {"strides": (stride, 1), "padding": "same", "activation": "relu" if relu else None, "name": name}
        layer = L.DepthwiseConv2D((kernel, 1), **kw) if depthwise else L.Conv2D(model.width, (kernel, 1), **kw)
        y = layer(x)
        w, b = _fold_bn(sd, conv_key, bn_key, tcn.BN_EPS)
        # PyTorch [out, in/groups, k] -> Keras Conv2D [k, 1, in, out] / DepthwiseConv2D [k, 1, C, 1].
        layer.set_weights([w.transpose(2, 0, 1)[:, None] if depthwise else w.transpose(2, 1, 0)[:, None], b])
        return y

    h = conv(h, "stem.conv", "stem_bn", tcn.STEM_KERNEL, tcn.STRIDE, "stem", False, True)
    for i, stride in enumerate(tcn.strides(model.blocks)):
        p = f"layers.{i}"
        y = conv(h, f"{p}.depthwise.conv", f"{p}.bn1", tcn.KERNEL, stride, f"b{i}_dw", True, True)
        y = conv(y, f"{p}.pointwise", f"{p}.bn2", 1, 1, f"b{i}_pw", False, False)
        h = L.ReLU(name=f"b{i}_relu")(y if stride != 1 else L.Add(name=f"b{i}_add")([h, y]))
    h = L.GlobalAveragePooling2D(name="mean")(h)
    fc = L.Dense(model.n_classes, name="fc")
    logits = fc(h)
    fc.set_weights([sd["fc.weight"].T, sd["fc.bias"]])
    return keras.Model(inp, logits, name=f"tcn_{model.blocks}x{model.width}")


def _build_spectral(model: spectral_net.SpectralNet):
    """The spectral CNN on its features as width-1 images ([N, 180, 1, 7], frequency along the first axis):
    Conv2D with (9, 1) kernels (SAME = PyTorch's padding 4), residual ADDs, the 1x1 head, plus the evidence
    channel picked by a fixed 1x1 convolution (one CONV_2D, where a slice would lower to STRIDED_SLICE), then
    one RESHAPE to the [N, 180] logits."""
    L = keras.layers
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    gin = arch.graph_input(model.config())
    inp = keras.Input((gin.length, gin.channels), batch_size=None, name=gin.name)
    f = ToImage(name="to_2d")(inp)

    def conv(x, key: str, cout: int, kernel: int, name: str, relu: bool):
        layer = L.Conv2D(cout, (kernel, 1), padding="same", activation="relu" if relu else None, name=name)
        y = layer(x)
        layer.set_weights([sd[f"{key}.weight"].transpose(2, 1, 0)[:, None], sd[f"{key}.bias"]])
        return y

    h = conv(f, "stem", model.width, spectral_net.KERNEL, "stem", True)
    for i in range(model.blocks):
        y = conv(h, f"layers.{i}.conv", model.width, spectral_net.KERNEL, f"b{i}_conv", False)
        h = L.ReLU(name=f"b{i}_relu")(L.Add(name=f"b{i}_add")([h, y]))
    correction = conv(h, "head", 1, 1, "head", False)
    pick = L.Conv2D(1, (1, 1), use_bias=False, name="evidence")
    evidence = pick(f)
    pick.set_weights([np.eye(gin.channels, dtype=np.float32)[:, EVIDENCE].reshape(1, 1, gin.channels, 1)])
    logits = ToVector(name="logits")(L.Add(name="add_evidence")([correction, evidence]))
    return keras.Model(inp, logits, name=f"spectral_{model.blocks}x{model.width}")


def _build_resnet(model: ResNet1D):
    L = keras.layers
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

    def conv(x, prefix: str, cout: int, stride: int, name: str):
        layer = L.Conv1D(cout, KERNEL, strides=stride, padding="same", name=name)
        y = layer(x)
        # PyTorch Conv1d weight is [out, in, k]; Keras wants [k, in, out].
        layer.set_weights([sd[f"{prefix}.weight"].transpose(2, 1, 0), sd[f"{prefix}.bias"]])
        return y

    def bn(x, prefix: str, name: str):
        return _bn(sd, x, prefix, name, BN_EPS)

    inp = keras.Input((WINDOW, model.in_channels), batch_size=None, name="window")
    h = conv(inp, "stem.conv", STEM_WIDTH, 1, "stem_conv")
    h = L.ReLU(name="stem_relu")(bn(h, "stem_bn", "stem_bn"))
    for spec in block_specs(model.blocks):
        p = f"layers.{spec.index}"
        out = h
        if not spec.first:
            out = L.ReLU(name=f"b{spec.index}_relu1")(bn(out, f"{p}.bn1", f"b{spec.index}_bn1"))
        out = conv(out, f"{p}.conv1.conv", spec.out_ch, spec.stride, f"b{spec.index}_conv1")
        out = L.ReLU(name=f"b{spec.index}_relu2")(bn(out, f"{p}.bn2", f"b{spec.index}_bn2"))
        out = conv(out, f"{p}.conv2.conv", spec.out_ch, 1, f"b{spec.index}_conv2")
        identity = h
        if spec.downsample:
            identity = L.ZeroPadding1D((0, 1), name=f"b{spec.index}_pool_pad")(identity)
            identity = L.MaxPooling1D(2, 2, padding="valid", name=f"b{spec.index}_pool")(identity)
        extra = spec.out_ch - spec.in_ch
        if extra:
            identity = ChannelPad(extra // 2, extra - extra // 2, name=f"b{spec.index}_chpad")(identity)
        h = L.Add(name=f"b{spec.index}_add")([out, identity])
    h = L.ReLU(name="final_relu")(bn(h, "final_bn", "final_bn"))
    h = L.GlobalAveragePooling1D(name="mean")(h)
    fc = L.Dense(model.n_classes, name="fc")
    logits = fc(h)
    fc.set_weights([sd["fc.weight"].T, sd["fc.bias"]])
    return keras.Model(inp, logits, name=f"resnet1d_{model.blocks}")


def mirror_max_abs_diff(model: torch.nn.Module, kmodel, x: np.ndarray) -> float:
    """Max abs logit difference between PyTorch and the Keras mirror in float32 on the graph's input x
    ([N, C, L], edgekd.arch.to_graph_input)."""
    with torch.no_grad():
        ref = arch.graph_module(model)(torch.from_numpy(x)).numpy()
    got = np.asarray(kmodel(np.ascontiguousarray(x.transpose(0, 2, 1)), training=False))
    return float(np.abs(ref - got).max())
