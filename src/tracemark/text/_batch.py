"""Bulk detection: whole-text tests of many token sequences, with columnar results.

Scoring a corpus (a day of API output, a crawl) asks one question per text, and the
answer is mostly numbers.  :func:`detect_batch` returns a :class:`VerdictBatch`: numpy
columns for the counts and p-values, and a full :class:`Verdict` built only for the
rows a caller looks at.  Building ten thousand verdict objects costs more than the
test itself; a column of p-values costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
from numpy.typing import NDArray

from tracemark._json import freeze
from tracemark._stats import binomial_upper_tail, binomial_upper_tail_array
from tracemark.errors import InvalidInputError
from tracemark.keys import TextKey
from tracemark.text._detect import DEFAULT_ALPHA, _Counts, _Outcome, _verdict, _versions, detect_tokens
from tracemark.text._schemes import WatermarkScheme, load_scheme
from tracemark.text._schemes.synthid import SynthIDScheme
from tracemark.text._units import bulk_scheme, count_distinct_units
from tracemark.text._verdict import Verdict


class VerdictBatch(Sequence[Verdict]):
    """Whole-text verdicts of many sequences: columns of numbers, verdicts on demand.

    ``batch[i]`` is the :class:`Verdict` of sequence ``i`` (the same one
    :func:`detect_tokens` with ``scan_windows=False`` gives); the columns hold the same
    numbers for all sequences at once.
    """

    def __init__(
        self,
        scheme: WatermarkScheme,
        alpha: float,
        *,
        tokens_total: NDArray[np.int64],
        units: NDArray[np.int64],
        distinct: NDArray[np.int64],
        hits: NDArray[np.int64],
        verdicts: list[Verdict] | None = None,
        sequences: Sequence[NDArray[np.int64]] | None = None,
    ) -> None:
        self.scheme = scheme
        self.alpha = alpha
        self.tokens_total = tokens_total
        self.tokens_scored = distinct
        self.tokens_repeated = units - distinct
        self.hits = hits
        self.trials = distinct * scheme.trials_per_unit
        self.p_values = binomial_upper_tail_array(hits, self.trials, scheme.success_probability)
        self.marked = (distinct > 0) & (self.p_values <= alpha)
        self._units = units
        self._verdicts = verdicts  # kept when computed one by one
        # schemes with extra statistics (SynthID's weighted mean): columns in bulk, a verdict on demand
        self._sequences = sequences
        self._on_demand: dict[int, Verdict] = {}
        # Read-only once, so that each verdict holds these members without copying them.
        self._shared = (scheme.key.commitment, freeze(scheme.key.params), freeze(_versions(scheme)))

    @property
    def log10_p_values(self) -> NDArray[np.float64]:
        """``log10`` of the p-values, exact also where the p-value underflows a float."""
        out = np.full(self.p_values.shape, -np.inf)
        np.log10(self.p_values, out=out, where=self.p_values > 1e-290)
        for row in np.nonzero(self.p_values <= 1e-290)[0].tolist():
            out[row] = self._log10_tail(row)
        return out

    def _log10_tail(self, row: int) -> float:
        tail = binomial_upper_tail(int(self.hits[row]), int(self.trials[row]), self.scheme.success_probability)
        return tail.log10_p_value

    def __len__(self) -> int:
        return int(self.p_values.shape[0])

    @overload
    def __getitem__(self, index: int) -> Verdict: ...

    @overload
    def __getitem__(self, index: slice) -> list[Verdict]: ...

    def __getitem__(self, index: int | slice) -> Verdict | list[Verdict]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = range(len(self))[index]
        if self._verdicts is not None:
            return self._verdicts[row]
        if self._sequences is not None:
            if row not in self._on_demand:
                self._on_demand[row] = detect_tokens(np.asarray(self._sequences[row]), self.scheme.key,
                                                     alpha=self.alpha, scan_windows=False)  # fmt: skip
            return self._on_demand[row]
        p_value = float(self.p_values[row])
        log10_p = math.log10(p_value) if p_value > 1e-290 else self._log10_tail(row)
        counts = _Counts(
            tokens_total=int(self.tokens_total[row]),
            tokens_scored=int(self.tokens_scored[row]),
            tokens_repeated=int(self.tokens_repeated[row]),
            tokens_in_prompt=0,
            tokens_unscorable=int(self.tokens_total[row] - self._units[row]),
            hits=int(self.hits[row]),
        )
        outcome = _Outcome(p_value, log10_p, p_value)
        return _verdict(self.scheme, counts, outcome, alpha=self.alpha, shared=self._shared)

    def __iter__(self) -> Iterator[Verdict]:
        for row in range(len(self)):
            yield self[row]


def detect_batch(
    sequences: Sequence[NDArray[np.int64]],
    key: TextKey,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> VerdictBatch:
    """Whole-text, de-duplicated tests of many token sequences (no prompt, no window scan).

    Schemes with a bulk path (the native scheme, KGW ``lefthash`` with width 1) are scored
    with one row sort and one keyed pass per chunk of sequences; SynthID's columns come from
    one pass over all sequences (:meth:`SynthIDScheme.batch_counts`) and a row's full verdict
    (with the weighted mean) is computed when asked for; the others run :func:`detect_tokens`
    per sequence and fill the same columns.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError("alpha must lie strictly between 0 and 1")
    scheme = load_scheme(key)
    tokens_total = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    verdicts: list[Verdict] | None = None
    on_demand = None
    if bulk_scheme(scheme) is not None:
        counted = count_distinct_units(scheme, sequences)
        units, distinct, hits = counted.units, counted.distinct, counted.hits
    elif isinstance(scheme, SynthIDScheme):
        units, distinct, hits = scheme.batch_counts(sequences)
        on_demand = sequences
    else:
        verdicts = [detect_tokens(np.asarray(s), key, alpha=alpha, scan_windows=False) for s in sequences]
        distinct = np.array([v.tokens_scored for v in verdicts], dtype=np.int64)
        units = distinct + np.array([v.tokens_repeated for v in verdicts], dtype=np.int64)
        hits = np.array([v.hits for v in verdicts], dtype=np.int64)
    return VerdictBatch(
        scheme, alpha, tokens_total=tokens_total, units=units, distinct=distinct, hits=hits, verdicts=verdicts,
        sequences=on_demand,
    )  # fmt: skip
