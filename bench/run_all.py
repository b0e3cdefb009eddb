"""`make bench`: run every benchmark script and print one table of their figures.

Each script prints JSON lines {"figure", "ours_ms"|"ours", "reference_ms"|"reference", "ratio",
"target"?}; everything else it prints is shown as it runs.
"""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_timeline.py",
    "bench_aws_engine.py",
    "bench_worker.py",
    "bench_access.py",
    "bench_api.py",
    "bench_dashboard.py",
    "bench_watch.py",
    "bench_activity.py",
    "bench_signatures.py",
]
TIME_LIMIT = 900


def run(script: str) -> tuple[list[dict], float]:
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, str(BENCH / script)],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        check=False,
    )
    figures = []
    for line in process.stdout.splitlines():
        if line.startswith("{") and '"figure"' in line:
            figures.append(json.loads(line))
        else:
            print(f"  {script}: {line}")
    if process.returncode != 0:
        print(process.stderr[-3000:], file=sys.stderr)
        figures.append({"figure": f"{script} FAILED (exit {process.returncode})"})
    return figures, time.monotonic() - started


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    return "" if value is None else str(value)


def main() -> None:
    only = sys.argv[1:]
    rows, times = [], []
    started = time.monotonic()
    for script in SCRIPTS:
        if (only and script not in only) or not (BENCH / script).exists():
            continue
        print(f"== {script}", flush=True)
        figures, seconds = run(script)
        print(f"   ({seconds:.0f} s)")
        rows += figures
        times.append(f"{script.removeprefix('bench_').removesuffix('.py')} {seconds:.0f} s")
    machine = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\nMachine: {machine}; load average {os.getloadavg()[0]:.2f} at the end")
    total = time.monotonic() - started
    print(f"Wall time: {total / 60:.1f} min ({', '.join(times)})")
    print("| figure | ours | reference (same run) | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        ours = row.get("ours_ms", row.get("ours"))
        reference = row.get("reference_ms", row.get("reference"))
        unit = " ms" if "ours_ms" in row else ""
        ours_text = f"{cell(ours)}{unit}" if ours is not None else ""
        reference_text = f"{cell(reference)}{unit}" if reference is not None else ""
        ratio, target = cell(row.get("ratio")), row.get("target", "")
        print(f"| {row['figure']} | {ours_text} | {reference_text} | {ratio} | {target} |")


if __name__ == "__main__":
    main()
