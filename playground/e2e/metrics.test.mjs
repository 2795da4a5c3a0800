// Metrics in a real browser against a real server: a function's Metrics panel
// (tiles, the chart's series, error kinds; a kind filters the executions
// list), its live updates as executions finish (throttled refetches, no
// reload), the overview of all functions (totals, top lists) reached from the
// top bar, the empty state, a GraphQL error, and a 400 px wide screen.
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

/** The template, but `{"fail": 1}` makes it throw: the execution ends FAILED with errorKind ABORT. */
const FLAKY_SOURCE = `import { JSON } from "json-as";

@json
class Input { a: i32 = 0; b: i32 = 0; fail: i32 = 0; }
@json
class Output { sum: i32 = 0; }

export function handle(input: string): string {
  const args = JSON.parse<Input>(input);
  if (args.fail != 0) throw new Error("asked to fail");
  const out = new Output();
  out.sum = args.a + args.b;
  return JSON.stringify(out);
}
`;

const CREATE = 'mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }';
const STATUS = 'query($id: UUID!) { function(id: $id) { status compileError } }';
const EXECUTE =
  'mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { id status errorKind errorMessage } }';

async function readyFunction(url, name, source) {
  const { createFunction: f } = await gql(url, CREATE, { input: { name, language: 'assemblyscript', source } });
  await waitUntil(
    async () => {
      const { function: s } = await gql(url, STATUS, { id: f.id });
      if (s.status === 'FAILED') throw new Error(`${name} failed to compile: ${s.compileError}`);
      return s.status === 'READY';
    },
    { timeout: 90_000, message: `${name} to compile` },
  );
  return f.id;
}

/** Runs the function once (as another client would) and returns the finished execution. */
async function run(url, id, input) {
  const { executeFunction: e } = await gql(url, EXECUTE, { id, input });
  return e;
}

const tile = (page, scope, name) => page.getByTestId(scope).getByTestId(`stat-${name}`);
const tileValue = async (page, scope, name) => (await tile(page, scope, name).getAttribute('data-value')) ?? '';

/** Waits until the tiles in `scope` read `expected` ({ total: '4', ... } against data-value). */
async function waitForTiles(page, scope, expected, message) {
  let last = {};
  await waitUntil(
    async () => {
      last = {};
      for (const k of Object.keys(expected)) last[k] = await tileValue(page, scope, k);
      return Object.entries(expected).every(([k, v]) => Number(last[k]) === Number(v) && last[k] !== '');
    },
    { timeout: 20_000, message: `${message}: ${JSON.stringify(expected)}` },
  ).catch((err) => {
    throw new Error(`${err.message}; last seen ${JSON.stringify(last)}`);
  });
}

const errorKind = (page, scope, kind) => page.getByTestId(scope).locator(`[data-testid="error-kind"][data-kind="${kind}"]`);

/** Waits for the Executions panel to say `text` (e.g. "4 total"); its error box, if any, fails at once with the server's words. */
async function executionsSay(panel, text) {
  await waitUntil(
    async () => {
      const box = panel.locator('.error-box');
      if (await box.count()) throw new Error(`the Executions panel shows an error: ${(await box.first().innerText()).replace(/\s+/g, ' ')}`);
      return (await panel.getByTestId('executions-total').innerText()).includes(text);
    },
    { timeout: 10_000, message: `the Executions panel saying "${text}"` },
  ).catch((err) => {
    // waitUntil keeps the last thrown error in its message; make the error box's text the headline.
    const m = err.message.match(/the Executions panel shows an error: .*/);
    throw new Error(m ? m[0] : err.message);
  });
}

/** Every element inside `selector` ends within the viewport's width (nothing sticks out sideways). */
const overflowing = (page, selector) =>
  page.evaluate((sel) => {
    const width = document.documentElement.clientWidth;
    return [...document.querySelectorAll(`${sel}, ${sel} *`)]
      .filter((el) => {
        // uPlot's cursor parks off the plot, inside its clipped area: not on screen.
        if (el.closest('.u-wrap') && !(el instanceof HTMLCanvasElement)) return false;
        const r = el.getBoundingClientRect();
        return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5);
      })
      .slice(0, 5)
      .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} [${Math.round(el.getBoundingClientRect().left)}, ${Math.round(el.getBoundingClientRect().right)}]`);
  }, selector);

describe('metrics', () => {
  let server;
  let browser;
  let page;
  let problems;
  let flakyId;
  let steadyId;
  /** What the flaky function has run so far. */
  const flaky = { completed: 0, failed: 0 };

  before(async () => {
    server = await startServer('metrics');
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser.context, server.url));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a failing run ends FAILED with errorKind ABORT (the API the views read)', async () => {
    flakyId = await readyFunction(server.url, 'flaky', FLAKY_SOURCE);
    for (let i = 0; i < 3; i++) {
      const ok = await run(server.url, flakyId, { a: i, b: 1 });
      assert.equal(ok.status, 'COMPLETED', JSON.stringify(ok));
      assert.equal(ok.errorKind, null);
      flaky.completed++;
    }
    const bad = await run(server.url, flakyId, { fail: 1 });
    assert.equal(bad.status, 'FAILED', JSON.stringify(bad));
    assert.equal(bad.errorKind, 'ABORT', `errorKind of a thrown Error: ${JSON.stringify(bad)}`);
    flaky.failed++;
  });

  test("the function's Metrics panel shows the totals, success rate, durations, chart and error kinds", async () => {
    await page.goto(`${server.url}/#/functions/${flakyId}`);
    await page.locator(`[data-testid="function-detail"][data-id="${flakyId}"]`).waitFor();
    await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 20_000 });
    const panel = page.getByTestId('function-metrics');
    await panel.scrollIntoViewIfNeeded();
    await waitForTiles(page, 'function-metrics', { total: 4, completed: 3, failed: 1, 'success-rate': 0.75 }, 'the first tiles');
    assert.equal((await tile(page, 'function-metrics', 'success-rate').locator('.stat-value').innerText()).trim(), '75.0 %');
    assert.equal((await tile(page, 'function-metrics', 'total').locator('.stat-value').innerText()).trim(), '4');
    // Durations: every tile has a number, and they are ordered.
    const d = {};
    for (const k of ['p50', 'p95', 'p99', 'mean', 'max']) {
      d[k] = Number(await tileValue(page, 'function-metrics', k));
      assert.ok(Number.isFinite(d[k]) && d[k] > 0, `${k} is a positive number of ms (${d[k]})`);
      assert.match(await tile(page, 'function-metrics', k).locator('.stat-value').innerText(), /\d (ms|s)$/);
    }
    assert.ok(d.p50 <= d.p95 && d.p95 <= d.p99 && d.p99 <= d.max, `p50 ≤ p95 ≤ p99 ≤ max: ${JSON.stringify(d)}`);

    // The chart is drawn (uPlot canvas) and its series add up to the tiles.
    const chart = page.getByTestId('function-chart');
    await chart.locator('canvas').first().waitFor();
    assert.equal(await chart.getAttribute('data-completed'), '3');
    assert.equal(await chart.getAttribute('data-failed'), '1');
    const buckets = Number(await chart.getAttribute('data-buckets'));
    assert.ok(buckets > 1 && buckets <= 1000, `a series of ${buckets} buckets`);

    // One error kind: ABORT, once.
    await errorKind(page, 'function-metrics', 'ABORT').waitFor();
    assert.equal(await errorKind(page, 'function-metrics', 'ABORT').getAttribute('data-count'), '1');
    assert.equal(await panel.locator('[data-testid="error-kind"]').count(), 1);
    await screenshot(page, 'metrics-function');

    // Each window asks for a series of at most 1000 buckets of whole minutes.
    const asked = [];
    const onRequest = (r) => {
      const body = r.postData() ?? '';
      if (r.url().endsWith('/graphql') && body.includes('DashboardFunctionStats')) asked.push(JSON.parse(body).variables);
    };
    page.on('request', onRequest);
    const spans = { '1h': 3600, '24h': 86_400, '7d': 604_800 };
    for (const w of ['1h', '7d', '24h']) {
      const n = asked.length;
      await page.getByTestId(`window-${w}`).click();
      assert.equal(await page.getByTestId(`window-${w}`).getAttribute('aria-pressed'), 'true');
      await waitUntil(() => asked.length > n, { message: `the ${w} request` });
      const v = asked[n];
      // The window ends at the server's now (no until), so a run that just finished always counts.
      assert.equal(v.until, undefined, 'no until');
      const back = (Date.now() - Date.parse(v.since)) / 1000;
      assert.ok(Math.abs(back - spans[w]) < 30, `the ${w} window starts ${back} s ago`);
      v.span = spans[w];
      await waitForTiles(page, 'function-metrics', { total: 4 }, `the ${w} window`);
    }
    page.off('request', onRequest);
    for (const v of asked.filter((a) => a.span)) {
      const span = v.span;
      assert.ok(v.bucketSeconds % 60 === 0 && v.bucketSeconds >= 60 && v.bucketSeconds <= 86_400, `bucketSeconds ${v.bucketSeconds}`);
      assert.ok(span / v.bucketSeconds <= 1000, `${span / v.bucketSeconds} buckets`);
    }

    // The Executions panel (which the error kinds filter) loaded the same executions.
    await executionsSay(page.getByTestId('executions'), '4 total');
  });

  test('an execution finishing elsewhere updates the numbers live, with throttled refetches', async () => {
    await page.evaluate(() => (window.__sameDocument = true));
    await run(server.url, flakyId, { fail: 1 });
    flaky.failed++;
    await waitForTiles(page, 'function-metrics', { total: 5, failed: 2, 'success-rate': 0.6 }, 'the tiles after one more failure');
    await waitUntil(async () => (await errorKind(page, 'function-metrics', 'ABORT').getAttribute('data-count')) === '2', {
      timeout: 10_000,
      message: 'ABORT counted twice',
    });
    assert.equal(await page.getByTestId('function-chart').getAttribute('data-failed'), '2');

    // A burst of executions: the panel follows, but asks at most once every 2 s.
    const times = [];
    const onRequest = (r) => {
      if (r.url().endsWith('/graphql') && (r.postData() ?? '').includes('DashboardFunctionStats')) times.push(Date.now());
    };
    page.on('request', onRequest);
    const started = Date.now();
    const burst = [];
    for (let i = 0; i < 8; i++) burst.push(run(server.url, flakyId, i % 4 === 3 ? { fail: 1 } : { a: i, b: i }));
    const results = await Promise.all(burst);
    for (const e of results) {
      if (e.status === 'COMPLETED') flaky.completed++;
      else flaky.failed++;
    }
    const total = flaky.completed + flaky.failed;
    await waitForTiles(
      page,
      'function-metrics',
      { total, completed: flaky.completed, failed: flaky.failed },
      'the tiles after a burst',
    );
    // Let any trailing refetch happen, then look at the spacing.
    await new Promise((r) => setTimeout(r, 2500));
    page.off('request', onRequest);
    const elapsed = Date.now() - started;
    assert.ok(times.length >= 1, 'the burst was followed');
    for (let i = 1; i < times.length; i++) {
      assert.ok(times[i] - times[i - 1] >= 1900, `refetches ${times[i] - times[i - 1]} ms apart (all: ${times.map((t) => t - started)})`);
    }
    assert.ok(times.length <= Math.ceil(elapsed / 2000) + 1, `${times.length} refetches in ${elapsed} ms`);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
    await screenshot(page, 'metrics-function-live');
  });

  test('an error kind shows the executions that failed with it', async () => {
    const kind = errorKind(page, 'function-metrics', 'ABORT');
    assert.equal(await kind.getAttribute('data-count'), String(flaky.failed));
    await kind.getByTestId('error-kind-show').click();
    const executions = page.locator('[data-testid="executions"][data-error-kind="ABORT"]');
    await executions.waitFor();
    await executions.getByTestId('executions-filter').waitFor();
    await executionsSay(executions, `${flaky.failed} failed with ABORT`);
    const items = executions.getByTestId('execution-item');
    await waitUntil(async () => (await items.count()) === flaky.failed, { message: `${flaky.failed} listed executions` });
    for (const k of await items.evaluateAll((els) => els.map((el) => [el.dataset.status, el.dataset.errorKind]))) {
      assert.deepEqual(k, ['FAILED', 'ABORT']);
    }
    // The list came into view.
    await waitUntil(
      () =>
        executions.evaluate((el) => {
          const r = el.getBoundingClientRect();
          return r.top < window.innerHeight && r.bottom > 0;
        }),
      { message: 'the filtered executions in view' },
    );
    // Opening one shows the kind with the error.
    await items.first().getByTestId('execution-row').click();
    assert.equal((await items.first().getByTestId('exec-error-kind').innerText()).trim(), 'ABORT');
    await screenshot(page, 'metrics-executions-filtered');

    // A new failure joins the filtered list live; a success does not.
    await run(server.url, flakyId, { a: 1, b: 1 });
    flaky.completed++;
    await run(server.url, flakyId, { fail: 1 });
    flaky.failed++;
    await waitUntil(async () => (await items.count()) === flaky.failed, { timeout: 10_000, message: 'the new failure listed' });

    await executions.getByTestId('executions-filter-clear').click();
    const all = page.locator('[data-testid="executions"]:not([data-error-kind])');
    await all.waitFor();
    await executionsSay(all, `${flaky.completed + flaky.failed} total`);
  });

  test('a function with no finished executions says so', async () => {
    const { createFunction: idle } = await gql(server.url, CREATE, {
      input: { name: 'idle', language: 'assemblyscript', source: TEMPLATE_SOURCE },
    });
    await page.goto(`${server.url}/#/functions/${idle.id}`);
    const panel = page.getByTestId('function-metrics');
    await panel.getByTestId('metrics-empty').waitFor({ timeout: 20_000 });
    assert.match(await panel.getByTestId('metrics-empty').innerText(), /No executions finished in this window/);
    assert.equal(await tileValue(page, 'function-metrics', 'total'), '0');
    assert.equal((await tile(page, 'function-metrics', 'success-rate').locator('.stat-value').innerText()).trim(), '—');
    assert.equal(await tileValue(page, 'function-metrics', 'success-rate'), '');
    assert.equal(await panel.getByTestId('function-chart').count(), 0);
    await panel.scrollIntoViewIfNeeded();
    await screenshot(page, 'metrics-function-empty');
  });

  test('a GraphQL error is shown, and Retry recovers', async () => {
    let failing = true;
    await page.route('**/graphql', async (route) => {
      const body = route.request().postData() ?? '';
      if (failing && body.includes('DashboardFunctionStats')) {
        await route.fulfill({
          status: 200,
          contentType: 'application/json',
          body: JSON.stringify({ data: null, errors: [{ message: 'stats are unavailable', extensions: { code: 'INTERNAL' } }] }),
        });
      } else {
        await route.continue();
      }
    });
    try {
      await page.goto(`${server.url}/#/functions/${flakyId}`);
      const error = page.getByTestId('function-metrics').getByTestId('metrics-error');
      await error.waitFor({ timeout: 20_000 });
      assert.match(await error.innerText(), /stats are unavailable/);
      assert.equal(await error.getAttribute('data-code'), 'INTERNAL');
      await error.scrollIntoViewIfNeeded();
      await screenshot(page, 'metrics-function-error');
      failing = false;
      await error.getByRole('button', { name: 'Retry' }).click();
      await error.waitFor({ state: 'detached' });
      await waitForTiles(page, 'function-metrics', { total: flaky.completed + flaky.failed }, 'the tiles after Retry');
    } finally {
      await page.unroute('**/graphql');
    }
  });

  test('the overview, from the top bar, shows the platform totals and the top functions, live', async () => {
    steadyId = await readyFunction(server.url, 'steady', TEMPLATE_SOURCE);
    for (let i = 0; i < 2; i++) assert.equal((await run(server.url, steadyId, { a: i, b: 2 })).status, 'COMPLETED');
    const steady = { completed: 2 };

    await page.goto(`${server.url}/`);
    await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: 20_000 });
    await page.evaluate(() => (window.__sameDocument = true));
    await page.getByTestId('nav-metrics').click();
    await page.waitForURL((u) => u.hash === '#/metrics');
    const overview = page.getByTestId('metrics-overview');
    await overview.waitFor();
    assert.equal(await page.getByTestId('nav-metrics').getAttribute('aria-current'), 'page');

    const expectTotals = () => {
      const completed = flaky.completed + steady.completed;
      const failed = flaky.failed;
      return { total: completed + failed, completed, failed, 'success-rate': completed / (completed + failed) };
    };
    await waitForTiles(page, 'metrics-overview', expectTotals(), 'the platform totals');
    const chart = page.getByTestId('platform-chart');
    await chart.locator('canvas').first().waitFor();
    assert.equal(Number(await chart.getAttribute('data-completed')), expectTotals().completed);
    assert.equal(Number(await chart.getAttribute('data-failed')), expectTotals().failed);
    await errorKind(page, 'metrics-overview', 'ABORT').waitFor();
    assert.equal(await errorKind(page, 'metrics-overview', 'ABORT').getAttribute('data-count'), String(flaky.failed));

    // Top by invocations: flaky first, then steady; by failures: flaky alone.
    const rows = async (list) =>
      page
        .getByTestId(list)
        .getByTestId('top-row')
        .evaluateAll((els) => els.map((el) => [el.dataset.name, Number(el.dataset.count)]));
    assert.deepEqual(await rows('top-invocations'), [
      ['flaky', flaky.completed + flaky.failed],
      ['steady', steady.completed],
    ]);
    assert.deepEqual(await rows('top-failures'), [['flaky', flaky.failed]]);
    await screenshot(page, 'metrics-overview');

    // One more run elsewhere: the totals and steady's row follow, no reload.
    await run(server.url, steadyId, { a: 40, b: 2 });
    steady.completed++;
    await waitForTiles(page, 'metrics-overview', expectTotals(), 'the platform totals after one more run');
    await waitUntil(
      async () =>
        JSON.stringify(await rows('top-invocations')) ===
        JSON.stringify([
          ['flaky', flaky.completed + flaky.failed],
          ['steady', steady.completed],
        ]),
      { timeout: 10_000, message: "steady's row counting the new run" },
    );
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');

    // A row opens its function.
    await page.getByTestId('top-failures').getByRole('link', { name: 'flaky' }).click();
    await page.locator(`[data-testid="function-detail"][data-id="${flakyId}"]`).waitFor();
    await screenshot(page, 'metrics-overview-live');
  });

  test('at 400 px wide nothing overflows sideways and the charts fit', async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    try {
      await page.goto(`${server.url}/#/metrics`);
      const overview = page.getByTestId('metrics-overview');
      await page.getByTestId('platform-chart').locator('canvas').first().waitFor({ timeout: 20_000 });
      await page.getByTestId('top-invocations').getByTestId('top-row').first().waitFor();
      const doc = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(doc <= 400, `the overview page is ${doc} px wide`);
      assert.deepEqual(await overflowing(page, '[data-testid="metrics-overview"]'), []);
      const canvas = await page.getByTestId('platform-chart').locator('canvas').first().boundingBox();
      const box = await overview.boundingBox();
      assert.ok(canvas.width <= box.width && canvas.width >= 250, `the chart (${canvas.width} px) fits the page (${box.width} px)`);
      await overview.scrollIntoViewIfNeeded();
      await screenshot(page, 'metrics-narrow-overview');

      await page.goto(`${server.url}/#/functions/${flakyId}`);
      const panel = page.getByTestId('function-metrics');
      await panel.getByTestId('function-chart').locator('canvas').first().waitFor({ timeout: 20_000 });
      await panel.scrollIntoViewIfNeeded();
      const docFn = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(docFn <= 400, `the function page is ${docFn} px wide`);
      assert.deepEqual(await overflowing(page, '[data-testid="function-metrics"]'), []);
      const fnCanvas = await panel.getByTestId('function-chart').locator('canvas').first().boundingBox();
      assert.ok(fnCanvas.x >= 0 && fnCanvas.x + fnCanvas.width <= 400, `the chart fits: ${JSON.stringify(fnCanvas)}`);
      await screenshot(page, 'metrics-narrow-function');

      // Back to wide: the chart grows with its container.
      await page.setViewportSize({ width: 1440, height: 900 });
      await waitUntil(
        async () => (await panel.getByTestId('function-chart').locator('canvas').first().boundingBox()).width > 600,
        { message: 'the chart resized with its container' },
      );
    } finally {
      await page.setViewportSize({ width: 1440, height: 900 });
    }
  });

  test('loaded nothing from outside the server and raised no page errors', () => {
    assert.deepEqual(problems.foreignRequests, []);
    assert.deepEqual(problems.pageErrors, []);
  });
});
