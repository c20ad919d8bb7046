"""The latency baseline's door: a bound named before anything starts, the project's errors without a trace."""

from __future__ import annotations

import pytest

from benchmarks import latency_baseline


def argv(tmp_path, *extra: str) -> list[str]:
    return ["ingest", "--config", str(tmp_path / "missing.toml"), "--home", str(tmp_path), "--out", str(tmp_path / "out"),
            *extra]


@pytest.mark.parametrize("seconds", ["0", "3601", "99999999999999999999"])
def test_a_trigger_outside_its_bound_is_refused_naming_the_bound(tmp_path, capsys, seconds):
    with pytest.raises(SystemExit) as stopped:
        latency_baseline.main(argv(tmp_path, "--trigger-seconds", seconds))
    assert stopped.value.code == 2
    assert "between 1 and 3600" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_configuration_is_the_projects_error_without_a_trace(tmp_path, capsys):
    code = latency_baseline.main(argv(tmp_path, "--trigger-seconds", "2"))
    err = capsys.readouterr().err
    assert code not in (0, 1)
    assert err.startswith("error: ") and "missing.toml" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("stream, third_rows", [("ingest", 2), ("decide", 100)])
def test_the_commit_floor_makes_the_contracts_commits_once_per_batch(spark, tmp_path, stream, third_rows):
    """Every record to the first table, a 2% slice to the second, the third as the stream's contract has
    it, then a receipt; a replayed batch writes nothing again, as the governed loops' txn ids ensure."""
    writer = latency_baseline.CommitFloorWriter(stream, str(tmp_path / "first"), tmp_path)
    batch = spark.range(100).selectExpr("0 as partition", "id as offset")
    for _ in range(2):   # the batch, then its replay
        writer(batch, 0)
    count = lambda path: spark.read.format("delta").load(str(path)).count()  # noqa: E731
    assert count(tmp_path / "first") == 100
    assert count(tmp_path / f"{stream}-second") == 2
    assert count(tmp_path / f"{stream}-third") == third_rows
    receipts = spark.read.format("delta").load(str(tmp_path / f"{stream}-receipts")).collect()
    assert [row.asDict() for row in receipts] == [{"batch_id": 0, "records": 100}], "one receipt, not one per replay"


def test_the_plain_commit_floor_has_no_txn_ids_so_a_replay_writes_again(spark, tmp_path):
    writer = latency_baseline.CommitFloorWriter("ingest", str(tmp_path / "first"), tmp_path, txn=False)
    batch = spark.range(10).selectExpr("0 as partition", "id as offset")
    writer(batch, 0)
    writer(batch, 0)
    assert spark.read.format("delta").load(str(tmp_path / "first")).count() == 20
