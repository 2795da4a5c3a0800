// GraphiQL from the graphiql npm package, served by the server: schema docs,
// example operations, a query over HTTP and a subscription over graphql-ws.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPrerequisites, gql, launchBrowser, openPage, screenshot, startServer, waitUntil } from './harness.mjs';

// Missing Chromium, server binary or build: fail the whole file, loudly.
checkPrerequisites();

describe('graphiql', () => {
  let server;
  let browser;
  let page;
  let problems;

  before(async () => {
    server = await startServer('graphiql');
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser.context, server.url));
  });

  after(async () => {
    if (page) await screenshot(page, 'graphiql-final').catch(() => {});
    await browser?.close();
    await server?.stop();
  });

  const response = () => page.locator('.graphiql-response');
  // Monaco renders spaces as no-break spaces.
  const responseText = async () => (await response().innerText()).replace(/\u00a0/g, ' ');
  const tab = (name) => page.locator('.graphiql-tab').filter({ hasText: name });
  /**
   * Clicks run. GraphiQL picks up a tab's operation name a moment after the
   * switch; a run in that window answers "Unknown operation", so run again.
   */
  async function run(done) {
    await waitUntil(
      async () => {
        await page.locator('.graphiql-execute-button').click();
        return waitUntil(
          async () => {
            if (/Unknown operation named/.test(await responseText())) return 'retry';
            return (await done()) ? 'done' : null;
          },
          { timeout: 30_000, message: 'an answer in the response pane' },
        ).then((r) => r === 'done');
      },
      { timeout: 60_000, interval: 500, message: 'a run of the operation' },
    );
  }

  /** Switches tab and waits until the query editor shows that operation. */
  async function openTab(name, operation) {
    await tab(name).click();
    await page.locator('.graphiql-query-editor').getByText(operation).first().waitFor();
  }

  test('loads the schema: the docs explorer shows Query', async () => {
    await page.goto(`${server.url}/graphiql`);
    await page.locator('.graphiql-container').waitFor();
    for (const name of ['ListFunctions', 'CreateFunction', 'ExecuteFunction', 'WatchFunctions']) {
      await tab(name).waitFor();
    }
    await page.getByRole('button', { name: /documentation explorer/i }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByText('Query', { exact: true }).first().waitFor({ timeout: 30_000 });
    await docs.getByText('Query', { exact: true }).first().click();
    await docs.getByText('functions', { exact: true }).first().waitFor();
    await screenshot(page, 'graphiql-docs');
  });

  test('runs the example query', async () => {
    await gql(server.url, 'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }', {
      input: { name: 'from-test', language: 'assemblyscript', source: 'export function handle(input: string): string { return input; }' },
    });
    await openTab('ListFunctions', 'query ListFunctions(');
    await run(async () => /"name": "from-test"/.test(await responseText()));
    assert.match(await responseText(), /"totalCount": 1/);
    await screenshot(page, 'graphiql-query');
  });

  test('runs the example subscription over graphql-ws', async () => {
    await openTab('WatchFunctions', 'subscription WatchFunctions');
    const stop = page.getByRole('button', { name: /^Stop query/ });
    await run(async () => (await stop.count()) > 0);
    // Cause events until one shows (the subscription may take a moment to register).
    await waitUntil(async () => {
      // The Stop button also shows while a run with the previous tab's
      // operation name is on its way to being refused: run again.
      if (/Unknown operation named/.test(await responseText())) {
        await run(async () => (await stop.count()) > 0);
      }
      await gql(server.url, 'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }', {
        input: { name: `sub-${Date.now()}`, language: 'assemblyscript', source: 'export function handle(input: string): string { return input; }' },
      });
      return /functionStatusChanged/.test(await responseText());
    }, { timeout: 60_000, interval: 3000, message: 'a subscription event in the response' });
    await screenshot(page, 'graphiql-subscription');
    await stop.click();
  });

  test('loaded nothing from outside the server and raised no page errors', () => {
    assert.deepEqual(problems.foreignRequests, []);
    assert.deepEqual(problems.pageErrors, []);
  });
});
