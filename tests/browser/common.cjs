// What the browser tests share: reading the environment, launching headless Chromium with a fresh
// profile, watching the page for script errors, missing labels and requests outside the server,
// and numbered full-page screenshots.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

/** The environment variable `name`; throws when it is unset or empty. */
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Runs `body({ page, shot })` in a fresh Chromium profile at 1366×768 in Chinese against `base`,
 * with screenshots in `shots`; then fails if the page threw, lacked a label, or requested
 * anything outside the server.
 */
async function withConsole({ base, shots, chromiumPath }, body) {
  fs.mkdirSync(shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'gridsync-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: FLAGS,
    viewport: { width: 1366, height: 768 },
    locale: 'zh-CN',
    timeout: 60_000,
  });
  const failures = [];
  const foreign = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && m.text().startsWith('missing label')) failures.push(m.text());
    });
    page.on('request', (r) => {
      const url = r.url();
      if (!url.startsWith(`${base}/`) && !url.startsWith('blob:') && !url.startsWith('data:')) foreign.push(url);
    });
    let step = 0;
    const shot = async (name) => {
      step += 1;
      await page.screenshot({ path: path.join(shots, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
    };
    await body({ page, shot });
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  assert.deepEqual(foreign, [], 'the console loads nothing from outside the server');
  assert.deepEqual(failures, [], 'no script errors and no missing labels');
}

/** Logs in from the login form and waits for the dashboard. */
async function logIn(page, username, password) {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#nav-dashboard.current');
}

/**
 * Runs `action`, which moves the console to another page, and waits until that page has
 * replaced the one before. The address changes at once, but the old page stays until the
 * console renders the new one, so a selector waited for at once could match the old page.
 */
async function navigate(page, action) {
  const before = await page.$('#main');
  await action();
  await page.waitForFunction((old) => document.getElementById('main') !== old, before);
}

/** Runs `main`, says `passed` on success, and exits non-zero on any failure. */
function run(main, passed) {
  main().then(
    () => console.log(passed),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

module.exports = { env, withConsole, logIn, navigate, run };
