"""The floor plan holds: shared code <- lanes <- the CLI, local tooling used only by the CLI.

The contracts live in setup.cfg ([importlinter]); docs/architecture.md explains them. The second test
plants a wrong-way import in a copy of the tree and proves the check catches it.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def packages() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config["importlinter"]["root_packages"].split()


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", str(tree / "setup.cfg")], cwd=tree, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, timeout=120)


def copy_of_the_tree(target: Path) -> Path:
    for name in packages():
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.sql", "*.xml"))
    shutil.copy(REPO / "setup.cfg", target / "setup.cfg")
    return target


def test_every_import_points_the_right_way():
    done = lint(REPO)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_import_from_shared_code_into_a_lane_breaks_the_contract(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    (tree / "common" / "wrong_way.py").write_text("from jobs import registry  # noqa: F401\n")

    done = lint(tree)

    assert done.returncode == 1
    assert "common.wrong_way -> jobs.registry" in done.stdout
