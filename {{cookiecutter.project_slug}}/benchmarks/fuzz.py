"""Fuzz the real service from its own OpenAPI schema with schemathesis: zero 5xx allowed.

Starts `python -m {{ cookiecutter.package_name }} serve` on 127.0.0.1 (or uses `--url`, loopback only)
and runs `schemathesis run` with every check (`--checks all`): no server errors, responses that
match the documented schemas and status codes, invalid input rejected, valid input accepted.
The run is bounded by `--max-examples` per operation and a fixed `--seed`, so it is
repeatable; the JSON report lands in `--report-dir`.

    python benchmarks/fuzz.py --artifacts artifacts --max-examples 200

Exits 1 when schemathesis reports any failure; prints how many were server errors (5xx).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from load import check_loopback

from {{ cookiecutter.package_name }}.serving.smoke import (
    running_server,
)

MAX_EXAMPLES_CAP = 5000


def run_schemathesis(base_url: str, max_examples: int, seed: int, report: Path) -> dict:
    """One bounded schemathesis run; returns its JSON report."""
    command = [
        sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(max_examples),
        "--seed", str(seed),
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "10",
        "--no-color",
        "--report", "json",
        "--report-json-path", str(report),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if not report.is_file():
        raise SystemExit(
            f"schemathesis wrote no report (exit {completed.returncode}); is it installed "
            f"(pip install schemathesis)?\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
        )
    result = json.loads(report.read_text(encoding="utf-8"))
    result["_output"] = completed.stdout
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifacts folder"
    )
    parser.add_argument("--url", help="an already running server on loopback (default: start one)")
    parser.add_argument("--max-examples", type=int, default=200, help="per operation (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-dir", type=Path, help="keep the JSON report here")
    parser.add_argument("--json", type=Path, help="write a summary here")
    args = parser.parse_args(argv)
    if not 1 <= args.max_examples <= MAX_EXAMPLES_CAP:
        parser.error(f"--max-examples must be in 1..{MAX_EXAMPLES_CAP}")

    if not args.url and not (args.artifacts / "manifest.json").is_file():
        parser.error(
            f"{args.artifacts / 'manifest.json'}: missing. Build artifacts first or pass --artifacts."
        )
    report_dir = args.report_dir or Path(tempfile.mkdtemp(prefix="fuzz-"))
    report_dir.mkdir(parents=True, exist_ok=True)
    server = nullcontext(check_loopback(args.url)) if args.url else running_server(args.artifacts)
    with server as base_url:
        result = run_schemathesis(
            base_url, args.max_examples, args.seed, report_dir / "schemathesis.json"
        )

    failures = Counter({f["title"]: f["count"] for f in result.get("failures", [])})
    server_errors = sum(
        f["count"] for f in result.get("failures", []) if f["type"] == "ServerError"
    )
    cases = result["test_cases"]
    summary = {
        "test_cases": cases["generated"],
        "operations": result["operations"]["tested"],
        "failures": sum(failures.values()),
        "server_errors_5xx": server_errors,
        "errors": len(result.get("errors", [])),
        "seed": args.seed,
        "max_examples": args.max_examples,
    }
    print(
        f"schemathesis: {summary['test_cases']} test cases over {summary['operations']} operations, "
        f"{summary['failures']} failures ({server_errors} server errors 5xx), {summary['errors']} errors"
    )
    for title, count in failures.items():
        print(f"  {count} x {title}")
    if summary["failures"] or summary["errors"]:
        print(result["_output"][-6000:])
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 1 if summary["failures"] or summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
