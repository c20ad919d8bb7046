"""The end-to-end demo on embedded defaults: services, migrations, simulated traffic, governed ingest,
chargeback labels in PostgreSQL and their export to Delta, then every data product built, certified by
its suite (the default certify engine) and read back through the certification gate.

    ledgerlane demo [--events 5000] [--seed 7]
    spark-submit jobs/demo.py --events 5000

Running it twice with the same seed shows idempotency: the second run admits nothing new and counts
every record as a duplicate; the label import is a no-op.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from common.config import Settings
from common.endpoints import postgres_params
from common.entrypoint import job_parser, run_job
from common.run import new_run_id
from common.services import manager
from common.spark import build_session

Progress = Callable[[str], None]


def prepare(settings: Settings, run_id: str, progress: Progress) -> dict:
    from common.db.migrate import migrate

    progress("starting Kafka and PostgreSQL")
    manager.up(settings.home, settings.cache, progress=progress)
    progress("migrating the human-loop database")
    return migrate(postgres_params(settings), run_id=run_id)


def traffic(settings: Settings, events: int, seed: int, start: datetime, progress: Progress) -> dict:
    from simulator.producer import simulate

    progress(f"simulating {events} card transactions (seed {seed})")
    return simulate(settings, events=events, seed=seed, duplicate_rate=0.02, conflict_rate=0.002, bad_rate=0.02,
                    partitions=None, start=start).to_dict()


def chargebacks(settings: Settings, ground_truth: str, progress: Progress) -> dict:
    from common.db import label_import
    from common.db.connection import connect

    progress("importing chargeback labels from the simulator's ground truth")
    feed = Path(ground_truth).with_name(f"chargebacks-{Path(ground_truth).stem}.jsonl")
    label_import.write_jsonl(label_import.chargebacks_from_ground_truth(label_import.read_jsonl(Path(ground_truth))), feed)
    with connect(postgres_params(settings), application_name="ledgerlane-demo") as conn:
        return label_import.import_labels(conn, label_import.read_feed(feed))


def products(spark, settings: Settings, run_id: str, progress: Progress) -> dict:
    """Build and certify every product of the run (a rerun of a fresh run does exactly that), then
    read each one back through the certification gate."""
    from checks.gate import read_certified
    from checks.results import PASS
    from jobs import rerun
    from jobs.batch_context import BatchContext

    progress("building and certifying the data products")
    outcomes = rerun.rerun(spark, BatchContext.from_settings(settings), run_id)["outcomes"]
    return {name: {"version": o.get("version"), "verdict": o["state"], "rows": o.get("rows"),
                   "readable_rows": read_certified(spark, settings, name).count() if o["state"] == PASS else 0}
            for name, o in outcomes.items()}


def run(settings: Settings, *, events: int = 5000, seed: int = 7, run_id: str | None = None,
        now: datetime | None = None, progress: Progress = lambda _: None) -> dict:
    from jobs import export_labels
    from streaming import ingest

    run_id = run_id or new_run_id(now)
    began = time.monotonic()
    start = (now or datetime.now(timezone.utc)) - timedelta(days=7)
    summary = {"run_id": run_id, "migrations": prepare(settings, run_id, progress)}
    summary["simulated"] = traffic(settings, events, seed, start, progress)
    progress("starting Spark")
    spark = build_session(settings, f"ledgerlane-demo-{run_id}")
    progress("ingesting until caught up with the run basis")
    summary["ingest"] = ingest.ingest(spark, settings, run_id, progress=progress)
    summary["labels_imported"] = chargebacks(settings, summary["simulated"]["ground_truth"], progress)
    progress("exporting label events to Delta")
    summary["labels_exported"] = export_labels.export(spark, settings, run_id)
    # A run that admitted nothing new (e.g. the same seed again) has no slice to build.
    summary["products"] = products(spark, settings, run_id, progress) if summary["ingest"]["admitted"] else {}
    summary["seconds"] = round(time.monotonic() - began, 1)
    return summary


def describe(summary: dict) -> str:
    from streaming import ingest

    sim, exported = summary["simulated"], summary["labels_exported"]
    return "\n".join([
        f"demo run {summary['run_id']} finished in {summary['seconds']} s",
        f"  migrations   head {summary['migrations']['head']} (applied now: {summary['migrations']['applied'] or 'none'})",
        f"  simulated    {sim['records']} records to {sim['topic']} ({sim['by_kind']}), {sim['events_per_s']} records/s",
        ingest.describe(summary["ingest"]).replace("\n", "\n  ").join(["  ", ""]),
        f"  labels       imported {summary['labels_imported']}",
        f"  export       {exported['exported']} label events to Delta version {exported['delta_version']}",
        *(product_lines(summary["products"]) or ["  products     none built: this run admitted no new events"]),
    ])


def product_lines(built: dict) -> list[str]:
    return [f"  product      {name}: version {p['version']} {p['verdict']}, {p['rows']} rows built, "
            f"{p['readable_rows']} readable through the gate" for name, p in built.items()]


def exit_code(summary: dict) -> int:
    """The demo only succeeds when every product it built is certified PASS."""
    from checks.results import PASS
    from common.errors import UncertifiedProductError

    failed = [name for name, p in summary["products"].items() if p["verdict"] != PASS]
    return UncertifiedProductError.exit_code if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("demo", __doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)
    return run_job(args, lambda settings: run(settings, events=args.events, seed=args.seed, run_id=args.run_id),
                   describe, exit_code)


if __name__ == "__main__":
    sys.exit(main())
