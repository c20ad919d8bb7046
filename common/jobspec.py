"""One declaration per job or stream, and the doors generated from it.

A ``Job`` says what a job takes (its options), what it does (``run``), how its result reads
(``describe``) and what exit code that result means (``exit_code``). From that one declaration come
the ``spark-submit`` door (argparse, ``Job.main``), the CLI door (click, ``cli/``) and EMR's job spec
(``emr/``): adding a job or a flag is one edit, and the doors cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common import edge, secrets
from common.config import Settings, load_settings
from common.errors import ConfigError

COMMON_FLAGS = ("--env", "--config", "--home", "--json", "--verbose")


@dataclass(frozen=True)
class Option:
    """One command-line option. ``parse`` turns the text into a value or raises ConfigError."""

    flag: str                                   # "--run-id"
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    is_flag: bool = False
    choices: tuple[str, ...] = ()
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def convert(self, text: Any) -> Any:
        """The value for ``text`` (already a value for defaults and flags); errors name the option."""
        if text is None or self.is_flag or not isinstance(text, str):
            return text
        if self.choices and text not in self.choices:
            raise ConfigError(f"{self.flag} must be one of {', '.join(self.choices)}, found {text!r}")
        try:
            return self.parse(text)
        except ConfigError as exc:
            raise ConfigError(f"{self.flag}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.flag}: {exc}") from None


def int_between(low: int, high: int) -> Callable[[str], int]:
    """A parser for a whole number in [low, high]; the bound is named when refused."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"expected a whole number, found {text!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"must be between {low} and {high}, found {value}")
        return value

    return parse


def _run_id(text: str) -> str:
    from common.run import assert_run_id

    return assert_run_id(text)


RUN_ID = Option("--run-id", "The run this work belongs to (3-64 letters, digits, '.', '_', '-').", parse=_run_id,
                required=True)


MAX_TRIGGER_SECONDS = 3600   # a continuous stream's longest micro-batch interval


def stream_options(until_caught_up: str, trigger_default: int = 2) -> tuple[Option, ...]:
    """The options every stream takes: its run, catch up and exit, or a processing-time trigger."""
    return (RUN_ID, Option("--until-caught-up", f"{until_caught_up}, then exit.", is_flag=True),
            Option("--trigger-seconds", "Micro-batch interval when running continuously.",
                   parse=int_between(1, MAX_TRIGGER_SECONDS),
                   default=trigger_default, metavar="SECONDS"))


@dataclass(frozen=True)
class Argument:
    """A positional argument (e.g. the product a build job builds)."""

    name: str
    help: str
    choices: tuple[str, ...] = ()


class JobContext:
    """What a job's ``run`` receives: settings, a SparkSession built on first use, a progress printer."""

    def __init__(self, settings: Settings, app_name: str, progress: Callable[[str], None]) -> None:
        self.settings, self.app_name, self.progress = settings, app_name, progress
        self._spark = None

    @property
    def spark(self):
        if self._spark is None:
            from common.spark import build_session

            self.progress("starting Spark")
            self._spark = build_session(self.settings, self.app_name)
        return self._spark


def no_error(_summary: dict) -> int:
    return 0


@dataclass(frozen=True)
class Job:
    name: str                                       # "ingest", "build", "close"
    group: str                                      # CLI group: "stream", "job", or "" for a top-level command
    summary: str                                    # one line, for --help and EMR job names
    run: Callable[[JobContext, dict], dict]         # the work; returns the summary (JSON-able)
    describe: Callable[[dict], str]                 # the summary for people
    options: tuple[Option, ...] = ()
    arguments: tuple[Argument, ...] = ()
    exit_code: Callable[[dict], int] = no_error     # a finished summary's exit code (e.g. FAIL verdict -> 8)
    streaming: bool = False                         # a long-running stream (EMR: STREAMING mode)
    module: str = ""                                # the module to spark-submit (its docstring shows the line)
    options_index: dict[str, Option] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.options_index.update({option.dest: option for option in self.options})

    # ---- the spark-submit door ------------------------------------------------------------------

    def parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=self.name, description=self.summary)
        parser.add_argument("--env", default=None, help="configuration environment: conf/<env>.toml")
        parser.add_argument("--config", default=None, help="configuration file instead of conf/<env>.toml")
        parser.add_argument("--home", default=None, help="state folder (default: $LEDGERLANE_HOME or ./.ledgerlane)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--verbose", action="store_true", help="show Spark's log and stack traces")
        for argument in self.arguments:
            parser.add_argument(argument.name, help=argument.help, choices=argument.choices or None)
        for option in self.options:
            if option.is_flag:
                parser.add_argument(option.flag, action="store_true", help=option.help)
            else:
                parser.add_argument(option.flag, required=option.required, default=option.default,
                                    help=option.help, metavar=option.metavar)
        return parser

    def main(self, argv: Sequence[str] | None = None) -> int:
        """``spark-submit <module> [options]``: parse, run, print; errors become their exit codes."""
        args = vars(self.parser().parse_args(argv))
        common = {key: args.pop(key) for key in ("env", "config", "home", "json", "verbose")}
        return edge.guarded(lambda: self.execute(args, env=common["env"], config=common["config"],
                                                 home=common["home"], as_json=common["json"],
                                                 verbose=common["verbose"]), verbose=common["verbose"])

    # ---- shared by every door -------------------------------------------------------------------

    def values(self, raw: dict) -> dict:
        """Raw option texts -> values; every problem is a ConfigError naming the option (before Spark)."""
        values = {argument.name: raw.get(argument.name) for argument in self.arguments}
        for option in self.options:
            values[option.dest] = option.convert(raw.get(option.dest, option.default))
            if option.required and values[option.dest] is None:
                raise ConfigError(f"{option.flag} is required")
        return values

    def execute(self, raw: dict, *, env: str | None = None, config: str | None = None, home: str | None = None,
                settings: Settings | None = None, as_json: bool = False, verbose: bool = False) -> int:
        values = self.values(raw)
        settings = settings or load_settings(env, path=config, home=home)
        secrets.publish(settings)   # configured Secrets Manager ARNs -> this driver's environment only
        label = values.get("run_id") or "adhoc"
        ctx = JobContext(settings, f"ledgerlane-{self.name}-{label}", edge.progress_printer(as_json))
        summary = self.run(ctx, values)
        print(json.dumps(summary, indent=2, sort_keys=True, default=str) if as_json else self.describe(summary))
        sys.stdout.flush()
        return self.exit_code(summary)
