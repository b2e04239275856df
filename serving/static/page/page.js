// The analysts' page: plain JavaScript, no library, no network beyond this service's own API.
// Every label, score and error comes from the API; the page only lays them out.
"use strict";

const T = JSON.parse(document.getElementById("page-text").textContent);
const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const CHUNK = 8; // articles per batch request: small enough for the progress bar to move
const $ = (id) => document.getElementById(id);

let labels = null; // label sets of the served model (from /v1/model)
let last = null; // the last single classification: {request, result}
let fileRows = []; // [{line, id, title, text}]
let fileResults = []; // batch results, in file order
let sortKey = null;
let sortAsc = true;

function fmt(template, values) {
  return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// --- errors: shown as the API words them (message, then each field and what to send) -------------------------
function showError(box, error, lineOf) {
  box.replaceChildren();
  if (error.network) {
    box.append(el("p", { text: fmt(T.network_error, { reason: error.network }) }));
  } else if (error.local) {
    box.append(el("p", { text: error.local }));
  } else {
    const body = error.body && error.body.error;
    box.append(el("p", { text: `${T.error_prefix} ${body ? body.message : `HTTP ${error.status}`}` }));
    // One field: the message already says it all; several, or lines of a file to name: list them.
    if (body && body.fields && (body.fields.length > 1 || (lineOf && body.fields.length))) {
      const list = el("ul");
      for (const f of body.fields) {
        const where = lineOf ? lineOf(f.field) : null;
        list.append(el("li", {}, el("code", { text: f.field }), where ? ` (${where})` : "", `: ${f.problem}`));
      }
      box.append(list);
    }
  }
  box.hidden = false;
}

async function api(path, body) {
  let response;
  try {
    // An API key, when the service asks for one (NEWSCLF_API_KEYS): kept for this tab only.
    const key = $("api-key").value.trim();
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    response = await fetch(path, body === undefined ? { headers } : {
      method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (exc) {
    throw { network: String(exc.message || exc) };
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: keep the status */ }
  if (!response.ok) throw { status: response.status, body: data };
  return data;
}

// --- the model ------------------------------------------------------------------------------------------------
const SCORES = ["cv.sector.macro_f1", "cv.topics.micro_f1", "cv.region.macro_f1",
  "seed.sector.macro_f1", "seed.topics.micro_f1", "seed.region.macro_f1"];

async function loadModel() {
  let info;
  try {
    info = await api("/v1/model");
  } catch (error) {
    const body = error.body && error.body.error;
    $("model-status").textContent = body ? body.message : T.model_loading;
    setTimeout(loadModel, 3000);
    return;
  }
  labels = info.labels;
  const facts = $("model-facts");
  const add = (term, ...value) => facts.append(el("dt", { text: term }), el("dd", {}, ...value));
  add(T.model_name, info.name);
  add(T.model_version, info.version);
  if (info.run_id && CONFIG.mlflowUiUrl) {
    add(T.model_run, el("a", { href: `${CONFIG.mlflowUiUrl}/#/runs/${info.run_id}`, text: info.run_id }));
  } else {
    add(T.model_run, info.run_id || "–");
  }
  add(T.model_trained, info.created_at ? info.created_at.slice(0, 16).replace("T", " ") + " UTC" : "–");
  const scores = $("model-scores").querySelector("ul");
  for (const key of SCORES) {
    if (key in info.metrics) scores.append(el("li", {}, el("code", { text: key }), ` ${info.metrics[key].toFixed(3)}`));
  }
  $("model-scores").hidden = !scores.children.length;
  facts.hidden = false;
  $("model-status").textContent = "";
  fillSelect($("fix-sector"), labels.sector);
  fillSelect($("fix-region"), labels.region);
  fillSelect($("filter-sector"), [T.all, ...labels.sector], "");
  fillSelect($("filter-topic"), [T.all, ...labels.topics], "");
  const box = $("fix-topics");
  for (const topic of labels.topics) {
    const id = `fix-topic-${topic}`;
    box.append(el("span", { class: "check" }, el("input", { type: "checkbox", id, value: topic }),
      el("label", { for: id, text: topic })));
  }
}

function fillSelect(select, values, allValue) {
  select.replaceChildren(...values.map((v, i) => el("option", { value: i === 0 && allValue !== undefined ? allValue : v, text: v })));
}

// --- one article ----------------------------------------------------------------------------------------------
async function classify(event) {
  event.preventDefault();
  const text = $("text").value;
  const title = $("title").value.trim();
  const request = title ? { text, title } : { text };
  $("classify-error").hidden = true;
  $("classify").disabled = true;
  $("classify-status").textContent = T.classifying;
  try {
    const result = await api("/v1/classify?explain=true", request);
    last = { request, result };
    showResult(result);
  } catch (error) {
    // The pasted text stays in the form: only the message changes.
    showError($("classify-error"), error);
  } finally {
    $("classify").disabled = false;
    $("classify-status").textContent = "";
  }
}

function showResult(r) {
  const bars = $("sector-bars");
  bars.replaceChildren();
  const ordered = Object.entries(r.sector.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of ordered) {
    const bar = el("span", { class: "bar" }, el("span", { class: "fill", style: `width:${(p * 100).toFixed(1)}%` }));
    bars.append(el("li", { class: label === r.sector.label ? "chosen" : "" },
      el("span", { class: "bar-label", text: label }), bar,
      el("span", { class: "bar-value", text: p.toFixed(2) })));
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", `${label} ${(p * 100).toFixed(0)}%`);
  }
  const topics = $("topics");
  topics.replaceChildren(...(r.topics.length ? r.topics.map((t) => el("li", {},
    el("span", { class: "tag evidence-tag", text: t.label }), ` ${T.confidence} ${t.confidence.toFixed(2)}`))
    : [el("li", { text: T.no_topics })]));
  $("region").textContent = `${r.region.label} (${T.confidence} ${r.region.confidence.toFixed(2)})`;
  $("partners").replaceChildren(...(r.partners.length ? r.partners.map((p) => el("li", {},
    el("mark", { class: "partner", text: p.name }), ` ${p.code}`)) : [el("li", { text: T.no_partners })]));
  $("language").textContent = r.language || "–";
  $("warnings").replaceChildren(...(r.warnings.length ? r.warnings.map((w) => el("li", { class: "warning", text: w }))
    : [el("li", { text: T.no_warnings })]));
  showDocument(r);
  prefillCorrection(r);
  $("save-error").hidden = true;
  $("save-status").textContent = "";
  $("result").hidden = false;
}

// The document as the model read it, cut at every boundary of a mention, an evidence sentence or the truncation
// point, each piece rendered with what covers it.
function showDocument(r) {
  const x = r.explanation;
  const doc = x.document;
  const partners = new Set(r.partners.map((p) => p.code));
  const evidence = [];
  for (const [topic, spans] of Object.entries(x.evidence)) for (const s of spans) evidence.push({ ...s, topic });
  const cuts = new Set([0, doc.length]);
  for (const s of [...x.mentions, ...evidence]) { cuts.add(s.start); cuts.add(s.end); }
  if (x.read_chars !== null) cuts.add(x.read_chars);
  const points = [...cuts].filter((c) => c >= 0 && c <= doc.length).sort((a, b) => a - b);
  const box = $("document");
  box.replaceChildren();
  const started = new Set();
  for (let i = 0; i < points.length - 1; i++) {
    const [a, b] = [points[i], points[i + 1]];
    if (x.read_chars !== null && a === x.read_chars) {
      box.append(el("span", { class: "cut", role: "note", text: `✂ ${T.truncated}` }));
    }
    const covering = evidence.filter((s) => s.start <= a && b <= s.end);
    for (const s of covering) {
      const key = `${s.topic}:${s.start}`;
      if (!started.has(key) && s.start === a) {
        started.add(key);
        box.append(el("span", { class: "tag evidence-tag", text: s.topic }));
      }
    }
    const mention = x.mentions.find((m) => m.start <= a && b <= m.end);
    let piece = document.createTextNode(doc.slice(a, b));
    if (mention) {
      piece = el("mark", { class: partners.has(mention.code) ? "partner" : "country", title: mention.code },
        doc.slice(a, b));
    }
    box.append(covering.length ? el("span", { class: "evidence", "data-topics": covering.map((s) => s.topic).join(" ") }, piece) : piece);
  }
}

function prefillCorrection(r) {
  $("fix-sector").value = r.sector.label;
  $("fix-region").value = r.region.label;
  $("fix-language").value = ["fr", "en", "vi"].includes(r.language) ? r.language : "";
  const chosen = new Set(r.topics.map((t) => t.label));
  for (const box of $("fix-topics").querySelectorAll("input")) box.checked = chosen.has(box.value);
  $("fix-partners").value = r.partners.map((p) => p.code).join(", ");
  $("fix-note").value = "";
}

async function saveCorrection(event) {
  event.preventDefault();
  if (!last) return;
  const { request, result } = last;
  const topics = [...$("fix-topics").querySelectorAll("input:checked")].map((b) => b.value);
  const sentences = result.explanation.topic_sentences;
  const evidence = {};
  for (const t of topics) if (sentences[t]) evidence[t] = [[sentences[t].start, sentences[t].end]];
  const note = $("fix-note").value.trim();
  const body = {
    ...request,
    language: $("fix-language").value || null,
    sector: $("fix-sector").value,
    topics,
    region: $("fix-region").value,
    partners: $("fix-partners").value.split(/[\s,;]+/).filter(Boolean),
    evidence,
    model: result.model,
    predicted: { sector: result.sector.label, topics: result.topics.map((t) => t.label), region: result.region.label,
      partners: result.partners.map((p) => p.code) },
  };
  if (note) body.note = note;
  $("save-error").hidden = true;
  $("save").disabled = true;
  try {
    const saved = await api("/v1/feedback", body);
    $("save-status").textContent = fmt(T.saved, { id: saved.id, model: saved.model.name, version: saved.model.version });
  } catch (error) {
    $("save-status").textContent = "";
    showError($("save-error"), error);
  } finally {
    $("save").disabled = false;
  }
}

// --- a file -----------------------------------------------------------------------------------------------------
function parseCsv(source) {
  // RFC 4180: quoted fields may hold commas, doubled quotes and line breaks.
  const rows = [];
  let row = [], field = "", quoted = false, line = 1, rowLine = 1;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (quoted) {
      if (c === '"' && source[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else { if (c === "\n") line++; field += c; }
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && source[i + 1] === "\n") i++;
      row.push(field); field = "";
      if (row.some((v) => v !== "")) rows.push({ line: rowLine, values: row });
      row = []; line++; rowLine = line;
    } else field += c;
  }
  if (quoted) throw fmt(T.file_error_quote, { line: rowLine });
  row.push(field);
  if (row.some((v) => v !== "")) rows.push({ line: rowLine, values: row });
  return rows;
}

function readArticles(name, source) {
  source = source.replace(/^\uFEFF/, "");
  const out = [];
  if (/\.csv$/i.test(name)) {
    const rows = parseCsv(source);
    if (!rows.length) throw T.file_error_empty;
    const header = rows[0].values.map((h) => h.trim().toLowerCase());
    const [id, text, title] = ["id", "text", "title"].map((c) => header.indexOf(c));
    if (id < 0 || text < 0) throw fmt(T.file_error_columns, { cols: header.join(", ") });
    for (const r of rows.slice(1)) {
      const a = { line: r.line, id: r.values[id] ?? "", text: r.values[text] ?? "" };
      if (title >= 0 && r.values[title]) a.title = r.values[title];
      out.push(a);
    }
  } else if (/\.jsonl?$/i.test(name)) {
    source.split(/\r?\n/).forEach((raw, i) => {
      if (!raw.trim()) return;
      let record;
      try { record = JSON.parse(raw); } catch (exc) { throw fmt(T.file_error_json, { line: i + 1, reason: exc.message }); }
      if (record === null || typeof record !== "object" || Array.isArray(record)) throw fmt(T.file_error_object, { line: i + 1 });
      for (const f of ["id", "text"]) if (!(f in record)) throw fmt(T.file_error_field, { line: i + 1, field: f });
      const a = { line: i + 1, id: String(record.id), text: record.text };
      if (record.title) a.title = record.title;
      out.push(a);
    });
  } else {
    throw fmt(T.file_error_type, { name });
  }
  if (!out.length) throw T.file_error_empty;
  if (out.length > CONFIG.maxBatchItems) throw fmt(T.file_error_too_many, { n: out.length, max: CONFIG.maxBatchItems });
  return out;
}

async function classifyFile(file) {
  $("file-error").hidden = true;
  $("file-results").hidden = true;
  $("file-progress-box").hidden = true;
  let rows;
  try {
    rows = readArticles(file.name, await file.text());
  } catch (message) {
    showError($("file-error"), { local: String(message) });
    return;
  }
  fileRows = rows;
  fileResults = [];
  const progress = $("file-progress");
  progress.max = rows.length;
  progress.value = 0;
  $("file-progress-box").hidden = false;
  $("file-status").textContent = `0 / ${rows.length}`;
  for (let first = 0; first < rows.length; first += CHUNK) {
    const chunk = rows.slice(first, first + CHUNK);
    const articles = chunk.map(({ id, text, title }) => (title ? { id, text, title } : { id, text }));
    try {
      const answer = await api("/v1/classify/batch", { articles });
      fileResults.push(...answer.results);
    } catch (error) {
      // The API names articles[i] of this request: say which line of the file that is.
      const lineOf = (field) => {
        const m = /^articles\[(\d+)\]/.exec(field);
        const row = m && chunk[Number(m[1])];
        return row ? fmt(T.file_error_line, { line: row.line, id: row.id }) : null;
      };
      showError($("file-error"), error, lineOf);
      if (!fileResults.length) $("file-progress-box").hidden = true;
      $("file-error").prepend(el("p", { text: fmt(T.file_error_rows, { first: first + 1, last: first + chunk.length }) }));
      break;
    }
    progress.value = fileResults.length;
    $("file-status").textContent = `${fileResults.length} / ${rows.length}`;
  }
  if (fileResults.length) {
    if (fileResults.length === rows.length) $("file-status").textContent = fmt(T.file_done, { n: rows.length });
    renderTable();
    $("file-results").hidden = false;
  }
}

const COLUMNS = [
  ["id", (r) => r.id],
  ["sector", (r) => r.sector.label],
  ["confidence", (r) => r.sector.confidence],
  ["topics", (r) => r.topics.map((t) => t.label).join(", ")],
  ["region", (r) => r.region.label],
  ["partners", (r) => r.partners.map((p) => p.code).join(", ")],
  ["language", (r) => r.language],
  ["warnings", (r) => r.warnings.join("; ")],
];

function renderTable() {
  const head = $("results").querySelector("thead tr");
  head.replaceChildren(...COLUMNS.map(([key]) => {
    const th = el("th", { scope: "col" }, el("button", { type: "button", "data-key": key, text: T[`col_${key}`] || T[key] || key }));
    th.setAttribute("aria-sort", key === sortKey ? (sortAsc ? "ascending" : "descending") : "none");
    return th;
  }));
  const sector = $("filter-sector").value;
  const topic = $("filter-topic").value;
  let shown = fileResults.filter((r) => (!sector || r.sector.label === sector)
    && (!topic || r.topics.some((t) => t.label === topic)));
  if (sortKey) {
    const get = COLUMNS.find(([k]) => k === sortKey)[1];
    shown = [...shown].sort((a, b) => {
      const [x, y] = [get(a), get(b)];
      const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return sortAsc ? order : -order;
    });
  }
  $("results").querySelector("tbody").replaceChildren(...shown.map((r) => el("tr", {},
    ...COLUMNS.map(([key, get]) => el("td", { text: key === "confidence" ? get(r).toFixed(2) : get(r) })))));
}

function download(name, type, content) {
  const link = el("a", { href: URL.createObjectURL(new Blob([content], { type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

function csvCell(value) {
  const s = String(value);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function resultsCsv() {
  const header = ["id", "sector", "sector_confidence", "topics", "region", "region_confidence", "partners", "language", "warnings"];
  const lines = fileResults.map((r) => [r.id, r.sector.label, r.sector.confidence, r.topics.map((t) => t.label).join(";"),
    r.region.label, r.region.confidence, r.partners.map((p) => p.code).join(";"), r.language, r.warnings.join(" | ")]);
  return [header, ...lines].map((l) => l.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

// --- wiring ---------------------------------------------------------------------------------------------------------
$("classify-form").addEventListener("submit", classify);
$("correct-form").addEventListener("submit", saveCorrection);
$("file-input").addEventListener("change", (e) => { if (e.target.files[0]) classifyFile(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) classifyFile(e.dataTransfer.files[0]);
});
$("filter-sector").addEventListener("change", renderTable);
$("filter-topic").addEventListener("change", renderTable);
$("results").querySelector("thead").addEventListener("click", (e) => {
  const key = e.target.closest("button")?.dataset.key;
  if (!key) return;
  sortAsc = key === sortKey ? !sortAsc : true;
  sortKey = key;
  renderTable();
});
$("download-csv").addEventListener("click", () => download("newsclf-results.csv", "text/csv", resultsCsv()));
$("download-jsonl").addEventListener("click", () => download("newsclf-results.jsonl", "application/x-ndjson",
  fileResults.map((r) => JSON.stringify(r)).join("\n") + "\n"));
$("api-key").value = sessionStorage.getItem("newsclf-api-key") || "";
$("api-key").addEventListener("change", () => sessionStorage.setItem("newsclf-api-key", $("api-key").value.trim()));
loadModel();
