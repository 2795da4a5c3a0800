// Versions and deploys in a real browser against a real server: the Versions
// panel (every revision, a diff of any two, Rollback, the deployed marker),
// the serving revision in the header, execution rows linking to their
// revision, the unsaved-changes guard, Save & Run, conflicts (on save and
// live), changes by other clients arriving live (renames, deletes), and the
// small fixes: notices, dates, the URL, badge contrast, the kept run input,
// and a 400 px wide screen.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEMPLATE_SOURCE,
  checkPrerequisites,
  gql,
  launchBrowser,
  openPage,
  screenshot,
  startServer,
  waitUntil,
} from './harness.mjs';

checkPrerequisites();

/** The template with `out.sum = args.a + args.b + <extra>;`: its output tells which revision ran. */
const plus = (extra) => TEMPLATE_SOURCE.replace('out.sum = args.a + args.b;', `out.sum = args.a + args.b + ${extra};`);
const BROKEN = TEMPLATE_SOURCE.replace('out.sum = args.a + args.b;', 'out.sum = args.a + ;');

const CREATE = 'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id revision } }';
const UPDATE = 'mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { id revision } }';
const FUNCTION = 'query($id: UUID!) { function(id: $id) { id name description source revision deployedRevision status } }';

async function createFunction(url, name, source = TEMPLATE_SOURCE) {
  const { createFunction: f } = await gql(url, CREATE, { input: { name, language: 'assemblyscript', source } });
  return f.id;
}

/** Replaces a CodeMirror editor's whole document with `text`, as typed. */
async function setEditor(page, testId, text) {
  const content = page.locator(`[data-testid="${testId}"] .cm-content`);
  await content.click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

const editorText = (page, testId) => page.locator(`[data-testid="${testId}"] .cm-content`).first().innerText();

/** The two sides of a merge view: [a, b] texts. */
async function diffSides(page, testId) {
  const sides = page.locator(`[data-testid="${testId}"] .cm-mergeViewEditor .cm-content`);
  await waitUntil(async () => (await sides.count()) === 2, { message: `both sides of ${testId}` });
  return [await sides.nth(0).innerText(), await sides.nth(1).innerText()];
}

const row = (page, name) => page.locator(`[data-testid="function-row"][data-name="${name}"]`);
const versionRow = (page, revision) => page.locator(`[data-testid="version-row"][data-revision="${revision}"]`);
const detailStatus = (page, status) => page.locator(`[data-testid="detail-status"][data-status="${status}"]`);

/** Dispatches a cancelable beforeunload as the browser would: true when the page asks to stay. */
const beforeUnloadBlocks = (page) =>
  page.evaluate(() => {
    const e = new Event('beforeunload', { cancelable: true });
    window.dispatchEvent(e);
    return e.defaultPrevented;
  });

async function open(page, url, id) {
  await page.goto(`${url}/#/functions/${id}`);
  await page.locator(`[data-testid="function-detail"][data-id="${id}"]`).waitFor();
  await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 20_000 });
}

async function runAndRead(page, input) {
  await setEditor(page, 'input-editor', JSON.stringify(input));
  await page.getByTestId('run').click();
  const result = page.getByTestId('run-result');
  await result.locator('[data-testid="run-status"][data-status="COMPLETED"]').waitFor({ timeout: 30_000 });
  return {
    output: JSON.parse(await result.getByTestId('exec-output').innerText()),
    revision: Number((await result.getByTestId('run-result-revision').innerText()).replace(/\D+/g, '')),
    id: await result.getAttribute('data-execution-id'),
  };
}

describe('versions and deploys', () => {
  let server;
  let browser;
  let page;
  let problems;
  let verId;

  before(async () => {
    server = await startServer('versions');
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser.context, server.url));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the Versions panel lists every revision and diffs any two side by side', async () => {
    verId = await createFunction(server.url, 'ver');
    await open(page, server.url, verId);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    await versionRow(page, 1).locator('[data-testid="deployed-marker"]').waitFor();
    await page.getByTestId('serving').getByText('Serving revision 1').waitFor();

    await setEditor(page, 'source-editor', plus(100));
    await page.getByTestId('save').click();
    await versionRow(page, 2).waitFor({ timeout: 20_000 });
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    await versionRow(page, 2).locator('[data-testid="deployed-marker"]').waitFor({ timeout: 20_000 });
    await page.getByTestId('serving').getByText('Serving revision 2').waitFor();

    // Status, date + time and size on each row; Rollback on READY revisions but the deployed one.
    const r1 = versionRow(page, 1);
    assert.equal(await r1.getAttribute('data-status'), 'READY');
    assert.equal(await r1.getAttribute('data-deployed'), 'false');
    assert.match(await r1.innerText(), /[A-Z][a-z]{2} \d{1,2}.*\d{2}:\d{2}:\d{2}/s, 'a date and a time');
    assert.match(await r1.innerText(), /\d+(\.\d)? (B|KiB)/, 'the module size');
    assert.equal(await r1.getByTestId('rollback').count(), 1);
    assert.equal(await versionRow(page, 2).getByTestId('rollback').count(), 0, 'no Rollback on the deployed revision');

    // The newest revision is shown against the one before it.
    assert.equal(await page.getByTestId('diff-from').inputValue(), '1');
    assert.equal(await page.getByTestId('diff-to').inputValue(), '2');
    let [a, b] = await diffSides(page, 'revision-diff');
    assert.match(a, /out\.sum = args\.a \+ args\.b;/);
    assert.match(b, /out\.sum = args\.a \+ args\.b \+ 100;/);
    assert.ok((await page.locator('[data-testid="revision-diff"] .cm-changedLine').count()) >= 2, 'the changed line is marked on both sides');
    await screenshot(page, 'versions-diff');

    // Any two: revision 2 against the empty source, then against itself.
    await page.getByTestId('diff-from').selectOption('0');
    await page.getByTestId('revision-diff').getByTestId('diff-a-label').getByText('empty').waitFor();
    [a, b] = await diffSides(page, 'revision-diff');
    assert.equal(a.trim(), '');
    await page.getByTestId('diff-from').selectOption('2');
    await page.locator('[data-testid="revision-diff"][data-same="true"]').waitFor();
    // Choosing a row compares it with the revision before it.
    await r1.locator('.version-select').click();
    await page.locator('[data-testid="version-row"].selected[data-revision="1"]').waitFor();
    assert.equal(await page.getByTestId('diff-to').inputValue(), '1');
    assert.equal(await page.getByTestId('diff-from').inputValue(), '0');
  });

  test('a failed revision keeps the deployed one serving; Rollback makes an older one live at once', async () => {
    await setEditor(page, 'source-editor', BROKEN);
    await page.getByTestId('save').click();
    await detailStatus(page, 'FAILED').waitFor({ timeout: 60_000 });
    const serving = page.getByTestId('serving');
    await serving.getByText('revision 3 failed to compile — still serving revision 2').waitFor();
    assert.equal(await versionRow(page, 3).getAttribute('data-status'), 'FAILED');
    assert.equal(await versionRow(page, 3).getByTestId('rollback').count(), 0, 'no Rollback on a FAILED revision');
    await versionRow(page, 2).locator('[data-testid="deployed-marker"]').waitFor();
    await screenshot(page, 'versions-failed-still-serving');

    // Runs go on, on revision 2.
    const ran = await runAndRead(page, { a: 5, b: 3 });
    assert.deepEqual(ran.output, { sum: 108 });
    assert.equal(ran.revision, 2);

    // Roll back to revision 1: revision 4 with its source, deployed at once.
    await versionRow(page, 1).getByTestId('rollback').click();
    const dialog = page.getByTestId('rollback-dialog');
    await dialog.getByText('Roll back to revision 1?').waitFor();
    await dialog.getByTestId('dialog-confirm').click();
    await dialog.waitFor({ state: 'hidden' });
    await versionRow(page, 4).locator('[data-testid="deployed-marker"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('[data-testid="deployed-marker"]').count(), 1, 'one deployed marker');
    await serving.getByText('Serving revision 4').waitFor();
    assert.equal(await serving.getAttribute('data-serving'), '4');
    await detailStatus(page, 'READY').waitFor();
    // The editor follows (it had no unsaved edits).
    await waitUntil(async () => /args\.a \+ args\.b;/.test(await editorText(page, 'source-editor')), {
      message: "the editor showing revision 1's source",
    });
    const { function: f } = await gql(server.url, FUNCTION, { id: verId });
    assert.equal(f.revision, 4);
    assert.equal(f.deployedRevision, 4);
    assert.equal(f.source, TEMPLATE_SOURCE);

    const again = await runAndRead(page, { a: 5, b: 3 });
    assert.deepEqual(again.output, { sum: 8 });
    assert.equal(again.revision, 4);
    await screenshot(page, 'versions-rolled-back');
  });

  test('execution rows show their revision and link to it in the Versions panel', async () => {
    const link = page.locator('[data-testid="execution-revision"][data-revision="2"]').first();
    await link.waitFor();
    assert.equal((await link.innerText()).trim(), 'r2');
    // Execution times carry a date.
    assert.match(await page.getByTestId('execution-time').first().innerText(), /[A-Z][a-z]{2} \d{1,2}/);

    await link.click();
    await page.locator('[data-testid="version-row"].selected[data-revision="2"]').waitFor();
    await page.waitForURL((u) => u.hash === `#/functions/${verId}/revisions/2`);
    assert.equal(await page.getByTestId('diff-to').inputValue(), '2');
    await waitUntil(
      () =>
        versionRow(page, 2).evaluate((el) => {
          const r = el.getBoundingClientRect();
          return r.top >= 0 && r.bottom <= window.innerHeight;
        }),
      { message: 'revision 2 scrolled into view' },
    );
    // The same link again (no hash change) still brings it back into view.
    await page.evaluate(() => window.scrollTo(0, 0));
    await link.click();
    await waitUntil(
      () =>
        versionRow(page, 2).evaluate((el) => {
          const r = el.getBoundingClientRect();
          return r.top >= 0 && r.bottom <= window.innerHeight;
        }),
      { message: 'revision 2 scrolled into view again' },
    );
    // A reload keeps the revision chosen.
    await page.reload();
    await page.locator('[data-testid="version-row"].selected[data-revision="2"]').waitFor({ timeout: 20_000 });
  });

  test('unsaved changes: switching to another function asks first, and beforeunload guards the tab', async () => {
    await createFunction(server.url, 'other');
    await open(page, server.url, verId);
    await row(page, 'other').waitFor({ timeout: 20_000 });
    assert.equal(await beforeUnloadBlocks(page), false, 'nothing to lose yet');

    await setEditor(page, 'source-editor', plus(7));
    await page.getByTestId('unsaved').waitFor();
    assert.equal(await beforeUnloadBlocks(page), true, 'beforeunload is registered while there are unsaved edits');

    // Closing or reloading the tab: the browser's own prompt.
    await page.evaluate(() => (window.__sameDocument = true));
    const prompt = new Promise((resolve) => page.once('dialog', (d) => resolve(d)));
    await page.evaluate(() => setTimeout(() => location.reload(), 0));
    const dialog = await prompt;
    assert.equal(dialog.type(), 'beforeunload');
    await dialog.dismiss();
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'staying keeps the page');

    // Another function in the list: the in-app confirmation.
    await row(page, 'other').click();
    const leave = page.getByTestId('leave-dialog');
    await leave.getByText('Leave with unsaved changes?').waitFor();
    assert.match(await leave.innerText(), /unsaved changes to “ver”/);
    await screenshot(page, 'versions-leave-dialog');
    await leave.getByTestId('dialog-cancel').click();
    await leave.waitFor({ state: 'hidden' });
    assert.equal(new URL(page.url()).hash, `#/functions/${verId}`);
    assert.match(await editorText(page, 'source-editor'), /\+ 7;/, 'the edit is still there');

    // Leaving for real discards the edit.
    await row(page, 'other').click();
    await leave.getByTestId('dialog-confirm').click();
    await page.locator('[data-testid="function-detail"]:not([data-id="' + verId + '"])').waitFor();
    assert.equal(await beforeUnloadBlocks(page), false, 'the other function has no unsaved edits');
    await row(page, 'ver').click();
    await page.locator(`[data-testid="function-detail"][data-id="${verId}"]`).waitFor();
    assert.doesNotMatch(await editorText(page, 'source-editor'), /\+ 7;/, 'discarded');
  });

  test('Save & Run saves, waits for the new revision to compile, then runs it', async () => {
    await open(page, server.url, verId);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    const before = (await gql(server.url, FUNCTION, { id: verId })).function.revision;
    await setEditor(page, 'input-editor', '{"a": 1, "b": 2}');
    await setEditor(page, 'source-editor', plus(1000));
    const saveRun = page.getByTestId('save-and-run');
    await saveRun.waitFor();
    assert.match(await page.getByTestId('run').innerText(), new RegExp(`Run revision ${before}`), 'Run alone runs the deployed revision');
    await saveRun.click();
    const result = page.getByTestId('run-result');
    await result.locator('[data-testid="run-status"][data-status="COMPLETED"]').waitFor({ timeout: 90_000 });
    assert.deepEqual(JSON.parse(await result.getByTestId('exec-output').innerText()), { sum: 1003 });
    assert.equal((await result.getByTestId('run-result-revision').innerText()).trim(), `revision ${before + 1}`);
    await page.getByTestId('unsaved').waitFor({ state: 'detached' });
    await saveRun.waitFor({ state: 'detached' });
    const { function: f } = await gql(server.url, FUNCTION, { id: verId });
    assert.equal(f.revision, before + 1);
    assert.equal(f.deployedRevision, before + 1);
    await screenshot(page, 'versions-save-and-run');
  });

  test('a concurrent change then Save: CONFLICT shows theirs and yours; keeping mine saves over theirs', async () => {
    await open(page, server.url, verId);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    const loaded = (await gql(server.url, FUNCTION, { id: verId })).function.revision;
    await setEditor(page, 'source-editor', plus(11)); // mine
    await page.getByTestId('unsaved').waitFor();
    // Another client saves first.
    const { updateFunction: theirs } = await gql(server.url, UPDATE, { id: verId, input: { source: plus(22) } });
    assert.equal(theirs.revision, loaded + 1);

    const answer = page.waitForResponse((r) => r.url().endsWith('/graphql') && /DashboardUpdate/.test(r.request().postData() ?? ''));
    await page.getByTestId('save').click();
    const res = await answer;
    const request = JSON.parse(res.request().postData());
    assert.equal(request.variables.expectedRevision, loaded, 'the save names the revision the edits started from');
    const body = await res.json();
    assert.equal(body.errors?.[0]?.extensions?.code, 'CONFLICT');

    const conflict = page.getByTestId('conflict');
    await conflict.waitFor();
    assert.match(await conflict.innerText(), new RegExp(`revision ${loaded + 1}`));
    const [a, b] = await diffSides(page, 'conflict-diff');
    assert.match(a, /\+ 22;/, 'theirs on the left');
    assert.match(b, /\+ 11;/, 'yours on the right');
    assert.equal(await page.getByTestId('save-error').count(), 0, 'the conflict is shown, not an error');
    await screenshot(page, 'versions-conflict');

    const keep = page.waitForResponse((r) => r.url().endsWith('/graphql') && /DashboardUpdate/.test(r.request().postData() ?? ''));
    await page.getByTestId('keep-mine').click();
    const kept = await keep;
    assert.equal(JSON.parse(kept.request().postData()).variables.expectedRevision, loaded + 1);
    assert.equal((await kept.json()).errors, undefined);
    await conflict.waitFor({ state: 'detached' });
    await page.getByTestId('unsaved').waitFor({ state: 'detached' });
    const { function: f } = await gql(server.url, FUNCTION, { id: verId });
    assert.equal(f.revision, loaded + 2);
    assert.match(f.source, /\+ 11;/);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
  });

  test('a change arriving live while editing shows both versions; taking theirs discards mine', async () => {
    const loaded = (await gql(server.url, FUNCTION, { id: verId })).function.revision;
    await setEditor(page, 'source-editor', plus(33)); // mine
    await page.getByTestId('unsaved').waitFor();
    await gql(server.url, UPDATE, { id: verId, input: { source: plus(44) } });

    const conflict = page.getByTestId('conflict');
    await conflict.waitFor({ timeout: 20_000 });
    const [a, b] = await diffSides(page, 'conflict-diff');
    assert.match(a, /\+ 44;/);
    assert.match(b, /\+ 33;/);
    assert.match(await editorText(page, 'source-editor'), /\+ 33;/, 'mine stays in the editor until I choose');

    await page.getByTestId('take-theirs').click();
    await conflict.waitFor({ state: 'detached' });
    await page.getByTestId('unsaved').waitFor({ state: 'detached' });
    assert.match(await editorText(page, 'source-editor'), /\+ 44;/);
    const { function: f } = await gql(server.url, FUNCTION, { id: verId });
    assert.equal(f.revision, loaded + 1, 'taking theirs saves nothing');
    assert.match(f.source, /\+ 44;/);
  });

  test('renames, description edits and deletes by other clients appear at once', async () => {
    const id = await createFunction(server.url, 'doomed');
    await open(page, server.url, id);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    await page.evaluate(() => (window.__sameDocument = true));

    await gql(server.url, UPDATE, { id, input: { name: 'renamed', description: 'edited elsewhere' } });
    await row(page, 'renamed').waitFor({ timeout: 20_000 });
    await page.getByTestId('detail-name').getByText('renamed').waitFor();
    await waitUntil(async () => (await page.getByTestId('fn-description').inputValue()) === 'edited elsewhere', {
      message: 'the description field following the server',
    });
    assert.equal(await row(page, 'doomed').count(), 0);

    await gql(server.url, 'mutation($id: UUID!) { deleteFunction(id: $id) }', { id });
    await page.getByTestId('deleted-banner').waitFor({ timeout: 20_000 });
    assert.match(await page.getByTestId('deleted-banner').innerText(), /was deleted/);
    assert.equal(await page.getByTestId('run').isDisabled(), true, 'a deleted function cannot run');
    assert.equal(await page.getByTestId('save').isDisabled(), true);
    await row(page, 'renamed').waitFor({ state: 'detached', timeout: 20_000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
    await screenshot(page, 'versions-deleted-elsewhere');
  });

  test('the compiling notice clears once the status settles and never covers the Executions panel', async () => {
    await open(page, server.url, verId);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    await setEditor(page, 'source-editor', plus(55));
    await page.getByTestId('save').click();
    const toast = page.getByTestId('toast');
    await toast.waitFor();
    const [t, ex] = [await toast.boundingBox(), await page.getByTestId('executions').boundingBox()];
    const overlap = t && ex && t.x < ex.x + ex.width && ex.x < t.x + t.width && t.y < ex.y + ex.height && ex.y < t.y + t.height;
    assert.ok(!overlap, `the notice ${JSON.stringify(t)} does not cover the executions panel ${JSON.stringify(ex)}`);
    await detailStatus(page, 'READY').waitFor({ timeout: 60_000 });
    // Settled: no "compiling…" notice remains.
    await page.locator('[data-testid="toast"][data-tag]').waitFor({ state: 'detached', timeout: 5_000 });
  });

  test('search and status filter survive a reload, and the run input is kept per function', async () => {
    await page.goto(`${server.url}/`);
    await page.getByTestId('search').fill('ver');
    await page.getByTestId('status-filter').selectOption('READY');
    await page.waitForURL((u) => u.searchParams.get('q') === 'ver' && u.searchParams.get('status') === 'READY');
    await row(page, 'ver').waitFor();
    await page.reload();
    assert.equal(await page.getByTestId('search').inputValue(), 'ver');
    assert.equal(await page.getByTestId('status-filter').inputValue(), 'READY');
    await row(page, 'ver').waitFor();
    await waitUntil(async () => (await page.getByTestId('function-row').count()) === 1, { message: 'only "ver" listed' });

    // The run input: kept for "ver", the example for "other".
    await row(page, 'ver').click();
    await page.locator(`[data-testid="function-detail"][data-id="${verId}"]`).waitFor();
    await setEditor(page, 'input-editor', '{"a": 70, "b": 7}');
    await page.getByTestId('search').fill('other');
    await page.getByTestId('status-filter').selectOption('');
    await row(page, 'other').click();
    await page.locator(`[data-testid="function-detail"]:not([data-id="${verId}"])`).waitFor();
    assert.match(await editorText(page, 'input-editor'), /"a": 5/);
    await page.goto(`${server.url}/#/functions/${verId}`);
    await page.reload();
    await page.locator(`[data-testid="function-detail"][data-id="${verId}"]`).waitFor();
    assert.equal((await editorText(page, 'input-editor')).trim(), '{"a": 70, "b": 7}');
  });

  test('COMPILING and RUNNING badges are readable', async () => {
    const measured = await page.evaluate(() => {
      const lum = (rgb) => {
        const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
          const c = v / 255;
          return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      return ['compiling', 'running'].map((s) => {
        const el = document.createElement('span');
        el.className = `badge badge-${s}`;
        el.textContent = s.toUpperCase();
        document.body.append(el);
        const cs = getComputedStyle(el);
        const [l1, l2] = [lum(cs.color), lum(cs.backgroundColor)].sort((x, y) => y - x);
        const out = { status: s, contrast: (l1 + 0.05) / (l2 + 0.05), opacity: Number(cs.opacity), animation: cs.animationName };
        el.remove();
        return out;
      });
    });
    for (const m of measured) {
      assert.ok(m.contrast >= 4.5, `${m.status}: contrast ${m.contrast.toFixed(2)} ≥ 4.5`);
      assert.equal(m.opacity, 1, `${m.status}: the text does not fade`);
      assert.equal(m.animation, 'none', `${m.status}: the badge itself does not pulse`);
    }
  });

  test('at 400 px wide the top bar fits and choosing a function brings its details into view', async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    try {
      await page.goto(`${server.url}/`);
      await row(page, 'ver').waitFor();
      const widths = await page.evaluate(() => ({
        doc: document.documentElement.scrollWidth,
        bar: document.querySelector('.topbar').scrollWidth,
        barRight: Math.max(...[...document.querySelectorAll('.topbar > *')].map((e) => e.getBoundingClientRect().right)),
      }));
      assert.ok(widths.doc <= 400, `the page is ${widths.doc} px wide`);
      assert.ok(widths.bar <= 400 && widths.barRight <= 400, `the top bar fits: ${JSON.stringify(widths)}`);
      await screenshot(page, 'versions-narrow-list');

      await row(page, 'ver').click();
      const detail = page.locator(`[data-testid="function-detail"][data-id="${verId}"]`);
      await detail.waitFor();
      await waitUntil(
        () =>
          detail.evaluate((el) => {
            const r = el.getBoundingClientRect();
            return r.top >= -1 && r.top < window.innerHeight / 2;
          }),
        { message: 'the detail scrolled into view' },
      );
      await screenshot(page, 'versions-narrow-detail');
    } finally {
      await page.setViewportSize({ width: 1440, height: 900 });
    }
  });

  test('loaded nothing from outside the server and raised no page errors', () => {
    assert.deepEqual(problems.foreignRequests, []);
    assert.deepEqual(problems.pageErrors, []);
  });
});
