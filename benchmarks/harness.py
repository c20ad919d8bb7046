"""What every benchmark shares: side-by-side timing, the load average next to each figure, and one
section of the report (printed by the benchmark, rendered into docs/benchmarks.md by ``python -m benchmarks``).

Absolute times on a shared machine are noise; only ratios measured side by side in one run mean something.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")


def load_average() -> float:
    """The 1-minute load average: how busy the (shared) machine was while a figure was taken."""
    return round(os.getloadavg()[0], 2)


def jvm_cpu_seconds(spark) -> float:
    """CPU seconds the Spark driver JVM has used so far: a steadier measure than wall time on a busy machine."""
    pid = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def alternating(names: list[str], rounds: int) -> list[list[str]]:
    """One order per round, reversed every other round, so no configuration always runs first (or last)."""
    return [list(names) if r % 2 == 0 else list(reversed(names)) for r in range(rounds)]


@dataclass
class Figure:
    measure: str
    value: str
    target: str = ""
    met: bool | None = None   # None: reported, no target
    load: float | None = None  # 1-minute load average when the figure was taken

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


@dataclass
class Section:
    title: str
    setup: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_before: float = field(default_factory=load_average)
    load_after: float | None = None
    seconds: float | None = None

    def add(self, measure: str, value: str, *, target: str = "", met: bool | None = None) -> None:
        self.figures.append(Figure(measure, value, target, met, load_average()))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def close(self, started: float) -> "Section":
        self.load_after, self.seconds = load_average(), round(time.perf_counter() - started, 1)
        return self

    def text(self) -> str:
        width = max((len(f.measure) for f in self.figures), default=10)
        lines = [f"== {self.title} ==", self.setup,
                 f"load average (1 min): {self.load_before} before, {self.load_after} after; {self.seconds} s"]
        for f in self.figures:
            target = f"  (target {f.target}: {f.verdict})" if f.target else ""
            lines.append(f"  {f.measure:<{width}}  {f.value}{target}  [load {f.load}]")
        lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.setup, "",
                 f"Load average (1 min) {self.load_before} before, {self.load_after} after; took {self.seconds} s.",
                 "", "| measure | value | target | verdict | load |", "|---|---|---|---|---|"]
        lines += [f"| {f.measure} | {f.value} | {f.target} | {f.verdict} | {f.load} |" for f in self.figures]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def finish(self, started: float, json_path: str | os.PathLike[str] | None) -> int:
        """Close the section, print it and save it for ``python -m benchmarks``; the exit code (0)."""
        self.close(started)
        print(self.text())
        self.save(json_path)
        return 0

    def save(self, path: str | os.PathLike[str] | None) -> None:
        if path:
            Path(path).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Section":
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["figures"] = [Figure(**f) for f in raw["figures"]]
        return cls(**raw)


def scratch_database(admin: dict, prefix: str = "ll_bench") -> dict:
    """A new, empty PostgreSQL database on the home's server (``admin``'s connection parameters)."""
    params = {**admin, "dbname": f"{prefix}_{secrets.token_hex(4)}"}
    with psycopg.connect(**{**admin, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(params["dbname"])))
    return params


def drop_database(admin: dict, params: dict) -> None:
    with psycopg.connect(**{**admin, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(params["dbname"])))


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")
