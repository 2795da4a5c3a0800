// Types and GraphQL documents the dashboard uses (see shared/contract/api.graphql).

export type FunctionStatus = 'PENDING' | 'COMPILING' | 'READY' | 'FAILED';
export type ExecutionStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';
/** Why an execution FAILED, as a kind. */
export type ExecutionErrorKind =
  | 'TIMEOUT'
  | 'MEMORY_LIMIT'
  | 'STACK_OVERFLOW'
  | 'TRAP'
  | 'ABORT'
  | 'INVALID_OUTPUT'
  | 'OUTPUT_TOO_LARGE'
  | 'INTERRUPTED'
  | 'CANCELLED'
  | 'PLATFORM';
export const FUNCTION_STATUSES: FunctionStatus[] = ['PENDING', 'COMPILING', 'READY', 'FAILED'];

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface FunctionSummary {
  id: string;
  name: string;
  status: FunctionStatus;
  language: string;
  revision: number;
  updatedAt: string;
}

export interface FunctionDetail extends FunctionSummary {
  description: string | null;
  source: string;
  compileError: string | null;
  wasmSize: number | null;
  createdAt: string;
  /** The READY revision executions run; null while no revision has compiled. */
  deployedRevision: number | null;
}

/** One immutable revision of a function's source and its compile outcome. */
export interface FunctionVersion {
  revision: number;
  language: string;
  status: FunctionStatus;
  compileError: string | null;
  wasmSize: number | null;
  createdAt: string;
}

export type FunctionChangeKind = 'CURRENT' | 'CREATED' | 'UPDATED' | 'STATUS_CHANGED' | 'DEPLOYED' | 'DELETED';

export interface FunctionChange<F> {
  kind: FunctionChangeKind;
  functionId: string;
  /** null for DELETED. */
  function: F | null;
  at: string;
}

export interface Execution {
  id: string;
  functionId: string;
  status: ExecutionStatus;
  input: unknown;
  output: unknown;
  errorMessage: string | null;
  /** Why it FAILED, as a kind; null unless FAILED. */
  errorKind: ExecutionErrorKind | null;
  logs: string[] | null;
  durationMs: number | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  /** 1 for the first run; higher when a run interrupted by a crash was run again. */
  attempt: number;
  /** The function revision that ran. */
  revision: number;
}

export interface Connection<T> {
  totalCount: number;
  pageInfo: PageInfo;
  nodes: T[];
}

/** Durations of finished executions, in milliseconds. */
export interface DurationStats {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
}

export interface ErrorKindCount {
  kind: ExecutionErrorKind;
  count: number;
}

/** One bucket of a stats series: executions that finished in [at, at + bucketSeconds). */
export interface StatsPoint {
  at: string;
  total: number;
  completed: number;
  failed: number;
  p95Ms: number | null;
}

/** Executions that FINISHED in a window (total = completed + failed). */
export interface ExecutionStats {
  total: number;
  completed: number;
  failed: number;
  /** completed / (completed + failed); null when nothing finished. */
  successRate: number | null;
  /** null when nothing finished. */
  durationMs: DurationStats | null;
  errorsByKind: ErrorKindCount[];
  series: StatsPoint[];
}

export interface QueueStats {
  queueName: string;
  length: number;
  oldestMessageAgeSeconds: number | null;
  totalMessages: number;
}

const SUMMARY = 'id name status language revision updatedAt';
const DETAIL = `${SUMMARY} description source compileError wasmSize createdAt deployedRevision`;
const EXECUTION =
  'id functionId status input output errorMessage errorKind logs durationMs createdAt startedAt completedAt attempt revision';
const VERSION = 'revision language status compileError wasmSize createdAt';

export const FUNCTIONS_QUERY = `
  query DashboardFunctions($first: Int!, $after: String, $status: FunctionStatus, $nameContains: String) {
    functions(first: $first, after: $after, status: $status, nameContains: $nameContains) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { ${SUMMARY} }
    }
  }`;

export const FUNCTION_QUERY = `
  query DashboardFunction($id: UUID!) { function(id: $id) { ${DETAIL} } }`;

/** Every change of every function (no CURRENT snapshot): the list and the queue panel. */
export const ALL_FUNCTIONS_CHANGED_SUBSCRIPTION = `
  subscription DashboardAllFunctions {
    functionChanged { kind functionId function { ${SUMMARY} } }
  }`;

/** One function: CURRENT first, then every change (renames, saves, compiles, deploys, DELETED). */
export const FUNCTION_CHANGED_SUBSCRIPTION = `
  subscription DashboardFunction($id: UUID!) {
    functionChanged(id: $id) { kind functionId at function { ${DETAIL} } }
  }`;

export const CREATE_FUNCTION = `
  mutation DashboardCreate($input: CreateFunctionInput!) { createFunction(input: $input) { ${DETAIL} } }`;

/** CONFLICT when the function's revision is no longer expectedRevision. */
export const UPDATE_FUNCTION = `
  mutation DashboardUpdate($id: UUID!, $input: UpdateFunctionInput!, $expectedRevision: Int) {
    updateFunction(id: $id, input: $input, expectedRevision: $expectedRevision) { ${DETAIL} }
  }`;

/** Makes READY revision `revision` live again at once, as a new revision. */
export const ROLLBACK_FUNCTION = `
  mutation DashboardRollback($id: UUID!, $revision: Int!) {
    rollbackFunction(id: $id, revision: $revision) { ${DETAIL} }
  }`;

/** Newest first; sources are fetched one revision at a time (FUNCTION_VERSION_QUERY). */
export const FUNCTION_VERSIONS_QUERY = `
  query DashboardVersions($id: UUID!, $first: Int!, $after: String) {
    function(id: $id) {
      id
      versions(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { ${VERSION} }
      }
    }
  }`;

export const FUNCTION_VERSION_QUERY = `
  query DashboardVersion($id: UUID!, $revision: Int!) {
    function(id: $id) { id version(revision: $revision) { ${VERSION} source } }
  }`;

export const DELETE_FUNCTION = `
  mutation DashboardDelete($id: UUID!) { deleteFunction(id: $id) }`;

export const EXECUTE_FUNCTION = `
  mutation DashboardExecute($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { ${EXECUTION} } }`;

export const START_EXECUTION = `
  mutation DashboardStart($id: UUID!, $input: JSON) { startExecution(id: $id, input: $input) { ${EXECUTION} } }`;

/** Ends a PENDING or RUNNING execution FAILED ("cancelled"); a finished one comes back unchanged. */
export const CANCEL_EXECUTION = `
  mutation DashboardCancel($id: UUID!) { cancelExecution(id: $id) { ${EXECUTION} } }`;

export const EXECUTION_SUBSCRIPTION = `
  subscription DashboardExecution($id: UUID!) {
    executionStatusChanged(id: $id) { status execution { ${EXECUTION} } }
  }`;

/** errorKind (optional) keeps only the executions that FAILED with that kind. */
export const FUNCTION_EXECUTIONS_QUERY = `
  query DashboardExecutions($id: UUID!, $first: Int!, $after: String, $errorKind: ExecutionErrorKind) {
    function(id: $id) {
      id
      executions(first: $first, after: $after, errorKind: $errorKind) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { ${EXECUTION} }
      }
    }
  }`;

export const FUNCTION_EXECUTIONS_SUBSCRIPTION = `
  subscription DashboardFunctionExecutions($functionId: UUID!) {
    executionStatusChanged(functionId: $functionId) { status execution { ${EXECUTION} } }
  }`;

// ---- metrics ----------------------------------------------------------------

const STATS = `total completed failed successRate
  durationMs { p50 p95 p99 mean max }
  errorsByKind { kind count }
  series(bucketSeconds: $bucketSeconds) { at total completed failed p95Ms }`;

/** One function's statistics over [since, until) (until: the server's now unless given), with a series of bucketSeconds buckets. */
export const FUNCTION_STATS_QUERY = `
  query DashboardFunctionStats($id: UUID!, $since: DateTime, $until: DateTime, $bucketSeconds: Int!) {
    function(id: $id) { id stats(since: $since, until: $until) { ${STATS} } }
  }`;

/** Stats of one function in the overview's top lists. */
export interface FunctionStatsSummary {
  id: string;
  name: string;
  status: FunctionStatus;
  stats: Pick<ExecutionStats, 'total' | 'failed' | 'successRate'>;
}

/**
 * The platform's totals and series, and the small stats of the first 100
 * functions (the page size's maximum) for the overview's top lists, which are
 * sorted client-side: with more than 100 functions they rank only those 100.
 */
export const PLATFORM_STATS_QUERY = `
  query DashboardPlatformStats($since: DateTime, $until: DateTime, $bucketSeconds: Int!) {
    executionStats(since: $since, until: $until) { ${STATS} }
    functions(first: 100) {
      totalCount
      nodes { id name status stats(since: $since, until: $until) { total failed successRate } }
    }
  }`;

/** Only the status: the metrics views refetch (throttled) when executions finish. */
export const FUNCTION_EXECUTIONS_FINISHED_SUBSCRIPTION = `
  subscription DashboardFunctionExecutionsFinished($functionId: UUID!) {
    executionStatusChanged(functionId: $functionId) { status }
  }`;

export const ALL_EXECUTIONS_FINISHED_SUBSCRIPTION = `
  subscription DashboardAllExecutionsFinished {
    executionStatusChanged { status }
  }`;

export const QUEUE_STATS_QUERY = `
  query DashboardQueues { queueStats { queueName length oldestMessageAgeSeconds totalMessages } }`;

/** The contract's example function: the starting template for a new function. */
export const TEMPLATE_SOURCE = `import { JSON } from "json-as";

@json
class Input { a: i32 = 0; b: i32 = 0; }
@json
class Output { sum: i32 = 0; }

export function handle(input: string): string {
  const args = JSON.parse<Input>(input);
  const out = new Output();
  out.sum = args.a + args.b;
  return JSON.stringify(out);
}
`;

export const TEMPLATE_INPUT = '{\n  "a": 5,\n  "b": 3\n}';
