// A dashboard served from another origin, in a real browser: with that origin
// in PROJECTNIL_CORS_ORIGINS, its page runs a mutation and a query over HTTP
// and a subscription over WebSocket against the server; a page from an origin
// that is not listed is refused by the browser.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { checkPrerequisites, launchBrowser, startServer } from './harness.mjs';

checkPrerequisites();

/** The other origin's page: talks to the API named in ?api=. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>elsewhere</title><script type="module">
const api = new URLSearchParams(location.search).get('api');
const post = async (query, variables) => {
  const response = await fetch(api + '/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
};
try {
  const created = await post(
    'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }',
    { input: { name: 'from elsewhere', language: 'assemblyscript', source: 'export function handle(input: string): string { return input; }' } },
  );
  const id = created.data.createFunction.id;
  const listed = await post('{ functions(first: 5) { totalCount } }');
  const event = await new Promise((resolve, reject) => {
    const ws = new WebSocket(api.replace(/^http/, 'ws') + '/graphql/ws', 'graphql-transport-ws');
    ws.onerror = () => reject(new Error('websocket error'));
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
    ws.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === 'connection_ack') {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: {
          query: 'subscription($id: UUID) { functionStatusChanged(id: $id) { status function { id } } }',
          variables: { id },
        } }));
      } else if (data.type === 'next') {
        resolve(data.payload.data.functionStatusChanged);
        ws.close();
      }
    };
  });
  window.result = { id, total: listed.data.functions.totalCount, event };
} catch (error) {
  window.result = { error: String(error) };
}
</script>`;

/** Serves PAGE on a port of its own: another origin than the API's. */
async function otherOrigin() {
  const server = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(PAGE);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

describe('CORS', () => {
  let allowed, refused, api, browser;

  before(async () => {
    allowed = await otherOrigin();
    refused = await otherOrigin();
    api = await startServer('cors', { env: { PROJECTNIL_CORS_ORIGINS: allowed.origin } });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await api?.stop();
    allowed?.server.close();
    refused?.server.close();
  });

  async function run(origin) {
    const page = await browser.context.newPage();
    await page.goto(`${origin}/?api=${encodeURIComponent(api.url)}`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30_000 });
    const result = await page.evaluate(() => window.result);
    await page.close();
    return result;
  }

  test('a page on an allowed origin runs a mutation, a query and a subscription', async () => {
    const result = await run(allowed.origin);
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.total, 1);
    assert.equal(result.event.function.id, result.id);
    assert.ok(['PENDING', 'COMPILING', 'READY'].includes(result.event.status), result.event.status);
  });

  test('a page on another origin is refused by the browser', async () => {
    const result = await run(refused.origin);
    assert.match(result.error ?? '', /fetch/i);
  });
});
