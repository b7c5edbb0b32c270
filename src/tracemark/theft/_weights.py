"""Weight provenance: are the suspect's weights derived from the reference's?

Raw weight cosine breaks under the free reparametrisations of a transformer: permute the MLP's
neurons or the attention heads, rescale a neuron's input by ``s`` and its output by ``1/s`` (or
queries against keys, values against outputs), fold a norm's per-channel gain into the next linear
layer, or rotate the residual stream by any orthogonal ``Q`` (SliceGPT: ``E -> E Q``, every matrix
that reads the stream ``W -> W Q``, every one that writes it ``W -> Qᵀ W``, RMSNorm commuting with
``Q`` once its gain is folded).  The function is unchanged and the cosine drops to noise.  HuRef
(Zeng et al., NeurIPS 2024) compares products that cancel those symmetries instead.  With ``P`` the
probe tokens as the first norm sees them (embedding rows of a fixed set of token ids, centred for
LayerNorm, unit length) and ``g`` each norm's gain folded into the matrices after it, per block:

* attention scores ``(P g W_Q)(P g W_K)ᵀ``, summed over the query heads that share a key/value head
  (multi-head, grouped-query and multi-query attention alike);
* attention values ``(P g W_V)(P W_O)ᵀ``, summed the same way;
* feed-forward ``(P g W_up)(P W_down)ᵀ``, and for gated units (SwiGLU) also
  ``((P g W_gate) ⊙ (P g W_up))(P W_down)ᵀ`` (a gate-down product would not survive rescaling ``up``
  against ``down``, which a gated unit allows).

Each invariant is exactly unchanged by every transformation above (up to float rounding): the
residual-stream rotation cancels between ``P`` and the weights, gains are folded on both sides,
and heads, neurons and scales cancel inside the sums.  Each product is a ``tokens x tokens`` matrix
indexed by token ids, which a derived model cannot relabel without changing its tokenizer.  Each is
double-centred (which also removes what biases add) before the cosine; the score is the mean cosine
over the products both models have.

p-value: the same score with the suspect's token ids shuffled (rows and columns together),
``(1 + #{shuffled >= observed}) / (1 + B)``.  Its null hypothesis is "no token-aligned relation
between the two weight sets", exactly true for independently initialised models.  Models trained
independently on similar text with the same tokenizer share token-aligned structure too (the zoo's
independent base and its students score 0.37-0.41 against the teacher at p = 0.001), so the score
itself decides once the p-value has rejected: below ``min_similarity`` (0.3) ``no-evidence``, from
``evidence_similarity`` (0.8) ``evidence``, and in between ``inconclusive``: related by tokenizer and
data, not shown to be derived.  The 0.8 was set after measuring that zoo (derived variants
0.94-1.00), so it is not yet validated on models it was not chosen on.  Weights are read from
safetensors one tensor at a time (:mod:`tracemark.theft._tensors`); pickle-based checkpoints are
refused, never loaded.  The architectures read are in :mod:`tracemark.theft._architectures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import InvalidInputError, TheftError
from tracemark.theft._architectures import Attention, Block, Layout, layout
from tracemark.theft._tensors import PICKLE_SUFFIXES, WeightSource, load_weights
from tracemark.theft._verdict import TheftVerdict, decide, library_versions

__all__ = ["PICKLE_SUFFIXES", "WeightConfig", "WeightSource", "load_weights", "weight_provenance"]

QUESTION = "Are the suspect model's weights derived from the reference model's weights?"
H0 = "the suspect's weights carry no token-aligned relation to the reference's (as for an independent initialisation)"
#: Rows (or columns) of a weight matrix widened to float64 at a time.
_CHUNK = 1024

StateDict = Mapping[str, NDArray[Any]]


@dataclass(frozen=True)
class WeightConfig:
    """The pre-registered weight-provenance test."""

    tokens: int = 128
    permutations: int = 999
    alpha: float = 0.01
    min_similarity: float = 0.3
    evidence_similarity: float = 0.8
    seed: int = 0

    def validate(self) -> None:
        """Refuse meaningless settings."""
        if not 8 <= self.tokens <= 4096:
            raise InvalidInputError("tokens must lie in 8..4096")
        if not 19 <= self.permutations <= 100_000:
            raise InvalidInputError("permutations must lie in 19..100000")
        if not 0.0 < self.alpha < 1.0 or not -1.0 <= self.min_similarity <= self.evidence_similarity <= 1.0:
            raise InvalidInputError("alpha must lie in (0, 1) and -1 <= min_similarity <= evidence_similarity <= 1")


def _config(weights: StateDict) -> Mapping[str, object]:
    config = getattr(weights, "config", None)
    return config if isinstance(config, Mapping) else {}


def _f64(value: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(value, dtype=np.float64)


def _probe(weights: StateDict, found: Layout, token_ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """The probe tokens as the first norm sees them: embedding rows, centred for LayerNorm, unit length."""
    if isinstance(weights, WeightSource):
        rows = _f64(weights.rows(found.embedding, token_ids))
    else:
        rows = _f64(np.asarray(weights[found.embedding])[token_ids])
    if found.projection is not None:
        rows = rows @ _f64(weights[found.projection]).T
    if found.norm == "layer":
        rows = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms > 0, norms, 1.0), dtype=np.float64)


def _reads(probe: NDArray[np.float64], matrix: NDArray[Any]) -> NDArray[np.float64]:
    """``probe @ matrix.T`` for a Linear (out x in) read from the residual stream, widened in row chunks."""
    if matrix.ndim != 2 or matrix.shape[1] != probe.shape[1]:
        raise TheftError(f"a {matrix.shape} matrix does not read a residual stream of width {probe.shape[1]}")
    out = np.empty((probe.shape[0], matrix.shape[0]), dtype=np.float64)
    for start in range(0, matrix.shape[0], _CHUNK):
        out[:, start : start + _CHUNK] = probe @ _f64(matrix[start : start + _CHUNK]).T
    return out


def _writes(probe: NDArray[np.float64], matrix: NDArray[Any]) -> NDArray[np.float64]:
    """``probe @ matrix`` for a Linear (d x in) that writes to the residual stream, widened in column chunks."""
    if matrix.ndim != 2 or matrix.shape[0] != probe.shape[1]:
        raise TheftError(f"a {matrix.shape} matrix does not write a residual stream of width {probe.shape[1]}")
    out = np.empty((probe.shape[0], matrix.shape[1]), dtype=np.float64)
    for start in range(0, matrix.shape[1], _CHUNK):
        out[:, start : start + _CHUNK] = probe @ _f64(matrix[:, start : start + _CHUNK])
    return out


def _group(reads: NDArray[np.float64], heads: int, kv_heads: int) -> NDArray[np.float64]:
    """Sum the query heads that share a key/value head: ``(S, heads*dh) -> (S, kv_heads*dh)``."""
    if heads == kv_heads:
        return reads
    tokens = reads.shape[0]
    summed = reads.reshape(tokens, kv_heads, heads // kv_heads, -1).sum(axis=2)
    return np.asarray(summed.reshape(tokens, -1), dtype=np.float64)


def _centred(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    centred = matrix - matrix.mean(axis=0, keepdims=True) - matrix.mean(axis=1, keepdims=True) + matrix.mean()
    return np.asarray(centred, dtype=np.float64)


def _block_invariants(
    block: Block, probe: NDArray[np.float64], weights: StateDict, width: int
) -> dict[str, NDArray[np.float64]]:
    gain = np.ones(width) if block.gain is None else _f64(weights[block.gain]).reshape(-1)
    if gain.shape != (width,):
        raise TheftError(f"{block.name}: norm gain of shape {gain.shape} for a residual stream of width {width}")
    normed = probe * gain  # the norm's gain folded into every matrix that reads the block's input
    part = block.load()
    layer = block.name.rsplit(".", 1)[0]
    if isinstance(part, Attention):
        if part.heads % part.kv_heads or part.q.shape[0] % part.heads:
            raise TheftError(f"{block.name}: {part.heads} heads do not fit {part.kv_heads} key/value heads")
        queries = _group(_reads(normed, part.q), part.heads, part.kv_heads)
        outputs = _group(_writes(probe, part.o), part.heads, part.kv_heads)
        keys, values = _reads(normed, part.k), _reads(normed, part.v)
        if queries.shape != keys.shape or outputs.shape != values.shape:
            raise TheftError(f"{block.name}: query/key/value/output widths do not fit the head layout")
        return {f"{layer}.qk": _centred(queries @ keys.T), f"{layer}.vo": _centred(values @ outputs.T)}
    up, down = _reads(normed, part.up), _writes(probe, part.down)
    if up.shape != down.shape:
        raise TheftError(f"{block.name}: up ({part.up.shape}) and down ({part.down.shape}) projections do not fit")
    if part.gate is None:
        return {f"{layer}.ffn": _centred(up @ down.T)}
    gated = _reads(normed, part.gate) * up
    return {f"{layer}.ffn_up": _centred(up @ down.T), f"{layer}.ffn_glu": _centred(gated @ down.T)}


def _invariants(weights: StateDict, found: Layout, token_ids: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]:
    probe = _probe(weights, found, token_ids)
    out: dict[str, NDArray[np.float64]] = {}
    for block in found.blocks:
        out.update(_block_invariants(block, probe, weights, probe.shape[1]))
    return out


def _vocabulary(weights: StateDict, found: Layout) -> int:
    if isinstance(weights, WeightSource):
        return int(weights.shape(found.embedding)[0])
    return int(np.asarray(weights[found.embedding]).shape[0])


def _score(
    suspect: NDArray[np.float64], reference: NDArray[np.float64], order: NDArray[np.int64] | None
) -> NDArray[np.float64]:
    """Per-invariant cosines of stacked ``(K, S, S)`` matrices, the suspect's tokens reordered by ``order``."""
    s = suspect if order is None else suspect[:, order][:, :, order]
    numerator = np.einsum("kij,kij->k", s, reference)
    denominator = np.linalg.norm(s.reshape(s.shape[0], -1), axis=1) * np.linalg.norm(
        reference.reshape(reference.shape[0], -1), axis=1
    )
    return np.asarray(numerator / np.where(denominator > 0, denominator, 1.0), dtype=np.float64)


def weight_provenance(
    suspect: StateDict,
    reference: StateDict,
    config: WeightConfig | None = None,
    *,
    suspect_name: str = "suspect",
    reference_name: str = "reference",
) -> TheftVerdict:
    """Invariant similarity of two state dicts with a token-permutation p-value (see module docstring)."""
    config = config or WeightConfig()
    config.validate()
    ours, theirs = layout(reference, _config(reference)), layout(suspect, _config(suspect))
    vocab = min(_vocabulary(reference, ours), _vocabulary(suspect, theirs))
    rng = np.random.default_rng(config.seed)
    count = min(config.tokens, vocab)
    token_ids = np.sort(rng.choice(vocab, size=count, replace=False)).astype(np.int64)
    ref_inv = _invariants(reference, ours, token_ids)
    sus_inv = _invariants(suspect, theirs, token_ids)
    shared = sorted(set(ref_inv) & set(sus_inv))
    blockers: list[str] = []
    if not shared:
        raise TheftError("the two models share no comparable block (different depth or architecture)")
    r = np.stack([ref_inv[n] for n in shared])
    s = np.stack([sus_inv[n] for n in shared])
    cosines = _score(s, r, None)
    observed = float(cosines.mean())
    permuted = np.array([float(_score(s, r, rng.permutation(count)).mean()) for _ in range(config.permutations)])
    p_value = (1.0 + float(np.count_nonzero(permuted >= observed - 1e-12))) / (config.permutations + 1.0)
    floor = 1.0 / (config.permutations + 1.0)
    if floor > config.alpha:
        blockers.append(f"{config.permutations} permutations cannot reach alpha {config.alpha} (floor {floor:.3g})")
    decision = decide(p_value, config.alpha, blockers)
    reasons = list(blockers)
    if decision == "evidence" and observed < config.min_similarity:
        decision = "no-evidence"
        reasons.append(
            f"p-value below alpha but similarity {observed:.3f} is under the pre-registered minimum "
            f"{config.min_similarity}: token-aligned structure alone is not evidence of derivation"
        )
    elif decision == "evidence" and observed < config.evidence_similarity:
        decision = "inconclusive"
        reasons.append(
            f"similarity {observed:.3f} lies between {config.min_similarity} and {config.evidence_similarity}: "
            "models trained independently with the same tokenizer on similar text reach this much; "
            "related, but not shown to be derived from the reference's weights"
        )
    return TheftVerdict(
        test="weight-provenance/invariants",
        question=QUESTION,
        h0=H0,
        decision=decision,
        reasons=tuple(reasons),
        alpha=config.alpha,
        p_value=p_value,
        log10_p_value=float(np.log10(p_value)),
        p_value_method=f"token-permutation test, {config.permutations} permutations",
        statistic={
            "name": "mean invariant cosine",
            "value": observed,
            "architecture": theirs.architecture,
            "reference_architecture": ours.architecture,
        },
        effect={
            "name": "mean invariant cosine",
            "estimate": observed,
            "ci_low": float(np.min(cosines)),
            "ci_high": float(np.max(cosines)),
            "ci_method": "range over invariants",
            "null_mean": float(permuted.mean()),
            "null_q99": float(np.quantile(permuted, 0.99)),
        },
        counts={
            "invariants_shared": len(shared),
            "invariants_reference": len(ref_inv),
            "invariants_suspect": len(sus_inv),
            "tokens": count,
        },
        correction={"method": "none (one reference)"},
        null_check=None,
        details=tuple({"invariant": n, "cosine": float(c)} for n, c in zip(shared, cosines, strict=True)),
        evidence={
            "suspect": suspect_name,
            "reference": reference_name,
            "token_ids": [int(t) for t in token_ids],
            "config": asdict(config),
            "versions": library_versions(),
        },
    )
