"""The value resolver: a setting is found however it is written, and hostile code cannot make it loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracemark.electron import audit
from tracemark.electron._js import Const, Func, Module, ModuleRef, Obj, Project


def _value(source: str, name: str = "target", extra: dict[str, str] | None = None, kind: str = "js") -> object:
    modules = [Module("main." + kind, source.encode(), kind)]
    modules += [
        Module(path, text.encode(), "ts" if path.endswith(".ts") else "js") for path, text in (extra or {}).items()
    ]
    project = Project(modules)
    main = modules[0]
    binding = main.declarations[name][-1][0]
    return project.lookup(main, binding, 0)


def _flatten(value: object) -> object:
    if isinstance(value, Const):
        return value.value
    if isinstance(value, Obj):
        return {key: _flatten(prop.value) for key, prop in value.props.items()}
    if isinstance(value, ModuleRef):
        return f"<{value.name}>"
    if isinstance(value, Func):
        return "<function>"
    return "<unknown>"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("const target = {a: true, 'b': 1, [`c`]: 'x'};", {"a": True, "b": 1.0, "c": "x"}),
        ("const k = 'node' + 'Integration'; const target = {[k]: !0};", {"nodeIntegration": True}),
        ("const base = {a: 1, b: 2}; const target = {...base, b: 3};", {"a": 1.0, "b": 3.0}),
        ("const target = Object.assign({}, {a: 1}, {a: 2, b: !1});", {"a": 2.0, "b": False}),
        ("const target = {}; target.a = true; target['b'] = 'x';", {"a": True, "b": "x"}),
        ("const target = {w: {}}; target.w.deep = 1;", {"w": {"deep": 1.0}}),
        ("const target = {a: 1}; target.b = target.a; target.c = target.b;", {"a": 1.0, "b": 1.0, "c": 1.0}),
        ("function f() { return {a: 1}; } const target = f();", {"a": 1.0}),
        ("const {shell} = require('electron'); const target = {s: shell};", {"s": "<electron.shell>"}),
        ("const target = {x: void 0, y: null, z: undefined};", {"x": None, "y": None, "z": None}),
        (
            "const on = true; const target = {a: on ? 'yes' : 'no', b: on && 1, c: null ?? 2};",
            {"a": "yes", "b": 1.0, "c": 2.0},
        ),
        ("const target = Object.freeze({a: Boolean(1), b: 'a' === 'a'});", {"a": True, "b": True}),
    ],
)
def test_values_resolve(source: str, expected: object) -> None:
    assert _flatten(_value(source)) == expected


def test_typescript_and_es_modules_across_files() -> None:
    source = "import { prefs as p } from './config';\nimport def from './def';\nconst target = {...p, ...def};\n"
    extra = {
        "config.ts": "export const prefs = { a: true } as const satisfies object;\n",
        "def.js": "export default { b: 'x' };\n",
    }
    assert _flatten(_value(source, extra=extra, kind="ts")) == {"a": True, "b": "x"}


def test_commonjs_exports_across_files() -> None:
    source = "const cfg = require('./cfg');\nconst { web } = require('./cfg');\nconst target = {...cfg.win, w: web};\n"
    extra = {"cfg.js": "exports.win = { a: 1 };\nmodule.exports.web = false;\n"}
    assert _flatten(_value(source, extra=extra)) == {"a": 1.0, "w": False}


def test_inner_scope_shadows_outer() -> None:
    source = "const x = true;\nfunction f() {\n  const x = false;\n  const target = {x};\n}\n"
    assert _flatten(_value(source)) == {"x": False}


def test_cycles_and_deep_chains_terminate() -> None:
    cyclic = "const a = {...b};\nconst b = {...a};\nconst target = {...a};\n"
    assert isinstance(_value(cyclic), Obj)
    chain = "const v0 = 1;\n" + "".join(f"const v{i} = v{i - 1};\n" for i in range(1, 400)) + "const target = v399;\n"
    assert _flatten(_value(chain)) == "<unknown>"
    imports = {"a.js": "module.exports = require('./b');\n", "b.js": "module.exports = require('./a');\n"}
    assert _flatten(_value("const target = require('./a');\n", extra=imports)) in ("<unknown>", {})


def test_deeply_nested_source_is_audited(tmp_path: Path) -> None:
    hostile = (
        "const x = " + "[" * 5000 + "]" * 5000 + ";\n" + "(" * 3000 + "1" + ")" * 3000 + ";\n"
        "const " + "[" * 3000 + "a" + "]" * 3000 + " = 1;\n"
        "const {" + "b:{" * 2000 + "c" + "}" * 2000 + "} = 2;\n"
        "const o = " + "{a:" * 3000 + "1" + "}" * 3000 + ";\nnew BrowserWindow(o);\n"
        "var y = " + "a+" * 20000 + "1;\n" + "y" + ".z" * 20000 + " = 1;\n"
        "ipcMain.on('x', (e, " + "[" * 2000 + "v" + "]" * 2000 + ") => eval(v));\n"
    )
    (tmp_path / "main.js").write_text(hostile)
    report = audit(tmp_path)
    assert report.files_scanned == 1
    assert [f.location.line for f in report.findings if f.rule_id == "ipc-sink" and f.location] == [9]


def test_chained_self_assignments_resolve_in_linear_time() -> None:
    # each o.kN = o.kN-1 used to re-apply every earlier assignment: n ** depth lookups (87 s at 7)
    chain = "".join(f"target.k{i} = target.k{i - 1};" for i in range(1, 40))
    value = _flatten(_value("const target = {k0: {nodeIntegration: true}};" + chain))
    assert isinstance(value, dict)
    assert value["k39"] == {"nodeIntegration": True}
