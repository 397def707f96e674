// Drives the console in headless Chromium against `gridsync serve --demo`: log in as the demo's
// admin, open the dashboard for the last 180 days and see the demo townships' satisfaction with
// 柳河乡 marked as resting on few interviews, open the conflicts page, open the report of the
// conflict the Rust test picked, resolve it by clicking its second (not shown) value, check the
// conflict is gone and the value shown, and switch to English. Between the dashboard and the
// conflicts it opens last month's published bulletin and prints it on A4, then the weekly
// dispatch board over the demo's month of tasks. Screenshots of every step go to
// SHOTS.
// Run by tests/tests/console_in_browser.rs, which checks the outcome again through the API.
// Exits non-zero on any failure.
'use strict';

const assert = require('node:assert/strict');
const { env, withConsole, logIn, navigate, run } = require('./common.cjs');

const BASE = env('CONSOLE_BASE');
const USERNAME = env('CONSOLE_USERNAME');
const PASSWORD = env('CONSOLE_PASSWORD');
const REPORT = env('CONSOLE_REPORT_ID');
const CONFLICT = env('CONSOLE_CONFLICT_ID');
const FIELD = env('CONSOLE_FIELD');
const SHOTS = env('CONSOLE_SHOTS');
const CHROMIUM = env('CONSOLE_CHROMIUM');

/** `date` as YYYY-MM-DD in local time, as a date input takes it. */
const ymd = (date) =>
  `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')}`;

async function main() {
  await withConsole({ base: BASE, shots: SHOTS, chromiumPath: CHROMIUM }, async ({ page, shot }) => {
    await page.goto(`${BASE}/`);
    await page.waitForSelector('#login-form');
    await logIn(page, USERNAME, PASSWORD);

    // The dashboard over the demo's 180 days: the three townships ranked apart from the streets,
    // 柳河乡 pale and without a rank for its handful of interviews.
    await page.waitForSelector('.dashboard');
    const today = new Date();
    await page.fill('input[name="from"]', ymd(new Date(today.getTime() - 180 * 86_400_000)));
    await page.fill('input[name="to"]', ymd(today));
    await navigate(page, () => page.click('form.filters button[type="submit"]'));
    await page.waitForFunction(() => location.hash.includes('from='));
    await page.waitForSelector('#panel-canvass-township svg.chart');
    const rows = await page.$$eval('#panel-canvass-township svg.chart text.name', (names) =>
      names.map((name) => {
        const y = name.getAttribute('y');
        const value = [...name.parentNode.querySelectorAll('text.value')].find((v) => v.getAttribute('y') === y);
        return { name: name.textContent, value: value?.textContent ?? '', few: value?.classList.contains('few-text') ?? false };
      }),
    );
    assert.deepEqual(rows.map((r) => r.name).sort(), ['柳河乡', '白沙镇', '青山镇'].sort(), JSON.stringify(rows));
    const liuhe = rows.find((r) => r.name === '柳河乡');
    assert.ok(liuhe.few && liuhe.value.includes('样本不足'), `柳河乡 is marked as having few interviews: ${JSON.stringify(liuhe)}`);
    for (const r of rows.filter((r) => r.name !== '柳河乡')) {
      assert.ok(!r.few && /第 \d+ 名/.test(r.value), `${r.name} is ranked: ${JSON.stringify(r)}`);
    }
    assert.equal(await page.locator('#panel-canvass-township rect.bar.few').count(), 1, 'one pale bar');
    await shot('dashboard');

    // Last month's district bulletin, which the demo published: frozen at revision 1, the
    // townships ranked apart from the streets, 柳河乡 unranked for its few interviews, the last
    // ranked rural township carded; printed on A4 without the console around it.
    await page.click('#nav-bulletin');
    await page.waitForSelector('#bulletin');
    assert.match(await page.textContent('#bulletin-state'), /第 1 版/);
    assert.match(await page.textContent('#bulletin h1'), /平安区\d{4}年\d{1,2}月平安建设工作通报/);
    const ranked = await page.$$eval('#bulletin-rank-township tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    );
    assert.equal(ranked.length, 3, JSON.stringify(ranked));
    const liuheRow = ranked.find((cells) => cells[1] === '柳河乡');
    assert.ok(liuheRow && liuheRow[0] === '—' && liuheRow[7].includes('样本不足'), JSON.stringify(ranked));
    assert.ok(ranked.some((cells) => cells[7].includes('黄牌警告')), `a yellow card: ${JSON.stringify(ranked)}`);
    assert.equal(await page.locator('#bulletin-rank-street svg.chart').count(), 1, 'the streets drawn apart');
    await shot('bulletin');
    // A4 at 96 dpi, as printed: the header, the filters and the buttons are left off.
    await page.setViewportSize({ width: 794, height: 1123 });
    await page.emulateMedia({ media: 'print' });
    assert.equal(await page.locator('header.top').isVisible(), false, 'no console header on paper');
    assert.equal(await page.locator('#bulletin-form').isVisible(), false, 'no filters on paper');
    await shot('bulletin-a4-print');
    await page.pdf({ path: `${SHOTS}/bulletin-a4.pdf`, format: 'A4' });
    await page.emulateMedia({ media: 'screen' });
    await page.setViewportSize({ width: 1366, height: 768 });

    // The weekly dispatch board over the demo's month of tasks: a row per township and street
    // and the district's total, the village campaigns due two days ago overdue.
    await page.click('#nav-dispatch');
    await page.waitForSelector('#dispatch-board');
    const board = await page.$$eval('#dispatch-board tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    );
    assert.equal(board.length, 6, JSON.stringify(board));
    const total = board[board.length - 1];
    assert.ok(Number(total[3]) > 0, `overdue tasks in total: ${JSON.stringify(total)}`);
    assert.ok(/^\d+ \/ [1-9]\d*$/.test(total[1]), `tasks due this week: ${JSON.stringify(total)}`);
    assert.ok((await page.locator('#dispatch-due tr.overdue').count()) > 0, 'overdue tasks marked');
    await page.setViewportSize({ width: 794, height: 1123 });
    await page.emulateMedia({ media: 'print' });
    await shot('dispatch-a4-print');
    await page.emulateMedia({ media: 'screen' });
    await page.setViewportSize({ width: 1366, height: 768 });

    // The conflicts page links to the report; there the picked conflict shows both values.
    await page.click('#nav-conflicts');
    await page.waitForSelector('#conflict-list');
    await shot('conflicts');
    await page.click(`#conflict-list a[href="#/reports/${REPORT}"] >> nth=0`);
    const card = page.locator(`#conflicts .conflict[data-conflict="${CONFLICT}"]`);
    await card.waitFor();
    const sides = card.locator('.side');
    assert.equal(await sides.count(), 2, 'both concurrent values are shown');
    const chosen = (await sides.nth(1).locator('.value').textContent()).trim();
    const before = await page.locator('#conflicts .conflict').count();
    await shot('conflict');

    // Keep the value automerge did not show.
    await sides.nth(1).locator('button.pick').click();
    await page.waitForSelector('.flash');
    assert.equal(await card.count(), 0, 'the conflict is gone');
    assert.equal(await page.locator('#conflicts .conflict').count(), before - 1, 'only that conflict closed');
    assert.equal((await page.textContent(`dd[data-field="${FIELD}"]`)).trim(), chosen);
    await shot('resolved');

    // English.
    await page.click('#lang-toggle');
    await page.waitForSelector('html[lang="en"]');
    assert.equal(await page.textContent('#nav-conflicts'), 'Conflicts');
    assert.equal(await page.textContent('#nav-reports'), 'Reports');
    assert.equal((await page.textContent(`dd[data-field="${FIELD}"]`)).trim().length > 0, true);
    await shot('report-english');
  });
}

run(main, `demo console test passed; screenshots in ${SHOTS}`);
