"""``edgeslim check BASELINE CANDIDATE``: the CI latency gate (exit 0 pass, 1 regression)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  edgeslim check main/model.onnx pr/model.onnx --max-slowdown 5
  edgeslim check base.onnx cand.onnx --budget budget.yaml --markdown check.md --junit check.xml
  edgeslim check base.onnx cand.onnx --backend openvino           (both run in OpenVINO)
  edgeslim check cand.onnx --baseline-json baseline.json     (stored baseline, same host only)
  edgeslim check base_bundle/ cand_bundle/ --remote pi@raspberrypi.local
exit codes: 0 pass, 1 regression or budget exceeded, 2 bad input"""


def register(sub: argparse._SubParsersAction) -> None:
    from edgeslim.cli.bench import add_measure_args
    from edgeslim.deploy.gate.ssh import add_remote_args

    p = sub.add_parser(
        "check",
        help="CI gate: candidate vs baseline latency (interleaved) and budgets",
        description="Compare CANDIDATE with BASELINE in interleaved rounds; fail only when "
        "the slowdown is significant AND above --max-slowdown. Also checks hard budgets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "artifacts",
        nargs="+",
        metavar="BASELINE CANDIDATE",
        help="two artifacts (or only CANDIDATE with --baseline-json)",
    )
    p.add_argument(
        "--max-slowdown",
        type=float,
        default=5.0,
        metavar="PCT",
        help="tolerated slowdown in percent (default 5)",
    )
    p.add_argument(
        "--confidence", type=float, default=0.95, help="confidence level of the CI (default 0.95)"
    )
    p.add_argument(
        "--min-rounds", type=int, default=20, help="interleaved rounds at least (default 20)"
    )
    p.add_argument(
        "--round-ms", type=float, default=25.0, help="ms per side per round (default 25)"
    )
    p.add_argument(
        "--budget", default=None, metavar="FILE", help="budget YAML (see docs/ci-gate.md)"
    )
    p.add_argument(
        "--profile", default=None, help="device profile for the budget's latency ceilings"
    )
    p.add_argument(
        "--accuracy-from",
        default=None,
        metavar="FILE",
        help="run.json or bundle manifest.json holding the candidate's test accuracy",
    )
    p.add_argument("--markdown", default=None, metavar="FILE", help="write a Markdown summary here")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML here")
    p.add_argument(
        "--json", dest="json_out", default=None, metavar="FILE", help="write the full report"
    )
    p.add_argument(
        "--baseline-json",
        default=None,
        metavar="FILE",
        help="stored `edgeslim bench --json` result to compare against (same host only)",
    )
    add_measure_args(p, min_time=3.0)
    add_remote_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.cli.bench import bench_options, check_out_file, write_out
    from edgeslim.deploy.gate.check import CheckOptions, format_junit, format_markdown, format_text
    from edgeslim.errors import InputError
    from edgeslim.fsutil import atomic_write_json, atomic_write_text

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
    bopts = bench_options(args)
    bopts.batches = bopts.batches[:1]
    opts = CheckOptions(
        max_slowdown=args.max_slowdown / 100.0,
        confidence=args.confidence,
        min_rounds=args.min_rounds,
        min_time_s=args.min_time,
        round_ms=args.round_ms,
        bench=bopts,
    )
    for path, flag in ((args.markdown, "--markdown"), (args.junit, "--junit"), (args.json_out, "--json")):
        check_out_file(path, flag)
    budget = _load_budget(args)
    report = _compare(args, opts)
    if budget is not None:
        report.budgets = _budgets(args, budget, report)
    print(format_text(report))
    if args.markdown:
        write_out(atomic_write_text, args.markdown, format_markdown(report))
    if args.junit:
        write_out(atomic_write_text, args.junit, format_junit(report))
    if args.json_out:
        write_out(atomic_write_json, args.json_out, report.to_json())
    return report.exit_code


def _load_budget(args: argparse.Namespace):
    if not args.budget:
        return None
    from edgeslim.deploy.gate.budget import load_budget

    return load_budget(args.budget)


def _compare(args: argparse.Namespace, opts):
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


def _budgets(args: argparse.Namespace, budget: dict, report):
    from edgeslim.deploy.gate.budget import auto_accuracy_source, check_budgets, read_accuracy
    from edgeslim.errors import InputError

    candidate = args.artifacts[-1]
    accuracy = None
    if "min_accuracy" in budget:
        source = (
            args.accuracy_from or budget.get("accuracy_from") or auto_accuracy_source(candidate)
        )
        if source is None:
            raise InputError(
                f"budget '{args.budget}' sets min_accuracy but no accuracy source was found "
                "next to the candidate; pass --accuracy-from RUN.json|manifest.json or set "
                "accuracy_from in the budget file"
            )
        accuracy = read_accuracy(source, candidate)
    figures = {**report.candidate, **{"artifact": report.candidate.get("artifact", {})}}
    return check_budgets(budget, figures, args.profile, accuracy)
