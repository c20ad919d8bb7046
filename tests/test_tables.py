"""``common.tables.exists`` answers as of now, even for a table another process committed meanwhile."""

from __future__ import annotations

import shutil

from common import tables


def test_a_table_committed_after_its_empty_log_was_seen_is_found(spark, tmp_path):
    # another process's writer creates _delta_log before its first commit; this session looks in between
    spark.range(3).write.format("delta").save(str(tmp_path / "written"))
    target = tmp_path / "target"
    (target / "_delta_log").mkdir(parents=True)
    assert not tables.exists(spark, str(target))
    for item in (tmp_path / "written").iterdir():   # the other process commits
        if item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)
        else:
            shutil.copy(item, target / item.name)
    assert tables.exists(spark, str(target))
    assert tables.read_or_empty(spark, str(target), "id long").count() == 3


def test_no_path_and_a_folder_without_a_log_are_not_tables(spark, tmp_path):
    assert not tables.exists(spark, str(tmp_path / "missing"))
    (tmp_path / "plain").mkdir()
    assert not tables.exists(spark, str(tmp_path / "plain"))
