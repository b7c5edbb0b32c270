"use strict";
// The tracemark web page: calls the JSON API of the same service; no third-party code.

const $ = (id) => document.getElementById(id);

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === tab.dataset.tab));
    if (tab.dataset.tab === "log" && window.loadLog) window.loadLog();
  });
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function callApi(path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method: body ? "POST" : "GET", headers, body: body ? JSON.stringify(body) : undefined });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ? `${data.error.type}: ${data.error.message}` : response.statusText);
  return data;
}

function formatP(p, log10) {
  if (p === 0 || p === null) return `10^${log10 === null ? "-∞" : log10.toFixed(1)}`;
  return p < 1e-3 ? p.toExponential(2) : p.toPrecision(3);
}

function renderVerdict(v) {
  const text = v.canonicalization.text || "";
  let marked = "";
  let last = 0;
  for (const [start, end, status] of v.token_marks) {
    if (start < last) continue;
    marked += escapeHtml(text.slice(last, start));
    marked += `<span class="${status}" title="${status}">${escapeHtml(text.slice(start, end))}</span>`;
    last = end;
  }
  marked += escapeHtml(text.slice(last));
  const spans = v.spans.map((s) => `tokens ${s.start_token}–${s.end_token} (p corrected ${formatP(s.p_value_corrected)})`);
  return `
    <span class="badge ${v.marked ? "marked" : "unmarked"}" id="verdict-badge">${v.marked ? "Watermark found" : "No watermark found"}</span>
    <table class="facts">
      <tr><td>p-value</td><td id="verdict-p">${formatP(v.p_value, v.log10_p_value)} (decision level ${v.alpha})</td></tr>
      <tr><td>test</td><td>${escapeHtml(v.p_value_method)}</td></tr>
      <tr><td>tokens scored</td><td id="verdict-tokens">${v.tokens_scored} of ${v.tokens_total} (${v.tokens_repeated} repeats scored once)</td></tr>
      <tr><td>hits</td><td>${v.hits} / ${v.trials} (${(100 * v.score).toFixed(1)} %; ${(100 * v.null_hit_probability).toFixed(1)} % expected without the key)</td></tr>
      <tr><td>marked spans</td><td>${spans.join("<br>") || "—"}</td></tr>
      <tr><td>scheme / key</td><td>${escapeHtml(`${v.scheme}/${v.scheme_version}`)} · <code>${escapeHtml(v.key_id)}</code></td></tr>
    </table>
    <div class="legend"><span class="hit">hit</span><span class="miss">miss</span><span class="repeat">repeat</span></div>
    <div class="tokens" id="verdict-tokens-view">${marked}</div>`;
}

$("verify-button").addEventListener("click", async () => {
  const out = $("verdict");
  out.hidden = false;
  out.innerHTML = "Checking…";
  const body = { text: $("verify-text").value, explain: true };
  if ($("verify-prompt").value) body.prompt = $("verify-prompt").value;
  if ($("verify-key").value) body.key_id = $("verify-key").value;
  try {
    out.innerHTML = renderVerdict(await callApi("/v1/text/detect", body));
  } catch (error) {
    out.innerHTML = `<span class="badge error">${escapeHtml(error.message)}</span>`;
  }
});

$("api-token").value = localStorage.getItem("tracemark-token") || "";
$("generate-button").addEventListener("click", async () => {
  const out = $("generation");
  out.hidden = false;
  out.innerHTML = "Generating…";
  localStorage.setItem("tracemark-token", $("api-token").value);
  try {
    const result = await callApi("/v1/text/generate",
      { prompt: $("generate-prompt").value, max_new_tokens: Number($("generate-tokens").value) }, $("api-token").value);
    const g = result.generation;
    out.innerHTML = `
      <p><strong>${escapeHtml(g.prompt)}</strong>${escapeHtml(g.text)}</p>
      <p>${g.tokens} tokens, key <code>${escapeHtml(g.key_id)}</code> (${escapeHtml(g.scheme)})</p>
      <button id="check-generated">Check this text</button>
      ${result.receipt ? `<details><summary>Log receipt</summary><pre>${escapeHtml(result.receipt)}</pre></details>` : ""}`;
    $("check-generated").addEventListener("click", () => {
      $("verify-text").value = g.text;
      $("verify-prompt").value = g.prompt;
      document.querySelector('.tab[data-tab="verify"]').click();
      $("verify-button").click();
    });
  } catch (error) {
    out.innerHTML = `<span class="badge error">${escapeHtml(error.message)}</span>`;
  }
});
