"""C2SP tlog-tiles: paths, tile contents against RFC 9162 and transparency-dev's vectors, export, the client.

Tile contents are checked against the spec's formula (the hash at position i of tile (l, n) is
MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l])) computed by the plain recursive
reference in ``_reference.py``, and proofs computed from tiles against transparency-dev/merkle's
known answers.  Hostile tile sources (wrong length, bad hash, truncated, huge) must give typed errors.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.tlog import _reference as ref
from tests.unit.tlog._helpers import make_record
from tracemark.errors import TlogError, TlogFormatError, TlogSignatureError
from tracemark.tlog import (
    Checkpoint,
    DirectoryTileSource,
    LogForkError,
    LogRollbackError,
    MemoryStore,
    NoteSigner,
    SQLiteStore,
    TileAddress,
    TileClient,
    TileFetchError,
    TileFormatError,
    TileHashError,
    TileSource,
    TransparencyLog,
    export_tiles,
    parse_entry_bundle,
    read_tile,
    tiles_for_size,
    verify_checkpoint,
)
from tracemark.tlog._tiles import _decode, encode_tile_index, tile_width
from tracemark.tlog.merkle import Hash, hash_leaf

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "transparency-dev-merkle" / "testdata"

#: The eight leaf inputs behind transparency-dev/merkle's (and RFC 6962's) test vectors.
RFC6962_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip


class StoreSource(TileSource):
    """Serves a log's tiles for one tree size straight from its store, as the service does."""

    def __init__(self, log: TransparencyLog, note: str, size: int) -> None:
        self.log, self.note, self.size = log, note, size
        self.fetched: list[str] = []

    @property
    def location(self) -> str:
        return "store"

    def fetch(self, path: str, max_bytes: int) -> bytes:
        self.fetched.append(path)
        data = (
            self.note.encode()
            if path == "checkpoint"
            else read_tile(self.log.store, TileAddress.parse(path), self.size)
        )
        assert len(data) <= max_bytes
        return data


class EditedSource(TileSource):
    """A directory source whose answers a test can replace: the hostile server."""

    def __init__(self, directory: Path) -> None:
        self.inner = DirectoryTileSource(directory)
        self.replaced: dict[str, bytes] = {}

    @property
    def location(self) -> str:
        return "edited"

    def fetch(self, path: str, max_bytes: int) -> bytes:
        if path in self.replaced:
            data = self.replaced[path]
            if len(data) > max_bytes:
                raise TileFormatError(f"{path} is larger than {max_bytes} bytes")
            return data
        return self.inner.fetch(path, max_bytes)


def grown_log(signer: NoteSigner, size: int, store: Any = None) -> TransparencyLog:
    log = TransparencyLog(store or MemoryStore(), signer=signer)
    for low in range(0, size, 50_000):
        log.append_entries([f"entry {i}".encode() for i in range(low, min(size, low + 50_000))])
    log.checkpoint()
    return log


# -- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "text"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_tile_index_uses_three_digit_elements(index: int, text: str) -> None:
    assert encode_tile_index(index) == text


@pytest.mark.parametrize(
    ("address", "path"),
    [
        (TileAddress(0, 0), "tile/0/000"),
        (TileAddress(1, 1234067, 17), "tile/1/x001/x234/067.p/17"),
        (TileAddress(0, 5, 255, entries=True), "tile/entries/005.p/255"),
        (TileAddress(63, 0, 1), "tile/63/000.p/1"),
    ],
)
def test_paths_round_trip(address: TileAddress, path: str) -> None:
    assert address.path == path
    assert TileAddress.parse(path) == address


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x000/001",  # a leading x000 element: not canonical
        "tile/00/000",
        "tile/64/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/01",
        "tile/0/1234",
        "tile/0/12",
        "tile/0/001/002",  # inner elements start with x
        "tile/0/x001",
        "tile/entries/x001.p/3",
        "tile/-1/000",
        "tile/0/000.p/",
        "tiles/0/000",
        "tile/0/00a",
        "tile/0/" + "x999/" * 9 + "999",  # past the largest tree size
    ],
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(TlogFormatError):
        TileAddress.parse(path)


def test_the_tiles_of_a_tree_of_70000_are_the_specs_example() -> None:
    # tlog-tiles §Partial Tiles: 273 full level-0 tiles and one of width 112, one full level-1 tile
    # and one of width 17, and one level-2 tile of width 1.
    tiles = tiles_for_size(70_000, entries=False)
    by_level = {level: [t for t in tiles if t.level == level] for level in (0, 1, 2)}
    assert len(tiles) == sum(len(v) for v in by_level.values())
    assert [t.width for t in by_level[0]] == [256] * 273 + [112]
    assert [t.width for t in by_level[1]] == [256, 17]
    assert [t.width for t in by_level[2]] == [1]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert tiles_for_size(256, entries=False) == [TileAddress(0, 0), TileAddress(1, 0, 1)]
    bundles = [t for t in tiles_for_size(70_000) if t.entries]
    assert [t.width for t in bundles] == [256] * 273 + [112]
    assert tiles_for_size(0) == []
    assert tile_width(0, 274, 70_000) == 0


# -- contents --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_tile_hashes_follow_the_spec_formula(backend: str, tmp_path: Path, signer: NoteSigner) -> None:
    size = 65_536 + 3 * 256 + 5  # three levels, full and partial tiles on each of the lower two
    store = MemoryStore() if backend == "memory" else SQLiteStore(tmp_path / "log.sqlite3")
    with grown_log(signer, size, store) as log:
        leaves = [ref.leaf(f"entry {i}".encode()) for i in range(size)]
        for tile in tiles_for_size(size):
            data = read_tile(log.store, tile, size)
            if tile.entries:
                assert parse_entry_bundle(data, tile.width) == tuple(
                    f"entry {i}".encode() for i in range(tile.start, tile.start + tile.width)
                )
                continue
            assert len(data) == 32 * tile.width
            span = 256**tile.level
            for i in (0, tile.width // 2, tile.width - 1):
                low = (tile.index * 256 + i) * span
                assert data[32 * i : 32 * (i + 1)] == ref.mth(leaves[low : low + span]), (tile.path, i)
        with pytest.raises(TlogError):
            read_tile(log.store, TileAddress(0, 259, 6), size)  # one hash more than the tree has


def _vector_cases(kind: str) -> list[dict[str, Any]]:
    cases = []
    for folder in sorted((VECTORS / kind).glob("[0-9]")):
        cases.append(json.loads((folder / "happy-path.json").read_text()))
    return cases


def _b64(text: str) -> Hash:
    return Hash(base64.b64decode(text))


def test_tiles_reproduce_the_transparency_dev_vectors(signer: NoteSigner) -> None:
    log = TransparencyLog(MemoryStore(), signer=signer)
    log.append_entries(RFC6962_LEAVES)
    assert read_tile(log.store, TileAddress(0, 0, 8), 8)[:4].hex() == "6e340b9c"  # the vectors' leaf 0

    def client(size: int) -> TileClient:
        return TileClient(StoreSource(log, "", size), signer.verifier)

    inclusions = _vector_cases("inclusion")
    consistencies = _vector_cases("consistency")
    assert len(inclusions) == 5
    assert len(consistencies) == 5
    for case in inclusions:
        size, index = case["treeSize"], case["leafIdx"]
        tree = Checkpoint(signer.name, size, _b64(case["root"]))
        tile_client = client(size)
        assert tile_client.root_hash(size, size) == tree.root_hash
        proof = tile_client.inclusion_proof(index, _b64(case["leafHash"]), tree)
        assert [base64.b64encode(h).decode() for h in proof] == (case["proof"] or [])
        assert read_tile(log.store, TileAddress(0, 0, size), size)[32 * index : 32 * index + 32] == _b64(
            case["leafHash"]
        )
    for case in consistencies:
        old = Checkpoint(signer.name, case["size1"], _b64(case["root1"]))
        new = Checkpoint(signer.name, case["size2"], _b64(case["root2"]))
        proof = client(new.size).consistency_proof(old, new)
        assert [base64.b64encode(h).decode() for h in proof] == (case["proof"] or [])


def test_proofs_from_tiles_equal_the_logs_own(signer: NoteSigner) -> None:
    size = 2 * 65_536 + 700
    with grown_log(signer, size) as log:
        note = log.latest_checkpoint().note  # type: ignore[union-attr]
        source = StoreSource(log, note, size)
        client = TileClient(source, signer.verifier)
        current = client.checkpoint()
        client.verify_tree(current.checkpoint)
        for index in (0, 255, 256, 65_535, 65_536, size - 1):
            proof = client.inclusion_proof(index, hash_leaf(f"entry {index}".encode()), current.checkpoint)
            assert proof == log.inclusion_proof(index).hashes
        for old_size in (1, 256, 257, 65_536, size - 1, size):
            expected = log.consistency_proof(old_size)
            old = Checkpoint(signer.name, old_size, expected.old_root)
            assert client.check_growth(old, "", current).proof == expected.hashes
        assert client.entries(65_530, 65_540, current.checkpoint) == tuple(
            f"entry {i}".encode() for i in range(65_530, 65_540)
        )
        # a tile path never changes, so the cache serves a second read without fetching
        fetched = len(source.fetched)
        client.inclusion_proof(0, hash_leaf(b"entry 0"), current.checkpoint)
        assert len(source.fetched) == fetched


# -- export ----------------------------------------------------------------------------------


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(directory)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in directory.rglob("*")
        if path.is_file()
    }


def test_export_is_incremental_and_serves_the_same_bytes(tmp_path: Path, signer: NoteSigner) -> None:
    out = tmp_path / "tiles"
    log = grown_log(signer, 300)
    first = export_tiles(log, out)
    assert first.previous_size is None
    assert set(first.written) == {
        "tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1", "tile/entries/000", "tile/entries/001.p/44", "checkpoint",
    }  # fmt: skip
    assert first.written[-1] == "checkpoint"  # written last, after the tiles it needs
    assert (out / "checkpoint").read_text() == log.latest_checkpoint().note  # type: ignore[union-attr]
    before = _snapshot(out)

    again = export_tiles(log, out)
    assert again.written == ()
    assert _snapshot(out) == before

    log.append_entries([f"entry {i}".encode() for i in range(300, 600)])
    log.checkpoint()
    second = export_tiles(log, out)
    assert second.previous_size == 300
    assert set(second.written) == {
        "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2", "tile/entries/001", "tile/entries/002.p/88", "checkpoint",
    }  # fmt: skip
    after = _snapshot(out)
    for path, identity in before.items():
        if path not in ("checkpoint", ".export-lock"):
            assert after[path] == identity, f"{path} was rewritten"
    assert not [p for p in after if p.endswith(".tmp")]
    for tile in tiles_for_size(600):
        assert (out / tile.path).read_bytes() == read_tile(log.store, tile, 600)

    client = TileClient(out, signer.verifier)
    current = client.checkpoint()
    client.verify_tree(current.checkpoint)
    assert current.checkpoint.size == 600


def test_export_refuses_another_logs_directory(tmp_path: Path, signer: NoteSigner) -> None:
    out = tmp_path / "tiles"
    export_tiles(grown_log(signer, 10), out)
    with pytest.raises(TlogError, match="tiles of log"):
        export_tiles(grown_log(NoteSigner.generate("example.com/other-log"), 20), out)
    forked = TransparencyLog(MemoryStore(), signer=signer)  # the same key, other entries
    forked.append_entries([f"other {i}".encode() for i in range(20)])
    forked.checkpoint()
    with pytest.raises(TlogError, match="not a prefix"):
        export_tiles(forked, out)
    with pytest.raises(TlogError, match="newer"):
        export_tiles(grown_log(signer, 5), out)
    with pytest.raises(TlogError, match="no signed checkpoint"):
        export_tiles(TransparencyLog(MemoryStore(), signer=signer), tmp_path / "empty")


# -- hostile sources -------------------------------------------------------------------------


@pytest.fixture
def exported(tmp_path: Path, signer: NoteSigner) -> tuple[TransparencyLog, Path]:
    log = grown_log(signer, 600)
    export_tiles(log, tmp_path / "tiles")
    return log, tmp_path / "tiles"


def _client(source: TileSource, signer: NoteSigner) -> tuple[TileClient, Checkpoint]:
    client = TileClient(source, signer.verifier)
    return client, client.checkpoint().checkpoint


def test_a_tile_of_the_wrong_length_is_a_format_error(
    exported: tuple[TransparencyLog, Path], signer: NoteSigner
) -> None:
    source = EditedSource(exported[1])
    data = (exported[1] / "tile/0/002.p/88").read_bytes()
    for edited in (data[:-1], data + b"\0" * 32, b""):
        source.replaced["tile/0/002.p/88"] = edited
        client, tree = _client(source, signer)
        with pytest.raises(TileFormatError, match="bytes"):
            client.verify_tree(tree)


def test_a_tile_with_a_wrong_hash_does_not_prove_anything(
    exported: tuple[TransparencyLog, Path], signer: NoteSigner
) -> None:
    source = EditedSource(exported[1])
    data = bytearray((exported[1] / "tile/0/000").read_bytes())
    data[5 * 32] ^= 1  # leaf 5's hash
    source.replaced["tile/0/000"] = bytes(data)
    client, tree = _client(source, signer)
    client.verify_tree(tree)  # the right border does not use that tile
    with pytest.raises(TileHashError):
        client.inclusion_proof(4, hash_leaf(b"entry 4"), tree)  # leaf 5 is leaf 4's sibling
    old = Checkpoint(signer.name, 6, exported[0].consistency_proof(6).old_root)
    with pytest.raises(TileHashError):
        client.check_growth(old, "", client.checkpoint())
    with pytest.raises(TileHashError):
        client.entries(4, 6, tree)
    source.replaced["tile/1/000.p/2"] = bytes(64)
    client, tree = _client(source, signer)  # a new client: the first one cached the good tile
    with pytest.raises(TileHashError, match="do not reproduce"):
        client.verify_tree(tree)


def test_entry_bundles_must_be_exact(exported: tuple[TransparencyLog, Path], signer: NoteSigner) -> None:
    source = EditedSource(exported[1])
    bundle = (exported[1] / "tile/entries/000").read_bytes()
    client, tree = _client(source, signer)
    for edited, message in ((bundle[:-3], "truncated"), (bundle + b"\0", "after"), (b"\x00", "truncated")):
        source.replaced["tile/entries/000"] = edited
        with pytest.raises(TileFormatError, match=message):
            client.entries(0, 1, tree)
    # well formed, but entry 0 is not what the tree holds
    swapped = b"\x00\x07entry X" + bundle[len(b"\x00\x07entry 0") :]
    source.replaced["tile/entries/000"] = swapped
    with pytest.raises(TileHashError):
        client.entries(0, 1, tree)
    assert parse_entry_bundle(b"\x00\x00\x00\x01x", 2) == (b"", b"x")


def test_huge_and_missing_resources(exported: tuple[TransparencyLog, Path], signer: NoteSigner, tmp_path: Path) -> None:
    directory = exported[1]
    (directory / "tile/0/002.p/88").write_bytes(b"\0" * (10 * 1024 * 1024))
    client, tree = _client(DirectoryTileSource(directory), signer)
    with pytest.raises(TileFormatError, match="larger than"):
        client.verify_tree(tree)
    (directory / "checkpoint").write_bytes(b"x" * (300 * 1024))
    with pytest.raises(TileFormatError, match="larger than"):
        TileClient(directory, signer.verifier).checkpoint()
    (directory / "tile/0/000").unlink()
    with pytest.raises(TileFetchError, match="no such file"):
        client.inclusion_proof(0, hash_leaf(b"entry 0"), tree)
    with pytest.raises(TileFetchError):
        TileClient(tmp_path / "nowhere", signer.verifier)
    with pytest.raises(TileFetchError, match="outside"):
        DirectoryTileSource(directory).fetch("../secret", 10)


def test_gzip_is_decoded_within_its_limit() -> None:
    assert _decode(gzip.compress(b"abc"), "gzip", 3, "u") == b"abc"
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    with pytest.raises(TileFormatError, match="more than"):
        _decode(bomb, "gzip", 8192, "u")
    with pytest.raises(TileFormatError, match="truncated"):
        _decode(gzip.compress(b"abcdef")[:-10], "gzip", 100, "u")
    with pytest.raises(TileFormatError, match="Content-Encoding"):
        _decode(b"x", "br", 100, "u")


def test_a_checkpoint_from_another_key_is_refused(exported: tuple[TransparencyLog, Path]) -> None:
    with pytest.raises(TlogSignatureError):
        TileClient(exported[1], NoteSigner.generate(exported[0].origin or "").verifier).checkpoint()


# -- receipts and growth ---------------------------------------------------------------------


def test_a_receipt_is_checked_against_the_current_tiles(tmp_path: Path, signer: NoteSigner) -> None:
    out = tmp_path / "tiles"
    log = TransparencyLog(MemoryStore(), signer=signer)
    log.append_many([make_record(i) for i in range(40)])
    receipt = log.receipt(37, sign=True).to_text()
    with pytest.raises(TileFetchError):
        TileClient(tmp_path, signer.verifier).verify_receipt(receipt)  # no checkpoint there
    log.append_many([make_record(i) for i in range(40, 300)])
    log.checkpoint()
    export_tiles(log, out)
    checked = TileClient(out, signer.verifier).verify_receipt(receipt)
    assert checked.checkpoint.checkpoint.size == 300
    assert checked.receipt.index == 37
    assert checked.growth.old.size == 40
    assert checked.inclusion_proof == log.inclusion_proof(37).hashes

    stale = tmp_path / "stale"
    older = TransparencyLog(MemoryStore(), signer=signer)
    older.append_many([make_record(i) for i in range(20)])
    older.checkpoint()
    export_tiles(older, stale)
    with pytest.raises(TlogError, match="behind"):
        TileClient(stale, signer.verifier).verify_receipt(receipt)


def test_growth_checks_tell_forks_from_rollbacks(tmp_path: Path, signer: NoteSigner) -> None:
    log = grown_log(signer, 50)
    export_tiles(log, tmp_path / "tiles")
    client = TileClient(tmp_path / "tiles", signer.verifier)
    current = client.checkpoint()
    bigger = grown_log(signer, 60)
    bigger_note = bigger.latest_checkpoint().note  # type: ignore[union-attr]
    bigger_cp = verify_checkpoint(bigger_note, signer.verifier).checkpoint
    with pytest.raises(LogRollbackError) as rollback:
        client.check_growth(bigger_cp, bigger_note, current)
    assert rollback.value.exit_code == 20
    assert rollback.value.old_note == bigger_note
    same_size_other_root = Checkpoint(signer.name, 50, Hash(bytes(32)))
    with pytest.raises(LogForkError, match="two roots"):
        client.check_growth(same_size_other_root, "old", current)
    other_prefix = Checkpoint(signer.name, 10, Hash(bytes(32)))
    with pytest.raises(LogForkError, match="first 10 entries"):
        client.check_growth(other_prefix, "old", current)
    with pytest.raises(TlogError, match="compared"):
        client.check_growth(Checkpoint("example.com/elsewhere", 10, Hash(bytes(32))), "old", current)


def test_export_writes_files_readable_by_everyone(tmp_path: Path, signer: NoteSigner) -> None:
    out = tmp_path / "tiles"
    export_tiles(grown_log(signer, 3), out)
    assert (os.stat(out / "tile/0/000.p/3").st_mode & 0o777) == 0o644
    assert (os.stat(out / "checkpoint").st_mode & 0o777) == 0o644


# -- an independent implementation: golang.org/x/mod/sumdb/tlog ------------------------------

GO_ORACLE = Path(__file__).with_name("tiles_oracle.go")
#: Where Debian's golang-golang-x-mod-dev puts the module (GOPATH layout); nothing is downloaded.
GO_PATH = Path("/usr/share/gocode")


def _go_oracle_missing() -> str | None:
    if shutil.which("go") is None:
        return "no Go toolchain (apt-get install golang-go)"
    if not (GO_PATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        return "no golang.org/x/mod in /usr/share/gocode (apt-get install golang-golang-x-mod-dev)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_go_oracle_missing() is not None, reason=str(_go_oracle_missing()))
def test_go_sumdb_tlog_reads_the_exported_tiles(tmp_path: Path, signer: NoteSigner) -> None:
    size = 65_536 + 2 * 256 + 3
    log = grown_log(signer, size)
    export_tiles(log, tmp_path / "tiles")
    indices = [0, 1, 255, 256, 65_535, 65_536, size - 1]
    old_sizes = [1, 7, 256, 1000, 65_536, size - 1]
    environment = {
        **os.environ, "GO111MODULE": "off", "GOPATH": str(GO_PATH), "GOFLAGS": "", "GOPROXY": "off",
        "GOCACHE": str(tmp_path / "go-cache"), "CGO_ENABLED": "0",
    }  # fmt: skip
    command = ["go", "run", str(GO_ORACLE), str(tmp_path / "tiles"), signer.vkey,
               ",".join(map(str, old_sizes)), ",".join(map(str, indices))]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    oracle = json.loads(result.stdout)
    assert (oracle["origin"], oracle["size"]) == (signer.name, size)
    assert oracle["root"] == base64.b64encode(log.tree_state().root).decode()
    for record in oracle["records"]:
        expected = log.inclusion_proof(record["index"]).hashes
        assert record["proof"] == [base64.b64encode(h).decode() for h in expected], record["index"]
    for tree in oracle["trees"]:
        expected_proof = log.consistency_proof(tree["old"])
        assert tree["old_root"] == base64.b64encode(expected_proof.old_root).decode()
        assert tree["proof"] == [base64.b64encode(h).decode() for h in expected_proof.hashes], tree["old"]
