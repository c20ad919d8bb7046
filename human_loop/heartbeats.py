"""Worker heartbeats: each real worker upserts its row on every run; readiness judges freshness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.identity import assert_identity
from common.run import assert_run_id


def heartbeat(conn: psycopg.Connection, worker: str, run_id: str) -> datetime:
    """Record that ``worker`` is alive in ``run_id``; the database stamps the time. Returns it."""
    row = conn.execute(
        "insert into human_loop.worker_heartbeats (worker, run_id) values (%s, %s) "
        "on conflict (worker) do update set run_id = excluded.run_id, beats = human_loop.worker_heartbeats.beats + 1 "
        "returning beat_at",
        (assert_identity("worker", worker), assert_run_id(run_id)),
    ).fetchone()
    return row[0]


def heartbeats(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every worker's last beat and its age in seconds by the database's clock."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select worker, run_id, beat_at, beats, extract(epoch from clock_timestamp() - beat_at)::float8 as age_s "
            "from human_loop.worker_heartbeats order by worker"
        ).fetchall()
