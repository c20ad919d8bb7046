"""What every command receives: the global flags, and settings loaded once on first use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import click

from common.config import Settings, load_settings


@dataclass
class AppContext:
    home: str | None
    env_name: str | None
    config_file: str | None
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.env_name, path=self.config_file, home=self.home)
        return self._settings


pass_app = click.make_pass_decorator(AppContext)


def emit(payload: object, as_json: bool, human: str) -> None:
    """Scripts get JSON on stdout; people get the readable line."""
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str) if as_json else human)

