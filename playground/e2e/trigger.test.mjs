// HTTP triggers in a real browser against a real server: the trigger URL on the
// function page (URL-encoded name), "Copy as curl" and "Copy as GraphQL" (what
// lands on the clipboard, and that it runs as pasted: the curl command in a
// shell, the GraphQL document POSTed to /graphql), the fallback field when the
// clipboard API is unavailable, the API key in the curl command, and 400 px.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { checkPrerequisites, gql, launchBrowser, openPage, screenshot, startServer, waitUntil } from './harness.mjs';

checkPrerequisites();

const run = promisify(execFile);

/** Echoes its input: the output shows exactly what reached the function. */
const ECHO_SOURCE = `export function handle(input: string): string {
  return input;
}
`;
// A space, a slash, a non-ASCII letter and a quote: all of them must survive the URL and the shell.
const NAME = "hello world/ü's";
const ENCODED = "hello%20world%2F%C3%BC's";
/** Input with a quote, double quotes, non-ASCII and nesting: shell quoting and GraphQL literals both matter. */
const INPUT = { msg: `it's "quoted" ü`, n: 5, nested: { list: [1, true, null], x: -2.5 } };

const CREATE = 'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }';
const EXECUTION = 'query($id: UUID!) { execution(id: $id) { id functionId status output } }';

/** Replaces a CodeMirror editor's whole document with `text`, as typed. */
async function setEditor(page, testId, text) {
  const content = page.locator(`[data-testid="${testId}"] .cm-content`);
  await content.click();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

async function open(page, url, id) {
  await page.goto(`${url}/#/functions/${id}`);
  await page.locator(`[data-testid="function-detail"][data-id="${id}"]`).waitFor();
  await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 20_000 });
  await page.locator('[data-testid="detail-status"][data-status="READY"]').waitFor({ timeout: 60_000 });
}

/** Clicks a copy button, waits for "Copied", and returns what the page put on the clipboard. */
async function copied(page, testId) {
  const button = page.getByTestId(testId);
  await button.click();
  await page.locator(`[data-testid="${testId}"][data-copied="true"]`).waitFor();
  assert.match(await button.innerText(), /Copied/);
  return page.evaluate(() => navigator.clipboard.readText());
}

/** Runs a copied shell command (with `-i -sS` for the status line and headers) and splits the answer. */
async function curl(command) {
  const { stdout } = await run('sh', ['-c', `${command} -i -sS`], { timeout: 30_000 });
  const [head, ...rest] = stdout.split(/\r?\n\r?\n/);
  const [statusLine, ...headerLines] = head.split(/\r?\n/);
  const headers = Object.fromEntries(
    headerLines.map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
    }),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\n\n') };
}

/** POSTs a GraphQL request as a client would, with an optional API key. */
async function postGraphql(url, body, key) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return res.json();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('HTTP triggers', () => {
  let server;
  let browser;
  let page;
  let problems;
  let id;

  before(async () => {
    server = await startServer('trigger');
    browser = await launchBrowser();
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    ({ page, problems } = await openPage(browser.context, server.url));
    ({ createFunction: { id } } = await gql(server.url, CREATE, {
      input: { name: NAME, language: 'assemblyscript', source: ECHO_SOURCE },
    }));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the function page shows its trigger URL with the name URL-encoded', async () => {
    await open(page, server.url, id);
    const url = page.getByTestId('trigger').getByTestId('trigger-url');
    assert.equal(await url.innerText(), `${server.url}/run/${ENCODED}`);
    await screenshot(page, 'trigger');
  });

  test('"Copy as curl" copies a ready-to-paste command with the run input', async () => {
    await setEditor(page, 'input-editor', JSON.stringify(INPUT, null, 2));
    const command = await copied(page, 'copy-curl');
    assert.equal(
      command,
      `curl -X POST '${server.url}/run/hello%20world%2F%C3%BC'\\''s' -H 'Content-Type: application/json' ` +
        `-d '{"msg":"it'\\''s \\"quoted\\" ü","n":5,"nested":{"list":[1,true,null],"x":-2.5}}'`,
    );
    assert.doesNotMatch(command, /Authorization/, 'no API key, no Authorization header');
    // "Copied" goes away again.
    await page.locator('[data-testid="copy-curl"][data-copied="false"]').waitFor({ timeout: 10_000 });
  });

  test('the copied curl command runs the function: its output, and the execution id in X-Execution-Id', async () => {
    await setEditor(page, 'input-editor', JSON.stringify(INPUT));
    const command = await copied(page, 'copy-curl');
    const res = await curl(command);
    assert.equal(res.status, 200, res.body);
    assert.match(res.headers['content-type'] ?? '', /application\/json/);
    assert.deepEqual(JSON.parse(res.body), INPUT);
    const executionId = res.headers['x-execution-id'];
    assert.match(executionId ?? '', UUID, 'X-Execution-Id is an execution id');
    const { execution } = await gql(server.url, EXECUTION, { id: executionId });
    assert.equal(execution.functionId, id);
    assert.equal(execution.status, 'COMPLETED');
    assert.deepEqual(execution.output, INPUT);
    // The dashboard lists the run live, like any other.
    await page.locator(`[data-testid="execution-row"][data-id="${executionId}"]`).waitFor({ timeout: 20_000 });
  });

  test('"Copy as GraphQL" copies a mutation that runs as pasted', async () => {
    await setEditor(page, 'input-editor', JSON.stringify(INPUT));
    const document = await copied(page, 'copy-graphql');
    assert.equal(
      document,
      [
        'mutation {',
        `  executeFunction(id: "${id}", input: {msg: "it's \\"quoted\\" ü", n: 5, nested: {list: [1, true, null], x: -2.5}}) {`,
        '    id status output errorMessage revision',
        '  }',
        '}',
      ].join('\n'),
    );
    const body = await postGraphql(server.url, { query: document });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    assert.equal(body.data.executeFunction.status, 'COMPLETED');
    assert.deepEqual(body.data.executeFunction.output, INPUT);
    assert.equal(body.data.executeFunction.revision, 1);
  });

  test('an input GraphQL cannot write inline is copied as a mutation with its variables in a comment', async () => {
    const input = { 'first name': 'Ada', 'x-y': [{ 'a b': 1 }] };
    await setEditor(page, 'input-editor', JSON.stringify(input));
    const document = await copied(page, 'copy-graphql');
    const m = document.match(/^# Variables[^:]*: (\{.*\})$/m);
    assert.ok(m, `a variables comment line in:\n${document}`);
    const variables = JSON.parse(m[1]);
    assert.deepEqual(variables, { id, input });
    // The document as pasted (the comment is ignored) with the variables from the comment.
    const body = await postGraphql(server.url, { query: document, variables });
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    assert.equal(body.data.executeFunction.status, 'COMPLETED');
    assert.deepEqual(body.data.executeFunction.output, input);
  });

  test('invalid run input disables both copy buttons', async () => {
    await setEditor(page, 'input-editor', '[1, 2]');
    await page.getByTestId('input-error').waitFor();
    assert.equal(await page.getByTestId('copy-curl').isDisabled(), true);
    assert.equal(await page.getByTestId('copy-graphql').isDisabled(), true);
    await setEditor(page, 'input-editor', '');
    await page.getByTestId('input-error').waitFor({ state: 'detached' });
    // An empty input is {}, as for a run.
    assert.match(await copied(page, 'copy-curl'), / -d '\{\}'$/);
  });

  test('without the clipboard API the text is selected in a read-only field instead', async () => {
    await page.evaluate(() => Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true }));
    await setEditor(page, 'input-editor', '{"a": 1}');
    await page.getByTestId('copy-curl').click();
    const field = page.getByTestId('manual-copy').locator('textarea');
    await field.waitFor();
    const expected = `curl -X POST '${server.url}/run/${ENCODED.replace("'", "'\\''")}' -H 'Content-Type: application/json' -d '{"a":1}'`;
    assert.equal(await field.inputValue(), expected);
    assert.equal(await field.getAttribute('readonly'), '');
    const selection = await field.evaluate((el) => ({
      focused: document.activeElement === el,
      start: el.selectionStart,
      end: el.selectionEnd,
      length: el.value.length,
    }));
    assert.deepEqual(selection, { focused: true, start: 0, end: expected.length, length: expected.length });
    await screenshot(page, 'trigger-manual-copy');
    // The field follows the input, and closes.
    await setEditor(page, 'input-editor', '{"a": 2}');
    await waitUntil(async () => (await field.inputValue()).endsWith(`-d '{"a":2}'`), { message: 'the field follows the input' });
    await page.getByTestId('manual-copy').getByRole('button', { name: 'Close' }).click();
    await page.getByTestId('manual-copy').waitFor({ state: 'detached' });
    await page.reload();
  });

  test('at 400 px wide the trigger box fits', async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    try {
      await open(page, server.url, id);
      const trigger = page.getByTestId('trigger');
      await trigger.scrollIntoViewIfNeeded();
      const widths = await page.evaluate(() => ({
        doc: document.documentElement.scrollWidth,
        right: Math.max(
          ...[...document.querySelectorAll('[data-testid="trigger"], [data-testid="trigger"] *')].map(
            (e) => e.getBoundingClientRect().right,
          ),
        ),
      }));
      assert.ok(widths.doc <= 400, `the page is ${widths.doc} px wide`);
      assert.ok(widths.right <= 400, `the trigger box fits: ${JSON.stringify(widths)}`);
      await screenshot(page, 'trigger-narrow');
    } finally {
      await page.setViewportSize({ width: 1440, height: 900 });
    }
  });

  test('loaded nothing from outside the server and raised no page errors', () => {
    assert.deepEqual(problems.foreignRequests, []);
    assert.deepEqual(problems.pageErrors, []);
  });
});

describe('HTTP triggers with API keys on', () => {
  // A quote, a dollar and a double quote: the key must survive the shell as typed.
  const KEY = `e2e'key$HOME"x`;
  let server;
  let browser;
  let page;
  let id;

  before(async () => {
    server = await startServer('trigger-keys', { env: { PROJECTNIL_API_KEYS: KEY } });
    browser = await launchBrowser();
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    ({ page } = await openPage(browser.context, server.url));
    await page.addInitScript((key) => localStorage.setItem('projectnil.apiKey', key), KEY);
    const body = await postGraphql(
      server.url,
      { query: CREATE, variables: { input: { name: 'echo', language: 'assemblyscript', source: ECHO_SOURCE } } },
      KEY,
    );
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    id = body.data.createFunction.id;
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('"Copy as curl" adds the API key, quoted, and the command runs', async () => {
    await open(page, server.url, id);
    await page.getByTestId('trigger').getByText('includes your API key').waitFor();
    await setEditor(page, 'input-editor', '{"a": 1}');
    const command = await copied(page, 'copy-curl');
    assert.equal(
      command,
      `curl -X POST '${server.url}/run/echo' -H 'Content-Type: application/json' ` +
        `-H 'Authorization: Bearer e2e'\\''key$HOME"x' -d '{"a":1}'`,
    );
    const res = await curl(command);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { a: 1 });
    assert.match(res.headers['x-execution-id'] ?? '', UUID);
    // Without the header the trigger refuses.
    const refused = await curl(command.replace(/ -H 'Authorization: [^]*?' -d/, ' -d'));
    assert.equal(refused.status, 401, refused.body);
  });
});
