"""``edgeslim check BASELINE CANDIDATE``: the CI latency gate (exit 0 pass, 1 regression or
budget exceeded, 2 bad input, 4 inconclusive)."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """examples:
  edgeslim check main/model.onnx pr/model.onnx --max-slowdown 5
  edgeslim check base.onnx cand.onnx --budget budget.yaml --markdown check.md --junit check.xml
  edgeslim check base.onnx cand.onnx --backend openvino           (both run in OpenVINO)
  edgeslim check cand.onnx --baseline-json .edgeslim/baselines/$(edgeslim bench --host-key)/main.json
  edgeslim check base_bundle/ cand_bundle/ --remote pi@raspberrypi.local
verdicts and exit codes:
  0 pass            the CI of the ratio of medians, taken twice as wide, is at or below
                    1 + max-slowdown
  1 regression      that interval is above it (or: budget-exceeded, a --budget limit failed)
  2 error           bad input, a model that fails to load or run; reports are still written
  4 inconclusive    the CI still straddles the threshold when --max-time runs out
  (3 is never used by check: it means a tampered bundle elsewhere in edgeslim)
defaults: --threads = half the usable cores, 1 to 4 (1 on a 2-core runner); rounds go on
after --min-time until the CI decides, at most --max-time seconds (docs/ci-gate.md)."""


def register(sub: argparse._SubParsersAction) -> None:
    from edgeslim.cli.bench import add_measure_args
    from edgeslim.deploy.gate.ssh import add_remote_args

    p = sub.add_parser(
        "check",
        help="CI gate: candidate vs baseline latency (interleaved) and budgets",
        description="Compare CANDIDATE with BASELINE in interleaved rounds until the confidence "
        "interval of the slowdown is clearly below or above --max-slowdown (pass / regression), "
        "or time runs out (inconclusive). Also checks hard budgets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("artifacts", nargs="+", metavar="BASELINE CANDIDATE",
                   help="two artifacts (or only CANDIDATE with --baseline-json)")
    p.add_argument("--max-slowdown", type=float, default=5.0, metavar="PCT",
                   help="tolerated slowdown in percent (default 5)")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="confidence level of the CI (default 0.95)")
    p.add_argument("--min-rounds", type=int, default=20, help="interleaved rounds at least (default 20)")
    p.add_argument("--max-time", type=float, default=10.0, metavar="S",
                   help="time cap in seconds of measuring; still undecided then: inconclusive (default 10)")
    p.add_argument("--round-ms", type=float, default=25.0, help="ms per side per round (default 25)")
    p.add_argument("--budget", default=None, metavar="FILE", help="budget YAML (see docs/ci-gate.md)")
    p.add_argument("--profile", default=None, help="device profile for the budget's latency ceilings")
    p.add_argument("--accuracy-from", default=None, metavar="FILE",
                   help="run.json (or its run folder) or bundle manifest.json holding the candidate's "
                   "test accuracy")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write a Markdown summary here")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--json", dest="json_out", default=None, metavar="FILE", help="write the full report")
    p.add_argument("--baseline-json", default=None, metavar="FILE",
                   help="stored `edgeslim bench --json`/`--save-baseline` result to compare against "
                   "(same host only)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines; print only the verdict report (and errors)")
    add_measure_args(p, min_time=3.0)
    add_remote_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.cli.bench import check_out_file
    from edgeslim.deploy.gate.check import error_report
    from edgeslim.deploy.gate.report import format_text
    from edgeslim.errors import EdgeslimError

    for path, flag in ((args.markdown, "--markdown"), (args.junit, "--junit"), (args.json_out, "--json")):
        check_out_file(path, flag)
    names = _names(args)
    mode = "remote" if args.remote else "stored-baseline" if args.baseline_json else "interleaved"
    from edgeslim.progress import Reporter

    reporter = Reporter(quiet=args.quiet)
    try:
        # no start line: bad input or a crashing model stays a single error line, stdout empty
        with reporter.activity("check", f"{names[1]} against {names[0]} ({mode})", announce=False,
                               finish=False) as finished:
            report = _run(args)
            finished(report.status)
    except EdgeslimError as exc:
        # the one-line error goes to stderr as usual; the reports say the same, so a CI job that
        # publishes them shows why nothing was compared
        _write_reports(args, error_report(str(exc), exc.exit_code, *names, mode))
        raise
    except Exception as exc:  # a bug: still leave reports behind, then the traceback
        _write_reports(args, error_report(f"internal error: {type(exc).__name__}: {exc}", 1, *names, mode))
        raise
    print(format_text(report))
    _write_reports(args, report)
    return report.exit_code


def _names(args: argparse.Namespace) -> tuple[str, str]:
    arts = [str(a) for a in args.artifacts]
    if args.baseline_json:
        return str(args.baseline_json), arts[0] if arts else "-"
    return (arts[0] if arts else "-"), (arts[1] if len(arts) > 1 else "-")


def _run(args: argparse.Namespace) -> Any:
    from edgeslim.cli.bench import bench_options
    from edgeslim.deploy.gate.check import CheckOptions
    from edgeslim.errors import InputError

    want = 1 if args.baseline_json else 2
    if len(args.artifacts) != want:
        raise InputError(
            f"check takes {want} artifact(s) "
            f"{'(CANDIDATE) with --baseline-json' if want == 1 else '(BASELINE CANDIDATE)'}, "
            f"got {len(args.artifacts)}: {' '.join(args.artifacts)}"
        )
    if not 0 <= args.max_slowdown <= 1e6 or not 0.5 <= args.confidence < 1 or args.min_rounds < 2:
        raise InputError(
            f"--max-slowdown {args.max_slowdown} / --confidence {args.confidence} / --min-rounds "
            f"{args.min_rounds} out of range; use PCT >= 0, 0.5 <= confidence < 1, rounds >= 2"
        )
    if not args.max_time > 0 or args.max_time < args.min_time or not args.round_ms > 0:
        raise InputError(
            f"--max-time {args.max_time} must be > 0 and >= --min-time {args.min_time}, and "
            f"--round-ms {args.round_ms} > 0; e.g. --min-time 3 --max-time 10"
        )
    bopts = bench_options(args)
    bopts.batches = bopts.batches[:1]
    from edgeslim.deploy.gate.bench import quiet_runtime_logs

    quiet_runtime_logs()
    opts = CheckOptions(
        max_slowdown=args.max_slowdown / 100.0,
        confidence=args.confidence,
        min_rounds=args.min_rounds,
        min_time_s=args.min_time,
        max_time_s=args.max_time,
        round_ms=args.round_ms,
        bench=bopts,
    )
    budget = _load_budget(args)
    accuracy = _accuracy(args, budget) if budget else None
    if budget is not None:  # an unknown --profile is found before measuring, not after
        from edgeslim.deploy.gate.budget import check_budgets

        check_budgets(budget, {}, args.profile, accuracy)
    report = _compare(args, opts)
    if budget is not None:
        from edgeslim.deploy.gate.budget import check_budgets

        figures = {**report.candidate, "artifact": report.candidate.get("artifact", {})}
        report.budgets = check_budgets(budget, figures, args.profile, accuracy)
    return report


def _write_reports(args: argparse.Namespace, report: Any) -> None:
    from edgeslim.cli.bench import write_out
    from edgeslim.deploy.gate.report import format_junit, format_markdown
    from edgeslim.fsutil import atomic_write_json, atomic_write_text

    if args.markdown:
        write_out(atomic_write_text, args.markdown, format_markdown(report))
    if args.junit:
        write_out(atomic_write_text, args.junit, format_junit(report))
    if args.json_out:
        write_out(atomic_write_json, args.json_out, report.to_json())


def _load_budget(args: argparse.Namespace) -> dict | None:
    if not args.budget:
        return None
    from edgeslim.deploy.gate.budget import load_budget

    return load_budget(args.budget)


def _compare(args: argparse.Namespace, opts: Any) -> Any:
    if args.remote:
        from edgeslim.deploy.gate.remote import remote_check
        from edgeslim.deploy.gate.ssh import target_from_args

        if args.baseline_json:
            from edgeslim.errors import InputError

            raise InputError(
                "--remote cannot be combined with --baseline-json; compare two bundles instead"
            )
        return remote_check(target_from_args(args), args.artifacts[0], args.artifacts[1], opts)
    from edgeslim.deploy.gate.check import run_check, run_stored_check

    if args.baseline_json:
        return run_stored_check(args.baseline_json, args.artifacts[0], opts)
    return run_check(args.artifacts[0], args.artifacts[1], opts)


def _accuracy(args: argparse.Namespace, budget: dict) -> float | None:
    from edgeslim.deploy.gate.budget import auto_accuracy_source, read_accuracy
    from edgeslim.errors import InputError

    if "min_accuracy" not in budget:
        return None
    candidate = args.artifacts[-1]
    source = args.accuracy_from or budget.get("accuracy_from") or auto_accuracy_source(candidate)
    if source is None:
        raise InputError(
            f"budget '{args.budget}' sets min_accuracy but no accuracy source was found "
            "next to the candidate; pass --accuracy-from RUN.json|manifest.json or set "
            "accuracy_from in the budget file"
        )
    return read_accuracy(source, candidate)
