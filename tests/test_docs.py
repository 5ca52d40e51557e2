"""The README is the front door: every command and every config key is documented there."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import click
import pytest

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


def config_keys() -> list[str]:
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if typing.get_origin(model) is list:  # [[issuers]], [[webhooks]], [[hooks]]
            (model,) = typing.get_args(model)
        for key in model.model_fields:  # type: ignore[union-attr]
            if key == "trust":
                from reconciler.config import TrustSettings

                keys.extend(f"mailbox.trust.{k}" for k in TrustSettings.model_fields)
            else:
                keys.append(f"{section}.{key}")
    return keys


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_in_the_readme(key: str) -> None:
    *_, name = key.split(".")
    assert re.search(rf"`{re.escape(name)}`", README), f"{key} is not documented in README.md"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tests/run.sh" in README and "bash tests/run.sh" in ci
