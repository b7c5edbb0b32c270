"""Model weights read one tensor at a time from safetensors files, never unpickled.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw data.  :class:`WeightSource` parses the headers of one
file, a directory of files, or a sharded checkpoint (``model.safetensors.index.json``), checks
every byte range against the file, and reads a tensor only when it is asked for, with ``pread``
into a fresh array: nothing is memory-mapped and no whole state dict is held, so the weight test
needs about one block's matrices at a time, not the checkpoint.  bfloat16 (which numpy lacks) is
widened to float32 bit-exactly; float16/32/64 and integer tensors keep their numpy dtype.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracemark.errors import InvalidInputError, TheftError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: Largest weight file read (bytes).
MAX_WEIGHT_BYTES = 64 * 1024**3
#: Largest safetensors header (bytes); the format's own reference reader caps it at 100 MB.
MAX_HEADER_BYTES = 100 * 1024**2
#: Largest config.json read (bytes).
MAX_CONFIG_BYTES = 1024**2

_DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to float32 on read
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes lie."""

    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


def bfloat16_to_float32(raw: NDArray[np.uint16]) -> NDArray[np.float32]:
    """bfloat16 bit patterns to float32: the same value exactly (bfloat16 is float32's top half)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _read_header(file: Path) -> dict[str, TensorInfo]:
    size = file.stat().st_size
    if size > MAX_WEIGHT_BYTES:
        raise InvalidInputError(f"{file} is larger than {MAX_WEIGHT_BYTES} bytes")
    try:
        with file.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise TheftError(f"cannot read {file} as safetensors: shorter than its header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise TheftError(f"cannot read {file} as safetensors: header length {length} out of range")
            header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TheftError(f"cannot read {file} as safetensors: header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise TheftError(f"cannot read {file} as safetensors: header is not a JSON object")
    base = 8 + length
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise TheftError(f"cannot read {file} as safetensors: malformed entry for {name!r}") from None
        if dtype not in _DTYPES:
            raise TheftError(f"{file}: tensor {name!r} has dtype {dtype}, which the weight test does not read")
        if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)):
            raise TheftError(f"cannot read {file} as safetensors: bad shape or offsets for {name!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype].itemsize
        if end - begin != expected or base + end > size:
            raise TheftError(f"cannot read {file} as safetensors: byte range of {name!r} does not fit its shape")
        tensors[name] = TensorInfo(file, dtype, shape, base + begin, base + end)
    return tensors


def _read_config(directory: Path) -> dict[str, object]:
    path = directory / "config.json"
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InvalidInputError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TheftError(f"{path} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise TheftError(f"{path} is not a JSON object")
    return config


def _files(source: Path) -> list[Path]:
    if source.suffix in PICKLE_SUFFIXES:
        raise TheftError(f"{source} is a pickle-based checkpoint; tracemark never loads pickles (use safetensors)")
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InvalidInputError(f"{source}: no such file or directory")
    index = source / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise TheftError(f"{index} is not a safetensors index (a JSON object with a weight_map)") from None
        files = []
        for name in names:
            shard = source / str(name)
            if Path(str(name)).name != str(name) or not shard.is_file():
                raise TheftError(f"{index} names {name!r}, which is not a file in {source}")
            files.append(shard)
        return files
    files = sorted(source.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in source.iterdir() if p.suffix in PICKLE_SUFFIXES]
        hint = f" (found pickle-based {', '.join(pickles)}: convert to safetensors)" if pickles else ""
        raise TheftError(f"{source} holds no .safetensors weights{hint}")
    return files


class WeightSource(Mapping[str, NDArray[Any]]):
    """A read-only ``name -> array`` mapping over safetensors files (or arrays in memory), read lazily.

    ``config`` is the model's ``config.json`` (empty when there is none): some layouts (grouped-query
    attention, fused QKV projections) need head counts that the tensors' shapes do not give.
    """

    def __init__(
        self,
        tensors: Mapping[str, TensorInfo] | None = None,
        *,
        arrays: Mapping[str, NDArray[Any]] | None = None,
        config: Mapping[str, object] | None = None,
    ) -> None:
        self._tensors = dict(tensors or {})
        self._arrays = dict(arrays or {})
        self.config: dict[str, object] = dict(config or {})

    @classmethod
    def open(cls, path: Path | str) -> WeightSource:
        """Headers of a ``.safetensors`` file, a sharded checkpoint or a directory of files."""
        source = Path(path)
        tensors: dict[str, TensorInfo] = {}
        for file in _files(source):
            for name, info in _read_header(file).items():
                if name in tensors:
                    raise TheftError(f"tensor {name!r} appears in both {tensors[name].file.name} and {file.name}")
                tensors[name] = info
        config = _read_config(source if source.is_dir() else source.parent)
        return cls(tensors, config=config)

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, NDArray[Any]], config: Mapping[str, object] | None = None
    ) -> WeightSource:
        """In-memory arrays with a model config (for tests and callers that already hold the weights)."""
        return cls(arrays=arrays, config=config)

    def __getitem__(self, name: str) -> NDArray[Any]:
        if name in self._arrays:
            return self._arrays[name]
        return self._read(self._tensors[name], None)

    def __contains__(self, name: object) -> bool:
        return name in self._arrays or name in self._tensors  # without reading the tensor (Mapping's would)

    def __iter__(self) -> Iterator[str]:
        yield from self._arrays
        yield from (n for n in self._tensors if n not in self._arrays)

    def __len__(self) -> int:
        return len(self._arrays) + sum(1 for n in self._tensors if n not in self._arrays)

    def shape(self, name: str) -> tuple[int, ...]:
        """A tensor's shape without reading it."""
        if name in self._arrays:
            return tuple(self._arrays[name].shape)
        return self._tensors[name].shape

    def rows(self, name: str, indices: NDArray[np.int64]) -> NDArray[Any]:
        """Rows ``indices`` of a 2-D tensor, reading only those rows from disk."""
        if name in self._arrays or name not in self._tensors:
            return np.asarray(self[name])[indices]
        return self._read(self._tensors[name], indices)

    def nbytes_on_disk(self) -> int:
        """Bytes of tensor data this source would read in full."""
        return sum(t.end - t.start for t in self._tensors.values()) + sum(a.nbytes for a in self._arrays.values())

    @staticmethod
    def _read(info: TensorInfo, indices: NDArray[np.int64] | None) -> NDArray[Any]:
        dtype = _DTYPES[info.dtype]
        with info.file.open("rb") as handle:
            fd = handle.fileno()
            if indices is None:
                out = np.empty(info.shape, dtype=dtype)
                _pread_into(fd, out, info.start)
            else:
                if len(info.shape) != 2:
                    raise TheftError(f"cannot read rows of a {len(info.shape)}-D tensor")
                width = info.shape[1]
                out = np.empty((len(indices), width), dtype=dtype)
                row_bytes = width * dtype.itemsize
                for i, index in enumerate(indices):
                    if not 0 <= int(index) < info.shape[0]:
                        raise TheftError(f"row {int(index)} outside a tensor of {info.shape[0]} rows")
                    _pread_into(fd, out[i], info.start + int(index) * row_bytes)
        if info.dtype == "BF16":
            return bfloat16_to_float32(out)
        return out


def _pread_into(fd: int, out: NDArray[Any], offset: int) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8).data)
    done = 0
    while done < len(view):
        chunk = os.preadv(fd, [view[done:]], offset + done)
        if chunk <= 0:
            raise TheftError("weight file ended before a tensor's bytes (was it truncated while reading?)")
        done += chunk


def load_weights(path: Path | str) -> WeightSource:
    """The weights of a ``.safetensors`` or ``.gguf`` file or a model directory (sharded or not), read lazily.

    Never a pickle.  GGUF needs the ``gguf`` package (:mod:`tracemark.theft._gguf`).
    """
    try:
        if Path(path).suffix.lower() == ".gguf" and Path(path).is_file():
            from tracemark.theft._gguf import GGUFSource

            return GGUFSource(path)
        return WeightSource.open(path)
    except OSError as exc:
        raise TheftError(f"cannot read {path}: {exc}") from None
