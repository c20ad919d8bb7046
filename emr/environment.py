"""The Python environment EMR Serverless unpacks for every job (``spark.archives …#environment``).

No Docker: the dependency closure of ``setup.cfg``'s ``install_requires``, pinned to the versions this
machine resolved, is installed from manylinux wheels for the *target* platform (pip's ``--platform``,
``--python-version``, ``--only-binary=:all:``) into a venv-shaped folder, and packed as a tar.gz:

    bin/python -> python3.11 -> <the runtime's interpreter, /usr/bin/python3.11 on EMR>
    pyvenv.cfg                  (makes that interpreter treat the folder as its venv)
    lib/python3.11/site-packages/…

That is the layout venv-pack produces; building it from wheels for the target platform avoids the
most common failure of packed environments, compiled packages built for the machine that packed them.
``pyspark`` and ``py4j`` are left out: the runtime's Spark supplies them, matching its JVM side.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from gzip import GzipFile
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from common.errors import ConfigError, EnvironmentProblem

PROJECT = "ledgerlane"
PROVIDED_BY_RUNTIME = frozenset({"pyspark", "py4j"})
PYTHON_VERSION = "3.11"
# AL2023 has glibc 2.34; any manylinux tag up to it runs there. pip takes the list literally.
MANYLINUX = ("manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014", "manylinux_2_5",
             "manylinux1")
MACHINES = {"X86_64": "x86_64", "ARM64": "aarch64"}


@dataclass(frozen=True)
class Target:
    """Where the environment will run: EMR's architecture and the interpreter inside its image."""

    architecture: str = "X86_64"
    interpreter: str = "/usr/bin/python3.11"

    @property
    def machine(self) -> str:
        try:
            return MACHINES[self.architecture]
        except KeyError:
            raise ConfigError(f"architecture must be one of {', '.join(MACHINES)}, "
                              f"found {self.architecture!r}") from None

    def platforms(self) -> list[str]:
        return [f"{tag}_{self.machine}" for tag in MANYLINUX]

    def markers(self) -> dict[str, str]:
        env = default_environment()
        env.update(platform_machine=self.machine, sys_platform="linux", platform_system="Linux", os_name="posix",
                   python_version=PYTHON_VERSION, implementation_name="cpython",
                   platform_python_implementation="CPython")
        env["python_full_version"] = f"{PYTHON_VERSION}.0"
        return env


# ---- what goes in: the pinned closure ------------------------------------------------------------------

def pinned_requirements(target: Target, project: str = PROJECT) -> list[str]:
    """``name==version`` for every distribution the project needs at run time on ``target``.

    Walks the installed metadata from the project's own requirements (no extras), evaluating markers
    for the target platform, and pins what this machine installed, so EMR runs what the tests ran.
    """
    markers, pins, queue = target.markers(), {}, [(project, frozenset())]
    while queue:
        name, extras = queue.pop()
        for requirement in _requires(name, extras, markers):
            key = canonicalize_name(requirement.name)
            if key in PROVIDED_BY_RUNTIME:
                continue
            extras_here = frozenset(requirement.extras)
            if key in pins and extras_here <= pins[key][1]:
                continue
            version = _installed_version(requirement.name, needed_by=name)
            pins[key] = (version, pins.get(key, ("", frozenset()))[1] | extras_here)
            queue.append((requirement.name, extras_here))
    return sorted(f"{name}=={version}" for name, (version, _) in pins.items())


def _requires(name: str, extras: frozenset[str], markers: dict[str, str]) -> list[Requirement]:
    found = []
    for text in metadata.distribution(name).requires or []:
        requirement = Requirement(text)
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({**markers, "extra": extra}) for extra in (extras or {""}))
        if wanted:
            found.append(requirement)
    return found


def _installed_version(name: str, *, needed_by: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise EnvironmentProblem(f"{name} (needed by {needed_by}) is not installed here, so its version cannot "
                                 "be pinned for EMR; run scripts/setup.sh first") from None


def requirements_digest(requirements: list[str], target: Target) -> str:
    blob = "\n".join([target.architecture, PYTHON_VERSION, *requirements]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---- installing for the target platform -----------------------------------------------------------------

def pip_command(requirements_file: Path, site_packages: Path, target: Target) -> list[str]:
    platforms = [arg for tag in target.platforms() for arg in ("--platform", tag)]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--no-deps", "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
            "--abi", f"cp{PYTHON_VERSION.replace('.', '')}", *platforms,
            "--target", str(site_packages), "-r", str(requirements_file)]


def install_site_packages(cache: Path, target: Target, requirements: list[str]) -> Path:
    """``<cache>/emr-site-packages-<digest>/`` with every wheel for ``target``; built once per digest."""
    folder = Path(cache) / f"emr-site-packages-{target.machine}-{requirements_digest(requirements, target)}"
    if (folder / "installed.ok").is_file():
        return folder / "site-packages"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    done = subprocess.run(pip_command(folder / "requirements.txt", folder / "site-packages", target),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise EnvironmentProblem(f"pip could not install the {target.machine} wheels for EMR: "
                                 + _pip_reason(done.stdout + done.stderr))
    shutil.rmtree(folder / "site-packages" / "bin", ignore_errors=True)   # console scripts of this machine
    (folder / "installed.ok").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return folder / "site-packages"


def _pip_reason(output: str) -> str:
    """pip's ERROR line: it names the requirement without a wheel for the platform."""
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR")]
    return (errors[0] if errors else output.strip().splitlines()[-1] if output.strip() else "no output")[:500]


# ---- packing it as a venv ---------------------------------------------------------------------------

def pyvenv_cfg(target: Target) -> str:
    home = str(Path(target.interpreter).parent)
    return f"home = {home}\ninclude-system-site-packages = false\nversion = {PYTHON_VERSION}\n"


def pack(site_packages: Path, target: Target, out: Path) -> Path:
    """A reproducible tar.gz (sorted entries, zero times and owners): same inputs, same bytes, same hash."""
    if not re.fullmatch(r"/[\w./+-]+", target.interpreter):
        raise ConfigError(f"emr.python_interpreter must be an absolute path, found {target.interpreter!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as raw, GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_link(tar, f"bin/python{PYTHON_VERSION}", target.interpreter)
        _add_link(tar, "bin/python3", f"python{PYTHON_VERSION}")
        _add_link(tar, "bin/python", f"python{PYTHON_VERSION}")
        _add_bytes(tar, "pyvenv.cfg", pyvenv_cfg(target).encode())
        prefix = f"lib/python{PYTHON_VERSION}/site-packages"
        for path in sorted(site_packages.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                _add_bytes(tar, f"{prefix}/{path.relative_to(site_packages).as_posix()}", path.read_bytes(),
                           mode=0o755 if path.stat().st_mode & 0o111 else 0o644)
    partial.replace(out)
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, points_to: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, points_to, 0o777, 0
    tar.addfile(info)


def build(cache: Path, target: Target, progress=lambda _: None) -> Path:
    """The packed environment for ``target`` (cached by the digest of what it holds)."""
    requirements = pinned_requirements(target)
    digest = requirements_digest(requirements, target)
    interpreter = hashlib.sha256(target.interpreter.encode()).hexdigest()[:8]
    out = Path(cache) / "emr-environments" / f"environment-{target.machine}-{digest}-{interpreter}.tar.gz"
    if out.is_file():
        return out
    progress(f"installing {len(requirements)} wheels for {target.machine} (once per dependency set)")
    site_packages = install_site_packages(cache, target, requirements)
    progress(f"packing the {target.machine} environment")
    return pack(site_packages, target, out)
