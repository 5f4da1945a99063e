"""Label selectors for `GET /v2/apps?label=...` (Marathon's LabelSelectorParsers).

    query     := [selector {"," selector}]        comma means AND; empty matches everything
    selector  := term                              the label exists
               | term ("==" | "!=") term           the label exists and equals / differs
               | term ("in" | "notin") "(" [term {"," term}] ")"
    term      := one or more of  A-Z a-z 0-9 - _ .  or a backslash-escaped character

Whitespace between tokens is ignored; inside a term it must be escaped (`three\\ is\\ cool`).
As in Marathon, every form but existence also requires the label to be present, so
`tier!=web` and `tier notin (web)` do not match an app without a `tier` label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TERM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class SelectorSyntaxError(ValueError):
    """The selector text does not parse; the message names the offending part (API: 400)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str                       # "exists", "==", "!=", "in", "notin"
    values: tuple[str, ...] = ()

    def __call__(self, labels: Mapping[str, str]) -> bool:
        if self.key not in labels:
            return False
        value = labels[self.key]
        if self.op == "exists":
            return True
        if self.op in ("==", "in"):
            return value in self.values
        return value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """All requirements at once (AND). Callable on an app's labels."""

    requirements: tuple[Requirement, ...]

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return all(r(labels) for r in self.requirements)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> SelectorSyntaxError:
        self.skip_space()
        found = repr(self.text[self.pos:self.pos + 12]) if self.pos < len(self.text) else "end of input"
        return SelectorSyntaxError(
            f"Can not parse label selector {self.text!r}: expected {expected} at position {self.pos}, found {found}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at(self, token: str) -> bool:
        self.skip_space()
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        if not self.at(token):
            raise self.fail(f"'{token}'")
        self.pos += len(token)

    def term(self, what: str) -> str:
        self.skip_space()
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    raise SelectorSyntaxError(
                        f"Can not parse label selector {self.text!r}: dangling backslash at position {self.pos}")
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif ch in _TERM_CHARS:
                out.append(ch)
                self.pos += 1
            else:
                break
        if not out:
            raise self.fail(what)
        return "".join(out)

    def set_op(self) -> str | None:
        """'in' or 'notin' when followed by '(' (after optional space), else None."""
        for op in ("notin", "in"):
            if self.at(op):
                rest = self.text[self.pos + len(op):].lstrip()
                if rest.startswith("("):
                    self.pos += len(op)
                    return op
                self.pos += len(op)
                raise self.fail(f"'(' after '{op}'")
        return None

    def selector(self) -> Requirement:
        key = self.term("a label name")
        for op in ("==", "!="):
            if self.at(op):
                self.pos += 2
                return Requirement(key, op, (self.term(f"a value after '{op}'"),))
        op = self.set_op()
        if op is None:
            return Requirement(key, "exists")
        self.expect("(")
        values: list[str] = []
        if not self.at(")"):
            values.append(self.term("a value in the set"))
            while self.at(","):
                self.pos += 1
                values.append(self.term("a value in the set"))
        self.expect(")")
        return Requirement(key, op, tuple(values))

    def query(self) -> LabelSelector:
        requirements: list[Requirement] = []
        self.skip_space()
        if self.pos < len(self.text):
            requirements.append(self.selector())
            while self.at(","):
                self.pos += 1
                requirements.append(self.selector())
            self.skip_space()
            if self.pos < len(self.text):
                bare = requirements[-1].op == "exists"
                raise self.fail("',', '==', '!=', 'in' or 'notin'" if bare else "',' or the end")
        return LabelSelector(tuple(requirements))


def parse_label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Parse a selector; the result answers whether an app's labels match it."""
    return _Parser(text).query()
