"""Asking witnesses for cosignatures over HTTP (c2sp.org/tlog-witness), and publishing under a quorum.

A log that wants its checkpoints witnessed sends each new one to every witness of its
:class:`WitnessPolicy` (``POST <prefix>/add-checkpoint``: ``old <size>``, the consistency proof
from that size, an empty line, the signed checkpoint).  :class:`WitnessClient` remembers the
latest size each witness cosigned; a witness that answers 409 gives its size in the body
(``text/x.tlog.size``) and the client tries once more with a proof from that size.  Every
cosignature is verified against the witness's cosignature/v1 key before it counts; lines from
other keys are ignored (tlog-witness §add-checkpoint).

:class:`CheckpointPublisher` publishes a log's checkpoint only once at least ``quorum`` witnesses
cosigned it: it attaches their cosignatures to the stored checkpoint and records its size as the
*published* size (log metadata ``witness.published_size``).  When the quorum is not met nothing
is published and :class:`WitnessQuorumError` names every witness that failed and why.

The policy file (one directive a line, ``#`` starts a comment) serves both sides of the protocol::

    log <log verifier key> [<origin>]     # witness this log (origin: default the key's name)
    witness <witness verifier key> <url>  # ask this witness (url: its submission prefix)
    quorum <k>                            # publish once k witnesses cosigned (default: all)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlsplit

from tracemark.errors import TlogFormatError, TlogSignatureError, TracemarkError, WitnessError
from tracemark.tlog._checkpoint import Checkpoint, parse_decimal, verify_checkpoint
from tracemark.tlog._log import SignedCheckpoint, TransparencyLog
from tracemark.tlog._merkle import as_hash
from tracemark.tlog._note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    NoteSignature,
    NoteVerifier,
    SignedNote,
    b64encode,
    open_note,
)
from tracemark.tlog._store import StoredCheckpoint
from tracemark.tlog._witness import AddCheckpointRequest

if TYPE_CHECKING:
    import urllib.request

#: Seconds to wait for one witness (connecting, then each read).
DEFAULT_TIMEOUT = 10.0
#: Largest witness answer read (bytes): cosignature lines are about 150 bytes each.
MAX_RESPONSE_BYTES = 64 * 1024
#: Largest policy file read (bytes).
MAX_POLICY_BYTES = 1024 * 1024
#: tlog-witness §add-checkpoint: the content type of a 409 answer carrying the witness's size.
WITNESS_SIZE_CONTENT_TYPE = "text/x.tlog.size"
#: Log metadata key holding the size of the latest published (quorum-cosigned) checkpoint.
PUBLISHED_SIZE_META = "witness.published_size"

#: ``(old size, new size) -> consistency proof`` between two sizes of the log.
ProofSource = Callable[[int, int], Sequence[bytes]]


class WitnessQuorumError(WitnessError):
    """Fewer witnesses cosigned than the policy's quorum; ``failures`` says which failed and why."""

    def __init__(self, message: str, failures: tuple[WitnessFailure, ...]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass(frozen=True)
class WitnessEndpoint:
    """One witness: its cosignature/v1 verifier key and its submission URL prefix."""

    key: NoteVerifier
    url: str

    def __post_init__(self) -> None:
        if self.key.signature_type != SIG_COSIGNATURE_V1:
            raise TlogFormatError(f"witness key {self.key.name} is not a cosignature/v1 key (type 0x04)")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise TlogFormatError(f"witness URL {self.url!r} is not an http(s) URL prefix without query")

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.key.name

    @property
    def add_checkpoint_url(self) -> str:
        """``<submission prefix>/add-checkpoint``."""
        return self.url.rstrip("/") + "/add-checkpoint"


class WitnessFailureJSON(TypedDict):
    """A failed witness, as JSON."""

    witness: str
    url: str
    reason: str
    status: int | None


class PublicationJSON(TypedDict):
    """A published checkpoint, as JSON (``tracemark tlog cosign --json``)."""

    published: bool
    origin: str
    tree_size: int
    root_hash: str
    quorum: int
    witnesses: list[str]
    failures: list[WitnessFailureJSON]
    note: str


@dataclass(frozen=True)
class WitnessFailure:
    """A witness that did not cosign: which one, and why (with the HTTP status when it answered)."""

    witness: str
    url: str
    reason: str
    status: int | None = None

    def describe(self) -> str:
        """One line: ``name (url): reason``."""
        return f"{self.witness} ({self.url}): {self.reason}"

    def to_json(self) -> WitnessFailureJSON:
        """``witness``, ``url``, ``reason`` and ``status`` (null when the witness never answered)."""
        return {"witness": self.witness, "url": self.url, "reason": self.reason, "status": self.status}


@dataclass(frozen=True)
class WitnessedLog:
    """A log this witness cosigns for: its origin and a trusted Ed25519 note key."""

    origin: str
    key: NoteVerifier


@dataclass(frozen=True)
class WitnessPolicy:
    """The logs a witness serves, and the witnesses a log asks with the quorum it needs to publish."""

    witnesses: tuple[WitnessEndpoint, ...] = ()
    quorum: int = 0
    logs: tuple[WitnessedLog, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.quorum <= len(self.witnesses):
            raise TlogFormatError(f"quorum {self.quorum} cannot be met by {len(self.witnesses)} witness(es)")
        if len({w.key.vkey for w in self.witnesses}) != len(self.witnesses):
            raise TlogFormatError("a witness key is listed twice")
        if len({(w.name, w.key.key_id) for w in self.witnesses}) != len(self.witnesses):
            raise TlogFormatError("two witness keys share a name and key ID")

    @classmethod
    def parse(cls, text: str, *, source: str = "witness policy") -> WitnessPolicy:
        """Parse the policy file format (see the module's documentation)."""
        witnesses: list[WitnessEndpoint] = []
        logs: list[WitnessedLog] = []
        quorum: int | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            try:
                directive, args = words[0], words[1:]
                if directive == "log" and len(args) >= 1:
                    key = NoteVerifier.from_vkey(args[0])
                    if key.signature_type != SIG_ED25519:
                        raise TlogFormatError("a log key is an Ed25519 note key (type 0x01)")
                    logs.append(WitnessedLog(" ".join(args[1:]) or key.name, key))
                elif directive == "witness" and len(args) == 2:
                    witnesses.append(WitnessEndpoint(NoteVerifier.from_vkey(args[0]), args[1]))
                elif directive == "quorum" and len(args) == 1 and quorum is None:
                    quorum = parse_decimal(args[0], "quorum", maximum=1000)
                else:
                    raise TlogFormatError(f"expected 'log VKEY [ORIGIN]', 'witness VKEY URL' or 'quorum K': {raw!r}")
            except TlogFormatError as exc:
                raise TlogFormatError(f"{source} line {number}: {exc}") from None
        try:
            return cls(tuple(witnesses), len(witnesses) if quorum is None else quorum, tuple(logs))
        except TlogFormatError as exc:
            raise TlogFormatError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> WitnessPolicy:
        """Read and parse a policy file."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise TlogFormatError(f"cannot read witness policy {path}: {exc.strerror}") from None
        if len(data) > MAX_POLICY_BYTES:
            raise TlogFormatError(f"witness policy {path} is larger than {MAX_POLICY_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TlogFormatError(f"witness policy {path} is not UTF-8") from None
        return cls.parse(text, source=f"witness policy {path}")

    def log_keys(self) -> dict[str, list[NoteVerifier]]:
        """Origin → trusted log keys, as :class:`~tracemark.tlog.Witness` takes them."""
        out: dict[str, list[NoteVerifier]] = {}
        for log in self.logs:
            out.setdefault(log.origin, []).append(log.key)
        return out

    def witness_keys(self) -> tuple[NoteVerifier, ...]:
        """The witnesses' cosignature keys."""
        return tuple(w.key for w in self.witnesses)


@dataclass(frozen=True)
class CosignatureResult:
    """What the witnesses answered for one checkpoint: the verified cosignatures and the failures."""

    checkpoint: Checkpoint
    cosignatures: tuple[NoteSignature, ...]
    witnesses: tuple[str, ...]
    failures: tuple[WitnessFailure, ...]


class _RefusedError(Exception):
    """One witness's failure, carried out of the request code."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _build_opener() -> urllib.request.OpenerDirector:
    """An HTTP opener that follows no redirect (a witness answers itself; a 3xx is a failure).

    ``urllib.request`` is imported here, on first use, so that ``import tracemark.tlog`` stays light.
    """
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None  # urllib then raises HTTPError for the 3xx answer

    return urllib.request.build_opener(NoRedirect)


def _excerpt(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    return " ".join(text.split()) or "(empty body)"


class WitnessClient:
    """Sends a log's checkpoints to the policy's witnesses and collects verified cosignatures.

    Witnesses are asked in parallel; the client remembers the latest size each one cosigned
    (in memory; a fresh client starts from 0 and learns the size from the witness's 409).
    """

    def __init__(self, policy: WitnessPolicy, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.policy = policy
        self.timeout = timeout
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()
        self._opener: urllib.request.OpenerDirector | None = None

    def known_size(self, witness: WitnessEndpoint) -> int:
        """The latest size this client saw ``witness`` cosign (0 when unknown)."""
        with self._lock:
            return self._known.get(witness.key.vkey, 0)

    def _remember(self, witness: WitnessEndpoint, size: int) -> None:
        with self._lock:
            self._known[witness.key.vkey] = size

    def cosign(self, note: str, proof: ProofSource) -> CosignatureResult:
        """Ask every witness to cosign the signed checkpoint ``note``; ``proof(old, new)`` gives proofs."""
        signed = SignedNote.parse(note)
        checkpoint = Checkpoint.parse(signed.text)
        witnesses = self.policy.witnesses
        if not witnesses:
            return CosignatureResult(checkpoint, (), (), ())
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(16, len(witnesses)), thread_name_prefix="tracemark-witness") as pool:
            answers = list(pool.map(lambda w: self._ask(w, signed, checkpoint, proof), witnesses))
        cosignatures = tuple(a for a in answers if isinstance(a, NoteSignature))
        names = tuple(w.name for w, a in zip(witnesses, answers, strict=True) if isinstance(a, NoteSignature))
        failures = tuple(a for a in answers if isinstance(a, WitnessFailure))
        return CosignatureResult(checkpoint, cosignatures, names, failures)

    def _ask(
        self, witness: WitnessEndpoint, signed: SignedNote, checkpoint: Checkpoint, proof: ProofSource
    ) -> NoteSignature | WitnessFailure:
        try:
            return self._exchange(witness, signed, checkpoint, proof)
        except _RefusedError as refused:
            return WitnessFailure(witness.name, witness.url, refused.reason, refused.status)

    def _exchange(
        self, witness: WitnessEndpoint, signed: SignedNote, checkpoint: Checkpoint, proof: ProofSource
    ) -> NoteSignature:
        size = checkpoint.size
        old = self.known_size(witness)
        if old > size:
            old = 0  # the witness saw a larger tree than this checkpoint: its 409 will tell the size
        for attempt in range(2):
            try:
                hashes = tuple(as_hash(h, "proof hash") for h in proof(old, size)) if 0 < old < size else ()
            except TracemarkError as exc:
                raise _RefusedError(f"no consistency proof from size {old}: {exc.diagnostics()}") from None
            body = AddCheckpointRequest(old, hashes, signed.to_text()).to_text().encode("utf-8")
            status, content_type, answer = self._post(witness, body)
            if status == 200:
                cosignature = self._verified(witness, signed, answer)
                self._remember(witness, size)
                return cosignature
            if status != 409 or attempt == 1:
                raise _RefusedError(f"HTTP {status}: {_excerpt(answer)}", status)
            latest = self._conflict_size(content_type, answer)
            self._remember(witness, latest)
            if latest > size:
                raise _RefusedError(
                    f"HTTP 409: the witness cosigned size {latest}, larger than this checkpoint ({size})", 409
                )
            if latest == old:
                raise _RefusedError(f"HTTP 409: the witness holds another tree of size {old} (a fork?)", 409)
            old = latest
        raise _RefusedError("HTTP 409 twice", 409)  # not reached: the second attempt returns or raises above

    @staticmethod
    def _conflict_size(content_type: str, answer: bytes) -> int:
        if content_type != WITNESS_SIZE_CONTENT_TYPE:
            raise _RefusedError(f"HTTP 409 with content type {content_type!r}, not {WITNESS_SIZE_CONTENT_TYPE}", 409)
        try:
            text = answer.decode("ascii")
            if not text.endswith("\n"):
                raise TlogFormatError("no final newline")
            return parse_decimal(text[:-1], "witness tree size")
        except (UnicodeDecodeError, TlogFormatError):
            raise _RefusedError(f"HTTP 409 whose body is not a tree size: {_excerpt(answer)}", 409) from None

    def _post(self, witness: WitnessEndpoint, body: bytes) -> tuple[int, str, bytes]:
        import http.client
        import urllib.error
        import urllib.request

        with self._lock:
            if self._opener is None:
                self._opener = _build_opener()
            opener = self._opener
        request = urllib.request.Request(
            witness.add_checkpoint_url,
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "tracemark-witness-client"},
        )
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return response.status, response.headers.get_content_type(), response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers.get_content_type(), error.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.URLError as error:
            raise _RefusedError(f"unreachable: {error.reason}") from None
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise _RefusedError(f"unreachable: {type(error).__name__}: {error}") from None

    @staticmethod
    def _verified(witness: WitnessEndpoint, signed: SignedNote, answer: bytes) -> NoteSignature:
        """The witness's cosignature from a 200 answer, verified over the checkpoint (tlog-cosignature)."""
        if len(answer) > MAX_RESPONSE_BYTES:
            raise _RefusedError(f"answer is larger than {MAX_RESPONSE_BYTES} bytes", 200)
        try:
            lines = answer.decode("utf-8")
            # tlog-witness: the client MAY append the answer to the checkpoint and open it as a note.
            note = SignedNote.parse(signed.text + "\n" + lines)
            opened = open_note(note, [witness.key])
        except UnicodeDecodeError:
            raise _RefusedError("answer is not UTF-8", 200) from None
        except (TlogFormatError, TlogSignatureError) as exc:
            raise _RefusedError(f"no valid cosignature from {witness.key.vkey}: {exc.diagnostics()}", 200) from None
        pair = (witness.key.name, witness.key.key_id)
        if opened.signed_by(witness.key) is None:
            raise _RefusedError(f"no cosignature from {witness.key.vkey}", 200)
        return next(s for s in note.signatures if (s.name, s.key_id) == pair)


@dataclass(frozen=True)
class Publication:
    """A published checkpoint: quorum met, cosignatures attached, and the witnesses that failed."""

    checkpoint: SignedCheckpoint
    quorum: int
    witnesses: tuple[str, ...]
    failures: tuple[WitnessFailure, ...]

    def to_json(self) -> PublicationJSON:
        """The checkpoint (origin, size, base64 root, note), the cosigning witnesses and the failures."""
        checkpoint = self.checkpoint.checkpoint
        return {
            "published": True,
            "origin": checkpoint.origin,
            "tree_size": checkpoint.size,
            "root_hash": b64encode(checkpoint.root_hash),
            "quorum": self.quorum,
            "witnesses": list(self.witnesses),
            "failures": [failure.to_json() for failure in self.failures],
            "note": self.checkpoint.note,
        }


class CheckpointPublisher:
    """Publishes a log's checkpoints once the policy's quorum of witnesses cosigned them.

    One publication at a time per publisher: concurrent callers wait, and a caller whose entries
    the published checkpoint already covers returns it without asking the witnesses again.
    """

    def __init__(self, policy: WitnessPolicy, client: WitnessClient | None = None) -> None:
        self.policy = policy
        self.client = client if client is not None else WitnessClient(policy)
        self._lock = threading.Lock()

    @staticmethod
    def published(log: TransparencyLog) -> StoredCheckpoint | None:
        """The latest published checkpoint (with its cosignatures), or None before the first."""
        raw = log.store.get_meta(PUBLISHED_SIZE_META)
        if raw is None:
            return None
        return log.store.checkpoint_at(parse_decimal(raw, "published size"))

    def _meets_quorum(self, log: TransparencyLog, note: str) -> tuple[str, ...] | None:
        """The policy witnesses whose cosignatures on ``note`` verify, or None when fewer than the quorum."""
        if log.verifier is None:
            raise WitnessError("publishing needs the log's key")
        try:
            verified = verify_checkpoint(
                note, log.verifier, origin=log.origin, witnesses=self.policy.witness_keys(), quorum=self.policy.quorum
            )
        except TlogSignatureError:
            return None
        return verified.witnesses

    def publish(self, log: TransparencyLog, *, covering: int | None = None) -> Publication:
        """Publish a checkpoint covering the first ``covering`` entries (default: the whole tree).

        Signs a checkpoint of the current tree if needed, sends it to the witnesses, and when at
        least ``quorum`` cosigned, stores their cosignatures with it and marks it published.
        Raises :class:`WitnessQuorumError` (nothing published) when too few did.
        """
        with self._lock:
            wanted = log.size if covering is None else covering
            current = self.published(log)
            if current is not None and current.size >= wanted:
                signed = SignedCheckpoint(Checkpoint.parse(SignedNote.parse(current.note).text), current.note)
                return Publication(signed, self.policy.quorum, self._meets_quorum(log, current.note) or (), ())
            signed = log.checkpoint()
            size = signed.checkpoint.size
            result = self.client.cosign(signed.note, lambda old, new: log.consistency_proof(old, new).hashes)
            candidate = SignedNote.parse(signed.note).with_signatures(result.cosignatures).to_text()
            names = self._meets_quorum(log, candidate)
            if names is None:
                failed = "; ".join(f.describe() for f in result.failures) or "none"
                raise WitnessQuorumError(
                    f"checkpoint {size} of {signed.checkpoint.origin} is not published: "
                    f"{len(result.witnesses)} of {self.policy.quorum} required cosignatures "
                    f"(from {len(self.policy.witnesses)} witnesses); failed: {failed}",
                    result.failures,
                )
            note = log.add_cosignatures(size, result.cosignatures) if result.cosignatures else signed.note
            self._mark_published(log, size)
            return Publication(SignedCheckpoint(signed.checkpoint, note), self.policy.quorum, names, result.failures)

    @staticmethod
    def _mark_published(log: TransparencyLog, size: int) -> None:
        with log.store.writer() as writer:
            raw = log.store.get_meta(PUBLISHED_SIZE_META)
            if raw is None or parse_decimal(raw, "published size") < size:
                writer.set_meta(PUBLISHED_SIZE_META, str(size))
