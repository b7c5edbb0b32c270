"""Model-theft detection: three questions, three tests, never one answered with another's tool.

* :func:`radioactivity` / :func:`radioactivity_open`: was the suspect trained on text
  watermarked with our key?  (closed mode: its generated text; open mode: its next-token
  probabilities).  Exact or conservative p-values over de-duplicated tuples, a wrong-key
  null check on the same data, Bonferroni over keys tried.
* :func:`identify`: is the model behind an endpoint exactly one of our references?
  (model equality testing: MMD with a Hamming kernel, permutation p-value, open-set);
  :func:`identify_logprobs` asks the same of the endpoint's log-probabilities where it
  returns them (sees differences far below what samples resolve, such as int8 weights).
* :func:`weight_provenance`: are the suspect's weights derived from ours?  (HuRef-style
  products invariant to neuron permutation and scaling, token-permutation p-value).

Each returns a :class:`TheftVerdict` (``evidence`` / ``no-evidence`` / ``inconclusive``)
with a JSON form and an evidence pack; :func:`render_markdown` and :func:`render_html`
give the human forms.  Suspects are reached through adapters: :class:`HFModel`,
:class:`CallableTextModel`, :class:`CallableNextTokenModel`, :class:`OpenAICompatibleEndpoint` and
:class:`EndpointNextTokens` (open mode over an endpoint's echoed log-probabilities).
"""

from tracemark.theft._adapters import (
    CallableNextTokenModel,
    CallableTextModel,
    EndpointNextTokens,
    HFModel,
    NextTokenModel,
    OpenAICompatibleEndpoint,
    TextModel,
)
from tracemark.theft._closed import radioactivity, radioactivity_from_transcript
from tracemark.theft._identify import IdentityConfig, identify, mmd_permutation_test, utf8_bytes
from tracemark.theft._identify_logprobs import LogprobIdentityConfig, identify_logprobs
from tracemark.theft._open import radioactivity_open
from tracemark.theft._radioactivity import RadioactivityConfig, wrong_keys
from tracemark.theft._report import render_html, render_markdown
from tracemark.theft._sequential import (
    SequentialPlan,
    radioactivity_sequential,
    radioactivity_sequential_from_transcript,
)
from tracemark.theft._transcript import Exchange, Transcript, collect_completions
from tracemark.theft._verdict import VERDICT_FORMAT, TheftVerdict, TheftVerdictJSON
from tracemark.theft._weights import WeightConfig, load_weights, weight_provenance

__all__ = [
    "VERDICT_FORMAT",
    "CallableNextTokenModel",
    "CallableTextModel",
    "EndpointNextTokens",
    "Exchange",
    "HFModel",
    "IdentityConfig",
    "LogprobIdentityConfig",
    "NextTokenModel",
    "OpenAICompatibleEndpoint",
    "RadioactivityConfig",
    "SequentialPlan",
    "TextModel",
    "TheftVerdict",
    "TheftVerdictJSON",
    "Transcript",
    "WeightConfig",
    "collect_completions",
    "identify",
    "identify_logprobs",
    "load_weights",
    "mmd_permutation_test",
    "radioactivity",
    "radioactivity_from_transcript",
    "radioactivity_open",
    "radioactivity_sequential",
    "radioactivity_sequential_from_transcript",
    "render_html",
    "render_markdown",
    "utf8_bytes",
    "weight_provenance",
    "wrong_keys",
]
