// Example operations pre-filled as GraphiQL tabs (used when the browser has no
// saved GraphiQL tabs yet).
import { TEMPLATE_SOURCE } from '../dashboard/api';

/**
 * The examples stay text, comments included. Wrapped in a function named
 * `gql`, each is validated against the schema by `gql.tada check` (part of
 * `npm run typecheck`).
 */
const gql = (document: string): string => document;

const createFunction = gql(`# Create a function from the contract's example.
# It starts PENDING: watch it compile in the
# WatchFunctions tab or on the dashboard.
mutation CreateFunction($input: CreateFunctionInput!) {
  createFunction(input: $input) {
    id
    name
    status
    revision
  }
}
`);

const listFunctions = gql(`# Newest first. Page with Relay cursors: pass
# pageInfo.endCursor as "after". Filter with
# status (e.g. READY) and nameContains.
query ListFunctions(
  $first: Int = 10
  $after: String
  $status: FunctionStatus
  $nameContains: String
) {
  functions(
    first: $first
    after: $after
    status: $status
    nameContains: $nameContains
  ) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      name
      status
      compileError
      wasmSize
      updatedAt
    }
  }
}
`);

const queueStats = gql(`# Operators: compilation queue backlogs.
query QueueStats {
  queueStats {
    queueName
    length
    oldestMessageAgeSeconds
    totalMessages
  }
}
`);

const executeFunction = gql(`# Run a READY function: put its id in the
# variables below (ListFunctions shows ids).
mutation ExecuteFunction($id: UUID!, $input: JSON) {
  executeFunction(id: $id, input: $input) {
    id
    status
    output
    errorMessage
    logs
    durationMs
    revision
  }
}
`);

const functionVersions = gql(`# Every revision of a function, newest first.
# Executions run deployedRevision: a newer revision
# that is PENDING or FAILED does not stop them.
# Make a READY one live again with
#   mutation { rollbackFunction(id: "…", revision: 1) { revision deployedRevision } }
query FunctionVersions($id: UUID!) {
  function(id: $id) {
    revision
    deployedRevision
    status
    versions(first: 10) {
      nodes { revision status compileError wasmSize createdAt }
    }
  }
}
`);

const subscription = gql(`# Live status of every function: run this, then
# create or edit a function (CreateFunction tab
# or the dashboard) and watch the events arrive.
subscription WatchFunctions {
  functionStatusChanged {
    at
    previousStatus
    status
    function { id name compileError }
  }
}
`);

export const EXAMPLE_TABS = [
  // The first tab's variables are not restored by GraphiQL 5, so it needs none.
  { query: listFunctions },
  {
    query: createFunction,
    variables: JSON.stringify(
      { input: { name: 'add', description: 'Adds a and b', language: 'assemblyscript', source: TEMPLATE_SOURCE } },
      null,
      2,
    ),
  },
  {
    query: executeFunction,
    variables: JSON.stringify({ id: '00000000-0000-0000-0000-000000000000', input: { a: 5, b: 3 } }, null, 2),
  },
  {
    query: functionVersions,
    variables: JSON.stringify({ id: '00000000-0000-0000-0000-000000000000' }, null, 2),
  },
  { query: subscription },
  { query: queueStats },
];
