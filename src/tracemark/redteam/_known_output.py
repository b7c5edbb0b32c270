"""The exact known-output check, in memory: the reference the product's compact index is measured against.

The product form is :class:`tracemark.text.KnownOutputIndex` (stored beside the transparency log, used by
``tracemark text detect --known-outputs`` and the service); this one keeps every (unit, output) pair and
serves ``bench/bench_redteam_spoof.py`` as the exact comparison.

Watermark stealing (Jovanović et al. 2024) learns, from marked texts an attacker collected, which
token follows which context in marked text, and writes new text out of those units.  Every unit
it can push towards green it has seen in some marked output, and the provider holds all of its
marked outputs (the transparency log, or an index built beside it).  So the verifier can ask of
a text the detector accepts: does the mark still hold on the units that no *other* output of the
provider explains?

:meth:`KnownOutputIndex.check` scores the text's distinct units, finds the one logged output that
shares the most units with it (a genuine text, edited or not, is explained by its own output), and
re-tests the text on its *novel* units: those found in no logged output, plus those of that single
best output.  A text pieced together from many outputs keeps few novel green units, and its
novel-unit p-value rises above ``alpha``: it is ``assembled`` from known output, not attributed.  A
genuine text keeps its own units (or, when the index never saw it, nearly all of them: only its
common phrases are shared with other outputs).

The index holds every distinct unit of every output with the output's number, sorted (16 bytes per
(unit, output) pair): 240,000 units for 1,200 outputs of 200 tokens.  It supports schemes that score
one trial per unit (``native``, ``kgw``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracemark._stats import binomial_upper_tail
from tracemark.errors import InvalidInputError
from tracemark.keys import TextKey
from tracemark.text import WatermarkScheme, load_scheme


def _pack(unit_keys: NDArray[np.int64], vocab_size: int) -> NDArray[np.uint64]:
    """One 64-bit integer per unit row: the token ids side by side, or a hash when they do not fit."""
    rows, width = unit_keys.shape
    bits = max(1, int(vocab_size - 1).bit_length())
    if bits * width <= 64:
        packed = np.zeros(rows, dtype=np.uint64)
        for column in range(width):
            packed <<= np.uint64(bits)
            packed |= unit_keys[:, column].astype(np.uint64)
        return packed
    data = np.ascontiguousarray(unit_keys, dtype="<i8")
    return np.array(
        [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") for row in data],
        dtype=np.uint64,
    )


@dataclass(frozen=True)
class KnownOutputCheck:
    """The check of one text: its units, the best-matching logged output, and the novel-unit test."""

    units: int
    green: int
    #: Number of the logged output sharing the most units with the text (None: no unit is known).
    best_output: int | None
    best_output_units: int
    #: Units found in logged outputs other than the best one (left out of the novel-unit test).
    known_elsewhere: int
    novel_units: int
    novel_green: int
    log10_p_novel: float
    #: Units of other logged outputs are in the text, and without them the mark does not hold at ``alpha``.
    assembled: bool

    def to_json(self) -> dict[str, object]:
        return {
            "units": self.units,
            "green": self.green,
            "best_output": self.best_output,
            "best_output_units": self.best_output_units,
            "known_elsewhere": self.known_elsewhere,
            "novel_units": self.novel_units,
            "novel_green": self.novel_green,
            "log10_p_novel": self.log10_p_novel,
            "verdict": "assembled-from-known-output" if self.assembled else "attributed",
        }


class KnownOutputIndex:
    """Every distinct scored unit of the provider's marked outputs, with the output it came from."""

    def __init__(self, scheme: WatermarkScheme, units: NDArray[np.uint64], outputs: NDArray[np.int64], count: int):
        self._scheme = scheme
        self._units = units
        self._outputs = outputs
        self.count = count

    @classmethod
    def build(cls, key: TextKey, outputs: Iterable[Sequence[int] | NDArray[np.int64]]) -> KnownOutputIndex:
        """Index the token ids of ``outputs`` (numbered from 0 in the order given) under ``key``'s scheme."""
        scheme = load_scheme(key)
        if scheme.trials_per_unit != 1:
            raise InvalidInputError(
                f"the known-output check supports schemes with one trial per unit (native, kgw), not {key.scheme}"
            )
        units: list[NDArray[np.uint64]] = []
        numbers: list[NDArray[np.int64]] = []
        count = 0
        for number, ids in enumerate(outputs):
            count = number + 1
            scored = scheme.score(np.asarray(ids, dtype=np.int64))
            distinct = np.unique(_pack(scored.unit_keys, scheme.vocab_size))
            units.append(distinct)
            numbers.append(np.full(distinct.shape[0], number, dtype=np.int64))
        all_units = np.concatenate(units) if units else np.empty(0, dtype=np.uint64)
        all_numbers = np.concatenate(numbers) if numbers else np.empty(0, dtype=np.int64)
        order = np.lexsort((all_numbers, all_units))
        return cls(scheme, all_units[order], all_numbers[order], count)

    def describe(self) -> dict[str, object]:
        return {
            "outputs": self.count,
            "unit_output_pairs": int(self._units.shape[0]),
            "distinct_units": int(np.unique(self._units).shape[0]),
            "bytes": int(self._units.nbytes + self._outputs.nbytes),
            "scheme": self._scheme.key.scheme,
            "context_width": self._scheme.context_width,
        }

    def check(self, token_ids: Sequence[int] | NDArray[np.int64], *, alpha: float) -> KnownOutputCheck:
        """Test ``token_ids`` on the units no logged output but its best match explains (see the module)."""
        if not 0.0 < alpha < 1.0:
            raise InvalidInputError(f"alpha must lie in (0, 1), not {alpha}")
        scored = self._scheme.score(np.asarray(token_ids, dtype=np.int64))
        packed = _pack(scored.unit_keys, self._scheme.vocab_size)
        distinct, first = np.unique(packed, return_index=True)
        green = scored.hits[first] > 0
        lo = np.searchsorted(self._units, distinct, side="left")
        hi = np.searchsorted(self._units, distinct, side="right")
        known = hi > lo
        best: int | None = None
        in_best = np.zeros(distinct.shape[0], dtype=np.bool_)
        if known.any():
            spans = hi - lo
            owner = np.repeat(np.arange(distinct.shape[0]), spans)
            starts = np.repeat(lo, spans)
            offsets = np.arange(owner.shape[0]) - np.repeat(np.cumsum(spans) - spans, spans)
            outputs = self._outputs[starts + offsets]
            best = int(np.argmax(np.bincount(outputs)))
            in_best[owner[outputs == best]] = True
        novel = ~known | in_best
        novel_units = int(novel.sum())
        novel_green = int(green[novel].sum())
        tail = binomial_upper_tail(novel_green, novel_units, self._scheme.success_probability)
        log10_p = min(0.0, tail.log10_p_value)
        return KnownOutputCheck(
            units=int(distinct.shape[0]),
            green=int(green.sum()),
            best_output=best,
            best_output_units=int(in_best.sum()),
            known_elsewhere=int((known & ~in_best).sum()),
            novel_units=novel_units,
            novel_green=novel_green,
            log10_p_novel=log10_p,
            assembled=bool(log10_p > np.log10(alpha) and (known & ~in_best).any()),
        )
