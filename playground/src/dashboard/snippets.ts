// Ready-to-paste ways to run a function from outside the dashboard: a curl
// command for its HTTP trigger, and a GraphQL executeFunction mutation.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One POSIX shell word: single quotes, each `'` written as `'\''`. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `curl -X POST '<url>' -H 'Content-Type: application/json' [-H 'Authorization: Bearer <key>'] -d '<input>'`. */
export function curlCommand(url: string, input: Record<string, unknown>, apiKey: string): string {
  const words = ['curl', '-X', 'POST', shellQuote(url), '-H', shellQuote('Content-Type: application/json')];
  if (apiKey) words.push('-H', shellQuote(`Authorization: Bearer ${apiKey}`));
  words.push('-d', shellQuote(JSON.stringify(input)));
  return words.join(' ');
}

const SELECTION = 'id status output errorMessage revision';
const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
/** An unpaired surrogate (in `u` mode a pair is one code point and does not match). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Whether `value` can be written as a GraphQL literal: every object key must be a GraphQL name. */
function inlineable(value: Json): boolean {
  if (typeof value === 'string') return !LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.every(inlineable);
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).every(([k, v]) => GRAPHQL_NAME.test(k) && inlineable(v));
  }
  return true;
}

/** A JSON value as a GraphQL input literal (JSON strings and numbers are valid GraphQL ones). */
export function graphqlLiteral(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(graphqlLiteral).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${graphqlLiteral(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

/**
 * An executeFunction mutation to paste into GraphiQL (or POST as `{"query": …}`).
 * The input is written inline; when it cannot be (a key that is not a GraphQL
 * name, e.g. "first name"), the mutation takes $id and $input and a last
 * comment line carries the variables as JSON.
 */
export function graphqlMutation(id: string, input: Record<string, unknown>): string {
  const value = JSON.parse(JSON.stringify(input)) as Json;
  if (inlineable(value)) {
    return [
      'mutation {',
      `  executeFunction(id: ${JSON.stringify(id)}, input: ${graphqlLiteral(value)}) {`,
      `    ${SELECTION}`,
      '  }',
      '}',
    ].join('\n');
  }
  return [
    'mutation ($id: UUID!, $input: JSON) {',
    '  executeFunction(id: $id, input: $input) {',
    `    ${SELECTION}`,
    '  }',
    '}',
    `# Variables (paste into the Variables pane): ${JSON.stringify({ id, input: value })}`,
  ].join('\n');
}
