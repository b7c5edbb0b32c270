"""Which globals a pickle may reference: a default-deny allowlist, as torch's ``weights_only`` loader does.

Everything not listed is refused.  The hand-written list holds what legitimate checkpoints need:
PyTorch state dicts (tensor rebuild functions, storages, dtypes), numpy arrays and scalars and
the joblib array wrapper.  scikit-learn estimators and numpy ufuncs come from
``pickle_allowlist.json``, built by ``scripts/build_pickle_allowlist.py`` from what each name
*resolves to* in the installed library (a class whose ``__module__`` is scikit-learn's, a numpy
ufunc), per library version, never from how a name looks: a pattern such as CamelCase in
``sklearn.*`` would admit every class those modules import from elsewhere (file objects, threads,
``types.FunctionType``).  A second list names globals that are known to execute code, only to
rank findings: a global that is merely unknown is still refused.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re

_TORCH_DTYPES = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "half",
    "float",
    "double",
    "long",
    "int",
    "short",
    "cfloat",
    "cdouble",
]
_TORCH_STORAGES = [
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "UntypedStorage",
]

_NUMPY_SCALAR_TYPES = [
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "void",
    "datetime64",
    "timedelta64",
]

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        ("collections", "OrderedDict"),
        ("collections", "Counter"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "bytes"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("builtins", "range"),
        # Protocol 2 pickles bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._utils", "_rebuild_sparse_tensor"),
        ("torch._utils", "_rebuild_meta_tensor_no_storage"),
        ("torch._utils", "_rebuild_nested_tensor"),
        ("torch._utils", "_rebuild_qtensor"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.nn.parameter", "Parameter"),
        ("torch", "Tensor"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch", "dtype"),
        ("torch", "per_tensor_affine"),
        ("torch", "per_channel_affine"),
        ("torch", "per_tensor_symmetric"),
        ("torch", "per_channel_symmetric"),
        ("torch", "per_channel_affine_float_qparams"),
        ("torch", "strided"),
        ("torch", "sparse_coo"),
        ("torch", "sparse_csr"),
        ("torch.serialization", "_get_layout"),
        ("torch.storage", "UntypedStorage"),
        ("torch.storage", "TypedStorage"),
        *(("torch", name) for name in _TORCH_DTYPES),
        *(("torch", name) for name in _TORCH_STORAGES),
        *(
            (module, name)
            for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma.core", "MaskedArray"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("numpy.random.bit_generator", "SeedSequence"),
        # Cython's generated unpickler: checks a layout checksum, then __new__ + __setstate__ on SeedSequence.
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        # scikit-learn's trees rebuild themselves with newObj(cls) == cls.__new__(cls); cls is itself checked.
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("sklearn.neighbors._ball_tree", "newObj"),
        ("sklearn.neighbors._binary_tree", "newObj"),
        ("sklearn.metrics._dist_metrics", "newObj"),
        *(("numpy", name) for name in _NUMPY_SCALAR_TYPES),
        ("sklearn.utils._bunch", "Bunch"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("scipy.sparse._csc", "csc_matrix"),
        ("scipy.sparse._coo", "coo_matrix"),
    ]
)

_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


@functools.cache
def resolved_globals() -> frozenset[tuple[str, str]]:
    """The ``(module, name)`` pairs of ``pickle_allowlist.json``, over every library version it lists."""
    text = importlib.resources.files("tracemark.supply").joinpath("pickle_allowlist.json").read_text("utf-8")
    document = json.loads(text)
    return frozenset(
        (str(module), str(name))
        for versions in document["libraries"].values()
        for entry in versions.values()
        for module, name in entry["globals"]
    )


#: TorchScript archives (torch.jit.save) name their own classes under ``__torch__`` and rebuild lists
#: with these helpers; TorchScript's unpickler resolves them inside the archive's compilation unit,
#: and Python cannot import ``__torch__`` at all, so neither runs Python code.
_TORCHSCRIPT_HELPERS = frozenset(
    ("torch.jit._pickle", name)
    for name in (
        "build_intlist",
        "build_tensorlist",
        "build_doublelist",
        "build_boollist",
        "build_complexlist",
        "build_tensor_from_id",
        "restore_type_tag",
    )
)


def is_allowed(module: str, name: str) -> bool:
    """Whether ``module.name`` may be referenced by a pickle that is loaded."""
    if (module, name) in ALLOWED_GLOBALS or (module, name) in _TORCHSCRIPT_HELPERS:
        return True
    if module == "__torch__" or module.startswith("__torch__."):
        return _CLASS_NAME.match(name) is not None
    return (module, name) in resolved_globals()


_DANGEROUS_MODULES = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "runpy",
        "importlib",
        "pkgutil",
        "marshal",
        "types",
        "ctypes",
        "code",
        "codeop",
        "pty",
        "socket",
        "shutil",
        "pickle",
        "_pickle",
        "dill",
        "cloudpickle",
        "shelve",
        "webbrowser",
        "pdb",
        "bdb",
        "timeit",
        "cProfile",
        "profile",
        "trace",
        "idlelib",
        "asyncio",
        "multiprocessing",
        "threading",
        "_thread",
        "signal",
        "platform",
        "commands",
        "popen2",
        "pip",
        "setuptools",
        "distutils",
        "mailcap",
        "_xxsubinterpreters",
        "_interpreters",
        "concurrent",
        "operator",
        "_operator",
        "functools",
        "inspect",
        "torch.hub",
        "torch.jit",
        "tempfile",
        "glob",
        "io",
        "zipimport",
        "linecache",
        "tkinter",
        "sqlite3",
        "requests",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "xmlrpc",
        "builtins",
        "__builtin__",
        "numpy.testing",
        "numpy.f2py",
        "numpy.distutils",
    ]
)
_DANGEROUS_NAMES = frozenset(
    [
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "input",
        "breakpoint",
        "execfile",
        "apply",
        "system",
        "popen",
        "spawn",
        "call",
        "run",
        "load",
        "loads",
        "runstring",
        "run_string",
    ]
)


def is_known_dangerous(module: str, name: str) -> bool:
    """Whether ``module.name`` is a known code-execution or file/network primitive (for ranking only)."""
    top = module.split(".")[0]
    if module in _DANGEROUS_MODULES or top in _DANGEROUS_MODULES:
        return True
    return name.split(".")[-1] in _DANGEROUS_NAMES
