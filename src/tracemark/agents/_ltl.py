"""LTLf (linear temporal logic over finite traces) formulas over tool calls, compiled to monitors.

Each position of a trace is one tool call, seen as the set of atoms it makes true: its tool name and
its labels (``side_effect``, ``tainted``, ...).  The semantics are LTLf's (De Giacomo & Vardi, 2013) at
position 0, also for the empty trace: ``X`` is the strong next (there is a next call), ``WX`` the weak
one, ``U`` the strong until, ``R`` its dual.

A :class:`Monitor` is the formula's automaton, built state by state as calls arrive: a state is the
formula still to be met by the rest of the trace (formula progression, Bacchus & Kabanza 1998), kept
in a normal form (flattened, deduplicated conjunctions and disjunctions, constants folded) so that the
reachable states are finitely many, and every transition is cached.  ``false`` means the rule is
broken whatever happens next (the guard denies the call that leads there); :meth:`Monitor.accepts`
says whether the trace may end here.  :func:`holds` is the direct, recursive semantics, kept as the
oracle the monitor is tested against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tracemark.errors import AgentPolicyError


class Formula:
    """An LTLf formula (immutable, hashable)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Const(Formula):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class Atom(Formula):
    name: str

    def __str__(self) -> str:
        return self.name if _IDENT.fullmatch(self.name) and self.name not in _KEYWORDS else repr(self.name)


@dataclass(frozen=True, slots=True)
class Alive(Formula):
    """True at a position that exists (the rest of the trace is not empty); ``X true``."""

    def __str__(self) -> str:
        return "X true"


@dataclass(frozen=True, slots=True)
class Not(Formula):
    operand: Formula

    def __str__(self) -> str:
        return f"!{_wrap(self.operand)}"


@dataclass(frozen=True, slots=True)
class And(Formula):
    operands: frozenset[Formula]

    def __str__(self) -> str:
        return "(" + " & ".join(sorted(str(op) for op in self.operands)) + ")"


@dataclass(frozen=True, slots=True)
class Or(Formula):
    operands: frozenset[Formula]

    def __str__(self) -> str:
        return "(" + " | ".join(sorted(str(op) for op in self.operands)) + ")"


@dataclass(frozen=True, slots=True)
class Next(Formula):
    operand: Formula
    weak: bool = False

    def __str__(self) -> str:
        return f"{'WX' if self.weak else 'X'} {_wrap(self.operand)}"


@dataclass(frozen=True, slots=True)
class Eventually(Formula):
    operand: Formula

    def __str__(self) -> str:
        return f"F {_wrap(self.operand)}"


@dataclass(frozen=True, slots=True)
class Always(Formula):
    operand: Formula

    def __str__(self) -> str:
        return f"G {_wrap(self.operand)}"


@dataclass(frozen=True, slots=True)
class Until(Formula):
    left: Formula
    right: Formula

    def __str__(self) -> str:
        return f"({self.left} U {self.right})"


@dataclass(frozen=True, slots=True)
class Release(Formula):
    left: Formula
    right: Formula

    def __str__(self) -> str:
        return f"({self.left} R {self.right})"


def _wrap(formula: Formula) -> str:
    text = str(formula)
    return text if isinstance(formula, Atom | Const | Not | And | Or | Until | Release) else f"({text})"


TRUE = Const(True)
FALSE = Const(False)
ALIVE = Alive()


# -- construction in normal form ------------------------------------------------------------------
def conj(operands: Iterable[Formula]) -> Formula:
    """A conjunction, flattened, deduplicated and with constants folded."""
    parts: set[Formula] = set()
    for operand in operands:
        if operand == FALSE:
            return FALSE
        if operand == TRUE:
            continue
        if isinstance(operand, And):
            parts.update(operand.operands)
        else:
            parts.add(operand)
    if any(Not(part) in parts for part in parts):
        return FALSE
    if not parts:
        return TRUE
    return next(iter(parts)) if len(parts) == 1 else And(frozenset(parts))


def disj(operands: Iterable[Formula]) -> Formula:
    """A disjunction, flattened, deduplicated and with constants folded."""
    parts: set[Formula] = set()
    for operand in operands:
        if operand == TRUE:
            return TRUE
        if operand == FALSE:
            continue
        if isinstance(operand, Or):
            parts.update(operand.operands)
        else:
            parts.add(operand)
    if any(Not(part) in parts for part in parts):
        return TRUE
    if not parts:
        return FALSE
    return next(iter(parts)) if len(parts) == 1 else Or(frozenset(parts))


def negate(operand: Formula) -> Formula:
    """Negation with constants folded and double negation removed."""
    if isinstance(operand, Const):
        return Const(not operand.value)
    if isinstance(operand, Not):
        return operand.operand
    return Not(operand)


def implies(left: Formula, right: Formula) -> Formula:
    return disj([negate(left), right])


# -- semantics ------------------------------------------------------------------------------------
def _holds_until(left: Formula, right: Formula, trace: Sequence[frozenset[str]], position: int) -> bool:
    for j in range(position, len(trace)):
        if holds(right, trace, j):
            return True
        if not holds(left, trace, j):
            return False
    return False


def _holds_release(left: Formula, right: Formula, trace: Sequence[frozenset[str]], position: int) -> bool:
    for j in range(position, len(trace)):
        if not holds(right, trace, j):
            return False
        if holds(left, trace, j):
            return True
    return True


def holds(formula: Formula, trace: Sequence[frozenset[str]], position: int = 0) -> bool:  # noqa: PLR0911
    """LTLf satisfaction of ``formula`` by ``trace`` at ``position``, by the definition (the oracle)."""
    end = len(trace)
    match formula:
        case Const(value):
            return value
        case Atom(name):
            return position < end and name in trace[position]
        case Alive():
            return position < end
        case Not(operand):
            return not holds(operand, trace, position)
        case And(operands):
            return all(holds(op, trace, position) for op in operands)
        case Or(operands):
            return any(holds(op, trace, position) for op in operands)
        case Next(operand, weak):
            return weak if position + 1 >= end else holds(operand, trace, position + 1)
        case Eventually(operand):
            return any(holds(operand, trace, j) for j in range(position, end))
        case Always(operand):
            return all(holds(operand, trace, j) for j in range(position, end))
        case Until(left, right):
            return _holds_until(left, right, trace, position)
        case Release(left, right):
            return _holds_release(left, right, trace, position)
    raise TypeError(f"not a formula: {formula!r}")


def accepts_empty(formula: Formula) -> bool:  # noqa: PLR0911
    """Whether the empty rest of a trace satisfies ``formula`` (the trace may end here)."""
    match formula:
        case Const(value):
            return value
        case Atom() | Alive() | Eventually() | Until():
            return False
        case Always() | Release():
            return True
        case Next(_, weak):
            return weak
        case Not(operand):
            return not accepts_empty(operand)
        case And(operands):
            return all(accepts_empty(op) for op in operands)
        case Or(operands):
            return any(accepts_empty(op) for op in operands)
    raise TypeError(f"not a formula: {formula!r}")


def progress(formula: Formula, event: frozenset[str]) -> Formula:  # noqa: PLR0911
    """The formula the rest of the trace must satisfy after ``event`` (formula progression for LTLf)."""
    match formula:
        case Const():
            return formula
        case Atom(name):
            return TRUE if name in event else FALSE
        case Alive():
            return TRUE
        case Not(operand):
            return negate(progress(operand, event))
        case And(operands):
            return conj(progress(op, event) for op in operands)
        case Or(operands):
            return disj(progress(op, event) for op in operands)
        case Next(operand, weak):
            # X φ: a next position exists and φ holds there; WX φ: no next position, or φ holds there.
            return disj([negate(ALIVE), operand]) if weak else conj([ALIVE, operand])
        case Eventually(operand):
            return disj([progress(operand, event), formula])
        case Always(operand):
            return conj([progress(operand, event), formula])
        case Until(left, right):
            return disj([progress(right, event), conj([progress(left, event), conj([ALIVE, formula])])])
        case Release(left, right):
            return conj([progress(right, event), disj([progress(left, event), formula])])
    raise TypeError(f"not a formula: {formula!r}")


def atoms(formula: Formula) -> frozenset[str]:
    """The atom names a formula mentions."""
    match formula:
        case Atom(name):
            return frozenset({name})
        case Not(operand) | Next(operand, _) | Eventually(operand) | Always(operand):
            return atoms(operand)
        case And(operands) | Or(operands):
            return frozenset().union(*(atoms(op) for op in operands))
        case Until(left, right) | Release(left, right):
            return atoms(left) | atoms(right)
    return frozenset()


class Monitor:
    """The formula's automaton, determinised on the fly with every transition cached.

    :meth:`step` moves to the next state; :meth:`peek` says where a call would lead without moving.
    The cache is shared by every run of the same formula (:meth:`fresh` starts a new run).
    """

    def __init__(self, formula: Formula, _cache: dict[tuple[Formula, frozenset[str]], Formula] | None = None) -> None:
        self.formula = formula
        self.alphabet = atoms(formula)
        self.state = formula
        self._cache: dict[tuple[Formula, frozenset[str]], Formula] = {} if _cache is None else _cache

    def fresh(self) -> Monitor:
        """A new run from the initial state, sharing the transition cache."""
        return Monitor(self.formula, self._cache)

    def peek(self, event: Iterable[str]) -> Formula:
        """The state a call with these atoms would lead to."""
        letter = self.alphabet.intersection(event)
        key = (self.state, letter)
        target = self._cache.get(key)
        if target is None:
            target = progress(self.state, letter)
            self._cache[key] = target
        return target

    def step(self, event: Iterable[str]) -> Formula:
        """Consume one call; returns the new state."""
        self.state = self.peek(event)
        return self.state

    @property
    def violated(self) -> bool:
        """No continuation can satisfy the formula any more."""
        return self.state == FALSE

    def accepts(self) -> bool:
        """Whether the trace so far satisfies the formula if it ends here."""
        return accepts_empty(self.state)

    @property
    def states_built(self) -> int:
        """How many transitions the shared cache holds."""
        return len(self._cache)


def monitor_accepts(formula: Formula, trace: Sequence[Iterable[str]]) -> bool:
    """Run a fresh monitor over a whole trace and say whether it accepts."""
    monitor = Monitor(formula)
    for event in trace:
        monitor.step(event)
    return monitor.accepts()


# -- parsing -------------------------------------------------------------------------------------
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*")
_TOKEN = re.compile(r"\s*(->|<->|WX|[()!&|]|'[^']*'|\"[^\"]*\"|[A-Za-z_][A-Za-z0-9_.:/-]*)")
_KEYWORDS = frozenset({"X", "WX", "F", "G", "U", "R", "W", "true", "false"})
#: Deepest nesting a formula may have (parsing is recursive).
MAX_DEPTH = 64


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenise(text)
        self.position = 0
        self.depth = 0

    def _tokenise(self, text: str) -> list[str]:
        tokens: list[str] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if match is None:
                raise AgentPolicyError(f"formula {text!r}: unexpected character at {position + 1}")
            tokens.append(match.group(1))
            position = match.end()
        return tokens

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise AgentPolicyError(f"formula {self.text!r}: expected {expected or 'more'}, found {token or 'the end'}")
        self.position += 1
        return token

    def parse(self) -> Formula:
        formula = self.implication()
        if self.peek() is not None:
            raise AgentPolicyError(f"formula {self.text!r}: unexpected {self.peek()!r}")
        return formula

    def implication(self) -> Formula:
        left = self.disjunction()
        token = self.peek()
        if token == "->":
            self.take()
            return implies(left, self.implication())
        if token == "<->":
            self.take()
            right = self.implication()
            return conj([implies(left, right), implies(right, left)])
        return left

    def disjunction(self) -> Formula:
        parts = [self.conjunction()]
        while self.peek() == "|":
            self.take()
            parts.append(self.conjunction())
        return disj(parts) if len(parts) > 1 else parts[0]

    def conjunction(self) -> Formula:
        parts = [self.binary()]
        while self.peek() == "&":
            self.take()
            parts.append(self.binary())
        return conj(parts) if len(parts) > 1 else parts[0]

    def binary(self) -> Formula:
        left = self.unary()
        token = self.peek()
        if token in {"U", "R", "W"}:
            self.take()
            right = self.binary()
            if token == "U":
                return Until(left, right)
            if token == "R":
                return Release(left, right)
            return disj([Until(left, right), Always(left)])  # weak until
        return left

    def unary(self) -> Formula:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise AgentPolicyError(f"formula {self.text!r} is nested deeper than {MAX_DEPTH}")
        try:
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self) -> Formula:  # noqa: PLR0911
        token = self.take()
        if token == "!":
            return negate(self.unary())
        if token in {"X", "WX"}:
            return Next(self.unary(), weak=token == "WX")
        if token == "F":
            return Eventually(self.unary())
        if token == "G":
            return Always(self.unary())
        if token == "(":
            inner = self.implication()
            self.take(")")
            return inner
        if token in {"true", "false"}:
            return Const(token == "true")
        if token[0] in "'\"":
            return Atom(token[1:-1])
        if token in _KEYWORDS or not _IDENT.fullmatch(token):
            raise AgentPolicyError(f"formula {self.text!r}: unexpected {token!r}")
        return Atom(token)


def parse_formula(text: str) -> Formula:
    """Parse ``!``, ``&``, ``|``, ``->``, ``<->``, ``X``, ``WX``, ``F``, ``G``, ``U``, ``R``, ``W`` over tool names.

    A tool name that is also a keyword is quoted: ``'X'``.
    """
    if not isinstance(text, str) or not text.strip():
        raise AgentPolicyError("a temporal formula must be a non-empty string")
    return _Parser(text).parse()


# -- the rule shapes policies name ------------------------------------------------------------------
def before(first: str, then: str) -> Formula:
    """``then`` may only be called after ``first`` has been: ``!then W first``."""
    return disj([Until(negate(Atom(then)), Atom(first)), Always(negate(Atom(then)))])


def never_after(trigger: str, forbidden: str) -> Formula:
    """Once ``trigger`` was called, ``forbidden`` never is: ``G(trigger -> WX G !forbidden)``."""
    return Always(implies(Atom(trigger), Next(Always(negate(Atom(forbidden))), weak=True)))


def at_most(tool: str, count: int) -> Formula:
    """``tool`` is called at most ``count`` times."""
    if not 0 <= count <= MAX_DEPTH:
        raise AgentPolicyError(f"at_most counts from 0 to {MAX_DEPTH}, got {count}")
    atom = Atom(tool)
    formula: Formula = Always(negate(atom))
    for _ in range(count):
        # !tool W (tool & WX formula)
        step = conj([atom, Next(formula, weak=True)])
        formula = disj([Until(negate(atom), step), Always(negate(atom))])
    return formula


def until(forbidden: str, release: str) -> Formula:
    """``forbidden`` is not called until ``release`` has been, and ``release`` must come: ``!forbidden U release``."""
    return Until(negate(Atom(forbidden)), Atom(release))
