"""Configuration: unknown keys, wrong types, corrupt files and missing secrets fail with named causes."""

from __future__ import annotations

import pytest

from common.config import load_settings, secret_from_env
from common.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def test_local_profile_loads_with_embedded_defaults(tmp_path):
    settings = load_settings("local", home=tmp_path)

    assert settings.tables_root == str(tmp_path / "tables")
    assert settings.spark.profile == "local"


def test_emr_example_is_valid():
    from common.config import CONF_DIR

    settings = load_settings(path=CONF_DIR / "emr.example.toml", home="/tmp/unused")

    assert settings.spark.profile == "emr"
    assert settings.tables_root.startswith("s3://")


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, '[spark]\nshufle_partitions = 3\n')

    with pytest.raises(ConfigError, match=r"bad\.toml.*unknown key 'spark\.shufle_partitions'"):
        load_settings(path=path, home=tmp_path)


def test_mistyped_value_names_key_and_value(tmp_path):
    path = write(tmp_path, '[kafka]\npartitions = "many"\n')

    with pytest.raises(ConfigError, match=r"key 'kafka\.partitions'.*'many'"):
        load_settings(path=path, home=tmp_path)


def test_corrupt_file_is_named(tmp_path):
    path = write(tmp_path, "[spark\nmaster = ")

    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_settings(path=path, home=tmp_path)


def test_unknown_environment_lists_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"nosuchenv\.toml not found.*local"):
        load_settings("nosuchenv", home=tmp_path)


def test_missing_secret_names_variable_not_value(monkeypatch):
    monkeypatch.delenv("LEDGERLANE_TEST_SECRET", raising=False)

    with pytest.raises(ConfigError, match="export LEDGERLANE_TEST_SECRET"):
        secret_from_env("LEDGERLANE_TEST_SECRET", what="the test secret")


def test_home_resolution_order(tmp_path, monkeypatch):
    from common.home import resolve_home

    monkeypatch.setenv("LEDGERLANE_HOME", str(tmp_path / "from-env"))
    assert resolve_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_home(None) == tmp_path / "from-env"
    monkeypatch.delenv("LEDGERLANE_HOME")
    monkeypatch.chdir(tmp_path)
    assert resolve_home(None) == tmp_path / ".ledgerlane"


def test_the_configuration_reference_is_generated_from_the_model():
    from common.config import REPO_ROOT, reference

    assert (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == reference() + "\n", (
        "regenerate docs/configuration.md from common/config.py (see its first lines)")


def test_the_published_evidence_schema_is_the_models():
    from common.config import REPO_ROOT
    from common.evidence import json_schema

    assert (REPO_ROOT / "docs" / "evidence.schema.json").read_text(encoding="utf-8") == json_schema()
