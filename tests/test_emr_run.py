"""``ledgerlane emr run``: a run's steps in order, stopped at the first failure, resumed without a second
job run per step, and ``--rerun`` submitting only what the run lacks, read from Delta tables that Spark
wrote and that ``deltalake`` reads from S3 (a moto server on 127.0.0.1) without a JVM."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from checks import certifications
from common import basis, catalog, delta
from emr import plan
from emr.package import LocalPackage
from emr.state import RunState
from emr.submitter import JobRun
from helpers import EMR_REGION, cli, emr_config, moto_lists_no_runs_as_empty, set_job_run_state, strict_session
from jobs import receipts
from products import product

BUCKET, RUN = "ll-lake", "r-emr-run-1"
ALL_STEPS = ["db-migrate", "stream-ingest", "job-export-labels",
             "job-build.transactions_view", "job-certify.transactions_view",
             "job-build.account_features", "job-certify.account_features",
             "job-build.merchant_risk", "job-certify.merchant_risk",
             "stream-decide", "stream-cases", "close"]


# ---- the planner, pure ---------------------------------------------------------------------------------

def state(products: dict[str, str], *, caught_up: bool = True, complete: bool = False) -> RunState:
    return RunState(RUN, caught_up, products, complete)


def succeeded(*steps: str) -> dict[str, list[JobRun]]:
    return {step: [JobRun(f"id-{i}", RUN, step, 1, "SUCCESS")] for i, step in enumerate(steps)}


ALL_PASS = {"transactions_view": "PASS", "account_features": "PASS", "merchant_risk": "PASS"}


def keys(steps) -> list[str]:
    return [step.key for step in steps]


def test_a_run_has_the_local_runs_steps_in_its_order():
    from jobs.run import STEPS

    names = [key.split(".")[0].removeprefix("db-").removeprefix("stream-").removeprefix("job-") for key in ALL_STEPS]
    assert keys(plan.run_steps(RUN)) == ALL_STEPS
    assert [name for name in dict.fromkeys(names) if name not in ("build", "certify")] == \
        [step for step in STEPS if step != "products"]


def test_rerun_after_a_failed_certification_submits_that_product_and_what_comes_after():
    chosen = plan.rerun_steps(plan.run_steps(RUN), state({**ALL_PASS, "merchant_risk": "FAIL"}),
                              succeeded("db-migrate", "job-export-labels"))

    assert keys(chosen) == ["job-build.merchant_risk", "job-certify.merchant_risk", "stream-decide", "stream-cases",
                            "close"]


def test_rerun_of_a_built_but_uncertified_product_only_certifies_it():
    chosen = plan.rerun_steps(plan.run_steps(RUN), state({**ALL_PASS, "account_features": "UNCERTIFIED"}),
                              succeeded("db-migrate", "job-export-labels"))

    assert keys(chosen)[:2] == ["job-certify.account_features", "stream-decide"]


def test_rerun_of_an_upstream_product_rebuilds_its_dependents_too():
    chosen = plan.rerun_steps(plan.run_steps(RUN), state({**ALL_PASS, "transactions_view": "ERROR"}),
                              succeeded("db-migrate", "job-export-labels"))

    assert keys(chosen)[:6] == ALL_STEPS[3:9]


def test_rerun_after_a_failed_stream_submits_it_and_the_later_steps_only():
    chosen = plan.rerun_steps(plan.run_steps(RUN), state(ALL_PASS), succeeded("db-migrate", "job-export-labels"))

    assert keys(chosen) == ["stream-decide", "stream-cases", "close"]


def test_a_closed_run_needs_nothing_and_a_fresh_run_needs_everything():
    assert plan.rerun_steps(plan.run_steps(RUN), state(ALL_PASS, complete=True), {}) == []
    missing = dict.fromkeys(ALL_PASS, "MISSING")
    assert keys(plan.rerun_steps(plan.run_steps(RUN), state(missing, caught_up=False), {})) == ALL_STEPS


def test_attempts_continue_after_a_failure_only_when_rerunning():
    step = plan.run_steps(RUN)[0]
    failed = {step.key: [JobRun("a", RUN, step.key, 1, "SUCCESS"), JobRun("b", RUN, step.key, 2, "FAILED")]}

    assert plan.attempt_for(step, {}, rerun=True) == 1
    assert plan.attempt_for(step, failed, rerun=False) == 2       # the latest, to report it again
    assert plan.attempt_for(step, failed, rerun=True) == 3


# ---- against S3 and EMR Serverless (a moto server) -----------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """A moto server on loopback that both boto3 and deltalake reach; strict clients record requests."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    urlopen(Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")).read()   # backends outlive servers
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": EMR_REGION, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
        monkeypatch.setenv(name, value)
    calls: list = []
    session = strict_session(calls=calls)
    monkeypatch.setattr("emr.aws.new_session", lambda region: session)
    local = LocalPackage(*(write(tmp_path / name) for name in ("env.tar.gz", "ledgerlane-code-x.tar.gz", "submit.py")),
                         jars=(), machine="x86_64", env_name="emr")
    monkeypatch.setattr("emr.package.build", lambda settings, **_: local)
    try:
        session.client("s3").create_bucket(Bucket=BUCKET)
        app = session.client("emr-serverless").create_application(name="ledgerlane", releaseLabel="emr-7.12.0",
                                                                  type="SPARK")["applicationId"]
        moto_lists_no_runs_as_empty(app)
        yield {"session": session, "calls": calls, "app": app,
               "config": emr_config(tmp_path / "emr.toml", bucket=BUCKET, app_id=app)}
    finally:
        server.stop()


def write(path: Path) -> Path:
    path.write_bytes(path.name.encode())
    return path


def started(aws) -> list[str]:
    return [params["name"].split("/")[2] + "@" + params["name"].split("/")[3] for op, params in aws["calls"]
            if op == "StartJobRun"]


def fail_step(aws, step: str) -> None:
    """EMR's part: job runs of ``step`` end FAILED while ``aws["failing"]`` names it."""
    aws["failing"], names = step, {}

    def remember(params, **_):
        names["next"] = params.get("name", "")

    def after_start(parsed, **_):
        if aws["failing"] and f"/{aws['failing']}/" in names.pop("next", ""):
            set_job_run_state(aws["app"], parsed["jobRunId"], "FAILED", "exit code 7")

    aws["session"].events.register("before-parameter-build.emr-serverless.StartJobRun", remember)
    aws["session"].events.register("after-call.emr-serverless.StartJobRun", after_start)


def emr(aws, *args):
    return cli("--config", str(aws["config"]), "emr", *args)


def test_a_whole_run_is_submitted_in_order_once_and_resumed_without_new_job_runs(aws):
    first = emr(aws, "run", "--run-id", RUN, "--json")
    again = emr(aws, "run", "--run-id", RUN, "--json")

    assert first[0] == 0, first[2]
    assert started(aws) == [f"{step}@attempt-1" for step in ALL_STEPS]
    assert again[0] == 0, again[2]
    assert [s["action"] for s in json.loads(again[1])["steps"]] == ["reused"] * len(ALL_STEPS)


def test_a_run_stops_at_the_first_failure_and_rerun_submits_only_what_it_lacks(aws, spark, tmp_path):
    fail_step(aws, "job-certify.merchant_risk")
    failed = emr(aws, "run", "--run-id", RUN)
    aws["failing"] = None
    write_run_tables(spark, tmp_path / "tables", aws)
    aws["calls"].clear()

    dry = emr(aws, "run", "--run-id", RUN, "--rerun", "--dry-run", "--json")
    rerun = emr(aws, "run", "--run-id", RUN, "--rerun", "--json")

    assert failed[0] == 12 and "job-certify.merchant_risk attempt 1" in failed[2]
    assert dry[0] == 0, dry[2]
    assert [s["step"] for s in json.loads(dry[1])["steps"]] == ALL_STEPS[7:]
    assert json.loads(dry[1])["state"]["products"] == {"transactions_view": "PASS", "account_features": "PASS",
                                                       "merchant_risk": "FAIL"}
    assert rerun[0] == 0, rerun[2]
    assert started(aws) == ["job-build.merchant_risk@attempt-2", "job-certify.merchant_risk@attempt-2",
                            "stream-decide@attempt-1", "stream-cases@attempt-1", "close@attempt-1"]


def test_a_hand_made_pass_without_its_result_file_does_not_count(aws, spark, tmp_path):
    write_run_tables(spark, tmp_path / "tables", aws, confirm=("transactions_view",))

    dry = emr(aws, "run", "--run-id", RUN, "--rerun", "--dry-run", "--json")

    assert dry[0] == 0, dry[2]
    products = json.loads(dry[1])["state"]["products"]
    assert products["account_features"] == "UNCERTIFIED" and products["transactions_view"] == "PASS"
    assert json.loads(dry[1])["plan"][0] == "db-migrate"        # no EMR history: nothing before is proven


# ---- the run's records, written by Spark as the jobs write them, uploaded to S3 -----------------------

def write_run_tables(spark, folder: Path, aws, *, confirm=("transactions_view", "account_features")) -> None:
    """Caught-up proof, build and certify receipts and certifications (merchant_risk FAIL) for RUN, then upload."""
    s3_root = f"s3://{BUCKET}/tables"
    now = datetime.now(timezone.utc)
    proof = {"run_id": RUN, "app_id": "app", "topic": "t", "proved_at": now, "caught_up": True,
             "committed_batch": 3, "partitions": []}
    delta.append(spark.createDataFrame([proof], basis.CAUGHT_UP_SCHEMA),
                 catalog.location(str(folder), "meta.caught_up"), "meta.caught_up", RUN)
    verdicts = {"transactions_view": "PASS", "account_features": "PASS", "merchant_risk": "FAIL"}
    for name, verdict in verdicts.items():
        location = catalog.location(s3_root, product(name).table.name)
        receipts.record(spark, str(folder), build_receipt(name, location, now))
        receipts.record(spark, str(folder), {**build_receipt(name, location, now), "step": receipts.CERTIFY,
                                             "status": verdict})
        evidence = f"s3://{BUCKET}/evidence/{RUN}/certifications/{name}-v0.json"
        certifications.record(spark, str(folder), certification(name, location, verdict, evidence, now))
        if verdict == "FAIL" or name in confirm:
            aws["session"].client("s3").put_object(Bucket=BUCKET, Key=evidence.removeprefix(f"s3://{BUCKET}/"),
                                                   Body=json.dumps({"status": verdict, "version": 0,
                                                                    "location": location}).encode())
    upload_folder(aws["session"].client("s3"), folder, "tables")


def build_receipt(name: str, location: str, now: datetime) -> dict:
    return {"run_id": RUN, "product": name, "step": "build", "attempt": 1, "status": "BUILT", "cutoff": now,
            "inputs": [], "outputs": [{"name": name, "location": location, "version": 0, "rows": 10, "files": 1}],
            "checker": None, "checker_result": None, "reasons": [], "code_version": "test", "config_digest": "x",
            "started_at": now, "finished_at": now}


def certification(name: str, location: str, verdict: str, evidence: str, now: datetime) -> dict:
    return {"product": name, "table_name": product(name).table.name, "location": location, "version": 0,
            "run_id": RUN, "status": verdict, "engine": "native", "expectations": [], "failures": [],
            "inputs": [], "evidence_path": evidence, "certified_at": now}


def upload_folder(s3, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")
