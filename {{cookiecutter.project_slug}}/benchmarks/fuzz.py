"""Fuzz the real service with hostile bodies and from its own OpenAPI schema: zero 5xx allowed.

Starts `python -m {{ cookiecutter.package_name }} serve` on 127.0.0.1 (or uses `--url`, loopback only).
First it sends the hostile corpus of `tests/hostile.py` as raw bytes: NaN and Infinity,
lone surrogates in keys and values, a 1 MiB body (with and without Content-Length), 10,000
levels of nesting, invalid UTF-8, wrong content types, an empty body, huge integers. Each case
must get its documented status, and every 4xx must be a JSON body under 2 KB. A schema-driven
fuzzer never sends these: it only generates what a JSON encoder can write.

Then it runs `schemathesis run` with every check (`--checks all`): no server errors, responses
that match the documented schemas and status codes, invalid input rejected, valid input
accepted. The run is bounded by `--max-examples` per operation and a fixed `--seed`, so it is
repeatable; the JSON report lands in `--report-dir`.

    python benchmarks/fuzz.py --artifacts artifacts --max-examples 200

Exits 1 when a hostile case breaks a rule or schemathesis reports any failure; prints how many
were server errors (5xx).
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

import httpx
from load import check_loopback

from {{ cookiecutter.package_name }}.serving.body import MAX_BODY_BYTES

# The hostile corpus and the server helpers live with the tests (tests/hostile.py,
# tests/servers.py): the service never needs them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile import hostile_corpus, problems, send  # noqa: E402
from servers import running_server  # noqa: E402

MAX_EXAMPLES_CAP = 5000


def run_hostile(base_url: str, max_body_bytes: int) -> tuple[int, list[str]]:
    """Send every hostile case once; returns how many were sent and what went wrong."""
    corpus = hostile_corpus(max_body_bytes)
    found: list[str] = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for case in corpus:
            try:
                found += problems(case, send(client, case))
            except httpx.TransportError as error:  # a dropped connection is a failure too
                found.append(f"{case.id}: {type(error).__name__}: {error}")
    return len(corpus), found


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
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=MAX_BODY_BYTES,
        help=f"the server's body limit, which the hostile cases target (default {MAX_BODY_BYTES})",
    )
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
        hostile_cases, hostile_failures = run_hostile(base_url, args.max_body_bytes)
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
        "hostile_cases": hostile_cases,
        "hostile_failures": hostile_failures,
        "seed": args.seed,
        "max_examples": args.max_examples,
    }
    print(f"hostile bodies: {hostile_cases} cases, {len(hostile_failures)} broke a rule")
    for failure in hostile_failures:
        print(f"  {failure}")
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
    return 1 if summary["failures"] or summary["errors"] or hostile_failures else 0


if __name__ == "__main__":
    sys.exit(main())
