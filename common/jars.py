"""Connector jars for local Spark (Delta, Spark-Kafka, PostgreSQL JDBC), resolved once from Maven Central
into ``<cache>/spark-connectors-<digest>/`` so every later start works offline.

Maven rather than ``spark.jars.packages``: the Spark-Kafka connector's pom names the
``spark-token-provider-kafka-0-10`` *test-jar* (scope ``test``), which the registry this project reaches
does not serve for 4.1.1 (nor did it for 4.0.x). Ivy asks for it and gives up on the whole resolution;
Maven resolving the ``runtime`` scope never asks for test artifacts, so the connector resolves as is.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

from common.errors import EnvironmentProblem

SCALA_BINARY = "2.13"
DELTA_VERSION = "4.2.0"
POSTGRES_JDBC_VERSION = "42.7.8"
MARKER = "resolved.ok"


def coordinates(spark_version: str) -> list[str]:
    """group:artifact:version of the direct dependencies; the Kafka connector must match Spark exactly.

    Delta 4.2 publishes one artifact per Spark line: ``delta-spark_<spark major.minor>_<scala>``.
    """
    spark_line = ".".join(spark_version.split(".")[:2])
    return [
        f"io.delta:delta-spark_{spark_line}_{SCALA_BINARY}:{DELTA_VERSION}",
        f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY}:{spark_version}",
        f"org.postgresql:postgresql:{POSTGRES_JDBC_VERSION}",
    ]


def render_pom(coords: list[str]) -> str:
    def dep(coord: str) -> str:
        group, artifact, version = (escape(part) for part in coord.split(":"))
        return (f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version></dependency>")

    direct = "".join(dep(c) for c in coords)
    return (
        '<project><modelVersion>4.0.0</modelVersion>'
        "<groupId>dev.ledgerlane</groupId><artifactId>spark-connectors</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{direct}</dependencies></project>"
    )


def artifact_name(jar: Path) -> str:
    """``kafka-clients-3.9.1.jar`` -> ``kafka-clients``: the name without its version."""
    parts = jar.stem.split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def connector_jars(cache: Path, spark_version: str, spark_jars_dir: Path) -> list[Path]:
    """The jars to put on ``spark.jars``: resolved transitively, minus what pyspark already ships."""
    return not_shipped(resolved(cache, coordinates(spark_version)), spark_jars_dir)


def resolved(cache: Path, coords: list[str], prefix: str = "spark-connectors") -> list[Path]:
    """Every jar ``coords`` need at run time, resolved by Maven once into ``<cache>/<prefix>-<digest>/lib``."""
    folder = Path(cache) / f"{prefix}-{hashlib.sha256(render_pom(coords).encode()).hexdigest()[:12]}"
    if not (folder / MARKER).is_file():
        _resolve(folder, render_pom(coords), Path(cache) / "m2")
    return sorted((folder / "lib").glob("*.jar"))


def not_shipped(jars: list[Path], spark_jars_dir: Path) -> list[Path]:
    """``jars`` minus those whose artifact Spark already ships (any version: Spark's own wins)."""
    shipped = {artifact_name(jar) for jar in Path(spark_jars_dir).glob("*.jar")}
    return [jar for jar in jars if artifact_name(jar) not in shipped]


def _resolve(folder: Path, pom: str, maven_repo: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EnvironmentProblem("Maven ('mvn') is needed once to download Spark connector jars; run scripts/setup.sh")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pom.xml").write_text(pom)
    cmd = [mvn, "-q", "-B", "-f", str(folder / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={folder / 'lib'}", "-DincludeScope=runtime", f"-Dmaven.repo.local={maven_repo}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise EnvironmentProblem("could not download Spark connector jars with Maven:\n  " + "\n  ".join(tail))
    (folder / MARKER).write_text("\n".join(sorted(p.name for p in (folder / "lib").glob("*.jar"))))
