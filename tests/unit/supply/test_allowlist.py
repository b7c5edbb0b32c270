"""The allowlist admits what a name resolves to in the library, not how it looks (issue 20, points 2 and 5)."""

from __future__ import annotations

import importlib
import io
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tracemark.supply import analyse_pickle, scan_bytes
from tracemark.supply._allowlist import is_allowed, resolved_globals

ROOT = Path(__file__).resolve().parents[3]
CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is in the test dependency group")
numpy = pytest.importorskip("numpy")


def _global_pickle(module: str, name: str) -> bytes:
    return (
        b"\x80\x04\x8c"
        + bytes([len(module)])
        + module.encode()
        + b"\x8c"
        + bytes([len(name)])
        + name.encode()
        + b"\x93."
    )


def test_classes_an_sklearn_module_imports_from_elsewhere_are_refused() -> None:
    # CamelCase names in sklearn.* that resolve to pathlib, urllib, numbers, abc...: the old pattern admitted them.
    foreign = []
    for module_name in ("sklearn.datasets._base", "sklearn.utils._param_validation", "sklearn.base", "sklearn.utils"):
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and CAMEL_CASE.match(name) and not obj.__module__.startswith("sklearn"):
                foreign.append((module_name, name))
    assert ("sklearn.datasets._base", "Path") in foreign
    assert ("sklearn.datasets._base", "URLError") in foreign
    assert [pair for pair in foreign if is_allowed(*pair)] == []
    issues = analyse_pickle(_global_pickle("sklearn.datasets._base", "Path")).issues
    assert [issue.rule for issue in issues] == ["pickle.global-denied"]


def test_every_allowed_sklearn_name_resolves_to_an_sklearn_class() -> None:
    pairs = sorted(pair for pair in resolved_globals() if pair[0].startswith("sklearn"))
    assert len(pairs) > 500
    wrong, absent = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name, name in pairs[::7]:  # a seventh of them keeps the test fast; the build checks them all
            try:
                obj = importlib.import_module(module_name)
                for part in name.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError):  # listed for another version: nothing here for pickle to load
                absent.append((module_name, name))
                continue
            if not (isinstance(obj, type) and obj.__module__.startswith("sklearn")):
                wrong.append((module_name, name))
    assert wrong == []
    assert len(absent) < len(pairs[::7]) // 10, absent[:10]  # the file is this environment's, mostly


def test_joblib_parallel_subclasses_are_not_admitted() -> None:
    assert not is_allowed("sklearn.utils.parallel", "Parallel")
    assert not is_allowed("sklearn.ensemble._forest", "Parallel")


def test_the_committed_file_holds_this_environments_numpy_and_sklearn_lists() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_pickle_allowlist.py"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_numpy_ufuncs_are_allowed_but_not_numpy_functions_that_reach_files() -> None:
    assert is_allowed("numpy", "log1p")
    assert is_allowed("numpy", "exp")
    for name in ("load", "save", "fromfile", "memmap", "loadtxt", "genfromtxt"):
        assert not is_allowed("numpy", name), name


def _fitted(estimator: object) -> object:
    rng = numpy.random.default_rng(20)
    features = rng.random((64, 3))
    labels = (features[:, 0] > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(features, labels)  # type: ignore[attr-defined]
    return estimator


def _estimators() -> dict[str, object]:
    ensemble = importlib.import_module("sklearn.ensemble")
    linear = importlib.import_module("sklearn.linear_model")
    pipeline = importlib.import_module("sklearn.pipeline")
    preprocessing = importlib.import_module("sklearn.preprocessing")
    return {
        "hist-gradient-boosting": ensemble.HistGradientBoostingClassifier(max_iter=5),
        "hist-gradient-boosting-regressor": ensemble.HistGradientBoostingRegressor(max_iter=5),
        "function-transformer-log1p": preprocessing.FunctionTransformer(numpy.log1p),
        "pipeline-expm1": pipeline.make_pipeline(
            preprocessing.FunctionTransformer(numpy.expm1), preprocessing.StandardScaler(), linear.LogisticRegression()
        ),
        "random-forest": ensemble.RandomForestClassifier(n_estimators=3),
    }


@pytest.mark.parametrize("name", sorted(_estimators()))
@pytest.mark.parametrize("writer", ["pickle", "joblib"])
def test_default_sklearn_estimators_pass(name: str, writer: str) -> None:
    estimator = _fitted(_estimators()[name])
    if writer == "pickle":
        data = pickle.dumps(estimator)
    else:
        joblib = pytest.importorskip("joblib")
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        data = buffer.getvalue()
    report = scan_bytes(data, f"model.{writer}")
    assert report.findings == (), [finding.message for finding in report.findings]


def test_a_function_transformer_over_os_system_is_still_refused() -> None:
    preprocessing = importlib.import_module("sklearn.preprocessing")
    data = pickle.dumps(preprocessing.FunctionTransformer(os.system))
    rules = {(finding.rule_id, finding.severity.value) for finding in scan_bytes(data, "model.pkl").findings}
    assert ("pickle.global-denied", "critical") in rules
