// Run a function: JSON input (validated before sending, kept per function in
// localStorage), executeFunction for a run that returns when finished, or
// startExecution followed live through executionStatusChanged(id), with a live
// timer and Cancel while it runs. With unsaved edits, "Save & Run" saves, waits
// for the new revision to compile, then runs it. Below, the function's HTTP
// trigger, with the same input as a curl command or a GraphQL mutation.
import { useEffect, useMemo, useRef, useState } from 'react';
import { request, subscribe } from '../shared/client';
import {
  EXECUTE_FUNCTION,
  EXECUTION_SUBSCRIPTION,
  START_EXECUTION,
  TEMPLATE_INPUT,
  type Execution,
  type FunctionDetail,
} from './api';
import { CodeEditor } from './CodeEditor';
import { ErrorBox, StatusBadge, describeError } from './bits';
import { Attempt, CancelButton, Elapsed, isActive, latest, useCancel } from './ExecutionControls';
import { formatDuration, formatJson } from './hooks';
import { HttpTrigger } from './Trigger';

type Validation = { ok: true; value: Record<string, unknown> | null } | { ok: false; message: string };

export function validateInput(text: string): Validation {
  if (!text.trim()) return { ok: true, value: null };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `Invalid JSON: ${(err as Error).message}` };
  }
  if (value === null) return { ok: true, value: null };
  if (typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, message: 'The input must be a JSON object, e.g. {"a": 5, "b": 3}.' };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

const inputKey = (id: string) => `projectnil.input.${id}`;

function loadInput(id: string): string {
  try {
    return localStorage.getItem(inputKey(id)) ?? TEMPLATE_INPUT;
  } catch {
    return TEMPLATE_INPUT;
  }
}

function storeInput(id: string, text: string) {
  try {
    if (text === TEMPLATE_INPUT) localStorage.removeItem(inputKey(id));
    else localStorage.setItem(inputKey(id), text);
  } catch {
    // storage disabled: the input lasts while the page is open
  }
}

/** Forgets a function's last input (it was deleted). */
export function forgetInput(id: string) {
  try {
    localStorage.removeItem(inputKey(id));
  } catch {
    // nothing stored
  }
}

/** What "Save & Run" is waiting for. */
export type SaveRunPhase = { phase: 'saving' } | { phase: 'compiling'; revision: number } | null;

export interface RunControls {
  run: () => void;
}

const finished = (s: Execution['status']) => s === 'COMPLETED' || s === 'FAILED';

/** Admission refused (the server is at capacity): nothing was recorded, so trying again is safe. */
const atCapacity = (err: unknown) => {
  const { code } = describeError(err);
  return code === 'TOO_MANY_REQUESTS' || code === 'HTTP_429';
};

export function RunPanel({
  fn,
  deleted,
  dirty,
  saveRun,
  onSaveAndRun,
  controlsRef,
}: {
  fn: FunctionDetail;
  deleted: boolean;
  /** Unsaved edits: Run offers Save & Run. */
  dirty: boolean;
  saveRun: SaveRunPhase;
  onSaveAndRun: () => void;
  controlsRef: { current: RunControls | null };
}) {
  const [input, setInput] = useState(() => loadInput(fn.id));
  const [result, setResult] = useState<Execution | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<'run' | 'start' | null>(null);
  const [lastMode, setLastMode] = useState<'run' | 'start'>('run');
  const follow = useRef<(() => void) | null>(null);
  /** The execution the result shows: late answers about an earlier one are dropped. */
  const shown = useRef<string | null>(null);
  const validation = useMemo(() => validateInput(input), [input]);
  // Executions run the deployed revision, even while a newer one compiles or failed.
  const ready = !deleted && fn.deployedRevision != null;

  useEffect(() => storeInput(fn.id, input), [fn.id, input]);
  useEffect(() => () => follow.current?.(), []);

  const stopFollowing = () => {
    follow.current?.();
    follow.current = null;
  };

  const show = (e: Execution | null) => {
    shown.current = e?.id ?? null;
    setResult(e);
  };

  // A new state of the shown execution, from its subscription or a cancel.
  const update = (e: Execution) => {
    if (e.id !== shown.current) return;
    setResult((prev) => latest(prev, e));
    if (finished(e.status)) {
      setBusy(null);
      stopFollowing();
    }
  };

  const run = async (mode: 'run' | 'start') => {
    if (!validation.ok || busy || !ready) return;
    stopFollowing();
    setLastMode(mode);
    setBusy(mode);
    setError(null);
    show(null);
    try {
      if (mode === 'run') {
        const res = await request(EXECUTE_FUNCTION, { id: fn.id, input: validation.value });
        show(res.executeFunction);
        setBusy(null);
      } else {
        const res = await request(START_EXECUTION, { id: fn.id, input: validation.value });
        show(res.startExecution);
        const id = res.startExecution.id;
        if (finished(res.startExecution.status)) {
          setBusy(null);
          return;
        }
        follow.current = subscribe(
          EXECUTION_SUBSCRIPTION,
          { id },
          {
            next: ({ executionStatusChanged: ev }) => update({ ...ev.execution, status: ev.status }),
            error: (err) => {
              setError(err);
              setBusy(null);
            },
          },
        );
      }
    } catch (err) {
      setError(err);
      setBusy(null);
    }
  };

  const runLatest = useRef(run);
  runLatest.current = run;
  useEffect(() => {
    controlsRef.current = { run: () => void runLatest.current('run') };
    return () => {
      controlsRef.current = null;
    };
  }, [controlsRef]);

  const waiting = saveRun != null;
  const canSaveAndRun = dirty && !deleted && validation.ok && !busy && !waiting;

  return (
    <section className="panel run-panel" aria-labelledby="run-heading" data-testid="run-panel">
      <div className="panel-head">
        <h2 id="run-heading">Run</h2>
        <span className="muted small">input: a JSON object · Ctrl+Enter runs</span>
      </div>
      <CodeEditor
        value={input}
        onChange={setInput}
        language="json"
        ariaLabel="Execution input (JSON)"
        onSubmit={() => void run('run')}
        testId="input-editor"
        className="input-editor"
      />
      {!validation.ok && (
        <div className="field-error" role="alert" data-testid="input-error">
          {validation.message}
        </div>
      )}
      <div className="run-actions">
        {(dirty || waiting) && !deleted && (
          <button
            type="button"
            className="btn btn-primary"
            disabled={!canSaveAndRun}
            onClick={onSaveAndRun}
            data-testid="save-and-run"
            title="Save the edits, wait for the new revision to compile, then run it"
          >
            {saveRun?.phase === 'saving'
              ? 'Saving…'
              : saveRun?.phase === 'compiling'
                ? `Compiling revision ${saveRun.revision}…`
                : 'Save & Run'}
          </button>
        )}
        <button
          type="button"
          className={`btn ${dirty || waiting ? '' : 'btn-primary'}`}
          disabled={!ready || !validation.ok || !!busy || waiting}
          onClick={() => void run('run')}
          data-testid="run"
          title={
            dirty
              ? `Runs the deployed revision ${fn.deployedRevision ?? ''}, without your unsaved edits (Ctrl+Enter)`
              : 'executeFunction: waits for the result (Ctrl+Enter)'
          }
        >
          {busy === 'run' ? 'Running…' : dirty ? `▶ Run revision ${fn.deployedRevision ?? '—'}` : '▶ Run'}
        </button>
        <button
          type="button"
          className="btn"
          disabled={!ready || !validation.ok || !!busy || waiting}
          onClick={() => void run('start')}
          data-testid="start"
          title="startExecution: returns at once, then follows the status live"
        >
          {busy === 'start' ? 'Following…' : 'Start in background'}
        </button>
        {deleted ? (
          <span className="muted small" data-testid="not-ready">
            This function was deleted.
          </span>
        ) : !ready ? (
          <span className="muted small" data-testid="not-ready">
            {fn.status === 'FAILED' ? 'Fix the compile error to run it.' : 'Runs once the function is READY.'}
          </span>
        ) : (
          fn.deployedRevision !== fn.revision && (
            <span className="muted small" data-testid="run-revision">
              Runs revision {fn.deployedRevision}.
            </span>
          )
        )}
      </div>
      {error != null &&
        (atCapacity(error) ? (
          <ErrorBox
            error={error}
            title="The server is at capacity — nothing was run; try again in a moment"
            onRetry={() => void run(lastMode)}
            testId="run-error"
          />
        ) : (
          <ErrorBox error={error} title="The run was refused" testId="run-error" />
        ))}
      {result && <ExecutionResult execution={result} onUpdate={update} />}
      {!deleted && <HttpTrigger fn={fn} input={validation.ok ? (validation.value ?? {}) : null} />}
    </section>
  );
}

export function ExecutionResult({ execution: e, onUpdate }: { execution: Execution; onUpdate: (e: Execution) => void }) {
  const { cancel, busy, error } = useCancel(onUpdate);
  const active = isActive(e.status);
  return (
    <div className={`result result-${e.status.toLowerCase()}`} data-testid="run-result" data-execution-id={e.id}>
      <div className="result-head">
        <StatusBadge status={e.status} testId="run-status" />
        <span className="muted small" data-testid="run-duration">
          {active ? <Elapsed execution={e} testId="run-elapsed" /> : e.durationMs != null ? formatDuration(e.durationMs) : ''}
        </span>
        <span className="muted small" data-testid="run-result-revision">
          revision {e.revision}
        </span>
        <Attempt attempt={e.attempt} />
        {active && (
          <>
            <div className="spacer" />
            <CancelButton busy={busy} onClick={() => void cancel(e.id)} />
          </>
        )}
      </div>
      {error != null && active && <ErrorBox error={error} title="Could not cancel the execution" testId="cancel-error" />}
      <ExecutionBody execution={e} />
    </div>
  );
}

export function ExecutionBody({ execution: e, showInput }: { execution: Execution; showInput?: boolean }) {
  return (
    <div className="exec-body">
      {showInput && (
        <>
          <div className="label">Input</div>
          <pre className="json" data-testid="exec-input">{formatJson(e.input ?? {})}</pre>
        </>
      )}
      {e.status === 'COMPLETED' && (
        <>
          <div className="label">Output</div>
          <pre className="json" data-testid="exec-output">{formatJson(e.output)}</pre>
        </>
      )}
      {e.errorMessage && (
        <>
          <div className="label">
            Error
            {e.errorKind && (
              <>
                {' · '}
                <code data-testid="exec-error-kind">{e.errorKind}</code>
              </>
            )}
          </div>
          <pre className="exec-error" data-testid="exec-error">{e.errorMessage}</pre>
        </>
      )}
      {e.logs && e.logs.length > 0 && (
        <>
          <div className="label">Logs</div>
          <pre className="logs" data-testid="exec-logs">{e.logs.join('\n')}</pre>
        </>
      )}
    </div>
  );
}
