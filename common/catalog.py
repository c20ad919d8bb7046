"""The table catalog: every Delta table ledgerlane writes, its location and its table properties.

All code resolves table locations here; nothing builds a table path by hand. A new table is one
``TableSpec`` line in ``_SPECS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    append_only: bool = False
    partition_by: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def table_properties(self) -> dict[str, str]:
        props = dict(self.properties)
        if self.append_only:
            props["delta.appendOnly"] = "true"
        return props


_SPECS = [
    TableSpec("meta.smoke", "Smoke pipeline: proves Delta writes, time travel, Kafka and PostgreSQL work"),
    # Ingest lane (streaming/ingest.py): every source offset lands in exactly one of these three.
    TableSpec("bronze.admitted_events", "Valid events, deduplicated on event_id", append_only=True,
              partition_by=("event_date",)),
    TableSpec("bronze.duplicate_events", "Producer-retry duplicates (same event_id, same payload)", append_only=True),
    TableSpec("bronze.quarantine", "Rejected records with raw payload and reason code", append_only=True),
    TableSpec("meta.ingest_receipts", "One receipt per ingest batch: offset ranges and counts", append_only=True),
    TableSpec("meta.stream_apps", "Checkpoint identities of every stream and the Delta txn app ids derived from them",
              append_only=True),
    TableSpec("meta.topic_epochs", "Per topic: the incarnation (cluster id, topic id, partitions) each checkpoint reads",
              append_only=True),
    TableSpec("meta.run_basis", "Per run: cluster id, topic id, partition offsets at run start", append_only=True),
    TableSpec("meta.caught_up", "Per run: proof that committed offsets reached the basis end", append_only=True),
    TableSpec("labels.label_events", "Human-loop label events copied from PostgreSQL by label_event_id", append_only=True),
    # Batch lane (jobs/build.py, checks/): data products (one slice per run), certifications, job receipts.
    TableSpec("silver.transactions_view", "Normalized view of admitted events, one slice per run",
              partition_by=("event_date",)),
    TableSpec("gold.account_features", "Per-account rolling aggregates as of each run's cut-off"),
    TableSpec("gold.merchant_risk", "Per-merchant fraud rates from labels known at each run's cut-off"),
    TableSpec("meta.certifications", "Checker verdicts: (product, Delta version) PASS or FAIL", append_only=True),
    TableSpec("meta.job_receipts", "Per batch job attempt: inputs and outputs with versions, verdict", append_only=True,
              partition_by=("run_id",)),
]

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in _SPECS}


def spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table '{name}'; known tables: {', '.join(sorted(TABLES))}") from None


def location(tables_root: str, name: str) -> str:
    """``<tables_root>/<layer>/<table>`` for a local folder or an s3:// prefix alike."""
    layer, _, table = spec(name).name.partition(".")
    return f"{tables_root.rstrip('/')}/{layer}/{table}"


def catalog(tables_root: str) -> dict[str, str]:
    return {name: location(tables_root, name) for name in sorted(TABLES)}
