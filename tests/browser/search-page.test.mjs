// Drives the imgsearch search page in Debian's Chromium through playwright-core.
//
// Expects a running `imgsearch serve` at IMGSEARCH_URL whose index holds QUERY_IMAGE (a file
// path) and at least one other image, and NEW_IMAGE (a photo not in the index, added through the
// page). Optional: SCREENSHOT_DIR to keep screenshots, CHROMIUM (default /usr/bin/chromium). Prints "N passed, N failed" and exits non-zero on failure.
import { chromium } from "playwright-core";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import assert from "node:assert/strict";

const base = process.env.IMGSEARCH_URL;
const queryImage = process.env.QUERY_IMAGE;
const newImage = process.env.NEW_IMAGE;
if (!base || !queryImage || !newImage) {
  console.error("set IMGSEARCH_URL, QUERY_IMAGE and NEW_IMAGE");
  process.exit(2);
}
// A folder the server watches, and a photo to put there (optional: their checks are skipped
// without them).
const libraryDir = process.env.LIBRARY_DIR;
const libraryImages = (process.env.LIBRARY_IMAGES || "").split(":").filter(Boolean);
const shots = process.env.SCREENSHOT_DIR;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

const results = { passed: 0, failed: 0 };
async function check(name, fn) {
  try {
    await fn();
    results.passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    results.failed += 1;
    console.log(`FAIL ${name}\n     ${String(err && err.stack || err).split("\n").join("\n     ")}`);
  }
}

/** Drops `bytes` on the page as a file, the way a user dragging from a file manager would. */
async function dropFile(page, selector, name, mime, bytes) {
  await page.evaluate(
    ({ selector, name, mime, b64 }) => {
      const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([raw], name, { type: mime }));
      const target = document.querySelector(selector);
      for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
      }
    },
    { selector, name, mime, b64: Buffer.from(bytes).toString("base64") },
  );
}

/** Pastes `bytes` as an image file, the way Ctrl+V of a copied image would. */
async function pasteFile(page, name, mime, bytes) {
  await page.evaluate(
    ({ name, mime, b64 }) => {
      const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([raw], name, { type: mime }));
      document.body.dispatchEvent(new ClipboardEvent("paste", { bubbles: true, cancelable: true, clipboardData: dt }));
    },
    { name, mime, b64: Buffer.from(bytes).toString("base64") },
  );
}

/** Empties the grid, so that the next readCards sees only the next search's cards. */
async function clearResults(page) {
  await page.evaluate(() => document.querySelector("#results").replaceChildren());
}

/** The number of indexed images the status line shows. */
async function indexedCount(page) {
  const m = /(\d+) images?/.exec(await page.textContent("#status"));
  return m ? Number(m[1]) : NaN;
}

/** Waits for a finished search with at least one card, and reads the visible cards. */
async function readCards(page) {
  await page.waitForFunction(
    () => !document.querySelector("#results").hasAttribute("aria-busy") && document.querySelectorAll("#results .card").length > 0,
    null,
    { timeout: TIMEOUT },
  );
  return page.$$eval("#results .card:not([hidden])", (cards) =>
    cards.map((c) => ({
      name: c.querySelector(".name").textContent,
      score: Number(c.querySelector(".score").textContent),
      thumb: c.querySelector("img.thumb").getAttribute("src"),
    })),
  );
}

/** Checks that each result carries the band its score falls in, by the status's bands, and no
 * other; returns the bands shown. */
async function bandsMatchScores(page) {
  const bands = (await page.evaluate(async () => (await fetch("/api/status")).json())).duplicates;
  assert.ok(bands && bands.identical > bands.duplicate && bands.duplicate > bands.similar, JSON.stringify(bands));
  const shown = await page.$$eval("#results .card:not([hidden])", (cs) =>
    cs.map((c) => ({ score: Number(c.querySelector(".score").textContent), band: c.querySelector(".band")?.textContent ?? null })),
  );
  for (const c of shown) {
    // The card shows three decimals; a score that close to a bound may round across it.
    if ([bands.identical, bands.duplicate, bands.similar].some((b) => Math.abs(c.score - b) <= 0.0005)) continue;
    const want = c.score >= bands.identical ? "identical" : c.score >= bands.duplicate ? "edited copy" : c.score >= bands.similar ? "similar shot" : null;
    assert.equal(c.band, want, `band of a result scored ${c.score}`);
  }
  return shown.map((c) => c.band).filter(Boolean);
}

// The id of chelsea.png, a fixture photo with two smaller copies of itself in the index.
let chelseaId = null;
const userDataDir = mkdtempSync(join(tmpdir(), "imgsearch-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(TIMEOUT);
const outside = [];
page.on("request", (req) => {
  const url = req.url();
  if (!url.startsWith(base) && !url.startsWith("blob:") && !url.startsWith("data:")) outside.push(url);
});
const pageErrors = [];
page.on("pageerror", (err) => pageErrors.push(String(err)));

const queryName = basename(queryImage);
const queryBytes = readFileSync(queryImage);
const mime = /\.png$/i.test(queryName) ? "image/png" : "image/jpeg";

try {
  await check("page loads and shows the index status", async () => {
    await page.goto(base + "/");
    await page.waitForFunction(() => /\d+ images?/.test(document.querySelector("#status").textContent));
    const status = await page.textContent("#status");
    assert.match(status, /[1-9]\d* images?/);
    assert.match(status, /· (tract|ort) ·/, "the runtime in use is shown");
    assert.equal(await page.getAttribute("#dropzone", "tabindex"), "0");
    if (shots) await page.screenshot({ path: join(shots, "empty.png"), fullPage: true });
  });

  await check("dropping an image shows similar images with scores, the same image first", async () => {
    await dropFile(page, "#dropzone", queryName, mime, queryBytes);
    const cards = await readCards(page);
    assert.ok(cards.length >= 2, `expected several hits, got ${cards.length}`);
    for (const c of cards) assert.ok(Number.isFinite(c.score), `score of ${c.name} is ${c.score}`);
    assert.equal(cards[0].name, queryName);
    assert.ok(cards[0].score > 0.99, `first score ${cards[0].score}`);
    assert.match(cards[0].thumb, /^\/api\/images\/\d+\/thumbnail$/);
    // The server makes a thumbnail on first request (decode and resize), so give it time to arrive.
    const loaded = await page
      .waitForFunction(
        () => {
          const img = document.querySelector("#results .card img.thumb");
          return img && img.complete && img.naturalWidth > 0;
        },
        null,
        { timeout: 20000 },
      )
      .then(() => true, () => false);
    assert.ok(loaded, "the first thumbnail did not load");
    assert.equal(await page.isVisible("#query-preview"), true);
    await bandsMatchScores(page);
    const chelsea = cards.find((c) => c.name === "chelsea.png");
    if (chelsea) chelseaId = Number(/\/api\/images\/(\d+)\//.exec(chelsea.thumb)[1]);
    if (shots) await page.screenshot({ path: join(shots, "results.png"), fullPage: true });
  });

  await check("the threshold slider filters the grid without a new search", async () => {
    const before = (await readCards(page)).length;
    await page.$eval("#threshold", (el) => {
      el.value = "0.995";
      el.dispatchEvent(new Event("input", { bubbles: true }));
    });
    const after = await readCards(page);
    assert.ok(after.length >= 1 && after.length < before, `${before} -> ${after.length}`);
    assert.equal(after[0].name, queryName);
    assert.match(await page.textContent("#results-info"), /shown/);
    await page.$eval("#threshold", (el) => {
      el.value = el.min;
      el.dispatchEvent(new Event("input", { bubbles: true }));
    });
    assert.equal((await readCards(page)).length, before);
  });

  await check("choosing a file with the file input searches too", async () => {
    await page.setInputFiles("#file-input", queryImage);
    const cards = await readCards(page);
    assert.equal(cards[0].name, queryName);
  });

  await check("pasting an image searches with it", async () => {
    await clearResults(page);
    await pasteFile(page, queryName, mime, queryBytes);
    const cards = await readCards(page);
    assert.equal(cards[0].name, queryName);
    assert.ok(cards[0].score > 0.99, `first score ${cards[0].score}`);
  });

  await check("adding an image through the page indexes it, and it is then found", async () => {
    const newBytes = readFileSync(newImage);
    const newMime = /\.png$/i.test(newImage) ? "image/png" : "image/jpeg";
    await clearResults(page);
    await dropFile(page, "#dropzone", basename(newImage), newMime, newBytes);
    const before = await readCards(page);
    assert.ok(before[0].score < 0.99, `the new image already matches with ${before[0].score}`);
    const count = await indexedCount(page);
    await page.setInputFiles("#upload-input", newImage);
    await page.waitForFunction(() => /Added 1 image/.test(document.querySelector("#toast").textContent), null, { timeout: 60000 });
    await page.waitForFunction((n) => new RegExp(`${n} images?`).test(document.querySelector("#status").textContent), count + 1);
    await dropFile(page, "#dropzone", basename(newImage), newMime, newBytes);
    await page.waitForFunction(
      () => Number(document.querySelector("#results .card .score")?.textContent) > 0.99,
      null,
      { timeout: TIMEOUT },
    );
    const after = await readCards(page);
    assert.ok(after[0].score > 0.99, `after adding, first score ${after[0].score}`);
  });

  await check("clicking a result searches from it, by keyboard too", async () => {
    const second = (await readCards(page))[1];
    await page.focus("#results .card:nth-child(2) button");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /^#id=\d+$/.test(location.hash));
    await page.waitForFunction((name) => document.querySelector("#results-title").textContent.includes(name), second.name);
    const cards = await readCards(page);
    assert.ok(cards.every((c) => c.name !== second.name || cards.length === 0), "the query image is not a hit");
  });

  await check("adding results to the query as + and − refines it, and a chip takes one out", async () => {
    const queryId = Number(/^#id=(\d+)$/.exec(await page.evaluate(() => location.hash))[1]);
    const before = await readCards(page);
    assert.ok(before.length >= 3, `expected at least 3 hits, got ${before.length}`);
    // Each click below changes the address and marks the grid busy in the same task, so waiting
    // for the address then reading the cards reads the new search's.
    // The first result becomes a counter-example: it leaves the results, the address keeps both.
    await page.click("#results .card:nth-child(1) .refine button.negative");
    await page.waitForFunction(() => /^#pos=\d+&neg=\d+$/.test(location.hash));
    assert.equal(/pos=(\d+)/.exec(await page.evaluate(() => location.hash))[1], String(queryId));
    let cards = await readCards(page);
    assert.ok(cards.every((c) => c.name !== before[0].name), "the counter-example is not a hit");
    assert.match(await page.textContent("#results-title"), /not like/);
    assert.deepEqual(await page.$$eval("#examples .chip", (c) => c.map((x) => x.className)), ["chip positive", "chip negative"]);
    // A second example, by keyboard: now two positives and one negative, none of them a hit.
    const added = cards[0].name;
    await page.focus("#results .card:nth-child(1) .refine button.positive");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /^#pos=\d+,\d+&neg=\d+$/.test(location.hash));
    cards = await readCards(page);
    assert.ok(cards.every((c) => c.name !== added && c.name !== before[0].name), "examples are not hits");
    assert.equal(await page.$$eval("#examples .chip", (c) => c.length), 3);
    if (shots) {
      await page.hover("#results .card:nth-child(1)");
      await page.screenshot({ path: join(shots, "examples.png"), fullPage: true });
    }
    // Taking the counter-example out searches again without it.
    await page.click("#examples .chip.negative button");
    await page.waitForFunction(() => /^#pos=\d+,\d+$/.test(location.hash));
    cards = await readCards(page);
    // The index is small enough that every image not an example is a hit.
    assert.ok(cards.some((c) => c.name === before[0].name), "the former counter-example is a hit again");
    assert.ok(!(await page.textContent("#results-title")).includes("not like"));
  });

  await check("arrow keys move between results, and keys add the focused one to the query", async () => {
    await page.focus("#results .card:nth-child(1) button");
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.evaluate(() => document.activeElement.closest(".card") === document.querySelector("#results .card:nth-child(2)")), true);
    await page.keyboard.press("ArrowLeft");
    assert.equal(await page.evaluate(() => document.activeElement.closest(".card") === document.querySelector("#results .card:nth-child(1)")), true);
    await page.keyboard.press("End");
    const last = await page.evaluate(() => Array.from(document.querySelectorAll("#results .card")).indexOf(document.activeElement.closest(".card")));
    assert.equal(last, (await readCards(page)).length - 1);
    const before = await page.evaluate(() => location.hash);
    await page.keyboard.press("-");
    await page.waitForFunction((h) => location.hash !== h && /&neg=\d+$/.test(location.hash), before);
    await readCards(page);
  });

  await check("filters narrow the search on screen: tag, date and folder", async () => {
    const ids = () => page.$$eval("#results .card:not([hidden]) img.thumb", (imgs) => imgs.map((i) => Number(/\/images\/(\d+)\//.exec(i.getAttribute("src"))[1])));
    const first = (await ids())[0];
    const record = await page.evaluate((id) => fetch(`/api/images/${id}`).then((r) => r.json()), first);
    const tag = record.tags[0].name;
    await page.fill("#filter-tag", tag);
    await page.press("#filter-tag", "Enter");
    await page.waitForFunction(() => !document.querySelector("#results").hasAttribute("aria-busy"));
    const tagged = await ids();
    assert.ok(tagged.length >= 1, "the tag of a hit finds it");
    for (const id of tagged) {
      const r = await page.evaluate((id) => fetch(`/api/images/${id}`).then((r) => r.json()), id);
      assert.ok(r.tags.some((t) => t.name === tag), `image ${id} lacks the tag ${tag}`);
    }
    // No test photo has an EXIF date, and no folder is named so: nothing passes either.
    for (const [selector, value] of [["#filter-from", "2001-02-03"], ["#filter-folder", "/no/such/folder"]]) {
      await page.fill("#filter-tag", "");
      await page.fill(selector, value);
      await page.dispatchEvent(selector, "change");
      await page.waitForFunction(() => /No similar images/.test(document.querySelector("#message").textContent) && !document.querySelector("#message").hidden);
      await page.fill(selector, "");
      await page.dispatchEvent(selector, "change");
      await readCards(page);
    }
  });

  await check("searching by words answers with results or a clear empty state", async () => {
    await page.fill("#text-input", "flower");
    await page.press("#text-input", "Enter");
    await page.waitForFunction(() => location.hash.startsWith("#text="));
    await page.waitForFunction(() => !document.querySelector("#results").hasAttribute("aria-busy"));
    const error = await page.$("#message.error:not([hidden])");
    assert.equal(error, null, "the text search showed an error");
  });

  await check("the library view lists every image newest first, a page at a time", async () => {
    const total = await indexedCount(page);
    await page.selectOption("#k", "12");
    await page.click("#library-btn");
    await page.waitForFunction(() => /newest first/.test(document.querySelector("#results-info").textContent));
    const shown = await page.$$eval("#results .card", (cards) => cards.length);
    assert.equal(shown, Math.min(12, total), "one page of cards");
    assert.match(await page.textContent("#results-info"), new RegExp(`${shown} of ${total} images?`));
    assert.equal(await page.isHidden("#more-btn"), total <= 12, "'Show more' only when there is more");
    // Library cards carry a date, not a score.
    assert.equal(await page.$$eval("#results .card .score", (s) => s.length), 0);
    assert.ok((await page.$$eval("#results .card .when", (w) => w.map((x) => x.textContent)))[0].match(/^\d{4}-\d\d-\d\d$/));
    await page.selectOption("#k", "24");
  });

  if (libraryDir && libraryImages.length > 0) {
    await check("rescanning the watched library indexes new photos with a progress bar, and the status follows the job", async () => {
      const count = await indexedCount(page);
      // Enough files (each its own copy to embed) that the job runs for seconds, long enough
      // for the page, which polls every second, to show its progress. The copies go round the
      // distinct photos, so that no photo has more than a few copies in the index.
      const added = 30;
      for (let i = 0; i < added; i++) {
        const src = libraryImages[i % libraryImages.length];
        copyFileSync(src, join(libraryDir, `${i}-${basename(src)}`));
      }
      await page.click("#rescan-btn");
      // The watcher may have started the same job first; either way the photos get indexed.
      await page.waitForFunction(() => !document.querySelector("#job").hidden, null, { timeout: 30000 });
      assert.match(await page.textContent("#job-info"), /^Indexing: /);
      const bar = await page.$eval("#job-progress", (p) => ({ value: p.value, max: p.max }));
      assert.ok(bar.value <= bar.max, `progress ${bar.value} of ${bar.max}`);
      await page.waitForFunction((n) => new RegExp(`${n} images?`).test(document.querySelector("#status").textContent), count + added, { timeout: 90000 });
      await page.waitForFunction(() => document.querySelector("#job").hidden);
    });
  }

  if (libraryDir && libraryImages.length > 0) {
    await check("the duplicates view groups the copies, and a result's duplicates carry their band", async () => {
      await page.click("#duplicates-btn");
      await page.waitForFunction(() => /groups? of duplicates/.test(document.querySelector("#results-info").textContent));
      const heads = await page.$$eval("#results .group-head", (h) => h.map((x) => x.textContent));
      assert.ok(heads.length >= 1 && /Group 1 · \d+ images/.test(heads[0]), heads.join(" | "));
      const bands = await page.$$eval("#results .card .band", (b) => b.map((x) => x.textContent));
      assert.ok(bands.length >= 2 && bands.every((b) => b === "identical" || b === "edited copy"), bands.join(","));
      if (shots) await page.screenshot({ path: join(shots, "duplicates.png"), fullPage: true });
      await page.click("#results .card:nth-child(2) .refine button.duplicates");
      await page.waitForFunction(() => /^Duplicates of /.test(document.querySelector("#results-title").textContent));
      const cards = await readCards(page);
      assert.ok(cards.length >= 1);
      const labelled = await page.$$eval("#results .card", (c) => c.every((x) => x.querySelector(".band")));
      assert.ok(labelled, "every duplicate shows its band");
    });
  }

  await check("results say how they relate by their score: identical, edited copy, similar shot", async () => {
    // chelsea.png's smaller copies (chelsea_small_rgb.png and _cmyk.jpg, resized and
    // re-encoded) score about 0.82 against it: similar shots by the calibrated bands.
    assert.ok(chelseaId, "chelsea.png was among the first search's results");
    // A fresh load of the address, as a bookmark or a shared link would open it.
    await page.goto("about:blank");
    await page.goto(`${base}/#id=${chelseaId}`);
    await page.waitForFunction(() => document.querySelector("#results-title").textContent.includes("chelsea.png"), null, { timeout: TIMEOUT });
    await readCards(page);
    const bands = await bandsMatchScores(page);
    assert.ok(bands.includes("similar shot"), `bands shown: ${bands.join(",")}`);
  });

  await check("a non-image drop shows an error and the page keeps working", async () => {
    await dropFile(page, "#dropzone", "notes.txt", "text/plain", Buffer.from("not an image"));
    await page.waitForSelector("#toast:not([hidden])");
    assert.match(await page.textContent("#toast"), /not an image/i);
    await dropFile(page, "#dropzone", queryName, mime, queryBytes);
    assert.equal((await readCards(page))[0].name, queryName);
  });

  await check("the page loads nothing from outside the server and throws no errors", async () => {
    assert.deepEqual(outside, []);
    assert.deepEqual(pageErrors, []);
  });
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

console.log(`${results.passed} passed, ${results.failed} failed`);
process.exit(results.failed === 0 ? 0 : 1);
