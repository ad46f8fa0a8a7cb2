// imgsearch page: search by a dropped, pasted or chosen image, by an indexed image, or by words,
// and refine a search by adding results to it as examples (+) or counter-examples (−).
// Plain DOM code, no framework and no build step; everything it loads comes from this server.
"use strict";

const $ = (id) => document.getElementById(id);
const els = {
  status: $("status"),
  dropzone: $("dropzone"),
  fileInput: $("file-input"),
  preview: $("query-preview"),
  textForm: $("text-form"),
  textInput: $("text-input"),
  threshold: $("threshold"),
  thresholdValue: $("threshold-value"),
  thresholdLabel: $("threshold-label"),
  k: $("k"),
  uploadBtn: $("upload-btn"),
  uploadInput: $("upload-input"),
  title: $("results-title"),
  examples: $("examples"),
  info: $("results-info"),
  message: $("message"),
  results: $("results"),
  toast: $("toast"),
  libraryBtn: $("library-btn"),
  rescanBtn: $("rescan-btn"),
  duplicatesBtn: $("duplicates-btn"),
  filters: $("filters"),
  filterFolder: $("filter-folder"),
  filterTag: $("filter-tag"),
  filterFrom: $("filter-from"),
  filterTo: $("filter-to"),
  moreBtn: $("more-btn"),
  job: $("job"),
  jobInfo: $("job-info"),
  jobProgress: $("job-progress"),
};

// Cosine and inner-product scores grow with similarity; L2 scores are distances that shrink.
const state = { hits: [], metric: "cosine", higherIsCloser: true, previewUrl: null, seq: 0, libraryNext: null, jobTimer: null };
// The examples of the current image search: the dropped file (if any) and indexed images, as
// {id, name}, to look like (positive) or not (negative). Empty for text searches and the library.
let query = { upload: null, positive: [], negative: [] };
// Runs the current search again (after a filter changed); null for the library views.
let rerun = null;

/** Reads an API error body ({"error":{"code","message"}}) into an Error. */
async function apiError(res) {
  try {
    const body = await res.json();
    if (body && body.error) {
      const err = new Error(body.error.message || body.error.code);
      err.code = body.error.code;
      return err;
    }
  } catch (_) { /* not JSON */ }
  return new Error(`The server answered ${res.status} ${res.statusText}`);
}

// A server started with a token answers 401 until the page sends it. The page asks once, keeps
// the token in this origin's storage, sends it as a bearer token on every API call and as a
// SameSite=Strict cookie, which the browser adds to the image requests of <img> tags (they
// cannot carry headers) and never to requests from other sites' pages.
const TOKEN_KEY = "imgsearch_token";
let token = localStorage.getItem(TOKEN_KEY) || "";

function setTokenCookie(value) {
  document.cookie = value
    ? `${TOKEN_KEY}=${value}; path=/; SameSite=Strict`
    : `${TOKEN_KEY}=; path=/; SameSite=Strict; max-age=0`;
}
if (token) setTokenCookie(token);

function askToken(again) {
  const asked = window.prompt(again
    ? "That token was not accepted. Enter the token this imgsearch server was started with:"
    : "This imgsearch server requires a token. Enter the token it was started with:");
  if (!asked) return false;
  token = asked.trim();
  localStorage.setItem(TOKEN_KEY, token);
  setTokenCookie(token);
  return true;
}

async function api(url, options) {
  for (let attempt = 0; ; attempt++) {
    const opts = Object.assign({}, options);
    if (token) opts.headers = Object.assign({}, opts.headers, { Authorization: `Bearer ${token}` });
    let res;
    try {
      res = await fetch(url, opts);
    } catch (_) {
      throw new Error("Cannot reach the imgsearch server. Is it still running?");
    }
    if (res.status === 401 && attempt < 3 && askToken(attempt > 0 || !!token)) continue;
    if (!res.ok) throw await apiError(res);
    return res.json();
  }
}

let toastTimer = null;
function toast(text, isError) {
  els.toast.textContent = text;
  els.toast.classList.toggle("error", !!isError);
  els.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { els.toast.hidden = true; }, isError ? 7000 : 3500);
}

function showMessage(title, detail, isError) {
  els.message.replaceChildren();
  const t = document.createElement("p");
  t.className = "empty-title";
  t.textContent = title;
  const d = document.createElement("p");
  d.className = "muted";
  d.textContent = detail;
  els.message.append(t, d);
  els.message.classList.toggle("error", !!isError);
  els.message.setAttribute("role", isError ? "alert" : "status");
  els.message.hidden = false;
}

async function loadStatus() {
  try {
    const s = await api("/api/status");
    const count = s.files ?? s.points ?? 0;
    const metric = String(s.metric ?? "cosine").toLowerCase();
    state.metric = metric;
    state.higherIsCloser = metric !== "l2";
    state.bands = s.duplicates || null;
    els.duplicatesBtn.hidden = !state.bands;
    configureSlider();
    const index = typeof s.index === "object" && s.index ? (s.index.kind || "") : (s.index || "");
    const parts = [`${count.toLocaleString()} image${count === 1 ? "" : "s"}`];
    if (s.model) parts.push(typeof s.model === "object" ? (s.model.id || s.model.name || "") : s.model);
    if (s.runtime) parts.push(s.runtime);
    if (index) parts.push(String(index).toUpperCase());
    if (metric) parts.push(metric);
    els.status.replaceChildren();
    const dot = document.createElement("span");
    dot.className = "dot";
    els.status.append(dot, parts.filter(Boolean).join(" · "));
    els.status.classList.remove("down");
    if (count === 0 && state.hits.length === 0) {
      showMessage("The index is empty", "Index a folder with `imgsearch index <folder>`, or use “Add images…” above.");
    }
  } catch (err) {
    els.status.textContent = err.message;
    els.status.classList.add("down");
  }
}

/**
 * Sets the slider's range for the index's metric: cosine similarity lies in [0, 1] for these
 * embeddings; inner products and L2 distances have no fixed range, so they follow the hits.
 */
function configureSlider() {
  const scores = state.hits.map((h) => h.score);
  let min = 0;
  let max = 1;
  if (state.metric === "l2") {
    max = Math.max(1, ...scores);
  } else if (state.metric === "ip" && scores.length) {
    min = Math.min(0, ...scores);
    max = Math.max(1, ...scores);
  }
  els.thresholdLabel.textContent = state.higherIsCloser ? "Minimum similarity" : "Maximum distance";
  els.threshold.min = min.toFixed(2);
  els.threshold.max = max.toFixed(2);
  els.threshold.step = ((max - min) / 100).toFixed(4);
  if (!els.threshold.dataset.touched) {
    els.threshold.value = state.higherIsCloser ? els.threshold.min : els.threshold.max;
  }
  els.thresholdValue.value = Number(els.threshold.value).toFixed(2);
}

function baseName(path) {
  const p = String(path || "");
  return p.split(/[\\/]/).pop() || p;
}

function card(hit, rank) {
  const li = document.createElement("li");
  li.className = "card";
  const scored = typeof hit.score === "number";
  if (scored) li.dataset.score = String(hit.score);
  const name = baseName(hit.path);
  const btn = document.createElement("button");
  btn.type = "button";
  btn.title = `Search for images like ${name}`;
  btn.setAttribute("aria-label", scored ? `${name}, score ${hit.score.toFixed(3)}. Search for similar images.` : `${name}. Search for similar images.`);
  btn.addEventListener("click", () => searchById(hit.id, hit.thumbnail_url, name));
  const img = document.createElement("img");
  img.className = "thumb";
  img.src = hit.thumbnail_url;
  img.alt = name;
  img.loading = "lazy";
  img.decoding = "async";
  const meta = document.createElement("div");
  meta.className = "meta";
  const row = document.createElement("div");
  row.className = "score-row";
  if (scored) {
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    const worst = state.hits.length ? state.hits[state.hits.length - 1].score : 1;
    const frac = state.higherIsCloser ? hit.score : 1 - hit.score / Math.max(1e-9, worst * 1.1);
    fill.style.setProperty("width", `${Math.round(Math.max(0, Math.min(1, frac)) * 100)}%`);
    bar.append(fill);
    row.append(score, bar);
    const band = bandOf(hit.score);
    if (band) {
      const tag = document.createElement("span");
      tag.className = `band ${{ identical: "identical", "edited copy": "copy" }[band] || "similar"}`;
      tag.textContent = band;
      row.append(tag);
    }
  } else {
    // A library card: when the photo was taken (EXIF), else when the file last changed.
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = hit.taken ? String(hit.taken).slice(0, 10) : new Date(hit.mtime * 1000).toISOString().slice(0, 10);
    row.append(when);
  }
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  label.title = hit.path;
  meta.append(row, label);
  btn.append(img, meta);
  const badge = document.createElement("span");
  badge.className = "rank";
  badge.textContent = `#${rank}`;
  badge.setAttribute("aria-hidden", "true");
  const open = document.createElement("a");
  open.className = "open";
  open.href = hit.image_url;
  open.target = "_blank";
  open.rel = "noopener";
  open.textContent = "Open";
  open.setAttribute("aria-label", `Open ${name} in full size`);
  li.append(btn, badge, open);
  if (scored) li.append(refineButtons(hit, name));
  return li;
}

/** "identical", "edited copy" or "similar shot" for a score in the duplicate bands, else null. */
function bandOf(score) {
  if (!state.bands || typeof score !== "number") return null;
  if (score >= state.bands.identical) return "identical";
  if (score >= state.bands.duplicate) return "edited copy";
  if (score >= state.bands.similar) return "similar shot";
  return null;
}

/** The + and − buttons of a result (add it to the query as an example or a counter-example),
 * and ⧉ (its duplicates). */
function refineButtons(hit, name) {
  const box = document.createElement("div");
  box.className = "refine";
  if (state.bands) {
    const d = document.createElement("button");
    d.type = "button";
    d.className = "duplicates";
    d.textContent = "⧉";
    d.title = `Duplicates of ${name}`;
    d.setAttribute("aria-label", d.title);
    d.addEventListener("click", () => searchDuplicatesOf(hit.id, name));
    box.append(d);
  }
  for (const [sign, text, what] of [["positive", "+", "an example"], ["negative", "−", "a counter-example"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = sign;
    b.textContent = text;
    b.title = `Add ${name} to the query as ${what}`;
    b.setAttribute("aria-label", b.title);
    b.addEventListener("click", () => addExample(hit.id, name, sign));
    box.append(b);
  }
  return box;
}

/** Adds an indexed image to the query as an example or a counter-example, and searches again. */
function addExample(id, name, sign) {
  const other = sign === "positive" ? "negative" : "positive";
  const positives = query.positive.filter((e) => e.id !== id).length + (query.upload ? 1 : 0);
  if (sign === "negative" && positives === 0) {
    toast("Add an example (+) before a counter-example (−).", true);
    return;
  }
  query[other] = query[other].filter((e) => e.id !== id);
  if (!query[sign].some((e) => e.id === id)) query[sign].push({ id, name });
  searchByExamples();
}

/** Shows the query's examples as chips, each with a button that takes it out again. */
function renderExamples() {
  const chips = [];
  const chip = (label, sign, remove) => {
    const li = document.createElement("li");
    li.className = `chip ${sign}`;
    li.textContent = `${sign === "positive" ? "+" : "−"} ${label}`;
    const x = document.createElement("button");
    x.type = "button";
    x.textContent = "×";
    x.setAttribute("aria-label", `Take ${label} out of the query`);
    x.addEventListener("click", remove);
    li.append(x);
    chips.push(li);
  };
  if (query.upload) chip(query.upload.name || "the pasted image", "positive", () => { query.upload = null; searchByExamples(); });
  for (const sign of ["positive", "negative"]) {
    for (const e of query[sign]) {
      chip(e.name || `image ${e.id}`, sign, () => {
        query[sign] = query[sign].filter((x) => x.id !== e.id);
        searchByExamples();
      });
    }
  }
  els.examples.replaceChildren(...chips);
  els.examples.hidden = chips.length < 2 && query.negative.length === 0;
}

/** Searches with the query's examples: one POST with the upload and the ids. */
function searchByExamples() {
  if (!query.upload && query.positive.length === 0) {
    query.negative = [];
    renderExamples();
    return;
  }
  const form = new FormData();
  if (query.upload) form.append("image", query.upload, query.upload.name || "pasted-image");
  const ids = (list) => list.map((e) => e.id).join(",");
  if (query.positive.length) form.append("positive", ids(query.positive));
  if (query.negative.length) form.append("negative", ids(query.negative));
  form.append("k", els.k.value);
  if (!query.upload) {
    const hash = `#pos=${ids(query.positive)}` + (query.negative.length ? `&neg=${ids(query.negative)}` : "");
    if (location.hash !== hash) history.pushState(null, "", hash);
  }
  renderExamples();
  const names = (list) => list.map((e) => e.name || `image ${e.id}`).join(", ");
  const like = [query.upload && (query.upload.name || "the pasted image"), names(query.positive)].filter(Boolean).join(", ");
  const title = `Like ${like}` + (query.negative.length ? `, not like ${names(query.negative)}` : "");
  runSearch(title, () => api("/api/search", { method: "POST", body: formWithFilter(form) }));
}

/** Shows or hides cards by the slider, without asking the server again. */
function applyThreshold() {
  const t = Number(els.threshold.value);
  els.thresholdValue.value = t.toFixed(2);
  let shown = 0;
  let head = null;
  let headShown = 0;
  for (const li of els.results.children) {
    if (li.classList.contains("group-head")) {
      if (head) head.hidden = headShown === 0;
      head = li;
      headShown = 0;
      continue;
    }
    const s = Number(li.dataset.score);
    const keep = state.higherIsCloser ? s >= t : s <= t;
    li.hidden = !keep;
    if (keep) {
      shown += 1;
      headShown += 1;
    }
  }
  if (head) head.hidden = headShown === 0;
  const total = state.hits.length;
  if (total === 0) return;
  els.info.textContent = shown === total ? `${total} result${total === 1 ? "" : "s"}` : `${shown} of ${total} shown (threshold ${t.toFixed(2)})`;
  if (shown === 0) {
    showMessage("No result passes the threshold", "Move the slider to let more results through.");
  } else {
    els.message.hidden = true;
  }
}

function render(hits, title, tookMs) {
  state.hits = hits;
  els.results.replaceChildren(...hits.map((h, i) => card(h, i + 1)));
  els.title.textContent = title;
  if (state.metric !== "cosine") configureSlider();
  if (hits.length === 0) {
    els.info.textContent = "";
    showMessage("No similar images found", "Try another picture or other words, or lower the threshold.");
  } else {
    applyThreshold();
    if (tookMs !== undefined) els.info.textContent += ` · ${tookMs.toFixed(0)} ms`;
  }
}

/** The filters' JSON (conditions combined with "and"), or null when none is set. */
function currentFilter() {
  const all = [];
  const folder = els.filterFolder.value.trim().replace(/(.)[\\/]+$/, "$1");
  if (folder) all.push({ eq: { field: "dirs", value: folder } });
  const tag = els.filterTag.value.trim().toLowerCase();
  if (tag) all.push({ eq: { field: "tags", value: tag } });
  const from = els.filterFrom.value;
  const to = els.filterTo.value;
  if (from || to) {
    const range = { field: "taken" };
    if (from) range.gte = from;
    // "to" includes its whole day.
    if (to) range.lt = new Date(Date.parse(to) + 86400000).toISOString().slice(0, 10);
    all.push({ range });
  }
  if (all.length === 0) return null;
  return JSON.stringify(all.length === 1 ? all[0] : { and: all });
}

/** A search URL with the filters added. */
function withFilter(url) {
  const f = currentFilter();
  return f ? `${url}&filter=${encodeURIComponent(f)}` : url;
}

/** A search form with the filters set (or taken out), ready to send again. */
function formWithFilter(form) {
  const f = currentFilter();
  if (f) form.set("filter", f);
  else form.delete("filter");
  return form;
}

/** Runs one search; a newer search makes the answer of an older one be ignored. */
async function runSearch(title, request) {
  rerun = () => runSearch(title, request);
  const seq = ++state.seq;
  state.libraryNext = null;
  els.moreBtn.hidden = true;
  els.results.setAttribute("aria-busy", "true");
  els.title.textContent = title;
  els.info.textContent = "Searching…";
  try {
    const body = await request();
    if (seq !== state.seq) return;
    render(body.hits, title, body.took_ms);
  } catch (err) {
    if (seq !== state.seq) return;
    state.hits = [];
    els.results.replaceChildren();
    els.info.textContent = "";
    showMessage("Search failed", err.message, true);
  } finally {
    if (seq === state.seq) els.results.removeAttribute("aria-busy");
  }
}

function setPreview(src, alt) {
  if (state.previewUrl && state.previewUrl !== src) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = src && src.startsWith("blob:") ? src : null;
  els.preview.hidden = !src;
  if (src) {
    els.preview.src = src;
    els.preview.alt = alt || "Query image";
  }
  els.dropzone.classList.toggle("has-preview", !!src);
}

function searchByFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    toast(`“${file.name}” is not an image.`, true);
    return;
  }
  setPreview(URL.createObjectURL(file), file.name);
  history.replaceState(null, "", location.pathname);
  query = { upload: file, positive: [], negative: [] };
  renderExamples();
  const form = new FormData();
  form.append("image", file, file.name || "pasted-image");
  form.append("k", els.k.value);
  runSearch(`Similar to ${file.name || "the pasted image"}`, () => api("/api/search", { method: "POST", body: formWithFilter(form) }));
}

function searchById(id, thumbUrl, name) {
  setPreview(thumbUrl || `/api/images/${id}/thumbnail`, name);
  if (location.hash !== `#id=${id}`) history.pushState(null, "", `#id=${id}`);
  query = { upload: null, positive: [{ id, name }], negative: [] };
  renderExamples();
  runSearch(`Similar to ${name || `image ${id}`}`, () => api(withFilter(`/api/search?id=${encodeURIComponent(id)}&k=${els.k.value}`)));
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function searchByText(text) {
  const words = text.trim();
  if (!words) {
    els.textInput.focus();
    return;
  }
  setPreview(null);
  query = { upload: null, positive: [], negative: [] };
  renderExamples();
  const hash = `#text=${encodeURIComponent(words)}`;
  if (location.hash !== hash) history.pushState(null, "", hash);
  runSearch(`Images matching “${words}”`, () => api(withFilter(`/api/search?text=${encodeURIComponent(words)}&k=${els.k.value}`)));
}

/** The images within the duplicate band of an indexed image. */
function searchDuplicatesOf(id, name) {
  setPreview(`/api/images/${id}/thumbnail`, name);
  query = { upload: null, positive: [{ id, name }], negative: [] };
  renderExamples();
  const url = `/api/search?id=${encodeURIComponent(id)}&threshold=${state.bands.duplicate}&k=${els.k.value}`;
  runSearch(`Duplicates of ${name || `image ${id}`}`, () => api(withFilter(url)));
  window.scrollTo({ top: 0, behavior: "smooth" });
}

/** Every group of duplicates in the library, largest first, each image with its band. */
async function showDuplicates() {
  const seq = ++state.seq;
  rerun = null;
  state.libraryNext = null;
  els.moreBtn.hidden = true;
  query = { upload: null, positive: [], negative: [] };
  renderExamples();
  setPreview(null);
  els.title.textContent = "Duplicates";
  els.info.textContent = "Looking for duplicates…";
  els.message.hidden = true;
  els.results.setAttribute("aria-busy", "true");
  try {
    const body = await api(`/api/dedup?threshold=${state.bands.duplicate}`);
    if (seq !== state.seq) return;
    const items = [];
    const hits = [];
    body.groups.forEach((group, i) => {
      const head = document.createElement("li");
      head.className = "group-head";
      head.textContent = `Group ${i + 1} · ${group.length} images`;
      items.push(head);
      for (const h of group) {
        const hit = { ...h, thumbnail_url: `/api/images/${h.id}/thumbnail`, image_url: `/api/images/${h.id}/original` };
        hits.push(hit);
        items.push(card(hit, hits.length));
      }
    });
    state.hits = hits;
    els.results.replaceChildren(...items);
    if (hits.length === 0) {
      els.info.textContent = "";
      showMessage("No duplicates found", "No two images are copies or edited copies of each other.");
    } else {
      applyThreshold();
      els.info.textContent = `${body.groups.length} group${body.groups.length === 1 ? "" : "s"} of duplicates, ${hits.length} images`;
    }
  } catch (err) {
    if (seq !== state.seq) return;
    showMessage("Could not look for duplicates", err.message, true);
  } finally {
    if (seq === state.seq) els.results.removeAttribute("aria-busy");
  }
}

/** Arrow keys move between results (a grid, so up and down skip a row); +, − and d act on the
 * focused result as its buttons do. */
function onResultsKey(e) {
  const cardEl = e.target.closest && e.target.closest(".card");
  if (!cardEl || e.altKey || e.ctrlKey || e.metaKey) return;
  const cards = Array.from(els.results.querySelectorAll(".card:not([hidden])"));
  const at = cards.indexOf(cardEl);
  if (at < 0) return;
  const top = cards[0].offsetTop;
  const columns = Math.max(1, cards.filter((c) => c.offsetTop === top).length);
  const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -at, End: cards.length - 1 - at }[e.key];
  const press = (selector) => {
    const b = cardEl.querySelector(selector);
    if (b) b.click();
  };
  if (move !== undefined) {
    const next = cards[Math.max(0, Math.min(cards.length - 1, at + move))];
    next.querySelector("button").focus();
    e.preventDefault();
  } else if (e.key === "+" && e.target.tagName === "BUTTON") {
    press(".refine button.positive");
  } else if (e.key === "-" && e.target.tagName === "BUTTON") {
    press(".refine button.negative");
  } else if (e.key === "d" && e.target.tagName === "BUTTON") {
    press(".refine button.duplicates");
  }
}

/** Restores a search from the address (#id=.., #pos=..&neg=.. or #text=..), so back and forward
 * work. */
function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("id")) {
    const id = params.get("id");
    // The address holds only the id; the record names the query image (an unknown id is
    // reported by the search itself).
    api(`/api/images/${encodeURIComponent(id)}`)
      .then((r) => baseName(r.path), () => null)
      .then((name) => searchById(id, null, name));
  } else if (params.get("pos")) {
    // Names are not in the address; the chips show ids until a search by one image names it.
    const list = (key) => (params.get(key) || "").split(",").filter((x) => /^\d+$/.test(x)).map((id) => ({ id: Number(id), name: null }));
    query = { upload: null, positive: list("pos"), negative: list("neg") };
    setPreview(null);
    searchByExamples();
  } else if (params.get("text")) {
    els.textInput.value = params.get("text");
    searchByText(params.get("text"));
  }
}

async function uploadFiles(files) {
  const list = Array.from(files || []);
  if (list.length === 0) return;
  els.uploadBtn.disabled = true;
  let ok = 0;
  const failures = [];
  for (const [i, file] of list.entries()) {
    els.uploadBtn.textContent = `Adding ${i + 1}/${list.length}…`;
    const form = new FormData();
    form.append("image", file, file.name);
    try {
      await api("/api/images", { method: "POST", body: form });
      ok += 1;
    } catch (err) {
      failures.push(`${file.name}: ${err.message}`);
    }
  }
  els.uploadBtn.disabled = false;
  els.uploadBtn.textContent = "Add images…";
  els.uploadInput.value = "";
  if (failures.length) toast(`Added ${ok}, failed ${failures.length}. ${failures[0]}`, true);
  else toast(`Added ${ok} image${ok === 1 ? "" : "s"} to the index.`);
  loadStatus();
}

function firstImageFile(dataTransfer) {
  if (!dataTransfer) return null;
  const files = Array.from(dataTransfer.files || []);
  const file = files.find((f) => !f.type || f.type.startsWith("image/"));
  if (file) return file;
  for (const item of Array.from(dataTransfer.items || [])) {
    if (item.kind === "file") return item.getAsFile();
  }
  return files[0] || null;
}

/** Shows every indexed image, newest first, a page at a time ("Show more" adds the next). */
async function showLibrary(more) {
  const seq = more ? state.seq : ++state.seq;
  const after = more && state.libraryNext ? `&after=${encodeURIComponent(state.libraryNext)}` : "";
  if (!more) {
    rerun = null;
    query = { upload: null, positive: [], negative: [] };
    renderExamples();
    els.title.textContent = "Library";
    els.info.textContent = "Loading…";
    els.message.hidden = true;
    els.results.setAttribute("aria-busy", "true");
  }
  try {
    const body = await api(`/api/library?limit=${els.k.value}${after}`);
    if (seq !== state.seq) return;
    if (!more) {
      state.hits = [];
      els.results.replaceChildren();
    }
    const start = els.results.children.length;
    els.results.append(...body.images.map((img, i) => card(img, start + i + 1)));
    state.libraryNext = body.next;
    els.moreBtn.hidden = !body.next;
    const shown = els.results.children.length;
    els.info.textContent = `${shown} of ${body.total} image${body.total === 1 ? "" : "s"}, newest first`;
    if (body.total === 0) showMessage("The library is empty", "Index a folder with `imgsearch index <folder>`, or use “Add images…” above.");
  } catch (err) {
    if (seq !== state.seq) return;
    showMessage("Cannot list the library", err.message, true);
  } finally {
    if (seq === state.seq) els.results.removeAttribute("aria-busy");
  }
}

/**
 * Follows the running indexing job, if any: a progress bar until it ends, then a new status
 * (also when `refresh` asks for one, after a job this page started that may already be over).
 */
async function watchJobs(refresh) {
  clearTimeout(state.jobTimer);
  let running = null;
  try {
    const body = await api("/api/jobs");
    running = (body.jobs || []).find((j) => j.state === "running") || null;
  } catch (err) {
    running = null;
  }
  if (running) {
    els.job.hidden = false;
    const total = running.total ?? 0;
    els.jobProgress.max = Math.max(1, total);
    els.jobProgress.value = running.done;
    els.jobInfo.textContent = total ? `Indexing: ${running.done} of ${total} files` : "Indexing: looking for new and changed files…";
    state.jobTimer = setTimeout(() => watchJobs(true), 1000);
  } else {
    els.job.hidden = true;
    if (refresh) loadStatus();
  }
}

async function rescan() {
  try {
    await api("/api/libraries/rescan", { method: "POST" });
    toast("Rescanning the library folders.");
  } catch (err) {
    // A job already running (often the watcher's, for the same folders) is not a failure.
    if (err.code === "job_running") toast("A job is already indexing; rescan again when it ends if it does not cover your folders.");
    else toast(err.message, true);
  }
  watchJobs(true);
}

function wireEvents() {
  els.dropzone.addEventListener("click", () => els.fileInput.click());
  els.dropzone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      els.fileInput.click();
    }
  });
  els.fileInput.addEventListener("change", () => {
    searchByFile(els.fileInput.files[0]);
    els.fileInput.value = "";
  });

  // The whole window accepts drops, so a photo can land anywhere on the page.
  let depth = 0;
  window.addEventListener("dragenter", (e) => {
    e.preventDefault();
    depth += 1;
    document.body.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) document.body.classList.remove("dragging");
  });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    const file = firstImageFile(e.dataTransfer);
    if (file) searchByFile(file);
    else toast("Drop an image file to search.", true);
  });
  window.addEventListener("paste", (e) => {
    const file = firstImageFile(e.clipboardData);
    if (file) {
      e.preventDefault();
      searchByFile(file);
    }
  });

  els.textForm.addEventListener("submit", (e) => {
    e.preventDefault();
    searchByText(els.textInput.value);
  });
  els.threshold.addEventListener("input", () => {
    els.threshold.dataset.touched = "1";
    applyThreshold();
  });
  els.k.addEventListener("change", () => toast(`The next search returns up to ${els.k.value} results.`));
  els.uploadBtn.addEventListener("click", () => els.uploadInput.click());
  els.uploadInput.addEventListener("change", () => uploadFiles(els.uploadInput.files));
  window.addEventListener("popstate", fromHash);
  els.libraryBtn.addEventListener("click", () => showLibrary(false));
  els.moreBtn.addEventListener("click", () => showLibrary(true));
  els.rescanBtn.addEventListener("click", rescan);
  els.duplicatesBtn.addEventListener("click", showDuplicates);
  els.results.addEventListener("keydown", onResultsKey);
  // A changed filter applies to the search on screen at once.
  for (const input of [els.filterFolder, els.filterTag, els.filterFrom, els.filterTo]) {
    input.addEventListener("change", () => {
      if (rerun) rerun();
    });
  }
}

wireEvents();
configureSlider();
loadStatus().then(fromHash);
watchJobs(false);
