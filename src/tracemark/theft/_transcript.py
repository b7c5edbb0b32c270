"""What a suspect said: prompts and completions collected under a pre-registered token budget.

Collection and testing are separate steps so that a third party holding the key can re-run
the test on the very same transcript (JSON Lines: one header line, one line per exchange with
SHA-256 hashes of prompt and response, and, when signed, a last signature line).  The budget is
fixed before collection: prompts are asked in the given order until the responses hold
``budget_tokens`` tokens of the defender's tokenizer, and the test uses exactly that many
(picking the budget after seeing p-values would be p-hacking).

``tracemark.theft.transcript/v2`` seals that commitment.  The header carries the
pre-registration (the test's settings, the keys' ids, a hash of the prompt list), the sampling
settings, the SHA-256 of the suspect's model files when it is a local directory, and a *seal*:
an Ed25519 signature over all of that, made before the first query.  Each exchange records when
it was asked and answered, and a hash chain links the header and every line; the signature line
signs the chain's head.  A transcript edited after the fact, even with its per-line hashes
recomputed, no longer matches the signature.  The signature proves who wrote the transcript, and
the seal's time is the signer's word: logging the seal in a transparency log before the first
query is what proves the order to a third party.  Version 1 files (no seal) are still read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracemark._json import FrozenDict, FrozenJSONObject, JSONObject, freeze, thaw_object
from tracemark.errors import InvalidInputError, SuspectQueryError, TheftError, TracemarkError
from tracemark.text import TextTokenizer, canonicalize
from tracemark.theft._adapters import TextModel
from tracemark.theft._verdict import sha256_text
from tracemark.tlog import NoteSigner, NoteVerifier

TRANSCRIPT_FORMAT = "tracemark.theft.transcript/v2"
#: The unsealed format still read (no seal, no times, no signature).
TRANSCRIPT_FORMAT_V1 = "tracemark.theft.transcript/v1"
#: Largest transcript file the reader accepts (bytes).
MAX_TRANSCRIPT_BYTES = 256 * 1024 * 1024
#: Largest model file hashed into the evidence pack (bytes); larger ones are listed with their size only.
MAX_HASHED_FILE_BYTES = 64 * 1024 * 1024 * 1024
_SEAL_CONTEXT = b"tracemark/theft/transcript-seal/v2\n"
_SIGNATURE_CONTEXT = b"tracemark/theft/transcript-signature/v2\n"


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Exchange:
    """One prompt and the suspect's completion (``ok`` False when the query failed).

    ``asked_at`` and ``answered_at`` are Unix times (0 in version-1 transcripts).
    """

    prompt: str
    response: str
    seed: int
    ok: bool = True
    error: str = ""
    asked_at: float = 0.0
    answered_at: float = 0.0


@dataclass(frozen=True)
class Seal:
    """The pre-registration's signature, made before the first query.

    ``signer`` is the signer's verifier key (``name+hash+base64``), ``signature`` base64 Ed25519
    over the seal context and the canonical JSON of the pre-registration, suspect, sampling and
    model files; ``sealed_at`` the signer's Unix time.
    """

    signer: str
    signature: str
    sealed_at: float


@dataclass(frozen=True)
class Transcript:
    """Every query made to a suspect, in order, failures included, with what was committed before them."""

    suspect: str
    budget_tokens: int
    max_new_tokens: int
    exchanges: tuple[Exchange, ...]
    #: The test's settings fixed before the first query (``mode``, ``config``, ``plan``, ``key_ids``,
    #: ``prompts_sha256``); empty when the transcript was not pre-registered.
    preregistration: FrozenJSONObject = field(default_factory=FrozenDict)
    #: How the suspect was asked: ``max_new_tokens``, ``seed`` (query ``i`` uses ``seed + i``),
    #: ``temperature`` and ``adapter`` where known.
    sampling: FrozenJSONObject = field(default_factory=FrozenDict)
    #: SHA-256 of the suspect's model files (a local model directory), by file name.
    suspect_files: FrozenJSONObject = field(default_factory=FrozenDict)
    seal: Seal | None = None
    #: Base64 Ed25519 signature over the hash chain's head, and the verifier key that made it.
    signature: str = ""
    signer: str = ""
    format: str = TRANSCRIPT_FORMAT

    def __post_init__(self) -> None:
        for name in ("preregistration", "sampling", "suspect_files"):
            object.__setattr__(self, name, freeze(getattr(self, name)))

    @property
    def failures(self) -> int:
        """Queries that failed."""
        return sum(1 for e in self.exchanges if not e.ok)

    def _seal_message(self) -> bytes:
        return _SEAL_CONTEXT + _canonical(
            {
                "suspect": self.suspect,
                "budget_tokens": self.budget_tokens,
                "max_new_tokens": self.max_new_tokens,
                "preregistration": thaw_object(self.preregistration),
                "sampling": thaw_object(self.sampling),
                "suspect_files": thaw_object(self.suspect_files),
                "sealed_at": self.seal.sealed_at if self.seal else None,
            }
        )

    def sealed(self, signer: NoteSigner, *, when: float | None = None) -> Transcript:
        """This (not yet collected) transcript with its pre-registration signed by ``signer``."""
        seal = Seal(signer.vkey, "", time.time() if when is None else when)
        signature = signer.sign(replace(self, seal=seal)._seal_message()).signature
        return replace(self, seal=replace(seal, signature=base64.b64encode(signature).decode("ascii")))

    def _header(self) -> JSONObject:
        header: JSONObject = {
            "format": self.format,
            "suspect": self.suspect,
            "budget_tokens": self.budget_tokens,
            "max_new_tokens": self.max_new_tokens,
            "exchanges": len(self.exchanges),
        }
        if self.format == TRANSCRIPT_FORMAT:
            header["preregistration"] = thaw_object(self.preregistration)
            header["sampling"] = thaw_object(self.sampling)
            header["suspect_files"] = thaw_object(self.suspect_files)
            header["seal"] = (
                {"signer": self.seal.signer, "signature": self.seal.signature, "sealed_at": self.seal.sealed_at}
                if self.seal
                else None
            )
        return header

    def _records(self) -> list[JSONObject]:
        records: list[JSONObject] = []
        for e in self.exchanges:
            record: JSONObject = {
                "prompt": e.prompt,
                "response": e.response,
                "seed": e.seed,
                "ok": e.ok,
                "error": e.error,
                "prompt_sha256": sha256_text(e.prompt),
                "response_sha256": sha256_text(e.response),
            }
            if self.format == TRANSCRIPT_FORMAT:
                record["asked_at"] = e.asked_at
                record["answered_at"] = e.answered_at
            records.append(record)
        return records

    def chain_head(self) -> str:
        """SHA-256 hash chain over the header and every exchange record (what the signature signs)."""
        head = hashlib.sha256(_canonical(self._header())).hexdigest()
        for record in self._records():
            head = hashlib.sha256(head.encode("ascii") + _canonical(record)).hexdigest()
        return head

    def signed(self, signer: NoteSigner) -> Transcript:
        """This transcript with its signature line (sign after the last query)."""
        if self.format != TRANSCRIPT_FORMAT:
            raise InvalidInputError("only a version-2 transcript can be signed")
        message = _SIGNATURE_CONTEXT + self.chain_head().encode("ascii")
        signature = base64.b64encode(signer.sign(message).signature).decode("ascii")
        return replace(self, signature=signature, signer=signer.vkey)

    def verify(self, verifier: NoteVerifier | str) -> None:
        """Raise :class:`~tracemark.errors.TheftError` unless ``verifier`` sealed and signed this very transcript.

        Fails closed: an unsigned or unsealed transcript, another signer, or any edit (a changed
        exchange, header, setting or time, even with its line hashes recomputed) is refused.
        """
        try:
            trusted = NoteVerifier.from_vkey(verifier) if isinstance(verifier, str) else verifier
        except TracemarkError as exc:
            raise InvalidInputError(f"transcript verifier key: {exc.diagnostics()}") from None
        if self.format != TRANSCRIPT_FORMAT or not self.signature or self.seal is None or not self.seal.signature:
            raise TheftError("the transcript is not sealed and signed: nothing proves it was not edited")
        if self.signer != trusted.vkey or self.seal.signer != trusted.vkey:
            raise TheftError("the transcript was sealed or signed by another key than the one trusted")
        try:
            trusted.verify(self._seal_message(), base64.b64decode(self.seal.signature, validate=True))
            trusted.verify(
                _SIGNATURE_CONTEXT + self.chain_head().encode("ascii"), base64.b64decode(self.signature, validate=True)
            )
        except (TracemarkError, binascii.Error):
            raise TheftError(
                "the transcript's seal or signature does not verify: it was edited after signing"
            ) from None
        asked = [e.asked_at for e in self.exchanges if e.asked_at]
        if asked and min(asked) < self.seal.sealed_at:
            raise TheftError("the transcript was sealed after its first query")

    def to_jsonl(self) -> bytes:
        """The JSON Lines form (header, exchanges with their hashes, then the signature line if signed)."""
        lines = [json.dumps(self._header(), sort_keys=True, ensure_ascii=False)]
        lines += [json.dumps(record, sort_keys=True, ensure_ascii=False) for record in self._records()]
        if self.signature:
            signature_line = {"signature": self.signature, "signer": self.signer, "chain_sha256": self.chain_head()}
            lines.append(json.dumps(signature_line, sort_keys=True))
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def from_jsonl(cls, data: bytes) -> Transcript:
        """Parse and check a transcript: format, types, and every recorded hash.

        A signature is read, not verified: call :meth:`verify` with the key you trust.
        """
        if len(data) > MAX_TRANSCRIPT_BYTES:
            raise InvalidInputError(f"transcript is larger than {MAX_TRANSCRIPT_BYTES} bytes")
        try:
            lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise InvalidInputError("transcript is not UTF-8") from None
        try:
            header = json.loads(lines[0])
            if not isinstance(header, dict) or header.get("format") not in (TRANSCRIPT_FORMAT, TRANSCRIPT_FORMAT_V1):
                raise InvalidInputError(f"not a {TRANSCRIPT_FORMAT} (or v1) file")
            version2 = header["format"] == TRANSCRIPT_FORMAT
            signature: Mapping[str, object] = {}
            body = lines[1:]
            if version2 and body and "signature" in json.loads(body[-1]):
                signature, body = json.loads(body[-1]), body[:-1]
            exchanges = []
            for number, line in enumerate(body, start=2):
                raw = json.loads(line)
                e = Exchange(
                    prompt=_string(raw, "prompt"),
                    response=_string(raw, "response"),
                    seed=int(raw["seed"]),
                    ok=bool(raw["ok"]),
                    error=str(raw.get("error", "")),
                    asked_at=float(raw["asked_at"]) if version2 else 0.0,
                    answered_at=float(raw["answered_at"]) if version2 else 0.0,
                )
                if raw.get("prompt_sha256") != sha256_text(e.prompt) or raw.get("response_sha256") != sha256_text(
                    e.response
                ):
                    raise InvalidInputError(f"transcript line {number}: a hash does not match its text")
                exchanges.append(e)
            seal_raw = header.get("seal") if version2 else None
            seal = (
                Seal(str(seal_raw["signer"]), str(seal_raw["signature"]), float(seal_raw["sealed_at"]))
                if isinstance(seal_raw, dict)
                else None
            )
            transcript = cls(
                suspect=str(header["suspect"]),
                budget_tokens=int(header["budget_tokens"]),
                max_new_tokens=int(header["max_new_tokens"]),
                exchanges=tuple(exchanges),
                preregistration=_object(header.get("preregistration", {})),
                sampling=_object(header.get("sampling", {})),
                suspect_files=_object(header.get("suspect_files", {})),
                seal=seal,
                signature=str(signature.get("signature", "")),
                signer=str(signature.get("signer", "")),
                format=str(header["format"]),
            )
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed transcript: {exc}") from None
        if header.get("exchanges") != len(transcript.exchanges):
            raise InvalidInputError("transcript is truncated: fewer exchanges than its header announces")
        if signature and signature.get("chain_sha256") != transcript.chain_head():
            raise InvalidInputError("transcript's hash chain does not match its signature line: it was edited")
        return transcript


def _object(value: object) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("preregistration, sampling and suspect_files must be JSON objects")
    return value


def _string(raw: object, name: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get(name), str):
        raise ValueError(f"{name} must be a string")
    value: str = raw[name]
    return value


def count_tokens(tokenizer: TextTokenizer, text: str) -> int:
    """Tokens of the canonical form of ``text`` (what the test scores)."""
    return int(tokenizer.encode(canonicalize(text).text).ids.shape[0])


def model_file_hashes(model: object) -> JSONObject:
    """SHA-256 of every regular file at the top of a local model's directory (``model.model_dir``), by name.

    Empty for a suspect without a local directory (an endpoint: its name and URL are all there is).
    """
    directory = getattr(model, "model_dir", None)
    if not isinstance(directory, str | Path) or not Path(directory).is_dir():
        return {}
    hashes: JSONObject = {}
    for path in sorted(Path(directory).iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        if path.stat().st_size > MAX_HASHED_FILE_BYTES:
            hashes[path.name] = f"not hashed: {path.stat().st_size} bytes"
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        hashes[path.name] = digest.hexdigest()
    return hashes


def sampling_settings(model: object, *, max_new_tokens: int, seed: int) -> JSONObject:
    """How the suspect is asked: what the adapter exposes (temperature, endpoint URL) and the seeds."""
    settings: JSONObject = {"max_new_tokens": max_new_tokens, "seed": seed, "adapter": type(model).__name__}
    for attribute in ("temperature", "base_url", "model"):
        value = getattr(model, attribute, None)
        if isinstance(value, str | int | float):
            settings[attribute] = value
    return settings


def prompts_digest(prompts: Sequence[str]) -> str:
    """SHA-256 over the prompts' hashes, in order (commits to the prompt list without storing it)."""
    return hashlib.sha256("\n".join(sha256_text(p) for p in prompts).encode()).hexdigest()


def start_transcript(
    model: TextModel,
    budget_tokens: int,
    *,
    max_new_tokens: int = 128,
    seed: int = 0,
    preregistration: JSONObject | None = None,
    signer: NoteSigner | None = None,
) -> Transcript:
    """An empty transcript that records what will be asked and how; sealed by ``signer`` now, before any query.

    ``budget_tokens`` is the most the run may collect (a sequential plan's last look).
    """
    transcript = Transcript(
        suspect=model.name,
        budget_tokens=budget_tokens,
        max_new_tokens=max_new_tokens,
        exchanges=(),
        preregistration=preregistration or {},
        sampling=sampling_settings(model, max_new_tokens=max_new_tokens, seed=seed),
        suspect_files=model_file_hashes(model),
    )
    return transcript.sealed(signer) if signer is not None else transcript


def collect_completions(
    model: TextModel,
    prompts: Sequence[str],
    tokenizer: TextTokenizer,
    *,
    budget_tokens: int,
    max_new_tokens: int = 128,
    seed: int = 0,
    max_failures: int | None = None,
    earlier: Transcript | None = None,
) -> Transcript:
    """Ask ``prompts`` in order until the responses hold ``budget_tokens`` tokens (or prompts run out).

    Query ``i`` uses seed ``seed + i``.  Failed queries are recorded and skipped; collection
    stops early after ``max_failures`` of them (default: a tenth of the prompts, at least 10).
    ``earlier`` is a transcript to continue: one :func:`start_transcript` made (pre-registered,
    perhaps sealed, no exchanges yet), or one collected with the same prompts up to an earlier
    look of a sequential plan (its exchanges are kept and asking resumes after them).  Any
    signature it had is dropped: sign the result once the last query is done.
    """
    if budget_tokens < 1:
        raise InvalidInputError("budget_tokens must be positive")
    if not prompts or any(not p.strip() for p in prompts):
        raise InvalidInputError("give at least one prompt, none of them empty")
    limit = max_failures if max_failures is not None else max(10, len(prompts) // 10)
    if earlier is not None:
        transcript = replace(earlier, signature="", signer="")
    else:
        transcript = start_transcript(model, budget_tokens, max_new_tokens=max_new_tokens, seed=seed)
    exchanges: list[Exchange] = list(transcript.exchanges)
    collected = sum(count_tokens(tokenizer, e.response) for e in exchanges if e.ok)
    failed = sum(1 for e in exchanges if not e.ok)
    for index in range(len(exchanges), len(prompts)):
        if collected >= budget_tokens or failed > limit:
            break
        prompt = prompts[index]
        asked = time.time()
        try:
            response = model.complete(prompt, max_new_tokens=max_new_tokens, seed=seed + index)
        except SuspectQueryError as exc:
            failed += 1
            exchanges.append(Exchange(prompt, "", seed + index, ok=False, error=exc.diagnostics(), asked_at=asked,
                                      answered_at=time.time()))  # fmt: skip
            continue
        exchanges.append(Exchange(prompt, response, seed + index, asked_at=asked, answered_at=time.time()))
        collected += count_tokens(tokenizer, response)
    return replace(transcript, exchanges=tuple(exchanges))
