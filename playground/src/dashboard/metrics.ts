// What the metrics views share: the time windows (1 h / 24 h / 7 d, each with
// a bucket size the server accepts: a multiple of 60 s, at most 1000 points),
// the chosen window (kept in localStorage), the series laid on a regular grid
// for the chart, number formats, and the live loader: stats refetched when
// executions finish (executionStatusChanged), throttled to one request every
// 2 s, and on reconnecting.
import { useCallback, useEffect, useRef, useState } from 'react';
import { subscribe, type Document } from '../shared/client';
import type { ExecutionErrorKind, ExecutionStatus, StatsPoint } from './api';
import { useConnection, useQuery, useThrottle } from './hooks';

export type WindowKey = '1h' | '24h' | '7d';

export interface StatsWindow {
  key: WindowKey;
  label: string;
  /** How far back from now. */
  seconds: number;
  /** One bar of the chart: a multiple of 60, and seconds / bucketSeconds ≤ 1000. */
  bucketSeconds: number;
  /** "per minute", for the chart's description. */
  per: string;
  /** "the last hour", for sentences. */
  phrase: string;
}

export const WINDOWS: StatsWindow[] = [
  { key: '1h', label: '1h', seconds: 3600, bucketSeconds: 60, per: 'per minute', phrase: 'the last hour' },
  { key: '24h', label: '24h', seconds: 86_400, bucketSeconds: 900, per: 'per 15 minutes', phrase: 'the last 24 hours' },
  { key: '7d', label: '7d', seconds: 604_800, bucketSeconds: 3600, per: 'per hour', phrase: 'the last 7 days' },
];

export const windowOf = (key: WindowKey): StatsWindow => WINDOWS.find((w) => w.key === key) ?? WINDOWS[1];

const WINDOW_KEY = 'projectnil.metricsWindow';

/** The chosen window, shared by the overview and every function, kept across reloads. */
export function useStatsWindow(): [StatsWindow, (key: WindowKey) => void] {
  const [key, setKey] = useState<WindowKey>(() => {
    try {
      const k = localStorage.getItem(WINDOW_KEY);
      return WINDOWS.some((w) => w.key === k) ? (k as WindowKey) : '24h';
    } catch {
      return '24h';
    }
  });
  const choose = useCallback((k: WindowKey) => {
    setKey(k);
    try {
      localStorage.setItem(WINDOW_KEY, k);
    } catch {
      // storage disabled: the choice lasts while the page is open
    }
  }, []);
  return [windowOf(key), choose];
}

/**
 * The variables of a stats query, and the window they cover (seconds since
 * the epoch). No `until`: the window ends at the server's now, so an
 * execution that just finished always counts, whatever this browser's clock says.
 */
export interface StatsRange {
  since: string;
  bucketSeconds: number;
  sinceSec: number;
  /** This browser's now, where the chart ends. */
  untilSec: number;
}

export function rangeFor(w: StatsWindow, now = Date.now()): StatsRange {
  const sinceMs = now - w.seconds * 1000;
  return {
    since: new Date(sinceMs).toISOString(),
    bucketSeconds: w.bucketSeconds,
    sinceSec: sinceMs / 1000,
    untilSec: now / 1000,
  };
}

/** The series on a regular grid covering the window; buckets the server left out are zeros. */
export interface Grid {
  /** Bucket starts, seconds since the epoch. */
  x: number[];
  completed: number[];
  failed: number[];
  /** completed + failed: the top of each stacked bar. */
  total: number[];
  p95: (number | null)[];
}

const MAX_BUCKETS = 1100;

export function toGrid(points: StatsPoint[], range: StatsRange): Grid {
  const b = range.bucketSeconds;
  const at = points.map((p) => Date.parse(p.at) / 1000);
  // Follow the server's alignment of buckets when it sent any; else whole multiples of the bucket.
  const anchor = at.length ? at[0] : Math.floor(range.sinceSec / b) * b;
  const start = anchor - Math.ceil((anchor - range.sinceSec) / b) * b;
  const end = Math.max(range.untilSec, at.length ? at[at.length - 1] + 1 : 0);
  const n = Math.min(MAX_BUCKETS, Math.max(1, Math.ceil((end - start) / b)));
  const grid: Grid = { x: [], completed: [], failed: [], total: [], p95: [] };
  for (let i = 0; i < n; i++) {
    grid.x.push(start + i * b);
    grid.completed.push(0);
    grid.failed.push(0);
    grid.total.push(0);
    grid.p95.push(null);
  }
  points.forEach((p, k) => {
    const i = Math.floor((at[k] - start) / b);
    if (i < 0 || i >= n) return;
    grid.completed[i] += p.completed;
    grid.failed[i] += p.failed;
    grid.total[i] += p.completed + p.failed;
    if (p.p95Ms != null) grid.p95[i] = Math.max(grid.p95[i] ?? 0, p.p95Ms);
  });
  return grid;
}

// ---- formats ----------------------------------------------------------------

/** 0.75 → "75.0 %", 1 → "100 %"; null (nothing finished) → "—". */
export function formatRate(rate: number | null | undefined): string {
  if (rate == null) return '—';
  const pct = rate * 100;
  if (pct === 100 || pct === 0) return `${pct} %`;
  return `${pct.toFixed(1)} %`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export const ERROR_KIND_LABELS: Record<ExecutionErrorKind, string> = {
  TIMEOUT: 'Timed out',
  MEMORY_LIMIT: 'Memory limit',
  STACK_OVERFLOW: 'Stack overflow',
  TRAP: 'Trap',
  ABORT: 'Abort (threw)',
  INVALID_OUTPUT: 'Output not JSON',
  OUTPUT_TOO_LARGE: 'Output too large',
  INTERRUPTED: 'Interrupted',
  CANCELLED: 'Cancelled',
  PLATFORM: 'Platform error',
};

// ---- live loading -----------------------------------------------------------

/** At most one stats request every this many ms while executions finish. */
export const REFRESH_THROTTLE_MS = 2000;
/** While nothing happens, the window still slides forward: a refetch this often (only while visible). */
const SLIDE_MS = 60_000;

const finished = (s: ExecutionStatus) => s === 'COMPLETED' || s === 'FAILED';

export interface LiveStats<T> {
  data?: T;
  /** The window `data` covers. */
  range?: StatsRange;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** The variables the live loader sets: the window's start and its bucket size (no `until`). */
type WindowVariables = 'since' | 'until' | 'bucketSeconds';

/** The window each request's variables (the very object) cover. */
const rangeOf = new WeakMap<object, StatsRange>();

/**
 * Loads `query` for window `w` (its `since` and `bucketSeconds` set here, on
 * top of `variables`), again whenever an execution finishes (the
 * `subscription`, throttled), on reconnect (missed events), and every minute
 * while visible so the window slides. Answers to older requests are dropped.
 */
export function useLiveStats<TData, TVariables extends { since?: string | null; bucketSeconds: number }, TSubscriptionVariables>(
  w: StatsWindow,
  query: Document<TData, TVariables>,
  variables: Omit<NoInfer<TVariables>, WindowVariables>,
  subscription: Document<{ executionStatusChanged: { status: ExecutionStatus } }, TSubscriptionVariables>,
  subscriptionVariables: NoInfer<TSubscriptionVariables>,
): LiveStats<TData> {
  const { generation } = useConnection();

  // Every load asks for a window ending now: new variables, so useQuery fetches them.
  const varsKey = JSON.stringify(variables);
  const windowVariables = useCallback(() => {
    const range = rangeFor(w);
    const v = { ...JSON.parse(varsKey), since: range.since, bucketSeconds: range.bucketSeconds } as TVariables;
    rangeOf.set(v, range);
    return v;
  }, [w, varsKey]);
  const [asked, setAsked] = useState(windowVariables);
  const load = useCallback(() => setAsked(windowVariables()), [windowVariables]);

  // Another window (or function), or a reconnect: load at once (the first render has its window already).
  const started = useRef(false);
  useEffect(() => {
    if (started.current) load();
    started.current = true;
  }, [load, generation]);

  const { data, variables: answered, error, loading } = useQuery(query, asked);

  const refresh = useThrottle(load, REFRESH_THROTTLE_MS);

  const subscriptionKey = JSON.stringify(subscriptionVariables);
  useEffect(
    () =>
      subscribe(subscription, JSON.parse(subscriptionKey), {
        next: ({ executionStatusChanged: ev }) => {
          if (finished(ev.status)) refresh();
        },
      }),
    [subscription, subscriptionKey, refresh],
  );

  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') refresh();
    }, SLIDE_MS);
    return () => clearInterval(t);
  }, [refresh]);

  return { data, range: answered && rangeOf.get(answered), error, loading, reload: load };
}
