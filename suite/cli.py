"""The `mnv4suite` command.

User errors (unknown names, missing files, bad configs, broken data) are printed as one clear
message with a non-zero exit code; tracebacks are kept for bugs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from mnv4suite import __version__
from mnv4suite.errors import UserError

DESCRIPTION = """\
mnv4suite: measure MobileNetV4 models on mobile ML runtimes, MLPerf Mobile style.

Backends (framework x hardware delegate), tasks (ImageNet, COCO) and models come from plugins;
`mnv4suite list` shows what is installed and what can run on this machine.
"""

RUN_EPILOG = """\
examples:
  mnv4suite run --preset rapid
      latency of every reference model on every backend available here (no data needed)
  mnv4suite run --task imagenet --backend onnxruntime-cpu --model mnv4-conv-s --data ~/imagenet/val
      accuracy and latency on your copy of ImageNet val
  mnv4suite run --config run.yaml
      the same options written in a YAML file (keys as the long options: task, backend, ...)

presets (MLPerf Mobile): normal = 1024 queries and 60 s; quick = 128 and 10 s; rapid = 64 and 6 s.
"""

REPORT_EPILOG = """\
examples:
  mnv4suite report mnv4suite-results --out report
      every result under mnv4suite-results; open report/report.html
  mnv4suite report --out report --format md,svg
      no results: the roofline (paper Figures 2, 3) and paper comparison sections only
"""

LIST_KINDS = ("backends", "tasks", "models", "devices")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnv4suite", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mnv4suite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="show installed backends, tasks, models and devices",
                            description="Show what plugins provide; backends say whether they can run here and why not.")
    p_list.add_argument("kind", nargs="?", choices=LIST_KINDS, help="one section only (default: all)")

    p_info = sub.add_parser("info", help="a model's params, MACs and per-layer cost table",
                            description="Params, MACs and the per-layer table (MACs, weight and activation bytes) "
                                        "that the roofline estimates are built from.")
    p_info.add_argument("model", help="model id or alias, e.g. mnv4-conv-s")
    p_info.add_argument("--resolution", type=int, help="input size (default: the model's own)")
    p_info.add_argument("--bytes-per-element", dest="bytes_per_element", type=float, default=1.0,
                        help="1 for int8 (default, as the paper's roofline), 2 for fp16, 4 for fp32")

    p_run = sub.add_parser("run", help="benchmark models on backends with MLPerf LoadGen",
                           description="Run LoadGen tests: one per model x backend, each in its own process.",
                           epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p_run.add_argument("--config", metavar="FILE", help="YAML file with any of the options below")
    p_run.add_argument("--task", help="task id (default: imagenet)")
    p_run.add_argument("--backend", action="append", metavar="ID",
                       help="backend id; repeat or comma-separate for several (default: all available here)")
    p_run.add_argument("--model", action="append", metavar="ID",
                       help="model id or alias; repeat or comma-separate (default: every model the task runs)")
    p_run.add_argument("--preset", help="normal | quick | rapid (default: normal)")
    p_run.add_argument("--scenario", help="SingleStream | Offline, or both comma-separated (default: SingleStream)")
    p_run.add_argument("--mode", help="performance | accuracy | both (default: both with --data, else performance)")
    p_run.add_argument("--data", metavar="PATH", help="dataset folder; without it, inputs are generated in the task's shape")
    p_run.add_argument("--count", type=int, metavar="N", help="use a deterministic subset of N samples")
    p_run.add_argument("--on-error", dest="on_error", choices=("stop", "skip"),
                       help="unreadable data files: stop (default) or skip and count them")
    p_run.add_argument("--weights", metavar="FILE|HUB", help="checkpoint for the (single) model; default: seeded random init")
    p_run.add_argument("--out", metavar="DIR", help="where results go (default: ./mnv4suite-results)")
    p_run.add_argument("--cache-dir", dest="cache_dir", metavar="DIR",
                       help="artifact cache (default: $MNV4SUITE_CACHE or ~/.cache/mnv4suite)")
    p_run.add_argument("--batch", type=int, metavar="N",
                       help="Offline: samples per inference for backends that batch (default: each backend's own, "
                            "e.g. 8 on the CPU); SingleStream is always 1")
    p_run.add_argument("--threads", type=int, metavar="N",
                       help="CPU threads per session, recorded in the result (default: each backend's own, "
                            "one per core this process may use)")
    p_run.add_argument("--cooldown", type=float, metavar="SECONDS",
                       help="pause before each timed test, for thermally limited devices (default: 0)")
    p_run.add_argument("--audit", metavar="TEST", action="append",
                       help="also run LoadGen's compliance test TEST01 (answers logged in a performance run must "
                            "equal the accuracy run's; needs --data) or TEST04 (one sample reissued must not be "
                            "faster), and verify it as MLCommons does; repeatable or comma-separated")
    p_run.add_argument("--resume", metavar="RUN_DIR",
                       help="finish an earlier run: plan it again from RUN_DIR/run.json and run only the jobs "
                            "without a valid result")
    lab = p_run.add_argument_group("lab (a Ray cluster; pip install -c constraints.txt 'mnv4suite[ray]', docs/lab.md)")
    lab.add_argument("--ray", metavar="ADDRESS",
                     help="run each job on a lab node that holds its hardware: the head's ADDRESS, 'auto' "
                          "(this machine's cluster) or 'local' (a private one-machine lab)")
    lab.add_argument("--node", metavar="NAME", help="with --ray: run every job on this node (lab name, id or host)")

    p_report = sub.add_parser("report", help="Pareto, roofline and paper-comparison reports from result files",
                              description="Accuracy/latency Pareto fronts per task and hardware target from result "
                                          "files (measured and estimated latency kept apart, published accuracy "
                                          "labelled), the paper's roofline Figures 2 and 3, and a comparison with "
                                          "its Table 6. Writes report.md, report.html, report.json and plots/.",
                              epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p_report.add_argument("results", nargs="*", metavar="RESULTS",
                          help="result.json files or folders searched for them (none: roofline and paper sections only)")
    p_report.add_argument("--out", metavar="DIR", default="mnv4suite-report", help="output folder (default: ./mnv4suite-report)")
    p_report.add_argument("--format", dest="formats", metavar="LIST", default="md,html,json,png,svg",
                          help="comma-separated from md,html,json,png,svg (default: all)")
    p_report.add_argument("--no-roofline", dest="roofline", action="store_false", help="leave out the roofline section")
    p_report.add_argument("--no-paper", dest="paper", action="store_false", help="leave out the paper comparison")
    p_report.add_argument("--layers-model", dest="layers_model", metavar="ID", default="mnv4-conv-l",
                          help="model whose per-layer cost the Figure 3 section shows (default: mnv4-conv-l)")

    from mnv4suite.lab import commands as lab_commands
    from mnv4suite.reports import leaderboard, submission  # light: jinja2 and matplotlib load only when used

    p_lab = sub.add_parser("lab", help=lab_commands.LAB_HELP, description=lab_commands.LAB_HELP,
                           epilog=lab_commands.LAB_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    lab_commands.add_lab_arguments(p_lab)

    p_validate = sub.add_parser("validate", help=submission.VALIDATE_HELP, description=submission.VALIDATE_HELP)
    submission.add_validate_arguments(p_validate)
    p_board = sub.add_parser("leaderboard", help=leaderboard.LEADERBOARD_HELP, description=leaderboard.LEADERBOARD_HELP)
    leaderboard.add_leaderboard_arguments(p_board)
    return parser


def cmd_list(args) -> int:
    from mnv4suite.listing import render
    from mnv4suite.registry import get_registry

    print(render(get_registry(), [args.kind] if args.kind else list(LIST_KINDS)))
    return 0


def cmd_info(args) -> int:
    from mnv4suite.api import check_requirements
    from mnv4suite.errors import UnavailableError
    from mnv4suite.model_info import render_info
    from mnv4suite.registry import get_registry

    spec = get_registry().models.get(args.model)
    if args.resolution is not None and not 32 <= args.resolution <= 2048:
        raise UserError(f"--resolution {args.resolution}: give an input size from 32 to 2048 pixels "
                        f"(leave it out for the model's own, {spec.resolution})")
    if args.bytes_per_element is not None and not 0 < args.bytes_per_element <= 8:
        raise UserError(f"--bytes-per-element {args.bytes_per_element}: give a size from 0.5 (int4) to 8 (fp64)")
    found = check_requirements(spec.requires)
    if not found:
        raise UnavailableError(f"model '{spec.id}' cannot be built here: {found.explain()}")
    print(render_info(spec, args.resolution, args.bytes_per_element))
    return 0


def cmd_run(args) -> int:
    from mnv4suite import runner
    from mnv4suite.config import build_config, read_yaml
    from mnv4suite.registry import get_registry

    cli_values = {k: v for k, v in vars(args).items() if k not in ("command", "config", *EXECUTION_OPTIONS)}
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k, v in cli_values.items() if v is not None]
        if given or args.config:
            raise UserError(f"--resume runs the jobs recorded in {args.resume} as they were planned: "
                            f"drop {', '.join(given or ['--config'])} (only --ray and --node may change)")
        config = runner.resume_config(args.resume)
    else:
        config = build_config(read_yaml(args.config) if args.config else {}, cli_values)
    registry = get_registry()
    lab = executor = None
    if args.ray:
        from mnv4suite.lab.commands import require_ray

        require_ray("--ray")
        from mnv4suite.lab import executor as lab

        lab.connect(args.ray, registry.backends)
        executor = lab.RayExecutor(lab.discover(args.node), registry)
    elif args.node:
        raise UserError("--node pins jobs to a lab node: give the lab's address too (--ray ADDRESS)")
    try:
        return _run(config, registry, executor, args.resume)
    finally:
        if lab is not None:
            lab.shutdown()


#: `run` options that say where and how jobs execute, not what they measure.
EXECUTION_OPTIONS = ("resume", "ray", "node")


def _run(config, registry, executor, resume) -> int:
    from mnv4suite import compliance, precision, runner
    from mnv4suite.fileio import atomic_write_json
    from mnv4suite.reports.table import results_table

    started = time.perf_counter()
    plan = runner.plan(config, registry, executor.lab if executor else None, resume=resume)
    skipped: dict[str, list[str]] = {}  # one note per reason, naming every backend it stops
    for backend_id, found in plan.skipped_backends.items():
        skipped.setdefault(found.explain(), []).append(backend_id)
    for why, backend_ids in skipped.items():
        print(f"note: skipping backend{'s' if len(backend_ids) > 1 else ''} {', '.join(backend_ids)}: {why}",
              file=sys.stderr)
    for (model_id, backend_id), why in plan.skipped_pairs.items():
        print(f"note: skipping {model_id} on {backend_id}: {why}", file=sys.stderr)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    if Path(compliance.AUDIT_FILE).is_file():
        print(f"note: ./{compliance.AUDIT_FILE} is ignored: LoadGen runs from each job's own folder, so no file there "
              "overrides a run's settings; run compliance tests with --audit TEST01|TEST04", file=sys.stderr)
    for backend_id, found in plan.estimated_backends.items():
        print(f"note: {backend_id} cannot run here ({found.explain()}): its model is still prepared, accuracy "
              "runs on a faithful stand-in where one exists, and latency is an estimate, labelled as such",
              file=sys.stderr)
    if config.mode != "performance" and not config.weights:
        print("note: no --weights: every model runs with seeded random weights, so its accuracy measures the "
              "pipeline, not the model (ImageNet classifiers: --weights pretrained or a timm checkpoint)",
              file=sys.stderr)
    print(f"{plan.total} job(s); results in {plan.run_dir}", file=sys.stderr)
    if executor is not None:
        print("\n".join(executor.describe(plan.jobs)), file=sys.stderr)
    outcomes = runner.execute(plan, log=lambda msg: print(msg, file=sys.stderr, flush=True), executor=executor)
    done = [o.result for o in outcomes if o.ok]
    if done:
        print(results_table(done))
    verdicts = compliance.verify_run(outcomes, plan.run_dir, lambda task: registry.tasks.get(task).create().payload_dtype)
    if verdicts:
        print(f"\ncompliance (verified as MLCommons' scripts verify; files under {plan.run_dir / compliance.COMPLIANCE_DIR}):")
        print(compliance.render(verdicts))
    compared = precision.compare(done, registry.backends.items.get)
    if compared:
        atomic_write_json(plan.run_dir / precision.COMPARISON_FILE, compared)
        print(f"\naccuracy against fp32 of the same weights (also in {precision.COMPARISON_FILE}):")
        print(precision.render(compared))
    minutes, seconds = divmod(round(time.perf_counter() - started), 60)
    print(f"\n{len(done)} of {plan.total} job(s) complete in {minutes} min {seconds:02d} s; result files under "
          f"{plan.run_dir}", file=sys.stderr)
    if len(done) < plan.total:
        print(f"finish it later with: mnv4suite run --resume {plan.run_dir}", file=sys.stderr)
    failed = [o for o in outcomes if not o.ok]
    if failed and failed[0].error.get("user_error"):
        raise UserError(failed[0].error["message"])
    return 0 if len(done) == plan.total else 1


REPORT_REQUIRES = ("matplotlib", "jinja2", "adjustText")


def _require_report_extra(command: str) -> None:
    from mnv4suite.api import Requirement, check_requirements, install_command
    from mnv4suite.errors import UnavailableError

    found = check_requirements(Requirement(m, install_command("report")) for m in REPORT_REQUIRES)
    if not found:
        raise UnavailableError(f"mnv4suite {command} draws plots and pages: {found.explain()}")


def cmd_report(args) -> int:
    _require_report_extra("report")
    from mnv4suite.reports.report import build, parse_formats
    from mnv4suite.safeparse import printable

    formats = parse_formats(args.formats)
    report = build(args.results, args.out, formats, roofline=args.roofline, paper=args.paper,
                   layer_model=args.layers_model, log=lambda msg: print(f"note: {printable(msg, 1000)}", file=sys.stderr))
    front = sum(len(g.front) for g in report.groups)
    points = sum(len(g.points) for g in report.groups)
    print(f"{points} result(s) in {len(report.groups)} group(s), {front} on a Pareto front; "
          f"{len(report.collected.invalid)} invalid file(s) skipped", file=sys.stderr)
    for path in report.written:
        if path.parent.name != "plots":
            print(path)
    plots = [p for p in report.written if p.parent.name == "plots"]
    if plots:
        print(f"{plots[0].parent}/ ({len(plots)} plot files)")
    return 0


def cmd_validate(args) -> int:
    from mnv4suite.reports.submission import cmd_validate as validate

    return validate(args)


def cmd_leaderboard(args) -> int:
    _require_report_extra("leaderboard")
    from mnv4suite.reports.leaderboard import cmd_leaderboard as leaderboard

    return leaderboard(args)


def cmd_lab(args) -> int:
    from mnv4suite.lab.commands import cmd_lab as lab

    return lab(args)


COMMANDS = {"list": cmd_list, "info": cmd_info, "run": cmd_run, "report": cmd_report,
            "validate": cmd_validate, "leaderboard": cmd_leaderboard, "lab": cmd_lab}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        from mnv4suite.safeparse import printable  # messages quote file names and values from anywhere

        print(f"mnv4suite: error: {printable(exc, 4000)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mnv4suite: interrupted; finished results are kept (mnv4suite run --resume RUN_DIR finishes a run)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
