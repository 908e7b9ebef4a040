"""Book-keeping shared by the crash and fault matrices: outcomes per row, and the printed table.

A matrix records one :class:`Outcome` per run it judged and prints them grouped (by phase, by
fault kind) as a plain text table, so ``pytest -s`` shows the figures that
``docs/reliability.md`` reports. Problems are collected rather than asserted one at a time: a
sweep reports every point that broke, not just the first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tests.reliability_runner import RunResult

DOCUMENTED_EXIT_CODES = {2, 3, 4, 5, 6}


@dataclass
class Outcome:
    """One row's result: which group it counts in and the columns it ticks."""

    group: str
    ticks: Counter[str] = field(default_factory=Counter)


@dataclass
class Matrix:
    title: str
    columns: tuple[str, ...]
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, group: str, **ticks: int) -> None:
        """One row in ``group``; each tick a flag (bool) or a count."""
        unknown = set(ticks) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown columns {unknown}")
        self.outcomes.append(Outcome(group, Counter({k: int(v) for k, v in ticks.items()})))

    def fail(self, where: str, why: str) -> None:
        self.problems.append(f"{where}: {why}")

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for outcome in self.outcomes:
            total.update(outcome.ticks)
        return total

    def table(self) -> str:
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        rows: Counter[str] = Counter()
        for outcome in self.outcomes:
            groups[outcome.group].update(outcome.ticks)
            rows[outcome.group] += 1
        header = ("group", "runs", *self.columns)
        lines = [(g, str(rows[g]), *(str(c[k]) for k in self.columns)) for g, c in groups.items()]
        totals = self.totals()
        lines.append(("total", str(len(self.outcomes)), *(str(totals[k]) for k in self.columns)))
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
        render = [
            "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
            for row in [header, *lines]
        ]
        render.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return f"{self.title}\n" + "\n".join(render)


def clean_failure(result: RunResult) -> str | None:
    """None if ``result`` is a clean failure (a documented exit code, one error line naming the
    command, no traceback); else what is wrong with it."""
    if result.timed_out:
        return f"hung (killed after {result.seconds:.0f}s)"
    if result.returncode not in DOCUMENTED_EXIT_CODES:
        return f"exit {result.returncode}: {result.last_line}"
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        return "printed a traceback"
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith(f"{result.command}: ")]
    if len(errors) != 1 or errors[0] != result.last_line:
        return f"expected one final error line, got {errors}"
    return None


def current_phase(result: RunResult) -> str:
    """The step a run was in when it ended (its last started step without a ✓), or the step
    it had just finished."""
    started: list[str] = []
    finished = ""
    for line in result.stderr.splitlines():
        text = line.strip()
        if text.startswith("• ") and text.endswith(" ..."):
            started.append(text[2:-4])
        elif text.startswith("✓ ") and started:
            finished = started.pop()
    if started:
        return started[-1]
    return f"just after: {finished}" if finished else "before the first step"
