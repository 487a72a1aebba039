"""The paper comparison: Spearman per device equals scipy's."""

from __future__ import annotations

import pytest

from mnv4suite.reports import paper


def test_spearman_per_device_equals_scipy():
    pytest.importorskip("torch")
    stats = pytest.importorskip("scipy.stats")
    comparisons = paper.device_comparisons()
    assert len(comparisons) == 7
    for cmp in comparisons:
        assert len(cmp.rows) >= 9
        paper_ms = [r["paper_ms"] for r in cmp.rows]
        assert cmp.spearman_roofline == pytest.approx(stats.spearmanr([r["estimated_ms"] for r in cmp.rows], paper_ms)[0], abs=1e-12)
        assert cmp.spearman_macs == pytest.approx(stats.spearmanr([r["macs"] for r in cmp.rows], paper_ms)[0], abs=1e-12)
        assert all(r["ratio"] == pytest.approx(r["estimated_ms"] / r["paper_ms"]) for r in cmp.rows)
    table16 = {c.device: c.paper_spearman_roofline for c in comparisons}
    assert table16["pixel6_cpu"] == 0.973 and table16["pixel7_gpu"] is None
    # the in-sample figures are said to be so, beside the held-out ones the profiles carry
    from mnv4suite.plugins.devices import FITS
    from mnv4suite.reports.report import paper_tables

    assert {c.device: c.held_out_spearman for c in comparisons} == {d: f.held_out_spearman for d, f in FITS.items()}
    headers, rows = paper_tables({"devices": [c.to_dict() for c in comparisons], "sizes": []})["spearman"]
    assert "Spearman roofline (in-sample)" in headers and "Spearman held out (nested leave-one-out)" in headers
    assert rows[0][headers.index("Spearman held out (nested leave-one-out)")] == f"{FITS['pixel6_cpu'].held_out_spearman:.3f}"


def test_spearman_with_ties_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    x, y = [1, 2, 2, 3, 5, 5, 5], [2.4, 2.4, 5.0, 2.4, 6.1, 9.3, 9.3]
    assert paper.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_sizes_next_to_table6():
    pytest.importorskip("torch")
    rows = {r["model"]: r for r in paper.size_rows()}
    assert len(rows) == 11 and "mnv3l-1.0" not in rows  # no Table 6 row
    conv_s = rows["mnv4-conv-s"]
    assert (conv_s["paper_params_m"], conv_s["paper_gmacs"], conv_s["top1"]) == (3.8, 0.2, 73.8)
    assert conv_s["params_m"] == pytest.approx(3.774024)
