// The dashboard in a real browser against a real server: create, live badges,
// compile errors, runs, live executions, search/filter/paging, delete,
// cancelling a running execution, API key, and the connection-lost indicator.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPrerequisites, gql, launchBrowser, openPage, screenshot, startServer, waitUntil } from './harness.mjs';

const BROKEN_SOURCE = `export function handle(input: string): string {
  return input
  let x = ;
}
`;

/** Replaces a CodeMirror editor's whole document with `text`, as typed. */
async function setEditor(page, testId, text) {
  const content = page.locator(`[data-testid="${testId}"] .cm-content`);
  await content.click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

// Never returns: only cancelExecution (or the timeout) ends it.
const LOOP_SOURCE = `export function handle(input: string): string { while (true) {} return input; }
`;

/** The seconds a live timer shows ("1.4 s", or "waiting 1.4 s" while PENDING). */
async function timerSeconds(timer) {
  const text = await timer.innerText({ timeout: 5_000 });
  const m = text.match(/(\d+\.\d) s$/);
  if (!m) throw new Error(`not a timer reading: ${JSON.stringify(text)}`);
  return Number(m[1]);
}

const row = (page, name) => page.locator(`[data-testid="function-row"][data-name="${name}"]`);

// Missing Chromium, server binary or build: fail the whole file, loudly.
checkPrerequisites();

describe('dashboard', () => {
  let server;
  let browser;
  let page;
  let problems;
  let addId;

  before(async () => {
    // Long enough that only Cancel can end the looping execution within the test.
    server = await startServer('dashboard', { env: { PROJECTNIL_EXEC_TIMEOUT_MS: '60000' } });
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser.context, server.url));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('shows the empty state, then creates a function from the template and its badge reaches READY live', async () => {
    await page.goto(`${server.url}/`);
    await page.getByText('No functions yet').waitFor();
    await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 20_000 });
    // Marks this document: if the page reloads, the marker is gone.
    await page.evaluate(() => ((window).__sameDocument = true));
    await screenshot(page, 'dashboard-empty');

    await page.getByTestId('new-function').click();
    const source = page.getByTestId('source-editor');
    await source.getByText('JSON.parse<Input>(input)').waitFor();
    assert.match(await source.locator('.cm-content').innerText(), /import \{ JSON \} from "json-as";/);
    // TypeScript highlighting: keywords get their own styled spans.
    assert.ok((await source.locator('.cm-content span').count()) > 10, 'source is highlighted');
    await page.getByTestId('fn-name').fill('add');
    await page.getByTestId('create').click();

    await page.waitForURL(/#\/functions\/[0-9a-f-]{36}$/);
    addId = page.url().split('/').pop();
    const badge = row(page, 'add').getByTestId('function-status');
    await badge.waitFor();
    // The badge walks PENDING/COMPILING to READY with no reload.
    await row(page, 'add').locator('[data-status="READY"]').waitFor({ timeout: 60_000 });
    await page.locator('[data-testid="detail-status"][data-status="READY"]').waitFor();
    await page.getByText('ready to run').waitFor();
    assert.equal(await page.evaluate(() => (window).__sameDocument), true, 'the page was not reloaded');
    await screenshot(page, 'dashboard-ready');
  });

  test('validates the JSON input, runs the function and shows output and duration', async () => {
    await setEditor(page, 'input-editor', '{"a": 5, "b": ');
    await page.getByTestId('input-error').waitFor();
    assert.equal(await page.getByTestId('run').isDisabled(), true, 'Run is disabled for invalid JSON');
    await setEditor(page, 'input-editor', '[1, 2]');
    await page.getByTestId('input-error').getByText('must be a JSON object').waitFor();

    await setEditor(page, 'input-editor', '{"a":5,"b":3}');
    await page.getByTestId('input-error').waitFor({ state: 'detached' });
    await page.getByTestId('run').click();
    const result = page.getByTestId('run-result');
    await result.locator('[data-status="COMPLETED"]').waitFor({ timeout: 30_000 });
    const output = JSON.parse(await result.getByTestId('exec-output').innerText());
    assert.deepEqual(output, { sum: 8 });
    assert.match(await result.getByTestId('run-duration').innerText(), /\d+(\.\d+)? (ms|s)/);

    // startExecution follows the run live through executionStatusChanged(id).
    await setEditor(page, 'input-editor', '{"a": 40, "b": 2}');
    await page.getByTestId('start').click();
    await page.locator('[data-testid="run-result"] [data-status="COMPLETED"]').waitFor({ timeout: 30_000 });
    assert.deepEqual(JSON.parse(await page.getByTestId('run-result').getByTestId('exec-output').innerText()), { sum: 42 });
    await screenshot(page, 'dashboard-run');
  });

  test('the executions list is newest first and updates live, with details on click', async () => {
    const rows = page.getByTestId('execution-row');
    await waitUntil(async () => (await rows.count()) === 2, { message: 'two executions listed' });

    // Another client runs the function: the row appears without any reload.
    const { executeFunction } = await gql(
      server.url,
      'mutation($id: UUID!) { executeFunction(id: $id, input: {a: 1, b: 2}) { id status } }',
      { id: addId },
    );
    assert.equal(executeFunction.status, 'COMPLETED');
    await page.locator(`[data-testid="execution-row"][data-id="${executeFunction.id}"]`).waitFor({ timeout: 20_000 });
    await waitUntil(async () => (await rows.count()) === 3, { message: 'three executions listed' });
    assert.equal(await rows.first().getAttribute('data-id'), executeFunction.id, 'newest first');
    await page.getByTestId('executions-total').getByText('3 total').waitFor();

    await rows.first().click();
    const detail = page.getByTestId('execution-detail');
    assert.deepEqual(JSON.parse(await detail.getByTestId('exec-input').innerText()), { a: 1, b: 2 });
    assert.deepEqual(JSON.parse(await detail.getByTestId('exec-output').innerText()), { sum: 3 });
    await screenshot(page, 'dashboard-executions');
  });

  test('a broken source shows its compile error next to the source with the line marked', async () => {
    await page.getByTestId('new-function').click();
    await page.getByTestId('fn-name').fill('broken');
    await setEditor(page, 'source-editor', BROKEN_SOURCE);
    await page.keyboard.press('ControlOrMeta+s'); // Ctrl+S creates it
    await page.waitForURL((u) => !u.hash.includes(addId) && /#\/functions\//.test(u.hash));
    await page.locator('[data-testid="detail-status"][data-status="FAILED"]').waitFor({ timeout: 60_000 });
    await row(page, 'broken').locator('[data-status="FAILED"]').waitFor();

    const errors = page.getByTestId('compile-errors');
    await errors.getByText('TS1109').first().waitFor();
    assert.equal(await errors.getByTestId('diag-location').first().innerText(), 'line 3:11');
    const marked = page.locator('[data-testid="source-editor"] .cm-compile-error-line');
    await marked.first().waitFor();
    assert.equal(await marked.count(), 1);
    assert.equal(await marked.getAttribute('data-error-line'), '3');
    assert.equal((await marked.innerText()).trim(), 'let x = ;');
    assert.equal(await page.getByTestId('run').isDisabled(), true, 'a FAILED function cannot run');
    await screenshot(page, 'dashboard-compile-error');

    // Fixing the line and saving recompiles it to READY, still live.
    await setEditor(page, 'source-editor', BROKEN_SOURCE.replace('  let x = ;\n', ''));
    await page.getByTestId('save').click();
    await page.locator('[data-testid="detail-status"][data-status="READY"]').waitFor({ timeout: 60_000 });
    assert.equal(await marked.count(), 0, 'the mark is gone once it compiles');
  });

  test('search, status filter and paging', async () => {
    for (let i = 1; i <= 16; i++) {
      await gql(
        server.url,
        'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }',
        { input: { name: `page-${String(i).padStart(2, '0')}`, language: 'assemblyscript', source: 'export function handle(input: string): string { return input; }' } },
      );
    }
    // 18 functions, 15 a page: new ones appear live in the list.
    const info = page.getByTestId('page-info');
    await info.getByText('1–15 of 18').waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Next page' }).click();
    await info.getByText('16–18 of 18').waitFor();
    assert.equal(await page.getByTestId('function-row').count(), 3);
    await row(page, 'add').waitFor(); // oldest last
    await page.getByRole('button', { name: 'Previous page' }).click();
    await info.getByText('1–15 of 18').waitFor();

    await page.getByTestId('search').fill('page-1');
    await info.getByText('of 7').waitFor(); // page-1, page-10 … page-16
    const names = await page.getByTestId('function-row').evaluateAll((els) => els.map((e) => e.dataset.name));
    assert.ok(names.every((n) => n.includes('page-1')), `search results: ${names}`);
    await page.getByTestId('search').fill('');

    await page.getByTestId('status-filter').selectOption('READY');
    await info.getByText(/ of \d+/).waitFor();
    const statuses = await page.getByTestId('function-status').evaluateAll((els) => els.map((e) => e.dataset.status));
    assert.ok(statuses.length > 0 && statuses.every((s) => s === 'READY'), `filtered statuses: ${statuses}`);
    await page.getByTestId('search').fill('broken');
    await row(page, 'broken').waitFor(); // fixed and recompiled in the previous test
    assert.equal(await page.getByTestId('function-row').count(), 1);
    await page.getByTestId('status-filter').selectOption('FAILED');
    await page.getByText('No function matches this search.').waitFor();
    await page.getByTestId('status-filter').selectOption('');
    await page.getByTestId('search').fill('');
    await info.getByText('1–15 of 18').waitFor();
    await page.getByTestId('queue-panel').locator('[data-queue="compilation_jobs"]').waitFor();
    await screenshot(page, 'dashboard-list');
  });

  test('delete asks for confirmation', async () => {
    await page.getByTestId('search').fill('broken');
    await row(page, 'broken').click();
    await page.getByTestId('delete').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Delete “broken”?').waitFor();
    await screenshot(page, 'dashboard-delete-dialog');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await row(page, 'broken').count(), 1, 'Escape cancels');

    await page.getByTestId('delete').click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await row(page, 'broken').waitFor({ state: 'detached' });
    await page.waitForURL((u) => u.hash === '#/');
    await page.getByText('No function matches this search.').waitFor();
    await page.getByTestId('search').fill('');
    const left = await gql(server.url, '{ functions(nameContains: "broken") { totalCount } }');
    assert.equal(left.functions.totalCount, 0);
  });

  test('a running execution shows a ticking timer and a Cancel button that ends it FAILED (cancelled)', async () => {
    await page.getByTestId('new-function').click();
    await page.getByTestId('fn-name').fill('spin');
    await setEditor(page, 'source-editor', LOOP_SOURCE);
    await page.getByTestId('create').click();
    await page.waitForURL(/#\/functions\/[0-9a-f-]{36}$/);
    const spinId = page.url().split('/').pop();
    await page.locator(`[data-testid="function-detail"][data-id="${spinId}"]`).waitFor();
    const compiled = page.locator('[data-testid="detail-status"][data-status="READY"], [data-testid="detail-status"][data-status="FAILED"]');
    await compiled.waitFor({ timeout: 60_000 });
    assert.equal(await compiled.getAttribute('data-status'), 'READY', 'the looping function compiles');

    // The UI's background start: startExecution, then followed live.
    await page.getByTestId('start').click();
    const result = page.getByTestId('run-result');
    const execId = await result.getAttribute('data-execution-id', { timeout: 30_000 });
    assert.match(execId, /^[0-9a-f-]{36}$/);
    const item = page.locator(`[data-testid="execution-item"][data-id="${execId}"]`);
    await item.locator('[data-testid="execution-status"][data-status="RUNNING"]').waitFor({ timeout: 30_000 });

    // The list's timer counts from startedAt and keeps ticking with no new event.
    const timer = item.locator('[data-testid="execution-elapsed"][data-status="RUNNING"]');
    await timer.waitFor();
    const first = await waitUntil(async () => ({ s: await timerSeconds(timer) }), { message: 'a reading of the list timer' });
    assert.match(await timer.innerText(), /^\d+\.\d s$/, 'a RUNNING timer is not labelled as waiting');
    await waitUntil(async () => (await timerSeconds(timer)) >= first.s + 0.5, {
      timeout: 20_000,
      message: `the list timer to tick past ${first.s + 0.5} s`,
    });
    // The run panel shows the same execution with its own timer and Cancel.
    const panelTimer = result.locator('[data-testid="run-elapsed"][data-status="RUNNING"]');
    await panelTimer.waitFor({ timeout: 20_000 });
    const panelFirst = await waitUntil(async () => ({ s: await timerSeconds(panelTimer) }), { message: 'a reading of the run timer' });
    await waitUntil(async () => (await timerSeconds(panelTimer)) > panelFirst.s, { timeout: 20_000, message: 'the run timer to tick' });
    await result.getByTestId('cancel-execution').waitFor();
    assert.equal(await page.getByTestId('start').isDisabled(), true, 'Start waits while the run is followed');
    const cancel = item.getByTestId('cancel-execution');
    assert.equal(await cancel.isEnabled(), true);
    await screenshot(page, 'dashboard-running');

    // Cancel from the executions list; hold its request to see the button disabled meanwhile.
    let release;
    const held = new Promise((r) => (release = r));
    let cancelSent = false;
    // Left installed afterwards as a pass-through: unrouting while a request is
    // still in the handler would make Playwright handle it a second time.
    await page.route('**/graphql', async (route) => {
      if (route.request().postData()?.includes('cancelExecution')) {
        cancelSent = true;
        await held;
      }
      await route.continue();
    });
    try {
      await cancel.click();
      await waitUntil(() => cancelSent, { timeout: 10_000, message: 'the cancelExecution request' });
      assert.equal(await cancel.isDisabled(), true, 'Cancel is disabled while its request is in flight');
      assert.equal((await cancel.innerText()).trim(), 'Cancelling…');
    } finally {
      release();
    }

    await item.locator('[data-testid="execution-status"][data-status="FAILED"]').waitFor({ timeout: 20_000 });
    assert.match(await item.getByTestId('execution-preview').innerText(), /^cancelled/);
    await cancel.waitFor({ state: 'detached' });
    assert.equal(await item.getByTestId('execution-elapsed').count(), 0, 'the timer is gone once it ended');
    assert.equal(await item.getByTestId('execution-attempt').count(), 0, 'a first attempt shows no attempt');
    assert.equal(await page.getByTestId('cancel-error').count(), 0, 'no cancel error');

    // The run panel followed it to the same end and can run again.
    await result.locator('[data-testid="run-status"][data-status="FAILED"]').waitFor({ timeout: 20_000 });
    assert.match(await result.getByTestId('exec-error').innerText(), /^cancelled/);
    assert.equal(await result.getByTestId('cancel-execution').count(), 0);
    await waitUntil(async () => await page.getByTestId('start').isEnabled(), { message: 'Start enabled again' });

    // As another client sees it.
    const { execution } = await gql(server.url, 'query($id: UUID!) { execution(id: $id) { status errorMessage attempt } }', {
      id: execId,
    });
    assert.equal(execution.status, 'FAILED');
    assert.match(execution.errorMessage, /^cancelled/);
    assert.equal(execution.attempt, 1);
    await screenshot(page, 'dashboard-cancelled');
  });

  test('the API key is sent over HTTP and in the WebSocket connection_init', async () => {
    const initPayloads = [];
    page.on('websocket', (ws) =>
      ws.on('framesent', (f) => {
        const text = typeof f.payload === 'string' ? f.payload : f.payload.toString();
        if (text.includes('connection_init')) initPayloads.push(JSON.parse(text).payload ?? {});
      }),
    );
    const auth = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/graphql')) auth.push(r.headers().authorization ?? null);
    });
    await page.locator('#api-key').fill('e2e-secret');
    await page.locator('#api-key').press('Enter');
    await waitUntil(() => initPayloads.some((p) => p.authorization === 'Bearer e2e-secret'), {
      timeout: 20_000,
      message: 'a connection_init with the key',
    });
    await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 20_000 });
    await page.getByTestId('queue-panel').getByRole('button').click(); // any HTTP request
    await waitUntil(() => auth.includes('Bearer e2e-secret'), { message: 'an HTTP request with the key' });
    assert.equal(await page.evaluate(() => localStorage.getItem('projectnil.apiKey')), 'e2e-secret');

    await page.locator('#api-key').fill('');
    await page.locator('#api-key').press('Enter');
    assert.equal(await page.evaluate(() => localStorage.getItem('projectnil.apiKey')), null);
  });

  test('shows a connection-lost indicator and reconnects by itself', async () => {
    await page.locator('[data-testid="connection"][data-state="connected"]').waitFor();
    await server.kill();
    await page.getByTestId('connection-lost').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor();
    await screenshot(page, 'dashboard-connection-lost');
    await server.restart();
    await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 30_000 });
    await page.getByTestId('connection-lost').waitFor({ state: 'detached' });

    // Live updates work again after the reconnect.
    await gql(server.url, 'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }', {
      input: { name: 'after-reconnect', language: 'assemblyscript', source: 'export function handle(input: string): string { return input; }' },
    });
    await row(page, 'after-reconnect').waitFor({ timeout: 20_000 });
  });

  test('loaded nothing from outside the server and raised no page errors', () => {
    assert.deepEqual(problems.foreignRequests, []);
    assert.deepEqual(problems.pageErrors, []);
  });
});
