#!/usr/bin/env python3
"""Prints bench/run.sh's table from its raw JSON lines (one line per repetition).

Each figure is the median over the repetitions; each ratio is the median of the per-repetition
ratios, so Keygate is always compared with the nginx baseline measured minutes apart on the
same (shared) machine, not with another run's.

Usage: python3 bench/table.py target/bench-data/raw-<stamp>.jsonl
"""

import json
import statistics
import sys


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    if not runs:
        sys.exit(f"{path} holds no results")

    def med(f):
        return statistics.median(f(r) for r in runs)

    def cold_miss_ratio(r):
        sent = r["cold_peak"]["requests"] + r["cold_paced"]["ok"] + r["cold_paced"]["non_200"]
        return r["cold_store_lookups"] / max(1, sent)

    rows = []

    def row(name, kg, base, unit, target=None, met=None, fmt="{:,.0f}"):
        k = med(kg)
        b = med(base) if base else None
        ratio = med(lambda r: kg(r) / base(r)) if base else None
        rows.append(
            (
                name,
                fmt.format(k) + unit,
                (fmt.format(b) + unit) if b is not None else "—",
                f"{ratio:.2f}" if ratio is not None else "—",
                target or "",
                ("yes" if met(k, ratio) else "**no**") if met else "",
            )
        )

    rps = lambda part: (lambda r: r[part]["rps"])
    lat = lambda part, p: (lambda r: r[part][p] / 1000)
    row("peak throughput, verify hot", rps("hot_peak"), rps("nginx_peak"), " req/s",
        "≥ 0.7 × nginx", lambda k, ratio: ratio >= 0.7)
    row("peak throughput, verify cold (1M keys)", rps("cold_peak"), rps("nginx_peak"), " req/s")
    row("paced rate, hot (50% of its peak)", lambda r: r["hot_paced"]["achieved_rps"],
        lambda r: r["nginx_paced"]["achieved_rps"], " req/s")
    for p, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        met = (lambda k, ratio: k < 1.0) if p == "p99_us" else None
        row(f"latency {name}, hot at 50%", lat("hot_paced", p), lat("nginx_paced", p), " ms",
            "< 1 ms" if met else None, met, fmt="{:.3f}")
    row("paced rate, cold (50% of its peak)", lambda r: r["cold_paced"]["achieved_rps"],
        lambda r: r["nginx_paced"]["achieved_rps"], " req/s")
    for p, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        met = (lambda k, ratio: k < 2.0) if p == "p99_us" else None
        row(f"latency {name}, cold at 50%", lat("cold_paced", p), lat("nginx_paced", p), " ms",
            "< 2 ms" if met else None, met, fmt="{:.3f}")
    row("peak RSS (VmHWM) with 1M keys", lambda r: r["keygate_rss_kib"] / 1024,
        lambda r: r["nginx_rss_kib"] / 1024, " MiB", "< 300 MB",
        lambda k, ratio: k * 1.048576 < 300, fmt="{:.0f}")
    row("cold: store lookups per request", cold_miss_ratio, None, "", fmt="{:.2f}")

    errors = sum(
        r[part].get("errors", 0) + r[part].get("non_2xx", 0) + r[part].get("non_200", 0)
        for r in runs
        for part in ("nginx_peak", "nginx_paced", "hot_peak", "hot_paced", "cold_peak", "cold_paced")
    )

    print(f"\nMedians of {len(runs)} repetition(s); ratios are Keygate ÷ nginx of the same repetition.\n")
    print("| figure | Keygate | nginx fixed 200 | ratio | target | met |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nFailed requests (errors, non-2xx) over all measurements: {errors}")
    print("Per repetition (req/s, hot/cold/nginx peak): " + "; ".join(
        f"{r['hot_peak']['rps']:,.0f}/{r['cold_peak']['rps']:,.0f}/{r['nginx_peak']['rps']:,.0f}"
        for r in runs))


if __name__ == "__main__":
    main(sys.argv[1])
