// Types and GraphQL documents the dashboard uses (see shared/contract/api.graphql).

export type FunctionStatus = 'PENDING' | 'COMPILING' | 'READY' | 'FAILED';
export type ExecutionStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';
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
}

export interface Execution {
  id: string;
  functionId: string;
  status: ExecutionStatus;
  input: unknown;
  output: unknown;
  errorMessage: string | null;
  logs: string[] | null;
  durationMs: number | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  /** 1 for the first run; higher when a run interrupted by a crash was run again. */
  attempt: number;
}

export interface Connection<T> {
  totalCount: number;
  pageInfo: PageInfo;
  nodes: T[];
}

export interface QueueStats {
  queueName: string;
  length: number;
  oldestMessageAgeSeconds: number | null;
  totalMessages: number;
}

const SUMMARY = 'id name status language revision updatedAt';
const DETAIL = `${SUMMARY} description source compileError wasmSize createdAt`;
const EXECUTION =
  'id functionId status input output errorMessage logs durationMs createdAt startedAt completedAt attempt';

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

export const ALL_FUNCTION_STATUS_SUBSCRIPTION = `
  subscription DashboardAllFunctions {
    functionStatusChanged { status previousStatus function { ${SUMMARY} } }
  }`;

export const FUNCTION_STATUS_SUBSCRIPTION = `
  subscription DashboardFunction($id: UUID!) {
    functionStatusChanged(id: $id) { status previousStatus function { ${DETAIL} } }
  }`;

export const CREATE_FUNCTION = `
  mutation DashboardCreate($input: CreateFunctionInput!) { createFunction(input: $input) { ${DETAIL} } }`;

export const UPDATE_FUNCTION = `
  mutation DashboardUpdate($id: UUID!, $input: UpdateFunctionInput!) {
    updateFunction(id: $id, input: $input) { ${DETAIL} }
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

export const FUNCTION_EXECUTIONS_QUERY = `
  query DashboardExecutions($id: UUID!, $first: Int!, $after: String) {
    function(id: $id) {
      id
      executions(first: $first, after: $after) {
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
