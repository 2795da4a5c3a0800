// The OpenAPI document of the REST API, against a real server: it is valid
// OpenAPI 3 by a real validator (@apidevtools/swagger-parser), it describes
// every endpoint of the contract (../shared/contract/rest.md) with its method,
// every operation it describes is one the server answers, and /docs renders
// it without anything from the internet.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';
import { checkPrerequisites, startServer } from './harness.mjs';

checkPrerequisites();

/** The endpoints of rest.md's table, as OpenAPI paths. */
const CONTRACT = [
  ['post', '/functions'],
  ['get', '/functions'],
  ['get', '/functions/{id}'],
  ['put', '/functions/{id}'],
  ['delete', '/functions/{id}'],
  ['post', '/functions/{id}/execute'],
  ['get', '/functions/{id}/executions'],
  ['get', '/executions/{id}'],
  ['get', '/health'],
  ['post', '/run/{name}'],
  ['get', '/run/{name}'],
  ['get', '/openapi.json'],
  ['get', '/docs'],
];

describe('OpenAPI document', () => {
  let server;
  let document;

  before(async () => {
    server = await startServer('openapi');
    const response = await fetch(`${server.url}/openapi.json`);
    assert.equal(response.status, 200);
    document = await response.json();
  });

  after(async () => {
    await server?.stop();
  });

  test('is valid OpenAPI 3', async () => {
    assert.match(document.openapi, /^3\./);
    // validate() dereferences in place: give it a copy.
    await SwaggerParser.validate(structuredClone(document));
  });

  test('describes every endpoint of the contract, with its errors', () => {
    for (const [method, path] of CONTRACT) {
      assert.ok(document.paths[path]?.[method], `${method.toUpperCase()} ${path} is not in the document`);
    }
    const create = document.paths['/functions'].post;
    for (const status of ['201', '400', '401', '404', '409', '413', '415', '429', '500']) {
      assert.ok(create.responses[status], `POST /functions documents ${status}`);
    }
    const trigger = document.paths['/run/{name}'].post;
    for (const status of ['200', '422', '503']) {
      assert.ok(trigger.responses[status], `POST /run/{name} documents ${status}`);
    }
    const headers = Object.keys(trigger.responses['200'].headers ?? {}).map((h) => h.toLowerCase());
    assert.ok(headers.includes('x-execution-id'), 'the trigger documents X-Execution-Id');
  });

  test('every operation it describes is one the server answers', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const method of Object.keys(operations)) {
        const url = server.url + path.replace('{id}', id).replace('{name}', 'nobody');
        const init = { method: method.toUpperCase() };
        if (method === 'post' || method === 'put') {
          init.headers = { 'content-type': 'application/json' };
          init.body = '{}';
        }
        const response = await fetch(url, init);
        const body = await response.text();
        assert.notEqual(response.status, 405, `${method} ${path}: ${body}`);
        assert.ok(!body.includes('No such route'), `${method} ${path} is routed: ${body}`);
      }
    }
  });

  test('/docs renders the document with nothing from the internet', async () => {
    const response = await fetch(`${server.url}/docs`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /text\/html/);
    const html = await response.text();
    assert.ok(html.length > 10_000, 'the reference UI is embedded');
    assert.doesNotMatch(html, /<(script|link)[^>]+(src|href)=["']https?:/i, 'no script or stylesheet from another host');
  });
});
