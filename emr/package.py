"""What an EMR job run is started from, built locally and uploaded to S3 under content-hashed keys.

    environments/<machine>/environment-<sha>.tar.gz   the packed Python environment (``environment.py``)
    code/ledgerlane-code-<sha>.tar.gz                  the project's runtime packages + conf/<env>.toml
    code/submit-<sha>.py                               jobs/submit.py, the entry point
    jars/<sha>/<name>.jar                              the Kafka connector and its dependencies

The code travels as an archive (``spark.archives …#code`` with ``PYTHONPATH=./code``) rather than a
``--py-files`` zip: jobs read package data as files (the SQL migrations, ``conf/<env>.toml``), and a
zip on ``sys.path`` has no files to read. A key names its content, so an unchanged artifact is found
and not uploaded again; an object under our key with other content is refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from dataclasses import dataclass, field
from gzip import GzipFile
from pathlib import Path

from common.config import REPO_ROOT, Settings, config_path
from common.errors import ConfigError, ServiceError, StateDrift
from emr import environment, jars
from jobs.batch_context import CODE_VERSION_FILE, code_version

# The packages a job needs on EMR (cli/, emr/ and services/ run only where jobs are submitted from).
RUNTIME_PACKAGES = ("common", "checks", "human_loop", "products", "streaming", "jobs")
DATA_SUFFIXES = (".py", ".sql", ".properties")
ENTRY_POINT = REPO_ROOT / "jobs" / "submit.py"
HASH_CHARS = 24


@dataclass(frozen=True)
class LocalPackage:
    """The files of one package on this machine."""

    environment: Path
    code: Path
    entry_point: Path
    jars: tuple[Path, ...]
    machine: str
    env_name: str


@dataclass(frozen=True)
class Package:
    """The same package on S3: what a job run's request names."""

    environment: str
    code: str
    entry_point: str
    jars: tuple[str, ...]
    env_name: str
    uploaded: tuple[str, ...] = field(default=(), compare=False)
    reused: tuple[str, ...] = field(default=(), compare=False)

    @property
    def code_digest(self) -> str:
        return self.code.rsplit("-", 1)[-1].removesuffix(".tar.gz")

    def to_dict(self) -> dict:
        return {"environment": self.environment, "code": self.code, "entry_point": self.entry_point,
                "jars": list(self.jars), "env": self.env_name, "uploaded": list(self.uploaded),
                "reused": list(self.reused)}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- building ---------------------------------------------------------------------------------------------

def code_files(root: Path = REPO_ROOT) -> list[tuple[str, Path]]:
    """(name in the archive, file) for every runtime module and data file, sorted."""
    found = []
    for package in RUNTIME_PACKAGES:
        for path in (root / package).rglob("*"):
            if path.is_file() and path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts:
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def build_code(settings: Settings, out_dir: Path, config_file: Path) -> Path:
    """A reproducible tar.gz of the runtime packages with the configuration as ``conf/<env>.toml``."""
    buffer = io.BytesIO()
    with GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                         format=tarfile.PAX_FORMAT) as tar:
        for name, path in code_files():
            _add(tar, name, path.read_bytes())
        _add(tar, f"conf/{settings.env}.toml", config_file.read_bytes())
        _add(tar, CODE_VERSION_FILE, f"{stamped_version()}\n".encode())
    data = buffer.getvalue()
    out = Path(out_dir) / f"ledgerlane-code-{hashlib.sha256(data).hexdigest()[:HASH_CHARS]}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file():
        out.write_bytes(data)
    return out


def stamped_version() -> str:
    """The commit packaged (receipts name it on EMR, where there is no git), ``+dirty`` with local changes."""
    version = code_version()
    done = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", *RUNTIME_PACKAGES],
                          capture_output=True, text=True, check=False)
    return version + ("+dirty" if version.startswith("git:") and done.stdout.strip() else "")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def build(settings: Settings, *, config_file: str | None = None, progress=lambda _: None) -> LocalPackage:
    """Every artifact for ``settings`` (the environment and jars come from the cache once built)."""
    target = environment.Target(settings.emr.architecture, settings.emr.python_interpreter)
    out_dir = Path(settings.cache) / "emr-packages"
    conf = Path(config_file) if config_file else config_path(settings.env)
    if not conf.is_file():
        raise ConfigError(f"the configuration to package was not found at {conf}")
    return LocalPackage(environment=environment.build(Path(settings.cache), target, progress),
                        code=build_code(settings, out_dir, conf), entry_point=ENTRY_POINT,
                        jars=tuple(jars.uploaded_jars(Path(settings.cache))), machine=target.machine,
                        env_name=settings.env)


# ---- uploading ------------------------------------------------------------------------------------------

def s3_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ConfigError(f"expected an s3:// URI, found {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def keys_for(local: LocalPackage, hashes: dict[Path, str]) -> dict[Path, str]:
    """The key (under the artifacts prefix) of each file: its content hash is in the name."""
    short = {path: digest[:HASH_CHARS] for path, digest in hashes.items()}
    keys = {local.environment: f"environments/{local.machine}/environment-{short[local.environment]}.tar.gz",
            local.code: f"code/{local.code.name}",
            local.entry_point: f"code/submit-{short[local.entry_point]}.py"}
    keys.update({jar: f"jars/{short[jar]}/{jar.name}" for jar in local.jars})
    return keys


def upload(local: LocalPackage, s3, artifacts_uri: str, progress=lambda _: None) -> Package:
    """Upload what S3 lacks; an artifact already there under its content key is reused as is."""
    bucket, prefix = s3_parts(artifacts_uri)
    files = [local.environment, local.code, local.entry_point, *local.jars]
    hashes = {path: sha256_file(path) for path in files}
    uris, uploaded, reused = {}, [], []
    for path, key in keys_for(local, hashes).items():
        full_key = f"{prefix}/{key}" if prefix else key
        uri = f"s3://{bucket}/{full_key}"
        if _present(s3, bucket, full_key, hashes[path]):
            reused.append(uri)
        else:
            progress(f"uploading {path.name} ({path.stat().st_size / 1e6:.1f} MB)")
            s3.upload_file(str(path), bucket, full_key, ExtraArgs={"Metadata": {"sha256": hashes[path]}})
            uploaded.append(uri)
        uris[path] = uri
    return Package(environment=uris[local.environment], code=uris[local.code], entry_point=uris[local.entry_point],
                   jars=tuple(uris[jar] for jar in local.jars), env_name=local.env_name,
                   uploaded=tuple(uploaded), reused=tuple(reused))


def _present(s3, bucket: str, key: str, sha256: str) -> bool:
    """True when the object is there with our hash; an object with another hash is someone else's write."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise ServiceError(f"S3 refused to describe s3://{bucket}/{key}: "
                           f"{exc.response.get('Error', {}).get('Code')}") from None
    found = head.get("Metadata", {}).get("sha256")
    if found != sha256:
        raise StateDrift(f"s3://{bucket}/{key} holds other content than its name says: expected sha256 {sha256}, "
                         f"found {found or 'no sha256 metadata'}; it was not written by `ledgerlane emr package` "
                         "— delete it and package again")
    return True
