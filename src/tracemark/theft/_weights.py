"""Weight provenance: are the suspect's weights derived from the reference's?

Raw weight cosine breaks under a free relabelling of hidden units (permute the MLP's
neurons or the attention heads and the function is unchanged while the cosine drops to
noise) and under rescaling (a neuron's input weights times ``s``, its output weights
divided by ``s``).  HuRef (Zeng et al., NeurIPS 2024) compares products that cancel
those symmetries instead.  For each block, with ``E`` the token-embedding rows of a
fixed set of token ids:

* attention scores ``E W_Q W_Kᵀ Eᵀ`` (heads and head dimensions can be permuted, Q/K rescaled),
* attention values ``E W_V W_O Eᵀ`` (heads permuted, V/O rescaled),
* feed-forward ``E W_in W_out Eᵀ`` (hidden neurons permuted and rescaled; for gated MLPs
  both the gate and the up projection).

A residual-stream permutation cancels between ``E`` and the weights.  Each product is a
``tokens x tokens`` matrix indexed by token ids, which a derived model cannot relabel
without changing its tokenizer.  Rows of ``E`` are normalised (token-norm effects) and each
product is double-centred before the cosine, and the score is the mean cosine over all
products both models have.

p-value: the same score with the suspect's token ids shuffled (rows and columns together),
``(1 + #{shuffled >= observed}) / (1 + B)``.  Its null hypothesis is "no token-aligned
relation between the two weight sets", exactly true for independently initialised models.
Models trained independently on similar text with the same tokenizer share token-aligned
structure too (the zoo's independent base and its students score 0.37-0.41 against the
teacher at p = 0.001), so the score itself decides once the p-value has rejected: below
``min_similarity`` (0.3) ``no-evidence``, from ``evidence_similarity`` (0.8) ``evidence``, and
in between ``inconclusive``: related by tokenizer and data, not shown to be derived.  The 0.8 was
set after measuring that zoo (derived variants 0.94-1.00), so it is not yet validated on models
it was not chosen on.  Weights are read from
safetensors only; pickle-based checkpoints are refused, never loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenDict
from tracemark.errors import InvalidInputError, MissingExtraError, TheftError
from tracemark.theft._verdict import TheftVerdict, decide, library_versions

QUESTION = "Are the suspect model's weights derived from the reference model's weights?"
H0 = "the suspect's weights carry no token-aligned relation to the reference's (as for an independent initialisation)"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: Largest weight file read (bytes).
MAX_WEIGHT_BYTES = 64 * 1024**3

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


def load_weights(path: Path | str) -> dict[str, NDArray[Any]]:
    """A state dict from a ``.safetensors`` file or a model directory of them (never a pickle)."""
    source = Path(path)
    if source.is_dir():
        files = sorted(source.glob("*.safetensors"))
        if not files:
            pickles = [p.name for p in source.iterdir() if p.suffix in PICKLE_SUFFIXES]
            hint = f" (found pickle-based {', '.join(pickles)}: convert to safetensors)" if pickles else ""
            raise TheftError(f"{source} holds no .safetensors weights{hint}")
    elif source.suffix in PICKLE_SUFFIXES:
        raise TheftError(f"{source} is a pickle-based checkpoint; tracemark never loads pickles (use safetensors)")
    elif source.is_file():
        files = [source]
    else:
        raise InvalidInputError(f"{source}: no such file or directory")
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MissingExtraError("reading model weights", "text") from None
    weights: dict[str, NDArray[Any]] = {}
    for file in files:
        if file.stat().st_size > MAX_WEIGHT_BYTES:
            raise InvalidInputError(f"{file} is larger than {MAX_WEIGHT_BYTES} bytes")
        try:
            weights.update(load_file(str(file)))
        except Exception as exc:  # safetensors raises its own untyped errors on malformed files
            raise TheftError(f"cannot read {file} as safetensors: {exc}") from None
    return weights


@dataclass(frozen=True)
class _Products:
    """Embedding and, per named invariant, the pair (left d x a, right a x d) whose product it uses."""

    embedding: NDArray[np.float64]
    pairs: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64]]]
    architecture: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", FrozenDict(self.pairs))


def _f64(value: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(value, dtype=np.float64)


def _find(weights: StateDict, pattern: str) -> dict[str, str]:
    regex = re.compile(pattern)
    return {m.group(1): name for name in weights if (m := regex.fullmatch(name))}


def _gpt2(weights: StateDict) -> _Products | None:
    embedding = [n for n in weights if n.endswith("wte.weight")]
    attn = _find(weights, r"(?:.*\.)?h\.(\d+)\.attn\.c_attn\.weight")
    if len(embedding) != 1 or not attn:
        return None
    prefix = embedding[0][: -len("wte.weight")]
    e = _f64(weights[embedding[0]])
    d = e.shape[1]
    pairs: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for layer in sorted(attn, key=int):
        base = f"{prefix}h.{layer}."
        try:
            c_attn = _f64(weights[f"{base}attn.c_attn.weight"])  # Conv1D: x @ W, (d, 3d)
            c_proj = _f64(weights[f"{base}attn.c_proj.weight"])
            fc = _f64(weights[f"{base}mlp.c_fc.weight"])
            proj = _f64(weights[f"{base}mlp.c_proj.weight"])
        except KeyError as exc:
            raise TheftError(f"GPT-2 block {layer} lacks {exc}") from None
        q, k, v = c_attn[:, :d], c_attn[:, d : 2 * d], c_attn[:, 2 * d :]
        pairs[f"layer{layer}.qk"] = (q, k.T)
        pairs[f"layer{layer}.vo"] = (v, c_proj)
        pairs[f"layer{layer}.ffn"] = (fc, proj)
    return _Products(e, pairs, "gpt2")


def _llama(weights: StateDict) -> _Products | None:
    embedding = [n for n in weights if n.endswith("embed_tokens.weight")]
    layers = _find(weights, r"(?:.*\.)?layers\.(\d+)\.self_attn\.q_proj\.weight")
    if len(embedding) != 1 or not layers:
        return None
    prefix = embedding[0][: -len("embed_tokens.weight")]
    pairs: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for layer in sorted(layers, key=int):
        base = f"{prefix}layers.{layer}."

        def get(name: str, base: str = base) -> NDArray[np.float64] | None:
            value = weights.get(f"{base}{name}.weight")
            return None if value is None else _f64(value)  # torch Linear: (out, in), y = x @ W.T

        q, k, v, o = get("self_attn.q_proj"), get("self_attn.k_proj"), get("self_attn.v_proj"), get("self_attn.o_proj")
        gate, up, down = get("mlp.gate_proj"), get("mlp.up_proj"), get("mlp.down_proj")
        if q is not None and k is not None and q.shape == k.shape:  # grouped-query attention has no direct product
            pairs[f"layer{layer}.qk"] = (q.T, k)
        if v is not None and o is not None and v.shape[0] == o.shape[1]:
            pairs[f"layer{layer}.vo"] = (v.T, o.T)
        if down is not None:
            for name, matrix in (("up", up), ("gate", gate)):
                if matrix is not None:
                    pairs[f"layer{layer}.ffn_{name}"] = (matrix.T, down.T)
    return _Products(_f64(weights[embedding[0]]), pairs, "llama")


def _products(weights: StateDict) -> _Products:
    for reader in (_gpt2, _llama):
        found = reader(weights)
        if found is not None:
            return found
    raise TheftError("unrecognised architecture: weight provenance reads GPT-2 and LLaMA-style state dicts")


def _invariants(products: _Products, token_ids: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]:
    rows = products.embedding[token_ids]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows = rows / np.where(norms > 0, norms, 1.0)
    out = {}
    for name, (left, right) in products.pairs.items():
        if left.shape[0] != rows.shape[1] or right.shape[1] != rows.shape[1]:
            raise TheftError(f"{name}: weight shapes do not fit the embedding width {rows.shape[1]}")
        matrix = (rows @ left) @ (right @ rows.T)
        matrix = matrix - matrix.mean(axis=0, keepdims=True) - matrix.mean(axis=1, keepdims=True) + matrix.mean()
        out[name] = matrix
    return out


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
    ours, theirs = _products(reference), _products(suspect)
    vocab = min(ours.embedding.shape[0], theirs.embedding.shape[0])
    rng = np.random.default_rng(config.seed)
    count = min(config.tokens, vocab)
    token_ids = np.sort(rng.choice(vocab, size=count, replace=False)).astype(np.int64)
    ref_inv = _invariants(ours, token_ids)
    sus_inv = _invariants(theirs, token_ids)
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
        statistic={"name": "mean invariant cosine", "value": observed, "architecture": theirs.architecture},
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
