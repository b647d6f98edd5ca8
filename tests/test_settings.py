"""Daemon settings: precedence, parsing and errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from auditor.app import settings
from auditor.errors import ConfigError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


class TestPrecedence:
    def test_defaults(self) -> None:
        """With nothing set, every option has its documented default."""
        resolved = settings.resolve(_parse([]), env={})
        assert resolved["hubble_server"] == "localhost:4245"
        assert resolved["metrics_address"] == "0.0.0.0:9967"
        assert resolved["store"] == "sqlite:///var/lib/auditor/auditor.db"
        assert resolved["tls"] is False
        assert resolved["history_window"] == 86400.0

    def test_flag_beats_env_beats_file(self, tmp_path: Path) -> None:
        """A flag wins over the environment, which wins over the config file."""
        config = tmp_path / "auditor.yaml"
        config.write_text("hubble-server: file:1\nmetrics_address: 127.0.0.1:1\nlog-level: debug\n")
        env = {"AUDITOR_HUBBLE_SERVER": "env:2", "AUDITOR_METRICS_ADDRESS": "127.0.0.1:2"}
        args = _parse(["--config", str(config), "--hubble-server", "flag:3"])
        resolved = settings.resolve(args, env=env)
        assert resolved["hubble_server"] == "flag:3"
        assert resolved["metrics_address"] == "127.0.0.1:2"
        assert resolved["log_level"] == "debug"

    def test_config_path_from_env(self, tmp_path: Path) -> None:
        """AUDITOR_CONFIG names the config file when --config is absent."""
        config = tmp_path / "c.yaml"
        config.write_text("queue-size: 7\n")
        resolved = settings.resolve(_parse([]), env={"AUDITOR_CONFIG": str(config)})
        assert resolved["queue_size"] == 7

    def test_env_types(self) -> None:
        """Environment strings are converted: booleans, lists and durations."""
        env = {"AUDITOR_TLS": "true", "AUDITOR_MANIFESTS": "a.yaml,b.yaml", "AUDITOR_STALL_TIMEOUT": "2m"}
        resolved = settings.resolve(_parse([]), env=env)
        assert resolved["tls"] is True
        assert resolved["manifests"] == ["a.yaml", "b.yaml"]
        assert resolved["stall_timeout"] == 120.0

    def test_negated_bool_flag_beats_env(self) -> None:
        """--no-tls overrides AUDITOR_TLS=true."""
        resolved = settings.resolve(_parse(["--no-tls"]), env={"AUDITOR_TLS": "true"})
        assert resolved["tls"] is False


class TestErrors:
    def test_bad_env_value_names_variable(self) -> None:
        """A bad environment value names the variable and the option."""
        with pytest.raises(ConfigError, match="AUDITOR_QUEUE_SIZE: invalid value 'lots' for queue-size"):
            settings.resolve(_parse([]), env={"AUDITOR_QUEUE_SIZE": "lots"})

    def test_unknown_file_key_names_file(self, tmp_path: Path) -> None:
        """An unknown key in the config file is an error naming file and key."""
        config = tmp_path / "c.yaml"
        config.write_text("hubble-sever: x\n")
        with pytest.raises(ConfigError, match=r"c\.yaml: unknown setting 'hubble-sever'"):
            settings.resolve(_parse(["--config", str(config)]), env={})

    def test_bad_choice_in_file(self, tmp_path: Path) -> None:
        """A value outside the allowed choices is refused."""
        config = tmp_path / "c.yaml"
        config.write_text("log-format: xml\n")
        with pytest.raises(ConfigError, match="log-format must be one of auto, json, console"):
            settings.resolve(_parse(["--config", str(config)]), env={})

    @pytest.mark.parametrize(
        ("text", "seconds"), [("90s", 90.0), ("5m", 300.0), ("250ms", 0.25), ("7d", 604800.0), ("3", 3.0)]
    )
    def test_durations(self, text: str, seconds: float) -> None:
        """Durations accept ms, s, m, h, d and bare seconds."""
        assert settings.parse_duration(text) == seconds


class TestNonzeroDurations:
    def test_zero_flush_interval_refused(self) -> None:
        """A zero flush interval is refused with the option's name (it would spin the store)."""
        with pytest.raises(ConfigError, match="--flush-interval: flush-interval must be longer than 0"):
            settings.resolve(_parse(["--flush-interval", "0s"]), env={})

    def test_zero_stall_timeout_allowed(self) -> None:
        """A zero stall timeout is allowed: it turns stall detection off."""
        assert settings.resolve(_parse(["--stall-timeout", "0"]), env={})["stall_timeout"] == 0.0
