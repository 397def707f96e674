// Drives the console in headless Chromium (Debian's chromium through playwright-core) against a
// running `gridsync serve`: log in, open the dashboard (with the card of a kind published at
// runtime), see the token renewed before it expires, find the report with a conflict, see its
// photo, resolve it by clicking the chosen value, check the conflict is gone and the value shown,
// switch to English and check it persists across a reload, disable a user and revoke a device;
// on the forms page, check the example workbook, see it previewed as a phone draws it, keep it as
// a draft and publish it, see a broken schema and a workbook with a bad cell refused with each
// problem listed, and preview a stored kind; then, as township staff, find a dispute and see its
// parties redacted, and change their own password.
// Screenshots of every step go to SHOTS.
// Run by tests/tests/console_in_browser.rs, which seeds the server and checks the outcome again
// through the API. Exits non-zero on any failure.
'use strict';

const assert = require('node:assert/strict');
const { env, withConsole, logIn, navigate, run } = require('./common.cjs');

const BASE = env('CONSOLE_BASE');
const USERNAME = env('CONSOLE_USERNAME');
const PASSWORD = env('CONSOLE_PASSWORD');
const STAFF = env('CONSOLE_STAFF_USERNAME');
const STAFF_PASSWORD = env('CONSOLE_STAFF_PASSWORD');
const CHOSEN = env('CONSOLE_CHOSEN_VALUE');
const OTHER = env('CONSOLE_OTHER_VALUE');
const SHOTS = env('CONSOLE_SHOTS');
const PHOTO_NAME = env('CONSOLE_PHOTO_NAME');
const FORM = env('CONSOLE_FORM');
const BAD_FORM = env('CONSOLE_BAD_FORM');
const CHROMIUM = env('CONSOLE_CHROMIUM');

async function main() {
  await withConsole({ base: BASE, shots: SHOTS, chromiumPath: CHROMIUM }, async ({ page, shot }) => {
    // A page clock the test can move, to see the token renewed before it expires.
    await page.clock.install();

    // Login, in Chinese.
    await page.goto(`${BASE}/`);
    await page.waitForSelector('#login-form');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.textContent('#login-submit'), '登录');
    await shot('login');
    await page.fill('#username', USERNAME);
    await page.fill('#password', 'wrong password');
    await page.click('#login-submit');
    await page.waitForSelector('#login-form .error:has-text("用户名或密码错误")');
    await page.fill('#password', PASSWORD);
    await page.click('#login-submit');

    // Dashboard: every panel settles, drawn or saying it is unavailable.
    await page.waitForSelector('#nav-dashboard.current');
    await page.waitForSelector('.dashboard');
    assert.ok((await page.locator('.panel').count()) >= 3, 'the dashboard shows its panels');
    await shot('dashboard');

    // A kind published at runtime has a card of its own: its one report, counted by status, over
    // a period that holds it whatever day the server and the browser each call today.
    await page.evaluate(() => {
      location.hash = '#/dashboard?from=2000-01-01&to=2099-12-31';
    });
    await page.waitForFunction(
      () => document.querySelector('#panel-kind-street_patrol tbody tr:last-child td:nth-child(2)')?.textContent === '1',
    );
    const patrol = page.locator('#panel-kind-street_patrol');
    assert.equal(await patrol.locator('h2').textContent(), '街面巡查（按状态）');
    assert.deepEqual(await patrol.locator('thead th').allTextContents(), ['组织单位', '报告数', '正常', '已处置', '已上报']);
    const rows = await patrol.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
    assert.deepEqual(rows, [
      ['青山镇', '1', '0', '1', '0'],
      ['解放街道', '0', '0', '0', '0'],
      ['合计', '1', '0', '1', '0'],
    ]);
    await shot('dashboard-kind');

    // Fourteen and a half minutes later the 15-minute access token is renewed, unasked, and the
    // next requests carry the new one.
    const renewed = page.waitForResponse((r) => r.url() === `${BASE}/api/v1/auth/refresh`);
    await page.clock.fastForward('14:30');
    assert.equal((await renewed).status(), 200, 'the refresh token bought a new pair');

    // The report list, filtered to reports with conflicts.
    await page.click('#nav-reports');
    await page.waitForSelector('#report-list');
    await shot('reports');
    await page.check('#f-has_conflicts');
    await navigate(page, () => page.click('#apply-filters'));
    await page.waitForFunction(() => location.hash.includes('has_conflicts=true'));
    await page.waitForSelector('#report-list');
    assert.equal(await page.locator('#report-list tbody tr').count(), 1, 'one report has a conflict');
    await page.click('#report-list .report-link');

    // The report: the two values side by side with their authors; click one.
    await page.waitForSelector('#conflicts .conflict');
    const sides = page.locator('#conflicts .side');
    assert.equal(await sides.count(), 2, 'both concurrent values are shown');
    const texts = await sides.locator('.value').allTextContents();
    assert.deepEqual([...texts].sort(), [CHOSEN, OTHER].sort());
    await shot('conflict');

    // The site photo: a thumbnail, and the full picture on click.
    await page.waitForFunction(() => document.querySelector('#attachments .thumb img')?.naturalWidth > 0);
    assert.match(await page.textContent('#attachments figcaption'), new RegExp(PHOTO_NAME));
    assert.equal((await page.textContent('dd[data-field="site_photos"]')).trim(), PHOTO_NAME);
    await page.click('#attachments .thumb');
    await page.waitForFunction(() => document.querySelector('.overlay img')?.naturalWidth > 320);
    await shot('photo');
    await page.click('.overlay');
    await page.waitForSelector('.overlay', { state: 'detached' });
    await sides.filter({ has: page.locator('.value', { hasText: CHOSEN }) }).locator('button.pick').click();
    await page.waitForSelector('.flash');
    assert.equal(await page.locator('#conflicts').count(), 0, 'the conflict is gone');
    assert.equal((await page.textContent('dd[data-field="place"]')).trim(), CHOSEN);
    const history = await page.textContent('#history');
    assert.ok(history.includes('发生地点'), 'the history names the changed field by its label');
    await shot('resolved');

    // Review state.
    await page.click('#review button[data-state="approved"]');
    await page.waitForSelector('#review button.current[data-state="approved"]');

    // English, which persists across a reload of the same tab (the session too).
    await page.click('#lang-toggle');
    await page.waitForSelector('html[lang="en"]');
    assert.equal(await page.textContent('#nav-reports'), 'Reports');
    assert.equal(await page.textContent('#review button.current'), 'Approved');
    await shot('report-english');
    await page.reload();
    await page.waitForSelector('#nav-reports');
    assert.equal(await page.textContent('#nav-reports'), 'Reports');
    assert.equal((await page.textContent('dd[data-field="place"]')).trim(), CHOSEN);

    for (const name of ['dashboard', 'users', 'devices', 'org', 'forms', 'export']) {
      await page.click(`#nav-${name}`);
      await page.waitForSelector(`#nav-${name}.current`);
      await page.waitForFunction(() => !document.querySelector('#main > p.muted:only-child'));
      await shot(`${name}-english`);
    }
    // The ledger form downloads the file, or says the server has no export yet.
    await page.click('#export-submit');
    await page.waitForFunction(() => {
      const text = document.querySelector('#export-status').textContent;
      return text && text !== 'Loading…';
    });
    assert.match(await page.textContent('#export-status'), /^(Downloaded .+\.xlsx\.|Unavailable: .*)$/);
    await shot('export-done');

    // An admin disables a user and revokes a device, each after a confirmation.
    page.on('dialog', (dialog) => dialog.accept());
    await page.click('#nav-users');
    await page.waitForSelector('#user-list');
    await page.locator('#user-list tr', { hasText: 'wang' }).locator('button').click();
    await page.waitForSelector('.flash');
    assert.match(await page.locator('#user-list tr', { hasText: 'wang' }).textContent(), /Disabled/);
    await page.click('#nav-devices');
    await page.waitForSelector('#device-list');
    await page.locator('#device-list tr', { hasText: 'seed-office' }).locator('button.device-revoke').click();
    await page.waitForSelector('.flash');
    // The list is drawn again after the flash; a render still under way may replace it once more.
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#device-list tr')].some((tr) => tr.textContent.includes('seed-office') && tr.textContent.includes('Revoked')),
    );
    assert.match(await page.locator('#device-list tr', { hasText: 'seed-office' }).textContent(), /Revoked/);
    await shot('device-revoked');

    // Work wang recorded for another grid waits as held work; the admin merges it.
    await page.click('#nav-held');
    await page.waitForSelector('#held-list');
    assert.equal(await page.locator('.held-item').count(), 1);
    assert.match(await page.textContent('.held-item'), /夜市占道/);
    await shot('held');
    await page.click('.held-item button.held-merge');
    await page.waitForSelector('.flash');
    assert.match(await page.textContent('.flash'), /Merged/);
    assert.equal(await page.locator('.held-item').count(), 0);

    // Back to Chinese.
    await page.click('#lang-toggle');
    await page.waitForSelector('html[lang="zh-CN"]');

    // The example form, written in Excel: checked, which keeps nothing, and previewed as a phone
    // draws it.
    await page.click('#nav-forms');
    await page.waitForSelector('#form-versions');
    const example = page.locator('#form-versions tr[data-kind="anti_fraud_visit"]');
    await page.setInputFiles('#form-file', FORM);
    await page.click('#form-check');
    await page.waitForSelector('#form-preview');
    assert.equal(await example.count(), 0, 'a check keeps nothing');
    const head = page.locator('#form-preview [data-field="household_head"]');
    assert.equal(await head.locator('.pv-label > span:first-child').textContent(), '户主姓名');
    assert.equal(await head.locator('.req').count(), 1, 'the household head is required');
    assert.equal(await head.locator('.badge.sensitive').textContent(), '敏感');
    assert.match(await head.locator('.pv-hint').textContent(), /^与户口簿一致/);
    const statuses = page.locator('#form-preview [data-field="status"] .pv-choices label');
    assert.deepEqual(await statuses.locator('span:first-of-type').allTextContents(), ['已走访', '需回访', '未遇到']);
    assert.match(await page.textContent('#form-preview [data-field="scam_types"] .hint'), /“近三个月接到可疑电话或短信”为“是”时必填/);
    await shot('form-preview');

    // Kept as a draft, then published after a confirmation.
    await page.click('#form-keep');
    await page.waitForSelector('.flash');
    assert.equal(await example.locator('td.state').textContent(), '草稿');
    assert.equal(await page.textContent('#form-outcome h2'), '预览：反诈宣传入户 第 1 版（草稿）');
    await example.locator('button.form-publish').click();
    await page.waitForSelector('#form-versions tr[data-kind="anti_fraud_visit"].state-published');
    assert.match(await page.textContent('.flash'), /已发布“反诈宣传入户”第 1 版/);
    assert.equal(await example.locator('td.state').textContent(), '已发布');
    assert.equal(await example.locator('button.form-retire').count(), 1, 'a published version can be retired');
    await shot('form-published');

    // A broken schema and a workbook with a bad cell: every problem listed, with its place in
    // the workbook; the table stays as it was.
    await page.setInputFiles('#form-file', { name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from('{"kind": "broken_form",') });
    await page.click('#form-check');
    await page.waitForSelector('#form-problems li');
    assert.match(await page.textContent('#form-problems'), /invalid schema JSON/);
    await page.setInputFiles('#form-file', BAD_FORM);
    await page.click('#form-keep');
    await page.waitForSelector('#form-problems .place');
    assert.equal(await page.textContent('#form-problems .place'), '工作表 survey，单元格 C2（label::zh 列）');
    assert.equal(await page.locator('#form-versions tr[data-kind="unlabelled_form"]').count(), 0);
    assert.equal(await example.locator('td.state').textContent(), '已发布');
    await shot('form-refused');

    // Any stored version previews from the table: the drug-control case, seen only by its
    // assigned worker, with the fields of its visit log.
    await page.locator('#form-versions tr[data-kind="drug_control_case"] a.form-preview').click();
    await page.waitForSelector('#form-preview-log');
    assert.match(await page.textContent('#form-access'), /仅“责任人”中指派的人员/);
    assert.equal(await page.locator('#form-preview-log [data-field="visitor"]').count(), 1);
    await page.click('#logout');
    await page.waitForSelector('#login-form');

    // Township staff have no clearance: they find a dispute by its text, and its parties read
    // as redacted.
    await logIn(page, STAFF, STAFF_PASSWORD);
    assert.equal(await page.locator('#nav-forms').count(), 0, 'only district admins manage forms');
    await page.click('#nav-reports');
    await page.waitForSelector('#report-list');
    await page.fill('input[name="q"]', '宅基地');
    await navigate(page, () => page.click('#apply-filters'));
    await page.waitForFunction(() => location.hash.includes('q='));
    await page.waitForSelector('#report-list');
    assert.equal(await page.locator('#report-list tbody tr').count(), 1, 'the search finds one dispute');
    await page.click('#report-list .report-link');
    await page.waitForSelector('#fields');
    assert.equal((await page.textContent('dd[data-field="parties"]')).trim(), '（已脱敏）');
    assert.equal(await page.locator('#review button').count(), 3, 'staff review reports');
    await shot('staff-redacted');

    // Staff change their own password: a wrong current one is refused, then the change ends
    // their other sessions, and the new password logs them in.
    const NEW_PASSWORD = `${STAFF_PASSWORD} renewed`;
    await page.click('#change-password');
    await page.waitForSelector('#password-form');
    await page.fill('#current-password', 'not the password');
    await page.fill('#new-password', NEW_PASSWORD);
    await page.fill('#confirm-password', NEW_PASSWORD);
    await page.click('#password-submit');
    await page.waitForSelector('#password-form .error:has-text("当前密码不正确")');
    await page.fill('#current-password', STAFF_PASSWORD);
    await page.click('#password-submit');
    await page.waitForSelector('.flash');
    assert.match(await page.textContent('.flash'), /密码已修改/);
    await shot('password-changed');
    await page.click('#logout');
    await page.waitForSelector('#login-form');
    await logIn(page, STAFF, NEW_PASSWORD);
    await page.click('#logout');
    await page.waitForSelector('#login-form');
  });
}

run(main, `console test passed; screenshots in ${SHOTS}`);
