"""C2SP tlog-tiles: the log as static files, read by anyone with the log's public key.

Layout (c2sp.org/tlog-tiles), for a log whose signed checkpoint has ``size`` leaves::

    checkpoint                      the signed note (text/plain; charset=utf-8)
    tile/<L>/<N>[.p/<W>]            hashes of Merkle level 8*L: 256 per full tile, W (1..255) per partial tile
    tile/entries/<N>[.p/<W>]        the entries: each a big-endian uint16 length, then its bytes

``N`` is written in 3-digit path elements, all but the last prefixed with ``x``
(1234067 is ``x001/x234/067``).  The hash at position ``i`` of tile ``(L, N)`` is the Merkle
tree hash of leaves ``[(N*256 + i) * 256**L, (N*256 + i + 1) * 256**L)``: in this package's
addressing, the perfect node ``NodeAddress(8*L, N*256 + i)``, which the store already keeps.
So serving a tile is one batch read of stored nodes, outside any write transaction.

A full tile never changes.  The rightmost tile of each level is partial (``floor(size /
256**L) mod 256`` hashes) and is named by its width, so a given path never changes either;
a larger tree adds new partial tiles beside the old ones.

:func:`export_tiles` writes these files to a directory incrementally and atomically, so a
static host or CDN can serve the log.  :class:`TileClient` reads them from a URL or a
directory, verifies the checkpoint with the log's key, and computes inclusion and
consistency proofs from the tiles alone; a proof computed from tampered tiles fails RFC 9162
verification against the signed root, so the tiles themselves need no trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracemark._fs import atomic_write_bytes, fsync_directory
from tracemark.errors import TlogError, TlogFormatError, TlogProofError, TlogStorageError
from tracemark.tlog._checkpoint import Checkpoint, VerifiedCheckpoint, verify_checkpoint
from tracemark.tlog._log import TransparencyLog
from tracemark.tlog._merkle import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    Hash,
    NodeAddress,
    fold_range,
    hash_leaf,
    prove_consistency,
    prove_inclusion,
    range_nodes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tracemark.tlog._note import MAX_NOTE_BYTES, NoteVerifier, SignedNote
from tracemark.tlog._receipt import Receipt, VerifiedReceipt, verify_receipt
from tracemark.tlog._store.interface import LogStore

#: Merkle levels per tile (tlog-tiles fixes it at 8) and hashes per full tile.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
#: Highest tile level a path may name (tlog-tiles: 0 to 63).
MAX_TILE_LEVEL = 63
#: Largest entry an entry bundle can hold (its length is a uint16).
MAX_BUNDLE_ENTRY_BYTES = 0xFFFF
#: Largest entry bundle a client reads: 256 entries of the largest size.
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_BUNDLE_ENTRY_BYTES)

CHECKPOINT_PATH = "checkpoint"


class TileFormatError(TlogFormatError):
    """A tile, entry bundle or checkpoint read from a tile source is malformed: wrong length, truncated, too large."""


class TileFetchError(TlogError):
    """A tile source cannot deliver a resource (missing file, HTTP error, network failure)."""


class TileHashError(TlogProofError):
    """Tiles that do not reproduce the signed tree: a root, proof or entry computed from them does not verify."""


class SplitViewError(TlogError):
    """The log showed two signed views that cannot both be honest.  Exit status 20.

    ``evidence`` holds both signed checkpoints (and a proof, where there is one): anyone
    holding the log's key can check that the log signed both.
    """

    exit_code = 20

    def __init__(self, message: str, old_note: str, new_note: str) -> None:
        super().__init__(message)
        self.old_note = old_note
        self.new_note = new_note


class LogForkError(SplitViewError):
    """Two signed checkpoints of one log where neither tree extends the other (same size, other root; or growth
    that rewrote entries)."""


class LogRollbackError(SplitViewError):
    """The log now serves a signed checkpoint smaller than one it signed before."""


# -- addressing ------------------------------------------------------------------------------


def encode_tile_index(index: int) -> str:
    """``N`` in 3-digit path elements, all but the last prefixed ``x`` (tlog-tiles: 1234067 → ``x001/x234/067``)."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TlogFormatError(f"tile index {index!r} is not a non-negative integer")
    text = f"{index % 1000:03d}"
    index //= 1000
    while index:
        text = f"x{index % 1000:03d}/{text}"
        index //= 1000
    return text


def tile_width(level: int, index: int, size: int) -> int:
    """Hashes in tile ``(level, index)`` of a tree of ``size`` leaves: 256, a partial width, or 0 (no such tile)."""
    hashes = size >> (TILE_HEIGHT * level)
    full = hashes >> TILE_HEIGHT
    if index < full:
        return TILE_WIDTH
    if index == full:
        return hashes % TILE_WIDTH
    return 0


def _decimal(text: str, what: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0") or len(text) > 3:
        raise TlogFormatError(f"{what} {text[:12]!r} is not a decimal number without leading zeroes")
    value = int(text)
    if not low <= value <= high:
        raise TlogFormatError(f"{what} {value} is not between {low} and {high}")
    return value


@dataclass(frozen=True)
class TileAddress:
    """One tlog-tiles resource: hash tile ``(level, index)``, or entry bundle ``index`` (``entries=True``).

    ``width`` is 256 for a full tile, 1 to 255 for a partial one.
    """

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        for name in ("level", "index", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TlogFormatError(f"tile {name} {value!r} is not an integer")
        if not 0 <= self.level <= MAX_TILE_LEVEL or (self.entries and self.level != 0):
            raise TlogFormatError(f"tile level {self.level} is not between 0 and {MAX_TILE_LEVEL}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TlogFormatError(f"tile width {self.width} is not between 1 and {TILE_WIDTH}")
        if self.index < 0 or self.start > MAX_TREE_SIZE:
            raise TlogFormatError(f"tile index {self.index} is outside any tree")

    @property
    def is_full(self) -> bool:
        """A full tile (256 hashes or entries): immutable, cacheable for ever."""
        return self.width == TILE_WIDTH

    @property
    def start(self) -> int:
        """First leaf the tile covers."""
        return self.index << (TILE_HEIGHT * (self.level + 1))

    @property
    def first_node(self) -> NodeAddress:
        """The perfect node whose hash is the tile's first (``NodeAddress(8*level, index*256)``)."""
        return NodeAddress(TILE_HEIGHT * self.level, self.index << TILE_HEIGHT)

    @property
    def leaves_needed(self) -> int:
        """The smallest tree size in which every hash (or entry) of the tile exists."""
        return ((self.index << TILE_HEIGHT) + self.width) << (TILE_HEIGHT * self.level)

    @property
    def path(self) -> str:
        """The resource path under the log's prefix, e.g. ``tile/0/x001/234.p/17``."""
        kind = "entries" if self.entries else str(self.level)
        suffix = "" if self.is_full else f".p/{self.width}"
        return f"tile/{kind}/{encode_tile_index(self.index)}{suffix}"

    @classmethod
    def parse(cls, path: str) -> TileAddress:
        """Parse a tile path strictly (canonical form only); raises :class:`~tracemark.errors.TlogFormatError`."""
        parts = path.split("/")
        if len(parts) < 3 or len(parts) > 12 or parts[0] != "tile":
            raise TlogFormatError(f"{path[:80]!r} is not a tile path")
        entries = parts[1] == "entries"
        level = 0 if entries else _decimal(parts[1], "tile level", 0, MAX_TILE_LEVEL)
        segments = parts[2:]
        width = TILE_WIDTH
        if len(segments) >= 2 and segments[-2].endswith(".p"):
            width = _decimal(segments[-1], "partial tile width", 1, TILE_WIDTH - 1)
            segments = [*segments[:-2], segments[-2][:-2]]
        digits = []
        for position, segment in enumerate(segments):
            body = segment[1:] if position < len(segments) - 1 and segment.startswith("x") else segment
            if len(body) != 3 or not body.isascii() or not body.isdigit():
                raise TlogFormatError(f"{path[:80]!r} is not a tile path (bad index element {segment[:12]!r})")
            if position < len(segments) - 1 and body is segment:
                raise TlogFormatError(f"{path[:80]!r} is not a tile path (index elements before the last start with x)")
            digits.append(body)
        address = cls(level, int("".join(digits)), width, entries)
        if address.path != path:
            raise TlogFormatError(f"{path[:80]!r} is not the canonical path of its tile")
        return address


def tiles_for_size(size: int, *, entries: bool = True) -> list[TileAddress]:
    """Every tile (and entry bundle) a tree of ``size`` leaves has, lowest level first, full tiles before partial."""
    tiles: list[TileAddress] = []
    level = 0
    while level <= MAX_TILE_LEVEL and size >> (TILE_HEIGHT * level):
        full, partial = divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)
        tiles.extend(TileAddress(level, index) for index in range(full))
        if partial:
            tiles.append(TileAddress(level, full, partial))
        level += 1
    if entries:
        full, partial = divmod(size, TILE_WIDTH)
        tiles.extend(TileAddress(0, index, entries=True) for index in range(full))
        if partial:
            tiles.append(TileAddress(0, full, partial, entries=True))
    return tiles


# -- encoding --------------------------------------------------------------------------------


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes."""
    parts = []
    for entry in entries:
        if len(entry) > MAX_BUNDLE_ENTRY_BYTES:
            raise TlogFormatError(f"an entry bundle holds entries of at most {MAX_BUNDLE_ENTRY_BYTES} bytes")
        parts.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(parts)


def parse_entry_bundle(data: bytes, width: int, what: str = "entry bundle") -> tuple[bytes, ...]:
    """Exactly ``width`` length-prefixed entries and nothing after them; raises :class:`TileFormatError`."""
    entries = []
    position = 0
    for number in range(width):
        if position + 2 > len(data):
            raise TileFormatError(f"{what} is truncated: entry {number} of {width} has no length")
        length = int.from_bytes(data[position : position + 2], "big")
        position += 2
        if position + length > len(data):
            raise TileFormatError(f"{what} is truncated inside entry {number} of {width}")
        entries.append(bytes(data[position : position + length]))
        position += length
    if position != len(data):
        raise TileFormatError(f"{what} has {len(data) - position} bytes after its {width} entries")
    return tuple(entries)


def parse_hash_tile(data: bytes, width: int, what: str = "tile") -> tuple[Hash, ...]:
    """Exactly ``width`` 32-byte hashes; raises :class:`TileFormatError`."""
    if len(data) != width * HASH_SIZE:
        raise TileFormatError(f"{what} is {len(data)} bytes; a tile of {width} hashes is {width * HASH_SIZE} bytes")
    return tuple(Hash(bytes(data[offset : offset + HASH_SIZE])) for offset in range(0, len(data), HASH_SIZE))


# -- reading tiles from a store --------------------------------------------------------------


def read_tile(store: LogStore, tile: TileAddress, tree_size: int) -> bytes:
    """The bytes of ``tile`` as the log in ``store`` serves them for a tree of ``tree_size`` leaves.

    One batch read of stored nodes (or entries); no write transaction.  Raises
    :class:`~tracemark.errors.TlogError` when the tile is not in that tree.
    """
    if tile.leaves_needed > tree_size:
        raise TlogError(f"{tile.path} is not in the tree of size {tree_size}")
    if tile.entries:
        return encode_entry_bundle(store.read_entries(tile.start, tile.start + tile.width))
    first = tile.first_node
    nodes = [NodeAddress(first.level, first.index + offset) for offset in range(tile.width)]
    found = store.read_nodes(nodes)
    try:
        return b"".join(found[node] for node in nodes)
    except KeyError as missing:
        raise TlogStorageError(f"the log's node store is missing node {missing.args[0]} of {tile.path}") from None


# -- exporting to a directory ----------------------------------------------------------------


@dataclass(frozen=True)
class TileExport:
    """What :func:`export_tiles` did: the checkpoint's size, the size found in the directory, files written."""

    directory: Path
    tree_size: int
    previous_size: int | None
    written: tuple[str, ...]
    unchanged: int


def _exported_checkpoint(directory: Path) -> tuple[str, Checkpoint] | None:
    path = directory / CHECKPOINT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TlogError(f"cannot read {path}: {exc}") from None
    try:
        return text, Checkpoint.parse(SignedNote.parse(text).text)
    except TlogFormatError as exc:
        raise TlogError(f"{path} is not a checkpoint ({exc}); refusing to export over it") from None


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / ".export-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check_previous(store: LogStore, note: str, size: int, previous: Checkpoint) -> None:
    """The directory's checkpoint must be an earlier state of this same log."""
    current = Checkpoint.parse(SignedNote.parse(note).text)
    if previous.origin != current.origin:
        raise TlogError(f"the directory holds the tiles of log {previous.origin!r}, not {current.origin!r}")
    if previous.size > size:
        raise TlogError(f"the directory holds a checkpoint of size {previous.size}, newer than the log's {size}")
    pieces = range_nodes(0, previous.size)
    found = store.read_nodes(pieces)
    if len(found) != len(pieces) or fold_range([found[node] for node in pieces]) != previous.root_hash:
        raise TlogError(f"the directory's checkpoint of size {previous.size} is not a prefix of this log's tree")


def export_tiles(log: TransparencyLog, directory: str | Path) -> TileExport:
    """Write the log's latest signed checkpoint and its tiles to ``directory``, for a static host to serve.

    Incremental: a tile file already present is left alone (full tiles never change, and a
    partial tile's path names its width), so a second export writes only the tiles that
    are new since the last one, then the checkpoint.  Atomic: every file is written under a
    temporary name, fsynced and renamed; the checkpoint is written last, after the tiles it
    needs are durable, so a reader never sees a checkpoint whose tiles are missing.  The
    checkpoint already in the directory must be an earlier state of the same log.
    """
    latest = log.latest_checkpoint()
    if latest is None:
        raise TlogError("the log has no signed checkpoint yet: run 'tracemark tlog checkpoint'")
    store, note = log.store, latest.note
    root = Path(directory)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TlogError(f"cannot create {root}: {exc.strerror}") from None
    size = Checkpoint.parse(SignedNote.parse(note).text).size
    with _directory_lock(root):
        existing = _exported_checkpoint(root)
        if existing is not None:
            _check_previous(store, note, size, existing[1])
        written: list[str] = []
        touched: set[Path] = set()
        unchanged = 0
        for tile in tiles_for_size(size):
            target = root / tile.path
            if target.is_file():
                unchanged += 1
                continue
            atomic_write_bytes(target, read_tile(store, tile, size), sync_directory=False)
            written.append(tile.path)
            touched.add(target.parent)
        for folder in sorted(touched):
            fsync_directory(folder)
        if existing is None or existing[0] != note:
            atomic_write_bytes(root / CHECKPOINT_PATH, note.encode("utf-8"), sync_directory=False)
            fsync_directory(root)
            written.append(CHECKPOINT_PATH)
    return TileExport(root, size, existing[1].size if existing else None, tuple(written), unchanged)


# -- reading tiles from a URL or a directory -------------------------------------------------


class TileSource(ABC):
    """Where a client reads a tiled log from: a URL prefix or a directory."""

    @abstractmethod
    def fetch(self, path: str, max_bytes: int) -> bytes:
        """The resource at ``path`` (under the prefix), refusing more than ``max_bytes``."""

    @property
    @abstractmethod
    def location(self) -> str:
        """The URL or directory, for messages."""


class DirectoryTileSource(TileSource):
    """A directory laid out as tlog-tiles (what :func:`export_tiles` writes)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @property
    def location(self) -> str:
        """The directory."""
        return str(self.directory)

    def fetch(self, path: str, max_bytes: int) -> bytes:
        """Read ``directory/path``, refusing files over ``max_bytes``."""
        if path.startswith("/") or ".." in path.split("/"):
            raise TileFetchError(f"refusing to read {path!r} outside {self.directory}")
        target = self.directory / path
        try:
            with open(target, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise TileFetchError(f"{target}: no such file") from None
        except OSError as exc:
            raise TileFetchError(f"cannot read {target}: {exc.strerror}") from None
        if len(data) > max_bytes:
            raise TileFormatError(f"{target} is larger than {max_bytes} bytes")
        return data


class HTTPTileSource(TileSource):
    """A log served over HTTP(S) at a URL prefix (this service, a static host, a CDN).

    Uses the standard library's ``urllib``; follows redirects, accepts ``gzip`` (tlog-tiles
    allows it without negotiation) and bounds both the transferred and the decoded size.
    """

    def __init__(self, prefix: str, *, timeout: float = 30.0) -> None:
        self.prefix = prefix.rstrip("/")
        self.timeout = timeout

    @property
    def location(self) -> str:
        """The URL prefix."""
        return self.prefix

    def fetch(self, path: str, max_bytes: int) -> bytes:
        """GET ``prefix/path``."""
        # Imported here: http.client and ssl are slow imports that the offline verbs never need.
        import urllib.error
        import urllib.request

        from tracemark import __version__

        url = f"{self.prefix}/{path}"
        headers = {"Accept-Encoding": "gzip, identity", "User-Agent": f"tracemark/{__version__}"}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes + 1024:
                    raise TileFormatError(f"{url} is {declared} bytes; at most {max_bytes} are expected")
                body = response.read(max_bytes + 1025)
                encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        except urllib.error.HTTPError as exc:
            raise TileFetchError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TileFetchError(f"{url}: {reason}") from None
        if len(body) > max_bytes + 1024:
            raise TileFormatError(f"{url} is larger than {max_bytes} bytes")
        return _decode(body, encoding, max_bytes, url)


def _decode(body: bytes, encoding: str, max_bytes: int, url: str) -> bytes:
    if encoding == "gzip":
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = decoder.decompress(body, max_bytes + 1)
        except zlib.error:
            raise TileFormatError(f"{url} is not valid gzip") from None
        if len(data) > max_bytes or decoder.unconsumed_tail:
            raise TileFormatError(f"{url} decompresses to more than {max_bytes} bytes")
        if not decoder.eof:
            raise TileFormatError(f"{url} is truncated gzip")
        return data
    if encoding != "identity":
        raise TileFormatError(f"{url} uses Content-Encoding {encoding[:20]!r}; only gzip and identity are read")
    if len(body) > max_bytes:
        raise TileFormatError(f"{url} is larger than {max_bytes} bytes")
    return body


def open_tile_source(location: str | Path, *, timeout: float = 30.0) -> TileSource:
    """A :class:`TileSource` for an ``http(s)://`` URL prefix, a ``file://`` URL, or a directory path."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        return HTTPTileSource(text, timeout=timeout)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if not Path(text).is_dir():
        raise TileFetchError(f"{text} is neither an http(s) URL nor a directory")
    return DirectoryTileSource(text)


# -- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrowthProof:
    """The log grew from ``old`` to ``new`` without rewriting anything: the consistency proof that shows it."""

    old: Checkpoint
    new: Checkpoint
    proof: tuple[Hash, ...]


@dataclass(frozen=True)
class TileReceiptCheck:
    """A receipt verified offline and against the log's tiles: the entry is in the current tree, which extends
    the receipt's."""

    receipt: VerifiedReceipt
    checkpoint: VerifiedCheckpoint
    growth: GrowthProof
    inclusion_proof: tuple[Hash, ...]


class TileClient:
    """Reads a tiled log and proves things about it from its tiles alone.

    Every checkpoint is verified with ``log_key`` (and the witness policy); every proof is
    computed from tiles and verified against a signed root, so wrong tiles give
    :class:`TileHashError` (or :class:`TileFormatError`), never a wrong answer.  Tiles are
    cached (at most ``MAX_CACHED_TILES``): a tile path never changes its content, so the cache
    stays valid while the log grows.
    """

    MAX_CACHED_TILES = 4096

    def __init__(
        self,
        source: TileSource | str | Path,
        log_key: NoteVerifier,
        *,
        origin: str | None = None,
        witnesses: Sequence[NoteVerifier] = (),
        quorum: int = 0,
    ) -> None:
        self.source = source if isinstance(source, TileSource) else open_tile_source(source)
        self.log_key = log_key
        self.origin = origin
        self.witnesses = tuple(witnesses)
        self.quorum = quorum
        self._tiles: dict[TileAddress, tuple[Hash, ...]] = {}

    # -- checkpoint ----------------------------------------------------------------------
    def checkpoint(self) -> VerifiedCheckpoint:
        """The log's current checkpoint, with its signature (and witness quorum) verified."""
        data = self.source.fetch(CHECKPOINT_PATH, MAX_NOTE_BYTES)
        try:
            note = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TileFormatError(f"{self.source.location}/checkpoint is not UTF-8") from None
        return verify_checkpoint(note, self.log_key, origin=self.origin, witnesses=self.witnesses, quorum=self.quorum)

    # -- hashes --------------------------------------------------------------------------
    def _tile(self, level: int, index: int, tree_size: int) -> tuple[Hash, ...]:
        width = tile_width(level, index, tree_size)
        if width == 0:
            raise TileHashError(f"tile ({level}, {index}) is not in a tree of size {tree_size}")
        address = TileAddress(level, index, width)
        cached = self._tiles.get(address)
        if cached is None:
            data = self.source.fetch(address.path, width * HASH_SIZE)
            cached = parse_hash_tile(data, width, f"{self.source.location}/{address.path}")
            if len(self._tiles) >= self.MAX_CACHED_TILES:
                self._tiles.clear()
            self._tiles[address] = cached
        return cached

    def read_nodes(self, tree_size: int) -> _TileNodeReader:
        """A node reader over the tiles of the tree of ``tree_size`` leaves (for the Merkle proof planners)."""
        return _TileNodeReader(self, tree_size)

    def root_hash(self, size: int, tree_size: int) -> Hash:
        """The root of the first ``size`` leaves, folded from the tiles of the tree of ``tree_size`` leaves."""
        if not 0 <= size <= tree_size:
            raise TileHashError(f"size {size} is not in a tree of size {tree_size}")
        pieces = range_nodes(0, size)
        found = self.read_nodes(tree_size)(pieces)
        return fold_range([found[node] for node in pieces])

    def verify_tree(self, checkpoint: Checkpoint) -> None:
        """Check that the tiles reproduce the checkpoint's root; raises :class:`TileHashError`."""
        if self.root_hash(checkpoint.size, checkpoint.size) != checkpoint.root_hash:
            raise TileHashError(
                f"the tiles at {self.source.location} do not reproduce the signed root of size {checkpoint.size}"
            )

    # -- proofs --------------------------------------------------------------------------
    def inclusion_proof(self, index: int, leaf_hash: bytes, checkpoint: Checkpoint) -> tuple[Hash, ...]:
        """RFC 9162 inclusion proof of ``leaf_hash`` at ``index`` in the checkpoint's tree, from tiles, verified."""
        proof = tuple(prove_inclusion(index, checkpoint.size, self.read_nodes(checkpoint.size)))
        try:
            verify_inclusion(index, checkpoint.size, leaf_hash, proof, checkpoint.root_hash)
        except TlogProofError as exc:
            raise TileHashError(
                f"entry {index} is not proven in the signed tree of size {checkpoint.size}: {exc}"
            ) from None
        return proof

    def consistency_proof(self, old: Checkpoint, new: Checkpoint, tree_size: int | None = None) -> tuple[Hash, ...]:
        """RFC 9162 consistency proof from ``old`` to ``new``, from the tiles of ``tree_size`` (default: ``new``).

        Raises :class:`~tracemark.errors.ConsistencyProofError` when it does not verify.
        """
        proof = tuple(prove_consistency(old.size, new.size, self.read_nodes(tree_size or new.size)))
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        return proof

    def check_growth(self, old: Checkpoint, old_note: str, new: VerifiedCheckpoint) -> GrowthProof:
        """Check that the signed ``new`` tree extends the signed ``old`` one, from the tiles of ``new``.

        Raises :class:`LogRollbackError` (``new`` is smaller), :class:`LogForkError` (same size
        and another root, or the new tree's first ``old.size`` leaves have another root: a
        proven fork, both checkpoints being signed), or :class:`TileHashError` (the tiles do
        not match the new checkpoint, so nothing is proven either way).
        """
        current = new.checkpoint
        if current.origin != old.origin:
            raise TlogError(f"checkpoint of log {current.origin!r} compared with one of {old.origin!r}")
        if current.size < old.size:
            raise LogRollbackError(
                f"rollback: {current.origin} now serves size {current.size} after signing size {old.size}",
                old_note,
                new.note,
            )
        if current.size == old.size:
            if current.root_hash != old.root_hash:
                raise LogForkError(f"fork: {current.origin} signed two roots for size {old.size}", old_note, new.note)
            return GrowthProof(old, current, ())
        self.verify_tree(current)
        prefix_root = self.root_hash(old.size, current.size)
        proof = tuple(prove_consistency(old.size, current.size, self.read_nodes(current.size)))
        try:
            verify_consistency(old.size, current.size, prefix_root, current.root_hash, proof)
        except TlogProofError as exc:
            raise TileHashError(
                f"the tiles at {self.source.location} are not one tree with the signed root: {exc}"
            ) from None
        if prefix_root != old.root_hash:
            raise LogForkError(
                f"fork: the first {old.size} entries of {current.origin}'s tree of size {current.size}"
                f" are not the tree it signed at size {old.size}",
                old_note,
                new.note,
            )
        return GrowthProof(old, current, proof)

    # -- receipts ------------------------------------------------------------------------
    def verify_receipt(self, receipt: Receipt | str | bytes, *, entry: bytes | None = None) -> TileReceiptCheck:
        """Verify a receipt offline, then against the log as its tiles show it now.

        Checks the receipt (signature, witness policy, inclusion: :func:`verify_receipt`), fetches
        the log's current checkpoint and verifies it, proves from the tiles that the current tree
        extends the receipt's (:meth:`check_growth`), reads the entry back from its entry bundle
        and proves it in the current tree.  Raises :class:`~tracemark.errors.TlogError` when the
        tiles are behind the receipt (a stale mirror, or a rollback).
        """
        verified = verify_receipt(
            receipt, self.log_key, entry=entry, origin=self.origin, witnesses=self.witnesses, quorum=self.quorum
        )
        current = self.checkpoint()
        signed = verified.checkpoint
        if current.checkpoint.size < signed.checkpoint.size:
            raise TlogError(
                f"the tiles at {self.source.location} show size {current.checkpoint.size}, older than the receipt's"
                f" checkpoint of size {signed.checkpoint.size}: the tiles are behind, or the log rolled back"
            )
        growth = self.check_growth(signed.checkpoint, signed.note, current)
        served = self.entries(verified.index, verified.index + 1, current.checkpoint)[0]
        if served != verified.entry:
            raise TileHashError(f"entry {verified.index} in the tiles is not the receipt's entry")
        proof = self.inclusion_proof(verified.index, verified.leaf_hash, current.checkpoint)
        return TileReceiptCheck(verified, current, growth, proof)

    # -- entries -------------------------------------------------------------------------
    def entries(self, start: int, end: int, checkpoint: Checkpoint) -> tuple[bytes, ...]:
        """Entries ``[start, end)`` from the entry bundles, each proven in the checkpoint's tree."""
        if not 0 <= start <= end <= checkpoint.size:
            raise TlogError(f"entries {start}..{end} are not in the tree of size {checkpoint.size}")
        out: list[bytes] = []
        if start == end:
            return ()
        for bundle_index in range(start >> TILE_HEIGHT, ((end - 1) >> TILE_HEIGHT) + 1):
            width = tile_width(0, bundle_index, checkpoint.size)
            address = TileAddress(0, bundle_index, width, entries=True)
            data = self.source.fetch(address.path, width * (2 + MAX_BUNDLE_ENTRY_BYTES))
            bundle = parse_entry_bundle(data, width, f"{self.source.location}/{address.path}")
            for offset, entry in enumerate(bundle):
                index = address.start + offset
                if start <= index < end:
                    self.inclusion_proof(index, hash_leaf(entry), checkpoint)
                    out.append(entry)
        return tuple(out)


class _TileNodeReader:
    """Node reads (a ``NodeReader``) answered from tiles: node ``(8L+h, j)`` folds ``2**h`` hashes of level L."""

    def __init__(self, client: TileClient, tree_size: int) -> None:
        self._client = client
        self._tree_size = tree_size

    def __call__(self, nodes: Sequence[NodeAddress]) -> Mapping[NodeAddress, bytes]:
        found: dict[NodeAddress, bytes] = {}
        for node in nodes:
            if node.end > self._tree_size:
                raise TileHashError(f"node ({node.level}, {node.index}) is not in a tree of size {self._tree_size}")
            level, height = divmod(node.level, TILE_HEIGHT)
            first = node.index << height
            tile = self._client._tile(level, first >> TILE_HEIGHT, self._tree_size)
            offset = first % TILE_WIDTH
            hashes = tile[offset : offset + (1 << height)]
            found[node] = hashes[0] if height == 0 else root_hash(hashes)
        return found
