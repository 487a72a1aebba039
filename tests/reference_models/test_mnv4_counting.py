"""MACs and per-layer costs against the fact sheet's counts (convs + linear + attention matmuls)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mnv4suite.reference_models import catalog, create_model  # noqa: E402
from mnv4suite.reference_models.counting import count_params, model_costs, profile  # noqa: E402
from mnv4suite.reference_models.torch_blocks import MultiQueryAttention2d  # noqa: E402

# shared/reference/mnv4_architecture.md, section 1 (GMACs at the default resolution)
FACT_SHEET_GMACS = {
    "mnv4-conv-s": 0.186,
    "mnv4-conv-m": 1.080,
    "mnv4-conv-l": 6.376,
    "mnv4-hybrid-m": 1.271,
    "mnv4-hybrid-l": 7.712,
}
FACT_SHEET_ATTENTION_GMACS = {"mnv4-hybrid-m": 0.042, "mnv4-hybrid-l": 0.340}


@pytest.mark.parametrize("model_id", list(FACT_SHEET_GMACS))
def test_macs_match_fact_sheet(model_id):
    report = model_costs(model_id)
    assert report.gmacs == pytest.approx(FACT_SHEET_GMACS[model_id], rel=0.01)
    attention_gmacs = FACT_SHEET_ATTENTION_GMACS.get(model_id, 0.0)
    assert report.attention_macs / 1e9 == pytest.approx(attention_gmacs, rel=0.01, abs=1e-9)
    assert sum(layer.macs for layer in report.layers) == report.macs  # every MAC belongs to a row
    assert (report.params, report.macs) == catalog.MEASURED[model_id]


@pytest.mark.parametrize("model_id, resolution, gmacs", [("mnv4-conv-s", 256, 0.242), ("mnv4-hybrid-m", 384, 2.975)])
def test_macs_at_other_resolutions(model_id, resolution, gmacs):
    assert model_costs(model_id, resolution).gmacs == pytest.approx(gmacs, rel=0.01)


def test_cpu_attention_is_counted():
    """On CPU, SDPA takes the flash kernel FlopCounterMode does not know; our mapping counts it."""
    torch.manual_seed(0)
    attn = MultiQueryAttention2d(dim=32, dim_out=32, heads=4, key_dim=16, value_dim=16, kv_stride=2).eval()
    report = profile(attn, 16, in_chans=32)  # 16x16 queries, 8x8 keys
    core = [layer for layer in report.layers if layer.op == "attention"]
    assert len(core) == 1
    assert core[0].macs == 4 * 256 * 64 * (16 + 16)
    assert core[0].weight_bytes == 0


def test_real_and_meta_counts_agree():
    model = create_model("mnv4-hybrid-m", num_classes=10)
    real = profile(model, 128)
    meta = model_costs("mnv4-hybrid-m", 128, num_classes=10)
    assert real.macs == meta.macs and real.attention_macs == meta.attention_macs > 0
    rows = lambda report: [(r.name, r.macs, r.activation_bytes) for r in report.layers]  # noqa: E731
    assert rows(real) == rows(meta)


def test_layer_rows():
    report = model_costs("mnv4-hybrid-m", bytes_per_element=2)
    rows = {layer.name: layer for layer in report.layers}
    stem = rows["conv_stem"]
    assert stem.op == "conv" and stem.output_shape == (1, 32, 128, 128)
    assert stem.macs == 27 * 32 * 128 * 128
    assert stem.weight_bytes == 2 * 32 * 3 * 3 * 3
    assert stem.activation_bytes == 2 * (3 * 256 * 256 + 32 * 128 * 128)
    assert rows["blocks.2.0.dw_mid.conv"].op == "dwconv"
    assert rows["classifier"].op == "linear" and rows["classifier"].weight_bytes == 2 * (1280 * 1000 + 1000)
    attn = rows["blocks.2.4.attn.attend"]
    assert attn.op == "attention" and attn.input_shapes == ((1, 1, 1024, 64), (1, 1, 64, 64), (1, 1, 64, 64))
    assert attn.intensity > 0
    assert sum(layer.weight_bytes for layer in report.layers) <= 2 * report.params


def test_count_params():
    assert count_params(create_model("mnv4-conv-s")) == 3_774_024


class _Residual(torch.nn.Module):
    """A conv with a residual add, a squeeze-excite rescale, a layer scale and a constant shift."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.gate = torch.nn.Conv2d(8, 8, 1)
        self.scale = torch.nn.Parameter(torch.ones(8))

    def forward(self, x):
        y = self.conv(x)
        y = y * self.scale.view(1, -1, 1, 1)  # a layer scale: folded into the conv by converters
        y = y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))  # squeeze-excite: a MUL op of its own
        return (x + y) + 3  # the residual add is an ADD op; "+ 3" belongs to the activation around it


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block = _Residual()
        self.head = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_residual_adds_and_squeeze_excite_multiplies_are_rows_in_execution_order(device):
    """Runtimes run them as ADD and MUL ops that read two tensors and write one; the roofline's cost
    models time them where a device's data say they cost something."""
    with torch.device(device):
        net = _Net()
    report = profile(net, 16, bytes_per_element=2)
    rows = [(r.name, r.op) for r in report.layers]
    assert rows == [("stem", "conv"), ("block.conv", "conv"), ("block.gate", "conv"), ("block.mul", "mul"),
                    ("block.add", "add"), ("head", "conv")]
    layers = {r.name: r for r in report.layers}
    assert layers["block.add"].activation_bytes == 2 * 3 * 8 * 8 * 8 and layers["block.add"].macs == 0
    assert layers["block.mul"].input_shapes == ((1, 8, 8, 8), (1, 8, 1, 1))
    assert layers["block.mul"].activation_bytes == 2 * (2 * 8 * 8 * 8 + 8) and layers["block.mul"].weight_bytes == 0


def test_public_architectures_have_their_known_residual_adds():
    """MobileNet-V2's 17 bottlenecks have 10 residual connections. Re-parameterised MobileOne-S4 has
    none, and squeeze-excite in both halves of its last 5 stage-3 blocks and its stage-4 block (12 MULs)."""
    from collections import Counter

    from mnv4suite.reference_models.table6_zoo import by_table6_name

    ops = lambda report: Counter(r.op for r in report.layers)  # noqa: E731
    assert ops(model_costs("mnv2-1.0"))["add"] == 10 and ops(model_costs("mnv2-1.0"))["mul"] == 0
    s4 = by_table6_name()["MobileOne-S4"]
    counted = ops(profile(s4.build(), s4.resolution, device="cpu"))
    assert (counted["add"], counted["mul"]) == (0, 12)
