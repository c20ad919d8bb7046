"""Where evidence bundles live: a local folder or an S3 prefix, behind one small interface.

The one thing a plain file API cannot give is an *exclusive create*: the run's closure lock and its
verdict marker must be written by exactly one closer. Locally that is ``open(O_CREAT | O_EXCL)``; on
S3 it is a conditional write (``If-None-Match: *``, refused with 412 when the key exists), which S3
has offered since 2024 and moto enforces.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from common.errors import LedgerlaneError, ServiceError


class AlreadyExists(LedgerlaneError):
    """An exclusive create found the key already there."""


class BundleStore(Protocol):
    root: str

    def read(self, key: str) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def create_exclusive(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...


class LocalStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self._root = Path(root)

    def _path(self, key: str) -> Path:
        return self._root / key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)   # readers see the old file or the whole new one

    def create_exclusive(self, key: str, data: bytes) -> None:
        """Like S3's conditional write: the object appears whole or not at all. The data is written and
        synced under a private name first, then hard-linked to the key, which fails if the key exists."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(partial, 0o644)
            os.link(partial, path)
        except FileExistsError:
            raise AlreadyExists(f"{path} already exists") from None
        finally:
            os.unlink(partial)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self._root)) for p in base.rglob("*") if p.is_file())


class S3Store:
    """``s3://bucket/prefix``; the client is injected (boto3 in production, moto in tests)."""

    def __init__(self, root: str, client) -> None:
        self.root = root.rstrip("/")
        bucket, _, prefix = self.root.removeprefix("s3://").partition("/")
        self.bucket, self.prefix, self.client = bucket, prefix, client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def create_exclusive(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise AlreadyExists(f"s3://{self.bucket}/{self._key(key)} already exists") from None
            raise ServiceError(f"S3 refused to write s3://{self.bucket}/{self._key(key)}: {code}") from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str) -> list[str]:
        keys, start = [], self._key(prefix)
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            keys += [item["Key"] for item in page.get("Contents", [])]
        strip = f"{self.prefix}/" if self.prefix else ""
        return sorted(key.removeprefix(strip) for key in keys)


def open_store(root: str, s3_client=None) -> BundleStore:
    """The store for an evidence root: ``s3://…`` (boto3 unless a client is given) or a local folder."""
    if root.startswith("s3://"):
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Store(root, s3_client)
    return LocalStore(root.removeprefix("file:"))
