"""Issue 20 points 9 and 10: the code shapes real apps use, each in several variants written for this issue.

Every case is a small app written to a temporary folder, labelled like the corpus (``// expect: rule``
on the line a finding belongs to, ``EXPECT`` lines ``rule path`` for files without comments such
as JSON): the audit must report exactly the labels.  Each class has variants that must be found and
variants that must stay silent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.electron import pack_asar
from tests.unit.electron._corpus import UNLABELLED_RULES, Label, read_labels, score
from tracemark.electron import audit

_CSP = '<meta http-equiv="Content-Security-Policy" content="default-src \'self\'">'
#: App-wide limits every case sets, so a case's findings are its own.
_GUARDS = """const { app, session } = require('electron');
app.on('web-contents-created', (_event, contents) => {
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
});
app.whenReady().then(() => {
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
});
"""

CASES: dict[str, dict[str, str]] = {
    # -- require('./x.json') settings ---------------------------------------------------------
    "json-nested-path": {
        "src/main.js": "const { BrowserWindow } = require('electron');\n"
        "const prefs = require('../config/window.json');\n"
        "new BrowserWindow({ webPreferences: prefs.renderer });\n",
        "config/window.json": '{"renderer": {"sandbox": true, "webSecurity": false}}',
        "EXPECT": "web-security config/window.json\n",
    },
    "json-es-import": {
        "src/main.ts": "import { BrowserWindow } from 'electron';\nimport settings from './settings.json';\n"
        "new BrowserWindow({ webPreferences: { ...settings } });\n",
        "src/settings.json": '{\n  "contextIsolation": false\n}\n',
        "EXPECT": "context-isolation src/settings.json\n",
    },
    "json-escaped-key": {
        "main.js": "const { BrowserWindow } = require('electron');\nnew BrowserWindow(require('./window.json'));\n",
        "window.json": '{"webPreferences": {"node\\u0049ntegration": true}}',
        "EXPECT": "node-integration window.json\n",
    },
    "json-safe": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "new BrowserWindow({ webPreferences: require('./window.json') });\n",
        "window.json": '{"nodeIntegration": false, "contextIsolation": true, "sandbox": true}',
    },
    # -- window factories taking the preferences as a parameter -------------------------------
    "factory-destructured-parameter": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "function open({ file, prefs }) {\n"
        "  return new BrowserWindow({ webPreferences: prefs }).loadFile(file);\n"
        "}\n"
        "open({ file: 'a.html', prefs: { sandbox: true } });\n"
        "open({ file: 'b.html', prefs: { allowRunningInsecureContent: true } }); // expect: insecure-content\n",
    },
    "factory-in-another-module": {
        "windows.js": "const { BrowserWindow } = require('electron');\n"
        "exports.create = (preferences) => new BrowserWindow({ webPreferences: preferences });\n",
        "main.js": "const windows = require('./windows');\n"
        "windows.create({ contextIsolation: true });\n"
        "windows.create({ webSecurity: false }); // expect: web-security\n",
    },
    "factory-called-by-a-factory": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "function build(preferences) { return new BrowserWindow({ webPreferences: preferences }); }\n"
        "function openTool(name, extra) { return build({ sandbox: true, ...extra }); }\n"
        "openTool('console', { contextIsolation: false }); // expect: context-isolation\n"
        "openTool('viewer', {});\n",
    },
    "factory-safe-callers": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "const make = function (p) { return new BrowserWindow({ webPreferences: { sandbox: true, ...p } }); };\n"
        "make({ spellcheck: false });\nmake({});\n",
    },
    # -- class fields, static members, this.x ---------------------------------------------------
    "class-expression-static": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "const Shell = class {\n"
        "  static prefs = { nodeIntegrationInWorker: true }; // expect: node-integration\n"
        "  open() { return new BrowserWindow({ webPreferences: Shell.prefs }); }\n"
        "};\nnew Shell().open();\n",
    },
    "typescript-private-field": {
        "main.ts": "import { BrowserWindow, WebPreferences } from 'electron';\n"
        "class Main {\n"
        "  private prefs: WebPreferences = { webSecurity: false }; // expect: web-security\n"
        "  public show(): void { new BrowserWindow({ webPreferences: this.prefs }); }\n"
        "}\nnew Main().show();\n",
    },
    "class-field-safe": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "class Main {\n  prefs = { sandbox: true, contextIsolation: true };\n"
        "  show() { return new BrowserWindow({ webPreferences: this.prefs }); }\n}\nnew Main().show();\n",
    },
    # -- handlers passed as this.method.bind(this) ----------------------------------------------
    "bound-object-method": {
        "main.js": "const { ipcMain } = require('electron');\nconst { spawn } = require('child_process');\n"
        "const handlers = {\n  run(event, command) {\n    if (event.senderFrame.url !== 'app://main/') return;\n"
        "    spawn(command); // expect: ipc-sink\n  },\n};\n"
        "ipcMain.on('run', handlers.run.bind(handlers));\n",
    },
    "bound-method-without-sender-check": {
        "main.js": "const { ipcMain, shell } = require('electron');\n"
        "class Links {\n  constructor() {\n"
        "    ipcMain.handle('open', this.open.bind(this)); // expect: ipc-sender\n  }\n"
        "  open(_event, url) {\n    return shell.openExternal(url); // expect: ipc-sink open-external\n  }\n}\n"
        "new Links();\n",
    },
    "arrow-forwarding-rest-arguments": {
        "main.js": "const { ipcMain } = require('electron');\nconst fs = require('fs');\n"
        "class Files {\n  register() {\n"
        "    ipcMain.handle('write', (event, ...rest) => this.write(event, ...rest));\n  }\n"
        "  write(event, data, name) {\n    if (event.senderFrame.url !== 'app://main/') return;\n"
        "    fs.writeFileSync(name, data); // expect: ipc-sink\n  }\n}\nnew Files().register();\n",
    },
    "bound-method-validated": {
        "main.js": "const { ipcMain, shell } = require('electron');\nconst ALLOWED = new Set(['https://example.com/']);\n"
        "class Links {\n  register() { ipcMain.handle('open', this.open.bind(this)); }\n"
        "  open(event, url) {\n    if (event.senderFrame.url !== 'app://main/') return null;\n"
        "    if (!ALLOWED.has(url)) return null;\n    return shell.openExternal(url);\n  }\n}\n"
        "new Links().register();\n",
    },
    # -- rest-parameter bridges -------------------------------------------------------------------
    "bridge-function-expression-rest": {
        "preload.js": "const { contextBridge, ipcRenderer } = require('electron');\n"
        "contextBridge.exposeInMainWorld('ipc', {\n"
        "  call: function (...args) { return ipcRenderer.invoke(...args); }, // expect: context-bridge\n"
        "  fixed: (...args) => ipcRenderer.invoke('settings:get', ...args),\n});\n",
    },
    "bridge-rest-send-sync": {
        "preload.js": "const { contextBridge, ipcRenderer } = require('electron');\n"
        "const api = { sendSync: (...message) => ipcRenderer.sendSync(...message) }; // expect: context-bridge\n"
        "contextBridge.exposeInMainWorld('api', api);\n",
    },
    # -- setWindowOpenHandler ---------------------------------------------------------------------
    "window-open-function-allows": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "const win = new BrowserWindow({ webPreferences: { sandbox: true } });\n"
        "win.webContents.setWindowOpenHandler(function () { // expect: window-open-unchecked\n"
        "  return { action: 'allow' };\n});\n",
    },
    "window-open-checked": {
        "main.js": "const { BrowserWindow } = require('electron');\nconst HOSTS = new Set(['docs.example.com']);\n"
        "const win = new BrowserWindow({ webPreferences: { sandbox: true } });\n"
        "win.webContents.setWindowOpenHandler(({ url }) =>\n"
        "  HOSTS.has(new URL(url).host) ? { action: 'allow' } : { action: 'deny' });\n"
        "win.webContents.setWindowOpenHandler((details) => {\n"
        "  if (details.url.startsWith('https://docs.example.com/')) return { action: 'allow' };\n"
        "  return { action: 'deny' };\n});\n",
    },
    # -- protocol handlers ------------------------------------------------------------------------
    "protocol-intercept-file": {
        "main.js": "const { protocol } = require('electron');\n"
        "protocol.interceptFileProtocol('file', (req, cb) => { // expect: protocol-handler\n"
        "  cb(decodeURI(req.url.substr(7))); // expect: protocol-path-traversal\n});\n",
    },
    "protocol-stream": {
        "main.js": "const { protocol } = require('electron');\nconst fs = require('fs');\n"
        "const path = require('path');\n"
        "protocol.registerStreamProtocol('media', (request, callback) => { // expect: protocol-handler\n"
        "  const { pathname } = new URL(request.url);\n"
        "  callback(fs.createReadStream(path.join(__dirname, 'media', pathname))); // expect: protocol-path-traversal\n"
        "});\n",
    },
    "protocol-handle-string-url": {
        "main.js": "const { net, protocol } = require('electron');\nconst path = require('path');\n"
        "protocol.handle('res', (req) => { // expect: protocol-handler\n"
        "  const url = new URL(req.url);\n"
        "  return net.fetch('file://' + path.join(__dirname, url.pathname)); // expect: protocol-path-traversal\n"
        "});\n",
    },
    "protocol-checked": {
        "main.js": "const { net, protocol } = require('electron');\nconst path = require('path');\n"
        "const { pathToFileURL } = require('url');\nconst ROOT = path.resolve(__dirname, 'dist');\n"
        "protocol.handle('app', (req) => { // expect: protocol-handler\n"
        "  const file = path.resolve(ROOT, '.' + new URL(req.url).pathname);\n"
        "  if (path.relative(ROOT, file).startsWith('..')) throw new Error('outside');\n"
        "  return net.fetch(pathToFileURL(file).href);\n});\n",
    },
    # -- webPreferences that cannot be resolved ----------------------------------------------------
    "unresolved-parameter-without-callers": {
        "main.js": "const { BrowserWindow } = require('electron');\n"
        "module.exports = function popup(options) {\n"
        "  return new BrowserWindow(options); // expect: window-settings-unresolved\n};\n",
    },
    "unresolved-merge": {
        "main.js": "const { BrowserWindow } = require('electron');\nconst store = require('electron-store');\n"
        "const win = new BrowserWindow({ // expect: window-settings-unresolved\n"
        "  webPreferences: Object.assign({ sandbox: true }, store.get('prefs')),\n});\n",
    },
    # -- an early exit for trusted values is no guard -------------------------------------------
    "open-external-after-trusted-exit": {
        "main.js": "const { app, shell } = require('electron');\n"
        "const trusted = (url) => new URL(url).hostname.endsWith('.example.com');\n"
        "app.on('web-contents-created', (_e, contents) => {\n"
        "  contents.on('will-navigate', (event, url) => {\n"
        "    if (trusted(url)) return;\n    event.preventDefault();\n"
        "    shell.openExternal(url); // expect: open-external\n  });\n"
        "  contents.on('will-redirect', (event, url) => {\n"
        "    if (!trusted(url)) return;\n    shell.openExternal(url);\n  });\n});\n",
    },
    # -- code read from the app's own files is not code built at run time ------------------------
    "inject-file-contents": {
        "main.js": "const { BrowserWindow } = require('electron');\nconst fs = require('fs');\n"
        "const path = require('path');\n"
        "const win = new BrowserWindow({ webPreferences: { sandbox: true } });\n"
        "const style = fs.readFileSync(path.join(__dirname, 'dark.css'), 'utf8');\n"
        "win.webContents.insertCSS(style);\n"
        "win.webContents.executeJavaScript(fs.readFileSync(path.join(__dirname, 'inject.js'), 'utf8'));\n"
        "win.webContents.on('did-finish-load', (_e, title) => {\n"
        "  win.webContents.executeJavaScript(`document.title = ${title}`); // expect: dangerous-function\n"
        "});\n",
    },
    # -- TypeScript shipped with the JavaScript compiled from it -----------------------------------
    "typescript-sibling-js": {
        "main.ts": "import { BrowserWindow } from 'electron';\n"
        "new BrowserWindow({ webPreferences: { webSecurity: false } }); // expect: web-security\n",
        "main.js": '"use strict";\nconst electron_1 = require("electron");\n'
        "new electron_1.BrowserWindow({ webPreferences: { webSecurity: false } });\n",
    },
    "typescript-outdir-inferred-root": {
        "tsconfig.json": '{ "compilerOptions": { "outDir": "./out/", "strict": true } }',
        "source/main.ts": "import { BrowserWindow } from 'electron';\n"
        "new BrowserWindow({ webPreferences: { contextIsolation: false } }); // expect: context-isolation\n",
        "source/util/prefs.ts": "export const prefs = { sandbox: false }; // expect: sandbox\n"
        "import { BrowserWindow } from 'electron';\nnew BrowserWindow({ webPreferences: prefs });\n",
        "out/main.js": 'const e = require("electron");\n'
        "new e.BrowserWindow({ webPreferences: { contextIsolation: false } });\n",
        "out/util/prefs.js": "exports.prefs = { sandbox: false };\n"
        'const e = require("electron");\nnew e.BrowserWindow({ webPreferences: exports.prefs });\n',
        "out/extra.js": 'const e = require("electron");\n'
        "new e.BrowserWindow({ webPreferences: { webSecurity: false } }); // expect: web-security\n",
    },
}


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    (root / "guards.js").write_text(_GUARDS)
    (root / "index.html").write_text(f"<!doctype html><html><head>{_CSP}</head><body></body></html>\n")
    (root / "package.json").write_text('{"name": "case", "main": "main.js", "devDependencies": {"electron": "33.2.0"}}')


def _reported(target: Path) -> list[Label]:
    return [
        Label(f.rule_id, f.location.path if f.location else "", f.location.line if f.location else 0)
        for f in audit(target).findings
        if f.rule_id not in UNLABELLED_RULES
    ]


@pytest.mark.parametrize("name", sorted(CASES))
def test_shape(name: str, tmp_path: Path) -> None:
    _write(tmp_path, CASES[name])
    result = score(read_labels(tmp_path), _reported(tmp_path))
    assert (result.false_positives, result.false_negatives) == ([], [])


def test_compiled_javascript_inside_an_archive_is_reported_once(tmp_path: Path) -> None:
    files = {
        "tsconfig.json": b'{"compilerOptions": {"outDir": "dist", "rootDir": "src"}}',
        "src/main.ts": b"import { BrowserWindow } from 'electron';\n"
        b"new BrowserWindow({ webPreferences: { nodeIntegration: true } });\n",
        "dist/main.js": b'const e = require("electron");\n'
        b"new e.BrowserWindow({ webPreferences: { nodeIntegration: true } });\n",
    }
    archive = tmp_path / "app.asar"
    archive.write_bytes(pack_asar(files))
    findings = [
        (f.rule_id, f.location.path) for f in audit(archive).findings if f.rule_id == "node-integration" and f.location
    ]
    assert findings == [("node-integration", "app.asar/src/main.ts")]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.8.8", "always on"),
        ("2.0.18", "always on"),
        ("4.2.12", "always on"),
        ("7.3.3", "defaults to true"),
        ("12.0.0", None),
    ],
)
def test_remote_module_by_electron_version(version: str, expected: str | None, tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(f'{{"devDependencies": {{"electron": "{version}"}}}}')
    (tmp_path / "main.js").write_text(
        "const { BrowserWindow } = require('electron');\n"
        "new BrowserWindow({ webPreferences: { nodeIntegration: false, contextIsolation: true, sandbox: true } });\n"
    )
    messages = [f.message for f in audit(tmp_path).findings if f.rule_id == "remote-module"]
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1
        assert expected in messages[0]
