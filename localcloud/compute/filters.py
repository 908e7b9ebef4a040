"""GCE list ``filter`` expressions, evaluated against stored documents.

Supported: ``field = value`` (``*`` wildcards), ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``:``
(``:*`` tests presence, otherwise a case-insensitive substring), the older ``field eq REGEX``
/ ``field ne REGEX`` (the RE2 pattern must match the whole value), parenthesised terms, implicit
AND, explicit ``AND``/``OR``/``NOT``. Fields are dotted paths (``labels.role``,
``networkInterfaces.networkIP``); a path through a list matches if any element matches.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from localcloud.errors import invalid

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:(?P<paren>[()])|(?P<op>!=|<=|>=|=|<|>|:)|(?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<word>[^\s()=!<>:"']+))"""
)
_WORD_OPS = {"eq", "ne"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise invalid(f"Invalid list filter expression '{text}'.")
        pos = m.end()
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
    return out


def values_at(doc: Any, path: list[str]) -> list[Any]:
    """Every value reached by ``path``, descending through lists."""
    if isinstance(doc, list):
        return [v for item in doc for v in values_at(item, path)]
    if not path:
        return [doc]
    if not isinstance(doc, dict) or path[0] not in doc:
        return []
    return values_at(doc[path[0]], path[1:])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(op: str, actual: Any, wanted: str) -> bool:
    text = _text(actual)
    if op == "=":
        return fnmatch.fnmatchcase(text, wanted) if "*" in wanted else text == wanted
    if op == "!=":
        return not _compare("=", actual, wanted)
    if op == ":":
        return wanted == "*" or wanted.lower() in text.lower()
    if op in ("eq", "ne"):
        try:
            hit = re.fullmatch(wanted, text) is not None
        except re.error as err:
            raise invalid(f"Invalid regular expression '{wanted}' in list filter: {err}") from None
        return hit if op == "eq" else not hit
    try:
        left, right = float(text), float(wanted)
    except ValueError:
        left, right = text, wanted  # type: ignore[assignment]
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.pos = 0

    def fail(self) -> Exception:
        return invalid(f"Invalid list filter expression '{self.text}'.")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.fail()
        self.pos += 1
        return tok

    def parse(self) -> Predicate:
        pred = self.disjunction()
        if self.peek() is not None:
            raise self.fail()
        return pred

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == ("word", "OR"):
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda d: any(t(d) for t in terms))

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while (tok := self.peek()) is not None and tok != ("paren", ")") and tok != ("word", "OR"):
            if tok == ("word", "AND"):
                self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda d: all(t(d) for t in terms))

    def unary(self) -> Predicate:
        if self.peek() == ("word", "NOT"):
            self.take()
            inner = self.unary()
            return lambda d: not inner(d)
        if self.peek() == ("paren", "("):
            self.take()
            inner = self.disjunction()
            if self.take() != ("paren", ")"):
                raise self.fail()
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, field = self.take()
        if kind != "word":
            raise self.fail()
        kind, op = self.take()
        if not (kind == "op" or (kind == "word" and op in _WORD_OPS)):
            raise self.fail()
        kind, wanted = self.take()
        if kind not in ("word", "quoted"):
            raise self.fail()
        path = field.split(".")
        negative = op in ("!=", "ne")

        def pred(doc: dict[str, Any]) -> bool:
            found = values_at(doc, path)
            if negative:
                return all(_compare(op, v, wanted) for v in found)
            return any(_compare(op, v, wanted) for v in found)

        return pred


def compile_filter(text: str | None) -> Predicate:
    """A predicate for ``text``; an empty filter matches everything."""
    if not text or not text.strip():
        return lambda _doc: True
    return _Parser(text).parse()
