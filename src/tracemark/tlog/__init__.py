"""tracemark.tlog: a transparency log of provenance records.

Append records in durable batches, sign C2SP checkpoints with the log's Ed25519 note key,
hand out tlog-proof@v1 receipts that anyone holding the log's verifier key can check
offline, and let witnesses cosign (cosignature/v1) after checking consistency::

    from tracemark.tlog import ProvenanceRecord, TransparencyLog, NoteSigner, verify_receipt

    signer = NoteSigner.generate("example.com/log")
    with TransparencyLog.open("log.sqlite3", signer=signer) as log:
        record = ProvenanceRecord.create(content=b"...", kind="text", key_id="tm-native-0123", model_id="m")
        result = log.append(record)
        log.checkpoint()
        receipt = log.receipt(result.index).to_text()
    verified = verify_receipt(receipt, signer.verifier)   # raises unless the receipt is valid

Merkle primitives (RFC 9162 hashing, proof generation and verification) live apart in
:mod:`tracemark.tlog.merkle`.
"""

from tracemark.tlog._checkpoint import Checkpoint, VerifiedCheckpoint, sign_checkpoint, verify_checkpoint
from tracemark.tlog._log import (
    AppendResult,
    BatchingAppender,
    CheckpointJSON,
    ConsistencyJSON,
    ConsistencyProof,
    InclusionProof,
    SignedCheckpoint,
    TransparencyLog,
)
from tracemark.tlog._monitor import LogMonitor, MonitorEvent, MonitorEventJSON, MonitorState
from tracemark.tlog._note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    NoteKeyId,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    OpenedNote,
    SignedNote,
    VerifiedSignature,
    b64decode_strict,
    b64encode,
    open_note,
    sign_note,
)
from tracemark.tlog._receipt import MAX_RECEIPT_BYTES, Receipt, VerifiedReceipt, VerifiedReceiptJSON, verify_receipt
from tracemark.tlog._records import RECORD_FORMAT, ProvenanceRecord, RecordKind, image_log_checker, image_recorder
from tracemark.tlog._store import LogStore, MemoryStore, SQLiteStore, StoredCheckpoint, StoreWriter, TreeState
from tracemark.tlog._tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    DirectoryTileSource,
    GrowthProof,
    HTTPTileSource,
    LogForkError,
    LogRollbackError,
    SplitViewError,
    TileAddress,
    TileClient,
    TileExport,
    TileFetchError,
    TileFormatError,
    TileHashError,
    TileReceiptCheck,
    TileSource,
    export_tiles,
    open_tile_source,
    parse_entry_bundle,
    read_tile,
    tiles_for_size,
)
from tracemark.tlog._timestamp import TimestampError, TimestampToken, request_timestamp, verify_timestamp
from tracemark.tlog._witness import (
    MAX_WITNESS_REQUEST_BYTES,
    AddCheckpointRequest,
    Witness,
    WitnessedTree,
    WitnessStateError,
    WitnessUnknownLogError,
    witness_status,
)
from tracemark.tlog._witness_client import (
    WITNESS_SIZE_CONTENT_TYPE,
    CheckpointPublisher,
    CosignatureResult,
    Publication,
    PublicationJSON,
    WitnessClient,
    WitnessedLog,
    WitnessEndpoint,
    WitnessFailure,
    WitnessFailureJSON,
    WitnessPolicy,
    WitnessQuorumError,
)

__all__ = [
    "MAX_RECEIPT_BYTES",
    "MAX_WITNESS_REQUEST_BYTES",
    "RECORD_FORMAT",
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "WITNESS_SIZE_CONTENT_TYPE",
    "AddCheckpointRequest",
    "AppendResult",
    "BatchingAppender",
    "Checkpoint",
    "CheckpointJSON",
    "CheckpointPublisher",
    "ConsistencyJSON",
    "ConsistencyProof",
    "CosignatureResult",
    "DirectoryTileSource",
    "GrowthProof",
    "HTTPTileSource",
    "InclusionProof",
    "LogForkError",
    "LogMonitor",
    "LogRollbackError",
    "LogStore",
    "MemoryStore",
    "MonitorEvent",
    "MonitorEventJSON",
    "MonitorState",
    "NoteKeyId",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "OpenedNote",
    "ProvenanceRecord",
    "Publication",
    "PublicationJSON",
    "Receipt",
    "RecordKind",
    "SQLiteStore",
    "SignedCheckpoint",
    "SignedNote",
    "SplitViewError",
    "StoreWriter",
    "StoredCheckpoint",
    "TileAddress",
    "TileClient",
    "TileExport",
    "TileFetchError",
    "TileFormatError",
    "TileHashError",
    "TileReceiptCheck",
    "TileSource",
    "TimestampError",
    "TimestampToken",
    "TransparencyLog",
    "TreeState",
    "VerifiedCheckpoint",
    "VerifiedReceipt",
    "VerifiedReceiptJSON",
    "VerifiedSignature",
    "Witness",
    "WitnessClient",
    "WitnessEndpoint",
    "WitnessFailure",
    "WitnessFailureJSON",
    "WitnessPolicy",
    "WitnessQuorumError",
    "WitnessStateError",
    "WitnessUnknownLogError",
    "WitnessedLog",
    "WitnessedTree",
    "b64decode_strict",
    "b64encode",
    "export_tiles",
    "image_log_checker",
    "image_recorder",
    "open_note",
    "open_tile_source",
    "parse_entry_bundle",
    "read_tile",
    "request_timestamp",
    "sign_checkpoint",
    "sign_note",
    "tiles_for_size",
    "verify_checkpoint",
    "verify_receipt",
    "verify_timestamp",
    "witness_status",
]
