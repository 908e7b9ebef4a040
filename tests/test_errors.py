"""The error hierarchy: exit codes the CLI and README rely on, and one-line messages."""

import pytest

from cluster import errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.ConfigError, 2),
        (errors.PrereqError, 3),
        (errors.CloudError, 4),
        (errors.ClusterTimeout, 5),
        (errors.ValidationFailed, 6),
    ],
)
def test_exit_codes_match_the_documented_table(cls, code):
    error = cls("something is wrong")
    assert isinstance(error, errors.KubeUpError)
    assert error.exit_code == code
    assert f"{code}     {cls.__name__}" in errors.__doc__


def test_messages_are_one_line_with_the_fix_appended():
    error = errors.CloudError("quota CPUS exceeded\n(limit 8)", resource="instance a", fix="ask")
    assert str(error) == "instance a: quota CPUS exceeded (limit 8); ask"
    assert error.resource == "instance a"


def test_for_setting_shows_a_short_escaped_value():
    error = errors.ConfigError.for_setting("ZONE", "x\n" * 50, "expected a zone", source="env")
    text = str(error)
    assert "\n" not in text
    assert text.startswith("ZONE='x\\nx\\n") and "... (from env)" in text
    assert text.endswith("(from env) is not allowed: expected a zone")
