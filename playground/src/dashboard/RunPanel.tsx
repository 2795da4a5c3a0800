// Run a function: JSON input (validated before sending), executeFunction for a
// run that returns when finished, or startExecution followed live through
// executionStatusChanged(id).
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
import { ErrorBox, StatusBadge } from './bits';
import { formatDuration, formatJson } from './hooks';

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

export function RunPanel({ fn }: { fn: FunctionDetail }) {
  const [input, setInput] = useState(() => sessionStorage.getItem(inputKey(fn.id)) ?? TEMPLATE_INPUT);
  const [result, setResult] = useState<Execution | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<'run' | 'start' | null>(null);
  const follow = useRef<(() => void) | null>(null);
  const validation = useMemo(() => validateInput(input), [input]);
  const ready = fn.status === 'READY';

  useEffect(() => sessionStorage.setItem(inputKey(fn.id), input), [fn.id, input]);
  useEffect(() => () => follow.current?.(), []);

  const run = async (mode: 'run' | 'start') => {
    if (!validation.ok || busy || !ready) return;
    follow.current?.();
    follow.current = null;
    setBusy(mode);
    setError(null);
    setResult(null);
    try {
      if (mode === 'run') {
        const res = await request<{ executeFunction: Execution }>(EXECUTE_FUNCTION, { id: fn.id, input: validation.value });
        setResult(res.executeFunction);
        setBusy(null);
      } else {
        const res = await request<{ startExecution: Execution }>(START_EXECUTION, { id: fn.id, input: validation.value });
        setResult(res.startExecution);
        const id = res.startExecution.id;
        const finished = (s: string) => s === 'COMPLETED' || s === 'FAILED';
        if (finished(res.startExecution.status)) {
          setBusy(null);
          return;
        }
        follow.current = subscribe<{ executionStatusChanged: { status: Execution['status']; execution: Execution } }>(
          EXECUTION_SUBSCRIPTION,
          { id },
          {
            next: ({ executionStatusChanged: ev }) => {
              setResult({ ...ev.execution, status: ev.status });
              if (finished(ev.status)) {
                setBusy(null);
                follow.current?.();
                follow.current = null;
              }
            },
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
        <button
          type="button"
          className="btn btn-primary"
          disabled={!ready || !validation.ok || !!busy}
          onClick={() => void run('run')}
          data-testid="run"
          title="executeFunction: waits for the result (Ctrl+Enter)"
        >
          {busy === 'run' ? 'Running…' : '▶ Run'}
        </button>
        <button
          type="button"
          className="btn"
          disabled={!ready || !validation.ok || !!busy}
          onClick={() => void run('start')}
          data-testid="start"
          title="startExecution: returns at once, then follows the status live"
        >
          {busy === 'start' ? 'Following…' : 'Start in background'}
        </button>
        {!ready && (
          <span className="muted small" data-testid="not-ready">
            {fn.status === 'FAILED' ? 'Fix the compile error to run it.' : 'Runs once the function is READY.'}
          </span>
        )}
      </div>
      {error != null && <ErrorBox error={error} title="The run was refused" />}
      {result && <ExecutionResult execution={result} />}
    </section>
  );
}

export function ExecutionResult({ execution: e }: { execution: Execution }) {
  return (
    <div className={`result result-${e.status.toLowerCase()}`} data-testid="run-result" data-execution-id={e.id}>
      <div className="result-head">
        <StatusBadge status={e.status} testId="run-status" />
        <span className="muted small" data-testid="run-duration">
          {e.durationMs != null ? formatDuration(e.durationMs) : e.status === 'COMPLETED' || e.status === 'FAILED' ? '' : 'in progress…'}
        </span>
      </div>
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
          <div className="label">Error</div>
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
