"""Micro-benchmark: routing decisions per second.

Routing sits on every request, so it must cost microseconds, not milliseconds. This times
`Router.route` over a realistic mix (typed enums as the service passes them, plain strings
as a raw caller would, and some unknown values that take the fallback) and prints
decisions/s for each mix.

Run: `python benchmarks/bench_router.py [--seconds 1.0]` (also part of `nox -s bench`
where the project has one).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from {{ cookiecutter.package_name }}.router import (
    Action,
    Channel,
    Device,
    Router,
    Rule,
    UserType,
)

Request = tuple["UserType | str", "Device | str", "Action | str"]


def _rate(router: Router, requests: list[Request], seconds: float) -> float:
    """Decisions per second over at least `seconds` of wall time."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    route = router.route
    while True:
        for user, device, action in requests:
            route(user, device, action)
        done += len(requests)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per mix (default 1.0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    enums: list[Request] = list(itertools.product(UserType, Device, Action))
    strings: list[Request] = [(u.value, d.value, a.value) for u, d, a in enums]
    unknown: list[Request] = [
        ("partner", d.value, a.value) for d, a in itertools.product(Device, Action)
    ]
    configured = Router(
        [
            Rule(f"rule-{i}", Channel.ITEM_GRAPH, device=Device.TABLET, action=a)
            for i, a in enumerate(Action)
        ]
    )
    results = {
        "enums": _rate(Router(), enums, args.seconds),
        "strings": _rate(Router(), strings, args.seconds),
        "unknown_values": _rate(Router(), unknown, args.seconds),
        "with_4_config_rules": _rate(configured, enums, args.seconds),
    }
    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}))
    else:
        for name, rate in results.items():
            print(f"router {name:<20} {rate:>12,.0f} decisions/s  ({1e6 / rate:.2f} us each)")
    return results


if __name__ == "__main__":
    main()
