"""The JVM side of an EMR job: what the emr-spark-8.1.0 runtime ships, and what ledgerlane uploads.

Delta 4.2 (``delta-spark``, ``delta-storage`` and the DynamoDB log store ``delta-storage-s3-dynamodb``)
is in the runtime image under ``/usr/share/aws/delta/lib``, built by AWS for that Spark: it is named,
never uploaded. The Kafka connector (``spark-sql-kafka-0-10`` 4.1.1) is not in the runtime, so it is
resolved here with Maven (runtime scope: the registry does not serve the token provider's test-jar that
Ivy, and so ``spark.jars.packages``, would ask for; see ``common/jars.py``), stripped of what Spark
already ships, and uploaded by content hash. Jobs then start without reaching any registry, which a
private VPC next to MSK and RDS would not allow anyway.
"""

from __future__ import annotations

from pathlib import Path

from common.jars import SCALA_BINARY, not_shipped, resolved

RUNTIME_DELTA_JARS = (
    "/usr/share/aws/delta/lib/delta-spark.jar",
    "/usr/share/aws/delta/lib/delta-storage.jar",
    "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar",
)


def kafka_coordinates(spark_version: str) -> list[str]:
    return [f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY}:{spark_version}"]


def uploaded_jars(cache: Path) -> list[Path]:
    """The Kafka connector and what it needs beyond EMR's Spark (same Spark as the pinned pyspark)."""
    import pyspark

    jars = resolved(cache, kafka_coordinates(pyspark.__version__), prefix="emr-kafka-connector")
    return not_shipped(jars, Path(pyspark.__file__).parent / "jars")
