"""``common.spark.concurrently``: what the decide batch relies on when it writes side by side. Every
action runs to its end before a failure is raised, the failure is the action's own error (its message and
exit code reach the user), and the threads carry the caller's job group (stopping a stream cancels them).
``alongside``, what ingest records its basis with while the query runs: the action never outlives its block."""

from __future__ import annotations

import threading
import time

import pytest

from common.errors import ServiceError
from common.spark import alongside, concurrently


def test_results_come_back_in_the_order_of_the_actions(spark):
    assert concurrently(spark, lambda: "a", lambda: spark.range(3).count(), lambda: None) == ["a", 3, None]


def test_a_failure_is_raised_as_itself_only_after_every_other_action_finished(spark):
    finished = threading.Event()

    def slow_write():
        time.sleep(0.5)
        finished.set()

    def database_down():
        raise ServiceError("PostgreSQL is not reachable")

    with pytest.raises(ServiceError, match="PostgreSQL is not reachable") as raised:
        concurrently(spark, database_down, slow_write)

    assert finished.is_set(), "the other write ran to its end before the error left"
    assert raised.value.exit_code == ServiceError.exit_code


def test_the_threads_carry_the_callers_job_group(spark):
    context = spark.sparkContext
    context.setJobGroup("ledgerlane-test-group", "a stream's batch")
    try:
        seen = concurrently(spark, lambda: context.getLocalProperty("spark.jobGroup.id"),
                            lambda: context.getLocalProperty("spark.jobGroup.id"))
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)
    assert seen == ["ledgerlane-test-group", "ledgerlane-test-group"]


def test_no_actions_is_no_work(spark):
    """A batch with rows for none of its tables writes none of them."""
    assert concurrently(spark) == []


def test_an_action_alongside_a_block_is_waited_for_even_when_the_block_fails(spark):
    finished = threading.Event()

    def slow_write():
        time.sleep(0.5)
        finished.set()

    with pytest.raises(RuntimeError, match="the query failed"):
        with alongside(spark, slow_write):
            raise RuntimeError("the query failed")

    assert finished.is_set(), "the write ran to its end before the block's error left"


def test_the_result_of_an_action_alongside_is_its_value_or_its_own_error(spark):
    with alongside(spark, lambda: spark.range(4).count()) as counted:
        assert counted.result() == 4

    def database_down():
        raise ServiceError("PostgreSQL is not reachable")

    with alongside(spark, database_down) as failed:
        with pytest.raises(ServiceError, match="PostgreSQL is not reachable"):
            failed.result()
