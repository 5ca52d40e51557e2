"""``reconciler config example|unit|show``: the shipped files, and the effective configuration with its sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from reconciler.cli.output import emit_json, output_options, writing_stdout

# Copies of the top-level config.example.toml and systemd/reconciler.service, shipped in the
# wheel (tests/cli/test_configinfo.py keeps them equal to the originals).
EXAMPLE = "config.example.toml"
UNIT = "reconciler.service"


def shipped(name: str) -> str:
    """The text of a file shipped in ``reconciler/share``."""
    from importlib import resources

    return resources.files("reconciler").joinpath("share", name).read_text(encoding="utf-8")


def _print(text: str) -> None:
    with writing_stdout() as out:
        out.write(text)
        out.flush()


@click.command("example")
def config_example() -> None:
    """Print the example configuration (every key, with its default): > /etc/reconciler/config.toml."""
    _print(shipped(EXAMPLE))


@click.command("unit")
def config_unit() -> None:
    """Print the systemd unit: > /etc/systemd/system/reconciler.service."""
    _print(shipped(UNIT))


@click.command("show")
@output_options
@click.pass_obj
def config_show(ctx: object, as_json: bool) -> None:
    """The effective configuration: every key, secrets masked, and where each value came from."""
    from reconciler.config import load_settings
    from reconciler.configfile import config_path, read_toml
    from reconciler.configsources import entries

    explicit = getattr(ctx, "config", None)
    settings = load_settings(explicit)
    path, required = config_path(explicit)
    data = read_toml(path, required)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    rows = entries(settings, data, os.environ, Path(credentials) if credentials else None)
    if as_json:
        emit_json({"config_file": str(path), "settings": [r.as_dict() for r in rows]})
        return
    from reconciler.redact import one_line

    width = max(len(r.key) for r in rows)
    lines = [f"# config file: {one_line(str(path))}"]
    for r in rows:
        value = "(unset)" if r.value is None else json.dumps(r.value, ensure_ascii=False)
        lines.append(f"{r.key:<{width}}  {one_line(value)}  [{r.source}]")
    _print("\n".join(lines) + "\n")
