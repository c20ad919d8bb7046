"""Card controls: where a ``block_card`` action takes effect, once per action id, whatever the replays.

The decide stream applies the effect before it records the action in its ledger (Delta), and both are
idempotent on the action id: a crash between them, or after both, leaves exactly one control per
action once the batch is replayed. The same action id with different content is a conflict, never a
silent no-op.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from common.errors import IdempotencyConflict, IdentityError

TABLE = sql.Identifier("human_loop", "card_controls")
FIELDS = ("action_id", "decision_id", "card_id", "account_id", "control", "reason", "run_id")
CHUNK = 10_000   # rows per statement: bounded memory on both sides whatever the batch size


def block_cards(conn: psycopg.Connection, blocks: list[dict[str, Any]]) -> dict[str, int]:
    """Apply every block (dicts with ``FIELDS`` but ``control``) in the caller's transaction.

    Returns action id -> control id for every block, applied now or by an earlier attempt.
    """
    applied: dict[str, int] = {}
    for start in range(0, len(blocks), CHUNK):
        applied.update(_block_chunk(conn, blocks[start:start + CHUNK]))
    return applied


def _block_chunk(conn: psycopg.Connection, blocks: list[dict[str, Any]]) -> dict[str, int]:
    rows = [{**block, "control": "block"} for block in blocks]
    columns = {name: [row[name] for row in rows] for name in FIELDS}
    insert = sql.SQL(
        "insert into {table} ({cols}) select * from unnest({arrays}) on conflict (action_id) do nothing").format(
        table=TABLE, cols=sql.SQL(", ").join(map(sql.Identifier, FIELDS)),
        arrays=sql.SQL(", ").join(sql.SQL("%({})s::text[]").format(sql.SQL(name)) for name in FIELDS))
    try:
        conn.execute(insert, columns)
    except (psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation) as exc:
        raise IdentityError(f"card block refused by the database: {exc.diag.message_primary}") from None
    stored = {row["action_id"]: row for row in controls_for(conn, columns["action_id"])}
    differing = [row["action_id"] for row in rows if any(stored[row["action_id"]][f] != row[f] for f in FIELDS)]
    if differing:
        raise IdempotencyConflict(f"card block action ids reused with different content: {', '.join(differing[:5])}")
    return {action_id: row["control_id"] for action_id, row in stored.items()}


def controls_for(conn: psycopg.Connection, action_ids: list[str]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql.SQL("select * from {} where action_id = any(%s) order by control_id").format(TABLE),
                           (action_ids,)).fetchall()
