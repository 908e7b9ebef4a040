"""Step lines, timings, verbosity and secret masking of the progress output."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from cluster.progress import MASK, Progress, Redactor


class Ticks:
    """A clock that advances 1.5 s per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


def make(*, tty: bool = False, verbose: bool = False) -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=tty, width=120, color_system=None)
    return Progress(verbose=verbose, console=console, clock=Ticks()), out


def test_plain_output_has_start_and_done_lines_with_durations():
    progress, out = make()
    with progress.step("Creating master VM"):
        pass
    assert out.getvalue().splitlines() == [
        " • Creating master VM ...",
        " ✓ Creating master VM (1.5s)",
    ]


def test_failing_step_is_marked_and_the_error_propagates():
    progress, out = make()
    with pytest.raises(RuntimeError, match="quota"), progress.step("Creating nodes"):
        raise RuntimeError("quota")
    assert out.getvalue().splitlines()[-1] == " ✗ Creating nodes (1.5s)"
    assert progress.timings[-1].ok is False


def test_nested_steps_are_indented_and_timed():
    progress, out = make()
    with progress.step("Bringing up"), progress.step("Staging release"):
        progress.info("uploaded 2 files")
    assert out.getvalue().splitlines() == [
        " • Bringing up ...",
        "   • Staging release ...",
        "       uploaded 2 files",
        "   ✓ Staging release (1.5s)",
        " ✓ Bringing up (4.5s)",
    ]
    assert [(t.name, t.seconds, t.depth) for t in progress.timings] == [
        ("Staging release", 1.5, 1),
        ("Bringing up", 4.5, 0),
    ]
    report = progress.timing_report().splitlines()
    assert report[0].startswith("  Staging release") and report[0].endswith("1.5s")
    assert report[1].startswith("Bringing up") and report[1].endswith("4.5s")


def test_detail_lines_only_with_verbose():
    quiet, quiet_out = make()
    loud, loud_out = make(verbose=True)
    for progress in (quiet, loud):
        progress.detail("polling https://10.240.0.2/healthz")
    assert quiet_out.getvalue() == ""
    assert "polling https://10.240.0.2/healthz" in loud_out.getvalue()


def test_terminal_shows_a_spinner_then_only_the_result_line():
    progress, out = make(tty=True)
    with progress.step("Waiting for nodes"):
        pass
    text = out.getvalue()
    assert " ✓ Waiting for nodes (1.5s)" in text
    assert " • Waiting for nodes ..." not in text


def test_brackets_in_messages_are_not_markup():
    progress, out = make()
    progress.info("node [bold]x[/bold] ready")
    assert "node [bold]x[/bold] ready" in out.getvalue()


def test_registered_secrets_are_masked_in_lines_and_logs():
    progress, out = make(verbose=True)
    secret = "s3cr3t-Password-xyz"
    progress.add_secret(secret, "abc")
    with progress.step(f"using {secret}"):
        progress.detail(f"password={secret}; abc stays")
    assert secret not in out.getvalue()
    assert f"password={MASK}; abc stays" in out.getvalue()

    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.addFilter(progress.redactor.log_filter())
    logger = logging.getLogger("test_progress.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("token %s leaked", secret)
    finally:
        logger.removeHandler(handler)
    assert records.getvalue() == f"token {MASK} leaked\n"


def test_longest_secret_is_masked_whole():
    redactor = Redactor()
    redactor.add("abcdef", "abcdefghij")
    assert redactor.redact("x abcdefghij y abcdef") == f"x {MASK} y {MASK}"
