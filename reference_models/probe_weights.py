"""Weights for checking a model's exports where no trained weights exist (detectors; classifiers here).

Untrained weights make a poor test: their features grow to ~1e6, where fp32 rounding alone exceeds
any useful tolerance, and a zero-initialised predictor outputs constants that hide layout bugs.
"""

from __future__ import annotations

import math


def trained_like_detector(model, seed: int = 0, backbone: bool = True, images: int = 8):
    """Trained-like random values for comparing a detector with its exports (see ``trained_like``).
    ``backbone=False`` keeps the backbone (e.g. loaded ImageNet weights) and randomises the FPN and
    heads only; the predictors' 1x1 weights are drawn ~ N(0, 0.02)."""
    parts = {"": model} if backbone else {"fpn": model.fpn, "head": model.head}
    predictors = {model.head.cls_out.pw, model.head.box_out.pw}
    return trained_like(model, model.detector_def.resolution, seed, parts, predictors, images)


def trained_like(model, resolution: int, seed: int = 0, parts=None, predictors=(), images: int = 8):
    """Trained-like random values for comparing a model with its exports and quantized forms.

    Deterministic in ``seed`` alone (the module's own init used the global RNG): convs redrawn as
    timm initialises them (attention projections Xavier-uniform), conv biases ~ U(-0.1, 0.1), the
    predictors' 1x1 weights ~ N(0, 0.02) (class bias: the prior); BN gamma ~ U(0.5, 1.5), beta ~
    U(-0.2, 0.2), layer-scale gamma ~ U(0.25, 0.75); running statistics *measured* in a train-mode
    pass over ``images`` natural-looking images, then perturbed a little (mean + 0.02 sd, var x
    U(0.95, 1.05)). Measured statistics keep every map O(1) as in a trained network; untrained ones
    give features around 1e6, where fp32 rounding alone exceeds any useful tolerance. The same goes
    for attention: Xavier query and key projections of O(1) features give attention logits up to ~40,
    where PyTorch's own fp32 output is 3e-4 to 1e-3 away from float64 (Hybrid-M); the query
    projection is drawn 4x smaller (logits up to ~10, fp32 vs float64 4e-5, as for the conv models).
    Too few measurement images let unseen images drift to logits in the hundreds. ``parts`` (name ->
    module, default the whole model) are redrawn; ``predictors`` are output convs drawn ~ N(0, 0.02).
    """
    import torch

    from .probe_images import natural_images
    from .torch_blocks import LayerScale2d

    g = torch.Generator().manual_seed(seed)

    def uniform_(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    parts = parts if parts is not None else {"": model}
    predictors = set(predictors)
    norms = []
    with torch.no_grad():
        for prefix, part in parts.items():
            for name, m in part.named_modules(prefix=prefix):
                if isinstance(m, torch.nn.Conv2d):
                    if m in predictors:
                        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                        continue
                    fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                    fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                    if ".attn." in name:
                        bound = math.sqrt(6.0 / (fan_in + fan_out))
                        if ".attn.query." in name:  # softer attention, see the docstring
                            bound /= 4
                        uniform_(m.weight, -bound, bound)
                    else:
                        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_out))
                    if m.bias is not None:
                        uniform_(m.bias, -0.1, 0.1)
                elif isinstance(m, torch.nn.BatchNorm2d):
                    uniform_(m.weight, 0.5, 1.5)
                    uniform_(m.bias, -0.2, 0.2)
                    m.reset_running_stats()
                    m.momentum = None  # cumulative average: exactly this batch's statistics
                    norms.append(m)
                elif isinstance(m, LayerScale2d):
                    uniform_(m.gamma, 0.25, 0.75)
        for part in parts.values():
            part.train()
        model(torch.from_numpy(natural_images(images, resolution, seed=seed + 100)))
        model.eval()
        for m in norms:
            m.momentum = 0.1
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) * 0.02 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(m.running_var.shape, generator=g) * 0.1 + 0.95)
    return model
