"""A writer process for the crash and concurrency tests (run as a script, not collected by pytest).

    python _writer.py DB SKEY WRITER_ID BATCH COUNT CHECKPOINT_EVERY

Appends ``COUNT`` records (forever if 0) in batches of ``BATCH``.  After each batch is
acknowledged (durable) it prints ``ACK <writer> <seq> <index>`` per record; every
``CHECKPOINT_EVERY`` batches it signs a checkpoint and prints ``CP <size> <base64 note>``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import sys

from tracemark.tlog import NoteSigner, ProvenanceRecord, TransparencyLog


def record(writer: int, seq: int) -> ProvenanceRecord:
    """The record writer ``writer`` appends as its ``seq``-th."""
    return ProvenanceRecord(
        content_sha256=hashlib.sha256(f"writer {writer} record {seq}".encode()).hexdigest(),
        kind="text",  # type: ignore[arg-type]
        key_id=f"writer-{writer}",
        model_id=f"seq-{seq}",
        time="2026-08-02T12:00:00Z",
    )


def main() -> None:
    db, skey, writer_text, batch_text, count_text, every_text = sys.argv[1:7]
    writer, batch, count, every = int(writer_text), int(batch_text), int(count_text), int(every_text)
    out = sys.stdout
    with TransparencyLog.open(db, signer=NoteSigner.from_skey(skey)) as log:
        seq = 0
        for batch_number in itertools.count(1):
            if count and seq >= count:
                break
            size = batch if not count else min(batch, count - seq)
            results = log.append_many([record(writer, seq + i) for i in range(size)])
            out.write("".join(f"ACK {writer} {seq + i} {r.index}\n" for i, r in enumerate(results)))
            out.flush()
            seq += size
            if every and batch_number % every == 0:
                signed = log.checkpoint()
                out.write(f"CP {signed.checkpoint.size} {base64.b64encode(signed.note.encode()).decode()}\n")
                out.flush()


if __name__ == "__main__":
    main()
