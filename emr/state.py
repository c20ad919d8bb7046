"""What a run already has, read from S3 where the jobs wrote it, without a JVM.

The Delta tables under ``storage.tables_root`` are read with ``deltalake`` (delta-rs): it reads any
table Spark's Delta 4.2 writes here (checkpoints included), needs no Spark, no cluster and no
credentials beyond those boto3 already has, and is installed only where runs are submitted from
(``pip install ledgerlane[emr]``), not in the EMR environment. The states are computed by the same
pure function the local rerun uses (``jobs.status.status_from``), and a PASS counts only when its
certify job's result file confirms it, as ``checks.gate.newest_confirmed_pass`` requires locally.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from checks.results import PASS
from common import catalog
from common.bundle_store import open_store
from common.errors import EnvironmentProblem, ServiceError
from common.evidence import COMPLETE
from jobs import status
from jobs.closure.bundle import key as bundle_key
from products import NAMES
from products import product as find_product

RECEIPTS, CERTIFICATIONS, CAUGHT_UP = "meta.job_receipts", "meta.certifications", "meta.caught_up"


@dataclass(frozen=True)
class RunState:
    run_id: str
    caught_up: bool
    products: dict[str, str]                  # product -> PASS | FAIL | UNCERTIFIED | ERROR | MISSING
    complete: bool
    details: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "caught_up": self.caught_up, "products": self.products,
                "complete": self.complete, "details": self.details}


def storage_options(session, s3_client) -> dict[str, str]:
    """deltalake's S3 settings from boto3's own session: one credential chain for both readers."""
    credentials = session.get_credentials()
    if credentials is None:
        raise EnvironmentProblem("no AWS credentials found (boto3's chain: environment, profile, SSO, "
                                 "instance role) to read the run's tables on S3")
    frozen = credentials.get_frozen_credentials()
    options = {"AWS_REGION": session.region_name or "us-east-1", "AWS_ACCESS_KEY_ID": frozen.access_key,
               "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        options["AWS_SESSION_TOKEN"] = frozen.token
    endpoint = s3_client.meta.endpoint_url
    if not urlparse(endpoint).hostname.endswith("amazonaws.com"):   # a private or test endpoint
        options.update(AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP=str(endpoint.startswith("http:")).lower())
    return options


def has_log(uri: str, s3_client) -> bool:
    """Whether a Delta log exists at ``uri`` (deltalake reports a missing table as a generic error)."""
    if not uri.startswith("s3://"):
        return os.path.isdir(os.path.join(uri.removeprefix("file:"), "_delta_log"))
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    found = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix.rstrip('/')}/_delta_log/", MaxKeys=1)
    return found.get("KeyCount", 0) > 0


def rows(uri: str, options: dict[str, str], run_id: str, s3_client) -> list[dict]:
    """The rows of the Delta table at ``uri`` for ``run_id``; no table yet means no rows."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    if not has_log(uri, s3_client):
        return []
    try:
        table = DeltaTable(uri, storage_options=options)
        return table.to_pyarrow_table(filters=[("run_id", "=", run_id)]).to_pylist()
    except (DeltaError, OSError) as exc:
        raise ServiceError(f"could not read the Delta table {uri}: {type(exc).__name__}: {exc}") from None


def confirmed(row: dict, location: str, s3_client) -> bool:
    """The certify job's result file exists and says the same verdict for the same version and table."""
    path = row.get("evidence_path") or ""
    try:
        text = read_text(path, s3_client) if path else None
        result = json.loads(text) if text else {}
    except ValueError:
        return False
    return (result.get("status"), result.get("version"), result.get("location")) == (row["status"], row["version"],
                                                                                    location)


def read_text(path: str, s3_client) -> str | None:
    from botocore.exceptions import ClientError

    if not path.startswith("s3://"):
        try:
            with open(path.removeprefix("file:"), encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return None
    bucket, _, key = path.removeprefix("s3://").partition("/")
    try:
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except ClientError:
        return None


def product_states(tables_root: str, run_id: str, options: dict[str, str],
                   s3_client) -> dict[str, status.ProductStatus]:
    run_receipts = sorted(rows(catalog.location(tables_root, RECEIPTS), options, run_id, s3_client),
                          key=lambda r: (r["product"], r["step"], r["attempt"]))
    certified = rows(catalog.location(tables_root, CERTIFICATIONS), options, run_id, s3_client)
    result = {}
    for name in NAMES:
        location = catalog.location(tables_root, find_product(name).table.name)
        verdicts = [(r["version"], r["status"]) for r in certified
                    if r["product"] == name and r["location"] == location
                    and (r["status"] != PASS or confirmed(r, location, s3_client))]
        result[name] = status.status_from(name, run_receipts, verdicts)
    return result


def read(settings, run_id: str, options: dict[str, str], s3_client) -> RunState:
    tables_root = settings.tables_root
    proofs = rows(catalog.location(tables_root, CAUGHT_UP), options, run_id, s3_client)
    products = product_states(tables_root, run_id, options, s3_client)
    complete = open_store(settings.evidence_root, s3_client=s3_client).exists(bundle_key(run_id, COMPLETE))
    return RunState(run_id=run_id, caught_up=any(p.get("caught_up") for p in proofs),
                    products={name: s.state for name, s in products.items()}, complete=complete,
                    details={name: s.detail for name, s in products.items()})
