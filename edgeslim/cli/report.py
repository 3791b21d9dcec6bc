"""``edgeslim report RUN``: write report.md and report.html again from run.json and the stage folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeslim.cli import add_quiet

EPILOG = """examples:
  edgeslim report runs/demo                  rewrite runs/demo/report.md and report.html
  edgeslim report runs/demo/run.json         the same
  edgeslim report runs/old --no-evaluate     never run the final artifact (an older run kept no predictions)
The page covers the finished stages of an interrupted or failed run and says so at the top.
exit codes: 0 ok, 2 bad input (not a run folder, unreadable run.json, folder not writable)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="regenerate a run's report.md and report.html",
        description="Rebuild report.md and the self-contained report.html of a run from its run.json and "
        "stage folders. No model is trained or measured again; only when the run kept no test predictions "
        "(runs recorded before they were kept) is the final artifact evaluated on the test split.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder (runs/<name>) or its run.json")
    p.add_argument("--no-evaluate", action="store_true",
                   help="never evaluate the final artifact; without stored predictions the per-class section "
                   "says they are missing")
    add_quiet(p)
    p.set_defaults(func=main)


def run_folder(arg: str) -> Path:
    """The run folder a command-line argument names (the folder, or its run.json)."""
    from edgeslim.errors import InputError

    path = Path(arg)
    if path.name == "run.json" and path.is_file():
        path = path.parent
    if not path.exists():
        raise InputError(f"run folder '{arg}' does not exist; give a folder written by `edgeslim run` "
                         "(runs/<name>)")
    if not path.is_dir():
        raise InputError(f"'{arg}' is not a folder; give a run folder written by `edgeslim run` (runs/<name>) "
                         "or its run.json")
    return path


def main(args: argparse.Namespace) -> int:
    from edgeslim.errors import InputError
    from edgeslim.fsutil import atomic_write_text
    from edgeslim.report import markdown, write_html
    from edgeslim.runrecord import read_record

    run_dir = run_folder(args.run)
    record = read_record(run_dir)  # one line for a missing, damaged or foreign run.json
    if not isinstance(record.get("name"), str) or not isinstance(record.get("stages", []), list):
        raise InputError(f"'{run_dir / 'run.json'}' is not an edgeslim run record (no run name); rerun the recipe")
    try:
        md = atomic_write_text(run_dir / "report.md", markdown(record, run_dir))
        html = write_html(run_dir, record, evaluate_missing=not args.no_evaluate)
    except OSError as exc:
        raise InputError(f"cannot write the report in '{run_dir}' ({exc.strerror or exc}); make the folder "
                         "writable or copy the run elsewhere and report there") from exc
    status = record.get("status")
    if status != "completed" and not args.quiet:
        print(f"note: run '{record['name']}' is {status}; the report covers its finished stages and says so")
    print(f"report.md:   {md}\nreport.html: {html}")
    return 0
