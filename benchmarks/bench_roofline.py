"""Roofline estimates against the MobileNetV4 paper's measured latencies (Table 6, Appendix F).

    python benchmarks/bench_roofline.py [--no-host] [--emit]

The comparison itself lives in ``mnv4suite.reports.paper`` (``mnv4suite report`` shows it too); this
script prints it with fit diagnostics. Per device: the stored profile with the provenance of each
number, each implemented Table 6 model's estimated and measured latency, and the Spearman rank correlation of the roofline estimate and of the
raw MAC count with the measured latencies (the paper's Table 16 reached 0.96-0.97 for the roofline), and
the held-out Spearman and median/max error stored with the profile (nested leave-one-out: each model
predicted by a fit that chose its shrinkage and weights without it), the band every estimate is shown with.
Then this machine's CPU, measured: peak MACs/s, bandwidth and ridge point.

Needs torch (models are costed on the meta device). Every implemented Table 6 row is compared (from
``shared/`` - ``$MNV4SUITE_SHARED`` or ``<repo>/../shared`` - else the package's copy); with shared/ the
stored fits are also checked against a re-fit; ``--emit`` prints a fresh ``FITS`` block for
``plugins/devices.py``.
"""

from __future__ import annotations

import argparse

import numpy as np

from mnv4suite import roofline
from mnv4suite.plugins import devices
from mnv4suite.reference_models import model_specs
from mnv4suite.reports import paper


def show_device(cmp: paper.DeviceComparison) -> None:
    """One device of ``mnv4suite.reports.paper.device_comparisons``, plus the bench-only diagnostics."""
    print(f"\n== {cmp.device}: {cmp.name}")
    bpe = roofline.BYTES_PER_ELEMENT[cmp.precision]
    print(f"   precision        {cmp.precision} ({bpe} byte/element)")
    ridge_note = "published (Appendix F)" if cmp.ridge_from == "published" else "fitted"
    print(f"   ridge point      {cmp.ridge_point:10.1f} MACs/byte   {ridge_note}")
    print(f"   peak             {cmp.peak_macs_per_s / 1e9:10.1f} GMACs/s    fitted to {len(devices.FITS[cmp.device].rows)} "
          f"Table 6 rows (rms ln error {cmp.rms_log_error:.3f})")
    print(f"   bandwidth        {cmp.bandwidth_bytes_per_s / 1e9:10.2f} GB/s       derived: peak / ridge point")

    costed = {m.id: m for m in devices.costed_rows(paper.paper_results()).values()}
    specs = [costed[row["model"]] for row in cmp.rows]
    layers = [devices.device_layers(spec, cmp.device) for spec in specs]
    densest = max(r.macs / (r.weight_bytes + r.activation_bytes) for rows in layers for r in rows)
    below = "   below the ridge point: every layer memory-bound" if densest < cmp.ridge_point else ""
    print(f"   densest layer    {densest:10.1f} MACs/byte{below}")
    if cmp.ridge_from == "published":
        free = roofline.fit_ridge_and_peak(layers, [row["paper_ms"] / 1e3 for row in cmp.rows])
        print(f"   free fit         ridge {free.ridge_point:.1f}{'+' if free.ridge_is_lower_bound else ''}, "
              f"rms ln error {free.rms_log_error:.3f} (for comparison with the published ridge)")

    print(f"   {'Table 6 model':<24} {'suite id':<20} {'GMACs':>6} {'paper ms':>9} {'roofline ms':>12} {'ratio':>6}")
    for row in cmp.rows:
        print(f"   {row['row']:<24} {row['model']:<20} {row['macs'] / 1e9:6.3f} {row['paper_ms']:9.2f} "
              f"{row['estimated_ms']:12.2f} {row['ratio']:6.2f}")
    paper_note = (
        f"   (paper, Table 16: roofline {cmp.paper_spearman_roofline:.3f}, MACs {cmp.paper_spearman_macs:.3f})"
        if cmp.paper_spearman_roofline is not None else ""
    )
    print(f"   Spearman over {len(cmp.rows)} models: roofline {cmp.spearman_roofline:.3f}, "
          f"MACs only {cmp.spearman_macs:.3f}{paper_note}  (in-sample)")
    fit = devices.FITS[cmp.device]
    measured = [row["paper_ms"] / 1e3 for row in cmp.rows]
    ridge = devices.TARGETS[cmp.device].published_ridge
    print(f"   cost model       {roofline.cost_model_text(fit.terms)}; class peaks pulled toward the "
          "shared one with shrinkage "
          f"{fit.shrinkage:g} (leave-one-out's choice; {fit.folds_choosing_shrinkage} of {len(fit.rows)} nested "
          "folds chose the same)")
    for op_class, peak in fit.class_peaks:
        print(f"   {op_class + ' peak':<22} {roofline.peak_text(peak)}")
    print(f"   overhead               {fit.overhead_s * 1e3:.3f} ms/inference")
    print(f"   dispatch               {fit.dispatch_s * 1e6:.2f} us per launched layer (conv, linear, attention)")
    print(f"   held out (the shrinkage{', ridge' if ridge is None else ''} and every weight refitted without the "
          "held-out rows):")
    print(f"     {'cost model':<44} {'Spearman':>8} {'median':>7} {'max':>7}")
    plain = devices.paper_roofline_held_out(cmp.device, specs, measured)
    macs_only = roofline.leave_one_out(layers, measured, 0.0)  # ridge 0: latency proportional to MACs
    for label, figures in (
        ("this profile, nested leave-one-out", (fit.held_out_spearman, fit.held_out_median_ape, fit.held_out_max_ape)),
        ("the paper's plain roofline, leave-one-out", (plain.spearman, plain.median_abs_pct_error, plain.max_abs_pct_error)),
        ("MACs alone, leave-one-out", (macs_only.spearman, macs_only.median_abs_pct_error, macs_only.max_abs_pct_error)),
    ):
        print(f"     {label:<44} {figures[0]:8.3f} {figures[1]:6.1f}% {figures[2]:6.1f}%")
    if fit.held_out_spearman_within_rounding:
        low, high = fit.held_out_spearman_within_rounding
        print(f"     this profile's Spearman for latencies anywhere within Table 6's rounding: {low:.3f}-{high:.3f} "
              "(5th-95th percentile)")
    folds = []
    for seed, k in ((1, 5), (2, 5), (3, 3)):
        order = np.random.default_rng(seed).permutation(len(measured))
        held = devices.nested_held_out(cmp.device, layers, measured, [list(map(int, order[j::k])) for j in range(k)])
        h = held.held_out
        folds.append(f"{k}-fold #{seed}: {h.median_abs_pct_error:.1f}% / {h.max_abs_pct_error:.0f}% / {h.spearman:.3f}")
    print(f"     other partitions, nested (median / max / Spearman): {'; '.join(folds)}")


def show_host() -> None:
    from mnv4suite import hostprobe

    f = hostprobe.measure()
    print(f"\n== host-cpu: this machine, measured ({f.threads} threads)")
    for precision, macs, library in f.peaks:
        print(f"   {precision} peak        {macs / 1e9:10.1f} GMACs/s    fastest {f.gemm_size}^3 GEMM: {library}")
    print(f"   tried            {f.tried_text()} (GMACs/s)")
    print(f"   bandwidth        {f.bandwidth_bytes_per_s / 1e9:10.2f} GB/s       best array copy (read + write); "
          f"{f.dram_bandwidth_bytes_per_s / 1e9:.2f} GB/s at {f.copy_bytes >> 20} MiB, beyond the caches")
    print("   roofline floor per model (ms; the fastest each could run here): benchmarks/bench_precision.py "
          "checks measured latencies against it")
    print(f"   {'model':<15}" + "".join(f" {p:>8}" for p, _, _ in f.peaks))
    for spec in model_specs():
        floors = []
        for precision, _, _ in f.peaks:
            profile = hostprobe.measure_profile(precision)
            rows = devices.model_layers(spec, roofline.BYTES_PER_ELEMENT[precision])
            floors.append(roofline.estimate(rows, profile).total_ms)
        print(f"   {spec.id:<15}" + "".join(f" {ms:8.2f}" for ms in floors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-host", action="store_true", help="skip the host CPU micro-benchmarks")
    parser.add_argument("--emit", action="store_true", help="print a re-fitted FITS block and stop")
    args = parser.parse_args()

    path = devices.shared_results_path()
    if args.emit:
        print(devices.emit(devices.refit(devices.load_results(path))))
        return
    if path is None:
        print("shared/ not found: comparing on the package's copy of Table 6 (mnv4suite.reports.paper)")
        results = paper.paper_results()
    else:
        results = devices.load_results(path)
        refit = devices.refit(results)
        stale = [d for d, c in refit.items() if not c.agrees_with(devices.FITS[d])]
        print("stored fits match a re-fit from the yaml" if not stale else
              f"stored fits differ from a re-fit for {', '.join(stale)}: run with --emit and update plugins/devices.py")
    matched = devices.costed_rows(results)
    print(f"Table 6 rows costed ({len(matched)} of {len(results['imagenet'])}; counting-only models from "
          f"reference_models.table6_zoo): " + ", ".join(f"{n} = {s.id}" for n, s in matched.items()))
    for cmp in paper.device_comparisons(results):
        show_device(cmp)
    if not args.no_host:
        show_host()


if __name__ == "__main__":
    main()
