"""JSON value types, and the read-only copies that frozen results hold.

``JSONValue`` / ``JSONObject`` type what serialisation helpers return when the shape is
open (a scheme's parameters, a C2PA manifest, evidence packs); fixed shapes get a
``TypedDict`` instead.  A frozen dataclass must not hold a ``dict`` or ``list`` (its
"frozen" would be a promise the members break), so it stores :func:`freeze`'s copy: a
:class:`FrozenDict` for each object and a tuple for each array.  ``FrozenJSON`` is the
read-only type of such a copy; :func:`thaw` turns it back into plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeAlias, TypeVar, cast

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]
#: Read-only JSON: what a frozen result's open-shaped members are typed as.
FrozenJSON: TypeAlias = JSONScalar | Sequence["FrozenJSON"] | Mapping[str, "FrozenJSON"]
FrozenJSONObject: TypeAlias = Mapping[str, FrozenJSON]

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenDict(Mapping[_K, _V]):
    """An immutable, hashable mapping that keeps insertion order, pickles and deep-copies.

    It is deeply read-only: values that are mappings or lists are stored as
    :class:`FrozenDict` and tuples (see :func:`freeze`).

    :class:`types.MappingProxyType` would do, except that it can be neither pickled nor
    deep-copied, and results are both (multiprocessing, :func:`dataclasses.asdict`).
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data: dict[_K, _V] = {key: cast(_V, _freeze(value)) for key, value in dict(data).items()}

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenDict[_K, _V]], tuple[dict[_K, _V]]]:
        return (type(self), (self._data,))


def _freeze(value: object) -> object:
    if isinstance(value, str | bytes | FrozenDict):
        return value  # a FrozenDict's values are frozen when it is built
    if isinstance(value, Mapping):
        return FrozenDict(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def freeze(mapping: Mapping[_K, _V]) -> FrozenDict[_K, _V]:
    """A deep read-only copy: the mapping and every mapping in it become :class:`FrozenDict`, every list a tuple.

    A :class:`FrozenDict` is returned as it is (it is deeply read-only already).
    """
    return mapping if isinstance(mapping, FrozenDict) else FrozenDict(mapping)


def thaw(value: FrozenJSON, *, finite: bool = False) -> JSONValue:
    """Plain JSON again: mappings become dicts (keys as strings), sequences lists.

    With ``finite``, NaN and infinities become null, as a verdict's strict JSON form needs
    (JSON has no non-finite numbers).
    """
    if isinstance(value, str):
        return value
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): thaw(item, finite=finite) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(item, finite=finite) for item in value]
    return cast(JSONScalar, value)


def thaw_object(value: FrozenJSONObject, *, finite: bool = False) -> JSONObject:
    """:func:`thaw` for an object."""
    return {str(key): thaw(item, finite=finite) for key, item in value.items()}


def as_float(value: FrozenJSON) -> float:
    """A JSON number as a float (``TypeError`` for anything else, booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a JSON number, not {type(value).__name__}")
    return float(value)


def as_mapping(value: FrozenJSON) -> FrozenJSONObject:
    """A JSON object (``TypeError`` for anything else)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, not {type(value).__name__}")
    return value


def as_sequence(value: FrozenJSON) -> Sequence[FrozenJSON]:
    """A JSON array (``TypeError`` for anything else, strings included)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"expected a JSON array, not {type(value).__name__}")
    return value
