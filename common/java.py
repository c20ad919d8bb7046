"""The Java every JVM ledgerlane starts needs (Spark, the local Kafka broker): found and checked once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from common.errors import EnvironmentProblem

MIN_JAVA_MAJOR = 17


def find_java() -> Path:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set (as Spark and Maven do), else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise EnvironmentProblem(
                f"JAVA_HOME={java_home} has no executable bin/java; point JAVA_HOME at a JDK "
                f"{MIN_JAVA_MAJOR}+ or unset it to use `java` from PATH."
            )
        return java
    found = shutil.which("java")
    if not found:
        raise EnvironmentProblem(
            f"no Java found: JAVA_HOME is unset and `java` is not on PATH; install a JDK "
            f"{MIN_JAVA_MAJOR}+ (scripts/setup.sh does this) or set JAVA_HOME."
        )
    return Path(found)


def java_major_version(java: Path) -> int:
    """The feature release of ``java`` (8 for "1.8.0_392", 17 for "17.0.15")."""
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"{java} does not run: {exc}") from None
    output = (done.stdout + done.stderr).strip()
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        raise EnvironmentProblem(f"could not read a Java version from `{java} -version`:\n{output[-500:]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def assert_java(minimum: int = MIN_JAVA_MAJOR) -> Path:
    """The java executable to use, or EnvironmentProblem when it is missing or older than ``minimum``."""
    java = find_java()
    major = java_major_version(java)
    if major < minimum:
        raise EnvironmentProblem(
            f"{java} is Java {major}; ledgerlane needs Java {minimum} or newer (EMR runs JDK 17). "
            f"Set JAVA_HOME to a newer JDK or put one first on PATH."
        )
    return java

