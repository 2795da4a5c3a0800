// GraphQL over HTTP for queries and mutations, graphql-ws for subscriptions,
// and a small store describing the WebSocket connection for the UI.
import { print, type DocumentNode } from '@0no-co/graphql.web';
import { createClient, type Client } from 'graphql-ws';
import type { TadaDocumentNode } from './graphql';
import { authHeaders, connectionParams, httpUrl, onApiKeyChange, wsUrl } from './settings';

export class ApiError extends Error {
  /** `extensions.code` from the server, or NETWORK / HTTP_<status>. */
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
  }
}

interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string };
}

function toApiError(errors: GraphQLErrorShape[]): ApiError {
  const first = errors[0];
  const message = errors.map((e) => e.message).join('\n');
  return new ApiError(message, first?.extensions?.code ?? 'GRAPHQL_ERROR');
}

/** A typed document (`graphql()` in ./graphql.ts): its result and variables types. */
export type Document<TData, TVariables> = TadaDocumentNode<TData, TVariables>;

/** The variables argument: optional when the document declares no required variables. */
export type VariablesArg<TVariables> = {} extends TVariables ? [variables?: TVariables] : [variables: TVariables];

// Each document is printed once (documents are module constants).
const printed = new WeakMap<object, string>();

function queryText(doc: DocumentNode): string {
  let text = printed.get(doc);
  if (text === undefined) {
    text = print(doc);
    printed.set(doc, text);
  }
  return text;
}

/** Runs a query or mutation over HTTP: its `data`, or an ApiError. */
export function request<TData, TVariables>(
  doc: Document<TData, TVariables>,
  ...[variables]: VariablesArg<NoInfer<TVariables>>
): Promise<TData> {
  return post<TData>(queryText(doc), variables as Record<string, unknown> | undefined);
}

async function post<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
  let res: Response;
  try {
    res = await fetch(httpUrl(), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...authHeaders(),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('Cannot reach the server. Check that projectnil is running.', 'NETWORK');
  }
  let body: { data?: T | null; errors?: GraphQLErrorShape[] };
  try {
    body = await res.json();
  } catch {
    throw new ApiError(`The server answered HTTP ${res.status} without a GraphQL response.`, `HTTP_${res.status}`);
  }
  if (body.errors?.length) throw toApiError(body.errors);
  if (body.data == null) throw new ApiError(`The server answered HTTP ${res.status} with no data.`, `HTTP_${res.status}`);
  return body.data;
}

// ---- connection state -------------------------------------------------------

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting';

export interface ConnectionState {
  status: ConnectionStatus;
  /** Bumped on every (re)connection: views refetch to catch up on missed events. */
  generation: number;
  /** When the connection was lost, for the indicator. */
  lostAt: number | null;
}

let state: ConnectionState = { status: 'connecting', generation: 0, lostAt: null };
const stateListeners = new Set<() => void>();

function setState(next: Partial<ConnectionState>) {
  state = { ...state, ...next };
  stateListeners.forEach((l) => l());
}

export function getConnectionState(): ConnectionState {
  return state;
}

export function onConnectionState(listener: () => void): () => void {
  stateListeners.add(listener);
  return () => stateListeners.delete(listener);
}

let client: Client | null = null;

function wsClient(): Client {
  if (client) return client;
  client = createClient({
    url: wsUrl(),
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    // 0.5 s, 1 s, 2 s, then every 4-5 s: quick to come back, never hammering.
    retryWait: (retries) =>
      new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** retries, 4000) + Math.random() * 500)),
    connectionParams: () => connectionParams(),
    onNonLazyError: () => {
      // Retries go on forever; the indicator already says we are disconnected.
    },
    on: {
      connecting: () => {
        if (state.status === 'connected') setState({ status: 'reconnecting', lostAt: Date.now() });
      },
      connected: () => setState({ status: 'connected', generation: state.generation + 1, lostAt: null }),
      closed: () => setState({ status: 'reconnecting', lostAt: state.lostAt ?? Date.now() }),
    },
  });
  return client;
}

/** Starts the shared WebSocket (the dashboard keeps it open for live updates). */
export function connect(): void {
  wsClient();
}

// A new API key must reach the server in a fresh connection_init.
onApiKeyChange(() => client?.terminate());

export interface Sink<T> {
  next: (data: T) => void;
  error?: (err: ApiError) => void;
}

/** Subscribes over the shared WebSocket; returns the unsubscribe function. */
export function subscribe<TData, TVariables>(
  doc: Document<TData, TVariables>,
  variables: NoInfer<TVariables>,
  sink: Sink<TData>,
): () => void {
  return wsClient().subscribe<TData>(
    { query: queryText(doc), variables: variables as Record<string, unknown> },
    {
      next: (result) => {
        if (result.errors?.length) sink.error?.(toApiError(result.errors as GraphQLErrorShape[]));
        else if (result.data) sink.next(result.data as TData);
      },
      error: (err) => {
        if (Array.isArray(err)) sink.error?.(toApiError(err as GraphQLErrorShape[]));
        else if (err instanceof Error) sink.error?.(new ApiError(err.message, 'NETWORK'));
        // CloseEvents are retried by the client; nothing to report per subscription.
      },
      complete: () => {},
    },
  );
}
