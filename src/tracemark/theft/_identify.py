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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tracemark._json import JSONObject
from tracemark.errors import InvalidInputError, SuspectQueryError
from tracemark.theft._adapters import TextModel
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

    def validate(self) -> None:
        """Refuse settings that make the test meaningless."""
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
    model: TextModel, prompts: Sequence[str], config: IdentityConfig, tokenize: Tokenize, seed: int
) -> Samples:
    """``samples_per_prompt`` completions of every prompt (query seeds ``seed``, ``seed + 1``, ...).

    A failed query is retried once with the next unused seed; a prompt keeps padding-only
    rows for samples that still failed (they are counted and make the verdict inconclusive).
    """
    n, length = config.samples_per_prompt, config.completion_tokens
    tokens = np.full((len(prompts), n, length), PAD, dtype=np.int64)
    failures = 0
    hashes: list[str] = []
    next_seed = seed
    for p_index, prompt in enumerate(prompts):
        for s_index in range(n):
            text = None
            for _attempt in range(2):
                try:
                    text = model.complete(prompt, max_new_tokens=config.max_new_tokens, seed=next_seed)
                    break
                except SuspectQueryError:
                    continue
                finally:
                    next_seed += 1
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


def open_set(rows: Sequence[ReferenceRow], alpha: float, blockers: list[str]) -> OpenSet:
    """The open-set answer over per-reference rows (see the module docstring).

    "No match" is an intersection-union test: its p-value is the largest unadjusted one.  A
    reference is consistent with the endpoint when its Holm-adjusted p-value exceeds ``alpha``.
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
        answer = f"consistent-with:{consistent[0]}"
    else:
        answer = "ambiguous"
    return OpenSet(decision, answer, tuple(consistent), no_match_p, tuple(adjusted))


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
) -> TheftVerdict:
    """The verdict both identity tests return.

    ``details`` holds each row's JSON followed by ``p_value_holm`` and ``consistent``.
    """
    answer = open_set(rows, alpha, blockers)
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
        reasons=tuple(blockers),
        alpha=alpha,
        p_value=answer.no_match_p,
        log10_p_value=worst.log10_p_value,
        p_value_method=f"{method.p_value_method}; 'no match' is an intersection-union test "
        "(largest per-reference p-value)",
        statistic={"name": method.statistic_name, "answer": answer.answer, "consistent_with": list(answer.consistent)},
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
) -> TheftVerdict:
    """Test the endpoint against each reference; see the module docstring for the decision rules."""
    config = config or IdentityConfig()
    config.validate()
    check_request(references, prompts)
    rng = np.random.default_rng(config.seed)
    target = collect_samples(endpoint, prompts, config, tokenize, config.seed)
    blockers: list[str] = []
    expected = len(prompts) * config.samples_per_prompt
    if len(prompts) < config.min_prompts:
        blockers.append(f"too few prompts: {len(prompts)}, the minimum is {config.min_prompts}")
    if target.failures > config.max_failure_rate * expected:
        blockers.append(f"{target.failures} of {expected} endpoint samples failed")
    rows: list[SampleRow] = []
    for index, (name, reference) in enumerate(sorted(references.items())):
        samples = collect_samples(
            reference, prompts, config, tokenize, config.seed + REFERENCE_SEED_OFFSET * (index + 1)
        )
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
        },
        evidence={
            "endpoint": endpoint.name,
            "prompt_sha256": [sha256_text(p) for p in prompts],
            "endpoint_response_sha256": list(target.response_sha256),
            "config": asdict(config),
        },
    )
