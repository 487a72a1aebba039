"""MobileNet MultiHardware MAX / AVG at width 1.5x, described for counting only (no weights, no training).

Source: Chu et al., "Discovering Multi-Hardware Mobile Models via Architecture Search" (arXiv 2008.08178),
as built by TensorFlow Model Garden: ``official/vision/modeling/backbones/mobilenet.py``
(``MNMultiMAX_BLOCK_SPECS``, ``MNMultiAVG_BLOCK_SPECS``, ``block_spec_decoder``, ``MobileNet``), its
``InvertedBottleneckBlock`` (``layers/nn_blocks.py``) and ``make_divisible`` / ``round_filters``
(``layers/nn_layers.py``); the classifier is Model Garden's ``ClassificationModel`` (global average
pool, dropout, a Dense with bias). Written from those readings, not copied.

Width: every spec's ``filters`` goes through ``round_filters(f, 1.5, divisor=8, min_depth=8)``, the
final 960 and 1280 convs included: ``finegrain_classification_mode`` only keeps the last conv at 1280
for multipliers *below* 1, so at 1.5x they become 1440 and 1920. An inverted bottleneck's expansion is
``make_divisible(in * ratio, 8)`` of its (already scaled) input; the residual is taken when stride is 1
and in == out. ReLU throughout; convs without bias, each followed by BN (kept as a module, counted
as parameters and given no row).
"""

from __future__ import annotations

from torch import nn

WIDTH = 1.5

# (kernel, stride, filters, expand ratio) of the inverted bottlenecks, in spec order
_MAX_BLOCKS = (
    (3, 2, 32, 3.0),
    (5, 2, 64, 6.0),
    (3, 1, 64, 2.0),
    (3, 1, 64, 2.0),
    (5, 2, 128, 6.0),
    (3, 1, 128, 4.0),
    (3, 1, 128, 3.0),
    (3, 1, 128, 3.0),
    (3, 1, 128, 6.0),
    (3, 1, 128, 3.0),
    (3, 2, 160, 6.0),
    (5, 1, 160, 4.0),
    (3, 1, 160, 5.0),
    (5, 1, 160, 4.0),
)
_AVG_BLOCKS = (
    (3, 2, 32, 3.0),
    (3, 1, 32, 2.0),
    (5, 2, 64, 5.0),
    (3, 1, 64, 3.0),
    (3, 1, 64, 2.0),
    (3, 1, 64, 3.0),
    (5, 2, 128, 6.0),
    (3, 1, 128, 3.0),
    (3, 1, 128, 3.0),
    (3, 1, 128, 3.0),
    (3, 1, 160, 6.0),
    (3, 1, 160, 4.0),
    (3, 2, 192, 6.0),
    (5, 1, 192, 4.0),
    (5, 1, 192, 4.0),
    (5, 1, 192, 4.0),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Model Garden's rounding: to the nearest multiple, never below ``min_value``, nor more than 10% down."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * value else new)


def round_filters(filters: int, multiplier: float = WIDTH) -> int:
    return make_divisible(filters * multiplier, 8, min_value=8)


class ConvBN(nn.Sequential):
    """Model Garden's ``Conv2DBNBlock``: conv (no bias), BN, optional ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class InvertedBottleneck(nn.Module):
    """1x1 expand, kxk depthwise (strided), 1x1 project; residual when the shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: float):
        super().__init__()
        mid = make_divisible(cin * expand, 8)
        self.block = nn.Sequential(
            ConvBN(cin, mid), ConvBN(mid, mid, kernel, stride, groups=mid), ConvBN(mid, cout, act=False)
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MultiHardwareNet(nn.Module):
    """Stem 3x3 s2 conv, the inverted bottlenecks, 1x1 conv (960 * width), GAP, 1x1 conv (1280 * width)
    on the pooled map, then the classifier Dense."""

    def __init__(self, blocks, width: float = WIDTH, num_classes: int = 1000):
        super().__init__()
        cin = round_filters(32, width)
        layers = [ConvBN(3, cin, 3, 2)]
        for kernel, stride, filters, expand in blocks:
            cout = round_filters(filters, width)
            layers.append(InvertedBottleneck(cin, cout, kernel, stride, expand))
            cin = cout
        self.features = nn.Sequential(*layers)
        # finegrain_classification_mode: below 1x the last conv's filters are divided by the width first
        feat, head = round_filters(960, width), round_filters(1280 / min(width, 1.0), width)
        self.head = nn.Sequential(
            ConvBN(cin, feat), nn.AdaptiveAvgPool2d(1), ConvBN(feat, head), nn.Flatten(1), nn.Linear(head, num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


def multihardware_max_15(num_classes: int = 1000) -> MultiHardwareNet:
    return MultiHardwareNet(_MAX_BLOCKS, WIDTH, num_classes)


def multihardware_avg_15(num_classes: int = 1000) -> MultiHardwareNet:
    return MultiHardwareNet(_AVG_BLOCKS, WIDTH, num_classes)
