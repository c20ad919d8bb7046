"""``ledgerlane emr`` against moto (S3, EMR Serverless, Secrets Manager), every request checked by botocore
and against the whole service model: one job run per (run, job, attempt), failures with the driver's
output and exit 12, packages uploaded once, secrets read by ARN and never printed."""

from __future__ import annotations

import json
import os

import pytest
from moto import mock_aws

from common.config import load_settings
from common.errors import ConfigError
from emr.package import LocalPackage
from helpers import (EMR_REGION, assert_refused, cli, emr_config, moto_lists_no_runs_as_empty, put_driver_log,
                     set_job_run_state, strict_session)

BUCKET = "ll-lake"
RUN = "r-emr-submit-1"


@pytest.fixture
def aws(monkeypatch):
    """moto for every AWS call; each client the code makes is a strict one; ``calls`` records requests."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": EMR_REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        calls: list = []
        session = strict_session(calls=calls)
        monkeypatch.setattr("emr.aws.new_session", lambda region: session)
        session.client("s3").create_bucket(Bucket=BUCKET)
        # moto knows release labels up to emr-7.x; StartJobRun never names one (the application does).
        app = session.client("emr-serverless").create_application(name="ledgerlane", releaseLabel="emr-7.12.0",
                                                                  type="SPARK")["applicationId"]
        moto_lists_no_runs_as_empty(app)
        yield {"session": session, "calls": calls, "app": app}


@pytest.fixture
def small_package(tmp_path, monkeypatch):
    """A real LocalPackage of small files, so the tests upload to moto without a 150 MB environment."""
    files = {}
    for name, body in {"environment.tar.gz": b"env", "code.tar.gz": b"code", "submit.py": b"print()",
                       "kafka.jar": b"jar"}.items():
        files[name] = tmp_path / "pkg" / name
        files[name].parent.mkdir(exist_ok=True)
        files[name].write_bytes(body)
    local = LocalPackage(environment=files["environment.tar.gz"], code=tmp_path / "pkg" / "ledgerlane-code-abc.tar.gz",
                         entry_point=files["submit.py"], jars=(files["kafka.jar"],), machine="x86_64", env_name="emr")
    local.code.write_bytes(b"code")
    monkeypatch.setattr("emr.package.build", lambda settings, **_: local)
    return local


@pytest.fixture
def config(tmp_path, aws):
    return emr_config(tmp_path / "emr.toml", bucket=BUCKET, app_id=aws["app"])


def emr(config, *args):
    return cli("--config", str(config), "emr", *args)


def job_runs(aws) -> list[dict]:
    return aws["session"].client("emr-serverless").list_job_runs(applicationId=aws["app"])["jobRuns"]


def fail_every_start(aws, stdout: str, stderr: str) -> None:
    """EMR's part: each started run ends FAILED and leaves its driver's logs under the logUri."""
    s3 = aws["session"].client("s3")

    def after_start(parsed, **_):
        set_job_run_state(aws["app"], parsed["jobRunId"], "FAILED", "Job failed, please check complete logs")
        put_driver_log(s3, BUCKET, aws["app"], parsed["jobRunId"], "stdout", stdout)
        put_driver_log(s3, BUCKET, aws["app"], parsed["jobRunId"], "stderr", stderr)

    aws["session"].events.register("after-call.emr-serverless.StartJobRun", after_start)


def test_resubmitting_the_same_run_job_and_attempt_starts_nothing_new(config, aws, small_package):
    first = emr(config, "submit", "--json", "job-build", "account_features", "--run-id", RUN)
    again = emr(config, "submit", "--json", "job-build", "account_features", "--run-id", RUN)

    assert first[0] == again[0] == 0, first[2] + again[2]
    assert json.loads(first[1])["action"] == "started" and json.loads(again[1])["action"] == "reused"
    assert json.loads(first[1])["job_run_id"] == json.loads(again[1])["job_run_id"]
    assert [r["name"] for r in job_runs(aws)] == [f"ledgerlane/{RUN}/job-build.account_features/attempt-1"]
    assert [op for op, _ in aws["calls"]].count("StartJobRun") == 1


def test_a_new_attempt_is_a_new_job_run_with_its_own_token(config, aws, small_package):
    emr(config, "submit", "job-build", "account_features", "--run-id", RUN)
    code, out, err = emr(config, "submit", "--attempt", "2", "--json", "job-build", "account_features", "--run-id", RUN)

    tokens = [params["clientToken"] for op, params in aws["calls"] if op == "StartJobRun"]
    assert code == 0, err
    assert len(job_runs(aws)) == 2 and len(set(tokens)) == 2


def test_other_arguments_under_the_same_attempt_are_an_idempotency_conflict(config, aws, small_package):
    emr(config, "submit", "job-certify", "merchant_risk", "--run-id", RUN)

    result = emr(config, "submit", "job-certify", "merchant_risk", "--run-id", RUN, "--engine", "great_expectations")

    assert_refused(result, 6, "was started with other arguments", "--attempt 2")
    assert len(job_runs(aws)) == 1


def test_a_failed_run_prints_the_drivers_output_and_exits_12(config, aws, small_package):
    fail_every_start(aws, "step one\nerror: product merchant_risk is not certified PASS", "Traceback: boom")

    code, out, err = emr(config, "submit", "job-certify", "merchant_risk", "--run-id", RUN)

    assert code == 12
    assert "--- driver stdout" in err and "error: product merchant_risk is not certified PASS" in err
    assert "--- driver stderr" in err and "Traceback: boom" in err
    assert "ended FAILED" in err and f"emr run --run-id {RUN} --rerun" in err


def test_status_logs_and_cancel_name_the_run_and_its_step(config, aws, small_package):
    emr(config, "submit", "--no-wait", "stream-ingest", "--run-id", RUN)
    job_run_id = job_runs(aws)[0]["id"]
    set_job_run_state(aws["app"], job_run_id, "RUNNING")
    put_driver_log(aws["session"].client("s3"), BUCKET, aws["app"], job_run_id, "stdout", "ingesting epoch 1")

    status = emr(config, "status", job_run_id)
    by_run = emr(config, "status", "--run-id", RUN, "--json")
    logs = emr(config, "logs", job_run_id)
    cancelled = emr(config, "cancel", job_run_id)

    assert status[0] == 0 and f"{job_run_id}: RUNNING" in status[1] and "stream-ingest, attempt 1" in status[1]
    assert [r["step"] for r in json.loads(by_run[1])] == ["stream-ingest"]
    assert logs[0] == 0 and "ingesting epoch 1" in logs[1]
    assert cancelled[0] == 0 and "CANCELLED" in cancelled[1]


def test_a_long_running_stream_is_started_in_streaming_mode_and_watched_until_running(config, aws, small_package):
    code, out, err = emr(config, "submit", "--json", "stream-decide", "--run-id", RUN)

    request = next(params for op, params in aws["calls"] if op == "StartJobRun")
    assert code == 0, err
    assert request["mode"] == "STREAMING" and request["retryPolicy"] == {"maxFailedAttemptsPerHour": 5}


def test_an_unchanged_package_is_not_uploaded_twice_and_a_tampered_one_is_refused(config, aws, small_package):
    first = emr(config, "package", "--json")
    again = emr(config, "package", "--json")
    s3 = aws["session"].client("s3")
    key = json.loads(first[1])["code"].removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"someone else's code")
    tampered = emr(config, "package")

    assert first[0] == again[0] == 0, first[2]
    assert len(json.loads(first[1])["uploaded"]) == 4 and json.loads(first[1])["reused"] == []
    assert json.loads(again[1])["uploaded"] == [] and len(json.loads(again[1])["reused"]) == 4
    assert all(part in json.loads(first[1])["environment"] for part in ("environments/x86_64/environment-", ".tar.gz"))
    assert_refused(tampered, 10, "holds other content than its name says")


def test_a_configuration_that_would_lose_data_is_refused_before_any_call(tmp_path, aws, small_package):
    config = emr_config(tmp_path / "emr.toml", app_id=aws["app"])
    config.write_text(config.read_text().replace('tables_root = "s3://ll-lake/tables"', 'tables_root = "/tmp/t"'))
    before = len(aws["calls"])

    result = emr(config, "submit", "job-build", "account_features", "--run-id", RUN)

    assert_refused(result, 2, "storage.tables_root must be an s3:// URI")
    assert len(aws["calls"]) == before


def test_unknown_job_options_are_refused_before_any_call(config, aws, small_package):
    before = len(aws["calls"])

    result = emr(config, "submit", "job-build", "account_features", "--run-id", RUN, "--product", "x")

    assert_refused(result, 2, "unknown option --product for job job-build")
    assert len(aws["calls"]) == before


# ---- secrets -------------------------------------------------------------------------------------------

def secret_settings(tmp_path, aws, monkeypatch, pg_secret: str, kafka_secret: str):
    from common import secrets

    client = aws["session"].client("secretsmanager")
    pg_arn = client.create_secret(Name="ledgerlane/pg", SecretString=pg_secret)["ARN"]
    kafka_arn = client.create_secret(Name="AmazonMSK_ledgerlane", SecretString=kafka_secret)["ARN"]
    config = emr_config(tmp_path / "emr.toml", app_id=aws["app"])
    text = config.read_text().replace('user = "ledgerlane_app"\n', f'user = "ledgerlane_app"\npassword_secret_arn = '
                                      f'"{pg_arn}"\npassword_env = "LL_TEST_PG_SECRET"\n')
    text = text.replace('bootstrap_servers = "b-1.msk.example:9096"\n', 'bootstrap_servers = "b-1.msk.example:9096"\n'
                        'security_protocol = "SASL_SSL"\nsasl_mechanism = "SCRAM-SHA-512"\n'
                        f'sasl_secret_arn = "{kafka_arn}"\n')
    config.write_text(text)
    for var in ("LL_TEST_PG_SECRET", secrets.KAFKA_SASL_USERNAME_ENV, secrets.KAFKA_SASL_PASSWORD_ENV):
        # setenv first so monkeypatch records the variable's absence and removes what ``publish`` sets:
        # a SASL username left behind turns every later Kafka client in this session to SASL_SSL.
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    return load_settings(path=config, home=tmp_path), client


def test_secrets_are_read_by_arn_into_the_drivers_environment_only(tmp_path, aws, monkeypatch):
    from common import secrets
    from common.endpoints import postgres_params

    settings, client = secret_settings(tmp_path, aws, monkeypatch,
                                       json.dumps({"username": "app", "password": "pg-s3cr3t"}),
                                       json.dumps({"username": "ingest", "password": 'k"s3cr3t'}))

    published = secrets.publish(settings, client)

    assert published == ["LL_TEST_PG_SECRET", secrets.KAFKA_SASL_USERNAME_ENV, secrets.KAFKA_SASL_PASSWORD_ENV]
    assert postgres_params(settings)["password"] == "pg-s3cr3t"
    assert secrets.librdkafka_security()["sasl.password"] == 'k"s3cr3t'
    assert secrets.spark_kafka_security()["kafka.sasl.jaas.config"].endswith('username="ingest" password="k\\"s3cr3t";')
    assert "s3cr3t" not in settings.model_dump_json() and "s3cr3t" not in os.environ.get("LEDGERLANE_ENV", "")


def test_a_secret_without_the_field_is_refused_naming_the_arn_never_the_value(tmp_path, aws, monkeypatch):
    from common import secrets

    settings, client = secret_settings(tmp_path, aws, monkeypatch, "plain-pg-s3cr3t",
                                       json.dumps({"user": "ingest", "pass": "kafka-s3cr3t"}))

    with pytest.raises(ConfigError, match="without a non-empty string field 'username'") as refused:
        secrets.publish(settings, client)

    assert settings.kafka.sasl_secret_arn in str(refused.value) and "s3cr3t" not in str(refused.value)
    assert os.environ["LL_TEST_PG_SECRET"] == "plain-pg-s3cr3t"     # a plain-text password secret is allowed


def test_a_missing_secret_is_a_service_error_naming_the_permission(tmp_path, aws, monkeypatch):
    from common import secrets
    from common.errors import ServiceError

    settings, client = secret_settings(tmp_path, aws, monkeypatch, "x", json.dumps({"username": "u", "password": "p"}))
    client.delete_secret(SecretId=settings.postgres.password_secret_arn, ForceDeleteWithoutRecovery=True)

    with pytest.raises(ServiceError, match="secretsmanager:GetSecretValue"):
        secrets.publish(settings, client)


def test_clients_keep_botocores_validation_on_and_a_refused_request_is_a_config_error(tmp_path, aws, monkeypatch):
    import boto3

    from emr.aws import Clients
    from emr.submitter import Submitter

    monkeypatch.setattr("emr.aws.new_session", lambda region: boto3.session.Session(region_name=region))
    settings = load_settings(path=emr_config(tmp_path / "emr.toml", app_id=aws["app"]), home=tmp_path)
    clients = Clients.for_settings(settings)

    assert clients.emr.meta.config.parameter_validation is True and clients.s3.meta.config.parameter_validation
    with pytest.raises(ConfigError, match="GetJobRun request refused before sending"):
        Submitter(clients, settings).describe("")          # below the model's minimum length: never sent


def test_driver_logs_are_read_in_bounded_memory_last_lines_first_cut(tmp_path):
    import gzip
    import io

    from emr.submitter import MAX_LOG_LINE, tail

    body = io.BytesIO(gzip.compress("".join(f"line {i}\n" for i in range(100_000)).encode()
                                    + b"x" * 50_000 + b"\n"))

    lines = tail(body, 3).splitlines()

    assert lines[:2] == ["line 99998", "line 99999"]
    assert len(lines[2]) == MAX_LOG_LINE + 2 and lines[2].endswith(" …")


@pytest.mark.parametrize(("args", "fragment"), [
    (("submit", "--attempt", "0", "close", "--run-id", RUN), "--attempt: must be between 1 and 9999, found 0"),
    (("logs", "00jobrun", "--lines", "many"), "--lines: expected a whole number, found 'many'"),
    (("status",), "give either a JOB_RUN_ID or --run-id R"),
    (("run", "--run-id", "n/a"), "run id 'n/a' is invalid"),
])
def test_bad_command_options_are_refused_with_the_option_named_before_any_call(config, aws, args, fragment):
    before = len(aws["calls"])

    assert_refused(emr(config, *args), 2, fragment)
    assert len(aws["calls"]) == before
