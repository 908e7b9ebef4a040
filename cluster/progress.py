"""What the user sees while kube-up works: one ✓/✗ line per named step, with its duration.

Modelled on kind's ``cli.Status``: on a terminal a spinner shows the running step and is
replaced by ``✓ Creating master VM (12.3s)``; elsewhere (CI, pipes) plain lines are printed,
`` • Creating master VM ...`` when a step starts and the ✓/✗ line when it ends. ``-v`` adds
detail lines. Every step's duration is recorded, so benchmarks can print a per-phase breakdown.

Everything printed goes through a :class:`Redactor`: secrets registered with
:meth:`Progress.add_secret` are masked even if some message carries one by mistake, and
:meth:`Redactor.log_filter` applies the same masking to the ``logging`` module.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.status import Status
from rich.text import Text

MASK = "********"
# Shorter values are not masked: they would blank out ordinary words.
MIN_SECRET_LEN = 6


class Redactor:
    """Masks known secret values in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *values: str) -> None:
        self._secrets.update(v for v in values if len(v) >= MIN_SECRET_LEN)

    def redact(self, text: str) -> str:
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def log_filter(self) -> logging.Filter:
        """A filter for log handlers that masks secrets in each record's final message."""
        redactor = self

        class _Filter(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                message = record.getMessage()
                masked = redactor.redact(message)
                if masked != message:
                    record.msg, record.args = masked, None
                return True

        return _Filter()


@dataclass(frozen=True)
class StepTiming:
    """How long one step took and whether it succeeded (depth > 0: a step inside a step)."""

    name: str
    seconds: float
    ok: bool
    depth: int


class Progress:
    """Step lines and timings for one kube-up/kube-down/kube-push run."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.verbose = verbose
        self.redactor = Redactor()
        self.timings: list[StepTiming] = []
        self._clock = clock
        self._depth = 0
        self._status: Status | None = None

    def add_secret(self, *values: str) -> None:
        """Never print these (the admin password, key PEMs...)."""
        self.redactor.add(*values)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run the body as the step ``name``: ✓ when it returns, ✗ (and re-raise) when it fails."""
        depth, start = self._depth, self._clock()
        spinner = self.console.is_terminal and self._status is None
        if spinner:
            self._status = self.console.status(self._text(name, ""), spinner="dots")
            self._status.start()
        else:
            self._line(depth, " • ", f"{name} ...", "")
        self._depth += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            self._depth -= 1
            elapsed = self._clock() - start
            if spinner and self._status is not None:
                self._status.stop()
                self._status = None
            self.timings.append(StepTiming(name, elapsed, ok, depth))
            mark, style = (" ✓ ", "green") if ok else (" ✗ ", "red")
            self._line(depth, mark, f"{name} ({elapsed:.1f}s)", style)

    def info(self, message: str) -> None:
        """A line always shown (e.g. where the kubeconfig was written)."""
        self._line(self._depth, "   ", message, "")

    def error(self, message: str) -> None:
        """The one red line an expected failure ends with (never wrapped, secrets masked)."""
        self.console.print(
            Text(self.redactor.redact(" ".join(message.split())), style="red"), soft_wrap=True
        )

    def detail(self, message: str) -> None:
        """A line shown only with -v."""
        if self.verbose:
            self._line(self._depth, "   ", message, "dim")

    def timing_report(self) -> str:
        """The recorded steps and their durations, one per line, nested steps indented."""
        width = max((len(t.name) + 2 * t.depth for t in self.timings), default=0)
        lines = []
        for t in self.timings:
            label = "  " * t.depth + t.name
            lines.append(f"{label:<{width}}  {t.seconds:8.1f}s{'' if t.ok else '  FAILED'}")
        return "\n".join(lines)

    def _text(self, message: str, style: str) -> Text:
        # Text, not markup: a step name or message with [brackets] is printed as is.
        return Text(self.redactor.redact(message), style=style)

    def _line(self, depth: int, mark: str, message: str, style: str) -> None:
        line = Text("  " * depth + mark, style=style)
        line.append_text(self._text(message, "" if style in ("green", "red") else style))
        self.console.print(line, soft_wrap=True)
