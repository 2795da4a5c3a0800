// Shared by the browser end-to-end tests: starts a real `projectnil serve` on a
// fresh database, drives Debian's Chromium through playwright-core, and keeps
// screenshots and server logs in e2e/artifacts/.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const playgroundDir = resolve(here, '..');
export const repoRoot = resolve(playgroundDir, '..');
export const artifactsDir = join(here, 'artifacts');
mkdirSync(artifactsDir, { recursive: true });

export const serverBin =
  process.env.PROJECTNIL_BIN ||
  (process.env.CARGO_TARGET_DIR
    ? join(resolve(process.env.CARGO_TARGET_DIR), 'debug', 'projectnil')
    : join(repoRoot, 'target', 'debug', 'projectnil'));
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const PG = { host: '127.0.0.1', port: '5432', user: 'postgres' };

/** Fails loudly (never skips) when something the tests need is missing. */
export function checkPrerequisites() {
  const problems = [];
  if (!existsSync(serverBin)) {
    problems.push(`server binary not found at ${serverBin}: run 'cargo build --bin projectnil' or set PROJECTNIL_BIN`);
  }
  if (!existsSync(chromiumPath)) {
    problems.push(`Chromium not found at ${chromiumPath}: run 'apt-get update && apt-get install -y chromium' or set CHROMIUM_PATH`);
  }
  for (const page of ['index.html', 'graphiql.html']) {
    if (!existsSync(join(playgroundDir, 'dist', page))) {
      problems.push(`playground/dist/${page} is missing: run 'npm run build' in playground/ first`);
    }
  }
  if (problems.length) throw new Error(`The browser tests cannot run:\n  - ${problems.join('\n  - ')}`);
}

function psql(sql) {
  const r = spawnSync('psql', ['-h', PG.host, '-p', PG.port, '-U', PG.user, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-qc', sql], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr || r.error}`);
}

/**
 * Starts `projectnil serve` on a random port and a new database; `env` adds to
 * (or overrides) its environment, e.g. a limit.
 * Returns { url, database, stop(), restart() }.
 */
export async function startServer(label, { env: extraEnv = {} } = {}) {
  checkPrerequisites();
  const database = `projectnil_e2e_${randomBytes(6).toString('hex')}`;
  const log = createWriteStream(join(artifactsDir, `${label}-server.log`));
  const env = {
    ...process.env,
    DATABASE_URL: `postgres://${PG.user}@${PG.host}:${PG.port}/${database}`,
    PROJECTNIL_PLAYGROUND_DIR: join(playgroundDir, 'dist'),
    PROJECTNIL_COMPILER_DIR: process.env.PROJECTNIL_COMPILER_DIR || join(repoRoot, 'server', 'compiler'),
    RUST_LOG: process.env.RUST_LOG || 'info',
    NO_COLOR: '1',
    ...extraEnv,
  };

  let child = null;
  const launch = (listen) =>
    new Promise((resolveUrl, reject) => {
      const proc = spawn(serverBin, ['serve'], { env: { ...env, PROJECTNIL_LISTEN: listen }, stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let buffer = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`projectnil did not print 'listening on' within 90 s (see e2e/artifacts/${label}-server.log)`));
      }, 90_000);
      proc.stdout.on('data', (chunk) => {
        log.write(chunk);
        buffer += chunk;
        const m = buffer.match(/listening on (http:\/\/[^\s]+)/);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1].replace(/\/$/, ''));
        }
      });
      proc.stderr.on('data', (chunk) => log.write(chunk));
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`projectnil exited early (code ${code}, signal ${signal}); see e2e/artifacts/${label}-server.log`));
      });
    });

  const stopProcess = async () => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };

  const url = await launch('127.0.0.1:0');
  const { host } = new URL(url);
  return {
    url,
    database,
    /** Stops the server (the database stays) and returns. */
    async kill() {
      await stopProcess();
    },
    /** Starts it again on the same address and database. */
    async restart() {
      await stopProcess();
      return launch(host);
    },
    async stop() {
      await stopProcess();
      log.end();
      try {
        psql(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } catch (err) {
        console.error(`could not drop ${database}: ${err.message}`);
      }
    },
  };
}

/** Headless Debian Chromium with a fresh profile. */
export async function launchBrowser() {
  checkPrerequisites();
  const profile = mkdtempSync(join(tmpdir(), 'projectnil-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Opens a page that records console errors, page errors and any request that
 * leaves the server's origin (everything must be served locally).
 */
export async function openPage(context, origin) {
  const page = await context.newPage();
  const problems = { pageErrors: [], foreignRequests: [], consoleErrors: [] };
  page.on('pageerror', (e) => problems.pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.consoleErrors.push(m.text());
  });
  page.on('request', (r) => {
    const u = r.url();
    if (u.startsWith('data:') || u.startsWith('blob:')) return;
    const { protocol, host } = new URL(u);
    const originHost = new URL(origin).host;
    if (host !== originHost || !['http:', 'ws:'].includes(protocol)) problems.foreignRequests.push(u);
  });
  page.on('websocket', (ws) => {
    if (new URL(ws.url()).host !== new URL(origin).host) problems.foreignRequests.push(ws.url());
  });
  return { page, problems };
}

export async function screenshot(page, name) {
  const path = join(artifactsDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** A GraphQL request from the test itself (as another client would). */
export async function gql(url, query, variables = {}) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors?.length) throw new Error(`GraphQL error: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Polls `check` until it returns a truthy value (no fixed sleeps as assertions). */
export async function waitUntil(check, { timeout = 60_000, interval = 200, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const TEMPLATE_SOURCE = readFileSync(join(repoRoot, 'server', 'compiler', 'example.ts'), 'utf8');
