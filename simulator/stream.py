"""The traffic plan as a stream, in bounded memory, for any number of events: the same records in the
same order as planning everything in memory would give (same seed, same bytes).

Valid events are numbered in time order, and re-sends and bad records copy events from anywhere in
the plan, so the plan lives on disk, not in memory: the drafts go through SQLite's external sort into
a numbered table, each extra record is stored as its random draws only, and the records then leave one
at a time, valid events and extras merged by position. Memory holds a few records and SQLite's cache.
"""

from __future__ import annotations

import heapq
import math
import random
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from common.events import CHANNELS, CardTransaction
from simulator.defects import DEFECTS
from simulator.traffic import (
    CONFLICT_LAG,
    RETRY_LAG,
    OutgoingRecord,
    bad_record,
    conflicting_record,
    defect_order,
    draw_change,
    record_counts,
    retry_record,
    valid_record,
)
from simulator.world import (
    DEFAULT_FRAUD_RATE,
    TRUTHS,
    Draft,
    SortKey,
    Truth,
    World,
    drafts_in_rng_order,
    event_id_of,
    to_event,
)

VALID, RETRY, CONFLICT, BAD = range(4)   # ties in position keep this order, as the in-memory plan did
SCENARIO_CODES = tuple(TRUTHS)           # None first: not fraud
CHUNK = 10_000
SCHEMA = """
create table drafts (at_us integer, tie integer, account integer, card integer, merchant integer,
                     cents integer, channel integer, scenario integer, device text, ip text);
create table events (n integer primary key, at_us integer, account integer, card integer, merchant integer,
                     cents integer, channel integer, scenario integer, device text, ip text);
create table chosen (j integer primary key, v integer);
create table picks (t integer primary key, i integer);
create table resends (pos real, grp integer, idx integer, event integer, what text, by integer);
create table bad (k integer primary key, event integer, foreign_account integer, defect integer, pos real);
"""
DRAFT_FIELDS = "at_us, account, card, merchant, cents, channel, scenario, device, ip"


class Planned(NamedTuple):
    record: OutgoingRecord
    event: CardTransaction | None   # the valid event, for valid records only
    truth: Truth | None


def stream_traffic(world: World, count: int, *, duplicate_rate: float, conflict_rate: float, bad_rate: float,
                   seed: int, folder: Path, fraud_rate: float = DEFAULT_FRAUD_RATE) -> Iterator[Planned]:
    """All ``count`` valid events once, in time order, plus ``round(rate * count)`` retries, conflicting
    re-sends and bad records at seeded positions. Rates are per valid event; every record is keyed by
    account_id. The plan's scratch file lives in a temporary folder under ``folder`` while it streams.
    """
    retries, conflicts, bad = record_counts(count, duplicate_rate, conflict_rate, bad_rate)
    codec = _Codec.of(world)
    with _plan_file(folder) as db:
        db.execute("begin")   # one transaction for the whole plan: a commit per row would dominate
        _store_events(db, codec, drafts_in_rng_order(world, count, fraud_rate=fraud_rate))
        rng = random.Random(f"ledgerlane-traffic-{seed}")
        _store_picks(db, rng, count, retries + conflicts)
        _store_resends(db, rng, retries, conflicts)
        _store_bad(db, rng, world, count, bad)
        db.execute("commit")
        merged = heapq.merge(_valid(db, codec), _extras(db, codec), key=lambda item: item[0])
        yield from (planned for _, planned in merged)


# ---- the scratch file ------------------------------------------------------------------------------

@contextmanager
def _plan_file(folder: Path) -> Iterator[sqlite3.Connection]:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plan-", dir=folder) as scratch:
        with closing(sqlite3.connect(Path(scratch) / "plan.sqlite", isolation_level=None)) as db:
            # Scratch data: no journal, no fsync; sorts spill to files. A 4 MiB page cache: the plan is
            # read back in order, so a larger one only grows with the plan (at 16 MiB, 1M events peaked about
            # 18 MiB higher than they do now, and ran no faster).
            for pragma in ("journal_mode = off", "synchronous = off", "cache_size = -4096", "temp_store = file"):
                db.execute(f"pragma {pragma}")
            db.executescript(SCHEMA)
            yield db


def _insert(db: sqlite3.Connection, statement: str, rows: Iterable[tuple]) -> None:
    """Insert in chunks: rows are drawn outside ``executemany``, so drawing may read the file too."""
    rows = iter(rows)
    while chunk := list(islice(rows, CHUNK)):
        db.executemany(statement, chunk)


@dataclass(frozen=True)
class _Codec:
    """A draft as a row of small integers (indexes into the world) and back."""

    world: World
    accounts: dict[str, int]
    merchants: dict[str, int]

    @classmethod
    def of(cls, world: World) -> "_Codec":
        return cls(world, {a.account_id: i for i, a in enumerate(world.accounts)},
                   {m.merchant_id: i for i, m in enumerate(world.merchants)})

    def row(self, key: SortKey, d: Draft) -> tuple:
        return (*key, self.accounts[d.account.account_id], d.account.cards.index(d.card_id),
                self.merchants[d.merchant.merchant_id], d.amount_cents, CHANNELS.index(d.channel),
                SCENARIO_CODES.index(d.scenario), d.device_id, d.ip_address)

    def draft(self, row: tuple) -> Draft:
        at_us, account, card, merchant, cents, channel, scenario, device, ip = row
        holder = self.world.accounts[account]
        return Draft(at_us, holder, holder.cards[card], self.world.merchants[merchant], cents, CHANNELS[channel],
                     SCENARIO_CODES[scenario], device, ip)

    def event(self, n: int, row: tuple) -> tuple[CardTransaction, Draft]:
        draft = self.draft(row)
        return to_event(event_id_of(self.world.seed, n), draft), draft


# ---- writing the plan ------------------------------------------------------------------------------

def _store_events(db: sqlite3.Connection, codec: _Codec, drafts: Iterable[tuple[SortKey, Draft]]) -> None:
    """Events numbered in time order: row ``n`` is the ``n``-th valid event (n from 0)."""
    _insert(db, "insert into drafts values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (codec.row(k, d) for k, d in drafts))
    db.execute(f"insert into events (n, {DRAFT_FIELDS}) select row_number() over (order by at_us, tie) - 1, "
               f"{DRAFT_FIELDS} from drafts order by at_us, tie")
    db.execute("drop table drafts")


def _store_picks(db: sqlite3.Connection, rng: random.Random, n: int, k: int) -> None:
    _insert(db, "insert into picks values (?, ?)", enumerate(_sample_range(db, rng, n, k)))


def _sample_range(db: sqlite3.Connection, rng: random.Random, n: int, k: int) -> Iterator[int]:
    """What ``rng.sample(range(n), k)`` returns, with the same draws, its bookkeeping (the values
    chosen, or the shrinking pool) in table ``chosen`` rather than in memory."""
    setsize = 21          # random.sample's own choice between its two methods
    if k > 5:
        setsize += 4 ** math.ceil(math.log(k * 3, 4))
    if n <= setsize:
        yield from _sample_from_pool(db, rng, n, k)
    else:
        yield from _sample_by_rejection(db, rng, n, k)


def _sample_from_pool(db: sqlite3.Connection, rng: random.Random, n: int, k: int) -> Iterator[int]:
    def pool(j: int) -> int:   # slot j holds j until a pick moves the last unpicked value into it
        row = db.execute("select v from chosen where j = ?", (j,)).fetchone()
        return j if row is None else row[0]

    for i in range(k):
        j = rng.randrange(n - i)
        yield pool(j)
        db.execute("insert or replace into chosen values (?, ?)", (j, pool(n - i - 1)))


def _sample_by_rejection(db: sqlite3.Connection, rng: random.Random, n: int, k: int) -> Iterator[int]:
    for _ in range(k):
        j = rng.randrange(n)
        while db.execute("insert or ignore into chosen (j) values (?)", (j,)).rowcount == 0:
            j = rng.randrange(n)
        yield j


def _picks(db: sqlite3.Connection, first: int, end: int) -> Iterator[tuple[int, int]]:
    return iter(db.execute("select t, i from picks where t >= ? and t < ? order by t", (first, end)))


def _store_resends(db: sqlite3.Connection, rng: random.Random, retries: int, conflicts: int) -> None:
    """Each pick's position (and, for a conflict, its change), drawn in pick order: retries first."""
    statement = "insert into resends values (?, ?, ?, ?, ?, ?)"
    _insert(db, statement, ((i + rng.uniform(*RETRY_LAG), RETRY, t, i, None, None)
                            for t, i in _picks(db, 0, retries)))
    _insert(db, statement, ((i + rng.uniform(*CONFLICT_LAG), CONFLICT, t, i, *draw_change(rng))
                            for t, i in _picks(db, retries, retries + conflicts)))


def _store_bad(db: sqlite3.Connection, rng: random.Random, world: World, n: int, count: int) -> None:
    """Each bad record's base event, foreign account and defect; then, in a second round of draws,
    its position."""
    order = defect_order(rng)
    index = {d.name: i for i, d in enumerate(DEFECTS)}
    _insert(db, "insert into bad (k, event, foreign_account, defect) values (?, ?, ?, ?)",
            ((k, rng.randrange(n), rng.randrange(len(world.accounts)), index[order[k % len(order)].name])
             for k in range(count)))
    _insert(db, "update bad set pos = ? where k = ?", ((rng.uniform(0, n), k) for k in range(count)))


# ---- reading it back, in plan order ----------------------------------------------------------------

def _valid(db: sqlite3.Connection, codec: _Codec) -> Iterator[tuple[tuple, Planned]]:
    for n, *row in db.execute(f"select n, {DRAFT_FIELDS} from events order by n"):
        event, draft = codec.event(n, tuple(row))
        yield (float(n), VALID, n), Planned(valid_record(event), event, TRUTHS[draft.scenario])


EXTRAS = f"""
select x.pos, x.grp, x.idx, x.event, x.what, x.by, x.foreign_account, x.defect, {DRAFT_FIELDS}
from (select pos, grp, idx, event, what, by, null as foreign_account, null as defect from resends
      union all
      select pos, {BAD}, k, event, null, null, foreign_account, defect from bad) as x
join events as e on e.n = x.event
order by x.pos, x.grp, x.idx
"""


def _extras(db: sqlite3.Connection, codec: _Codec) -> Iterator[tuple[tuple, Planned]]:
    for pos, grp, idx, n, what, by, foreign, defect, *row in db.execute(EXTRAS):
        event, _ = codec.event(n, tuple(row))
        if grp == RETRY:
            record = retry_record(valid_record(event))
        elif grp == CONFLICT:
            record = conflicting_record(event, (what, by))
        else:
            record = bad_record(codec.world, idx, event, foreign, DEFECTS[defect])
        yield (pos, grp, idx), Planned(record, None, None)
