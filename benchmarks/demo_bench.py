"""Demo benchmark (not a test): peak memory of the README's demo, Spark, Kafka and PostgreSQL together, and its time.

    .venv/bin/python -m benchmarks.demo_bench [--events 3000] [--seed 7] [--quick] [--keep-home] [--home PATH]
                                              [--json PATH]

The demo runs as the README runs it (``scripts/demo.sh`` ends in ``ledgerlane demo``): ``ledgerlane --home H
demo`` in a process of its own, in a fresh home H of its own, so it starts its own Kafka broker and
PostgreSQL cluster there as a first demo does. Every 0.5 s the benchmark sums the resident memory (RSS) of
every process that belongs to the demo: the demo's process tree (the CLI, its Spark driver JVM, Spark's
Python workers) and every process whose command line names a path inside H, with its descendants (the
broker; the postmaster and its backends: both are daemons, not children of the demo). Target: the peak
<= 4 GiB.

A child that shares its parent's address space (the JVM starts a command by vfork; until its exec the
child reports the JVM's whole RSS as its own) is counted once, found by kcmp(2). Summed RSS still counts
a shared page (PostgreSQL's shared buffers, shared libraries, a forked worker's copy-on-write pages) once
per process that maps it, so it can overstate; the proportional set size (PSS: each page split among the
processes that map it) is read every 2 s (it costs more to read) and its peak reported beside it. The
demo's wall time and what it printed (its runs and verdicts) are reported. Afterwards ``ledgerlane --home
H services down`` stops the home's services and H is deleted (``--keep-home`` keeps it).

The demo uses ``$LEDGERLANE_CACHE``, else the jar cache of ``--home`` or of the README's home
(``.ledgerlane/``), whichever is populated, so it does not time a download; it never uses ``--home``'s
services.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
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
class Sample:
    """One look at the demo's processes: RSS per process (pid -> part, short name, bytes)."""
    at: float
    phase: str
    rss: dict[int, tuple[str, str, int]]
    shared: int = 0        # children left out: they share their parent's address space (a vfork before exec)

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.rss.values())

    def parts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for part, _, n in self.rss.values():
            found[part] = found.get(part, 0) + n
        return found


@dataclass
class Peaks:
    """What the sampler saw: the sample with the most RSS, the 2-second PSS reading with the most PSS
    (and the sample it was read with), each part's own RSS peak."""
    top: Sample | None = None
    pss: int | None = 0                        # None: the kernel would not tell
    pss_top: dict[int, tuple[int, int]] = field(default_factory=dict)   # pid -> (PSS, USS) at the PSS peak
    pss_sample: Sample | None = None
    part_peaks: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    samples_with_shared: int = 0
    pss_reads: int = 0
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
        procs = {p.pid: p for p in psutil.process_iter(["ppid", "create_time", "name"])}
        roots = {pid: part for pid, p in procs.items() if (part := self.part_of_root(p))}
        found: dict[int, tuple[psutil.Process, str]] = {}
        for pid, proc in procs.items():
            part = self.ancestor_part(pid, procs, roots)
            if part:
                found[pid] = (proc, part)
        return found

    def ancestor_part(self, pid: int, procs: dict, roots: dict[int, str]) -> str | None:
        """The demo tree wins (its Spark JVM names the home too); else the nearest root naming the home."""
        chain = []
        while pid in procs and len(chain) < 64:
            chain.append(pid)
            pid = procs[pid].info["ppid"]
        if self.demo_pid in chain:
            return DEMO
        return next((roots[p] for p in chain if p in roots), None)


def rss_of(members: dict[int, tuple[psutil.Process, str]], at: float, phase: str) -> Sample:
    """RSS of every member but a child that shares its parent's address space: a JVM starts a command
    by vfork, and until its exec the child reports the whole JVM's RSS as its own (the same pages)."""
    rss, skipped = {}, 0
    for pid, (proc, part) in members.items():
        if proc.info["ppid"] in members and same_address_space(pid, proc.info["ppid"]):
            skipped += 1
            continue
        try:
            rss[pid] = (part, proc.info["name"] or "?", proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return Sample(at, phase, rss, skipped)


KCMP = {"x86_64": 312, "aarch64": 272}.get(platform.machine())
KCMP_VM = 1
_libc = ctypes.CDLL(None, use_errno=True)


def same_address_space(a: int, b: int) -> bool:
    """kcmp(2) with KCMP_VM: whether two processes share one memory map (False when it cannot tell)."""
    return KCMP is not None and _libc.syscall(KCMP, a, b, KCMP_VM, 0, 0) == 0


def kcmp_works() -> bool:
    return same_address_space(os.getpid(), os.getpid())


def pss_of(members: dict[int, tuple[psutil.Process, str]], pids) -> dict[int, tuple[int, int]] | None:
    """(PSS, USS) of ``pids`` from /proc/<pid>/smaps_rollup; None when the kernel will not tell us."""
    found = {}
    for pid in pids:
        try:
            full = members[pid][0].memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, KeyError):
            continue
        except psutil.AccessDenied:   # another user's smaps needs privileges (RSS never does)
            return None
        found[pid] = (full.pss, full.uss)
    return found


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
            if line.lstrip().startswith("·"):   # the demo's own progress lines, not Spark's warnings
                self.latest = line.strip(" ·")
            if line:
                self.tail = (self.tail + [line])[-40:]
                print(f"    demo| {line}", flush=True)


def sample_until_done(child: subprocess.Popen, census: Census, progress: Progress, began: float) -> Peaks:
    peaks, tick = Peaks(), 0
    while child.poll() is None:
        due = time.monotonic() + TICK
        members = census.members()
        sample = rss_of(members, time.monotonic() - began, progress.latest)
        record(peaks, sample, len(members))
        if tick % PSS_EVERY == 0 and peaks.pss is not None:
            record_pss(peaks, sample, pss_of(members, sample.rss))
        tick += 1
        time.sleep(max(0.0, due - time.monotonic()))
    return peaks


def record(peaks: Peaks, sample: Sample, processes: int) -> None:
    peaks.samples += 1
    peaks.samples_with_shared += bool(sample.shared)
    peaks.most_processes = max(peaks.most_processes, processes)
    for part, n in sample.parts().items():
        peaks.part_peaks[part] = max(peaks.part_peaks.get(part, 0), n)
    if peaks.top is None or sample.total > peaks.top.total:
        peaks.top = sample


def record_pss(peaks: Peaks, sample: Sample, pss: dict[int, tuple[int, int]] | None) -> None:
    peaks.pss_reads += 1
    if pss is None:
        peaks.pss = None
    elif sum(p for p, _ in pss.values()) > peaks.pss:
        peaks.pss, peaks.pss_top, peaks.pss_sample = sum(p for p, _ in pss.values()), pss, sample


def run_demo(home: Path, events: int, seed: int, env: dict) -> tuple[Peaks, float, int, str, list[str]]:
    """(peaks, wall seconds, exit code, stdout, last stderr lines) of one demo, run as the README runs it."""
    argv = [*ledgerlane(), "--home", str(home), "demo", "--events", str(events), "--seed", str(seed)]
    print(f"  · running: {' '.join(argv)}", flush=True)
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
        progress = Progress(child.stderr)
        try:
            peaks = sample_until_done(child, Census(child.pid, home), progress, began)
        except BaseException:   # interrupted: the demo must not outlive us (its services are stopped by the caller)
            child.terminate()
            child.wait(timeout=60)
            raise
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


def report(section: Section, peaks: Peaks, seconds: float, printed: str) -> None:
    runs = [line.strip() for line in printed.splitlines() if line.strip().startswith(("run ", "demo finished"))]
    section.add("demo: wall time; what it printed", f"{seconds:.1f} s; " + "; ".join(runs))
    top = peaks.top
    section.add("peak memory, Spark + Kafka + PostgreSQL together (summed RSS)", gib(top.total),
                target=f"<= {TARGET_GIB:g} GiB", met=top.total / GIB <= TARGET_GIB)
    parts = ", ".join(f"{part} {gib(n)}" for part, n in sorted(top.parts().items(), key=lambda kv: -kv[1]))
    section.add("at the peak", f"{parts}; {top.at:.0f} s in, during: {top.phase}")
    section.add("at the peak, the largest processes (RSS)", biggest(top, {}))
    if peaks.pss is None or peaks.pss_sample is None:
        section.add("peak PSS (every page counted once), every 2 s", "not readable here")
    else:
        section.add("peak PSS (every page counted once), every 2 s",
                    f"{gib(peaks.pss)} ({peaks.pss_sample.at:.0f} s in, RSS then {gib(peaks.pss_sample.total)})")
        section.add("at the PSS peak, the largest processes: RSS (PSS, USS)", biggest(peaks.pss_sample, peaks.pss_top))
    section.add("each part's own peak (RSS)",
                ", ".join(f"{part} {gib(n)}" for part, n in sorted(peaks.part_peaks.items(), key=lambda kv: -kv[1])))
    section.add(f"RSS samples (every {TICK} s); PSS readings; most processes at once",
                f"{peaks.samples}; {peaks.pss_reads}; {peaks.most_processes}")
    section.add("samples that caught a child sharing its parent's address space (counted once)",
                f"{peaks.samples_with_shared}" if kcmp_works() else "unknown: kcmp(2) unavailable, such a child "
                "would be counted twice")


def biggest(sample: Sample, pss: dict[int, tuple[int, int]], count: int = 4) -> str:
    largest = sorted(sample.rss.items(), key=lambda kv: -kv[1][2])[:count]
    shown = []
    for pid, (_, name, rss) in largest:
        extra = f" ({gib(pss[pid][0])}, {gib(pss[pid][1])})" if pid in pss else ""
        shown.append(f"{name} {pid} {gib(rss)}{extra}")
    return ", ".join(shown)


def jar_cache(home_arg: str | None) -> Path:
    """$LEDGERLANE_CACHE, else the first populated of ``--home``'s cache and the README home's (``.ledgerlane/``):
    the demo's fresh home has none, and a first demo that downloads jars would time the network."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    readme = REPO / ".ledgerlane" / "cache"
    candidates = [resolve_cache(resolve_home(home_arg))] if home_arg else []
    return next((c for c in [*candidates, readme] if c.is_dir() and any(c.iterdir())), readme)


def demo_env(cache: Path) -> dict:
    """Our environment, with the jar cache pinned and no home or fault injection leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGERLANE_HOME", "LEDGERLANE_FAULT")}
    return {**env, CACHE_ENV: str(cache), "PYTHONPATH": str(REPO)}


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
    cache = jar_cache(args.home)
    section.note(f"jar cache {cache} ({'populated' if cache.is_dir() and any(cache.iterdir()) else 'empty'} "
                 "before the demo)")
    env = demo_env(cache)
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
    report(section, peaks, seconds, out)
    if left:
        section.note(f"processes still naming the demo's home after `services down`: {left}")
    return section.finish(started, args.json)


if __name__ == "__main__":
    sys.exit(main())
