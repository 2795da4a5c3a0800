import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { getConnectionState, onConnectionState } from '../shared/client';
import { getApiKey, onApiKeyChange } from '../shared/settings';

export function useConnection() {
  return useSyncExternalStore(onConnectionState, getConnectionState);
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
