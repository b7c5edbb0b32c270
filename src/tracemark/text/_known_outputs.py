"""The provider's known-output index: is a marked-looking text assembled from the provider's own outputs?

Watermark stealing (Jovanović et al. 2024) learns, from marked texts an attacker collected, which
token follows which context in marked text, and writes new text out of those units.  Every unit it
can push towards green it has seen in some marked output, and the provider holds all of its marked
outputs.  So the verifier asks of a text the detector accepts: does the mark still hold on the units
that no *other* output of the provider explains?

:meth:`KnownOutputIndex.check` scores the text's distinct units, finds the one logged output that
shares the most units with it (a genuine text, edited or not, is explained by its own output), and
re-tests the text on its *novel* units: those found in no logged output, plus those of that single
best output.  A text pieced together from many outputs keeps few novel green units, and its
novel-unit p-value rises above ``alpha``: it is ``assembled-from-known-outputs``.  A genuine text
keeps its own units (or, when the index never saw it, nearly all of them).

Compact form (format ``tracemark.text.known-outputs/v1``), in the log's database beside the log
(SQLite file or PostgreSQL), one index per text key.  A unit (its context and token ids) is hashed
with a 128-bit salt drawn when the index is created (never published), so nobody without the
database can aim units at the structures below:

* **membership**: a blocked Bloom filter over every distinct unit of every output (2,048-bit blocks,
  6 bits set per unit, 8 bits of filter per unit), in segments that grow 4x when one fills, so an
  index never needs sizing up front.  No false negatives; a false positive turns a novel unit into a
  "known elsewhere" unit, which only leaves it out of the novel-unit test: the test stays exact (the
  filter's hashes are independent of the watermark key), it only loses a little power.  The estimated
  false-positive rate from the units inserted is reported with every check.
* **per output**: the output's units as a Golomb-Rice coded set with 9 bits of remainder (about
  10.5 bits per unit), to ask "is this unit in output *o*?".  A false positive here would count a unit
  of *another* output as the best output's, the unsafe direction; it is accounted for: with ``e`` the
  false-positive probability per query (``candidates x 2**-9``), ``f`` is the smallest count with
  ``P(Binomial(n, e) > f) <= beta`` (``beta = alpha / 100``), ``f`` green units are taken out of the
  novel-unit test as if they were false, and ``beta`` is added to its p-value.  So the coded sets can
  only raise the p-value over the one the exact index (every unit with every output) would give, the
  filter only drops units whatever their colour, and under the test's null it stays valid at ``alpha``.
* **candidates**: a sample of each output's units (those whose salted hash falls in the lowest 1/16)
  under a 28-bit fingerprint with the output number: the best-output lookup reads the text's sampled
  units, takes the three outputs they hit most, and counts every unit of the text in each of their
  coded sets.

Bytes per output are reported by :meth:`KnownOutputIndex.describe` (measured: see docs/redteam.md).
It supports schemes that score one trial per unit (``native``, ``kgw``).
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypedDict, cast

import numpy as np
from numpy.typing import NDArray

from tracemark._json import FrozenDict, freeze
from tracemark._postgres import connect, import_psycopg, is_postgres_url, redact, split_schema
from tracemark._stats import binomial_upper_tail
from tracemark.errors import KnownOutputIndexError
from tracemark.keys import TextKey
from tracemark.text._canonical import canonicalize
from tracemark.text._schemes import WatermarkScheme, load_scheme
from tracemark.text._tokenizer import TextTokenizer
from tracemark.text._variants import text_variants
from tracemark.text._verdict import VerdictJSON

KNOWN_OUTPUTS_FORMAT = "tracemark.text.known-outputs/v1"

#: Attribution statuses a verdict carries beside the watermark's.
ATTRIBUTED: Final = "attributed"
ASSEMBLED: Final = "assembled-from-known-outputs"
NOT_CHECKED: Final = "not-checked"
AttributionStatus = Literal["attributed", "assembled-from-known-outputs", "not-checked"]

_BLOCK_BITS = 2048
_BLOCK_BYTES = _BLOCK_BITS // 8
_HASHES = 6
_BITS_PER_UNIT = 8
_FIRST_BLOCKS = 64
_GROWTH = 4
_RICE_BITS = 9
_SAMPLE_SHIFT = 60  # a unit is sampled when its sample hash is below 2**60 (1 in 16)
_FINGERPRINT_BITS = 28
_CANDIDATES = 3
_MAX_INDEXES = 7
_MAX_OUTPUT = (1 << 32) - 1
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS known_output_indexes (
    ix INTEGER PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_outputs (
    id INTEGER PRIMARY KEY, log_index INTEGER, units INTEGER NOT NULL, rice BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS known_output_samples (k INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS known_output_filter (
    ix INTEGER NOT NULL, segment INTEGER NOT NULL, block INTEGER NOT NULL, bits BLOB NOT NULL,
    PRIMARY KEY (ix, segment, block)
) WITHOUT ROWID;
"""
_POSTGRES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS known_output_indexes (ix INTEGER PRIMARY KEY, key_id TEXT NOT NULL UNIQUE,"
    " state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS known_outputs (id BIGINT PRIMARY KEY, log_index BIGINT, units INTEGER NOT NULL,"
    " rice BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS known_output_samples (k BIGINT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS known_output_filter (ix INTEGER NOT NULL, segment INTEGER NOT NULL,"
    " block BIGINT NOT NULL, bits BYTEA NOT NULL, PRIMARY KEY (ix, segment, block))",
    "ALTER TABLE known_output_filter ALTER COLUMN bits SET STORAGE MAIN",
)
_TABLES = ("known_output_indexes", "known_outputs", "known_output_samples", "known_output_filter")
_FEATURE = "a known-output index on PostgreSQL"


# -- hashing -------------------------------------------------------------------------------------


def _mix(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser over an array (wrapping arithmetic)."""
    z = values.copy()
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _salted(values: NDArray[np.uint64], salt: int, lane: int) -> NDArray[np.uint64]:
    """An independent 64-bit hash of ``values`` per ``lane`` under the index's secret ``salt``."""
    word = np.uint64((salt >> (64 * (lane % 2))) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        seeded = values ^ word
        seeded += np.uint64((0x9E3779B97F4A7C15 * (lane + 1)) & 0xFFFFFFFFFFFFFFFF)
    return _mix(_mix(seeded))


def pack_units(unit_keys: NDArray[np.int64], vocab_size: int) -> NDArray[np.uint64]:
    """One 64-bit integer per unit row: the token ids side by side, or a hash when they do not fit."""
    rows, width = unit_keys.shape
    bits = max(1, int(vocab_size - 1).bit_length())
    packed = np.zeros(rows, dtype=np.uint64)
    if bits * width <= 64:
        for column in range(width):
            packed <<= np.uint64(bits)
            packed |= unit_keys[:, column].astype(np.uint64)
        return packed
    for column in range(width):
        packed = _mix(packed ^ unit_keys[:, column].astype(np.uint64))
    return packed


# -- Golomb-Rice coded sets -------------------------------------------------------------------------


def _rice_encode(values: NDArray[np.uint64]) -> bytes:
    """Sorted distinct values as Rice codes of their gaps (quotient in unary, ``_RICE_BITS`` remainder bits)."""
    gaps = np.diff(np.concatenate([np.zeros(1, dtype=np.uint64), np.sort(values)])).astype(np.int64)
    quotients = gaps >> _RICE_BITS
    lengths = quotients + 1 + _RICE_BITS
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    bits = np.zeros(int(lengths.sum()), dtype=np.uint8)
    ones = np.repeat(starts, quotients) + (
        np.arange(int(quotients.sum())) - np.repeat(np.cumsum(quotients) - quotients, quotients)
    )
    bits[ones] = 1
    remainder_at = starts + quotients + 1
    for bit in range(_RICE_BITS):
        bits[remainder_at + bit] = (gaps >> (_RICE_BITS - 1 - bit)) & 1
    return np.packbits(bits).tobytes()


def _rice_decode(blob: bytes, count: int) -> NDArray[np.uint64]:
    """The ``count`` values of a coded set."""
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))
    zeros = np.flatnonzero(bits == 0)
    out = np.empty(count, dtype=np.int64)
    position = 0
    total = 0
    weights = 1 << np.arange(_RICE_BITS - 1, -1, -1, dtype=np.int64)
    for item in range(count):
        at = int(np.searchsorted(zeros, position))
        if at >= zeros.shape[0]:
            raise KnownOutputIndexError("a coded output set of the known-output index is truncated (corrupt index)")
        stop = int(zeros[at])
        end = stop + 1 + _RICE_BITS
        if end > bits.shape[0]:
            raise KnownOutputIndexError("a coded output set of the known-output index is truncated (corrupt index)")
        total += ((stop - position) << _RICE_BITS) + int(bits[stop + 1 : end].astype(np.int64) @ weights)
        out[item] = total
        position = end
    return out.astype(np.uint64)


# -- results ----------------------------------------------------------------------------------------


class KnownOutputCheckJSON(TypedDict):
    """:meth:`KnownOutputCheck.to_json`."""

    units: int
    green: int
    best_output: int | None
    best_output_log_index: int | None
    best_output_units: int
    known_elsewhere: int
    novel_units: int
    novel_green: int
    false_match_allowance: int
    false_match_probability: float
    membership_false_positive_rate: float
    p_value_novel: float
    log10_p_value_novel: float | None
    assembled: bool


@dataclass(frozen=True)
class KnownOutputCheck:
    """The check of one text: its units, the best-matching logged output, and the novel-unit test."""

    units: int
    green: int
    #: Number of the indexed output sharing the most units with the text (None: none found).
    best_output: int | None
    best_output_log_index: int | None
    best_output_units: int
    #: Units found in indexed outputs other than the best one (left out of the novel-unit test).
    known_elsewhere: int
    novel_units: int
    novel_green: int
    #: Green units taken out of the test for the coded sets' possible false matches (see the module).
    false_match_allowance: int
    #: ``beta``: the probability that more false matches than that occurred, added to the p-value.
    false_match_probability: float
    membership_false_positive_rate: float
    p_value_novel: float
    log10_p_value_novel: float
    #: Units of other outputs are in the text, and without them the mark does not hold at ``alpha``.
    assembled: bool

    def to_json(self) -> KnownOutputCheckJSON:
        return {
            "units": self.units,
            "green": self.green,
            "best_output": self.best_output,
            "best_output_log_index": self.best_output_log_index,
            "best_output_units": self.best_output_units,
            "known_elsewhere": self.known_elsewhere,
            "novel_units": self.novel_units,
            "novel_green": self.novel_green,
            "false_match_allowance": self.false_match_allowance,
            "false_match_probability": self.false_match_probability,
            "membership_false_positive_rate": self.membership_false_positive_rate,
            "p_value_novel": self.p_value_novel,
            "log10_p_value_novel": self.log10_p_value_novel if math.isfinite(self.log10_p_value_novel) else None,
            "assembled": self.assembled,
        }


class KnownOutputIndexJSON(TypedDict):
    """:meth:`KnownOutputIndex.describe`."""

    format: str
    location: str
    key_id: str
    scheme: str
    context_width: int
    outputs: int
    units_inserted: int
    #: Stored keys and blobs (None when not measured: a check does not count rows).
    bytes: int | None
    bytes_per_output: float | None
    membership_false_positive_rate: float
    filter_segments: int
    rice_bits: int
    sample_rate: float


class AttributionJSON(TypedDict):
    """The ``attribution`` member beside a verdict: whose text it is, as far as the provider's outputs show."""

    status: str
    #: True only when the text is marked and attributed: the one verdict that says "ours".
    ours: bool
    reason: str
    index: KnownOutputIndexJSON | None
    check: KnownOutputCheckJSON | None


class AttributedVerdictJSON(VerdictJSON):
    """A verdict (``tracemark.text.verdict/v1``) with the known-output ``attribution`` beside it."""

    attribution: AttributionJSON


@dataclass(frozen=True)
class Attribution:
    """The attribution of one verdict (:func:`attribute`)."""

    status: AttributionStatus
    ours: bool
    reason: str
    #: The index's :class:`KnownOutputIndexJSON` description, frozen.
    index: Mapping[str, object] | None = None
    check: KnownOutputCheck | None = None

    def __post_init__(self) -> None:
        if self.index is not None and not isinstance(self.index, FrozenDict):
            object.__setattr__(self, "index", freeze(self.index))

    def to_json(self) -> AttributionJSON:
        return {
            "status": self.status,
            "ours": self.ours,
            "reason": self.reason,
            "index": None if self.index is None else cast(KnownOutputIndexJSON, dict(self.index)),
            "check": None if self.check is None else self.check.to_json(),
        }


def not_checked(reason: str) -> Attribution:
    return Attribution(NOT_CHECKED, False, reason)


# -- storage ----------------------------------------------------------------------------------------


class _Database:
    """The index's tables in a SQLite file or a PostgreSQL database (the log's ``schema=``)."""

    def __init__(self, location: Path | str, *, create: bool) -> None:
        self.location = str(location)
        self.postgres = is_postgres_url(location)
        self._lock = threading.RLock()
        self._connection: Any = None
        if self.postgres:
            self._url, self._schema = split_schema(str(location))
            self._errors: Any = import_psycopg(_FEATURE).Error
            self._run(self._prepare_postgres if create else self._require_tables, "cannot open")
            return
        path = Path(location)
        self._errors = sqlite3.Error
        if not create and not path.is_file():
            raise KnownOutputIndexError(f"no known-output index at {path}: the file does not exist")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False,
                                               isolation_level=None)  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            raise KnownOutputIndexError(f"cannot open the known-output index {path}: {exc}") from None
        self._run(self._prepare_sqlite if create else self._require_tables, "cannot open")

    def _prepare_sqlite(self, db: Any) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SQLITE_SCHEMA)

    def _prepare_postgres(self, db: Any) -> None:
        for statement in _POSTGRES_SCHEMA:
            db.execute(statement)

    def _require_tables(self, db: Any) -> None:
        if self.postgres:
            listing = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            found = {str(r[0]) for r in db.execute(listing).fetchall()}
        else:
            found = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
        if not set(_TABLES) <= found:
            raise KnownOutputIndexError(f"{redact(self.location)} holds no known-output index")

    def _db(self) -> Any:
        if self.postgres and (self._connection is None or self._connection.closed or self._connection.broken):
            self._connection = connect(self._url, self._schema, connect_timeout=10, feature=_FEATURE)
        return self._connection

    def _run(self, work: Callable[[Any], Any], failure: str, *, write: bool = False) -> Any:
        try:
            with self._lock:
                db = self._db()
                if self.postgres:
                    if write:
                        with db.transaction():
                            return work(db)
                    return work(db)
                if write:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(db)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                    return result
                return work(db)
        except self._errors as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KnownOutputIndexError(
                f"{failure} the known-output index {redact(self.location)} (unreadable or corrupt?): {first}"
            ) from None

    def sql(self, statement: str) -> str:
        return statement if self.postgres else statement.replace("%s", "?")

    def size_bytes(self, ix: int) -> int:
        """Bytes the index's rows take (payload: keys and blobs, as stored)."""

        def work(db: Any) -> int:
            q = self.sql
            outputs = db.execute(q("SELECT count(*), coalesce(sum(length(rice)), 0) FROM known_outputs"
                                   " WHERE id >= %s AND id < %s"), (ix << 40, (ix + 1) << 40)).fetchone()  # fmt: skip
            samples = db.execute(q("SELECT count(*) FROM known_output_samples WHERE k >= %s AND k < %s"),
                                 (ix << 60, (ix + 1) << 60)).fetchone()  # fmt: skip
            blocks = db.execute(q("SELECT count(*), coalesce(sum(length(bits)), 0) FROM known_output_filter"
                                  " WHERE ix = %s"), (ix,)).fetchone()  # fmt: skip
            # rows: output = id (8) + log index (8) + count (4) + blob; sample = 8; block = keys (16) + blob
            return int(outputs[0]) * 20 + int(outputs[1]) + int(samples[0]) * 8 + int(blocks[0]) * 16 + int(blocks[1])

        return int(self._run(work, "cannot measure"))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


@dataclass
class _State:
    key_id: str
    scheme: str
    context_width: int
    vocab_size: int
    salt: int
    outputs: int
    #: Per filter segment: [blocks, units inserted].
    segments: list[list[int]]

    def to_text(self) -> str:
        return json.dumps({"format": KNOWN_OUTPUTS_FORMAT, "key_id": self.key_id, "scheme": self.scheme,
                           "context_width": self.context_width, "vocab_size": self.vocab_size,
                           "salt": f"{self.salt:032x}", "outputs": self.outputs,
                           "segments": self.segments}, sort_keys=True)  # fmt: skip

    @classmethod
    def from_text(cls, text: str, location: str) -> _State:
        try:
            data = json.loads(text)
            if data["format"] != KNOWN_OUTPUTS_FORMAT:
                raise KnownOutputIndexError(f"{location}: known-output index format {data['format']!r} is not "
                                            f"{KNOWN_OUTPUTS_FORMAT}")  # fmt: skip
            segments = [[int(b), int(u)] for b, u in data["segments"]]
            state = cls(str(data["key_id"]), str(data["scheme"]), int(data["context_width"]), int(data["vocab_size"]),
                        int(str(data["salt"]), 16), int(data["outputs"]), segments)  # fmt: skip
        except KnownOutputIndexError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise KnownOutputIndexError(f"{location}: the known-output index's state is corrupt ({exc})") from None
        if not segments or any(b <= 0 or u < 0 for b, u in segments) or state.outputs < 0:
            raise KnownOutputIndexError(f"{location}: the known-output index's state is corrupt (segments)")
        return state


def _membership_rate(segments: Sequence[Sequence[int]]) -> float:
    """Estimated false-positive rate of the membership filter from the units each segment holds."""
    miss = 1.0
    for blocks, units in segments:
        per_bit = units * _HASHES / (blocks * _BLOCK_BITS)
        miss *= 1.0 - (1.0 - math.exp(-per_bit)) ** _HASHES
    return 1.0 - miss


def _false_match_allowance(tested: int, probability: float, beta: float) -> int:
    """The smallest ``f`` with ``P(Binomial(tested, probability) > f) <= beta``."""
    f = 0
    while f < tested and binomial_upper_tail(f + 1, tested, probability).p_value > beta:
        f += 1
    return f


class KnownOutputIndex:
    """One text key's index of the provider's marked outputs, in a database (see the module)."""

    def __init__(self, database: _Database, ix: int, state: _State, key: TextKey) -> None:
        self._db = database
        self._ix = ix
        self._state = state
        self.key = key
        self._scheme: WatermarkScheme = load_scheme(key)

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, location: Path | str, key: TextKey, *, create: bool = False) -> KnownOutputIndex:
        """The index of ``key`` in ``location`` (a SQLite file or a ``postgresql://`` URL).

        ``create`` makes the tables and the key's index when missing; without it, a missing file,
        missing tables or no index for this key raise :class:`KnownOutputIndexError`.
        """
        scheme = load_scheme(key)
        if scheme.trials_per_unit != 1:
            raise KnownOutputIndexError(
                f"the known-output index supports schemes with one trial per unit (native, kgw), not {key.scheme}"
            )
        database = _Database(location, create=create)
        try:
            ix, state = database._run(lambda db: cls._load_or_create(db, database, key, scheme, create),
                                      "cannot read", write=create)  # fmt: skip
        except BaseException:
            database.close()
            raise
        return cls(database, ix, state, key)

    @staticmethod
    def _load_or_create(db: Any, database: _Database, key: TextKey, scheme: WatermarkScheme,
                        create: bool) -> tuple[int, _State]:  # fmt: skip
        q = database.sql
        row = db.execute(q("SELECT ix, state FROM known_output_indexes WHERE key_id = %s"), (key.key_id,)).fetchone()
        if row is not None:
            state = _State.from_text(str(row[1]), redact(database.location))
            if state.key_id != key.key_id or state.vocab_size != key.vocab_size or not 0 <= int(row[0]) <= _MAX_INDEXES:
                raise KnownOutputIndexError(f"{redact(database.location)}: the known-output index of key "
                                            f"{key.key_id} does not match the key (corrupt index)")  # fmt: skip
            return int(row[0]), state
        if not create:
            raise KnownOutputIndexError(f"{redact(database.location)} holds no known outputs for key {key.key_id}")
        used = [int(r[0]) for r in db.execute("SELECT ix FROM known_output_indexes").fetchall()]
        free = [ix for ix in range(_MAX_INDEXES + 1) if ix not in used]
        if not free:
            raise KnownOutputIndexError(f"{redact(database.location)} holds {len(used)} known-output indexes, "
                                        "the most one database holds")  # fmt: skip
        state = _State(key.key_id, key.scheme, scheme.context_width, key.vocab_size,
                       int.from_bytes(secrets.token_bytes(16), "big"), 0, [[_FIRST_BLOCKS, 0]])  # fmt: skip
        db.execute(q("INSERT INTO known_output_indexes (ix, key_id, state) VALUES (%s, %s, %s)"),
                   (free[0], key.key_id, state.to_text()))  # fmt: skip
        return free[0], state

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KnownOutputIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def outputs(self) -> int:
        return self._state.outputs

    def refresh(self) -> None:
        """Re-read the index's state (another process or instance may have added outputs)."""
        q = self._db.sql
        row = self._db._run(lambda db: db.execute(q("SELECT state FROM known_output_indexes WHERE ix = %s"),
                                                  (self._ix,)).fetchone(), "cannot read")  # fmt: skip
        if row is None:
            raise KnownOutputIndexError(f"{redact(self._db.location)}: the known-output index vanished")
        self._state = _State.from_text(str(row[0]), redact(self._db.location))

    # -- units -----------------------------------------------------------------------------------

    def _units(self, token_ids: Sequence[int] | NDArray[np.int64]) -> tuple[NDArray[np.uint64], NDArray[np.bool_]]:
        """The text's distinct units as salted 64-bit hashes, and whether each is green."""
        scored = self._scheme.score(np.asarray(token_ids, dtype=np.int64))
        packed = pack_units(scored.unit_keys, self._scheme.vocab_size)
        distinct, first = np.unique(packed, return_index=True)
        green = scored.hits[first] > 0
        hashed = _salted(distinct, self._state.salt, 0)
        order = np.argsort(hashed)
        return hashed[order], green[order]

    def _blocks(self, hashed: NDArray[np.uint64], segment: int, blocks: int) -> NDArray[np.int64]:
        return (_salted(hashed, self._state.salt, 2 + segment) % np.uint64(blocks)).astype(np.int64)

    def _bit_positions(self, hashed: NDArray[np.uint64]) -> NDArray[np.int64]:
        spread = _salted(hashed, self._state.salt, 1)
        a = (spread & np.uint64(_BLOCK_BITS - 1)).astype(np.int64)
        b = ((spread >> np.uint64(11)) & np.uint64(_BLOCK_BITS - 1)).astype(np.int64) | 1
        return (a[:, None] + np.arange(_HASHES, dtype=np.int64)[None, :] * b[:, None]) % _BLOCK_BITS

    def _sampled(self, hashed: NDArray[np.uint64]) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        sample = _salted(hashed, self._state.salt, 20)
        chosen = sample < np.uint64(1 << _SAMPLE_SHIFT)
        fingerprints = (sample & np.uint64((1 << _FINGERPRINT_BITS) - 1)).astype(np.int64)
        return chosen, fingerprints

    def _rice_values(self, hashed: NDArray[np.uint64], count: int) -> NDArray[np.uint64]:
        return _salted(hashed, self._state.salt, 21) % np.uint64(max(1, count) << _RICE_BITS)

    # -- adding ----------------------------------------------------------------------------------

    def add_token_ids(self, outputs: Iterable[Sequence[int] | NDArray[np.int64]],
                      log_indices: Iterable[int | None] | None = None) -> list[int]:  # fmt: skip
        """Index outputs (token ids as the verifier reads them); returns their numbers in the index."""
        prepared: list[tuple[NDArray[np.uint64], int | None]] = []
        indices = iter(log_indices) if log_indices is not None else None
        for ids in outputs:
            hashed, _ = self._units(ids)
            prepared.append((hashed, None if indices is None else next(indices)))
        if not prepared:
            return []
        return list(self._db._run(lambda db: self._insert(db, prepared), "cannot write", write=True))

    def add_texts(self, texts: Iterable[str], tokenizer: TextTokenizer,
                  log_indices: Iterable[int | None] | None = None) -> list[int]:  # fmt: skip
        """Index texts as published: canonicalised and tokenised as detection reads them."""
        return self.add_token_ids((verifier_ids(text, tokenizer) for text in texts), log_indices)

    def _insert(self, db: Any, prepared: list[tuple[NDArray[np.uint64], int | None]]) -> list[int]:
        q = self._db.sql
        lock = " FOR UPDATE" if self._db.postgres else ""  # SQLite: BEGIN IMMEDIATE already excludes writers
        row = db.execute(q(f"SELECT state FROM known_output_indexes WHERE ix = %s{lock}"), (self._ix,)).fetchone()
        if row is None:
            raise KnownOutputIndexError(f"{redact(self._db.location)}: the known-output index vanished")
        state = _State.from_text(str(row[0]), redact(self._db.location))
        self._state = state
        first = state.outputs
        if first + len(prepared) > _MAX_OUTPUT:
            raise KnownOutputIndexError("the known-output index holds its most outputs (2**32)")
        numbers = list(range(first, first + len(prepared)))
        output_rows = []
        sample_keys: list[int] = []
        for number, (hashed, log_index) in zip(numbers, prepared, strict=True):
            values = self._rice_values(hashed, hashed.shape[0])  # equal values are gaps of 0
            output_rows.append(((self._ix << 40) | number, log_index, int(values.shape[0]),
                                _rice_encode(values)))  # fmt: skip
            chosen, fingerprints = self._sampled(hashed)
            base = (self._ix << 60) | number
            sample_keys.extend(base | (int(fp) << 32) for fp in np.unique(fingerprints[chosen]).tolist())
        self._many(db, q("INSERT INTO known_outputs (id, log_index, units, rice) VALUES (%s, %s, %s, %s)"),
                   output_rows)  # fmt: skip
        self._many(db, q("INSERT INTO known_output_samples (k) VALUES (%s)"), [(k,) for k in sample_keys])
        all_units = np.unique(np.concatenate([hashed for hashed, _ in prepared]))
        self._set_filter(db, all_units, state)
        state.outputs = first + len(prepared)
        db.execute(q("UPDATE known_output_indexes SET state = %s WHERE ix = %s"), (state.to_text(), self._ix))
        return numbers

    def _many(self, db: Any, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
        if not rows:
            return
        if self._db.postgres:
            with db.cursor() as cursor:
                cursor.executemany(statement, rows)
        else:
            db.executemany(statement, rows)

    def _set_filter(self, db: Any, units: NDArray[np.uint64], state: _State) -> None:
        q = self._db.sql
        remaining = units
        while remaining.shape[0]:
            segment = len(state.segments) - 1
            blocks, held = state.segments[-1]
            room = blocks * _BLOCK_BITS // _BITS_PER_UNIT - held
            if room <= 0:
                state.segments.append([blocks * _GROWTH, 0])
                continue
            part, remaining = remaining[:room], remaining[room:]
            block_of = self._blocks(part, segment, blocks)
            positions = self._bit_positions(part)
            touched = np.unique(block_of)
            stored: dict[int, NDArray[np.uint8]] = {}
            for low in range(0, touched.shape[0], 500):
                chunk = touched[low : low + 500].tolist()
                marks = ", ".join(["%s"] * len(chunk))
                for block, bits in db.execute(q(f"SELECT block, bits FROM known_output_filter WHERE ix = %s AND "
                                                f"segment = %s AND block IN ({marks})"),
                                              (self._ix, segment, *chunk)).fetchall():  # fmt: skip
                    array = np.frombuffer(bytes(bits), dtype=np.uint8)
                    if array.shape[0] != _BLOCK_BYTES:
                        raise KnownOutputIndexError(f"{redact(self._db.location)}: a filter block has "
                                                    f"{array.shape[0]} bytes (corrupt index)")  # fmt: skip
                    stored[int(block)] = np.unpackbits(array)
            order = np.argsort(block_of, kind="stable")
            sorted_blocks = block_of[order]
            bounds = np.flatnonzero(np.diff(sorted_blocks)) + 1
            rows = []
            for group in np.split(order, bounds):
                block = int(block_of[group[0]])
                bitmap = stored.get(block)
                bitmap = np.zeros(_BLOCK_BITS, dtype=np.uint8) if bitmap is None else bitmap.copy()
                bitmap[positions[group].ravel()] = 1
                rows.append((self._ix, segment, block, np.packbits(bitmap).tobytes()))
            if self._db.postgres:
                self._many(db, "INSERT INTO known_output_filter (ix, segment, block, bits) VALUES (%s, %s, %s, %s) "
                               "ON CONFLICT (ix, segment, block) DO UPDATE SET bits = EXCLUDED.bits", rows)  # fmt: skip
            else:
                db.executemany("INSERT OR REPLACE INTO known_output_filter (ix, segment, block, bits) "
                               "VALUES (?, ?, ?, ?)", rows)  # fmt: skip
            state.segments[-1][1] = held + int(part.shape[0])

    # -- checking --------------------------------------------------------------------------------

    def _members(self, db: Any, hashed: NDArray[np.uint64]) -> NDArray[np.bool_]:
        q = self._db.sql
        member = np.zeros(hashed.shape[0], dtype=np.bool_)
        positions = self._bit_positions(hashed)
        for segment, (blocks, held) in enumerate(self._state.segments):
            if held == 0:
                continue
            block_of = self._blocks(hashed, segment, blocks)
            wanted = sorted(set(block_of.tolist()))
            stored: dict[int, NDArray[np.uint8]] = {}
            for low in range(0, len(wanted), 500):
                chunk = wanted[low : low + 500]
                marks = ", ".join(["%s"] * len(chunk))
                for block, bits in db.execute(q(f"SELECT block, bits FROM known_output_filter WHERE ix = %s AND "
                                                f"segment = %s AND block IN ({marks})"),
                                              (self._ix, segment, *chunk)).fetchall():  # fmt: skip
                    array = np.frombuffer(bytes(bits), dtype=np.uint8)
                    if array.shape[0] != _BLOCK_BYTES:
                        raise KnownOutputIndexError(f"{redact(self._db.location)}: a filter block has "
                                                    f"{array.shape[0]} bytes (corrupt index)")  # fmt: skip
                    stored[int(block)] = np.unpackbits(array)
            for row in range(hashed.shape[0]):
                bitmap = stored.get(int(block_of[row]))
                if bitmap is not None and bool(bitmap[positions[row]].all()):
                    member[row] = True
        return member

    def _candidates(self, db: Any, hashed: NDArray[np.uint64]) -> list[tuple[int, int | None, int, bytes]]:
        q = self._db.sql
        chosen, fingerprints = self._sampled(hashed)
        counts: dict[int, int] = {}
        for fp in sorted(set(fingerprints[chosen].tolist())):
            low = (self._ix << 60) | (int(fp) << 32)
            for (k,) in db.execute(q("SELECT k FROM known_output_samples WHERE k >= %s AND k <= %s"),
                                   (low, low | _MAX_OUTPUT)).fetchall():  # fmt: skip
                number = int(k) & _MAX_OUTPUT
                counts[number] = counts.get(number, 0) + 1
        best = sorted(counts, key=lambda n: (-counts[n], n))[:_CANDIDATES]
        out = []
        for number in best:
            row = db.execute(q("SELECT log_index, units, rice FROM known_outputs WHERE id = %s"),
                             ((self._ix << 40) | number,)).fetchone()  # fmt: skip
            if row is None:
                raise KnownOutputIndexError(f"{redact(self._db.location)}: output {number} of the known-output "
                                            "index is missing (corrupt index)")  # fmt: skip
            out.append((number, None if row[0] is None else int(row[0]), int(row[1]), bytes(row[2])))
        return out

    def check(self, token_ids: Sequence[int] | NDArray[np.int64], *, alpha: float) -> KnownOutputCheck:
        """Test ``token_ids`` on the units no indexed output but its best match explains (see the module)."""
        if not 0.0 < alpha < 1.0:
            raise KnownOutputIndexError(f"alpha must lie in (0, 1), not {alpha}")
        hashed, green = self._units(token_ids)

        def lookup(db: Any) -> tuple[NDArray[np.bool_], list[tuple[int, int | None, int, bytes]]]:
            return self._members(db, hashed), self._candidates(db, hashed)

        member, candidates = self._db._run(lookup, "cannot read")
        in_best = np.zeros(hashed.shape[0], dtype=np.bool_)
        best: int | None = None
        best_log: int | None = None
        for number, log_index, count, blob in candidates:
            stored = _rice_decode(blob, count)
            found = member & np.isin(self._rice_values(hashed, count), stored)
            if best is None or int(found.sum()) > int(in_best.sum()):
                best, best_log, in_best = number, log_index, found
        known_elsewhere = member & ~in_best
        novel = ~member | in_best
        novel_units = int(novel.sum())
        novel_green = int(green[novel].sum())
        beta = alpha / 100.0
        probability = min(1.0, len(candidates) * 2.0**-_RICE_BITS)
        tested = int(member.sum())
        allowance = _false_match_allowance(tested, probability, beta) if candidates and tested else 0
        gamma = self._scheme.success_probability
        tail = binomial_upper_tail(max(0, novel_green - allowance), max(0, novel_units - allowance), gamma)
        added = beta if candidates else 0.0  # no coded set was queried: no false match is possible
        p_value = min(1.0, tail.p_value + added)
        log10_p = math.log10(p_value) if p_value > 0 else tail.log10_p_value
        return KnownOutputCheck(
            units=int(hashed.shape[0]),
            green=int(green.sum()),
            best_output=best,
            best_output_log_index=best_log,
            best_output_units=int(in_best.sum()),
            known_elsewhere=int(known_elsewhere.sum()),
            novel_units=novel_units,
            novel_green=novel_green,
            false_match_allowance=allowance,
            false_match_probability=added,
            membership_false_positive_rate=_membership_rate(self._state.segments),
            p_value_novel=p_value,
            log10_p_value_novel=min(0.0, log10_p),
            assembled=bool(p_value > alpha and known_elsewhere.any()),
        )

    def describe(self, *, measure: bool = True) -> KnownOutputIndexJSON:
        """What the index holds and, with ``measure``, what it costs (bytes: the stored keys and blobs)."""
        size = self._db.size_bytes(self._ix) if measure else None
        held = sum(units for _, units in self._state.segments)
        return {
            "format": KNOWN_OUTPUTS_FORMAT,
            "location": redact(self._db.location),
            "key_id": self.key.key_id,
            "scheme": self.key.scheme,
            "context_width": self._state.context_width,
            "outputs": self._state.outputs,
            "units_inserted": held,
            "bytes": size,
            "bytes_per_output": size / self._state.outputs if size is not None and self._state.outputs else None,
            "membership_false_positive_rate": _membership_rate(self._state.segments),
            "filter_segments": len(self._state.segments),
            "rice_bits": _RICE_BITS,
            "sample_rate": 2.0 ** (_SAMPLE_SHIFT - 64),
        }


def verifier_ids(text: str, tokenizer: TextTokenizer) -> NDArray[np.int64]:
    """The token ids detection reads from a published text (canonical form, as given)."""
    return tokenizer.encode(canonicalize(text).text).ids


def _variant_ids(text: str, tokenizer: TextTokenizer, variant: str | None, prompt: str | None) -> NDArray[np.int64]:
    body = canonicalize(text).text
    if prompt:
        head = canonicalize(prompt).text
        if body.startswith(head):
            body = body[len(head) :]
    if variant:
        for candidate in text_variants(body, tokenizer):  # the variants detection tested (typos: with the tokenizer)
            if candidate.name == variant:
                return tokenizer.encode(candidate.text).ids
    return tokenizer.encode(body).ids


def attribute(verdict_marked: bool, variant: str | None, text: str, tokenizer: TextTokenizer,
              index: KnownOutputIndex | None, *, alpha: float, prompt: str | None = None) -> Attribution:  # fmt: skip
    """The attribution beside a verdict: ``attributed`` only when the mark holds without other outputs' units.

    ``variant`` is the text variant the verdict's p-value came from (its ``canonicalization["variant"]``);
    the check reads the same tokens.
    """
    if index is None:
        return not_checked("no known-output index given")
    description = index.describe(measure=False)
    if not verdict_marked:
        return Attribution(NOT_CHECKED, False, "the text is not marked at alpha: nothing to attribute", description)
    check = index.check(_variant_ids(text, tokenizer, variant, prompt), alpha=alpha)
    if check.assembled:
        return Attribution(ASSEMBLED, False,
                           f"{check.known_elsewhere} of its {check.units} units are in other indexed outputs and "
                           f"without them the mark does not hold (p = {check.p_value_novel:.3g} > alpha {alpha:g}): "
                           "spoof suspected, do not call it ours", description, check)  # fmt: skip
    return Attribution(ATTRIBUTED, True,
                       f"the mark holds on units that are novel or from one indexed output "
                       f"(p = {check.p_value_novel:.3g} <= alpha {alpha:g})", description, check)  # fmt: skip


def iter_known_output_texts(paths: Sequence[str], read: Callable[[str], str]) -> Iterator[str]:
    """Texts to index: each file is one output; a ``.jsonl`` file holds one ``{"text": ...}`` per line."""
    for path in paths:
        content = read(path)
        if not path.endswith(".jsonl"):
            yield content
            continue
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise KnownOutputIndexError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise KnownOutputIndexError(f"{path}:{number}: expected an object with a string 'text'")
            yield record["text"]
