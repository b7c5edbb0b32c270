"""Model identity from log-probabilities: does the endpoint compute exactly a reference's next-token distribution?

The sample test (:func:`~tracemark.theft.identify`) sees only completions, so it cannot
tell apart two models whose outputs differ by less than its samples can resolve: an int8
copy of a model can move each next-token distribution by 1e-4 nats of KL, which no test on
100 prompts x 16 short completions detects (the benchmark measures the Neyman-Pearson bound).
Many endpoints also return log-probabilities (OpenAI-compatible ``logprobs``; a local model
gives them directly).  Then the question can be asked of the numbers themselves:

* every prompt is read once by the endpoint and by each reference, over the defender's
  tokenizer (the endpoint must split the text into the same tokens);
* at every position the reference's ``compared`` likeliest next tokens are looked up in the
  endpoint's top-``top_k`` list; the position's deviation is the largest ``|log p_E - log p_R|``
  (infinite when such a token is missing from a full top-``top_k`` list);
* a read *deviates* when any of its positions deviates by more than ``tolerance`` nats.

H0 for one reference: the endpoint computes the reference's probabilities up to numeric
noise of at most ``tolerance`` nats, except on at most a share ``outlier_rate`` of reads,
independently across reads (a faithful server may switch kernels or batch shapes between
requests).  Under H0 the number of deviating reads is at most Binomial(reads,
``outlier_rate``), so ``P(Bin >= observed)`` is a valid p-value.  Float32 evaluation order
moves log-probabilities by about 1e-6; 8-bit weights, bfloat16 serving, a fine-tune or a
temperature change move them by 1e-3 to 1 nats, so the default tolerance of 1e-3 nats treats
only float32 reordering as "the same model".  Raise ``tolerance`` to accept lower-precision
serving of the same weights, and know that int8 then looks the same too.

Open-set answers (per-reference Holm, "no match" as an intersection-union test) are the
sample test's.  Reads that fail (the endpoint refused, answered malformed log-probabilities or
split the text into other tokens) are counted; too many make the verdict ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONObject
from tracemark._stats import binomial_upper_tail, clopper_pearson
from tracemark.errors import InvalidInputError, SuspectQueryError
from tracemark.theft._adapters import NextTokenModel
from tracemark.theft._identify import IdentityTest, Tokenize, check_request, identity_verdict
from tracemark.theft._requests import RequestLog, Sink
from tracemark.theft._verdict import TheftVerdict, row_json, sha256_text

H0 = (
    "the endpoint computes a reference's next-token log-probabilities up to the numeric tolerance, except on at "
    "most the outlier share of reads (tested per reference)"
)


@dataclass(frozen=True)
class LogprobIdentityConfig:
    """The pre-registered log-probability identity test."""

    top_k: int = 20
    compared: int = 5
    tolerance: float = 1e-3
    outlier_rate: float = 0.01
    max_read_tokens: int = 64
    alpha: float = 0.05
    min_reads: int = 10
    max_failure_rate: float = 0.1
    #: Stop reading from the endpoint after this many failed requests in all (None: no total cap) ...
    max_failed_requests: int | None = None
    #: ... or this many in a row (a dead or hanging endpoint); the verdict is then inconclusive.
    max_consecutive_failures: int = 10

    def validate(self) -> None:
        """Refuse settings that make the test meaningless."""
        if (self.max_failed_requests is not None and self.max_failed_requests < 1) or self.max_consecutive_failures < 1:
            raise InvalidInputError("max_failed_requests and max_consecutive_failures must be at least 1")
        if not 1 <= self.compared <= self.top_k <= 1000:
            raise InvalidInputError("compared must lie in 1..top_k and top_k in compared..1000")
        if not 0.0 < self.tolerance < 100.0:
            raise InvalidInputError("tolerance must be a positive number of nats")
        if not 0.0 < self.outlier_rate < 1.0 or not 0.0 < self.alpha < 1.0:
            raise InvalidInputError("outlier_rate and alpha must lie strictly between 0 and 1")
        if not 1 <= self.max_read_tokens <= 100_000:
            raise InvalidInputError("max_read_tokens must lie in 1..100000")
        if self.min_reads < 1 or not 0.0 <= self.max_failure_rate <= 1.0:
            raise InvalidInputError("min_reads must be positive and max_failure_rate in [0, 1]")


def position_deviations(
    endpoint: tuple[NDArray[np.int64], NDArray[np.float64]],
    reference: tuple[NDArray[np.int64], NDArray[np.float64]],
    compared: int,
) -> NDArray[np.float64]:
    """Per position, the largest ``|log p_E(v) - log p_R(v)|`` over the reference's ``compared`` likeliest tokens.

    Both arguments are ``top_tokens`` answers for the same token ids.  A compared token
    missing from the endpoint's list counts as an infinite deviation when that list is full,
    and is skipped when the list has empty slots (the adapter dropped tokens it could not
    map).  Positions with nothing to compare are NaN.
    """
    e_ids, e_probs = endpoint
    r_ids, r_probs = reference[0][:, :compared], reference[1][:, :compared]
    if e_ids.shape[0] != r_ids.shape[0]:
        raise SuspectQueryError("the endpoint and the reference read different numbers of positions")
    matches = (e_ids[:, None, :] == r_ids[:, :, None]) & (e_probs[:, None, :] > 0.0)
    found = matches.any(axis=2)
    e_at = np.where(matches, e_probs[:, None, :], 0.0).sum(axis=2)
    full = np.all(e_probs > 0.0, axis=1)[:, None]
    with np.errstate(divide="ignore"):
        gap = np.abs(np.log(np.where(found, e_at, 1.0)) - np.log(np.where(r_probs > 0.0, r_probs, 1.0)))
    deviation = np.where(found, gap, np.where(full, np.inf, np.nan))
    deviation = np.where(r_probs > 0.0, deviation, np.nan)
    scored = ~np.all(np.isnan(deviation), axis=1)
    result = np.full(deviation.shape[0], np.nan)
    result[scored] = np.nanmax(deviation[scored], axis=1)
    return result


#: One read's answer: the ``top_tokens`` ids and probabilities, or None when the read failed.
_Answer = tuple[NDArray[np.int64], NDArray[np.float64]] | None


@dataclass(frozen=True)
class LogprobRow:
    """One reference in a log-probability identity verdict (a ``details[]`` row, before the open-set members).

    JSON (:meth:`to_json`): ``reference``, ``model``, ``p_value``, ``log10_p_value``,
    ``reads_scored``, ``reads_deviating``, ``deviating_share`` and its Clopper-Pearson
    ``deviating_share_ci95`` (``[low, high]``), ``positions_scored``, ``positions_over_tolerance``,
    ``positions_missing_token``, ``median_abs_logprob_gap``, ``q99_abs_logprob_gap`` (null
    when no finite gap was seen) and ``failed_reads``.
    """

    reference: str
    model: str
    p_value: float
    log10_p_value: float
    reads_scored: int
    reads_deviating: int
    deviating_share: float | None
    deviating_share_ci95: tuple[float, float]
    positions_scored: int
    positions_over_tolerance: int
    positions_missing_token: int
    median_abs_logprob_gap: float | None
    q99_abs_logprob_gap: float | None
    failed_reads: int

    def to_json(self) -> JSONObject:
        """The row's JSON object (fields in order)."""
        return row_json(self)


def _describe(answer: tuple[NDArray[np.int64], NDArray[np.float64]]) -> JSONObject:
    """A read's answer for the transcript: the top-k ids and probabilities at every position."""
    ids, probs = answer
    return {"top_ids": np.asarray(ids).tolist(), "top_probs": np.asarray(probs, dtype=np.float64).tolist()}


def _read(model: NextTokenModel, reads: list[NDArray[np.int64]], top_k: int, log: RequestLog) -> list[_Answer]:
    """Every read's top-``top_k`` answer, or None where the query failed (or the log's cap stopped it)."""
    answers: list[_Answer] = []
    for index, ids in enumerate(reads):

        def send(ids: NDArray[np.int64] = ids) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
            got = model.top_tokens(ids, top_k)
            token_ids, probs = np.asarray(got[0], np.int64), np.asarray(got[1], np.float64)
            ok = token_ids.ndim == 2 and token_ids.shape == probs.shape and token_ids.shape[0] == len(ids)
            if not ok or not bool(np.all(np.isfinite(probs))):
                raise SuspectQueryError("malformed top-k answer (shape or non-finite probabilities)")
            return token_ids, probs

        request: JSONObject = {"read_index": index, "token_ids": [int(t) for t in ids], "top_k": top_k}
        answers.append(log.call(request, send, _describe))
    return answers


def identify_logprobs(
    endpoint: NextTokenModel,
    references: Mapping[str, NextTokenModel],
    prompts: Sequence[str],
    tokenize: Tokenize,
    config: LogprobIdentityConfig | None = None,
    *,
    on_request: Sink | None = None,
) -> TheftVerdict:
    """Test the endpoint's log-probabilities against each reference's; see the module docstring.

    ``on_request`` receives every request's record (endpoint and references) as it completes; the
    endpoint is no longer read after ``max_failed_requests`` failures (the verdict is inconclusive).
    """
    config = config or LogprobIdentityConfig()
    config.validate()
    check_request(references, prompts)
    reads = [np.asarray(list(tokenize(p))[: config.max_read_tokens], dtype=np.int64) for p in prompts]
    if any(len(r) == 0 for r in reads):
        raise InvalidInputError("a prompt tokenizes to nothing")
    blockers: list[str] = []
    if len(reads) < config.min_reads:
        blockers.append(f"too few prompts: {len(reads)}, the minimum is {config.min_reads}")
    endpoint_log = RequestLog("endpoint", config.max_failed_requests, on_request, config.max_consecutive_failures)
    target = _read(endpoint, reads, config.top_k, endpoint_log)
    stopped = endpoint_log.blocker()
    if stopped is not None:
        blockers.append(stopped)
    failed = sum(1 for a in target if a is None)
    if failed > config.max_failure_rate * len(reads):
        blockers.append(f"{failed} of {len(reads)} endpoint reads failed (refused, malformed, or other tokens)")
    rows: list[LogprobRow] = []
    for name, reference in sorted(references.items()):
        answers = _read(reference, reads, config.top_k, RequestLog(f"reference:{name}", None, on_request))
        ref_failed = sum(1 for a in answers if a is None)
        if ref_failed > config.max_failure_rate * len(reads):
            blockers.append(f"{ref_failed} of {len(reads)} reads of reference {name} failed")
        per_read: list[float] = []
        positions: list[NDArray[np.float64]] = []
        for mine, theirs in zip(target, answers, strict=True):
            if mine is None or theirs is None:
                continue
            deviations = position_deviations(mine, theirs, config.compared)
            deviations = deviations[~np.isnan(deviations)]
            if deviations.size:
                positions.append(deviations)
                per_read.append(float(deviations.max()))
        scored = len(per_read)
        deviating = sum(1 for d in per_read if d > config.tolerance)
        tail = binomial_upper_tail(deviating, scored, config.outlier_rate)
        pooled = np.concatenate(positions) if positions else np.zeros(0)
        finite = pooled[np.isfinite(pooled)]
        low, high = clopper_pearson(deviating, scored)
        rows.append(
            LogprobRow(
                reference=name,
                model=reference.name,
                p_value=tail.p_value,
                log10_p_value=tail.log10_p_value,
                reads_scored=scored,
                reads_deviating=deviating,
                deviating_share=deviating / scored if scored else None,
                deviating_share_ci95=(low, high),
                positions_scored=int(pooled.size),
                positions_over_tolerance=int(np.count_nonzero(pooled > config.tolerance)),
                positions_missing_token=int(np.count_nonzero(np.isinf(pooled))),
                median_abs_logprob_gap=float(np.median(finite)) if finite.size else None,
                q99_abs_logprob_gap=float(np.quantile(finite, 0.99)) if finite.size else None,
                failed_reads=ref_failed,
            )
        )
        if scored < config.min_reads:
            blockers.append(f"only {scored} reads could be compared with reference {name}")
    closest = min(rows, key=lambda r: r.deviating_share if r.deviating_share is not None else 2.0)
    method = IdentityTest(
        test="identify/logprobs",
        h0=H0,
        p_value_method=f"exact binomial tail of deviating reads at outlier rate {config.outlier_rate}",
        statistic_name="deviating-reads",
    )
    return identity_verdict(
        method,
        rows=rows,
        alpha=config.alpha,
        blockers=blockers,
        effect={
            "name": f"share of reads deviating by more than {config.tolerance} nats (closest reference)",
            "reference": closest.reference,
            "estimate": closest.deviating_share,
            "ci_low": closest.deviating_share_ci95[0],
            "ci_high": closest.deviating_share_ci95[1],
            "median_abs_logprob_gap": closest.median_abs_logprob_gap,
        },
        counts={
            "prompts": len(prompts),
            "read_tokens": int(sum(len(r) for r in reads)),
            "endpoint_failed_reads": failed,
            "endpoint_requests": len(endpoint_log.records),
            "endpoint_requests_not_sent": endpoint_log.not_sent,
        },
        evidence={
            "endpoint": endpoint.name,
            "prompt_sha256": [sha256_text(p) for p in prompts],
            "config": asdict(config),
        },
    )
