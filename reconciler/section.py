"""The base of every settings table: unknown keys refused, empty means unset, true is no number."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

DAY = 86400.0  # seconds: the upper bound of most intervals (bounds keep inf and 2**63 out)
MIB = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        """``key = ""`` in TOML (or an empty env var) means "not set" for optional keys."""
        if isinstance(data, dict):
            return {
                k: None if v == "" and k in cls.model_fields and cls.model_fields[k].default is None else v
                for k, v in data.items()
            }
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """``true`` is not a number (pydantic would read it as 1)."""
        if isinstance(v, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise ValueError("must be a number, not true or false")
        return v
