"""The README is the front door: every command and every config key is documented there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_origin

import click
import pytest
from pydantic import BaseModel

from reconciler.cli.main import cli
from reconciler.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def commands(group: click.Group, prefix: str = "reconciler") -> list[str]:
    out = []
    for name, command in group.commands.items():
        out.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            out.extend(commands(command, f"{prefix} {name}"))
    return out


@pytest.mark.parametrize("command", commands(cli))
def test_every_cli_command_is_in_the_readme(command: str) -> None:
    assert f"`{command}" in README, f"{command} is not documented in README.md"


def config_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Every key of the settings model by its full dotted name (``mailbox.trust.allowed_senders``)."""
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = get_args(annotation)[0] if get_origin(annotation) is list else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys.extend(config_keys(inner, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def readme_keys() -> set[str]:
    """The dotted keys of README.md's configuration table: a row per table, its keys in backticks."""
    keys = set()
    for row in re.findall(r"^\| `\[{1,2}([\w.]+)\]{1,2}` \| (.*) \|$", README, re.M):
        section, cell = row
        cell = re.sub(r"\([^)]*\)", "", cell)  # the allowed values in parentheses are not keys
        keys.update(f"{section}.{key}" for key in re.findall(r"`(\w+)`", cell))
    return keys


def example_keys() -> set[str]:
    """The dotted keys of config.example.toml, set or commented out, under the table they belong to."""
    keys, section = set(), ""
    for line in (ROOT / "config.example.toml").read_text().splitlines():
        header = re.fullmatch(r"(?:# )?\[{1,2}([\w.]+)\]{1,2}", line.strip())  # a commented-out table counts
        if header:
            section = header[1]
            continue
        key = re.match(r"#? ?(\w+) = ", line)
        if key and section:
            keys.add(f"{section}.{key[1]}")
    return keys


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_documented_by_its_dotted_name(key: str) -> None:
    assert key in readme_keys(), f"{key} is not in README.md's configuration table"
    assert key in example_keys(), f"{key} is not in config.example.toml (set or commented out)"


def test_no_documented_key_is_unknown() -> None:
    known = set(config_keys())
    assert readme_keys() - known == set(), "README.md documents keys the settings do not have"
    assert example_keys() - known == set(), "config.example.toml has keys the settings do not have"


def test_the_key_readers_see_every_table() -> None:
    """One mention of ``password`` no longer satisfies four keys: each is found under its own table."""
    for keys in (readme_keys(), example_keys()):
        assert {"provider.password", "mailbox.password", "issuers.csd_password", "mailbox.trust.verify_dkim"} <= keys
    assert "mailbox.tls" not in readme_keys() and "ledger.path" in example_keys()


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tests/run.sh" in README and "bash tests/run.sh" in ci
