"""The EMR package: the dependency closure pinned for the target platform, a reproducible venv-shaped
archive, the code archive with its data files, and a real local ``spark-submit`` of a job from the
unpacked package exactly as EMR Serverless starts one (``--archives …#environment``,
``PYSPARK_PYTHON=./environment/bin/python``, ``PYTHONPATH=./code``, Delta from ``--jars``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

import pytest

from common.config import load_settings
from emr import environment, package

REPO = Path(__file__).resolve().parent.parent


def test_the_closure_is_pinned_to_what_was_tested_without_what_the_runtime_supplies():
    pins = dict(line.split("==") for line in environment.pinned_requirements(environment.Target()))

    assert "pyspark" not in pins and "py4j" not in pins
    assert pins["pandas"] == metadata.version("pandas") and pins["delta-spark"] == "4.2.0"
    assert "psycopg-binary" in pins                                     # psycopg[binary]: extras are followed
    assert "pytest" not in pins and "moto" not in pins and "deltalake" not in pins   # no dev or emr extras


def test_wheels_are_asked_for_the_target_platform_only():
    command = environment.pip_command(Path("r.txt"), Path("site"), environment.Target("ARM64"))

    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert "--only-binary=:all:" in command and "--no-deps" in command
    assert command[command.index("--python-version") + 1] == "3.11" and command[command.index("--abi") + 1] == "cp311"
    assert platforms and all(tag.endswith("_aarch64") and tag.startswith("manylinux") for tag in platforms)


def test_the_environment_archive_is_a_venv_and_the_same_bytes_every_time(tmp_path):
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (site / "pkg" / "__pycache__").mkdir()
    (site / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"stale")
    target = environment.Target("X86_64", "/usr/bin/python3.11")

    first = environment.pack(site, target, tmp_path / "a.tar.gz").read_bytes()
    second = environment.pack(site, target, tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        config = tar.extractfile("pyvenv.cfg").read().decode()

    assert first == second
    assert members["bin/python"].linkname == "python3.11"
    assert members["bin/python3.11"].linkname == "/usr/bin/python3.11"
    assert "home = /usr/bin\n" in config and "include-system-site-packages = false" in config
    assert "lib/python3.11/site-packages/pkg/__init__.py" in members
    assert not any("__pycache__" in name for name in members)


def test_the_code_archive_holds_the_runtime_packages_their_data_and_the_configuration(tmp_path):
    config = tmp_path / "prod.toml"
    config.write_text('env = "prod"\n[spark]\nprofile = "emr"\n')
    settings = load_settings(path=config, home=tmp_path)

    first = package.build_code(settings, tmp_path / "out", config)
    again = package.build_code(settings, tmp_path / "again", config)
    with tarfile.open(first) as tar:
        names = set(tar.getnames())

    assert first.name == again.name and first.read_bytes() == again.read_bytes()
    assert {"jobs/submit.py", "jobs/registry.py", "common/config.py", "conf/prod.toml"} <= names
    assert any(name.startswith("human_loop/migrations/V001") and name.endswith(".sql") for name in names)
    assert not any(name.split("/")[0] in ("cli", "emr", "services", "tests") for name in names)
    with tarfile.open(first) as tar:
        assert tar.extractfile("CODE_VERSION").read().decode().startswith("git:")   # receipts name it on EMR


# ---- a real spark-submit from the unpacked package -------------------------------------------------------

@pytest.fixture(scope="module")
def local_environment(tmp_path_factory):
    """The x86_64 environment from manylinux wheels, linked to this machine's Python 3.11 (EMR's would be
    /usr/bin/python3.11); cached under the shared cache by the digest of its pinned closure."""
    from common.home import resolve_cache

    target = environment.Target("X86_64", str(Path(sys.base_prefix) / "bin" / "python3.11"))
    started = time.monotonic()
    archive = environment.build(resolve_cache(tmp_path_factory.mktemp("home")), target)
    print(f"\nenvironment {archive.name}: {archive.stat().st_size / 1e6:.0f} MB, {time.monotonic() - started:.0f} s")
    return archive


def unpack(archive: Path, into: Path) -> Path:
    """As Spark does for an archive (Hadoop's FileUtil.unTar runs tar): symlinks stay symlinks."""
    into.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(into)], check=True)
    return into


@pytest.mark.slow
def test_a_real_spark_submit_runs_a_job_from_the_unpacked_package_as_emr_starts_it(local_environment, tmp_path):
    import pyspark

    from common.home import resolve_cache
    from common.jars import connector_jars

    config = tmp_path / "emrlocal.toml"
    config.write_text(f'env = "emrlocal"\n[storage]\ntables_root = "{tmp_path / "tables"}"\n'
                      '[spark]\nprofile = "emr"\nmaster = ""\nshuffle_partitions = 2\n')
    settings = load_settings(path=config, home=tmp_path / "home")
    code = package.build_code(settings, tmp_path / "artifacts", config)
    work = tmp_path / "container"                      # the driver's working directory on EMR
    unpack(local_environment, work / "environment")
    unpack(code, work / "code")
    (work / "submit.py").write_bytes(package.ENTRY_POINT.read_bytes())
    spark_home = Path(pyspark.__file__).parent
    jars = connector_jars(resolve_cache(tmp_path), pyspark.__version__, spark_home / "jars")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SPARK_HOME": str(spark_home),
           "PYSPARK_PYTHON": "./environment/bin/python", "PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
           "PYTHONPATH": "./code", **({"JAVA_HOME": os.environ["JAVA_HOME"]} if "JAVA_HOME" in os.environ else {})}

    done = subprocess.run(
        [str(spark_home / "bin" / "spark-submit"), "--master", "local[1]",
         "--archives", f"{local_environment}#environment,{code}#code", "--jars", ",".join(map(str, jars)),
         "--conf", "spark.executorEnv.PYTHONPATH=./code", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.driver.host=127.0.0.1",
         "submit.py", "job-environment", "--run-id", "r-emr-package-1", "--tasks", "1", "--env", "emrlocal", "--json"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads(done.stdout)
    venv = str(REPO / ".venv")
    assert summary["ok"] and summary["broken"] == []
    for side in [summary["driver"], *summary["executors"]]:
        assert side["prefix"] == str(work / "environment") and not side["executable"].startswith(venv)
        assert side["python"].startswith("3.11.") and side["modules"]["pyarrow"] == metadata.version("pyarrow")
    assert summary["delta"] == {"version_read": 0, "rows_then": 2, "rows_now": 3}
    assert summary["code_version"] == package.stamped_version()     # no git on EMR: the stamped commit
