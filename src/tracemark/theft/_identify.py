"""Model identity: is the model behind an endpoint exactly one of our reference models?

Model equality testing (Gao, Liang and Guestrin, ICLR 2025): sample completions of the
same prompts from the endpoint and from a reference, and compare the two joint
distributions of (prompt, completion) with the maximum mean discrepancy under a Hamming
kernel, ``k((p, x), (p', y)) = [p = p'] * (1/L) * #{l : x_l = y_l}`` over the first
``L`` tokens (shorter completions are padded with a marker that only matches itself).

The kernel is zero across prompts, so the biased MMD² is the mean over prompts of
``l^T K_p l`` with ``l = +1/n`` for endpoint samples and ``-1/m`` for reference samples.
Under H0 (both draw from one distribution) the samples of a prompt are exchangeable,
so shuffling the labels within each prompt gives an exact permutation test; its
p-value ``(1 + #{permuted >= observed}) / (1 + B)`` is valid for any ``B`` (it cannot go
below ``1 / (1 + B)``).

With several references the answer is open-set:

* per reference, Holm-adjusted p-values say which references the endpoint is still
  consistent with (failing to reject is not proof of identity: power depends on the
  budget);
* "no match" (the endpoint is none of them) is an intersection-union test: it rejects
  when every reference is rejected, and its p-value is the largest unadjusted one.

Samples alone never say an endpoint *is* a reference: a fine-tuned or quantised copy moves the
output distribution by less than any affordable sample budget resolves (see docs/theft.md), so a
reference the samples do not reject is reported as ``indistinguishable-from:NAME``, and the
verdict's ``statistic.headline`` says so in words; the log-probability test
(:mod:`tracemark.theft._identify_logprobs`) is the one that can answer ``consistent-with:NAME``.

Against a real endpoint every request is recorded with its time and answer
(:class:`~tracemark.theft._requests.RequestLog`, handed to ``on_request`` as it happens), and the
run stops sending after ``max_failed_requests`` failed requests; a stopped run is inconclusive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONObject
from tracemark.errors import InvalidInputError
from tracemark.theft._adapters import TextModel
from tracemark.theft._requests import RequestLog, Sink
from tracemark.theft._verdict import Decision, TheftVerdict, decide, library_versions, row_json, sha256_text

QUESTION = "Is the model behind this endpoint exactly one of the reference models?"
H0 = "the endpoint samples from the same output distribution as a reference model (tested per reference)"
#: Token id used to pad completions shorter than the compared length.
PAD = -1
#: Seeds of reference samples start here, so that no reference sample reuses an endpoint seed.
REFERENCE_SEED_OFFSET = 1 << 30

Tokenize = Callable[[str], Sequence[int]]


def utf8_bytes(text: str) -> list[int]:
    """The default tokenisation for identity tests: UTF-8 bytes (needs no tokenizer files)."""
    return list(text.encode("utf-8"))


@dataclass(frozen=True)
class IdentityConfig:
    """The pre-registered identity test."""

    samples_per_prompt: int = 16
    completion_tokens: int = 32
    max_new_tokens: int = 32
    permutations: int = 1000
    alpha: float = 0.05
    min_prompts: int = 10
    max_failure_rate: float = 0.1
    seed: int = 0
    #: Stop querying the endpoint after this many failed requests in all (None: no total cap) ...
    max_failed_requests: int | None = None
    #: ... or this many in a row (a dead or hanging endpoint); the verdict is then inconclusive.
    max_consecutive_failures: int = 10

    def validate(self) -> None:
        """Refuse settings that make the test meaningless."""
        if (self.max_failed_requests is not None and self.max_failed_requests < 1) or self.max_consecutive_failures < 1:
            raise InvalidInputError("max_failed_requests and max_consecutive_failures must be at least 1")
        if not 2 <= self.samples_per_prompt <= 1024 or not 1 <= self.completion_tokens <= 4096:
            raise InvalidInputError("samples_per_prompt must lie in 2..1024 and completion_tokens in 1..4096")
        if not 1 <= self.max_new_tokens <= 4096:
            raise InvalidInputError("max_new_tokens must lie in 1..4096")
        if not 19 <= self.permutations <= 100_000:
            raise InvalidInputError("permutations must lie in 19..100000")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError("alpha must lie strictly between 0 and 1")
        if self.min_prompts < 1 or not 0.0 <= self.max_failure_rate <= 1.0:
            raise InvalidInputError("min_prompts must be positive and max_failure_rate in [0, 1]")


@dataclass(frozen=True)
class Samples:
    """Completions of each prompt as padded token arrays: ``(prompts, samples, L)``; failed samples counted."""

    tokens: NDArray[np.int64]
    failures: int
    response_sha256: tuple[str, ...]


def collect_samples(
    model: TextModel,
    prompts: Sequence[str],
    config: IdentityConfig,
    tokenize: Tokenize,
    seed: int,
    log: RequestLog | None = None,
) -> Samples:
    """``samples_per_prompt`` completions of every prompt (query seeds ``seed``, ``seed + 1``, ...).

    A failed query is retried once with the next unused seed; a prompt keeps padding-only
    rows for samples that still failed (they are counted and make the verdict inconclusive).
    Every request goes through ``log`` (recorded; none sent once its failure cap is reached).
    """
    log = log or RequestLog(model.name)
    n, length = config.samples_per_prompt, config.completion_tokens
    tokens = np.full((len(prompts), n, length), PAD, dtype=np.int64)
    failures = 0
    hashes: list[str] = []
    next_seed = seed
    for p_index, prompt in enumerate(prompts):
        for s_index in range(n):
            text = None
            for _attempt in range(2):
                query_seed = next_seed
                next_seed += 1

                def send(prompt: str = prompt, query_seed: int = query_seed) -> str:
                    return model.complete(prompt, max_new_tokens=config.max_new_tokens, seed=query_seed)

                request: JSONObject = {"prompt_index": p_index, "sample": s_index, "seed": query_seed,
                                       "max_new_tokens": config.max_new_tokens}  # fmt: skip
                text = log.call(request, send, lambda answer: answer)
                if text is not None or log.stopped:
                    break
            if text is None:
                failures += 1
                continue
            hashes.append(sha256_text(text))
            ids = list(tokenize(text))[:length]
            tokens[p_index, s_index, : len(ids)] = ids
    return Samples(tokens, failures, tuple(hashes))


def _kernels(x: NDArray[np.int64], y: NDArray[np.int64]) -> NDArray[np.float64]:
    """Per-prompt Hamming-kernel matrices over the pooled samples: ``(P, n + m, n + m)``."""
    pooled = np.concatenate([x, y], axis=1)
    length = pooled.shape[2]
    kernels = np.zeros((pooled.shape[0], pooled.shape[1], pooled.shape[1]))
    for position in range(length):  # a loop over L keeps memory at P * N^2
        column = pooled[:, :, position]
        kernels += column[:, :, None] == column[:, None, :]
    result: NDArray[np.float64] = kernels / length
    return result


def mmd_permutation_test(
    x: NDArray[np.int64], y: NDArray[np.int64], permutations: int, rng: np.random.Generator
) -> tuple[float, float, NDArray[np.float64]]:
    """Biased MMD² between per-prompt samples ``x`` (P, n, L) and ``y`` (P, m, L), permutation p-value.

    Returns the statistic, the p-value and the permuted statistics.
    """
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise InvalidInputError("both sample sets need the same prompts and completion length")
    n, m = x.shape[1], y.shape[1]
    kernels = _kernels(x, y)
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])

    def statistic(labels: NDArray[np.float64]) -> NDArray[np.float64]:
        # labels: (B, P, N); mean over prompts of l^T K_p l
        projected = np.einsum("bpi,pij->bpj", labels, kernels)
        return np.asarray(np.einsum("bpj,bpj->b", projected, labels) / kernels.shape[0], dtype=np.float64)

    observed = float(statistic(np.broadcast_to(base, (1, x.shape[0], n + m)).copy())[0])
    permuted = np.empty(permutations)
    chunk = 256
    for start in range(0, permutations, chunk):
        size = min(chunk, permutations - start)
        order = np.argsort(rng.random((size, x.shape[0], n + m)), axis=2)
        permuted[start : start + size] = statistic(base[order])
    # ties count against rejection: the p-value stays valid with discrete statistics
    p_value = (1.0 + float(np.count_nonzero(permuted >= observed - 1e-12))) / (permutations + 1.0)
    return observed, p_value, permuted


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given)."""
    order = np.argsort(p_values, kind="stable")
    total = len(p_values)
    adjusted = [1.0] * total
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (total - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


class ReferenceRow(Protocol):
    """A per-reference row of an identity verdict: what the open-set answer reads of it, and its JSON."""

    @property
    def reference(self) -> str: ...

    @property
    def p_value(self) -> float: ...

    @property
    def log10_p_value(self) -> float: ...

    def to_json(self) -> JSONObject: ...


@dataclass(frozen=True)
class OpenSet:
    """The open-set answer: the decision on "no match", the answer in words, and the per-reference Holm p-values."""

    decision: Decision
    answer: str
    consistent: tuple[str, ...]
    no_match_p: float
    p_values_holm: tuple[float, ...]


def open_set(rows: Sequence[ReferenceRow], alpha: float, blockers: list[str], *, samples_only: bool = False) -> OpenSet:
    """The open-set answer over per-reference rows (see the module docstring).

    "No match" is an intersection-union test: its p-value is the largest unadjusted one.  A
    reference is consistent with the endpoint when its Holm-adjusted p-value exceeds ``alpha``;
    from samples alone that reads ``indistinguishable-from:NAME`` (not shown to be the same model).
    """
    adjusted = holm([r.p_value for r in rows])
    consistent = [r.reference for r, value in zip(rows, adjusted, strict=True) if value > alpha]
    no_match_p = max(r.p_value for r in rows)
    decision = decide(no_match_p, alpha, blockers)
    if decision == "inconclusive":
        answer = "inconclusive"
    elif not consistent:
        answer = "no-match"
    elif len(consistent) == 1:
        answer = f"{'indistinguishable-from' if samples_only else 'consistent-with'}:{consistent[0]}"
    else:
        answer = "ambiguous"
    return OpenSet(decision, answer, tuple(consistent), no_match_p, tuple(adjusted))


def headline(answer: OpenSet, references: Sequence[str], alpha: float, *, samples_only: bool) -> str:
    """One sentence that answers "is this endpoint one of our references?" (the report's headline)."""
    if answer.decision == "inconclusive":
        return "INCONCLUSIVE: this run cannot say whether the endpoint is one of the references (see the reasons)."
    if answer.answer == "no-match":
        names = ", ".join(references)
        return (
            f"The endpoint is NOT consistent with {'any of ' if len(references) > 1 else ''}{names}: "
            f"every reference is rejected at alpha {alpha:g} (p = {answer.no_match_p:.3g})."
        )
    names = " or ".join(answer.consistent)
    if samples_only:
        return (
            f"The endpoint's samples could not be told apart from those of {names} at this budget (not rejected "
            f"at alpha {alpha:g}). Samples cannot separate a model from a fine-tuned or quantised copy of it, so "
            "this does not show the endpoint IS that model: run the log-probability test (--logprobs) to decide."
        )
    if len(answer.consistent) > 1:
        return f"The endpoint is consistent with several references ({names}); this test cannot tell which."
    return (
        f"The endpoint IS consistent with {names}: its log-probabilities match within the pre-registered "
        f"tolerance (not rejected at alpha {alpha:g}). Other references are rejected."
        if len(references) > 1
        else f"The endpoint IS consistent with {names}: its log-probabilities match within the pre-registered "
        f"tolerance (not rejected at alpha {alpha:g})."
    )


def check_request(references: Mapping[str, object], prompts: Sequence[str]) -> None:
    """Refuse an identity test with no reference or an empty prompt."""
    if not references:
        raise InvalidInputError("give at least one reference model")
    if not prompts or any(not p.strip() for p in prompts):
        raise InvalidInputError("give at least one prompt, none of them empty")


@dataclass(frozen=True)
class IdentityTest:
    """Which identity test a verdict reports: its name, null hypothesis, p-value method and statistic."""

    test: str
    h0: str
    p_value_method: str
    statistic_name: str


def identity_verdict(
    method: IdentityTest,
    *,
    rows: Sequence[ReferenceRow],
    alpha: float,
    blockers: list[str],
    effect: JSONObject,
    counts: JSONObject,
    evidence: JSONObject,
    samples_only: bool = False,
) -> TheftVerdict:
    """The verdict both identity tests return.

    ``details`` holds each row's JSON followed by ``p_value_holm`` and ``consistent``;
    ``statistic.headline`` answers the question in one sentence.
    """
    answer = open_set(rows, alpha, blockers, samples_only=samples_only)
    reasons = list(blockers)
    if samples_only and answer.consistent and answer.decision != "inconclusive":
        reasons.append(
            "samples only: not rejecting a reference is not evidence that the endpoint is that model; a fine-tuned "
            "or quantised copy reads the same at this budget"
        )
    worst = max(rows, key=lambda r: r.p_value)
    details = tuple(
        {**row.to_json(), "p_value_holm": holm_p, "consistent": holm_p > alpha}
        for row, holm_p in zip(rows, answer.p_values_holm, strict=True)
    )
    return TheftVerdict(
        test=method.test,
        question=QUESTION,
        h0=method.h0,
        decision=answer.decision,
        reasons=tuple(reasons),
        alpha=alpha,
        p_value=answer.no_match_p,
        log10_p_value=worst.log10_p_value,
        p_value_method=f"{method.p_value_method}; 'no match' is an intersection-union test "
        "(largest per-reference p-value)",
        statistic={
            "name": method.statistic_name,
            "answer": answer.answer,
            "consistent_with": list(answer.consistent),
            "headline": headline(answer, [r.reference for r in rows], alpha, samples_only=samples_only),
        },
        effect=effect,
        counts={**counts, "references": len(rows)},
        correction={"method": "Holm over references (per-reference answers)", "references": len(rows)},
        null_check=None,
        details=details,
        evidence={**evidence, "versions": library_versions()},
    )


@dataclass(frozen=True)
class SampleRow:
    """One reference in an identity verdict from samples (a ``details[]`` row, before the open-set members).

    JSON (:meth:`to_json`): ``reference``, ``model``, ``mmd2`` (the statistic), ``p_value``,
    ``log10_p_value``, ``permutation_mean``, ``permutation_q95``, ``failed_samples`` and
    ``response_sha256`` (one hash per reference sample).
    """

    reference: str
    model: str
    mmd2: float
    p_value: float
    log10_p_value: float
    permutation_mean: float
    permutation_q95: float
    failed_samples: int
    response_sha256: tuple[str, ...]

    def to_json(self) -> JSONObject:
        """The row's JSON object (fields in order)."""
        return row_json(self)


def identify(
    endpoint: TextModel,
    references: Mapping[str, TextModel],
    prompts: Sequence[str],
    config: IdentityConfig | None = None,
    *,
    tokenize: Tokenize = utf8_bytes,
    on_request: Sink | None = None,
) -> TheftVerdict:
    """Test the endpoint against each reference; see the module docstring for the decision rules.

    ``on_request`` receives every request's record (endpoint and references) as it completes.
    """
    config = config or IdentityConfig()
    config.validate()
    check_request(references, prompts)
    rng = np.random.default_rng(config.seed)
    endpoint_log = RequestLog("endpoint", config.max_failed_requests, on_request, config.max_consecutive_failures)
    target = collect_samples(endpoint, prompts, config, tokenize, config.seed, endpoint_log)
    blockers: list[str] = []
    stopped = endpoint_log.blocker()
    if stopped is not None:
        blockers.append(stopped)
    expected = len(prompts) * config.samples_per_prompt
    if len(prompts) < config.min_prompts:
        blockers.append(f"too few prompts: {len(prompts)}, the minimum is {config.min_prompts}")
    if target.failures > config.max_failure_rate * expected:
        blockers.append(f"{target.failures} of {expected} endpoint samples failed")
    rows: list[SampleRow] = []
    for index, (name, reference) in enumerate(sorted(references.items())):
        reference_log = RequestLog(f"reference:{name}", None, on_request)
        seed = config.seed + REFERENCE_SEED_OFFSET * (index + 1)
        samples = collect_samples(reference, prompts, config, tokenize, seed, reference_log)
        if samples.failures > config.max_failure_rate * expected:
            blockers.append(f"{samples.failures} of {expected} samples of reference {name} failed")
        statistic, p_value, permuted = mmd_permutation_test(target.tokens, samples.tokens, config.permutations, rng)
        rows.append(
            SampleRow(
                reference=name,
                model=reference.name,
                mmd2=statistic,
                p_value=p_value,
                log10_p_value=float(np.log10(p_value)),
                permutation_mean=float(permuted.mean()),
                permutation_q95=float(np.quantile(permuted, 0.95)),
                failed_samples=samples.failures,
                response_sha256=samples.response_sha256,
            )
        )
    floor = 1.0 / (config.permutations + 1.0)
    if floor > config.alpha:
        blockers.append(f"{config.permutations} permutations cannot reach alpha {config.alpha} (floor {floor:.3g})")
    closest = min(rows, key=lambda r: r.mmd2 - r.permutation_mean)
    method = IdentityTest(
        test="identify/mmd-hamming",
        h0=H0,
        p_value_method=f"permutation test within prompts, {config.permutations} permutations",
        statistic_name="mmd2-hamming",
    )
    return identity_verdict(
        method,
        rows=rows,
        alpha=config.alpha,
        blockers=blockers,
        samples_only=True,
        effect={
            "name": "MMD^2 minus its permutation mean (closest reference)",
            "reference": closest.reference,
            "estimate": closest.mmd2 - closest.permutation_mean,
            "null_q95": closest.permutation_q95 - closest.permutation_mean,
        },
        counts={
            "prompts": len(prompts),
            "samples_per_prompt": config.samples_per_prompt,
            "completion_tokens": config.completion_tokens,
            "endpoint_failed_samples": target.failures,
            "endpoint_requests": len(endpoint_log.records),
            "endpoint_failed_requests": endpoint_log.failures,
            "endpoint_requests_not_sent": endpoint_log.not_sent,
        },
        evidence={
            "endpoint": endpoint.name,
            "prompt_sha256": [sha256_text(p) for p in prompts],
            "endpoint_response_sha256": list(target.response_sha256),
            "config": asdict(config),
        },
    )
