// GraphQL over HTTP conformance: the audit of the graphql-http package (the
// reference suite by the spec's authors) against the real server. Every
// check must pass, warnings included: application/graphql-response+json is
// negotiated (4xx and no `data` for requests that fail before execution),
// and application/json stays the answer for clients that ask for it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { checkPrerequisites, startServer } from './harness.mjs';

checkPrerequisites();

describe('GraphQL over HTTP (graphql-http audit)', () => {
  let server;

  before(async () => {
    server = await startServer('graphql-http');
  });

  after(async () => {
    await server?.stop();
  });

  test('every check of auditServer is ok, with no warnings', async () => {
    const results = await auditServer({ url: `${server.url}/graphql` });
    assert.ok(results.length >= 50, `the audit ran (${results.length} checks)`);
    const problems = [];
    for (const result of results) {
      if (result.status !== 'ok') {
        const body = result.response ? await result.response.text() : '';
        problems.push(`${result.status} ${result.id} ${result.name}: ${result.reason ?? ''} ${body}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('application/json clients keep the legacy answers', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: '{' }),
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^application\/json/);
    const body = await response.json();
    assert.equal(body.errors[0].extensions.code, 'BAD_USER_INPUT');
  });
});
