// The dashboard in a real browser: Debian's Chromium (never a downloaded one), driven by
// playwright-core, against a real `keygate serve` on a fresh SQLite database.
//
// As a person would: open the one-time sign-in link the server printed, create a key through
// the form, read the secret shown once (and prove it works with POST /v1/keys/verify), see it
// gone from the list, disable the key and see its status change (and verify answer
// `disabled`), sign out. Screenshots go to $SCREENSHOT_DIR (default target/browser).
//
// KEYGATE_BIN names the keygate binary; CHROMIUM the browser (default /usr/bin/chromium).
// Nothing secret is printed: on failure the step's name and the assertion say what broke.
//
//   node dashboard.mjs            (run by crates/keygate/tests/browser, or scripts/test)

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.KEYGATE_BIN || resolve(here, "../../target/debug/keygate");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.SCREENSHOT_DIR || resolve(here, "../../target/browser");
mkdirSync(shots, { recursive: true });

let step = "starting";
function log(message) {
  step = message;
  console.log(`- ${message}`);
}

/** Starts `keygate serve` and reads its banner: address, owner token, sign-in link. */
function startServer(dataDir) {
  const child = spawn(
    bin,
    ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${join(dataDir, "k.db")}`],
    { env: { ...process.env, RUST_LOG: "warn" }, stdio: ["ignore", "pipe", "ignore"] },
  );
  return new Promise((resolvePromise, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error("keygate serve printed no banner in 30 s")), 30_000);
    child.on("exit", (code) => reject(new Error(`keygate serve exited with ${code}`)));
    child.stdout.on("data", (chunk) => {
      text += chunk;
      const base = text.match(/listening on (http:\/\/\S+)/)?.[1];
      const token = text.match(/^\s+(kgm_mgmt_\S+)\s*$/m)?.[1];
      const link = text.match(/^\s+(http:\/\/\S+\/dashboard\/sign-in\/link\?secret=\S+)\s*$/m)?.[1];
      if (base && token && link) {
        clearTimeout(timer);
        resolvePromise({ child, base, token, link });
      }
    });
  });
}

async function verify(base, token, key) {
  const response = await fetch(`${base}/v1/keys/verify`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).code;
}

/** The page's HTML once it stops navigating (going back to a POST's answer may reload). */
async function settledContent(page) {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      await page.waitForLoadState("load");
      return await page.content();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("the page never settled");
}

/** Nothing on the page is wider than the viewport (360 px: a phone). */
async function assertNoHorizontalOverflow(page, what) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `${what} overflows horizontally at ${width} px (${scroll} px wide)`);
}

const dataDir = mkdtempSync(join(tmpdir(), "keygate-browser-"));
const profileDir = mkdtempSync(join(tmpdir(), "keygate-chromium-"));
let server;
let context;
try {
  log("keygate serve prints a one-time sign-in link");
  server = await startServer(dataDir);
  const { base, token, link } = server;

  log("Chromium starts with a fresh profile");
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: browserPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const blocked = [];
  page.on("console", (message) => {
    if (message.type() === "error") blocked.push(message.text());
  });

  log("the sign-in link opens a page with one button, which signs the owner in");
  await page.goto(link);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/dashboard/keys`);
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  await page.screenshot({ path: join(shots, "keys-empty.png"), fullPage: true });

  log("the link works once");
  const reused = await context.newPage();
  await reused.goto(link);
  assert.match(await reused.content(), /already been used|already used/);
  await reused.close();

  log("create a key through the form");
  await page.getByRole("link", { name: "Create API key" }).click();
  await page.getByLabel("Name").fill("browser key");
  await page.getByLabel("Description").fill("made by a real browser");
  await page.getByLabel("Requests per minute").fill("60");
  await page.getByLabel("In 90 days").check();
  await page.screenshot({ path: join(shots, "create-key.png"), fullPage: true });
  const [created] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/dashboard/keys` && r.request().method() === "POST"),
    page.getByRole("button", { name: "Create API key" }).click(),
  ]);
  assert.equal(created.status(), 200);
  assert.equal(created.headers()["cache-control"], "no-store", "the secret page is not stored");
  assert.match(created.headers()["content-security-policy"], /^default-src 'self'; frame-ancestors 'none'/);

  log("the secret is shown once, and works");
  const secret = await page.locator("#secret").inputValue();
  assert.match(secret, /^kg_live_/, "a live key's secret is on the page");
  assert.ok(await page.getByRole("button", { name: "Copy" }).isVisible(), "the copy button (our script) runs under the CSP");
  assert.equal(await verify(base, token, secret), "valid");

  log("going back to the secret page does not bring the secret back (no-store)");
  await page.getByRole("link", { name: /go to the key/ }).click();
  await page.getByRole("heading", { name: /browser key/ }).waitFor();
  assert.ok(!(await page.content()).includes(secret), "the key's page does not show the secret");
  await page.goBack({ waitUntil: "load" }).catch(() => {});
  assert.ok(!(await settledContent(page)).includes(secret), "the secret is gone after going back");

  log("the list never shows the secret; the key is active with its limits");
  await page.goto(`${base}/dashboard/keys`);
  await page.waitForURL(`${base}/dashboard/keys`);
  assert.ok(!(await page.content()).includes(secret), "the secret is not in the list");
  const row = page.locator("tr", { hasText: "browser key" });
  await assert.doesNotReject(row.getByText("active", { exact: true }).waitFor());
  await row.getByText("60/min").waitFor();
  await page.screenshot({ path: join(shots, "keys.png"), fullPage: true });

  log("disable the key from the list and see its status change");
  await page.locator("tr", { hasText: "browser key" }).getByRole("button", { name: "Disable browser key" }).click();
  await page.waitForURL(`${base}/dashboard/keys?done=disabled`);
  await page.getByText("The key is disabled").waitFor();
  await page.locator("tr", { hasText: "browser key" }).getByText("disabled", { exact: true }).waitFor();
  assert.equal(await verify(base, token, secret), "disabled");

  log("the key's page, at desktop and phone width");
  await page.getByRole("link", { name: "browser key" }).click();
  await page.getByRole("heading", { name: /browser key/ }).waitFor();
  await page.screenshot({ path: join(shots, "key-detail.png"), fullPage: true });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: join(shots, "key-detail-360.png"), fullPage: true });
  await assertNoHorizontalOverflow(page, "the key's page");
  await page.goto(`${base}/dashboard/keys`);
  await page.screenshot({ path: join(shots, "keys-360.png"), fullPage: true });
  await assertNoHorizontalOverflow(page, "the key list");
  await page.setViewportSize({ width: 1280, height: 800 });

  log("sign out; the dashboard asks to sign in again");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByText("You are signed out.").waitFor();
  await page.goto(`${base}/dashboard/keys`);
  await page.waitForURL(`${base}/dashboard/sign-in`);

  log("no script or style was blocked by the CSP");
  assert.deepEqual(blocked.filter((m) => /Content Security Policy/i.test(m)), []);
  console.log("ok: the dashboard works in Chromium");
} catch (error) {
  console.error(`FAILED at step: ${step}`);
  console.error(error?.message ?? error);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  server?.child.kill("SIGTERM");
  rmSync(profileDir, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
}
