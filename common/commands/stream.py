"""``ledgerlane stream …``: the Structured Streaming queries, generated from their declarations."""

from __future__ import annotations

import click

from common.commands.declared import command
from streaming.ingest import JOB as INGEST


@click.group("stream")
def group() -> None:
    """Run the streaming queries (checkpointed, idempotent foreachBatch writes)."""


group.add_command(command(INGEST))
