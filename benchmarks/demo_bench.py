"""Demo benchmark (not a test): peak memory of the README's demo, Spark, Kafka and PostgreSQL together, and its time.

    .venv/bin/python -m benchmarks.demo_bench [--events 3000] [--seed 7] [--quick] [--keep-home] [--home PATH]
                                              [--json PATH]

The demo runs as the README runs it (``scripts/demo.sh`` ends in ``ledgerlane demo``): ``ledgerlane --home H
demo --json`` in a process of its own, in a fresh home H of its own, so it starts its own Kafka broker and
PostgreSQL cluster there as a first demo does. Every 0.5 s the benchmark sums the resident memory (RSS) of
every process that belongs to the demo: the demo's process tree (the CLI, its Spark driver JVM, Spark's
Python workers) and every process whose command line names a path inside H, with its descendants (the
broker; the postmaster and its backends: both are daemons, not children of the demo). Target: the peak
<= 4 GiB. Summed RSS counts a shared page (PostgreSQL's shared buffers, shared libraries) once per process
that maps it, so it overstates; the proportional set size (PSS, every page counted once, read every 2 s:
it is costlier to read) is reported beside it. Wall time is reported. Afterwards ``ledgerlane --home H
services down`` stops the home's services and H is deleted (``--keep-home`` keeps it).

``--home`` is where the jar cache is found when ``$LEDGERLANE_CACHE`` is not set (the demo must not
download); the demo never uses that home's services.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.harness import Section
from common.home import CACHE_ENV, resolve_cache, resolve_home

REPO = Path(__file__).resolve().parent.parent
GIB = 1024 ** 3
TARGET_GIB = 4.0
TICK = 0.5            # seconds between RSS samples
PSS_EVERY = 4         # PSS on every 4th sample (2 s)
DEMO, KAFKA, POSTGRES, OTHER = "demo process tree (CLI, Spark JVM, Python workers)", "Kafka broker", \
    "PostgreSQL (postmaster + backends)", "other processes naming the home"


@dataclass
class Peaks:
    """What the sampler saw: the total RSS peak with its parts and phase, PSS peak, per-part peaks."""
    rss: int = 0
    rss_parts: dict[str, int] = field(default_factory=dict)
    rss_at: float = 0.0
    rss_phase: str = ""
    pss: int = 0
    pss_supported: bool = True
    part_peaks: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    most_processes: int = 0


# ---- which processes belong to the demo --------------------------------------------------------------

class Census:
    """Every 0.5 s: the processes of the demo tree and of the home, each with the part it belongs to."""

    def __init__(self, demo_pid: int, home: Path):
        self.demo_pid, self.marker = demo_pid, f"{home}/"
        self.cmdlines: dict[tuple[int, float], str] = {}   # (pid, create time) -> command line

    def cmdline(self, proc: psutil.Process) -> str:
        key = (proc.pid, proc.info["create_time"])
        if key not in self.cmdlines:
            try:
                self.cmdlines[key] = " ".join(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self.cmdlines[key] = ""
        return self.cmdlines[key]

    def part_of_root(self, proc: psutil.Process) -> str | None:
        if proc.pid == self.demo_pid:
            return DEMO
        line = self.cmdline(proc)
        if self.marker not in line:
            return None
        if "kafka.Kafka" in line:
            return KAFKA
        return POSTGRES if "postgres" in line.split(" ", 1)[0] else OTHER

    def members(self) -> dict[int, tuple[psutil.Process, str]]:
        procs = {p.pid: p for p in psutil.process_iter(["ppid", "create_time"])}
        roots = {pid: part for pid, p in procs.items() if (part := self.part_of_root(p))}
        found: dict[int, tuple[psutil.Process, str]] = {}
        for pid, proc in procs.items():
            part = self.ancestor_part(pid, procs, roots)
            if part:
                found[pid] = (proc, part)
        return found

    @staticmethod
    def ancestor_part(pid: int, procs: dict, roots: dict[int, str]) -> str | None:
        seen = 0
        while pid in procs and seen < 64:
            if pid in roots:
                return roots[pid]
            pid, seen = procs[pid].info["ppid"], seen + 1
        return None


def memory_of(members: dict[int, tuple[psutil.Process, str]], with_pss: bool) -> tuple[dict[str, int], int | None]:
    """RSS per part, and the total PSS when asked (None when the kernel will not tell)."""
    parts: dict[str, int] = {}
    pss: int | None = 0 if with_pss else None
    for proc, part in members.values():
        try:
            rss = proc.memory_info().rss
            if pss is not None:
                pss += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:   # the PSS of another user's process needs privileges; RSS never does
            pss = None
        parts[part] = parts.get(part, 0) + rss
    return parts, pss


# ---- the demo in a process of its own ------------------------------------------------------------------

def ledgerlane() -> list[str]:
    """The installed ``ledgerlane`` console script next to this interpreter, else its module."""
    script = Path(sys.executable).parent / "ledgerlane"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


class Progress:
    """The demo's progress lines (stderr), echoed as they come; the latest one names the phase."""

    def __init__(self, stream):
        self.latest, self.tail = "starting", []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            line = raw.rstrip()
            if line:
                self.latest = line.strip(" ·")
                self.tail = (self.tail + [line])[-40:]
                print(f"    demo| {line}", flush=True)


def sample_until_done(child: subprocess.Popen, census: Census, progress: Progress, began: float) -> Peaks:
    peaks, tick = Peaks(), 0
    while child.poll() is None:
        due = time.monotonic() + TICK
        members = census.members()
        parts, pss = memory_of(members, peaks.pss_supported and tick % PSS_EVERY == 0)
        record(peaks, parts, pss, tick % PSS_EVERY == 0, time.monotonic() - began, progress.latest, len(members))
        tick += 1
        time.sleep(max(0.0, due - time.monotonic()))
    return peaks


def record(peaks: Peaks, parts: dict[str, int], pss: int | None, pss_asked: bool, at: float, phase: str,
           processes: int) -> None:
    total = sum(parts.values())
    peaks.samples += 1
    peaks.most_processes = max(peaks.most_processes, processes)
    for part, rss in parts.items():
        peaks.part_peaks[part] = max(peaks.part_peaks.get(part, 0), rss)
    if total > peaks.rss:
        peaks.rss, peaks.rss_parts, peaks.rss_at, peaks.rss_phase = total, dict(parts), at, phase
    if pss_asked and peaks.pss_supported:
        if pss is None:
            peaks.pss_supported = False
        else:
            peaks.pss = max(peaks.pss, pss)


def run_demo(home: Path, events: int, seed: int, env: dict) -> tuple[Peaks, float, int, str, list[str]]:
    """(peaks, wall seconds, exit code, stdout, last stderr lines) of one demo."""
    argv = [*ledgerlane(), "--home", str(home), "demo", "--events", str(events), "--seed", str(seed), "--json"]
    print(f"  · running: {' '.join(argv)}", flush=True)
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
        progress = Progress(child.stderr)
        peaks = sample_until_done(child, Census(child.pid, home), progress, began)
        seconds = time.monotonic() - began
        progress.thread.join(timeout=10)
        out.seek(0)
        return peaks, seconds, child.returncode, out.read().decode(), progress.tail


def services_down(home: Path, env: dict) -> str:
    done = subprocess.run([*ledgerlane(), "--home", str(home), "services", "down"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    return (done.stdout + done.stderr).strip()


def leftovers(home: Path) -> list[int]:
    """Processes still naming the home after ``services down`` (there should be none)."""
    census = Census(-1, home)
    return sorted(census.members())


# ---- the report ------------------------------------------------------------------------------------------

def gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def report(section: Section, peaks: Peaks, seconds: float, summary: dict) -> None:
    verdicts = ", ".join(f"{r['run_id']} {r['verdict']} ({r['admitted']} admitted, {r['seconds']} s)"
                         for r in summary["runs"])
    section.add("demo: wall time (its own summary says)", f"{seconds:.1f} s ({summary['seconds']} s); runs: {verdicts}")
    met = peaks.rss / GIB <= TARGET_GIB
    section.add("peak memory, Spark + Kafka + PostgreSQL together (summed RSS)", gib(peaks.rss),
                target=f"<= {TARGET_GIB:g} GiB", met=met)
    parts = ", ".join(f"{part} {gib(n)}" for part, n in sorted(peaks.rss_parts.items(), key=lambda kv: -kv[1]))
    section.add("at the peak", f"{parts}; {peaks.rss_at:.0f} s in, during: {peaks.rss_phase}")
    section.add("each part's own peak (RSS)",
                ", ".join(f"{part} {gib(n)}" for part, n in sorted(peaks.part_peaks.items(), key=lambda kv: -kv[1])))
    section.add("peak PSS (shared pages counted once), sampled every 2 s",
                gib(peaks.pss) if peaks.pss_supported else "not readable here")
    section.add("samples taken (every 0.5 s); most processes at once", f"{peaks.samples}; {peaks.most_processes}")


def demo_env(home_arg: str | None) -> dict:
    """Our environment, with the jar cache pinned (the demo's fresh home has none: it must not download)."""
    cache = os.environ.get(CACHE_ENV) or str(resolve_cache(resolve_home(home_arg)))
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGERLANE_HOME", "LEDGERLANE_FAULT")}
    return {**env, CACHE_ENV: cache, "PYTHONPATH": str(REPO)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="valid events per traffic burst (the demo's default)")
    parser.add_argument("--seed", type=int, default=7, help="the demo's seed (its default)")
    parser.add_argument("--quick", action="store_true", help="smoke size: 300 events per burst")
    parser.add_argument("--keep-home", action="store_true", help="keep the demo's home (services are stopped anyway)")
    parser.add_argument("--home", default=os.environ.get("LEDGERLANE_HOME"),
                        help="a ledgerlane home whose jar cache the demo uses (its services are not used)")
    parser.add_argument("--json", default=None, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 300
    started = time.perf_counter()
    section = Section("Demo", f"`ledgerlane demo --events {args.events} --seed {args.seed}` (two traffic bursts, two "
                      "whole runs, labels in between) in a fresh home of its own, starting its own Kafka and "
                      "PostgreSQL; RSS of the demo's process tree plus every process naming the home, summed every "
                      f"{TICK} s.")
    home = Path(tempfile.mkdtemp(prefix="ledgerlane-bench-demo-"))
    home.chmod(0o755)   # PostgreSQL runs as its own user and must traverse the home
    env = demo_env(args.home)
    try:
        peaks, seconds, code, out, tail = run_demo(home, args.events, args.seed, env)
    finally:
        print(f"  · stopping the demo's services: {services_down(home, env)}", flush=True)
        left = leftovers(home)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    if code != 0:
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"the demo exited with code {code}")
    report(section, peaks, seconds, json.loads(out))
    if left:
        section.note(f"processes still naming the demo's home after `services down`: {left}")
    section.close(started)
    print(section.text())
    section.save(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
