// The GraphQL documents the dashboard uses, typed from the schema
// (../../../schema.graphql) by gql.tada, and the types derived from them.
// Fragments share selections; they are unmasked, so their fields are part of
// every result that spreads them.

import exampleSource from '../../../server/compiler/example.ts?raw';
import { graphql, type ResultOf, type SchemaType } from '../shared/graphql';

export type FunctionStatus = SchemaType<'FunctionStatus'>;
export type ExecutionStatus = SchemaType<'ExecutionStatus'>;
/** Why an execution FAILED, as a kind. */
export type ExecutionErrorKind = SchemaType<'ExecutionErrorKind'>;
export const FUNCTION_STATUSES: FunctionStatus[] = ['PENDING', 'COMPILING', 'READY', 'FAILED'];

// ---- fragments --------------------------------------------------------------

const FUNCTION_SUMMARY = graphql(`
  fragment DashboardFunctionSummary on Function { id name status language revision updatedAt }`);

/** `deployedRevision`: the READY revision executions run; null while no revision has compiled. */
const FUNCTION_DETAIL = graphql(
  `
  fragment DashboardFunctionDetail on Function {
    ...DashboardFunctionSummary
    description source compileError wasmSize createdAt deployedRevision
  }`,
  [FUNCTION_SUMMARY],
);

/** `attempt`: 1 for the first run, higher when a run interrupted by a crash was run again; `revision`: the one that ran. */
const EXECUTION = graphql(`
  fragment DashboardExecution on Execution {
    id functionId status input output errorMessage errorKind logs durationMs createdAt startedAt completedAt attempt revision
  }`);

const VERSION = graphql(`
  fragment DashboardVersion on FunctionVersion { revision language status compileError wasmSize createdAt }`);

/** Uses the operation's $bucketSeconds. */
const STATS = graphql(`
  fragment DashboardStats on ExecutionStats {
    total completed failed successRate
    durationMs { p50 p95 p99 mean max }
    errorsByKind { kind count }
    series(bucketSeconds: $bucketSeconds) { at total completed failed p95Ms }
  }`);

export type FunctionSummary = ResultOf<typeof FUNCTION_SUMMARY>;
export type FunctionDetail = ResultOf<typeof FUNCTION_DETAIL>;
/** One immutable revision of a function's source and its compile outcome. */
export type FunctionVersion = ResultOf<typeof VERSION>;
export type Execution = ResultOf<typeof EXECUTION>;
/** Executions that FINISHED in a window (total = completed + failed). */
export type ExecutionStats = ResultOf<typeof STATS>;
/** One bucket of a stats series: executions that finished in [at, at + bucketSeconds). */
export type StatsPoint = ExecutionStats['series'][number];

// ---- functions --------------------------------------------------------------

export const FUNCTIONS_QUERY = graphql(
  `
  query DashboardFunctions($first: Int!, $after: String, $status: FunctionStatus, $nameContains: String) {
    functions(first: $first, after: $after, status: $status, nameContains: $nameContains) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { ...DashboardFunctionSummary }
    }
  }`,
  [FUNCTION_SUMMARY],
);

export const FUNCTION_QUERY = graphql(
  `
  query DashboardFunction($id: UUID!) { function(id: $id) { ...DashboardFunctionDetail } }`,
  [FUNCTION_DETAIL],
);

/** Every change of every function (no CURRENT snapshot): the list and the queue panel. */
export const ALL_FUNCTIONS_CHANGED_SUBSCRIPTION = graphql(
  `
  subscription DashboardAllFunctions {
    functionChanged { kind functionId function { ...DashboardFunctionSummary } }
  }`,
  [FUNCTION_SUMMARY],
);

/** One function: CURRENT first, then every change (renames, saves, compiles, deploys, DELETED). */
export const FUNCTION_CHANGED_SUBSCRIPTION = graphql(
  `
  subscription DashboardFunction($id: UUID!) {
    functionChanged(id: $id) { kind functionId at function { ...DashboardFunctionDetail } }
  }`,
  [FUNCTION_DETAIL],
);

export const CREATE_FUNCTION = graphql(
  `
  mutation DashboardCreate($input: CreateFunctionInput!) { createFunction(input: $input) { ...DashboardFunctionDetail } }`,
  [FUNCTION_DETAIL],
);

/** CONFLICT when the function's revision is no longer expectedRevision. */
export const UPDATE_FUNCTION = graphql(
  `
  mutation DashboardUpdate($id: UUID!, $input: UpdateFunctionInput!, $expectedRevision: Int) {
    updateFunction(id: $id, input: $input, expectedRevision: $expectedRevision) { ...DashboardFunctionDetail }
  }`,
  [FUNCTION_DETAIL],
);

/** Makes READY revision `revision` live again at once, as a new revision. */
export const ROLLBACK_FUNCTION = graphql(
  `
  mutation DashboardRollback($id: UUID!, $revision: Int!) {
    rollbackFunction(id: $id, revision: $revision) { ...DashboardFunctionDetail }
  }`,
  [FUNCTION_DETAIL],
);

export const DELETE_FUNCTION = graphql(`
  mutation DashboardDelete($id: UUID!) { deleteFunction(id: $id) }`);

// ---- versions ---------------------------------------------------------------

/** Newest first; sources are fetched one revision at a time (FUNCTION_VERSION_QUERY). */
export const FUNCTION_VERSIONS_QUERY = graphql(
  `
  query DashboardVersions($id: UUID!, $first: Int!, $after: String) {
    function(id: $id) {
      id
      versions(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { ...DashboardVersion }
      }
    }
  }`,
  [VERSION],
);

export const FUNCTION_VERSION_QUERY = graphql(
  `
  query DashboardVersion($id: UUID!, $revision: Int!) {
    function(id: $id) { id version(revision: $revision) { ...DashboardVersion source } }
  }`,
  [VERSION],
);

// ---- executions -------------------------------------------------------------

export const EXECUTE_FUNCTION = graphql(
  `
  mutation DashboardExecute($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { ...DashboardExecution } }`,
  [EXECUTION],
);

export const START_EXECUTION = graphql(
  `
  mutation DashboardStart($id: UUID!, $input: JSON) { startExecution(id: $id, input: $input) { ...DashboardExecution } }`,
  [EXECUTION],
);

/** Ends a PENDING or RUNNING execution FAILED ("cancelled"); a finished one comes back unchanged. */
export const CANCEL_EXECUTION = graphql(
  `
  mutation DashboardCancel($id: UUID!) { cancelExecution(id: $id) { ...DashboardExecution } }`,
  [EXECUTION],
);

export const EXECUTION_SUBSCRIPTION = graphql(
  `
  subscription DashboardExecution($id: UUID!) {
    executionStatusChanged(id: $id) { status execution { ...DashboardExecution } }
  }`,
  [EXECUTION],
);

/** errorKind (optional) keeps only the executions that FAILED with that kind. */
export const FUNCTION_EXECUTIONS_QUERY = graphql(
  `
  query DashboardExecutions($id: UUID!, $first: Int!, $after: String, $errorKind: ExecutionErrorKind) {
    function(id: $id) {
      id
      executions(first: $first, after: $after, errorKind: $errorKind) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { ...DashboardExecution }
      }
    }
  }`,
  [EXECUTION],
);

export const FUNCTION_EXECUTIONS_SUBSCRIPTION = graphql(
  `
  subscription DashboardFunctionExecutions($functionId: UUID!) {
    executionStatusChanged(functionId: $functionId) { status execution { ...DashboardExecution } }
  }`,
  [EXECUTION],
);

// ---- metrics ----------------------------------------------------------------

/** One function's statistics over [since, until) (until: the server's now unless given), with a series of bucketSeconds buckets. */
export const FUNCTION_STATS_QUERY = graphql(
  `
  query DashboardFunctionStats($id: UUID!, $since: DateTime, $until: DateTime, $bucketSeconds: Int!) {
    function(id: $id) { id stats(since: $since, until: $until) { ...DashboardStats } }
  }`,
  [STATS],
);

/**
 * The platform's totals and series, and the small stats of the first 100
 * functions (the page size's maximum) for the overview's top lists, which are
 * sorted client-side: with more than 100 functions they rank only those 100.
 */
export const PLATFORM_STATS_QUERY = graphql(
  `
  query DashboardPlatformStats($since: DateTime, $until: DateTime, $bucketSeconds: Int!) {
    executionStats(since: $since, until: $until) { ...DashboardStats }
    functions(first: 100) {
      totalCount
      nodes { id name status stats(since: $since, until: $until) { total failed successRate } }
    }
  }`,
  [STATS],
);

/** Stats of one function in the overview's top lists. */
export type FunctionStatsSummary = ResultOf<typeof PLATFORM_STATS_QUERY>['functions']['nodes'][number];

/** Only the status: the metrics views refetch (throttled) when executions finish. */
export const FUNCTION_EXECUTIONS_FINISHED_SUBSCRIPTION = graphql(`
  subscription DashboardFunctionExecutionsFinished($functionId: UUID!) {
    executionStatusChanged(functionId: $functionId) { status }
  }`);

export const ALL_EXECUTIONS_FINISHED_SUBSCRIPTION = graphql(`
  subscription DashboardAllExecutionsFinished {
    executionStatusChanged { status }
  }`);

// ---- operators --------------------------------------------------------------

export const QUEUE_STATS_QUERY = graphql(`
  query DashboardQueues { queueStats { queueName length oldestMessageAgeSeconds totalMessages } }`);

export type QueueStats = ResultOf<typeof QUEUE_STATS_QUERY>['queueStats'][number];

/** The contract's example function, the starting template for a new function
 * (kept once, beside the compiler, which warms up on it). */
export const TEMPLATE_SOURCE: string = exampleSource;

export const TEMPLATE_INPUT = '{\n  "a": 5,\n  "b": 3\n}';
