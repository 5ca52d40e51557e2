"""The one root exception and the error that names the environment variable at fault."""

from __future__ import annotations

from reconciler.errors import ConfigError, EnvironmentConfigError, ReconcilerError


def test_an_environment_error_is_a_config_error_naming_its_variable() -> None:
    error = EnvironmentConfigError("RECONCILER_PROVIDER__TIMEOUT_S: not a number", "RECONCILER_PROVIDER__TIMEOUT_S")
    assert isinstance(error, ConfigError) and isinstance(error, ReconcilerError)
    assert str(error) == "RECONCILER_PROVIDER__TIMEOUT_S: not a number"
    assert error.variable == "RECONCILER_PROVIDER__TIMEOUT_S"
