"""The text watermark in llama.cpp through ``llama-cpp-python``'s logits-processor hook.

``Llama.create_completion(..., logits_processor=LogitsProcessorList([processor]))`` calls each
processor with the whole sequence so far (prompt and output, a 1-D ``numpy.intc`` array) and
the next token's logits (a 1-D ``numpy.single`` array of ``n_vocab``) and samples from what it
returns.  :class:`LlamaCppWatermark` is such a callable: it runs tracemark's Hugging Face
processor for the key (:func:`~tracemark.text.logits_processor`) on that one row, so the
biased logits are the ones ``generate()`` would get for the same tokens, and text sampled
from them is detected with the same p-value.

Use one instance per completion (``reset()`` it to reuse one): SynthID keeps the sequence's
context history.  llama.cpp applies its own samplers (top-k, top-p, temperature) after the
processors; a SynthID key needs them neutral (``temperature=1``, ``top_k=0``, ``top_p=1``).  The
model's GGUF vocabulary must be the tokenizer the key was made for (the key records its hash;
detection refuses another).  Needs torch (the ``text`` extra); ``llama-cpp-python`` itself is
never imported here.

    from llama_cpp import Llama, LogitsProcessorList
    llm = Llama(model_path="model.gguf")
    out = llm.create_completion(prompt, logits_processor=LogitsProcessorList([LlamaCppWatermark(key)]))
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tracemark.keys import TextKey
from tracemark.text._processors import logits_processor
from tracemark.text._schemes import load_scheme


class LlamaCppWatermark:
    """A llama-cpp-python logits processor that marks with ``key`` (see the module docstring)."""

    def __init__(self, key: TextKey) -> None:
        self.key = key
        self.scheme = load_scheme(key)
        self._processor = logits_processor(self.scheme)

    def reset(self) -> None:
        """Start a new completion (forget SynthID's history)."""
        self._processor = logits_processor(self.scheme)

    def __call__(self, input_ids: NDArray[np.intc], scores: NDArray[np.single]) -> NDArray[np.single]:
        import torch

        ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64).reshape(1, -1))
        logits = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32).reshape(1, -1))
        marked = self._processor(ids, logits)
        return np.asarray(marked.reshape(-1).numpy(), dtype=np.single)
