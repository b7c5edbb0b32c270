"""LTLf monitors against the definition: 10,000 random formulas and traces, every prefix, 0 disagreements."""

from __future__ import annotations

import random

import pytest

from tracemark.agents import Monitor, holds, parse_formula
from tracemark.agents._ltl import (
    Always,
    Atom,
    Const,
    Eventually,
    Formula,
    Next,
    Release,
    Until,
    at_most,
    before,
    conj,
    disj,
    negate,
    never_after,
    until,
)
from tracemark.errors import AgentPolicyError

NAMES = ("a", "b", "c")


def _random_formula(rng: random.Random, depth: int) -> Formula:  # noqa: PLR0911
    if depth == 0 or rng.random() < 0.25:
        return Atom(rng.choice(NAMES)) if rng.random() < 0.9 else Const(rng.random() < 0.5)
    left = _random_formula(rng, depth - 1)
    kind = rng.randrange(9)
    if kind == 0:
        return negate(left)
    if kind == 1:
        return conj([left, _random_formula(rng, depth - 1)])
    if kind == 2:
        return disj([left, _random_formula(rng, depth - 1)])
    if kind in {3, 4}:
        return Next(left, weak=kind == 4)
    if kind == 5:
        return Eventually(left)
    if kind == 6:
        return Always(left)
    if kind == 7:
        return Until(left, _random_formula(rng, depth - 1))
    return Release(left, _random_formula(rng, depth - 1))


def test_monitor_agrees_with_the_definition_on_10000_random_traces() -> None:
    rng = random.Random(20261207)
    disagreements = []
    checked = 0
    for _ in range(10_000):
        formula = _random_formula(rng, 4)
        trace = [frozenset(n for n in NAMES if rng.random() < 0.4) for _ in range(rng.randrange(0, 8))]
        monitor = Monitor(formula)
        for length in range(len(trace) + 1):
            if length:
                monitor.step(trace[length - 1])
            checked += 1
            if monitor.accepts() != holds(formula, trace[:length]):
                disagreements.append((str(formula), trace[:length]))
            # "violated" must mean that no continuation (of the lengths tried) can satisfy it.
            if monitor.violated:
                extensions: list[list[frozenset[str]]] = [
                    [],
                    [frozenset()],
                    [frozenset(NAMES)],
                    [frozenset({"a"}), frozenset({"b"})],
                ]
                if any(holds(formula, trace[:length] + ext) for ext in extensions):
                    disagreements.append(("violated early: " + str(formula), trace[:length]))
    assert checked > 30_000
    assert disagreements == []


def test_the_rule_shapes_mean_what_they_say() -> None:
    def run(formula: Formula, calls: list[str]) -> bool:
        return holds(formula, [frozenset({call}) for call in calls])

    assert run(before("get_balance", "send_money"), ["get_balance", "send_money"])
    assert not run(before("get_balance", "send_money"), ["send_money", "get_balance"])
    assert run(before("get_balance", "send_money"), ["read"])
    assert not run(never_after("read_secret", "send_email"), ["read_secret", "x", "send_email"])
    assert run(never_after("read_secret", "send_email"), ["send_email", "read_secret"])
    assert run(at_most("pay", 2), ["pay", "x", "pay"])
    assert not run(at_most("pay", 2), ["pay", "pay", "pay"])
    assert not run(until("send", "confirm"), ["x"])
    assert run(until("send", "confirm"), ["confirm", "send"])


def test_parser_round_trips_and_refuses_bad_formulas() -> None:
    formula = parse_formula("G(read_secret -> WX G !send_email) & (!send_money W get_balance)")
    assert parse_formula(str(formula)) == formula
    assert parse_formula("'X' U b") == Until(Atom("X"), Atom("b"))
    for bad in ["", "G", "a &", "(a", "a b", "U a", "a # b", "(" * 100 + "a" + ")" * 100]:
        with pytest.raises(AgentPolicyError):
            parse_formula(bad)


def test_transitions_are_cached_and_states_stay_few() -> None:
    monitor = Monitor(parse_formula("G(a -> F b) & G(c -> WX G !a)"))
    rng = random.Random(1)
    for _ in range(2000):
        monitor.step({rng.choice(NAMES)})
        if monitor.violated:
            monitor = monitor.fresh()
    assert monitor.states_built < 50
