"""The simulator's WSDL, rendered from the ``Cancelacion.wsdl`` package file."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from string import Template
from typing import Literal

AcuseStyle = Literal["base64", "text"]


@cache
def _template() -> Template:
    return Template(files("reconciler.sandbox").joinpath("Cancelacion.wsdl").read_text(encoding="utf-8"))


def acuse_field(style: AcuseStyle) -> str:
    """The status reply's acuse element: ``acuseSat`` base64Binary, or ``acuseSAT`` text as the docs spell it."""
    return "acuseSat" if style == "base64" else "acuseSAT"


def render(base_url: str, acuse_style: AcuseStyle = "base64") -> bytes:
    """The WSDL with every port but the default one at ``base_url`` (``http://host:port``)."""
    return (
        _template()
        .substitute(
            base=base_url.rstrip("/"),
            acuse_field=acuse_field(acuse_style),
            acuse_type="xs:base64Binary" if acuse_style == "base64" else "xs:string",
        )
        .encode("utf-8")
    )
