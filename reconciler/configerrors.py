"""A settings error in reconciler's words: the key, what is wrong, and whether the value came from the environment.

pydantic's wording (``Value error,``, ``Input should be``, ``<class 'pathlib.Path'>``) never
reaches the user: each error type is said in plain words here.  Pure: the environment is
passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from reconciler.configsources import env_source

# pydantic error type -> what the user reads (None: use the rewritten message).
_PLAIN: dict[str, str] = {
    "missing": "missing",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "path_type": "must be a path (a string)",
    "list_type": "must be a list",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "json_invalid": "not valid JSON",
}


def key_of(loc: tuple[int | str, ...]) -> str:
    """``("issuers", 0, "rfc")`` -> ``issuers[0].rfc``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "config"


def plain_message(error: ErrorDetails | Mapping[str, Any]) -> str:
    """One error's message without pydantic's phrasing."""
    kind = str(error.get("type", ""))
    if kind in _PLAIN:
        return _PLAIN[kind]
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = re.sub(r"^Input should be\b", "must be", msg)
    msg = re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1], msg)
    return msg


def describe(error: PydanticValidationError, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The first problem as ``key: what is wrong (got ...)``, and the environment variable it came from."""
    errors = error.errors()
    first = errors[0]
    key = key_of(tuple(first.get("loc", ())))
    msg = plain_message(first)
    msg = msg.removeprefix(f"{key.rsplit('.', 1)[-1]}: ")  # a validator's own message may name the key too
    secret = any(w in key for w in ("password", "token"))
    if "input" in first and first.get("type") not in ("missing", "extra_forbidden") and not secret:
        given = first["input"]
        if isinstance(given, str | int | float | bool) and repr(given) not in msg:
            msg = f"{msg} (got {given!r})"
    dotted = re.sub(r"\[\d+\]", "", key)
    variable = env_source(dotted, environ)
    if variable is not None:
        msg = f"{msg}; the value comes from the environment variable {variable}"
    more = len(errors) - 1
    text = f"{key}: {msg}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    return text, variable
