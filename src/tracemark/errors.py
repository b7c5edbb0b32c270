"""The single error hierarchy of tracemark.

Every failure a user can cause (bad input, a wrong key, a mismatched tokenizer, a
tampered proof) raises a subclass of :class:`TracemarkError`.  The CLI turns any
``TracemarkError`` into one line on stderr and a non-zero exit status; it never
prints a traceback for them.  Verifiers raise; they never return ``False``.
"""

from __future__ import annotations


class TracemarkError(Exception):
    """Root of every error tracemark raises on purpose."""

    #: Exit status the CLI uses when this error ends a command.
    exit_code: int = 1

    def diagnostics(self) -> str:
        """A one-line, human-readable reason, safe to print (never holds secrets)."""
        message = str(self) or self.__class__.__name__
        return " ".join(message.split())


class InvalidInputError(TracemarkError):
    """The input itself is unusable: empty, binary, not UTF-8, too large, malformed."""

    exit_code = 2


class KeyringError(TracemarkError):
    """The keyring is missing, unreadable, or has no key with the requested id."""

    exit_code = 3


class UnknownKeyError(KeyringError):
    """No key with the requested id (or no default key for the purpose)."""


class TextWatermarkError(TracemarkError):
    """Failures of ``tracemark.text``."""

    exit_code = 4


class KeyMismatchError(TextWatermarkError):
    """The key record does not fit the model, tokenizer or parameters in use.

    Raised instead of silently finding no watermark: a detector run with the wrong
    tokenizer or vocabulary size would report "not marked" for every text.
    """


class ModelLoadError(TextWatermarkError):
    """A model or tokenizer directory cannot be loaded."""


class KnownOutputIndexError(TextWatermarkError):
    """The provider's known-output index is missing, corrupt, or made for another key (exit status 4)."""


class MissingExtraError(TracemarkError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 5

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'tracemark[{extra}]'")
        self.feature = feature
        self.extra = extra


class TlogError(TracemarkError):
    """Failures of ``tracemark.tlog`` (log storage, proofs, notes, witnessing)."""

    exit_code = 6


class MediaError(TracemarkError):
    """Failures of ``tracemark.media``."""

    exit_code = 7


class TheftError(TracemarkError):
    """Failures of ``tracemark.theft``."""

    exit_code = 8


class SupplyChainError(TracemarkError):
    """Failures of ``tracemark.supply``."""

    exit_code = 9


class ElectronAuditError(TracemarkError):
    """Failures of ``tracemark.electron``."""

    exit_code = 10


class ServiceError(TracemarkError):
    """Failures of ``tracemark.service`` start-up or configuration."""

    exit_code = 13


class TlogFormatError(TlogError):
    """A note, checkpoint, receipt, verifier key, proof encoding or provenance record is malformed."""


class TlogSignatureError(TlogError):
    """A note has no valid signature from a trusted key, or belongs to another log.

    Also raised when a known key's signature fails, and for receipts issued by another log.
    """


class TlogProofError(TlogError):
    """A Merkle proof does not verify (RFC 9162 §2.1.3.2, §2.1.4.2)."""


class InclusionProofError(TlogProofError):
    """An inclusion proof does not lead from the leaf to the checkpoint's root."""


class ConsistencyProofError(TlogProofError):
    """A consistency proof does not show that the old tree is a prefix of the new one."""


class TlogStorageError(TlogError):
    """The log's database is unreadable, busy, corrupt, or holds another log."""


class WitnessError(TlogError):
    """A witness refuses a checkpoint (old size larger than the new one, unknown origin, ...)."""


class WitnessConflictError(WitnessError):
    """The old size does not match the witness's latest cosigned size (tlog-witness: 409)."""

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class AdvisoryDatabaseError(SupplyChainError):
    """The offline advisory database is missing, empty, unreadable, malformed or too old.

    Raised instead of reporting "no vulnerabilities": an audit without a usable database
    must fail closed.
    """


class ModelSignatureError(SupplyChainError):
    """A model signature does not verify, names another signer, or leaves files uncovered."""


class DependencyAuditError(SupplyChainError):
    """A requirements, lock file or environment cannot be read for a dependency audit."""


class BomValidationError(SupplyChainError):
    """A bill of materials does not validate against the CycloneDX schema."""


class ImageInputError(MediaError):
    """An image is unreadable, malformed, truncated, animated, of an unsupported format, too small, or too large
    (decompression bomb).  Bad input, not broken provenance: exit status 2, like :class:`InvalidInputError`."""

    exit_code = 2


class ContentCredentialError(MediaError):
    """A C2PA manifest cannot be signed or read (bad certificate, key, or manifest definition)."""


class SoftBindingRepositoryError(MediaError):
    """The soft-binding repository is unreadable, or a lookup is malformed."""


class SuspectQueryError(TheftError):
    """A suspect model or endpoint could not be queried (unreachable, malformed answer, refused probe).

    The theft tests count these failures; too many make the verdict ``inconclusive``, never "clean".
    """


class ComplianceError(TracemarkError):
    """Failures of ``tracemark.comply``: an unusable deployment file, a report that does not verify."""

    exit_code = 14


class AgentError(TracemarkError):
    """Failures of ``tracemark.agents``: traces, policies, pins, gateway audits, certificates."""

    exit_code = 16


class AgentTraceError(AgentError):
    """An agent trace is malformed or its hash chain is broken (an event edited, dropped or reordered)."""


class AgentPolicyError(AgentError):
    """An agent policy file is unreadable or invalid (unknown member, wrong type, bad formula)."""


class ToolCallDeniedError(AgentError):
    """The runtime guard refused a tool call; ``decision`` says which rule and which argument provenance."""

    def __init__(self, message: str, decision: object) -> None:
        super().__init__(message)
        self.decision = decision


class ToolPinError(AgentError):
    """MCP tools or agent skills drifted from their lock file (edited, widened, renamed, shadowed, added)."""


class AgentCertificateError(AgentError):
    """An agent certificate does not verify: bad signature, receipt, or a configuration that changed."""


__all__ = [
    "AdvisoryDatabaseError",
    "AgentCertificateError",
    "AgentError",
    "AgentPolicyError",
    "AgentTraceError",
    "BomValidationError",
    "ComplianceError",
    "ConsistencyProofError",
    "ContentCredentialError",
    "DependencyAuditError",
    "ElectronAuditError",
    "ImageInputError",
    "InclusionProofError",
    "InvalidInputError",
    "KeyMismatchError",
    "KeyringError",
    "MediaError",
    "MissingExtraError",
    "ModelLoadError",
    "ModelSignatureError",
    "ServiceError",
    "SoftBindingRepositoryError",
    "SupplyChainError",
    "SuspectQueryError",
    "TextWatermarkError",
    "TheftError",
    "TlogError",
    "TlogFormatError",
    "TlogProofError",
    "TlogSignatureError",
    "TlogStorageError",
    "ToolCallDeniedError",
    "ToolPinError",
    "TracemarkError",
    "UnknownKeyError",
    "WitnessConflictError",
    "WitnessError",
]
