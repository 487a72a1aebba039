"""The Keras (NHWC) twin of the PyTorch MobileNets, and the weight transfer from PyTorch to it.

    from mnv4suite.reference_models import create_model
    from mnv4suite.reference_models.keras_model import keras_from_torch
    twin = keras_from_torch(create_model("mnv4-conv-s", weights=...))   # same logits, NHWC input

Both builders read the same resolved ``specs.ModelPlan``, and every Keras layer that holds weights
carries the name of the PyTorch module it mirrors, so the transfer below is a strict, one-to-one
name match: a block the Keras side lacks, or a weight it would leave untouched, is an error rather
than a silently random layer. The twin is an inference graph (no dropout, no drop path), which is
what TFLite conversion wants.

Imports TensorFlow/Keras (and numpy); torch is only touched through the module passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
from keras import layers

from . import specs
from .keras_blocks import BN_EPS, FlattenPooled, LayerScale, activation, batch_norm, build_block, conv2d


def build_keras(
    model: str | specs.ModelDef | specs.ModelPlan,
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    input_size: int | tuple[int, int] | None = None,
) -> keras.Model:
    """Build the randomly initialised Keras twin: input [batch, H, W, 3] float32, output logits.

    ``model`` is a model id / timm alias, a ``ModelDef``, or an already resolved ``ModelPlan``
    (then ``width_multiplier`` is ignored). ``input_size`` defaults to the model's resolution; the
    spatial size is fixed because converters (TFLite) want static shapes; the batch is dynamic.
    """
    if isinstance(model, specs.ModelPlan):
        model_plan = model
    else:
        model_def = model if isinstance(model, specs.ModelDef) else specs.get_model_def(model)
        model_plan = specs.plan(model_def, width_multiplier)
    model_def = model_plan.model
    size = input_size or model_def.resolution
    height, width = (size, size) if isinstance(size, int) else size

    inputs = keras.Input((height, width, 3), name="input")
    x = conv2d(inputs, model_plan.stem_chs, model_def.stem_kernel, model_def.stem_stride, name="conv_stem")
    x = batch_norm(x, name="bn1")
    x = activation(x, model_def.act, name="act1")
    for block in model_plan.blocks:
        x = build_block(x, block)

    head = model_def.head
    x = layers.GlobalAveragePooling2D(keepdims=True, name="global_pool")(x)  # pool first: efficient head
    if head.width is not None:
        x = conv2d(x, model_plan.head_chs, 1, name="conv_head", bias=head.bias)
        if head.norm:
            x = batch_norm(x, name="norm_head")
        x = activation(x, model_def.act, name="act_head")
    x = FlattenPooled(name="flatten")(x)
    if num_classes > 0:
        x = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, x, name=model_def.id)


def keras_from_torch(
    torch_module, model_id: str | None = None, input_size: int | tuple[int, int] | None = None
) -> keras.Model:
    """The Keras twin of a PyTorch ``MobileNet`` (from ``create_model``), carrying its weights.

    The twin is built from the module's own plan (width multiplier and class count included);
    ``model_id``, when given, is only checked against it. A RetinaNet detector (``retinanet.py``)
    gets its detector twin (``keras_retinanet``), output [batch, anchors, 4 + classes].
    """
    detector_def = getattr(torch_module, "detector_def", None)
    if detector_def is not None:
        from .detectors import get_detector_def
        from .keras_retinanet import keras_detector_from_torch

        if model_id is not None and get_detector_def(model_id).id != detector_def.id:
            raise ValueError(f"model_id '{model_id}' does not match the module, which is '{detector_def.id}'")
        return keras_detector_from_torch(torch_module, input_size=input_size)
    module_plan: specs.ModelPlan = torch_module.plan
    if model_id is not None and specs.get_model_def(model_id).id != module_plan.model.id:
        raise ValueError(f"model_id '{model_id}' does not match the module, which is '{module_plan.model.id}'")
    twin = build_keras(module_plan, num_classes=torch_module.num_classes, input_size=input_size)
    transfer_weights(torch_module, twin)
    return twin


# --------------------------------------------------------------------------- weight transfer


def torch_weights(torch_module) -> dict[str, dict[str, np.ndarray]]:
    """{module name: {tensor name: float32 array}} for every module that owns parameters/buffers.

    BatchNorm's ``num_batches_tracked`` counter is training state and is dropped.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, mod in torch_module.named_modules():
        tensors = {**dict(mod.named_parameters(recurse=False)), **dict(mod.named_buffers(recurse=False))}
        tensors.pop("num_batches_tracked", None)
        if tensors:
            out[name] = {k: v.detach().cpu().float().numpy() for k, v in tensors.items()}
            if hasattr(mod, "eps") and abs(mod.eps - BN_EPS) > 1e-12:
                raise ValueError(f"{name}: BatchNorm eps {mod.eps} differs from the Keras twin's {BN_EPS}")
    return out


def keras_values(layer: layers.Layer, t: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """PyTorch tensors of one module -> the Keras layer's weight list, in ``layer.weights`` order.

    conv OIHW -> HWIO; depthwise [C, 1, k, k] -> [k, k, C, 1]; BN (gamma, beta, mean, var);
    Linear [out, in] -> [in, out]; layer scale gamma as is.
    """
    if isinstance(layer, layers.DepthwiseConv2D):
        return [t["weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):
        return [t["weight"].transpose(2, 3, 1, 0)] + ([t["bias"]] if layer.use_bias else [])
    if isinstance(layer, layers.BatchNormalization):
        return [t["weight"], t["bias"], t["running_mean"], t["running_var"]]
    if isinstance(layer, layers.Dense):
        return [t["weight"].T] + ([t["bias"]] if layer.use_bias else [])
    if isinstance(layer, LayerScale):
        return [t["gamma"]]
    raise TypeError(f"no weight conversion for Keras layer {layer.name} ({type(layer).__name__})")


def transfer_weights(torch_module, keras_model: keras.Model) -> None:
    """Copy every PyTorch weight into the same-named Keras layer; strict in both directions."""
    source = torch_weights(torch_module)
    targets = {layer.name: layer for layer in keras_model.layers if layer.weights}
    missing = sorted(set(source) - set(targets))
    unexpected = sorted(set(targets) - set(source))
    if missing or unexpected:
        raise ValueError(
            f"PyTorch and Keras models do not correspond: no Keras layer for {missing[:8]}; "
            f"no PyTorch module for {unexpected[:8]}"
        )
    for name, layer in targets.items():
        values = keras_values(layer, source[name])
        expected = [tuple(w.shape) for w in layer.weights]
        got = [v.shape for v in values]
        if got != expected:
            raise ValueError(f"{name}: converted shapes {got} do not fit the Keras layer's {expected}")
        layer.set_weights(values)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """A PyTorch-layout batch as the twin's input."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 2, 3, 1))
