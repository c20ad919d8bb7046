"""Simulator benchmark (not a test): peak memory of `ledgerlane simulate` as the plan grows, and steady mode.

    .venv/bin/python -m benchmarks.simulator_bench [--sizes 100000,1000000] [--home PATH] [--quick]

Each size runs `ledgerlane simulate` in its own process against the real local broker and reads that
process's peak resident memory from the kernel (``wait4``). Memory should stay flat as the size grows
10x; side by side, the in-memory planner the simulator used before (kept as the tests' reference) plans
the smallest size in another process. Steady mode is asked for 500 valid events/s and its achieved
pace reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.harness import Section

REPO = Path(__file__).resolve().parent.parent
START = "2026-11-01T00:00:00Z"
# The world every child process builds, as `simulate` builds it for n events (same seed, start, days).
WORLD = """
from datetime import datetime, timezone
from simulator.producer import accounts_for
from simulator.world import build_world
world = build_world(21, start=datetime(2026, 11, 1, tzinfo=timezone.utc), accounts=accounts_for({n}), days=7)
"""
REFERENCE = """
import sys; sys.path.insert(0, {tests!r})
from simulator_reference import reference_events, reference_plan
""" + WORLD + """
plan = reference_plan(world, reference_events(world, {n}), duplicate_rate=0.01, conflict_rate=0.002, bad_rate=0.02, seed=21)
print(len(plan))
"""
WORLD_ONLY = WORLD + "print(len(world.accounts))\n"


def peak_rss(argv: list[str], env: dict) -> tuple[float, float, str]:
    """(peak resident MiB, wall seconds, stdout) of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {child.returncode}: {text[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started, text


def simulate_argv(home: Path, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "--home", str(home), "--config", str(config), "simulate",
            "--seed", "21", "--start", START, "--json", *args]


def topic_config(folder: Path, topic: str) -> Path:
    path = folder / f"{topic}.toml"
    path.write_text(f'env = "local"\n[kafka]\ntopic = "{topic}"\n', encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simulator_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="valid events per run, comma separated")
    parser.add_argument("--home", default=os.environ.get("LEDGERLANE_HOME"), help="ledgerlane home with services")
    parser.add_argument("--quick", action="store_true", help="smoke size: 10,000 and 100,000 events")
    parser.add_argument("--json", default=None, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [int(n) for n in args.sizes.split(",")]
    started = time.perf_counter()
    section = Section("Simulator", "`ledgerlane simulate` to the local broker, one process per run, default rates "
                      "(1% retries, 0.2% conflicts, 2% bad records); peak RSS from the kernel.")
    from common.config import load_settings
    from services import manager

    settings = load_settings("local", home=args.home)
    manager.up(settings.home, settings.cache)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    folder = Path(tempfile.mkdtemp(prefix="ledgerlane-bench-sim-"))
    peaks = {}
    for n in sizes:
        config = topic_config(folder, f"bench-sim-{n}-{uuid.uuid4().hex[:6]}")
        peaks[n], seconds, out = peak_rss(simulate_argv(settings.home, config, "--events", str(n), "--days", "7"), env)
        summary = json.loads(out)
        section.add(f"{n:,} events ({summary['records']:,} records): peak RSS, time",
                    f"{peaks[n]:.0f} MiB, {seconds:.1f} s ({summary['events_per_s']:,.0f} records/s)")
    section.add(f"peak RSS at {sizes[-1]:,} ÷ at {sizes[0]:,} events", f"{peaks[sizes[-1]] / peaks[sizes[0]]:.2f}",
                target="flat (about 1)", met=peaks[sizes[-1]] / peaks[sizes[0]] < 1.25)
    # The plan streams; the world (cardholders and merchants) is built whole, and grows with the size
    # until its cap: its share of the difference above, each world built alone in its own process.
    worlds = {n: peak_rss([sys.executable, "-c", WORLD_ONLY.format(n=n)], env) for n in (sizes[0], sizes[-1])}
    section.add(f"of the difference: a process that only builds the world (its cardholders grow with the "
                f"events, up to a cap), {sizes[0]:,} / {sizes[-1]:,} events",
                " / ".join(f"{int(worlds[n][2]):,} accounts, {worlds[n][0]:.0f} MiB" for n in (sizes[0], sizes[-1])))
    reference_rss, seconds, _ = peak_rss([sys.executable, "-c", REFERENCE.format(tests=str(REPO / "tests"),
                                                                                 n=sizes[0])], env)
    section.add(f"for reference: the former in-memory planner, {sizes[0]:,} events, planning only",
                f"{reference_rss:.0f} MiB, {seconds:.1f} s")
    config = topic_config(folder, f"bench-sim-steady-{uuid.uuid4().hex[:6]}")
    _, seconds, out = peak_rss(simulate_argv(settings.home, config, "--rate", "500", "--duration", "10",
                                             "--days", "1"), env)
    summary = json.loads(out)
    section.add("steady mode asked for 500 valid events/s for 10 s: achieved",
                f"{summary['by_kind']['valid'] / summary['seconds']:.0f} valid events/s over {summary['seconds']:.1f} s")
    return section.finish(started, args.json)


if __name__ == "__main__":
    sys.exit(main())
