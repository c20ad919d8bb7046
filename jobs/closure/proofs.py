"""The closure's proofs: one small pure function per check, over the facts ``facts.py`` gathered.

Each returns a ``Check`` that says, in plain words, what holds or what was found instead. The run is
PASS only when every check holds (invariant 7: fail-closed closure). A check registers itself with
``@proof``; the order of registration is the order of the report.
"""

from __future__ import annotations

from collections.abc import Callable

from common.evidence import Check
from jobs.closure.facts import Facts, StreamFacts
from jobs import status

PROOFS: list[tuple[str, Callable[[Facts], list[Check]]]] = []


def proof(name: str):
    def register(function: Callable[[Facts], list[Check] | Check]):
        def run(facts: Facts) -> list[Check]:
            found = function(facts)
            return found if isinstance(found, list) else [found]
        PROOFS.append((name, run))
        return function
    return register


def ok(name: str, detail: str) -> Check:
    return Check(name=name, ok=True, detail=detail)


def fail(name: str, detail: str) -> Check:
    return Check(name=name, ok=False, detail=detail)


def run_all(facts: Facts) -> list[Check]:
    return [check for _, run in PROOFS for check in run(facts)]


# ---- the bus -------------------------------------------------------------------------------------------

@proof("basis")
def basis_recorded(facts: Facts) -> Check:
    if facts.basis is None:
        return fail("basis", f"run {facts.run_id} has no basis: ingest never started for it")
    total = sum(p["end_offset"] - p["start_offset"] for p in facts.basis["partitions"])
    return ok("basis", f"topic {facts.basis['topic']}: {total} records on {len(facts.basis['partitions'])} "
                       f"partitions at {facts.basis['captured_at']:%Y-%m-%d %H:%M:%S} UTC")


@proof("bus_epoch")
def bus_epoch(facts: Facts) -> Check:
    if facts.basis is None:
        return fail("bus_epoch", "no basis to compare the bus with")
    if facts.bus_now is None:
        return fail("bus_epoch", f"the bus could not be reached to prove it is the one of the basis: {facts.bus_error}")
    basis, now = facts.basis, facts.bus_now
    if now["cluster_id"] != basis["cluster_id"]:
        return fail("bus_epoch", f"another Kafka cluster answers for the topic now (cluster id {basis['cluster_id']} "
                                 f"at the basis, {now['cluster_id']} now)")
    if now["topic_id"] != basis["topic_id"]:
        return fail("bus_epoch", f"topic {basis['topic']} was deleted and recreated after the run's basis (topic id "
                                 f"{basis['topic_id']} then, {now['topic_id']} now)")
    return ok("bus_epoch", f"cluster {now['cluster_id']}, topic id {now['topic_id']}: as at the basis")


@proof("retention")
def retention(facts: Facts) -> list[Check]:
    if facts.basis is None or facts.bus_now is None:
        return [fail("retention", "the offsets the run read cannot be compared with what the topic still holds")]
    earliest = {p["partition"]: p["start_offset"] for p in facts.bus_now["partitions"]}
    first = first_offsets(facts)
    lost = [f"partition {p}: offsets {start}..{earliest[p] - 1}" for p, start in sorted(first.items())
            if p in earliest and earliest[p] > start]
    if lost:
        return [fail("retention", "offsets the run read were deleted by retention before closure could prove them ("
                                  + "; ".join(lost) + ")")]
    return [ok("retention", "every offset the run read is still retained by the topic")]


def first_offsets(facts: Facts) -> dict[int, int]:
    first: dict[int, int] = {}
    for receipt in facts.ingest_receipts:
        for part in receipt["partitions"] or []:
            first[part["partition"]] = min(first.get(part["partition"], part["start_offset"]), part["start_offset"])
    return first


@proof("caught_up")
def caught_up(facts: Facts) -> Check:
    if facts.basis is None:
        return fail("caught_up", "no basis to catch up with")
    lagging = [f"partition {p['partition']} lags by {p['end_offset'] - facts.committed.get(p['partition'], p['start_offset'])}"
               for p in facts.basis["partitions"]
               if facts.committed.get(p["partition"], p["start_offset"]) < p["end_offset"]]
    if lagging:
        return fail("caught_up", "ingest did not reach the basis end offsets: " + "; ".join(lagging))
    if facts.proof is None or not facts.proof["caught_up"]:
        return fail("caught_up", "no caught-up proof was recorded for the run")
    return ok("caught_up", "lag 0 on every partition at the basis end offsets")


# ---- ingest ----------------------------------------------------------------------------------------------

@proof("ingest_funnel")
def ingest_funnel(facts: Facts) -> list[Check]:
    found = []
    received = sum(r["received"] for r in facts.ingest_receipts)
    split = sum(r["admitted"] + r["duplicates"] + r["quarantined"] for r in facts.ingest_receipts)
    if received != split:
        found.append(fail("ingest_funnel", f"received {received} but admitted + duplicates + quarantined is {split}"))
    basis_records = sum(p["end_offset"] - p["start_offset"] for p in (facts.basis or {}).get("partitions", []))
    if basis_records and not received:
        found.append(fail("ingest_funnel", f"the basis held {basis_records} records but the run received none"))
    admitted = sum(r["admitted"] for r in facts.ingest_receipts)
    if admitted != facts.admitted["rows"]:
        found.append(fail("ingest_funnel", f"receipts say {admitted} admitted; bronze.admitted_events holds "
                                           f"{facts.admitted['rows']} rows of the run"))
    written = sum(c.rows for c in facts.commits if c.table == "bronze.admitted_events")
    if written != facts.admitted["rows"]:
        found.append(fail("ingest_funnel", f"the Delta log of bronze.admitted_events records {written} rows written "
                                           f"by the run; the table holds {facts.admitted['rows']}"))
    return found or [ok("ingest_funnel", f"received {received} = admitted {admitted} + duplicates "
                                         f"{sum(r['duplicates'] for r in facts.ingest_receipts)} + quarantined "
                                         f"{sum(r['quarantined'] for r in facts.ingest_receipts)}")]


@proof("ingest_ranges")
def ingest_ranges(facts: Facts) -> list[Check]:
    """Per partition, the run's receipts cover one gap-free, overlap-free range of offsets."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for receipt in facts.ingest_receipts:
        for part in receipt["partitions"] or []:
            if part["received"] != part["admitted"] + part["duplicates"] + part["quarantined"]:
                return [fail("ingest_ranges", f"batch {receipt['batch_id']} partition {part['partition']} does not "
                                              "reconcile: received != admitted + duplicates + quarantined")]
            ranges.setdefault(part["partition"], []).append((part["start_offset"], part["end_offset"]))
    broken = [f"partition {p}: {a[1]} then {b[0]}" for p, spans in sorted(ranges.items())
              for a, b in zip(sorted(spans), sorted(spans)[1:]) if a[1] != b[0]]
    if broken:
        return [fail("ingest_ranges", "the run's receipts leave gaps or overlaps in the offsets: " + "; ".join(broken))]
    return [ok("ingest_ranges", f"{len(facts.ingest_receipts)} receipts, contiguous offsets on {len(ranges)} partitions")]


@proof("event_ids_unique")
def event_ids_unique(facts: Facts) -> Check:
    admitted = facts.admitted
    if admitted["rows"] != admitted["distinct"]:
        return fail("event_ids_unique", f"the run admitted {admitted['rows']} rows for {admitted['distinct']} event ids")
    if admitted["also_admitted_by_other_runs"]:
        return fail("event_ids_unique", f"{admitted['also_admitted_by_other_runs']} event ids of the run were already "
                                        "admitted by another run (a conflicting duplicate outside dedup's horizon)")
    return ok("event_ids_unique", f"{admitted['distinct']} event ids, none admitted by any other run")


# ---- checkpoints ------------------------------------------------------------------------------------------

@proof("checkpoints")
def checkpoints(facts: Facts) -> list[Check]:
    return [check for stream in facts.streams.values() if stream.run_batches for check in stream_checks(stream)]


def gaps(ids: list[int]) -> list[int]:
    return sorted(set(range(ids[0], ids[-1] + 1)) - set(ids)) if ids else []


def stream_checks(stream: StreamFacts) -> list[Check]:
    name = f"checkpoint_{stream.name}"
    problems = []
    if gaps(stream.offsets):
        problems.append(f"offsets/ is missing batches {gaps(stream.offsets)}")
    if gaps(stream.commits):
        problems.append(f"commits/ is missing batches {gaps(stream.commits)}")
    if stream.offsets and (not stream.commits or stream.commits[-1] != stream.offsets[-1]):
        problems.append(f"batch {stream.offsets[-1]} is planned in offsets/ but not committed")
    retained = set(stream.commits)
    lost = [b for b in stream.run_batches if stream.commits and b >= stream.commits[0] and b not in retained]
    if lost:
        problems.append(f"batches {lost} of the run have receipts but no commits/ entry")
    if len(stream.registered) != 1 or stream.app_id not in stream.registered:
        problems.append(f"the checkpoint's app id {stream.app_id} is not the one app id registered for it "
                        f"({stream.registered or 'none'})")
    if stream.receipt_batches and (not stream.offsets or stream.receipt_batches[-1] > stream.offsets[-1]):
        problems.append(f"receipts of app id {stream.app_id} reach batch {stream.receipt_batches[-1]} but the "
                        f"checkpoint plans only up to {stream.offsets[-1] if stream.offsets else 'none'}: it was replaced "
                        "while its app id was reused")
    if problems:
        return [fail(name, f"{stream.checkpoint}: " + "; ".join(problems))]
    return [ok(name, f"{stream.checkpoint}: offsets and commits contiguous up to batch {stream.commits[-1]}, "
                     f"app id {stream.app_id}")]


# ---- decisions, actions, effects -----------------------------------------------------------------------

@proof("decisions")
def decisions(facts: Facts) -> Check:
    admitted, decided = facts.admitted["rows"], facts.decisions
    if admitted and not decided["rows"]:
        return fail("decisions", f"the run admitted {admitted} events but no decision was made")
    if decided["missing"]:
        return fail("decisions", f"{decided['missing']} admitted events have no decision (e.g. "
                                 f"{', '.join(decided['missing_sample'])})")
    if decided["decided_twice"]:
        return fail("decisions", f"{decided['decided_twice']} events were decided more than once")
    return ok("decisions", f"exactly one decision for each of {admitted} admitted events")


@proof("audit")
def audit(facts: Facts) -> Check:
    found = facts.audit
    if found["decisions_missing"] or found["actions_missing"]:
        return fail("audit", f"{found['decisions_missing']} decisions and {found['actions_missing']} actions have no "
                             f"audit record (e.g. {', '.join(found['decisions_without_audit'] + found['actions_without_audit'])})")
    return ok("audit", "every decision and every action has its audit record")


@proof("effects")
def effects(facts: Facts) -> list[Check]:
    ids, found = facts.actions["ids"], facts.effects
    if found["error"]:
        return [fail("effects", f"the database could not be asked for cases and card controls: {found['error']}")]
    reviews = facts.decisions["by_outcome"].get("REVIEW", 0)
    problems = []
    if reviews != len(ids["open_case"]):
        problems.append(f"{reviews} REVIEW decisions but {len(ids['open_case'])} open_case actions")
    no_case = [a for a in ids["open_case"] if found["cases"].get(a) != 1]
    if no_case:
        problems.append(f"{len(no_case)} open_case actions have no case (e.g. {', '.join(no_case[:3])})")
    no_block = [a for a in ids["block_card"] if found["controls"].get(a) != 1]
    if no_block:
        problems.append(f"{len(no_block)} block_card actions took no effect (e.g. {', '.join(no_block[:3])})")
    unledgered = [a for a in ids["open_case"] + ids["block_card"] if found["ledger"].get(a) != 1]
    if unledgered:
        problems.append(f"{len(unledgered)} actions are not exactly once in the action ledger")
    if problems:
        return [fail("effects", "; ".join(problems))]
    return [ok("effects", f"{len(ids['open_case'])} cases and {len(ids['block_card'])} card blocks, each exactly once "
                          "and in the action ledger")]


# ---- products, certifications, database, history -----------------------------------------------------

@proof("products")
def products(facts: Facts) -> Check:
    if not facts.admitted["rows"] and all(s.state == status.MISSING for s in facts.products.values()):
        return ok("products", "the run admitted no event, so it has no product slice to certify")
    lacking = [f"{name} {s.state} ({s.detail})" for name, s in facts.products.items() if s.state != status.PASS]
    if lacking:
        return fail("products", "data products not certified PASS: " + "; ".join(lacking))
    return ok("products", ", ".join(f"{name} v{s.version} PASS" for name, s in facts.products.items()))


@proof("certifications")
def certifications_backed(facts: Facts) -> Check:
    """A PASS certification counts only with its certify receipt and its result file (not a hand-made row)."""
    unbacked = []
    for row in facts.certifications:
        if row["status"] != "PASS":
            continue
        receipt = [r for r in facts.certify_receipts if r["product"] == row["product"]
                   and r["status"] == "PASS" and (r["outputs"] or [{}])[0].get("version") == row["version"]]
        result = facts.certification_files.get(row["evidence_path"] or "")
        if not receipt or not result or result.get("status") != "PASS" or result.get("version") != row["version"]:
            unbacked.append(f"{row['product']} version {row['version']}")
    if unbacked:
        return fail("certifications", "PASS certifications without a matching certify receipt and result file "
                                      f"(written by hand?): {', '.join(unbacked)}")
    return ok("certifications", f"{sum(r['status'] == 'PASS' for r in facts.certifications)} PASS certifications, each "
                                "with its certify receipt and result file")


@proof("migrations")
def migrations(facts: Facts) -> Check:
    if facts.migrations is None:
        return fail("migrations", f"the human-loop database could not be asked: {facts.migrations_error}")
    if not facts.migrations["at_head"]:
        return fail("migrations", "the human-loop database is not at the migrations' head: "
                                  + "; ".join(facts.migrations["problems"] or ["pending versions"]))
    return ok("migrations", f"at head {facts.migrations['head']}, checksums match")


@proof("append_only_history")
def append_only_history(facts: Facts) -> Check:
    if facts.rewrites:
        return fail("append_only_history", "append-only history was rewritten: " + "; ".join(facts.rewrites[:5]))
    return ok("append_only_history", "no append-only table was restored, updated or had rows deleted")
