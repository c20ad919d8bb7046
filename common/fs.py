"""Small file operations through Hadoop's FileSystem, so the same code works on local disk and S3."""

from __future__ import annotations

from pyspark.sql import SparkSession


def _fs_and_path(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = _fs_and_path(spark, path)
    return bool(fs.exists(hpath))


def read_text(spark: SparkSession, path: str) -> str:
    fs, hpath = _fs_and_path(spark, path)
    stream = fs.open(hpath)
    try:
        reader = spark.sparkContext._jvm.java.io.BufferedReader(
            spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8"))
        return "\n".join(iter(reader.readLine, None))
    finally:
        stream.close()


def write_text(spark: SparkSession, path: str, text: str, *, overwrite: bool = False) -> None:
    fs, hpath = _fs_and_path(spark, path)
    stream = fs.create(hpath, overwrite)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def list_names(spark: SparkSession, path: str) -> list[str]:
    """Names directly under ``path`` (empty when it does not exist)."""
    fs, hpath = _fs_and_path(spark, path)
    if not fs.exists(hpath):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hpath))


def list_raw_names(spark: SparkSession, path: str) -> list[str]:
    """Like ``list_names``, but on local disk also the ``.crc`` checksum files Hadoop normally hides."""
    fs, hpath = _fs_and_path(spark, path)
    raw = _without_checksums(spark, fs)
    if not raw.exists(hpath):
        return []
    return sorted(status.getPath().getName() for status in raw.listStatus(hpath))


def delete_raw(spark: SparkSession, path: str) -> bool:
    """Delete one file as it is on disk (a checksum file included), not through the checksum layer."""
    fs, hpath = _fs_and_path(spark, path)
    return bool(_without_checksums(spark, fs).delete(hpath, False))


def _without_checksums(spark: SparkSession, fs):
    """The file system under Hadoop's checksum layer (local disk); object stores have no such layer."""
    checksummed = spark.sparkContext._jvm.org.apache.hadoop.fs.ChecksumFileSystem._java_lang_class
    return fs.getRawFileSystem() if checksummed.isInstance(fs) else fs


def delete(spark: SparkSession, path: str, *, recursive: bool = False) -> bool:
    fs, hpath = _fs_and_path(spark, path)
    return bool(fs.delete(hpath, recursive))
