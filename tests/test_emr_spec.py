"""EMR job specs come from each job's one declaration: arguments parsed and refused as the declaration
does, the mode, the Spark configuration, and a StartJobRun request the service model accepts whole."""

from __future__ import annotations

import shlex

import pytest
from botocore.stub import Stubber

from common.config import load_settings
from common.errors import ConfigError
from emr import spec as specs
from emr.package import Package
from emr.submitter import client_token, request_digest, start_request
from helpers import EMR_ACCOUNT, ModelViolation, assert_matches_model, emr_config, strict_session
from jobs.registry import JOBS, find

RUN = "r-emr-spec-1"
PACKAGE = Package(environment="s3://ll-lake/artifacts/environments/x86_64/environment-aa.tar.gz",
                  code="s3://ll-lake/artifacts/code/ledgerlane-code-bb.tar.gz",
                  entry_point="s3://ll-lake/artifacts/code/submit-cc.py",
                  jars=("s3://ll-lake/artifacts/jars/dd/spark-sql-kafka-0-10_2.13-4.1.1.jar",), env_name="emr")


@pytest.fixture(scope="module")
def emr_settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emr-spec")
    return load_settings(path=emr_config(folder / "emr.toml"), home=folder)


def minimal_argv(job) -> list[str]:
    """The smallest valid argument list for ``job``: its positional choices, the run id and a value for every
    other required option."""
    required = [arg for option in job.options if option.required and option.flag != "--run-id"
                for arg in (option.flag, f"s3://bucket/{option.dest}")]
    return [argument.choices[0] for argument in job.arguments] + ["--run-id", RUN] + required


@pytest.mark.parametrize("job", JOBS, ids=specs.qualified_name)
def test_every_job_and_stream_has_a_spec_whose_request_the_service_model_accepts(job, emr_settings):
    spec = specs.spec_for(job, minimal_argv(job), emr_settings)
    request = start_request(spec, PACKAGE, emr_settings, attempt=1)

    assert_matches_model(request, strict_session().client("emr-serverless").meta.service_model
                         .operation_model("StartJobRun").input_shape, "StartJobRun")
    arguments = request["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    assert find(arguments[0]) is job                       # jobs/submit.py resolves the same declaration
    assert arguments[-2:] == ["--env", "emr"] and "--run-id" in arguments
    assert request["mode"] == ("STREAMING" if job.streaming else "BATCH")


def test_a_stream_told_to_catch_up_is_a_batch_and_a_running_stream_retries_per_hour(emr_settings):
    ingest = find("stream-ingest")
    continuous = start_request(specs.spec_for(ingest, ["--run-id", RUN], emr_settings), PACKAGE, emr_settings, 1)
    finite = start_request(specs.spec_for(ingest, ["--run-id", RUN, "--until-caught-up"], emr_settings), PACKAGE,
                           emr_settings, 1)

    assert (continuous["mode"], continuous["retryPolicy"], continuous["executionTimeoutMinutes"]) == (
        "STREAMING", {"maxFailedAttemptsPerHour": 5}, 0)
    assert (finite["mode"], finite["retryPolicy"], finite["executionTimeoutMinutes"]) == (
        "BATCH", {"maxAttempts": 1}, 240)


@pytest.mark.parametrize(("job", "argv", "message"), [
    ("job-build", ["account_features", "--run-id", RUN, "--bogus", "1"], "unknown option --bogus for job job-build"),
    ("job-build", ["nonsense", "--run-id", RUN], "product must be one of transactions_view"),
    ("job-build", ["--run-id", RUN], "takes 1 argument"),
    ("job-certify", ["merchant_risk", "--run-id", RUN, "--engine", "fast"], "--engine must be one of"),
    ("decisions-show", ["--run-id", RUN, "--sample", "100000"], "--sample: must be between 0 and 1000"),
    ("decisions-show", ["--run-id", "unknown value!"], "run id 'unknown value!' is invalid"),
    ("stream-ingest", ["--run-id", RUN, "--until-caught-up=yes"], "is a flag and takes no value"),
    ("stream-ingest", ["--run-id", RUN, "--run-id", "r-other"], "--run-id is given twice"),
    ("stream-ingest", ["--run-id", RUN, "--reason"], "--reason needs a value"),
    ("stream-ingest", ["--run-id", RUN, "--env", "local"], "--env is not a job argument on EMR"),
    ("stream-ingest", ["--run-id", RUN, "--reason", "x" * 5000], "at most 4096"),
    ("db-migrate", [], "needs --run-id on EMR"),
])
def test_bad_arguments_are_refused_before_any_call_naming_the_problem(job, argv, message, emr_settings):
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        specs.spec_for(find(job), argv, emr_settings)


def test_the_declaration_parses_the_same_texts_on_both_doors(emr_settings):
    build = find("job-build")
    spec = specs.spec_for(build, ["merchant_risk", "--cutoff=2026-11-22T00:00:00+00:00", "--run-id", RUN],
                          emr_settings)
    argv = list(spec.arguments)

    assert argv == ["merchant_risk", "--run-id", RUN, "--cutoff", "2026-11-22T00:00:00+00:00"]
    assert vars(build.parser().parse_args(argv))["cutoff"] == "2026-11-22T00:00:00+00:00"   # the driver's door
    assert spec.step == "job-build.merchant_risk"


def test_spark_configuration_ships_environment_code_jars_and_the_dynamodb_log_store(emr_settings):
    spec = specs.spec_for(find("job-build"), ["account_features", "--run-id", RUN], emr_settings)
    tokens = shlex.split(start_request(spec, PACKAGE, emr_settings, 1)["jobDriver"]["sparkSubmit"]
                         ["sparkSubmitParameters"])
    conf = dict(token.split("=", 1) for token in tokens if token != "--conf")

    assert conf["spark.archives"] == f"{PACKAGE.environment}#environment,{PACKAGE.code}#code"
    assert conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.executorEnv.PYTHONPATH"] == conf["spark.emr-serverless.driverEnv.PYTHONPATH"] == "./code"
    assert conf["spark.jars"].split(",") == ["/usr/share/aws/delta/lib/delta-spark.jar",
                                             "/usr/share/aws/delta/lib/delta-storage.jar",
                                             "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar", *PACKAGE.jars]
    assert conf["spark.delta.logStore.s3.impl"] == conf["spark.delta.logStore.s3a.impl"] == \
        "io.delta.storage.S3DynamoDBLogStore"
    assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == "ledgerlane_delta_log"
    assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == "us-east-1"


def test_a_spark_value_with_whitespace_is_refused_because_emr_splits_on_spaces():
    with pytest.raises(ConfigError, match="spark.driver.extraJavaOptions"):
        specs.submit_parameters({"spark.driver.extraJavaOptions": "-Da=1 -Db=2"})


def test_the_client_token_is_deterministic_per_run_step_and_attempt_and_fits_the_api():
    token = client_token(RUN, "job-build.merchant_risk", 1)

    assert token == client_token(RUN, "job-build.merchant_risk", 1)
    others = {client_token(RUN, "job-build.merchant_risk", 2), client_token(RUN, "job-certify.merchant_risk", 1),
              client_token("r-emr-spec-2", "job-build.merchant_risk", 1)}
    assert len(others | {token}) == 4
    assert len(token) == 64


def test_the_model_check_catches_what_botocore_lets_through():
    """botocore validates types, required members and minimums; a 65-character token passes it but the
    service model's maximum (64) and pattern refuse it, so a test using strict_session fails on it."""
    shape = strict_session().client("emr-serverless").meta.service_model.operation_model("StartJobRun").input_shape

    with pytest.raises(ModelViolation, match="clientToken: length 65"):
        assert_matches_model({"clientToken": "a" * 65}, shape, "StartJobRun")
    with pytest.raises(ModelViolation, match="does not match the pattern"):
        assert_matches_model({"clientToken": "has space"}, shape, "StartJobRun")
    with pytest.raises(ModelViolation, match="not one of"):
        assert_matches_model({"mode": "MICROBATCH"}, shape, "StartJobRun")


def test_the_exact_start_job_run_request_for_a_build(emr_settings):
    """Stubber pins the request shape the submitter sends, byte for byte, and botocore validates it."""
    from emr.aws import Clients
    from emr.submitter import Submitter

    session = strict_session()
    emr, s3 = session.client("emr-serverless"), session.client("s3")
    spec = specs.spec_for(find("job-build"), ["account_features", "--run-id", RUN], emr_settings)
    expected = start_request(spec, PACKAGE, emr_settings, 1)
    with Stubber(emr) as stub:
        stub.add_response("list_job_runs", {"jobRuns": []}, {"applicationId": "00appid000000000",
                                                             "createdAtAfter": _anything()})
        stub.add_response("start_job_run", {"applicationId": "00appid000000000", "jobRunId": "00jobrun00000001",
                                            "arn": "arn:aws:emr-serverless:us-east-1:123456789012:/applications/"
                                                   "00appid000000000/jobruns/00jobrun00000001"}, expected)
        run, started = Submitter(Clients(emr=emr, s3=s3), emr_settings).start(spec, lambda: PACKAGE, 1)
        stub.assert_no_pending_responses()

    assert started and run.job_run_id == "00jobrun00000001"
    assert expected["clientToken"] == client_token(RUN, "job-build.account_features", 1)
    assert expected["name"] == f"ledgerlane/{RUN}/job-build.account_features/attempt-1"
    assert expected["tags"]["ledgerlane:request"] == request_digest(spec)
    assert expected["executionRoleArn"] == f"arn:aws:iam::{EMR_ACCOUNT}:role/ledgerlane-emr-job"
    assert expected["configurationOverrides"] == {"monitoringConfiguration": {"s3MonitoringConfiguration": {
        "logUri": "s3://ll-lake/logs/"}}}


def _anything():
    from botocore.stub import ANY

    return ANY


def test_the_example_configuration_is_ready_and_its_per_job_resources_apply(tmp_path):
    from common.config import CONF_DIR
    from emr.aws import assert_ready

    settings = load_settings(path=CONF_DIR / "emr.example.toml", home=tmp_path)
    assert_ready(settings)

    assert specs.spec_for(find("stream-ingest"), ["--run-id", RUN], settings).resources.max_executors == 12
    assert specs.spec_for(find("close"), ["--run-id", RUN], settings).resources == settings.emr.resources


def test_the_job_roles_policy_grants_what_the_example_configuration_uses_and_no_wildcard_action(tmp_path):
    import json
    from pathlib import Path

    from common.config import CONF_DIR

    settings = load_settings(path=CONF_DIR / "emr.example.toml", home=tmp_path)
    policy = json.loads((Path(__file__).resolve().parent.parent / "docs" / "iam" / "ledgerlane-emr-job-role.json")
                        .read_text())
    granted = {(action, resource) for statement in policy["Statement"] for action in statement["Action"]
               for resource in statement["Resource"]}
    lake = settings.storage.tables_root.removeprefix("s3://").split("/")[0]

    assert ("secretsmanager:GetSecretValue", settings.postgres.password_secret_arn) in granted
    assert ("secretsmanager:GetSecretValue", settings.kafka.sasl_secret_arn) in granted
    assert ("dynamodb:PutItem", f"arn:aws:dynamodb:{settings.emr.region}:123456789012:table/"
            f"{settings.emr.delta_log_table}") in granted
    assert ("s3:PutObject", f"arn:aws:s3:::{lake}/tables/*") in granted
    assert not any("*" in action for action, _ in granted)
