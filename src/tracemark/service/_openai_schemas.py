"""The gateway's wire shapes: OpenAI chat/completions requests (pydantic) and responses (TypedDicts).

Requests follow the OpenAI API reference for ``POST /v1/chat/completions`` and
``POST /v1/completions``; parameters this gateway cannot honour (tools, penalties other than 0,
``echo``, ``suffix``, ``logit_bias``) are refused with a 400 naming the parameter rather than
silently ignored.  Two vLLM extensions are accepted: ``min_tokens`` and ``ignore_eos``.

Responses are the OpenAI objects plus one extension field, ``tracemark`` (:class:`TracemarkJSON`):
the key and model that marked the output and, per choice, its transparency-log entry with the
tlog-proof@v1 receipt.  Streams carry it in their final chunk (``choices: []``).
"""

# No ``from __future__ import annotations`` here: pydantic reads the annotations at run time.

from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

#: Most choices one request may ask for.
MAX_CHOICES = 8
#: Most alternatives per token (chat ``top_logprobs``; completions ``logprobs`` allows 5).
MAX_TOP_LOGPROBS = 20


class TextPart(BaseModel):
    """A content part of a chat message (only text parts: the model reads text)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="ignore")  # name, tool_call_id, ...: not used by a plain chat template

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        """The message's text (parts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """``stream_options``: with ``include_usage`` the last chunk before ``[DONE]`` carries ``usage``."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _SamplingRequest(BaseModel):
    """What chat and completion requests share."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=300)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    presence_penalty: float = Field(default=0.0, ge=0.0, le=0.0, description="only 0 is supported")
    frequency_penalty: float = Field(default=0.0, ge=0.0, le=0.0, description="only 0 is supported")
    user: str | None = Field(default=None, max_length=256)
    #: vLLM extension: end-of-text is not sampled before this many tokens.
    min_tokens: int = Field(default=0, ge=0)
    #: vLLM extension: never stop at end-of-text.
    ignore_eos: bool = False

    def stop_strings(self) -> tuple[str, ...]:
        """``stop`` as a tuple of non-empty strings (at most 4, as OpenAI allows)."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(stop for stop in stops if stop)


class ChatCompletionRequest(_SamplingRequest):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)


class CompletionRequest(_SamplingRequest):
    """``POST /v1/completions`` (a prompt string, or a list of up to 8 strings)."""

    prompt: str | list[str]
    max_tokens: int = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: Literal[False] = False
    suffix: None = None

    def prompts(self) -> list[str]:
        """The prompt(s) as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


# -- responses --------------------------------------------------------------------------------------


class OpenAIErrorDetail(TypedDict):
    """An OpenAI error object's ``error``."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorJSON(TypedDict):
    """``{"error": {"message", "type", "param", "code"}}``: every gateway error."""

    error: OpenAIErrorDetail


class ModelJSON(TypedDict):
    """One entry of ``GET /v1/models``."""

    id: str
    object: str
    created: int
    owned_by: str


class ModelListJSON(TypedDict):
    """``GET /v1/models``."""

    object: str
    data: list[ModelJSON]


class UsageJSON(TypedDict):
    """Tokens read and written."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChoiceReceiptJSON(TypedDict):
    """One choice's log entry: its index in the log and its receipt (tlog-proof@v1 text)."""

    choice: int
    index: int
    leaf_hash: str
    tree_size: int
    record: dict[str, str]
    receipt: str | None
    integrated_time: str | None
    duplicate: bool


class TracemarkJSON(TypedDict):
    """The ``tracemark`` extension field: how the output was marked and where it is logged."""

    key_id: str
    scheme: str
    model_id: str
    log_origin: str | None
    receipts: list[ChoiceReceiptJSON]


class TopLogprobJSON(TypedDict):
    """An alternative token (chat logprobs)."""

    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobJSON(TypedDict):
    """A sampled token with its alternatives (chat logprobs)."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprobJSON]


class ChatLogprobsJSON(TypedDict):
    """A chat choice's ``logprobs``."""

    content: list[TokenLogprobJSON]


class CompletionLogprobsJSON(TypedDict):
    """A completion choice's ``logprobs`` (the legacy shape)."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class AssistantMessageJSON(TypedDict):
    """The generated message."""

    role: str
    content: str


class ChatChoiceJSON(TypedDict):
    """A finished chat choice."""

    index: int
    message: AssistantMessageJSON
    logprobs: ChatLogprobsJSON | None
    finish_reason: str


class ChatCompletionJSON(TypedDict):
    """``POST /v1/chat/completions`` without ``stream``."""

    id: str
    object: str
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatChoiceJSON]
    usage: UsageJSON
    tracemark: TracemarkJSON


class CompletionChoiceJSON(TypedDict):
    """A finished completion choice."""

    index: int
    text: str
    logprobs: CompletionLogprobsJSON | None
    finish_reason: str


class CompletionJSON(TypedDict):
    """``POST /v1/completions`` without ``stream``."""

    id: str
    object: str
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoiceJSON]
    usage: UsageJSON
    tracemark: TracemarkJSON


class ChatDeltaJSON(TypedDict, total=False):
    """What a chat chunk adds to a choice's message."""

    role: str
    content: str


class ChatChunkChoiceJSON(TypedDict):
    """One choice's part of a chat chunk."""

    index: int
    delta: ChatDeltaJSON
    logprobs: ChatLogprobsJSON | None
    finish_reason: str | None


class CompletionChunkChoiceJSON(TypedDict):
    """One choice's part of a completion chunk."""

    index: int
    text: str
    logprobs: CompletionLogprobsJSON | None
    finish_reason: str | None


class ChunkJSON(TypedDict):
    """A streamed chunk (``chat.completion.chunk`` or ``text_completion``).

    The final chunk has ``choices: []``, ``usage`` when asked for, and ``tracemark``.
    """

    id: str
    object: str
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatChunkChoiceJSON] | list[CompletionChunkChoiceJSON]
    usage: UsageJSON | None
    tracemark: TracemarkJSON | None
