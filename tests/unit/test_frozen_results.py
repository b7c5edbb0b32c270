"""Frozen dataclasses hold no mutable containers: "frozen" must mean the members cannot change either.

A ``dict``, ``list`` or ``set`` member of a frozen dataclass can still be mutated in place
(``verdict.evidence["x"] = ...``), so the result someone checked is not the result they hold.
Members use tuples, ``Mapping`` (stored as :class:`tracemark._json.FrozenDict`) or nested frozen
dataclasses instead.  This walks every frozen dataclass in every tracemark module.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import pkgutil
import types
import typing
from collections.abc import Iterator

import pytest

import tracemark
import tracemark._json as tracemark_json
from tracemark._json import FrozenDict, FrozenJSONObject, freeze, thaw_object

_MUTABLE = (
    dict,
    list,
    set,
    bytearray,
    collections.defaultdict,
    collections.OrderedDict,
    collections.Counter,
    collections.deque,
    typing.MutableMapping,
    typing.MutableSequence,
    typing.MutableSet,
)
#: Modules that need an optional extra (torch, transformers, c2pa) to import; skipped when it is missing.
_OPTIONAL_IMPORT_ERRORS = (ImportError,)


def _modules() -> Iterator[types.ModuleType]:
    yield tracemark
    for info in pkgutil.walk_packages(tracemark.__path__, "tracemark."):
        if info.name.endswith(".__main__"):
            continue  # running it is what importing it does
        try:
            yield importlib.import_module(info.name)
        except _OPTIONAL_IMPORT_ERRORS:
            continue


def _frozen_dataclasses() -> list[type]:
    found: dict[str, type] = {}
    for module in _modules():
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__.startswith("tracemark")
                and dataclasses.is_dataclass(value)
                and value.__dataclass_params__.frozen  # type: ignore[attr-defined]
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


def _mutable_parts(annotation: object) -> Iterator[object]:
    """Every mutable container type inside ``annotation`` (unions, tuples, mappings, aliases)."""
    origin = typing.get_origin(annotation)
    candidate = origin if origin is not None else annotation
    if isinstance(candidate, type) and issubclass(candidate, _MUTABLE):
        yield annotation
    if origin is typing.Annotated:
        yield from _mutable_parts(typing.get_args(annotation)[0])
        return
    for argument in typing.get_args(annotation):
        if isinstance(argument, typing.ForwardRef | str):
            continue  # a recursive alias names itself: its other members are walked already
        yield from _mutable_parts(argument)


FROZEN = _frozen_dataclasses()


def _cases() -> list[object]:
    return [pytest.param(cls, id=f"{cls.__module__}.{cls.__qualname__}") for cls in FROZEN]


def test_the_walk_finds_the_results() -> None:
    names = {cls.__name__ for cls in FROZEN}
    assert {"TheftVerdict", "Verdict", "ScanReport", "MediaVerdict", "Finding"} <= names


@pytest.mark.parametrize("cls", _cases())
def test_no_frozen_dataclass_member_is_a_mutable_container(cls: type) -> None:
    module = importlib.import_module(cls.__module__)
    # The JSON aliases are recursive: their forward references resolve in tracemark._json.
    hints = typing.get_type_hints(cls, vars(module), vars(tracemark_json))
    mutable = {
        field.name: [str(part) for part in _mutable_parts(hints[field.name])] for field in dataclasses.fields(cls)
    }
    assert {name: parts for name, parts in mutable.items() if parts} == {}


def test_freeze_is_deep_and_thaw_gives_the_json_back() -> None:
    original: FrozenJSONObject = {"a": [1, {"b": [2.5, None]}], "c": "text"}
    frozen = freeze(original)
    assert isinstance(frozen["a"], tuple)
    assert isinstance(frozen["a"][1], FrozenDict)
    assert frozen == {"a": (1, {"b": (2.5, None)}), "c": "text"}
    assert thaw_object(frozen) == original
    assert freeze(frozen) is frozen
    with pytest.raises(TypeError):
        frozen["c"] = "changed"  # type: ignore[index]
