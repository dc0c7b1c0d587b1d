"""Settings flow one way: command line > pipeline.toml > defaults."""

from pathlib import Path

import pytest

from spoolscp.settings import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_shipped_pipeline_toml_equals_the_defaults():
    shipped = load_settings(str(REPO / "pipeline.toml"))
    defaults = Settings()
    for name in Settings.__dataclass_fields__:
        if name != "config_file":
            assert getattr(shipped, name) == getattr(defaults, name), name


def test_command_line_wins_over_file(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[state]\ndir = "st"\n[workers]\ncount = 5\n')
    s = load_settings(str(cfg), workers=3)
    assert s.workers == 3
    assert s.state_dir == tmp_path / "st"  # relative to the file, not the cwd
    assert s.jobs_db == tmp_path / "st" / "jobs.db"


def test_environment_variable_finds_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[retry]\nretries = 7\n")
    monkeypatch.setenv("SPOOLSCP_CONFIG", str(cfg))
    monkeypatch.chdir(tmp_path)
    assert load_settings(None).retries == 7


@pytest.mark.parametrize(
    "text, message",
    [
        ("[queue]\nbakend = 'sqlite'\n", "unknown setting [queue] bakend"),
        ("[workers\n", "cannot read configuration file"),
        ("workers = 3\n", "must be a [section]"),
        ("[workers]\ncount = true\n", "must be a number"),
        ("[state]\nspool_in_db_max = '64k'\n", "must be a number"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path, text, message):
    cfg = tmp_path / "p.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings(str(cfg))
