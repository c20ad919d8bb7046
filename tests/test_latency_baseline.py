"""The latency baseline's door: a bound named before anything starts, the project's errors without a trace."""

from __future__ import annotations

import pytest

from benchmarks import latency_baseline


def argv(tmp_path, *extra: str) -> list[str]:
    return ["ingest", "--config", str(tmp_path / "missing.toml"), "--home", str(tmp_path), "--out", str(tmp_path / "out"),
            *extra]


@pytest.mark.parametrize("seconds", ["0", "3601", "99999999999999999999"])
def test_a_trigger_outside_its_bound_is_refused_naming_the_bound(tmp_path, capsys, seconds):
    with pytest.raises(SystemExit) as stopped:
        latency_baseline.main(argv(tmp_path, "--trigger-seconds", seconds))
    assert stopped.value.code == 2
    assert "between 1 and 3600" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_configuration_is_the_projects_error_without_a_trace(tmp_path, capsys):
    code = latency_baseline.main(argv(tmp_path, "--trigger-seconds", "2"))
    err = capsys.readouterr().err
    assert code not in (0, 1)
    assert err.startswith("error: ") and "missing.toml" in err
    assert "Traceback" not in err
