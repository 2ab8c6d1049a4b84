"""The rotator's settings, parsed from the environment the template sets."""

from __future__ import annotations

import pytest

from function_setup.environment import ConfigurationError
from rotator.settings import RotatorSettings

REQUIRED = {
    "ORIGIN_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:origin-AbCdEf",
    "PATTERN_SET_NAME": "stack-origin-verify",
    "PATTERN_SET_ID": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
}


def test_the_template_environment_parses_with_the_canary_off_when_its_arn_is_empty() -> None:
    # GIVEN the variables as template.yaml sets them (CanaryClientSecretArn left empty)
    environ = {
        **REQUIRED,
        "PATTERN_SET_SCOPE": "REGIONAL",
        "PRUNE_GRACE_SECONDS": "1200",
        "COGNITO_TOKEN_URL": "https://auth.example.com/oauth2/token",
        "CANARY_SECRET_ARN": "",
    }

    # WHEN parsed
    settings = RotatorSettings.from_env(environ)

    # THEN the values are typed, the defaults fill the rest, and the canary is off
    assert settings == RotatorSettings(
        origin_secret_arn=REQUIRED["ORIGIN_SECRET_ARN"],
        pattern_set_name="stack-origin-verify",
        pattern_set_id=REQUIRED["PATTERN_SET_ID"],
        prune_grace_seconds=1200,
        cognito_token_url="https://auth.example.com/oauth2/token",
    )
    assert settings.canary_enabled is False
    assert (settings.lock_max_attempts, settings.value_length) == (5, 64)


def test_the_canary_is_on_when_its_secret_and_the_token_url_are_set() -> None:
    settings = RotatorSettings.from_env(
        {
            **REQUIRED,
            "CANARY_SECRET_ARN": "arn:canary",
            "COGNITO_TOKEN_URL": "http://127.0.0.1:9001/oauth2/token",
        }
    )
    assert settings.canary_enabled is True


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_required_variable_is_named(missing: str) -> None:
    environ = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigurationError, match=f"{missing} is required"):
        RotatorSettings.from_env(environ)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRUNE_GRACE_SECONDS", "soon", "not a valid int"),
        ("PRUNE_GRACE_SECONDS", "-1", "PRUNE_GRACE_SECONDS must be >= 0"),
        ("PATTERN_SET_SCOPE", "GLOBAL", "REGIONAL or CLOUDFRONT"),
        ("VALUE_LENGTH", "32", "VALUE_LENGTH must be between 48 and 198"),
        ("VALUE_LENGTH", "199", "VALUE_LENGTH must be between 48 and 198"),
        ("LOCK_MAX_ATTEMPTS", "0", "LOCK_MAX_ATTEMPTS must be >= 1"),
        ("COGNITO_TOKEN_URL", "http://auth.example.com/oauth2/token", "https://"),
    ],
)
def test_a_bad_value_is_refused_at_cold_start(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RotatorSettings.from_env({**REQUIRED, name: value})
