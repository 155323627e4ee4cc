// End-to-end check of the soundseek page in headless Debian chromium (playwright-core).
//
//   node e2e.mjs --url http://127.0.0.1:PORT --query "dog barking" --upload clip.flac \
//                --screenshot out.png [--expect-no-text-model]
//
// Prints one JSON line with what it saw; exits 1 on the first failed check.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function args() {
  const out = { query: "dog barking", executable: "/usr/bin/chromium" };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (key === "expect-no-text-model") { out.noText = true; continue; }
    out[key] = argv[++i];
  }
  if (!out.url) throw new Error("--url is required");
  return out;
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const opts = args();
const profile = mkdtempSync(join(tmpdir(), "soundseek-chromium-"));
const report = { steps: [] };
const consoleErrors = [];
let context;
try {
  // a fresh profile (--user-data-dir) every run: playwright passes it for a persistent context
  context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.executable,
    headless: true,
    viewport: { width: 1000, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required", "--mute-audio",
    ],
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(60000);  // generous: CI shares 2 cores with other test processes
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  // Offline guarantee: the page must not ask for anything outside the server.
  const origin = new URL(opts.url).origin;
  const foreign = [];
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("data:")) foreign.push(u);
  });

  await page.goto(opts.url);
  await page.waitForFunction(() => /indexed/.test(document.querySelector("#stats").textContent));
  report.stats = await page.textContent("#stats");

  if (opts.noText) {
    check(await page.isDisabled("#q"), "text box disabled without a text model");
    const msg = await page.textContent("#message");
    check(/no text model/i.test(msg), `no-text-model message shown (got "${msg}")`);
    report.steps.push("no-text-model message");
  } else {
    // 1. text query with the keyboard: focus is in the box, Enter searches
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
    check(focused === "q", `search box focused on load (got ${focused})`);
    await page.selectOption("#k", "20");
    await page.focus("#q");
    await page.keyboard.type(opts.query);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#results .hit");
    const names = await page.$$eval("#results .hit .name", (els) => els.map((e) => e.textContent));
    check(names.length > 0, "text search shows results");
    check(new URL(page.url()).searchParams.get("q") === opts.query, "query is in the URL");
    report.text = { query: opts.query, count: names.length, top: names.slice(0, 5) };
    report.steps.push("text search");
    // the score's hover text says what a text search's score means (not an upload's)
    const textHint = await page.getAttribute("#results .hit .score", "title");
    check(/words searched for/.test(textHint), `text score explained (got "${textHint}")`);
    report.scoreHints = { text: textHint };
    // hits of a tagging expert (yamnet) show what they sound like
    const apiTags = await page.evaluate(async (q) => {
      const r = await fetch(`/api/search?q=${encodeURIComponent(q)}&k=5`);
      const b = await r.json();
      return (b.results || []).some((h) => (h.tags || []).length > 0);
    }, opts.query);
    if (apiTags) {
      const nTags = await page.$$eval("#results .hit .hit-tags .tag", (els) => els.length);
      check(nTags > 0, "hits show their tags");
      report.steps.push("tags shown");
    }

    // 1b. a filtered search: sound-only mode, mono, at most 6 s (the page's filter controls);
    // meanwhile the library grew (a re-index: the server reloads it live): the header follows
    const health = await page.evaluate(async () => (await fetch("/api/health")).json());
    await page.route("**/api/health", (route) => route.fulfill({ json: { ...health, items: health.items + 3 } }));
    const filtered = page.waitForResponse((r) => {
      const u = new URL(r.url());
      return u.pathname === "/api/search" && u.searchParams.get("max_duration") === "6"
        && u.searchParams.get("channels") === "1" && u.searchParams.get("mode") === "content";
    });
    await page.selectOption("#mode", "content");
    await page.selectOption("#channels", "1");
    await page.fill("#max-duration", "6");
    await page.press("#max-duration", "Enter");
    const body = await (await filtered).json();
    check(body.count > 0, "filtered search has results");
    check(body.results.every((h) => h.duration <= 6), "filtered results respect the duration filter");
    check(body.facets && body.facets.channels, "facet counts returned");
    await page.waitForFunction((n) => document.querySelectorAll("#results .hit").length === n
      && /result/.test(document.querySelector("#results-title").textContent), body.count);
    report.filtered = { count: body.count, facets: await page.textContent("#facets"),
                        top: body.results.slice(0, 3).map((h) => h.name) };
    check(report.filtered.facets.length > 0, "facet counts shown on the page");
    const grown = `${health.items + 3} sounds indexed`;
    await page.waitForFunction((t) => document.querySelector("#stats").textContent.startsWith(t), grown);
    await page.unroute("**/api/health");
    report.steps.push("count follows a re-index");
    const contentHint = await page.getAttribute("#results .hit .score", "title");
    check(/sound only/.test(contentHint), `sound-only score explained (got "${contentHint}")`);
    // no result: the counts of the whole library are not shown as if they were the results'
    const none = page.waitForResponse((r) => new URL(r.url()).searchParams.get("min_duration") === "100000");
    await page.evaluate(() => { document.querySelector("#max-duration").value = ""; });
    await page.fill("#min-duration", "100000");
    await page.press("#min-duration", "Enter");
    check((await (await none).json()).count === 0, "an impossible duration finds nothing");
    await page.waitForFunction(() => /^0 results/.test(document.querySelector("#results-title").textContent));
    const noneFacets = await page.textContent("#facets");
    check(noneFacets === "", `no library-wide counts under 0 results (got "${noneFacets}")`);
    report.steps.push("no counts without results");
    await page.evaluate(() => {
      document.querySelector("#min-duration").value = "";
      document.querySelector("#mode").value = "";
      document.querySelector("#channels").value = "";
      document.querySelector("#max-duration").value = "";
    });
    report.steps.push("filtered search");
    await page.press("#q", "Enter");  // the plain search again (the list is empty after 0 results)
    await page.waitForFunction(() => !document.body.hasAttribute("aria-busy") && document.querySelector("#results .hit"));

    // 2. play the first result from the keyboard (its Play button: the native player is out of the
    // Tab order): metadata loads through range requests and time advances
    const audio = page.locator("#results .hit .player").first();
    const playBtn = page.locator("#results .hit .play").first();
    const firstName = await page.locator("#results .hit .name").first().textContent();
    check(await playBtn.getAttribute("aria-label") === `Play ${firstName}`, "the play button names its file");
    check(await audio.getAttribute("aria-label") === `Play ${firstName}`, "the player keeps its label");
    await playBtn.focus();
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      () => { const a = document.querySelector("#results .hit .player"); return a.readyState >= 2 && a.currentTime > 0.2; },
      null, { timeout: 15000 },
    );
    report.play = await audio.evaluate((a) => ({ readyState: a.readyState, currentTime: a.currentTime, duration: a.duration, paused: a.paused }));
    check(await playBtn.getAttribute("aria-label") === `Pause ${firstName}`, "the button turns into Pause");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#results .hit .player").paused);
    check(report.play.duration > 0, "audio duration known");
    report.steps.push("playback");
    // from one row's Play button to the next row's: a few Tab presses, not the player's six or so
    let tabs = 0;
    while (tabs < 10) {
      await page.keyboard.press("Tab");
      tabs++;
      if (await page.evaluate(() => document.activeElement === document.querySelectorAll("#results .hit .play")[1])) break;
    }
    check(tabs <= 3, `next result's Play button ${tabs} Tab presses away`);
    report.keyboard = { tabsPerRow: tabs };
    report.steps.push("keyboard");

    // 2b. a long file's player starts at its best-matching window
    const windowed = page.locator("#results .hit[data-start]").first();
    if (await windowed.count()) {
      const start = Number(await windowed.getAttribute("data-start"));
      await windowed.locator(".player").evaluate((a) => a.readyState >= 1 || new Promise((r) => a.addEventListener("loadedmetadata", r, { once: true })));
      await page.waitForTimeout(100);
      const t = await windowed.locator(".player").evaluate((a) => a.currentTime);
      check(Math.abs(t - start) < 0.5, `long-file player starts at the match (${t} vs ${start})`);
      check(await windowed.locator(".window").isVisible(), "match window drawn on the waveform");
      report.window = { name: await windowed.locator(".name").textContent(), start, currentTime: t,
                        label: await windowed.locator(".match").textContent() };
      report.steps.push("window");
    }

    // 3. waveform images loaded
    await page.waitForFunction(() => [...document.querySelectorAll("#results .wave-img")].slice(0, 3).every((i) => i.complete && i.naturalWidth > 0));
    report.steps.push("waveforms");
  }

  // 4. query by example through the file picker (when there are results, also "more like this")
  if (opts.upload) {
    await page.setInputFiles("#file", opts.upload);
    await page.waitForFunction(() => /^Sounds like /.test(document.querySelector("#results-title").textContent) && document.querySelectorAll("#results .hit").length > 0);
    const uploadHint = await page.getAttribute("#results .hit .score", "title");
    const uploadName = opts.upload.split(/[\\/]/).pop();
    check(uploadHint.includes(uploadName) && !/words/.test(uploadHint), `upload score explained (got "${uploadHint}")`);
    report.scoreHints = { ...report.scoreHints, upload: uploadHint };
    report.upload = {
      title: await page.textContent("#results-title"),
      top: await page.$$eval("#results .hit .name", (els) => els.slice(0, 5).map((e) => e.textContent)),
    };
    report.steps.push("upload");
  }

  // 5. drag and drop: drop the first result's own audio file on the drop zone
  const dropped = await page.evaluate(async () => {
    const hit = document.querySelector("#results .hit");
    const name = hit.querySelector(".name").textContent;
    const blob = await (await fetch(hit.querySelector(".player").src.split("#")[0])).blob();
    const dt = new DataTransfer();
    dt.items.add(new File([blob], name, { type: blob.type }));
    document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    return name;
  });
  await page.waitForFunction((n) => document.querySelector("#results-title").textContent === `Sounds like ${n}`
    && document.querySelectorAll("#results .hit").length > 0
    && document.querySelector("#results .hit .name").textContent === n, dropped);
  report.drop = { file: dropped };
  const realId = await page.getAttribute("#results .hit", "data-id");  // a real item (for step 8)
  report.steps.push("drag and drop");

  const first = page.locator("#results .hit").first();
  if (await first.count()) {
    const srcName = await first.locator(".name").textContent();
    const srcId = await first.getAttribute("data-id");  // (the locator is lazy: read it before the click)
    await first.locator(".similar").click();
    await page.waitForFunction((n) => document.querySelector("#results-title").textContent === `More like ${n}`, srcName);
    await page.waitForSelector("#results .hit");
    const simNames = await page.$$eval("#results .hit .name", (els) => els.map((e) => e.textContent));
    check(simNames.length > 0, "more-like-this shows results");
    check(!simNames.includes(srcName), "more-like-this excludes the source item");
    const likeHint = await page.getAttribute("#results .hit .score", "title");
    check(likeHint.includes(`sounds like ${srcName}`), `more-like-this score explained (got "${likeHint}")`);
    report.similar = { source: srcName, top: simNames.slice(0, 5) };
    report.steps.push("more like this");

    // 5b. every hit shows its folder (two files with the same name are told apart)
    const folders = await page.$$eval("#results .hit .folder", (els) => els.map((e) => e.textContent));
    check(folders.length === simNames.length && folders.every((f) => f.length > 0), `hits show their folder (${folders})`);
    report.folders = folders.slice(0, 5);
    report.steps.push("folders");

    // 6. the page's state is in the URL: "more like this" is ?like=ID, and the URL alone brings it back
    const likeUrl = new URL(page.url());
    check(likeUrl.searchParams.get("like") === srcId, `more-like-this is in the URL (${likeUrl.search})`);
    await page.goto(likeUrl.href);
    await page.waitForFunction((n) => document.querySelector("#results-title").textContent === `More like ${n}`
      && document.querySelectorAll("#results .hit").length > 0, srcName);
    check(await page.inputValue("#k") === (likeUrl.searchParams.get("k") || "10"), "k restored from the URL");
    report.steps.push("more like this from the URL");
  }

  // 7. a text search with filters survives a reload, and the back button returns to it
  if (!opts.noText) {
    const fq = opts.query;
    await page.goto(`${origin}/?q=${encodeURIComponent(fq)}&k=20&mode=content&channels=1&max_duration=6`);
    await page.waitForFunction((q) => document.querySelector("#results-title").textContent.includes(q), fq);
    const restored = await page.evaluate(() => ({
      q: document.querySelector("#q").value, k: document.querySelector("#k").value,
      mode: document.querySelector("#mode").value, channels: document.querySelector("#channels").value,
      max: document.querySelector("#max-duration").value }));
    check(restored.q === fq && restored.k === "20" && restored.mode === "content" && restored.channels === "1"
      && restored.max === "6", `query and filters restored from the URL (${JSON.stringify(restored)})`);
    await page.locator("#results .hit .similar").first().click();
    await page.waitForFunction(() => /^More like /.test(document.querySelector("#results-title").textContent));
    check(new URL(page.url()).searchParams.get("like"), "more-like-this added to the history");
    // "more like this" keeps the filters (not the match mode: it is for words), and a filter
    // changed there re-runs it with the filter (the clips are 5 s: none is under 4 s)
    const likeState = new URL(page.url()).searchParams;
    check(likeState.get("max_duration") === "6" && likeState.get("channels") === "1" && !likeState.has("mode"),
      `more-like-this keeps the filters in the URL (${likeState})`);
    await page.waitForFunction(() => !document.body.hasAttribute("aria-busy"));
    await page.fill("#max-duration", "4");
    await page.dispatchEvent("#max-duration", "change");
    await page.waitForFunction(() => new URL(location.href).searchParams.get("max_duration") === "4"
      && !document.body.hasAttribute("aria-busy") && document.querySelectorAll("#results .hit").length === 0);
    const filtered = await page.evaluate(() => ({ title: document.querySelector("#results-title").textContent,
      message: document.querySelector("#message").textContent, like: new URL(location.href).searchParams.get("like") }));
    check(/^More like /.test(filtered.title) && filtered.like && /No sounds matched/.test(filtered.message),
      `a filter changed in more-like-this filters it (${JSON.stringify(filtered)})`);
    report.steps.push("filters in more like this");
    await page.goBack();
    await page.waitForFunction((q) => document.querySelector("#results-title").textContent.includes(q)
      && document.querySelector("#mode").value === "content", fq);
    check(new URL(page.url()).searchParams.get("max_duration") === "6", "back returns to the filtered search");
    await page.selectOption("#mode", "");  // a changed filter replaces the URL's state
    await page.waitForFunction(() => !new URL(location.href).searchParams.has("mode"));
    await page.evaluate(() => {
      document.querySelector("#channels").value = "";
      document.querySelector("#max-duration").value = "";
    });
    // the format filter: in the URL, restored, and applied (the corpus: FLAC clips and one WAV)
    await page.goto(`${origin}/?q=${encodeURIComponent(fq)}&format=wav`);
    await page.waitForFunction(() => document.querySelectorAll("#results .hit").length > 0
      && !document.body.hasAttribute("aria-busy"));
    const wavs = await page.$$eval("#results .hit .name", (els) => els.map((e) => e.textContent));
    check(await page.inputValue("#format") === "wav" && wavs.every((n) => n.endsWith(".wav")),
      `format filter restored and applied (${wavs})`);
    await page.selectOption("#format", "");
    await page.waitForFunction(() => !new URL(location.href).searchParams.has("format"));
    report.steps.push("state in the URL");
  }

  // 8. rows stay readable: a very long file name leaves its folder and score on one line each;
  // a file deleted since indexing says so instead of showing a broken player; on a phone-wide
  // screen nothing overflows sideways and each filter's label stays beside its control
  await page.waitForFunction(() => !document.body.hasAttribute("aria-busy"));  // no search may render over it
  const layout = async () => page.evaluate((id) => {  // id: a real item, so its files load
    const base = { id, score: 0.5, duration: 1.5, start: null, end: null, tags: [], matched: [], copies: [],
                   audio_url: `/api/items/${id}/audio`, waveform_url: `/api/items/${id}/waveform.png`,
                   similar_url: `/api/items/${id}/similar` };
    const long = renderHit({ ...base, name: `${"a_very_long_descriptive_file_name_".repeat(4)}take_03.wav`, folder: "backup" }, 1, "backup");
    const gone = renderHit({ ...base, name: "gone.wav", folder: "sfx", available: false }, 2, "sfx");
    const copy = (name, available) => ({ id, name, folder: "dups", audio_url: base.audio_url, available });
    const dup = renderHit({ ...base, name: "kept.wav", folder: "sfx", copies: [copy("kept.flac", true), copy("kept.aiff", false)] }, 3, "sfx");
    const list = document.querySelector("#results");
    list.replaceChildren(long, gone, dup);
    const links = [...dup.querySelectorAll(".copies li a")];
    const lines = (el) => Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight));
    const line = (a, b) => {  // on the same line: their boxes overlap vertically
      const [ra, rb] = [a.getBoundingClientRect(), b.getBoundingClientRect()];
      return ra.top < rb.bottom && rb.top < ra.bottom;
    };
    const out = {
      folderLines: lines(long.querySelector(".folder")), scoreLines: lines(long.querySelector(".score")),
      goneNote: gone.querySelector(".gone").hidden ? "" : gone.querySelector(".gone").textContent,
      goneVisible: { player: !gone.querySelector(".player").hidden, wave: !gone.querySelector(".wave").hidden },
      overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      labels: [["mode", "mode"], ["min-duration", "min-duration"], ["channels", "channels"]].every(
        ([f, id]) => line(document.querySelector(`label[for="${f}"]`), document.getElementById(id))),
      copies: { summary: dup.querySelector(".copies summary").textContent,
                items: [...dup.querySelectorAll(".copies li")].map((li) => li.textContent),
                links: links.map((a) => ({ target: a.target, rel: a.rel, label: a.getAttribute("aria-label") })) },
    };
    list.replaceChildren();
    return out;
  }, realId);
  for (const width of [1000, 390]) {
    await page.setViewportSize({ width, height: 900 });
    const l = await layout();
    check(l.folderLines === 1 && l.scoreLines === 1, `long name leaves folder and score on one line at ${width} px (${JSON.stringify(l)})`);
    check(/missing/i.test(l.goneNote) && !l.goneVisible.player && !l.goneVisible.wave, `a missing file is marked (${JSON.stringify(l)})`);
    check(l.overflow <= 0 && l.labels, `no sideways overflow, labels beside controls at ${width} px (${JSON.stringify(l)})`);
    const c = l.copies;
    check(c.summary === "+2 copies (1 missing)" && /file missing/.test(c.items[1]) && !/missing/.test(c.items[0])
      && c.links.length === 1 && c.links[0].target === "_blank" && /noopener/.test(c.links[0].rel)
      && c.links[0].label === "Open dups/kept.flac in a new tab", `copies say whether their file is there (${JSON.stringify(c)})`);
  }
  await page.setViewportSize({ width: 1000, height: 900 });
  report.steps.push("layout");

  if (opts.screenshot) {
    // a screenshot of the first result set the user sees after a text query, if any
    if (!opts.noText) {
      await page.fill("#q", opts.query);
      await page.press("#q", "Enter");
      await page.waitForFunction((q) => document.querySelector("#results-title").textContent.includes(q), opts.query);
      // scroll through once so the lazily loaded waveforms are all fetched
      await page.evaluate(async () => {
        // fetch every waveform now, not only those the lazy loader has seen (flaky on a busy CI box)
        document.querySelectorAll("#results .wave-img").forEach((i) => { i.loading = "eager"; });
        for (let y = 0; y < document.body.scrollHeight; y += 500) {
          window.scrollTo(0, y);
          await new Promise((r) => setTimeout(r, 40));
        }
        window.scrollTo(0, 0);
      });
      await page.waitForFunction(() => [...document.querySelectorAll("#results .wave-img")].every((i) => i.complete && i.naturalWidth > 0),
                                 null, { timeout: 90000 });
    }
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    report.screenshot = opts.screenshot;
  }

  // 9. the API reference: code shown as code, an icon of its own, nothing that fails to load
  const failed = [];
  page.on("response", (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  await page.goto(`${origin}/api/docs`);
  const docText = await page.textContent("main.apidocs");
  check(!docText.includes("`") && await page.locator("main.apidocs p code").count() > 0, "API docs show code, not backticks");
  await page.waitForTimeout(300);
  check(failed.length === 0, `API docs load without errors (saw ${failed.join(", ")})`);
  report.steps.push("api docs");

  check(foreign.length === 0, `no requests outside the server (saw ${foreign.join(", ")})`);
  check(consoleErrors.length === 0, `no console errors (saw ${consoleErrors.join(" | ")})`);
  report.ok = true;
  console.log(JSON.stringify(report));
} catch (err) {
  report.ok = false;
  report.error = String(err && err.message || err);
  report.consoleErrors = consoleErrors;
  console.log(JSON.stringify(report));
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
