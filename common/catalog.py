"""The table catalog: every Delta table ledgerlane writes, its location and its table properties.

All code resolves table locations here; nothing builds a table path by hand. A new table is one
``TableSpec`` line in ``_SPECS``, or, for a data product, the ``TableSpec`` in its declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import ConfigError


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    append_only: bool = False
    partition_by: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    # The columns Delta keeps min/max statistics on for data skipping; empty: Delta's default (the first
    # 32 columns). Computing statistics on every column of a wide table is a large share of its write.
    stats_on: tuple[str, ...] = ()

    @property
    def table_properties(self) -> dict[str, str]:
        props = dict(self.properties)
        if self.append_only:
            props["delta.appendOnly"] = "true"
        if self.stats_on:
            props["delta.dataSkippingStatsColumns"] = ",".join(self.stats_on)
        return props


# What readers of the streams' tables filter on: a run's rows, an app's batch. Ids are random hashes
# (no min/max can skip on them) and the rest is read whole, so statistics on them would cost a write
# and buy no read.
LINEAGE_STATS = ("run_id", "app_id", "batch_id")


_SPECS = [
    TableSpec("meta.smoke", "Smoke pipeline: proves Delta writes, time travel, Kafka and PostgreSQL work"),
    # Ingest lane (streaming/ingest.py): every source offset lands in exactly one of these three.
    TableSpec("bronze.admitted_events", "Valid events, deduplicated on event_id", append_only=True,
              partition_by=("event_date",), stats_on=LINEAGE_STATS),
    TableSpec("bronze.duplicate_events", "Producer-retry duplicates (same event_id, same payload)", append_only=True,
              stats_on=LINEAGE_STATS),
    TableSpec("bronze.quarantine", "Rejected records with raw payload and reason code", append_only=True,
              stats_on=LINEAGE_STATS),
    TableSpec("meta.ingest_receipts", "One receipt per ingest batch: offset ranges and counts", append_only=True),
    TableSpec("meta.stream_apps", "Checkpoint identities of every stream and the Delta txn app ids derived from them",
              append_only=True),
    TableSpec("meta.topic_epochs", "Per topic: the incarnation (cluster id, topic id, partitions) each checkpoint reads",
              append_only=True),
    TableSpec("meta.run_basis", "Per run: cluster id, topic id, partition offsets at run start", append_only=True),
    TableSpec("meta.caught_up", "Per run: proof that committed offsets reached the basis end", append_only=True),
    TableSpec("labels.label_events", "Human-loop label events copied from PostgreSQL by label_event_id", append_only=True),
    # Batch lane (jobs/build.py, checks/): certifications and job receipts. The data products' own tables
    # are declared with each product (products/) and registered here by ``register``.
    # Decision lane (streaming/decide.py, streaming/cases.py): facts, never rewritten.
    TableSpec("decision.decisions", "Exactly one decision per admitted event: outcome, score, reason codes, policy",
              append_only=True, stats_on=LINEAGE_STATS),
    TableSpec("decision.actions", "What each REVIEW (open_case) or DECLINE (block_card) calls for", append_only=True,
              stats_on=LINEAGE_STATS),
    TableSpec("decision.audit", "One record per decision and per action: run, batch, source range, feature versions",
              append_only=True, stats_on=LINEAGE_STATS),
    TableSpec("decision.action_ledger", "Every external effect of an action, by action id, once it took effect",
              append_only=True, stats_on=LINEAGE_STATS),
    TableSpec("meta.decide_receipts", "One receipt per decide batch: events, outcomes, actions, card blocks",
              append_only=True),
    TableSpec("meta.case_receipts", "One receipt per case-worker batch: actions seen, cases opened", append_only=True),
    TableSpec("meta.history_verified", "Per append-only table, the version through which a PASS closure read its log "
              "and found no rewrite", append_only=True),
    TableSpec("meta.certifications", "Checker verdicts: (product, Delta version) PASS or FAIL", append_only=True),
    TableSpec("meta.job_receipts", "Per batch job attempt: inputs and outputs with versions, verdict", append_only=True,
              partition_by=("run_id",)),
]

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in _SPECS}


def register(table: TableSpec) -> TableSpec:
    """Add a table declared elsewhere (a data product declares its own); the same name twice must agree."""
    known = TABLES.setdefault(table.name, table)
    if known != table:
        raise ConfigError(f"table '{table.name}' is declared twice with different specs")
    return table


def spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise ConfigError(f"unknown table '{name}'; known tables: {', '.join(sorted(TABLES))}") from None


def location(tables_root: str, name: str) -> str:
    """``<tables_root>/<layer>/<table>`` for a local folder or an s3:// prefix alike."""
    layer, _, table = spec(name).name.partition(".")
    return f"{tables_root.rstrip('/')}/{layer}/{table}"


def catalog(tables_root: str) -> dict[str, str]:
    return {name: location(tables_root, name) for name in sorted(TABLES)}
