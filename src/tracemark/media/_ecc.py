"""Error correction for the image watermark payload: a K=7 convolutional code with soft Viterbi decoding.

The code is the rate-1/3, constraint-length-7 code of the CCSDS/3GPP family (generators 133, 171, 165
octal), terminated with six zero tail bits so the decoder ends in state 0.  Soft decoding matters: each
coded bit arrives as a sum of many QIM votes whose reliability varies across the image, and the
decoder uses those magnitudes instead of hard decisions (about 2 dB better than hard decisions).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
RATE_INVERSE = len(GENERATORS)
_STATES = 1 << (CONSTRAINT - 1)
_TAIL = CONSTRAINT - 1


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


# Output bits of each (state, input) transition: _OUT[state, bit] -> tuple of coded bits as +-1 (0 -> +1).
_OUT_SIGN = np.empty((_STATES, 2, RATE_INVERSE), dtype=np.float64)
for _state in range(_STATES):
    for _bit in range(2):
        _register = (_state << 1) | _bit
        for _j, _generator in enumerate(GENERATORS):
            _OUT_SIGN[_state, _bit, _j] = 1.0 - 2.0 * _parity(_register & _generator)
# Each next state has two predecessors: next = ((prev << 1) | bit) & 63, so bit = next & 1.
_NEXT = np.arange(_STATES)
_PRED = np.stack([_NEXT >> 1, (_NEXT >> 1) | (_STATES >> 1)], axis=1)
_PRED_BIT = _NEXT & 1
_BRANCH_SIGN = np.stack([_OUT_SIGN[_PRED[:, k], _PRED_BIT] for k in range(2)], axis=1)  # (64, 2, 3)


def coded_length(data_bits: int) -> int:
    """Number of coded bits for ``data_bits`` message bits (tail included)."""
    return (data_bits + _TAIL) * RATE_INVERSE


def encode(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Convolutionally encode ``bits`` (values 0/1), appending the zero tail."""
    state = 0
    out = np.empty(coded_length(len(bits)), dtype=np.uint8)
    position = 0
    for bit in [int(b) for b in bits] + [0] * _TAIL:
        register = (state << 1) | bit
        for generator in GENERATORS:
            out[position] = _parity(register & generator)
            position += 1
        state = register & (_STATES - 1)
    return out


def decode_soft(soft: npt.NDArray[np.float64], data_bits: int) -> npt.NDArray[np.uint8]:
    """Maximum-likelihood message for soft values (positive favours 0), by the Viterbi algorithm."""
    best: npt.NDArray[np.uint8] = decode_soft_list(soft, data_bits, 1)[0]
    return best


def decode_soft_list(soft: npt.NDArray[np.float64], data_bits: int, size: int) -> npt.NDArray[np.uint8]:
    """The ``size`` most likely messages for soft values, most likely first: (size, data_bits), fewer rows
    where the trellis holds fewer paths.

    The list Viterbi algorithm (parallel form): each state keeps its ``size`` best paths instead of
    one.  Where a check code tells a right message from a wrong one, trying the list's messages in
    order decodes at a lower signal-to-noise ratio than the single best path does; every message
    tried counts once against the check's false-positive bound.
    """
    steps = data_bits + _TAIL
    if soft.shape != (steps * RATE_INVERSE,):
        raise ValueError(f"expected {steps * RATE_INVERSE} soft values, got {soft.shape}")
    symbols = soft.reshape(steps, RATE_INVERSE)
    metric = np.full((_STATES, size), -np.inf)
    metric[0, 0] = 0.0
    # choices[step, state, rank]: which of the 2 * size candidates (predecessor k, its rank r) as k * size + r
    choices = np.empty((steps, _STATES, size), dtype=np.int32)
    rows = np.arange(_STATES)[:, None]
    for step in range(steps):
        branch = _BRANCH_SIGN @ symbols[step]  # (64, 2): correlation of each branch with the received symbol
        candidates = (metric[_PRED] + branch[:, :, None]).reshape(_STATES, 2 * size)
        if size == 1:
            order = np.argmax(candidates, axis=1)[:, None]
        else:
            order = np.argsort(-candidates, axis=1, kind="stable")[:, :size]
        choices[step] = order
        metric = candidates[rows, order]
    ranks = np.flatnonzero(np.isfinite(metric[0]))  # the code is terminated: every path ends in state 0
    states = np.zeros(ranks.size, dtype=np.intp)
    bits = np.empty((ranks.size, steps), dtype=np.uint8)
    for step in range(steps - 1, -1, -1):
        bits[:, step] = states & 1
        choice = choices[step, states, ranks]
        states, ranks = _PRED[states, choice // size], choice % size
    return bits[:, :data_bits]
