"""The end-to-end demo on embedded defaults, the README's main command: it ends in verdicts.

    ledgerlane demo [--events 3000] [--seed 7] [--json]

Services up; simulated card traffic (duplicates, conflicts, bad records) onto the topic; run 1 (ingest,
labels, products, decisions, cases, closure); then what people and banks do between runs: analysts
label the cases run 1 opened and close them, and chargebacks arrive late for run 1's frauds, all from
the simulator's ground truth; more traffic; run 2, whose products and decisions use those labels.
It prints each run's verdict, its evidence folder and its HTML report, and which services it left
running. Run it again with the same seed: nothing is admitted twice, and both new runs still close.
The traffic's dates are anchored on the first demo in a home (``<home>/demo-anchor.json``), so the same
seed sends the same bytes on any later day, and the late chargebacks are the same records again.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import click

from cli.context import AppContext, emit, pass_app
from common.config import Settings
from common.edge import progress_printer
from common.endpoints import postgres_params
from common.run import new_run_id
from common.spark import build_session
from services import manager

Progress = Callable[[str], None]
ANALYST = "analyst-demo"
MAX_EVENTS = 1_000_000


def traffic(settings: Settings, events: int, seed: int, start: datetime, progress: Progress) -> dict:
    from simulator.producer import simulate

    progress(f"simulating {events:,} card transactions (seed {seed}) from {start:%Y-%m-%d}")
    return simulate(settings, events=events, seed=seed, duplicate_rate=0.02, conflict_rate=0.002, bad_rate=0.02,
                    partitions=None, start=start, days=3).to_dict()


def traffic_anchor(settings: Settings, now: datetime) -> datetime:
    """When this home's first demo ran: later demos simulate the same days, so the same seed is the same traffic."""
    path = settings.home / "demo-anchor.json"
    try:
        return datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["anchor"])
    except (OSError, ValueError, KeyError, TypeError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"anchor": now.isoformat()}), encoding="utf-8")
        return now


def truth_of(ground_truth: str) -> dict[str, dict]:
    with Path(ground_truth).open(encoding="utf-8") as handle:
        return {row["event_id"]: row for row in map(json.loads, handle)}


def analyst_labels(settings: Settings, run_id: str, truth: dict[str, dict], progress: Progress) -> dict:
    """Analysts work the cases the run opened: a label from the ground truth, then the case is closed."""
    from human_loop import cases, labels
    from human_loop.connection import connect

    progress("analysts label and close the cases the run opened")
    labelled = 0
    with connect(postgres_params(settings), application_name="ledgerlane-demo") as conn:
        opened = [c for c in cases.list_cases(conn, status="open", limit=10_000) if c["run_id"] == run_id]
        for case in opened:
            fact = truth.get(case["event_id"] or "")
            if fact is None:
                continue
            verdict = "fraud" if fact["is_fraud"] else "legitimate"
            labels.add_label(conn, labels.LabelEventIn(
                idempotency_key=f"analyst-{case['case_id']}", account_id=case["account_id"], event_id=case["event_id"],
                label=verdict, source="analyst", actor=ANALYST, observed_at=datetime.fromisoformat(
                    fact["event_time"].replace("Z", "+00:00"))))
            cases.close_case(conn, case["case_id"], ANALYST, f"reviewed: {verdict}")
            labelled += 1
    return {"cases_reviewed": labelled}


def late_chargebacks(settings: Settings, ground_truth: str, progress: Progress) -> dict:
    from human_loop import label_import
    from human_loop.connection import connect

    progress("chargebacks arrive late for the frauds of the first traffic")
    feed = Path(ground_truth).with_name(f"chargebacks-{Path(ground_truth).stem}.jsonl")
    label_import.write_jsonl(label_import.chargebacks_from_ground_truth(label_import.read_jsonl(Path(ground_truth))),
                             feed)
    with connect(postgres_params(settings), application_name="ledgerlane-demo") as conn:
        return label_import.import_labels(conn, label_import.read_feed(feed))


def one_run(spark, settings: Settings, run_id: str, progress: Progress) -> dict:
    from jobs import run

    progress(f"run {run_id}")
    summary = run.run(spark, settings, run_id, progress=progress)
    close = summary["steps"].get("close", {})
    return {"run_id": run_id, "verdict": summary["verdict"], "reasons": close.get("reasons", []),
            "evidence": close.get("bundle"), "report": close.get("report"), "seconds": summary["seconds"],
            "admitted": summary["steps"].get("ingest", {}).get("admitted")}


def demo(settings: Settings, *, events: int = 3000, seed: int = 7, now: datetime | None = None,
         progress: Progress = lambda _: None) -> dict:
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    began = time.monotonic()
    progress("starting Kafka and PostgreSQL")
    manager.up(settings.home, settings.cache, progress=progress)
    first_ids, second_ids = new_run_id(now), new_run_id(now + timedelta(seconds=1))
    anchor = traffic_anchor(settings, now)
    first = traffic(settings, events, seed, anchor - timedelta(days=7), progress)
    progress("starting Spark")
    spark = build_session(settings, f"ledgerlane-demo-{first_ids}")
    runs = [one_run(spark, settings, first_ids, progress)]
    labels = {**analyst_labels(settings, first_ids, truth_of(first["ground_truth"]), progress),
              "chargebacks": late_chargebacks(settings, first["ground_truth"], progress)}
    second = traffic(settings, events, seed + 1, anchor - timedelta(days=4), progress)
    runs.append(one_run(spark, settings, second_ids, progress))
    return {"runs": runs, "simulated": [first, second], "labels": labels, "seconds": round(time.monotonic() - began, 1),
            "services": {name: s.to_dict() for name, s in manager.status(settings.home).items()},
            "home": str(settings.home)}


def describe(summary: dict) -> str:
    lines = [f"demo finished in {summary['seconds']} s"]
    for run in summary["runs"]:
        lines.append(f"  run {run['run_id']}: {run['verdict']} ({run['admitted']} admitted, {run['seconds']} s)")
        lines += [f"    - {reason}" for reason in run["reasons"]]
        lines.append(f"    evidence {run['evidence']}")
        lines.append(f"    report   {run['report']}")
    labels = summary["labels"]
    lines.append(f"  between the runs: {labels['cases_reviewed']} cases labelled and closed by analysts, "
                 f"{labels['chargebacks']['inserted']} late chargebacks")
    running = [f"{name} on port {s['port']}" for name, s in summary["services"].items() if s["healthy"]]
    lines.append(f"  left running: {', '.join(running) or 'nothing'} (stop them with "
                 f"`ledgerlane --home {summary['home']} services down`)")
    return "\n".join(lines)


def exit_code(summary: dict) -> int:
    from common.errors import ClosureFailed

    return 0 if all(run["verdict"] == "PASS" for run in summary["runs"]) else ClosureFailed.exit_code


@click.command("demo")
@click.option("--events", type=click.IntRange(1, MAX_EVENTS), default=3000, show_default=True,
              help=f"Valid card transactions per traffic burst (two bursts; at most {MAX_EVENTS:,}).")
@click.option("--seed", type=click.IntRange(min=0), default=7, show_default=True,
              help="Simulator seed (same seed, same traffic).")
@click.option("--json", "as_json", is_flag=True, help="Print the demo summary as JSON.")
@pass_app
def command(app: AppContext, events: int, seed: int, as_json: bool) -> None:
    """Services, traffic, two runs with labels in between, and each run's verdict and report."""
    summary = demo(app.settings, events=events, seed=seed, progress=progress_printer(as_json))
    emit(summary, as_json, describe(summary))
    if exit_code(summary):
        raise click.exceptions.Exit(exit_code(summary))

