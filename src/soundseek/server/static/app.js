// soundseek web page: plain JS, no dependencies, works offline.
"use strict";

const $ = (sel) => document.querySelector(sel);
const form = $("#search-form");
const input = $("#q");
const kSelect = $("#k");
const searchBtn = $("#search-btn");
const drop = $("#drop");
const fileInput = $("#file");
const pickBtn = $("#pick-btn");
const message = $("#message");
const resultsTitle = $("#results-title");
const resultsList = $("#results");
const template = $("#hit-template");
const modeSelect = $("#mode");
const minDur = $("#min-duration");
const maxDur = $("#max-duration");
const channelsSelect = $("#channels");
const formatSelect = $("#format");
const facetsLine = $("#facets");

let hasTextModel = true;
let requestSeq = 0; // only the latest request may render
// what the list shows, so that changing a filter re-runs that very search: a text search,
// "more like this" (its hit) or an uploaded sound (its file)
let view = { kind: "text" };

function showMessage(text, kind = "info") {
  message.textContent = text;
  message.className = `message ${kind}`;
  message.hidden = !text;
}

// A long path shortened in the middle: "/data/sfx/…/swords/a" (the hover text of a folder).
function shortPath(path, max = 64) {
  if (!path || path.length <= max) return path || "";
  const keep = max - 1;
  return `${path.slice(0, Math.ceil(keep * 0.4))}…${path.slice(path.length - Math.floor(keep * 0.6))}`;
}

function parentPath(path) {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i > 0 ? path.slice(0, i) : path;
}

// What to show as each hit's folder: its folder's name, and where two hits of the same file
// name would still look alike ("Pack A/Swords", "Pack B/Swords"), as much more of the folder
// path as tells them apart (only when the server shows paths).
function folderLabels(hits) {
  const parts = hits.map((h) => (h.path ? parentPath(h.path).split(/[\\/]/).filter(Boolean) : null));
  const depth = hits.map(() => 1);
  const label = (i) => (parts[i] ? parts[i].slice(-depth[i]).join("/") : hits[i].folder || "");
  for (let round = 0; round < 8; round++) {
    const seen = new Map();
    hits.forEach((h, i) => {
      const key = `${h.name}\u0000${label(i)}`;
      seen.set(key, [...(seen.get(key) || []), i]);
    });
    let grew = false;
    for (const same of seen.values()) {
      if (same.length < 2) continue;
      for (const i of same) if (parts[i] && depth[i] < parts[i].length) { depth[i]++; grew = true; }
    }
    if (!grew) break;
  }
  return hits.map((_, i) => label(i));
}

function fmtSeconds(s) {
  // whole seconds are rounded first, so 119.8 s reads 2:00 min, never 1:60 min; an hour or more
  // reads h:mm:ss, as the player beside it does
  if (s == null) return "";
  if (s < 59.95) return `${s.toFixed(1)} s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const r = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r} min`;
}

async function fetchJSON(url, options) {
  const resp = await fetch(url, options);
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const err = new Error((body && body.detail) || `request failed (HTTP ${resp.status})`);
    err.code = body && body.error;
    err.status = resp.status;
    throw err;
  }
  return body;
}

// What a hit's score means (its hover text): it depends on what was asked
const TEXT_SCORE = "0–1: how well the sound, and the file's name, folders and tags, match the words searched for";

function scoreHint(data) {
  const cosine = "(cosine of the two sounds' audio vectors; 1.0: the same sound)";
  if (data.mode === "audio") return `How much it sounds like ${data.filename || "the uploaded sound"} ${cosine}`;
  if (data.mode === "similar") return `How much it sounds like ${data.source ? data.source.name : "the chosen sound"} ${cosine}`;
  if (data.search_mode === "content") return "0–1: how likely the sound is what the words describe (the sound only)";
  if (data.search_mode === "metadata") return "0–1: how much of the query the file's name, folders and tags hold (not the sound)";
  return TEXT_SCORE;
}

function renderResults(data, title) {
  resultsList.replaceChildren();
  resultsTitle.textContent = title;
  resultsTitle.hidden = false;
  // the filter counts are for text searches that found something: with no result, counts of the
  // whole library would read as counts of the results
  showFacets(data.mode === "text" && data.results.length ? data.facets : null);
  if (!data.results.length) {  // a filter no file passes says so ("no indexed file has format mp4")
    showMessage(data.note ? `No sounds matched: ${data.note}.`
                          : "No sounds matched. Try other words, or search with an audio file.", "warn");
    return;
  }
  showMessage("");
  const folders = folderLabels(data.results);
  const hint = scoreHint(data);
  data.results.forEach((hit, i) => resultsList.appendChild(renderHit(hit, i + 1, folders[i], hint)));
}

// The "+N copies" list: each near-identical file, whether it is still on disk, and a labelled
// link that opens it in a new tab (the results stay where they are)
function renderCopies(copies) {
  const box = document.createElement("details");
  box.className = "copies";
  const summary = document.createElement("summary");
  summary.className = "badge";
  const missing = copies.filter((c) => c.available === false).length;
  summary.textContent = `+${copies.length} ${copies.length === 1 ? "copy" : "copies"}` +
    (missing ? ` (${missing} missing)` : "");
  summary.title = "near-identical files: another format, gain, trim or sample rate";
  box.appendChild(summary);
  const list = document.createElement("ul");
  for (const c of copies) {
    const item = document.createElement("li");
    const label = c.folder ? `${c.folder}/${c.name}` : c.name;
    const name = document.createElement("span");
    name.className = "copy-name";
    name.textContent = label;
    if (c.path) name.title = c.path;
    item.appendChild(name);
    item.append(" ");
    if (c.available === false) {
      item.classList.add("missing");
      const gone = document.createElement("span");
      gone.className = "copy-gone";
      gone.textContent = "file missing";
      gone.title = "moved or deleted since indexing (run soundseek index again)";
      item.appendChild(gone);
    } else {
      const link = document.createElement("a");
      link.href = c.audio_url;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "open ↗";
      link.setAttribute("aria-label", `Open ${label} in a new tab`);
      link.title = "the file itself, in a new tab";
      item.appendChild(link);
    }
    list.appendChild(item);
  }
  box.appendChild(list);
  return box;
}

function renderHit(hit, rank, folderLabel = hit.folder, hint = TEXT_SCORE) {
  const li = template.content.firstElementChild.cloneNode(true);
  li.dataset.id = hit.id;
  li.querySelector(".rank").textContent = `${rank}.`;
  const name = li.querySelector(".name");
  name.textContent = hit.name;
  if (hit.path) name.title = hit.path;
  // the folder tells apart files with the same name ("swordman_attack12.wav" in two packs)
  const folder = li.querySelector(".folder");
  folder.textContent = folderLabel || "";
  if (folderLabel && hit.path) folder.title = shortPath(parentPath(hit.path));
  li.querySelector(".score").textContent = `score ${hit.score.toFixed(3)}`;
  li.querySelector(".score").title = hint;
  li.querySelector(".duration").textContent = hit.duration != null ? fmtSeconds(hit.duration) : "";
  // which signals matched: the sound (content), and/or words of the name, folder or tags; the
  // words are the query words the metadata search matched (never a stop word such as "a")
  const signals = (hit.matched || []).filter((m) => m !== "hybrid");
  if (signals.length && !(signals.length === 1 && signals[0] === "content")) {
    const words = (hit.words || []).length ? `: ${hit.words.join(", ")}` : "";
    const matched = li.querySelector(".matched");
    const label = { content: "sound", meaning: "what the name means", memory: "named files that sound alike" };
    matched.textContent = `matched ${signals.map((m) => label[m] || m).join(" + ")}${words}`;
    if (hit.snippet) matched.title = hit.snippet;
  }

  // near-identical files (another format, gain, trim, rate) collapsed into this row
  const copies = hit.copies || [];
  if (copies.length) li.querySelector(".hit-meta").appendChild(renderCopies(copies));

  // what the window sounds like (AudioSet classes of the yamnet expert): why it matched
  const tags = hit.tags || [];
  if (tags.length) {
    const box = li.querySelector(".hit-tags");
    for (const t of tags) {
      const chip = document.createElement("span");
      chip.className = "tag";
      chip.textContent = t.name;
      chip.title = `probability ${t.score.toFixed(2)}`;
      box.appendChild(chip);
    }
    box.hidden = false;
  }

  const img = li.querySelector(".wave-img");
  const audio = li.querySelector(".player");
  audio.setAttribute("aria-label", `Play ${hit.name}`);
  // one Tab stop per row for playing: the native player (about six stops) stays for the mouse and
  // screen readers, out of the Tab order; ← and → on the button skip 5 s
  const play = li.querySelector(".play");
  const showPlaying = () => {
    play.textContent = audio.paused ? "▶ Play" : "❚❚ Pause";
    play.setAttribute("aria-label", `${audio.paused ? "Play" : "Pause"} ${hit.name}`);
  };
  showPlaying();
  ["play", "pause", "ended"].forEach((t) => audio.addEventListener(t, showPlaying));
  play.addEventListener("click", () => { if (audio.paused) audio.play().catch(() => {}); else audio.pause(); });
  play.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowLeft" && ev.key !== "ArrowRight") return;
    ev.preventDefault();
    const end = Number.isFinite(audio.duration) ? audio.duration : hit.duration || 0;
    audio.currentTime = Math.max(0, Math.min(end, audio.currentTime + (ev.key === "ArrowLeft" ? -5 : 5)));
  });
  // a file deleted or moved since indexing: say so instead of a broken waveform and player
  const note = li.querySelector(".gone");
  const markMissing = (stale) => {
    li.classList.add("missing");
    li.querySelector(".wave").hidden = true;
    audio.hidden = true;
    play.hidden = true;
    audio.removeAttribute("src");
    note.textContent = stale
      ? "This result is out of date: the file was indexed again or removed since this search (search again)"
      : "File missing: moved or deleted since indexing (run soundseek index again)";
    note.hidden = false;
  };
  if (hit.available === false) {
    markMissing();
  } else {
    img.src = hit.waveform_url;
    img.alt = `Waveform of ${hit.name}`;
    audio.src = hit.audio_url;
    // the player failed: the file went away since the search answered (404), or this browser
    // cannot decode its format (AIFF in chromium, for one)
    audio.addEventListener("error", async () => {
      // one byte, or the error's JSON: "unknown_id" (indexed again under a new id, or removed)
      // is not "audio_missing" (the file itself is gone)
      let status = 0, code = "";
      try {
        const resp = await fetch(hit.audio_url, { headers: { Range: "bytes=0-0" } });
        status = resp.status;
        if (status === 404) code = ((await resp.json().catch(() => ({}))).error) || "";
      } catch (_) { /* offline */ }
      if (status === 404) { markMissing(code === "unknown_id"); return; }
      audio.hidden = true;  // a dead player: offer the file itself
      play.hidden = true;
      note.textContent = "This browser cannot play this file's format. ";
      const link = document.createElement("a");
      link.href = hit.audio_url;
      link.download = hit.name;
      link.textContent = "Download it";
      note.appendChild(link);
      note.hidden = false;
    });
  }

  // A long file: show and start at the best-matching window.
  const dur = hit.duration || 0;
  const hasWindow = hit.start != null && hit.end != null && dur > 0 && (hit.end - hit.start) < dur - 0.05;
  if (hasWindow) {
    li.querySelector(".match").textContent = `best match ${fmtSeconds(hit.start)} – ${fmtSeconds(hit.end)}`;
    const win = li.querySelector(".window");
    win.style.left = `${(100 * hit.start) / dur}%`;
    win.style.width = `${(100 * (hit.end - hit.start)) / dur}%`;
    win.hidden = false;
    let positioned = false;
    audio.addEventListener("loadedmetadata", () => {
      if (!positioned) { positioned = true; audio.currentTime = hit.start; }
    });
    li.dataset.start = hit.start;
    // other moments of the same file (the page asks for 3): those that score at least a quarter
    // of the best (and 0.1), as buttons that play from there, and marked on the waveform
    const best = (hit.moments || [])[0];
    const more = (hit.moments || []).slice(1).filter((m) => best && m.score >= Math.max(0.1, 0.25 * best.score));
    if (more.length) {
      const match = li.querySelector(".match");
      match.append(" · also at ");
      more.forEach((m, i) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "moment";
        b.textContent = fmtSeconds(m.start);
        b.setAttribute("aria-label", `play ${hit.name} from ${fmtSeconds(m.start)}`);
        b.addEventListener("click", () => { audio.currentTime = m.start; audio.play().catch(() => {}); });
        if (i) match.append(", ");
        match.append(b);
        const mark = win.cloneNode(false);
        mark.classList.add("other");
        mark.style.left = `${(100 * m.start) / dur}%`;
        mark.style.width = `${(100 * (m.end - m.start)) / dur}%`;
        win.after(mark);
      });
    }
  }

  // Click on the waveform: play from there.
  li.querySelector(".wave").addEventListener("click", (ev) => {
    if (!dur) return;
    const rect = ev.currentTarget.getBoundingClientRect();
    audio.currentTime = Math.max(0, Math.min(dur, (dur * (ev.clientX - rect.left)) / rect.width));
    audio.play().catch(() => {});
  });

  const similar = li.querySelector(".similar");
  similar.setAttribute("aria-label", `More sounds like ${hit.name}`);
  similar.addEventListener("click", () => moreLikeThis(hit));
  return li;
}

let pendingKey = null; // the search under way: the same one is not sent twice

// key: what is asked (the same key as the search under way: nothing is sent; Enter in a filter
// box fires both "change" and "submit", and a second answer would replace the list, and its
// players, the user may already be using)
async function run(title, pending, request, key = null) {
  if (key !== null && key === pendingKey) return;
  const seq = ++requestSeq;
  pendingKey = key;
  refreshStats();  // the server reloads a re-indexed library live: the header follows it
  showMessage(pending);
  document.body.setAttribute("aria-busy", "true");
  try {
    const data = await request();
    if (seq !== requestSeq) return;
    renderResults(data, title(data));
  } catch (err) {
    if (seq !== requestSeq) return;
    resultsList.replaceChildren();
    resultsTitle.hidden = true;
    showFacets(null);
    showMessage(err.message, err.status >= 500 ? "error" : "warn");
  } finally {
    if (seq === requestSeq) { document.body.removeAttribute("aria-busy"); pendingKey = null; }
  }
}

// ---- the page's state in its URL -------------------------------------------------------------
// /?q=rain&k=20&mode=content&min_duration=1&max_duration=6&channels=1  a text search and its filters
// /?like=17&k=20&max_duration=2                                     "more like this" item 17, under 2 s
// /?like=17&from=3700&to=3710                                        ... like its stretch 3700-3710 s
// A new search or "more like this" adds a history entry (the back button returns to the last
// one); changing a filter replaces the current entry.  Loading such a URL runs it again.
// The filters apply to every kind of search; the match mode to text searches only.
const FILTERS = [["mode", modeSelect], ["min_duration", minDur], ["max_duration", maxDur], ["channels", channelsSelect],
                 ["format", formatSelect]];

function filterParams(params, text) {
  for (const [key, el] of FILTERS) if (el.value !== "" && (text || key !== "mode")) params.set(key, el.value);
  return params;
}

function stateUrl({ q = "", like = null, from = null, to = null } = {}) {
  const params = new URLSearchParams();
  if (like != null) {
    params.set("like", String(like));
    if (from != null && to != null) { params.set("from", String(from)); params.set("to", String(to)); }
  } else if (q) params.set("q", q);
  if (kSelect.value !== "10") params.set("k", kSelect.value);
  filterParams(params, like == null);
  const url = new URL(location.href);
  url.search = params.toString();
  return url;
}

function saveState(state, how) {
  if (how === "none") return;
  const url = stateUrl(state);
  if (url.href === location.href) return;
  if (how === "push") history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function setSelect(el, value) {
  // only a value the control offers; anything else leaves the default
  if ([...el.options].some((o) => o.value === value)) el.value = value;
}

function setFormat(value) {
  // a format the list does not offer (?format=w64) joins it, as the API takes any extension
  const v = (value || "").toLowerCase();
  if (/^[a-z0-9]{1,16}$/.test(v) && ![...formatSelect.options].some((o) => o.value === v)) {
    formatSelect.add(new Option(v.toUpperCase(), v));
  }
  setSelect(formatSelect, v);
}

function setK(value) {
  // a number of results the API takes (1..100) but the list does not offer (?k=30) joins the list
  const n = Number(value);
  if (Number.isInteger(n) && n >= 1 && n <= 100 && ![...kSelect.options].some((o) => o.value === String(n))) {
    const opt = new Option(String(n), String(n));
    const after = [...kSelect.options].find((o) => Number(o.value) > n);
    kSelect.add(opt, after || null);
  }
  setSelect(kSelect, String(value));
}

// Put the URL's state into the controls and run its search (on load and on back/forward).
function restoreState() {
  const params = new URL(location.href).searchParams;
  setK(params.get("k") || "10");
  for (const [key, el] of FILTERS) {
    const v = params.get(key) || "";
    if (el === formatSelect) { el.value = ""; setFormat(v); }
    else if (el.tagName === "SELECT") { el.value = ""; setSelect(el, v); }
    else el.value = v !== "" && Number.isFinite(Number(v)) && Number(v) >= 0 ? v : "";
  }
  const like = params.get("like");
  const q = params.get("q") || "";
  input.value = q;
  if (like && /^[0-9]{1,18}$/.test(like)) {
    const from = Number(params.get("from")), to = Number(params.get("to"));
    const span = params.has("from") && Number.isFinite(from) && Number.isFinite(to) && from >= 0 && to > from
      ? { start: from, end: to } : {};
    moreLikeThis({ id: like, name: `item ${like}`, similar_url: `/api/items/${like}/similar`, ...span }, "none");
  } else if (q.trim()) {
    textSearch(q, "none");
  } else {
    view = { kind: "text" };
    requestSeq++; // a search still under way must not render
    resultsList.replaceChildren();
    resultsTitle.hidden = true;
    facetsLine.textContent = "";
    if (hasTextModel) showMessage("");
    document.body.removeAttribute("aria-busy");
  }
}

// how: "push" (a new search), "replace" (a filter changed), "none" (restoring the URL's state)
function textSearch(q, how = "push") {
  view = { kind: "text" };  // (also when it stops below: a filter change must not re-run an older upload)
  q = q.trim();
  if (!q) { showMessage("Type what you want to hear, e.g. “rain on a window”.", "warn"); input.focus(); return; }
  if (!hasTextModel) { showNoTextModel(); return; }
  saveState({ q }, how);
  const k = kSelect.value;
  const params = filterParams(new URLSearchParams({ q, k, moments: "3" }), true);
  params.set("facets", "true");
  const url = `/api/search?${params}`;
  run((d) => `${d.count} result${d.count === 1 ? "" : "s"} for “${q}”`, "Searching…",
      () => fetchJSON(url), url);
}

function showFacets(facets) {
  // how many sounds each filter value would leave (the other filters applied)
  if (!facets) { facetsLine.textContent = ""; return; }
  const ch = facets.channels || {};
  const parts = [];
  if (ch["1"] != null) parts.push(`${ch["1"]} mono`);
  if (ch["2"] != null) parts.push(`${ch["2"]} stereo`);
  const dur = Object.entries(facets.duration || {}).map(([b, n]) => `${n} ${b}`);
  facetsLine.textContent = [...parts, ...dur].join(" · ");
}

function moreLikeThis(hit, how = "push") {
  const k = kSelect.value;
  // a hit of a long file: like its matching stretch, not like the whole recording
  const span = hit.start != null && hit.end != null ? { from: hit.start, to: hit.end } : {};
  view = { kind: "like", hit };
  saveState({ like: hit.id, ...span }, how);
  const at = span.from != null ? ` ${fmtSeconds(span.from)} – ${fmtSeconds(span.to)}` : "";
  const params = new URLSearchParams({ k });
  if (span.from != null) { params.set("start", span.from); params.set("end", span.to); }
  filterParams(params, false);
  // the title names the source as the answer describes it (a restored URL knows only its id)
  run((d) => `More like ${(d.source || hit).name}${at}`, `Finding sounds like ${hit.name}${at}…`,
      () => fetchJSON(`${hit.similar_url}?${params}`)).then(() => { if (how !== "replace") resultsTitle.focus(); });
}

function audioSearch(file, how = "push") {
  if (!file) return;
  const body = new FormData();
  body.append("file", file, file.name);
  const k = kSelect.value;
  view = { kind: "upload", file };
  saveState({}, how); // an uploaded file cannot be in the URL: it no longer shows the last search
  const params = filterParams(new URLSearchParams({ k }), false);
  run(() => `Sounds like ${file.name}`, `Listening to ${file.name}…`,
      () => fetchJSON(`/api/search/audio?${params}`, { method: "POST", body }));
}

function showNoTextModel() {
  showMessage("This index has no text model, so text search is unavailable. " +
              "You can still search with a sound: drop an audio file below or choose one.", "warn");
}

// ---- wiring --------------------------------------------------------------------------------
form.addEventListener("submit", (ev) => { ev.preventDefault(); textSearch(input.value); });
// changing a filter or the number of results re-runs what the list shows (a text search, "more
// like this", an upload); the match mode is for text searches only
[kSelect, modeSelect, channelsSelect, formatSelect, minDur, maxDur].forEach((el) => el.addEventListener("change", () => {
  if (view.kind === "like") { if (el !== modeSelect) moreLikeThis(view.hit, "replace"); }
  else if (view.kind === "upload") { if (el !== modeSelect) audioSearch(view.file, "replace"); }
  else if (input.value.trim() && hasTextModel) textSearch(input.value, "replace");
}));
pickBtn.addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => { audioSearch(fileInput.files[0]); fileInput.value = ""; });
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => {
  ev.preventDefault(); drop.classList.add("over");
}));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  const file = ev.dataTransfer && ev.dataTransfer.files[0];
  if (file) audioSearch(file);
});
// Dropping a file anywhere else must not navigate away from the page.
window.addEventListener("dragover", (ev) => ev.preventDefault());
window.addEventListener("drop", (ev) => ev.preventDefault());
window.addEventListener("popstate", restoreState);
resultsTitle.tabIndex = -1;

// "N sounds indexed": on load, and again with every search (a re-index shows without a reload)
function showStats(h) {
  const text = `${h.items} sound${h.items === 1 ? "" : "s"} indexed` + (hasTextModel ? "" : " · audio search only");
  const stats = $("#stats");
  if (stats.textContent !== text) stats.textContent = text;  // (a live region: only a change is read out)
}

function refreshStats() {
  fetchJSON("/api/health").then(showStats, () => { /* the search itself reports a dead server */ });
}

async function init() {
  try {
    const h = await fetchJSON("/api/health");
    hasTextModel = h.has_text_model;
    showStats(h);
  } catch (err) {
    $("#stats").textContent = "";
    showMessage(`Cannot reach the server: ${err.message}`, "error");
    return;
  }
  if (!hasTextModel) {
    input.disabled = true;
    searchBtn.disabled = true;
    input.placeholder = "Text search unavailable: no text model";
    $("#q-hint").textContent = "Search with a sound:";
    showNoTextModel();
    pickBtn.focus();
    if (new URL(location.href).searchParams.get("like")) restoreState(); // "more like this" needs no text model
    return;
  }
  restoreState();
  input.focus();
}

init();
