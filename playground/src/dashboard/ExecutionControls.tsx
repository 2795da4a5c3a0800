// What an unfinished execution shows wherever it appears: a live elapsed timer
// (one page-wide interval, running only while some timer is on screen), a
// Cancel button (cancelExecution) and, after a crash re-run, its attempt.
import { useState, useSyncExternalStore } from 'react';
import { request } from '../shared/client';
import { CANCEL_EXECUTION, type Execution, type ExecutionStatus } from './api';
import { formatElapsed, formatTime } from './hooks';

export const isActive = (s: ExecutionStatus) => s === 'PENDING' || s === 'RUNNING';

const RANK: Record<ExecutionStatus, number> = { PENDING: 0, RUNNING: 1, COMPLETED: 2, FAILED: 2 };

/**
 * The fresher of two states of one execution. A cancel's answer and the
 * subscription's events race, so an older event must not bring a finished
 * execution back to RUNNING; a new attempt (a re-run after a crash) always wins.
 */
export function latest(prev: Execution | null | undefined, next: Execution): Execution {
  if (!prev || prev.id !== next.id) return next;
  const a = prev.attempt ?? 1;
  const b = next.attempt ?? 1;
  if (a !== b) return b > a ? next : prev;
  return RANK[next.status] >= RANK[prev.status] ? next : prev;
}

// ---- one shared clock -------------------------------------------------------

const TICK_MS = 100;
let now = Date.now();
let timer: ReturnType<typeof setInterval> | undefined;
const clockListeners = new Set<() => void>();

function subscribeClock(listener: () => void): () => void {
  clockListeners.add(listener);
  if (timer === undefined) {
    now = Date.now();
    timer = setInterval(() => {
      now = Date.now();
      clockListeners.forEach((l) => l());
    }, TICK_MS);
  }
  return () => {
    clockListeners.delete(listener);
    if (clockListeners.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

const getNow = () => now;

/** The current time, re-rendering every 100 ms while any caller is mounted. */
function useNow(): number {
  return useSyncExternalStore(subscribeClock, getNow);
}

/** Render only for a PENDING or RUNNING execution (mounting it starts the clock). */
export function Elapsed({ execution: e, testId }: { execution: Execution; testId?: string }) {
  const current = useNow();
  const waiting = e.status === 'PENDING';
  const since = waiting ? e.createdAt : (e.startedAt ?? e.createdAt);
  const start = Date.parse(since);
  // Server and browser clocks may disagree a little: never show a negative time.
  const text = Number.isNaN(start) ? '' : formatElapsed(Math.max(0, current - start));
  return (
    <span
      className="elapsed"
      role="timer"
      data-testid={testId}
      data-status={e.status}
      title={waiting ? `Waiting to start since ${formatTime(since)}` : `Running since ${formatTime(since)}`}
    >
      {waiting && <span className="elapsed-label">waiting </span>}
      {text}
    </span>
  );
}

export function Attempt({ attempt }: { attempt: number | undefined }) {
  if (!attempt || attempt <= 1) return null;
  return (
    <span className="attempt" data-testid="execution-attempt" title="Run again after a crash interrupted an earlier attempt">
      attempt {attempt}
    </span>
  );
}

/** cancelExecution for one execution: `busy` while the request is in flight. */
export function useCancel(onDone: (e: Execution) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const cancel = async (id: string) => {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const res = await request(CANCEL_EXECUTION, { id });
      onDone(res.cancelExecution);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { cancel, busy, error };
}

export function CancelButton({ busy, onClick }: { busy: boolean; onClick: () => void }) {
  return (
    <button
      type="button"
      className="btn btn-small btn-danger-outline exec-cancel"
      disabled={busy}
      aria-busy={busy}
      onClick={onClick}
      data-testid="cancel-execution"
      title="cancelExecution: ends the execution FAILED (cancelled)"
    >
      {busy ? 'Cancelling…' : 'Cancel'}
    </button>
  );
}
