"use strict";
// The tracemark web page: calls the JSON API of the same service; no third-party code.
// Every value from the API or the user reaches the page as a text node or an attribute
// value (h() below), never as markup, so nothing here needs escaping by hand.

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 20;
const MIN_WINDOW = 32; // the detector's smallest window: texts of 2 * MIN_WINDOW scored tokens or more are also scanned

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Absent parts (a verdict without a manifest) are left out, never shown as the word "null".
function show(container, ...nodes) {
  container.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined && node !== false));
  container.hidden = false;
}

// A result describes the input it was computed from: it goes when that input changes.
function clear(container) {
  container.replaceChildren();
  container.hidden = true;
}

// One request per button at a time: the button is disabled until the answer (or the error) is shown,
// so a double click cannot send a request twice (and, for generation, write two log entries).
async function whileBusy(button, task) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await task();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function errorBadge(error) {
  return h("span", { class: "badge error" }, error.message);
}

function facts(rows) {
  return h("table", { class: "facts" },
    rows.filter((row) => row).map(([name, value, id]) =>
      h("tr", {}, h("td", {}, name), h("td", { id }, value === null || value === undefined || value === "" ? "—" : value))));
}

function mono(text, full) {
  return h("code", { title: full || text }, text);
}

function shortHash(hex) {
  return mono(hex.length > 20 ? `${hex.slice(0, 16)}…` : hex, hex);
}

// What a refusal means, by HTTP status; the service's own message follows it.  The error's class
// name (the body's "type") is for programs and is never shown.
const STATUS_TEXT = {
  400: "The input was refused",
  401: "The API token was not accepted",
  403: "Not allowed",
  404: "Not found",
  413: "Too large for the service",
  422: "The request was refused",
  429: "Too many requests: wait a moment and try again",
  503: "The service is not ready",
};

function requestError(response, data) {
  const lead = STATUS_TEXT[response.status] || (response.status >= 500 ? "The service failed" : "The request was refused");
  const message = data && data.error && typeof data.error.message === "string" ? data.error.message.trim() : "";
  return new Error(message ? `${lead}: ${message}` : `${lead} (HTTP ${response.status})`);
}

async function request(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Error("Could not reach the service: check the connection and try again");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok || data === null) throw requestError(response, data);
  return data;
}

function callApi(path, body, token) {
  const headers = { Accept: "application/json" };
  if (body) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  return request(path, { method: body ? "POST" : "GET", headers, body: body ? JSON.stringify(body) : undefined });
}

// -- tabs -------------------------------------------------------------------------------------
function selectTab(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === name));
  if (name === "log") loadLog();
}
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));

// -- verdicts ---------------------------------------------------------------------------------
function formatP(p, log10) {
  if (p === 0 || p === null) return log10 === null ? "< 1e-308" : `10^${log10.toFixed(1)}`;
  return p < 1e-3 ? p.toExponential(2) : p.toPrecision(3);
}

function markedText(text, marks) {
  const nodes = [];
  let last = 0;
  for (const [start, end, status] of marks) {
    if (start < last) continue;
    if (start > last) nodes.push(text.slice(last, start));
    nodes.push(h("span", { class: status, title: status }, text.slice(start, end)));
    last = end;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return h("div", { class: "tokens", id: "verdict-tokens-view" }, nodes);
}

// The fewest scored tokens whose p-value could reach the decision level, worked out from the verdict:
// if every one of n scored tokens is a hit, the p-value is null_hit_probability ** (n * trials per token),
// doubled once the text is long enough to be scanned in windows.  Below that, "no watermark" would
// claim more than the test can tell.  (The verdict JSON does not carry this number itself.)
function tokensNeeded(v) {
  const gamma = v.null_hit_probability;
  if (!(gamma > 0 && gamma < 1 && v.alpha > 0 && v.alpha < 1)) return 0;
  const perToken = v.tokens_scored > 0 ? v.trials / v.tokens_scored : Number((v.params || {}).depth) || 1;
  const logPerToken = perToken * Math.log(gamma);
  const needed = Math.ceil(Math.log(v.alpha) / logPerToken - 1e-9);
  return needed < 2 * MIN_WINDOW ? needed : Math.ceil(Math.log(v.alpha / 2) / logPerToken - 1e-9);
}

function verdictBadge(v) {
  const needed = tokensNeeded(v);
  if (!v.marked && v.tokens_scored < needed) {
    const scored = `${v.tokens_scored} token${v.tokens_scored === 1 ? "" : "s"} scored`;
    return h("span", { class: "badge unmarked", id: "verdict-badge", "data-verdict": "too-short" },
      `Too short: ${scored}, at least ${needed} needed`);
  }
  return h("span", { class: `badge ${v.marked ? "marked" : "unmarked"}`, id: "verdict-badge", "data-verdict": v.marked ? "marked" : "unmarked" },
    v.marked ? "Watermark found" : "No watermark found");
}

function renderVerdict(v, text) {  // token_marks count characters of the text as sent
  const spans = v.spans.map((s) => h("div", {}, `tokens ${s.start_token}–${s.end_token} (corrected p ${formatP(s.p_value_corrected, null)})`));
  return [
    verdictBadge(v),
    facts([
      ["p-value", `${formatP(v.p_value, v.log10_p_value)} (decision level ${v.alpha})`, "verdict-p"],
      ["test", v.p_value_method],
      ["tokens scored", `${v.tokens_scored} of ${v.tokens_total} (${v.tokens_repeated} repeats scored once)`, "verdict-tokens"],
      ["hits", `${v.hits} / ${v.trials} (${(100 * v.score).toFixed(1)} %; ${(100 * v.null_hit_probability).toFixed(1)} % expected without the key)`],
      ["marked spans", spans.length ? spans : "—"],
      ["scheme / key", [`${v.scheme}/${v.scheme_version} · `, mono(v.key_id)]],
    ]),
    h("div", { class: "legend" }, ["hit", "miss", "repeat", "context"].map((s) => h("span", { class: s }, s))),
    markedText(text, v.token_marks || []),
  ];
}

function checkText() {
  return whileBusy($("verify-button"), async () => {
    const out = $("verdict");
    if (!$("verify-text").value.trim()) {
      show(out, errorBadge(new Error("Paste some text to check first")));
      return;
    }
    show(out, "Checking…");
    const body = { text: $("verify-text").value, explain: true };
    if ($("verify-prompt").value) body.prompt = $("verify-prompt").value;
    if ($("verify-key").value) body.key_id = $("verify-key").value;
    try {
      show(out, ...renderVerdict(await callApi("/v1/text/detect", body), body.text));
    } catch (error) {
      show(out, errorBadge(error));
    }
  });
}
$("verify-button").addEventListener("click", checkText);
for (const id of ["verify-text", "verify-prompt", "verify-key"]) $(id).addEventListener("input", () => clear($("verdict")));

// -- receipts ---------------------------------------------------------------------------------
function renderReceiptCheck(result) {
  const record = result.record || {};
  return [
    h("span", { class: "badge marked receipt-valid" }, result.content_matches ? "Receipt valid · content matches" : "Receipt valid"),
    facts([
      ["entry", `${result.index} of ${result.origin}`],
      ["signed tree", [`size ${result.tree_size}, root `, mono(result.root_hash)]],
      ["leaf hash", shortHash(result.leaf_hash)],
      record.kind && ["record", `${record.kind} from ${record.model_id}, claimed time ${record.time}`],
      record.key_id && ["marking key", mono(record.key_id)],
      record.content_sha256 && ["content SHA-256", shortHash(record.content_sha256)],
      result.witnesses.length ? ["cosigned by", result.witnesses.join(", ")] : null,
    ]),
  ];
}

function verifyReceipt(receipt, content, out, button) {
  return whileBusy(button, async () => {
    if (!receipt.trim()) {
      show(out, errorBadge(new Error("Paste a receipt to check first")));
      return;
    }
    show(out, "Checking…");
    const body = { receipt };
    if (content) body.content = content;
    try {
      show(out, ...renderReceiptCheck(await callApi("/v1/log/verify-receipt", body)));
    } catch (error) {
      show(out, h("span", { class: "badge error receipt-invalid" }, `Receipt not valid — ${error.message}`));
    }
  });
}

$("receipt-button").addEventListener("click", () =>
  verifyReceipt($("receipt-text").value, $("receipt-content").value, $("receipt-check-result"), $("receipt-button")));
for (const id of ["receipt-text", "receipt-content"]) $(id).addEventListener("input", () => clear($("receipt-check-result")));

function receiptBlock(receipt, content, idPrefix) {
  const result = h("div", { id: `${idPrefix}-check`, class: "receipt-check", hidden: true });
  return h("div", { class: "receipt-block" },
    h("div", { class: "row" },
      h("strong", {}, "Log receipt"),
      h("span", { class: "muted" }, " (c2sp.org/tlog-proof@v1)"),
      h("button", { class: "secondary", id: `${idPrefix}-verify`, onclick: (event) => verifyReceipt(receipt, content, result, event.currentTarget) }, "Verify receipt"),
      h("button", { class: "secondary", onclick: () => {
        $("receipt-text").value = receipt; $("receipt-content").value = content || ""; clear($("receipt-check-result")); selectTab("receipt");
      } },
        "Open in receipt checker")),
    h("pre", { id: `${idPrefix}-receipt`, class: "receipt" }, receipt),
    result);
}

// -- the API token ----------------------------------------------------------------------------
// A bearer secret: kept in sessionStorage (this tab, until it is closed) unless the user ticks
// "Remember on this device", which also keeps it in localStorage; "Forget token" clears both.
const SESSION_TOKEN = "tracemark-token";
const REMEMBERED_TOKEN = "tracemark-remembered-token";
const UNASKED_TOKEN = "tracemark-token"; // where pages before this one kept it in localStorage, unasked

const TOKEN_STATUS = {
  session: "Kept in this tab until it is closed.",
  remembered: "Remembered on this device until you forget it.",
  forgotten: "Forgotten: this browser keeps no token.",
  blocked: "This browser does not allow storage here: the token is kept in this page only.",
};

function tokenStatus(state) {
  $("token-status").textContent = TOKEN_STATUS[state];
}

function saveToken() {
  const token = $("api-token").value;
  const remember = $("token-remember").checked;
  try {
    if (token) sessionStorage.setItem(SESSION_TOKEN, token);
    else sessionStorage.removeItem(SESSION_TOKEN);
    if (remember && token) localStorage.setItem(REMEMBERED_TOKEN, token);
    else localStorage.removeItem(REMEMBERED_TOKEN);
    tokenStatus(remember ? "remembered" : "session");
  } catch {
    tokenStatus("blocked");
  }
}

function restoreToken() {
  try {
    const remembered = localStorage.getItem(REMEMBERED_TOKEN);
    const unasked = localStorage.getItem(UNASKED_TOKEN);
    localStorage.removeItem(UNASKED_TOKEN); // kept for this session only from now on
    $("api-token").value = sessionStorage.getItem(SESSION_TOKEN) || remembered || unasked || "";
    $("token-remember").checked = remembered !== null;
  } catch {
    tokenStatus("blocked");
    return;
  }
  saveToken();
}

function forgetToken() {
  $("api-token").value = "";
  $("token-remember").checked = false;
  try {
    sessionStorage.removeItem(SESSION_TOKEN);
    localStorage.removeItem(REMEMBERED_TOKEN);
    localStorage.removeItem(UNASKED_TOKEN);
    tokenStatus("forgotten");
  } catch {
    tokenStatus("blocked");
  }
}

$("token-form").addEventListener("submit", (event) => event.preventDefault()); // never sent anywhere
$("api-token").addEventListener("input", saveToken);
$("token-remember").addEventListener("change", saveToken);
$("token-forget").addEventListener("click", forgetToken);
restoreToken();

// -- generation -------------------------------------------------------------------------------
// The OpenAI-compatible route every client uses (POST /v1/completions, streamed): the text arrives as it
// is sampled; the last chunk carries the log entry and its receipt (the `tracemark` field).
async function streamCompletion(prompt, tokens, token, onText) {
  const models = await callApi("/v1/models");
  const body = { model: models.data[0].id, prompt, max_tokens: tokens, min_tokens: tokens, stream: true,
                 stream_options: { include_usage: true } };
  let response;
  try {
    response = await fetch("/v1/completions", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${token}` } });
  } catch {
    throw new Error("Could not reach the service: check the connection and try again");
  }
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    throw requestError(response, data);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffered.indexOf("\n\n")) >= 0) {
      const event = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.error) throw requestError({ status: 500 }, chunk);
      for (const choice of chunk.choices) {
        if (choice.text) { text += choice.text; onText(choice.text); }
      }
      if (chunk.tracemark) return { text, tracemark: chunk.tracemark, usage: chunk.usage };
    }
  }
  throw new Error("The stream ended before its receipt arrived");
}

$("generate-button").addEventListener("click", () => whileBusy($("generate-button"), async () => {
  const out = $("generation");
  const field = $("generate-tokens");
  const tokens = Number(field.value);
  if (!Number.isInteger(tokens) || tokens < Number(field.min) || tokens > Number(field.max)) {
    show(out, errorBadge(new Error(`New tokens must be a whole number from ${field.min} to ${field.max}`)));
    return;
  }
  show(out, "Generating…");
  try {
    const prompt = $("generate-prompt").value;
    const live = h("p", { class: "generated", id: "generated-text" }, h("strong", {}, prompt));
    const result = await streamCompletion(prompt, tokens, $("api-token").value, (text) => {
      live.append(text);
      show(out, live);
    });
    const g = { prompt, text: result.text, key_id: result.tracemark.key_id, scheme: result.tracemark.scheme };
    const entry = result.tracemark.receipts[0];
    show(out,
      h("p", { class: "generated", id: "generated-text" }, h("strong", {}, g.prompt), g.text),
      facts([
        ["tokens", result.usage.completion_tokens],
        ["key", [mono(g.key_id), ` (${g.scheme})`]],
        ["model", result.tracemark.model_id],
        ["log entry", [`#${entry.index} · content SHA-256 `, shortHash(entry.record.content_sha256)], "generation-index"],
      ]),
      h("button", {
        class: "secondary", id: "check-generated", onclick: () => {
          $("verify-text").value = g.text;
          $("verify-prompt").value = g.prompt;
          selectTab("verify");
          checkText();
        },
      }, "Check this text for the watermark"),
      receiptBlock(entry.receipt, g.text, "generation"));
  } catch (error) {
    show(out, errorBadge(error));
  }
}));

// -- log explorer -----------------------------------------------------------------------------
const logState = { end: null, size: 0, requests: 0 };

async function loadLog(end) {
  try {
    const [checkpoint, key] = await Promise.all([callApi("/v1/log/checkpoint"), callApi("/v1/log/key")]);
    logState.size = checkpoint.tree_size;
    show($("checkpoint-view"),
      facts([
        ["origin", checkpoint.origin],
        ["tree size", checkpoint.tree_size, "log-size"],
        ["root hash", mono(checkpoint.root_hash)],
        ["log key", mono(key.log_key)],
      ]),
      h("details", {}, h("summary", {}, "Signed checkpoint (C2SP signed note)"), h("pre", { id: "checkpoint-note" }, checkpoint.note)));
    logState.end = Math.min(end === undefined || end === null ? checkpoint.tree_size : end, checkpoint.tree_size);
    await loadEntries();
  } catch (error) {
    show($("checkpoint-view"), errorBadge(error));
  }
}

// Shows the page of entries ending at logState.end.  It never rejects: a failed request is shown in the
// table, and an answer overtaken by a later click (Older, Newer, Refresh) is dropped.
async function loadEntries() {
  const request = ++logState.requests;
  const end = logState.end;
  const start = Math.max(0, end - PAGE_SIZE);
  const body = $("entries-body");
  $("log-range").textContent = end > 0 ? `entries ${start}–${end - 1} of ${logState.size}, newest first` : "the log is empty";
  $("log-newer").disabled = end >= logState.size;
  $("log-older").disabled = start === 0;
  if (end === 0) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No entries yet: generate some marked text.")));
    return;
  }
  let page;
  try {
    page = await callApi(`/v1/log/entries?start=${start}&limit=${end - start}`);
  } catch (error) {
    if (request === logState.requests) body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "message" }, errorBadge(error))));
    return;
  }
  if (request !== logState.requests) return;
  body.replaceChildren(...page.entries.slice().reverse().map((entry) => {
    const r = entry.record || {};
    return h("tr", { class: "entry", "data-index": entry.index, tabindex: 0, onclick: () => showEntry(entry.index),
      onkeydown: (event) => { if (event.key === "Enter") showEntry(entry.index); } },
    h("td", {}, entry.index), h("td", {}, entry.integrated_time ? utcText(entry.integrated_time) : "—"), h("td", {}, r.kind || "(not a record)"),
    h("td", {}, r.model_id || ""), h("td", {}, r.key_id ? mono(r.key_id) : ""),
    h("td", {}, r.content_sha256 ? mono(`${r.content_sha256.slice(0, 12)}…`, r.content_sha256) : ""));
  }));
}

// An RFC 3339 UTC time as "2026-08-02 12:00:00.123" (the column says UTC).
function utcText(value) {
  return value.replace("T", " ").replace("Z", "");
}

async function showEntry(index) {
  const out = $("entry-detail");
  document.querySelectorAll("tr.entry").forEach((row) => row.classList.toggle("selected", Number(row.dataset.index) === index));
  show(out, "Loading…");
  try {
    const [entry, proof] = await Promise.all([callApi(`/v1/log/entries/${index}`), callApi(`/v1/log/proof/inclusion?index=${index}`)]);
    const record = entry.record || {};
    show(out,
      h("h3", {}, `Entry ${index}`),
      facts([
        ["logged at", entry.integrated_time ? `${utcText(entry.integrated_time)} UTC (the log's clock)` : "—", "entry-logged"],
        ...Object.entries(record).map(([name, value]) => [
          name === "time" ? "claimed time" : name,
          name === "time" ? `${value} (the client's claim)` : name.endsWith("sha256") || name === "key_id" ? mono(value) : value,
        ]),
        ["leaf hash", mono(entry.leaf_hash)],
        ["inclusion proof", `${proof.proof.length} hash${proof.proof.length === 1 ? "" : "es"} to the root of the tree of size ${proof.tree_size}`],
      ]),
      h("details", {}, h("summary", {}, "Proof hashes (RFC 9162)"),
        h("ol", { class: "proof", start: 1 }, proof.proof.map((hash) => h("li", {}, mono(hash))))),
      proof.receipt ? receiptBlock(proof.receipt, null, "entry") : h("p", { class: "muted" }, "No signed checkpoint of this size."));
  } catch (error) {
    show(out, errorBadge(error));
  }
}

function pageEntries(end) {
  logState.end = end;
  return loadEntries();
}
$("log-newer").addEventListener("click", () => pageEntries(Math.min(logState.size, logState.end + PAGE_SIZE)));
$("log-older").addEventListener("click", () => pageEntries(Math.max(0, logState.end - PAGE_SIZE)));
$("log-refresh").addEventListener("click", () => whileBusy($("log-refresh"), () => loadLog()));

// -- images -----------------------------------------------------------------------------------
const OUTCOME_TEXT = {
  "trusted": ["marked", "Signed content credentials · trusted"],
  "valid-untrusted": ["unmarked", "Signed content credentials · signer not trusted"],
  "invalid": ["error", "Content credentials fail verification"],
  "recovered-via-soft-binding": ["marked", "Credentials recovered through the watermark"],
  "watermark-only": ["marked", "tracemark watermark found · no manifest known"],
  "unmarked": ["unmarked", "No content credentials and no watermark"],
};

function postImage(path, file, token) {
  const headers = { Accept: "application/json", "Content-Type": file.type || "application/octet-stream" };
  if (token) headers.Authorization = `Bearer ${token}`;
  return request(path, { method: "POST", headers, body: file });
}

function renderMediaVerdict(v) {
  const [style, text] = OUTCOME_TEXT[v.outcome] || ["unmarked", v.outcome];
  const mark = v.watermark || {};
  const layers = (v.article_50 && v.article_50.layers) || [];
  return [
    h("span", { class: `badge ${style}`, id: "media-outcome", "data-outcome": v.outcome }, text),
    v.conflict
      ? h("div", { class: "badge error", id: "media-conflict" },
          "CONFLICT: the embedded manifest and the watermark's own manifest make different claims — ",
          (v.conflict.disagreements || []).join("; "))
      : null,
    facts([
      ["outcome", v.outcome, "media-outcome-code"],
      v.codes.length ? ["failing codes", v.codes.join(", "), "media-codes"] : null,
      v.manifest_id ? ["manifest", mono(v.manifest_id), "media-manifest-id"] : null,
      mark.found ? ["watermark", [`record ${mark.record_id} · key `, mono(mark.key_id), ` · ${mark.geometry}`], "media-watermark"] : null,
      mark.found && typeof mark.false_positive_bound === "number" ? ["false-positive bound", mark.false_positive_bound.toExponential(1)] : null,
      ["content SHA-256", shortHash(v.content_sha256)],
    ]),
    h("h3", {}, "EU AI Act Article 50 layers"),
    h("ul", { class: "layers", id: "media-layers" }, layers.map((layer) =>
      h("li", { class: layer.found ? "found" : "missing", "data-layer": layer.layer },
        h("strong", {}, `${layer.found ? "✓" : "✗"} ${layer.layer}`), h("span", { class: "muted" }, ` — ${layer.proves}`)))),
    v.manifest
      ? h("details", { open: true }, h("summary", {}, "Manifest"), h("pre", { id: "media-manifest" }, JSON.stringify(v.manifest, null, 2)))
      : null,
  ];
}

function verifyImage(file, button) {
  return whileBusy(button, async () => {
    const out = $("media-result");
    if (!file) {
      show(out, errorBadge(new Error("Choose an image first")));
      return;
    }
    show(out, "Checking…");
    try {
      show(out, ...renderMediaVerdict(await postImage("/v1/media/verify", file)));
    } catch (error) {
      show(out, errorBadge(error));
    }
  });
}

let markedUrl = null; // the object URL of the marked image on show, released when it goes

// The model id a marked image's log record and manifest name: the provenance record's rule (tracemark.tlog):
// 1 to 256 characters of A-Z a-z 0-9 . _ : / + = @ - (printable ASCII without spaces, so that no id can
// render as another).  Checked here so a bad id is explained before the image is sent; empty means the
// service's default.
const DEFAULT_IMAGE_MODEL = "unspecified-image-model";
const MAX_MODEL_ID = 256;
const MODEL_ID_CHARSET = "letters A-Z a-z, digits and . _ : / + = @ -";

function modelIdProblem(modelId) {
  if ([...modelId].length > MAX_MODEL_ID) return `at most ${MAX_MODEL_ID} characters, not ${[...modelId].length}`;
  const bad = /[^A-Za-z0-9._:\/+=@-]/u.exec(modelId);
  if (bad) {
    const code = bad[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `only ${MODEL_ID_CHARSET} (found U+${code})`;
  }
  return null;
}

function clearMarked() {
  if (markedUrl) URL.revokeObjectURL(markedUrl);
  markedUrl = null;
  clear($("media-marked"));
}

$("media-file").addEventListener("change", () => { clearMarked(); clear($("media-result")); });
$("media-verify-button").addEventListener("click", () => verifyImage($("media-file").files[0], $("media-verify-button")));
$("media-mark-button").addEventListener("click", () => whileBusy($("media-mark-button"), async () => {
  const file = $("media-file").files[0];
  clearMarked();
  clear($("media-result")); // a verdict on the unmarked original would read as one on the marked copy
  const out = $("media-marked");
  if (!file) {
    show(out, errorBadge(new Error("Choose an image first")));
    return;
  }
  const modelId = $("media-model-id").value;
  const problem = modelIdProblem(modelId);
  if (problem) {
    show(out, errorBadge(new Error(`Model id: ${problem}`)));
    return;
  }
  show(out, "Marking…");
  try {
    const query = modelId ? `?model_id=${encodeURIComponent(modelId)}` : "";
    const result = await postImage(`/v1/media/mark${query}`, file, $("api-token").value);
    const bytes = Uint8Array.from(atob(result.image), (c) => c.charCodeAt(0));
    const blob = new Blob([bytes], { type: result.mime_type });
    const url = URL.createObjectURL(blob);
    markedUrl = url;
    const extension = result.mime_type.split("/")[1].replace("jpeg", "jpg");
    show(out,
      h("img", { src: url, alt: "marked image", class: "preview", id: "media-marked-image" }),
      facts([
        ["record", mono(result.record_id), "media-marked-record"],
        ["model", modelId || DEFAULT_IMAGE_MODEL, "media-marked-model"],
        ["manifest", mono(result.manifest_id)],
        ["soft binding", [`${result.soft_binding.alg} `, mono(result.soft_binding.value)]],
        ["log entry", result.log_index === null ? "—" : `#${result.log_index}`, "media-marked-log-index"],
      ]),
      h("div", { class: "row actions" },
        h("a", { href: url, download: `marked.${extension}`, class: "secondary", id: "media-download" }, "Download"),
        h("button", { class: "secondary", id: "media-check-marked",
          onclick: (event) => verifyImage(new File([blob], `marked.${extension}`, { type: result.mime_type }), event.currentTarget) },
        "Verify this image")));
  } catch (error) {
    show(out, errorBadge(error));
  }
}));
