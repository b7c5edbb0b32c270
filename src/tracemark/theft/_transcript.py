"""What a suspect said: prompts and completions collected under a pre-registered token budget.

Collection and testing are separate steps so that a third party holding the key can re-run
the test on the very same transcript (``tracemark.theft.transcript/v1``, JSON Lines: one
header line, then one line per exchange with SHA-256 hashes of prompt and response).
The budget is fixed before collection: prompts are asked in the given order until the
responses hold ``budget_tokens`` tokens of the defender's tokenizer, and the test uses
exactly that many (picking the budget after seeing p-values would be p-hacking).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from tracemark.errors import InvalidInputError, SuspectQueryError
from tracemark.text import TextTokenizer, canonicalize
from tracemark.theft._adapters import TextModel
from tracemark.theft._verdict import sha256_text

TRANSCRIPT_FORMAT = "tracemark.theft.transcript/v1"
#: Largest transcript file the reader accepts (bytes).
MAX_TRANSCRIPT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Exchange:
    """One prompt and the suspect's completion (``ok`` False when the query failed)."""

    prompt: str
    response: str
    seed: int
    ok: bool = True
    error: str = ""


@dataclass(frozen=True)
class Transcript:
    """Every query made to a suspect, in order, failures included."""

    suspect: str
    budget_tokens: int
    max_new_tokens: int
    exchanges: tuple[Exchange, ...]

    @property
    def failures(self) -> int:
        """Queries that failed."""
        return sum(1 for e in self.exchanges if not e.ok)

    def to_jsonl(self) -> bytes:
        """The JSON Lines form (header, then exchanges with their hashes)."""
        header = {
            "format": TRANSCRIPT_FORMAT,
            "suspect": self.suspect,
            "budget_tokens": self.budget_tokens,
            "max_new_tokens": self.max_new_tokens,
            "exchanges": len(self.exchanges),
        }
        lines = [json.dumps(header, sort_keys=True, ensure_ascii=False)]
        for e in self.exchanges:
            record = {
                "prompt": e.prompt,
                "response": e.response,
                "seed": e.seed,
                "ok": e.ok,
                "error": e.error,
                "prompt_sha256": sha256_text(e.prompt),
                "response_sha256": sha256_text(e.response),
            }
            lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def from_jsonl(cls, data: bytes) -> Transcript:
        """Parse and check a transcript: format, types, and every recorded hash."""
        if len(data) > MAX_TRANSCRIPT_BYTES:
            raise InvalidInputError(f"transcript is larger than {MAX_TRANSCRIPT_BYTES} bytes")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise InvalidInputError("transcript is not UTF-8") from None
        try:
            header = json.loads(lines[0])
            if not isinstance(header, dict) or header.get("format") != TRANSCRIPT_FORMAT:
                raise InvalidInputError(f"not a {TRANSCRIPT_FORMAT} file")
            exchanges = []
            for number, line in enumerate(lines[1:], start=2):
                if not line.strip():
                    continue
                raw = json.loads(line)
                e = Exchange(
                    prompt=_string(raw, "prompt"),
                    response=_string(raw, "response"),
                    seed=int(raw["seed"]),
                    ok=bool(raw["ok"]),
                    error=str(raw.get("error", "")),
                )
                if raw.get("prompt_sha256") != sha256_text(e.prompt) or raw.get("response_sha256") != sha256_text(
                    e.response
                ):
                    raise InvalidInputError(f"transcript line {number}: a hash does not match its text")
                exchanges.append(e)
            transcript = cls(
                suspect=str(header["suspect"]),
                budget_tokens=int(header["budget_tokens"]),
                max_new_tokens=int(header["max_new_tokens"]),
                exchanges=tuple(exchanges),
            )
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed transcript: {exc}") from None
        if header.get("exchanges") != len(transcript.exchanges):
            raise InvalidInputError("transcript is truncated: fewer exchanges than its header announces")
        return transcript


def _string(raw: object, name: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get(name), str):
        raise ValueError(f"{name} must be a string")
    value: str = raw[name]
    return value


def count_tokens(tokenizer: TextTokenizer, text: str) -> int:
    """Tokens of the canonical form of ``text`` (what the test scores)."""
    return int(tokenizer.encode(canonicalize(text).text).ids.shape[0])


def collect_completions(
    model: TextModel,
    prompts: Sequence[str],
    tokenizer: TextTokenizer,
    *,
    budget_tokens: int,
    max_new_tokens: int = 128,
    seed: int = 0,
    max_failures: int | None = None,
) -> Transcript:
    """Ask ``prompts`` in order until the responses hold ``budget_tokens`` tokens (or prompts run out).

    Query ``i`` uses seed ``seed + i``.  Failed queries are recorded and skipped; collection
    stops early after ``max_failures`` of them (default: a tenth of the prompts, at least 10).
    """
    if budget_tokens < 1:
        raise InvalidInputError("budget_tokens must be positive")
    if not prompts or any(not p.strip() for p in prompts):
        raise InvalidInputError("give at least one prompt, none of them empty")
    limit = max_failures if max_failures is not None else max(10, len(prompts) // 10)
    exchanges: list[Exchange] = []
    collected = 0
    failed = 0
    for index, prompt in enumerate(prompts):
        if collected >= budget_tokens or failed > limit:
            break
        try:
            response = model.complete(prompt, max_new_tokens=max_new_tokens, seed=seed + index)
        except SuspectQueryError as exc:
            failed += 1
            exchanges.append(Exchange(prompt, "", seed + index, ok=False, error=exc.diagnostics()))
            continue
        exchanges.append(Exchange(prompt, response, seed + index))
        collected += count_tokens(tokenizer, response)
    return Transcript(
        suspect=model.name, budget_tokens=budget_tokens, max_new_tokens=max_new_tokens, exchanges=tuple(exchanges)
    )
