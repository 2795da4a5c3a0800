import { useCallback, useEffect, useRef, useState, useSyncExternalStore, type Dispatch, type SetStateAction } from 'react';
import { getConnectionState, onConnectionState, request, type Document, type VariablesArg } from '../shared/client';
import { getApiKey, onApiKeyChange } from '../shared/settings';

export function useConnection() {
  return useSyncExternalStore(onConnectionState, getConnectionState);
}

export interface QueryOptions<TData> {
  /** Do not fetch (yet); whatever was loaded stays. */
  skip?: boolean;
  /** Fetch again whenever one of these changes (e.g. the connection's generation). Keep its length fixed. */
  refetchOn?: readonly unknown[];
  /**
   * Every answer that is not stale, as it arrives (before it renders): for views
   * that merge answers into state of their own kept live by subscriptions.
   */
  onData?: (data: TData) => void;
}

export interface QueryResult<TData, TVariables> {
  /** The latest answer, kept while fetching again and after an error; undefined until the first. */
  data: TData | undefined;
  /** The variables `data` answers (the very object that was passed). */
  variables: TVariables | undefined;
  /** The latest request's error; null once one succeeds. */
  error: unknown;
  /** A request is in flight (true from the start unless skipped). */
  loading: boolean;
  /** Fetches again now; resolves with this answer, or undefined when it failed. */
  refetch: () => Promise<TData | undefined>;
  /** Patches `data` in place (live updates); the next answer replaces it. */
  setData: Dispatch<SetStateAction<TData | undefined>>;
}

interface QueryState<TData, TVariables> {
  data?: TData;
  variables?: TVariables;
  error: unknown;
  loading: boolean;
}

/**
 * Runs a query document, again when its variables (compared by value) or
 * `refetchOn` change and on `refetch()`; answers to older requests are dropped.
 */
export function useQuery<TData, TVariables>(
  doc: Document<TData, TVariables>,
  variables: NoInfer<TVariables>,
  { skip = false, refetchOn = [], onData }: QueryOptions<NoInfer<TData>> = {},
): QueryResult<TData, TVariables> {
  const [state, setState] = useState<QueryState<TData, TVariables>>({ error: null, loading: !skip });
  const latest = useRef({ doc, variables, onData });
  latest.current = { doc, variables, onData };
  const seq = useRef(0);

  const refetch = useCallback(async () => {
    const mine = ++seq.current;
    const { doc, variables } = latest.current;
    setState((s) => (s.loading ? s : { ...s, loading: true }));
    try {
      const data = await request(doc, ...([variables] as VariablesArg<TVariables>));
      if (mine === seq.current) {
        latest.current.onData?.(data);
        setState({ data, variables, error: null, loading: false });
      }
      return data;
    } catch (error) {
      if (mine === seq.current) setState((s) => ({ ...s, error, loading: false }));
      return undefined;
    }
  }, []);

  const key = JSON.stringify(variables);
  useEffect(() => {
    if (!skip) void refetch();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [refetch, doc, key, skip, ...refetchOn]);

  const setData: Dispatch<SetStateAction<TData | undefined>> = useCallback(
    (next) =>
      setState((s) => ({ ...s, data: typeof next === 'function' ? (next as (d?: TData) => TData | undefined)(s.data) : next })),
    [],
  );

  const { data, variables: answered, error, loading } = state;
  return { data, variables: answered, error, loading, refetch, setData };
}

/**
 * On a one-column (narrow) screen the page sits below the functions list:
 * once `ready`, bring `ref` into view so that choosing a function shows it.
 */
export function useScrollIntoViewWhenNarrow(ref: { current: HTMLElement | null }, ready: boolean) {
  useEffect(() => {
    if (ready && window.matchMedia('(max-width: 760px)').matches) ref.current?.scrollIntoView({ block: 'start' });
  }, [ref, ready]);
}

export function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return debounced;
}

/**
 * A throttled `fn`: the returned function may be called on every event; `fn`
 * then runs once shortly after (`settleMs`, so that a burst is one call) and
 * at most once every `ms`; a call during the wait is folded into the pending
 * one, so the last event is always followed by a run.
 */
export function useThrottle(fn: () => void, ms: number, settleMs = 150): () => void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current !== undefined) return;
    const wait = Math.max(settleMs, last.current + ms - Date.now());
    timer.current = setTimeout(() => {
      timer.current = undefined;
      last.current = Date.now();
      fnRef.current();
    }, wait);
  }, [ms, settleMs]);
}

/** Date and time, e.g. "Dec 1, 14:38:05" (the year too when it is not this year's). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: d.getFullYear() === new Date().getFullYear() ? undefined : 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms == null) return '—';
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A live timer's reading: "1.4 s", "2 m 05 s", "1 h 02 m" (rounded down, as clocks are). */
export function formatElapsed(ms: number): string {
  const tenths = Math.floor(ms / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} m`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n == null) return '—';
  if (n < 1024) return `${n} B`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

export function formatJson(value: unknown): string {
  if (value === undefined) return '';
  return JSON.stringify(value, null, 2);
}

/** The API key set in the top bar, kept current. */
export function useApiKey(): string {
  return useSyncExternalStore(onApiKeyChange, getApiKey);
}
