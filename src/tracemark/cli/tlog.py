"""``tracemark tlog``: append provenance records, sign checkpoints, prove, verify, audit, witness."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import NotRequired, TypedDict

from tracemark.cli._common import add_json_flag, emit, input_errors, read_file_bytes, read_text_input
from tracemark.errors import InvalidInputError, TlogError, TlogFormatError, WitnessError
from tracemark.keys import (
    Keyring,
    default_database_path,
    ensure_log_key,
    ensure_witness_key,
    load_log_key,
    tracemark_home,
)
from tracemark.tlog import (
    MAX_RECEIPT_BYTES,
    Checkpoint,
    CheckpointPublisher,
    ConsistencyProof,
    LogMonitor,
    MonitorEvent,
    MonitorState,
    NoteSigner,
    NoteVerifier,
    ProvenanceRecord,
    Receipt,
    RecordKind,
    StoreWriter,
    TileClient,
    TransparencyLog,
    TreeState,
    Witness,
    WitnessClient,
    WitnessEndpoint,
    WitnessPolicy,
    b64decode_strict,
    b64encode,
    export_tiles,
    verify_checkpoint,
    verify_receipt,
)
from tracemark.tlog.merkle import MAX_PROOF_HASHES, Hash, NodeAddress, as_hash, node_id

#: Largest file of records ``append --records`` reads (bytes).
MAX_RECORDS_BYTES = 64 * 1024 * 1024
#: Largest content file ``append --content`` hashes (bytes); hashing streams, so this is generous.
MAX_CONTENT_BYTES = 16 * 1024 * 1024 * 1024


class AppendedJSON(TypedDict):
    """One appended entry in ``append --json``."""

    index: int
    leaf_hash: str
    #: When the log integrated the entry: its own clock, Unix seconds (the record's ``time`` is the claim).
    integrated_time: float | None


class AppendPayload(TypedDict):
    """``tracemark tlog append --json``."""

    appended: list[AppendedJSON]
    tree_size: int
    root_hash: str
    records: list[dict[str, str]]
    #: Where the receipt was written, with ``--receipt``.
    receipt: NotRequired[str]


class WitnessPayload(TypedDict):
    """``tracemark tlog witness --json`` on the local log."""

    witness: str
    old_size: int
    tree_size: int
    note: str
    cosignatures: list[str]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tlog`` and its verbs."""
    parser = subparsers.add_parser("tlog", help="transparency log: append, checkpoint, prove, verify, audit, witness")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    init = verbs.add_parser("init", help="create the log key and database (idempotent)")
    init.add_argument("--origin", help="the log's origin for a new key, e.g. example.com/tracemark-log")
    _add_db(init)
    init.set_defaults(handler=_init)

    append = verbs.add_parser("append", help="append a provenance record (or a file of records) durably")
    source = append.add_mutually_exclusive_group(required=True)
    source.add_argument("--content", help="file whose SHA-256 is recorded (the content itself is never stored)")
    source.add_argument("--content-sha256", help="the content's SHA-256, hex")
    source.add_argument("--records", help="JSON Lines file of records (or - for standard input): one batch")
    append.add_argument("--kind", choices=[k.value for k in RecordKind], help="what was marked")
    append.add_argument("--model-id", help="the model that produced the content")
    append.add_argument("--key-id", help="the marking key id (default: the keyring's default text key)")
    append.add_argument("--c2pa-manifest-id", help="C2PA manifest id (URN), required for images")
    append.add_argument("--time", help="RFC 3339 UTC time, e.g. 2026-08-02T12:00:00Z (default: now)")
    append.add_argument("--receipt", metavar="PATH", help="also sign a checkpoint and write the receipt here")
    _add_db(append)
    append.set_defaults(handler=_append)

    checkpoint = verbs.add_parser("checkpoint", help="sign a checkpoint of the current tree")
    checkpoint.add_argument("--out", metavar="PATH", help="also write the signed checkpoint to this file")
    _add_db(checkpoint)
    checkpoint.set_defaults(handler=_checkpoint)

    prove = verbs.add_parser("prove", help="a receipt (tlog-proof@v1) for an entry, or a consistency proof")
    target = prove.add_mutually_exclusive_group(required=True)
    target.add_argument("index", nargs="?", type=int, help="entry index")
    target.add_argument("--content-sha256", help="prove the first entry recording this content hash")
    target.add_argument("--from", dest="old_size", type=int, help="consistency proof from this tree size")
    prove.add_argument("--to", dest="new_size", type=int, help="consistency proof to this size (default: current)")
    prove.add_argument("--out", metavar="PATH", help="write the receipt or proof to this file")
    _add_db(prove)
    prove.set_defaults(handler=_prove)

    verify = verbs.add_parser("verify", help="verify a receipt offline against the log's public key")
    verify.add_argument("receipt", help="receipt file (tlog-proof@v1), or - for standard input")
    _add_key_policy(verify)
    verify.add_argument("--entry", metavar="PATH", help="the entry (canonical record) if the receipt carries none")
    verify.add_argument("--content", metavar="PATH", help="also check that this file is the recorded content")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify)

    audit = verbs.add_parser("audit", help="check that a newer checkpoint is consistent with an older one")
    audit.add_argument("old", help="older signed checkpoint file")
    audit.add_argument("new", nargs="?", help="newer signed checkpoint file (with --tiles: the log's current one)")
    audit.add_argument("--proof", metavar="PATH", help="consistency proof, one base64 hash a line (default: from --db)")
    _add_key_policy(audit)
    _add_db(audit)
    audit.set_defaults(handler=_audit)
    _register_tile_verbs(verbs, verify, audit)  # verify/audit --tiles, export-tiles, monitor
    _register_migrate(verbs)

    witness = verbs.add_parser("witness", help="check consistency with the last cosigned checkpoint, then cosign")
    witness.add_argument("request", nargs="?", help="tlog-witness add-checkpoint request file (default: the local log)")
    witness.add_argument(
        "--state", metavar="PATH", help="witness state file (default: TRACEMARK_HOME/witness/state.json)"
    )
    witness.add_argument(
        "--log-key", action="append", default=[], metavar="VKEY", help="trust this log key (repeatable)"
    )
    witness.add_argument("--name", help="name for a new witness key")
    _add_db(witness)
    witness.set_defaults(handler=_witness)
    _register_cosign(verbs)


def _register_cosign(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cosign = verbs.add_parser(
        "cosign", help="ask witnesses over HTTP to cosign the latest checkpoint; publish it once a quorum did"
    )
    cosign.add_argument("--witness", nargs=2, action="append", default=[], metavar=("VKEY", "URL"),
                        help="a witness: its cosignature key and URL prefix (repeatable)")  # fmt: skip
    cosign.add_argument("--witness-policy", metavar="PATH", help="policy file ('witness VKEY URL', 'quorum K' lines)")
    cosign.add_argument("--quorum", type=int, help="cosignatures needed to publish (default: the policy's, else all)")
    cosign.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each witness (default 10)")
    _add_db(cosign)
    cosign.set_defaults(handler=_cosign)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH", help="log database (default: TRACEMARK_HOME/tracemark.sqlite3)")
    add_json_flag(parser)


def _add_key_policy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-key", metavar="VKEY", help="the log's verifier key (default: the local log's key)")
    parser.add_argument("--origin", help="expected log origin (default: the log key's name)")
    parser.add_argument(
        "--witness", action="append", default=[], metavar="VKEY", help="trusted witness key (repeatable)"
    )
    parser.add_argument("--quorum", type=int, default=0, help="cosignatures required from --witness keys")


# -- helpers ---------------------------------------------------------------------------------


def _db_path(args: argparse.Namespace) -> Path | str:
    """The ``--db`` value: a SQLite file, or a ``postgresql://`` URL kept as text."""
    if args.db and str(args.db).startswith(_POSTGRES_PREFIXES):
        return str(args.db)
    return Path(args.db) if args.db else default_database_path()


_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def _db_exists(location: Path | str) -> bool:
    """Whether a SQLite log file exists; a PostgreSQL URL is taken to exist (opening it says otherwise)."""
    return isinstance(location, str) or location.is_file()


def _open_log(args: argparse.Namespace) -> TransparencyLog:
    signer = ensure_log_key(Keyring())
    return TransparencyLog.open(_db_path(args), signer=signer)


def _log_verifier(args: argparse.Namespace) -> NoteVerifier:
    if args.log_key:
        return NoteVerifier.from_vkey(args.log_key)
    keyring = Keyring()
    if not keyring.exists():
        raise InvalidInputError("no --log-key given and no local keyring: pass the log's verifier key")
    return load_log_key(keyring).verifier


def _witness_keys(args: argparse.Namespace) -> list[NoteVerifier]:
    return [NoteVerifier.from_vkey(vkey) for vkey in args.witness]


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror}") from None


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with input_errors(path):
        if Path(path).stat().st_size > MAX_CONTENT_BYTES:
            raise InvalidInputError(f"{path} is larger than {MAX_CONTENT_BYTES} bytes")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _default_key_id() -> str:
    keyring = Keyring()
    key_id = keyring.defaults().get("text") if keyring.exists() else None
    if key_id is None:
        raise InvalidInputError("no --key-id given and no default text key: pass --key-id")
    return str(key_id)


# -- verbs -----------------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    keyring = Keyring()
    keyring.create()
    signer = ensure_log_key(keyring, origin=args.origin)
    with TransparencyLog.open(_db_path(args), signer=signer) as log:
        size = log.size
    payload = {"origin": signer.name, "log_key": signer.vkey, "database": str(_db_path(args)), "tree_size": size}
    emit(
        args, payload, f"log {signer.name}\nverifier key {signer.vkey}\ndatabase {payload['database']} ({size} entries)"
    )
    return 0


def _records_from_args(args: argparse.Namespace) -> list[ProvenanceRecord]:
    if args.records:
        text = read_text_input(args.records, max_bytes=MAX_RECORDS_BYTES)
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                raise TlogFormatError(f"{args.records} line {number} is not JSON") from None
            try:
                records.append(ProvenanceRecord.from_dict(value))
            except TlogFormatError as exc:
                raise TlogFormatError(f"{args.records} line {number}: {exc}") from None
        if not records:
            raise InvalidInputError(f"{args.records} holds no records")
        return records
    if not args.kind or not args.model_id:
        raise InvalidInputError("--kind and --model-id are required with --content or --content-sha256")
    digest = _sha256_file(args.content) if args.content else str(args.content_sha256).lower()
    record = ProvenanceRecord.create(
        content_sha256=digest,
        kind=args.kind,
        key_id=args.key_id or _default_key_id(),
        model_id=args.model_id,
        time=args.time,
        c2pa_manifest_id=args.c2pa_manifest_id,
    )
    return [record]


def _append(args: argparse.Namespace) -> int:
    records = _records_from_args(args)
    if args.receipt and len(records) != 1:
        raise InvalidInputError("--receipt needs exactly one record")
    with _open_log(args) as log:
        results = log.append_many(records)
        receipt_text = log.receipt(results[0].index, sign=True).to_text() if args.receipt else None
    if receipt_text is not None:
        _write(args.receipt, receipt_text)
    last = results[-1]
    payload: AppendPayload = {
        "appended": [
            {"index": r.index, "leaf_hash": r.leaf_hash.hex(), "integrated_time": r.integrated_time} for r in results
        ],
        "tree_size": last.tree_size,
        "root_hash": b64encode(last.root_hash),
        "records": [rec.to_dict() for rec in records],
    }
    if args.receipt:
        payload["receipt"] = args.receipt
    lines = [f"appended {len(results)} record(s) at {results[0].index}..{last.index}; tree size {last.tree_size}"]
    if args.receipt:
        lines.append(f"receipt written to {args.receipt}")
    emit(args, payload, "\n".join(lines))
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    with _open_log(args) as log:
        signed = log.checkpoint()
    if args.out:
        _write(args.out, signed.note)
    emit(args, signed.to_json(), signed.note)
    return 0


def _prove(args: argparse.Namespace) -> int:
    with _open_log(args) as log:
        if args.old_size is not None:
            proof = log.consistency_proof(args.old_size, args.new_size)
            text = "".join(b64encode(h) + "\n" for h in proof.hashes)
            if args.out:
                _write(args.out, text)
            consistency = {
                "old_size": proof.old_size,
                "new_size": proof.new_size,
                "old_root": b64encode(proof.old_root),
                "new_root": b64encode(proof.new_root),
                "proof": [b64encode(h) for h in proof.hashes],
            }
            emit(args, consistency, text or f"(empty proof: {proof.old_size} -> {proof.new_size})")
            return 0
        if args.new_size is not None:
            raise InvalidInputError("--to goes with --from")
        index = args.index
        if args.content_sha256 is not None:
            hits = log.find(args.content_sha256, limit=1)
            if not hits:
                raise TlogError(f"no record of content {args.content_sha256} in the log")
            index = hits[0]
        receipt = log.receipt(index, sign=True)
    text = receipt.to_text()
    if args.out:
        _write(args.out, text)
    emit(args, {"index": receipt.index, "receipt": text}, text)
    return 0


def _verify(args: argparse.Namespace) -> int:
    text = read_text_input(args.receipt, max_bytes=MAX_RECEIPT_BYTES)
    entry = read_file_bytes(args.entry, MAX_RECEIPT_BYTES) if args.entry else None
    verified = verify_receipt(
        Receipt.parse(text),
        _log_verifier(args),
        entry=entry,
        origin=args.origin,
        witnesses=_witness_keys(args),
        quorum=args.quorum,
    )
    payload = verified.to_json()
    if args.content:
        if verified.record is None:
            raise TlogError("the entry is not a provenance record, so it names no content hash")
        digest = _sha256_file(args.content)
        if digest != verified.record.content_sha256:
            raise TlogError(f"{args.content} is not the recorded content (SHA-256 {digest[:16]}… differs)")
        payload["content_matches"] = True
    record = verified.record
    what = f"{record.kind.value} from model {record.model_id} at {record.time}" if record else "entry"
    lines = [f"valid: {what} is entry {verified.index} of {verified.origin} (tree size {verified.tree_size})"]
    if verified.checkpoint.witnesses:
        lines.append("cosigned by: " + ", ".join(verified.checkpoint.witnesses))
    if args.content:
        lines.append(f"content {args.content} matches the record")
    emit(args, payload, "\n".join(lines))
    return 0


def _read_proof_file(path: str) -> list[Hash]:
    try:
        text = read_file_bytes(path, 64 * 1024).decode("ascii")
    except UnicodeDecodeError:
        raise TlogFormatError(f"{path} is not base64 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_PROOF_HASHES:
        raise TlogFormatError(f"{path} has {len(lines)} proof lines")
    return [as_hash(b64decode_strict(line.strip(), "proof hash"), "proof hash") for line in lines]


def _audit(args: argparse.Namespace) -> int:
    verifier = _log_verifier(args)
    witnesses = _witness_keys(args)
    checked = []
    for path in (args.old, args.new):
        note = read_text_input(path, max_bytes=MAX_RECEIPT_BYTES)
        checked.append(verify_checkpoint(note, verifier, origin=args.origin, witnesses=witnesses, quorum=args.quorum))
    old, new = checked[0].checkpoint, checked[1].checkpoint
    if args.proof:
        proof = _read_proof_file(args.proof)
    else:
        if not _db_exists(_db_path(args)):
            raise InvalidInputError(f"no log database at {_db_path(args)}: pass --proof or --db")
        with TransparencyLog.open(_db_path(args)) as log:
            proof = list(log.consistency_proof(old.size, new.size).hashes)
    checked_proof = ConsistencyProof(old.size, new.size, old.root_hash, new.root_hash, tuple(proof))
    checked_proof.verify()
    payload = {"consistent": True, "origin": new.origin, **checked_proof.to_json()}
    emit(args, payload, f"consistent: {new.origin} grew from {old.size} to {new.size} entries without rewriting any")
    return 0


def _witness(args: argparse.Namespace) -> int:
    keyring = Keyring()
    cosigner: NoteSigner = ensure_witness_key(keyring, name=args.name)
    trusted = [NoteVerifier.from_vkey(vkey) for vkey in args.log_key]
    state = Path(args.state) if args.state else tracemark_home() / "witness" / "state.json"
    if args.request:
        body = read_text_input(args.request, max_bytes=MAX_RECEIPT_BYTES)
        if not trusted:
            trusted = [load_log_key(keyring).verifier]
        logs: dict[str, list[NoteVerifier]] = {}
        for key in trusted:
            logs.setdefault(key.name, []).append(key)
        response = Witness(cosigner, state, logs).handle_request(body)
        emit(args, {"witness": cosigner.vkey, "cosignatures": response.splitlines()}, response)
        return 0
    with _open_log(args) as log:
        latest = log.latest_checkpoint()
        if latest is None or log.origin is None:
            raise TlogError("the log has no signed checkpoint yet: run 'tracemark tlog checkpoint'")
        keys = [*(trusted or []), *([log.verifier] if log.verifier else [])]
        witness = Witness(cosigner, state, {log.origin: keys})
        previous = witness.latest(log.origin)
        old_size = previous.size if previous is not None else 0
        size = latest.checkpoint.size
        if old_size > size:
            raise WitnessError(f"the witness cosigned size {old_size} but the log's latest checkpoint is {size}")
        proof = log.consistency_proof(old_size, size).hashes
        signatures = witness.add_checkpoint(old_size, proof, latest.note)
        note = log.add_cosignatures(size, signatures)
    payload: WitnessPayload = {
        "witness": cosigner.vkey,
        "old_size": old_size,
        "tree_size": size,
        "note": note,
        "cosignatures": [s.line().rstrip("\n") for s in signatures],
    }
    human = f"cosigned {log.origin} at size {size} (consistent with {old_size})\n" + note
    emit(args, payload, human)
    return 0


def _cosign_policy(args: argparse.Namespace) -> WitnessPolicy:
    policy = WitnessPolicy.load(args.witness_policy) if args.witness_policy else WitnessPolicy()
    extra = tuple(WitnessEndpoint(NoteVerifier.from_vkey(vkey), url) for vkey, url in args.witness)
    witnesses = policy.witnesses + extra
    if not witnesses:
        raise InvalidInputError("name the witnesses: --witness VKEY URL (repeatable) or --witness-policy FILE")
    default = len(witnesses) if extra else policy.quorum
    quorum = args.quorum if args.quorum is not None else default
    return WitnessPolicy(witnesses, quorum, policy.logs)


def _cosign(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 600:
        raise InvalidInputError("--timeout must lie in (0, 600] seconds")
    policy = _cosign_policy(args)
    publisher = CheckpointPublisher(policy, WitnessClient(policy, timeout=args.timeout))
    with _open_log(args) as log:
        publication = publisher.publish(log)
    checkpoint = publication.checkpoint.checkpoint
    lines = [
        f"published {checkpoint.origin} at size {checkpoint.size}: cosigned by "
        f"{', '.join(publication.witnesses) or 'no witness'} (quorum {policy.quorum} of {len(policy.witnesses)})"
    ]
    lines += [f"not cosigned by {f.describe()}" for f in publication.failures]
    emit(args, publication.to_json(), "\n".join(lines) + "\n" + publication.checkpoint.note.rstrip("\n"))
    return 0


# -- C2SP tlog-tiles: export, verify and audit from tiles, monitor ------------------------------


class ExportTilesPayload(TypedDict):
    """``tracemark tlog export-tiles --json``."""

    directory: str
    origin: str
    tree_size: int
    log_size: int
    previous_size: int | None
    written: list[str]
    unchanged: int


class TilesCheckJSON(TypedDict):
    """What ``verify --tiles`` and ``audit --tiles`` checked against the log's tiles."""

    source: str
    tree_size: int
    root_hash: str
    consistency_proof: list[str]
    inclusion_proof: NotRequired[list[str]]


def _register_tile_verbs(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
    verify: argparse.ArgumentParser,
    audit: argparse.ArgumentParser,
) -> None:
    """``--tiles`` on ``verify`` and ``audit``; the ``export-tiles`` and ``monitor`` verbs."""
    verify.add_argument(
        "--tiles",
        metavar="URL-or-DIR",
        help="also check against the log's tiles that the entry is in its current tree, which extends the receipt's",
    )
    verify.set_defaults(handler=_verify_or_tiles)
    audit.add_argument("--tiles", metavar="URL-or-DIR", help="compute the consistency proof from the log's tiles")
    audit.set_defaults(handler=_audit_or_tiles)

    export = verbs.add_parser(
        "export-tiles", help="write the log as C2SP tlog-tiles to a directory (incremental), for a static host"
    )
    export.add_argument("directory", help="output directory (what it already holds decides what is written)")
    export.add_argument("--sign", action="store_true", help="sign a checkpoint of the current tree first")
    _add_db(export)
    export.set_defaults(handler=_export_tiles)

    monitor = verbs.add_parser(
        "monitor", help="follow a log through its tiles; JSON lines; exit 20 on a fork or a rollback"
    )
    monitor.add_argument("source", metavar="URL-or-DIR", help="the log's tiles: a URL prefix or a directory")
    monitor.add_argument("--state", required=True, metavar="FILE", help="the monitor's state (created on first run)")
    when = monitor.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="poll once; errors end the command")
    when.add_argument("--interval", type=float, default=60.0, metavar="S", help="seconds between polls (default 60)")
    monitor.add_argument("--polls", type=int, metavar="N", help="stop after N polls (default: never)")
    monitor.add_argument("--all-events", action="store_true", help="also print 'unchanged' events")
    monitor.add_argument("--json", action="store_true", help="accepted for symmetry: the output is always JSON lines")
    _add_key_policy(monitor)
    monitor.set_defaults(handler=_monitor)


def _tile_client(args: argparse.Namespace, verifier: NoteVerifier | None = None) -> TileClient:
    key = verifier if verifier is not None else _log_verifier(args)
    return TileClient(args.tiles, key, origin=args.origin, witnesses=_witness_keys(args), quorum=args.quorum)


def _verify_or_tiles(args: argparse.Namespace) -> int:
    return _verify_with_tiles(args) if args.tiles else _verify(args)


def _verify_with_tiles(args: argparse.Namespace) -> int:
    text = read_text_input(args.receipt, max_bytes=MAX_RECEIPT_BYTES)
    entry = read_file_bytes(args.entry, MAX_RECEIPT_BYTES) if args.entry else None
    client = _tile_client(args)
    checked = client.verify_receipt(Receipt.parse(text), entry=entry)
    verified, current = checked.receipt, checked.checkpoint.checkpoint
    record = verified.record
    if args.content:
        if record is None:
            raise TlogError("the entry is not a provenance record, so it names no content hash")
        digest = _sha256_file(args.content)
        if digest != record.content_sha256:
            raise TlogError(f"{args.content} is not the recorded content (SHA-256 {digest[:16]}… differs)")
    tiles: TilesCheckJSON = {
        "source": client.source.location,
        "tree_size": current.size,
        "root_hash": b64encode(current.root_hash),
        "consistency_proof": [b64encode(h) for h in checked.growth.proof],
        "inclusion_proof": [b64encode(h) for h in checked.inclusion_proof],
    }
    payload: dict[str, object] = {
        "valid": True,
        "origin": verified.origin,
        "index": verified.index,
        "tree_size": verified.tree_size,
        "root_hash": b64encode(verified.checkpoint.checkpoint.root_hash),
        "leaf_hash": verified.leaf_hash.hex(),
        "record": record.to_dict() if record is not None else None,
        "witnesses": list(verified.checkpoint.witnesses),
        "tiles": tiles,
    }
    if args.content:
        payload["content_matches"] = True
    what = f"{record.kind.value} from model {record.model_id} at {record.time}" if record else "entry"
    lines = [
        f"valid: {what} is entry {verified.index} of {verified.origin} (tree size {verified.tree_size})",
        f"in the log at {client.source.location}: still entry {verified.index} of its tree of size {current.size},"
        f" which extends the receipt's tree of size {verified.tree_size}",
    ]
    if args.content:
        lines.append(f"content {args.content} matches the record")
    emit(args, payload, "\n".join(lines))
    return 0


def _audit_or_tiles(args: argparse.Namespace) -> int:
    if args.tiles:
        return _audit_with_tiles(args)
    if args.new is None:
        raise InvalidInputError("give the newer checkpoint file, or --tiles to audit against the log's current one")
    return _audit(args)


def _audit_with_tiles(args: argparse.Namespace) -> int:
    if args.proof:
        raise InvalidInputError("--proof and --tiles are two sources of the same proof: give one")
    verifier = _log_verifier(args)
    client = _tile_client(args, verifier)
    witnesses = _witness_keys(args)

    def verified(note: str) -> Checkpoint:
        return verify_checkpoint(note, verifier, origin=args.origin, witnesses=witnesses, quorum=args.quorum).checkpoint

    old_note = read_text_input(args.old, max_bytes=MAX_RECEIPT_BYTES)
    old = verified(old_note)
    current = client.checkpoint()
    if args.new is None:
        new = current.checkpoint
        proof = client.check_growth(old, old_note, current).proof
    else:
        new = verified(read_text_input(args.new, max_bytes=MAX_RECEIPT_BYTES))
        if new.size > current.checkpoint.size:
            raise TlogError(
                f"the tiles at {client.source.location} show size {current.checkpoint.size}, older than {args.new}'s"
                f" {new.size}: the tiles are behind, or the log rolled back"
            )
        proof = client.consistency_proof(old, new, current.checkpoint.size)
    tiles: TilesCheckJSON = {
        "source": client.source.location,
        "tree_size": current.checkpoint.size,
        "root_hash": b64encode(current.checkpoint.root_hash),
        "consistency_proof": [b64encode(h) for h in proof],
    }
    grown = ConsistencyProof(old.size, new.size, old.root_hash, new.root_hash, tuple(proof))
    payload: dict[str, object] = {"consistent": True, "origin": new.origin, **grown.to_json(), "tiles": tiles}
    human = f"consistent: {new.origin} grew from {old.size} to {new.size} entries without rewriting any (from tiles)"
    emit(args, payload, human)
    return 0


def _export_tiles(args: argparse.Namespace) -> int:
    path = _db_path(args)
    if not _db_exists(path):
        raise InvalidInputError(f"no log database at {path}: run 'tracemark tlog init' or pass --db")
    with _open_log(args) if args.sign else TransparencyLog.open(path) as log:
        if args.sign:
            log.checkpoint()
        result = export_tiles(log, args.directory)
        log_size = log.size
        origin = log.origin or ""
    payload: ExportTilesPayload = {
        "directory": str(result.directory),
        "origin": origin,
        "tree_size": result.tree_size,
        "log_size": log_size,
        "previous_size": result.previous_size,
        "written": list(result.written),
        "unchanged": result.unchanged,
    }
    lines = [
        f"exported {origin} at tree size {result.tree_size} to {result.directory}:"
        f" wrote {len(result.written)} file(s), {result.unchanged} tile(s) already there"
    ]
    if log_size > result.tree_size:
        lines.append(f"the log holds {log_size} entries: sign a checkpoint (--sign) to export them")
    emit(args, payload, "\n".join(lines))
    return 0


def _monitor_key(args: argparse.Namespace) -> NoteVerifier:
    if args.log_key:
        return NoteVerifier.from_vkey(args.log_key)
    state = MonitorState.load(Path(args.state))
    return NoteVerifier.from_vkey(state.log_key) if state is not None else _log_verifier(args)


def _monitor(args: argparse.Namespace) -> int:
    if args.interval <= 0 or (args.polls is not None and args.polls < 1):
        raise InvalidInputError("--interval must be positive and --polls at least 1")
    monitor = LogMonitor(
        args.source,
        _monitor_key(args),
        args.state,
        origin=args.origin,
        witnesses=tuple(_witness_keys(args)),
        quorum=args.quorum,
    )

    def emit_line(event: MonitorEvent) -> None:
        print(json.dumps(event.to_json(), sort_keys=True, ensure_ascii=False), flush=True)

    monitor.follow(
        emit_line,
        interval=args.interval,
        polls=1 if args.once else args.polls,
        keep_going=not args.once,
        report_unchanged=args.once or args.all_events,
    )
    return 0


# -- migrate: copy a log to another store --------------------------------------------------------

_COPY_CHUNK = 65_536


class MigratePayload(TypedDict):
    """``tlog migrate --json``."""

    source: str
    target: str
    tree_size: int
    root: str
    checkpoints: int
    verified: bool


def _register_migrate(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = verbs.add_parser(
        "migrate", help="copy a log (entries, nodes, checkpoints, times) into an empty store and prove the same root"
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="sqlite:PATH", help="the log to copy")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://... (empty log)")
    add_json_flag(migrate)
    migrate.set_defaults(handler=_migrate)


def _store_location(value: str) -> Path | str:
    if value.startswith(_POSTGRES_PREFIXES):
        return value
    path = Path(value.removeprefix("sqlite:"))
    return path


def _copy_chunk(
    source: TransparencyLog, writer: StoreWriter, low: int, high: int, last_time: list[float | None]
) -> None:
    """Entries, leaf hashes, lookup keys, interior nodes and batch times of ``[low, high)``."""
    entries = source.store.read_entries(low, high)
    leaves = source.store.read_leaves(low, high)
    keys: list[bytes | None] = []
    for data in entries:
        try:
            keys.append(bytes.fromhex(ProvenanceRecord.from_json(data).content_sha256))
        except TlogError:
            keys.append(None)
    writer.write_entries(low, list(zip(entries, leaves, keys, strict=True)))
    wanted = [
        NodeAddress(level, index)
        for level in range(1, high.bit_length() + 1)
        for index in range(low >> level, high >> level)
        if low < (index + 1) << level <= high
    ]
    found = source.store.read_nodes(wanted)
    if len(found) != len(wanted):
        raise TlogError(f"the source log is missing interior nodes of entries {low}..{high - 1}")
    writer.write_nodes(
        [(node.level, node.index, found[node]) for node in sorted(wanted, key=lambda n: node_id(n.level, n.index))]
    )
    for index in range(low, high):
        moment = source.store.integrated_time(index)
        if moment is not None and moment != last_time[0]:
            writer.record_integration(index, moment)
        last_time[0] = moment


def _migrate(args: argparse.Namespace) -> int:
    source_location, target_location = _store_location(args.source), _store_location(args.target)
    if isinstance(source_location, Path) and not source_location.is_file():
        raise InvalidInputError(f"no log database at {source_location}")
    with TransparencyLog.open(source_location) as source, TransparencyLog.open(target_location) as target:
        state = source.store.tree_state()
        if target.store.tree_state().size or target.store.get_meta("log_vkey") or target.store.latest_checkpoint():
            raise InvalidInputError(f"{args.target} already holds a log: migrate copies into an empty one")
        checkpoints = source.store.checkpoints()
        last_time: list[float | None] = [None]
        with target.store.writer() as writer:
            for key in ("origin", "log_vkey"):
                value = source.store.get_meta(key)
                if value is not None:
                    writer.set_meta(key, value)
            for low in range(0, state.size, _COPY_CHUNK):
                _copy_chunk(source, writer, low, min(state.size, low + _COPY_CHUNK), last_time)
            writer.set_tree_state(TreeState(state.size, state.root))
            for checkpoint in checkpoints:
                writer.save_checkpoint(checkpoint)
        copied = TransparencyLog(target.store)
        copied.verify_integrity()  # recomputes the root from the copied entries; checks nodes and checkpoints
        if copied.tree_state() != state:
            raise TlogError("the copy's root differs from the source's")
    payload: MigratePayload = {
        "source": args.source,
        "target": args.target,
        "tree_size": state.size,
        "root": state.root.hex(),
        "checkpoints": len(checkpoints),
        "verified": True,
    }
    human = f"copied {state.size} entries and {len(checkpoints)} checkpoints; same root {state.root.hex()}"
    emit(args, payload, human)
    return 0
