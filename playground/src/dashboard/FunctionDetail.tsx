// One function: metadata and source in a CodeMirror editor (create or edit),
// compile errors next to the source, the run panel and the executions history.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { request, subscribe } from '../shared/client';
import {
  CREATE_FUNCTION,
  DELETE_FUNCTION,
  FUNCTION_QUERY,
  FUNCTION_STATUS_SUBSCRIPTION,
  TEMPLATE_SOURCE,
  UPDATE_FUNCTION,
  type FunctionDetail as Fn,
} from './api';
import { CodeEditor, type EditorHandle } from './CodeEditor';
import { parseCompileError, type CompileDiagnostic } from './compileErrors';
import { ConfirmDialog, Empty, ErrorBox, StatusBadge, describeError } from './bits';
import { formatBytes, formatTime, navigate, useConnection } from './hooks';
import { RunPanel } from './RunPanel';
import { Executions } from './Executions';

interface Notify {
  (message: string, kind?: 'ok' | 'error'): void;
}

export function NewFunction({ onChanged, notify }: { onChanged: () => void; notify: Notify }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [source, setSource] = useState(TEMPLATE_SOURCE);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const create = async () => {
    if (busy) return;
    if (!name.trim()) {
      setError(new Error('Give the function a name.'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const res = await request<{ createFunction: Fn }>(CREATE_FUNCTION, {
        input: { name: name.trim(), description: description.trim() || null, language: 'assemblyscript', source },
      });
      notify(`Created “${res.createFunction.name}”; compiling…`);
      onChanged();
      navigate(`#/functions/${res.createFunction.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="detail">
      <form
        className="meta-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <div className="detail-head">
          <h1>New function</h1>
          <span className="muted">AssemblyScript · exports handle(input: string): string</span>
          <div className="spacer" />
          <a className="btn" href="#/">
            Cancel
          </a>
          <button type="submit" className="btn btn-primary" disabled={busy} data-testid="create" title="Create (Ctrl+S)">
            {busy ? 'Creating…' : 'Create'}
          </button>
        </div>
        <div className="meta-fields">
          <label>
            Name
            <input
              value={name}
              onChange={(e) => setName(e.target.value)}
              placeholder="e.g. add"
              data-testid="fn-name"
              autoFocus
            />
          </label>
          <label className="grow">
            Description
            <input
              value={description}
              onChange={(e) => setDescription(e.target.value)}
              placeholder="optional"
              data-testid="fn-description"
            />
          </label>
        </div>
      </form>
      {error != null && <ErrorBox error={error} title="Could not create the function" />}
      <CodeEditor
        value={source}
        onChange={setSource}
        language="typescript"
        ariaLabel="Function source (AssemblyScript)"
        onSave={() => void create()}
        testId="source-editor"
        className="source-editor"
      />
    </div>
  );
}

export function FunctionView({ id, onChanged, notify }: { id: string; onChanged: () => void; notify: Notify }) {
  const [fn, setFn] = useState<Fn | null | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [draft, setDraft] = useState<{ name: string; description: string; source: string } | null>(null);
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<unknown>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const editor = useRef<EditorHandle | null>(null);
  const { generation } = useConnection();

  // Keep the user's edits; follow the server for fields nobody edited.
  const current = useRef<Fn | null>(null);
  const apply = useCallback((next: Fn) => {
    const prev = current.current;
    current.current = next;
    setFn(next);
    setDraft((d) => {
      if (!d || !prev) return { name: next.name, description: next.description ?? '', source: next.source };
      return {
        name: d.name === prev.name ? next.name : d.name,
        description: d.description === (prev.description ?? '') ? (next.description ?? '') : d.description,
        source: d.source === prev.source ? next.source : d.source,
      };
    });
  }, []);

  const load = useCallback(async () => {
    try {
      const res = await request<{ function: Fn | null }>(FUNCTION_QUERY, { id });
      if (res.function) apply(res.function);
      else {
        current.current = null;
        setFn(null);
      }
      setLoadError(null);
    } catch (err) {
      setLoadError(err);
    }
  }, [id, apply]);

  useEffect(() => {
    void load();
  }, [load, generation]);

  useEffect(
    () =>
      subscribe<{ functionStatusChanged: { status: Fn['status']; function: Fn } }>(
        FUNCTION_STATUS_SUBSCRIPTION,
        { id },
        { next: ({ functionStatusChanged: ev }) => apply({ ...ev.function, status: ev.status }) },
      ),
    [id, apply],
  );

  const dirty = !!(
    fn &&
    draft &&
    (draft.name !== fn.name || draft.description !== (fn.description ?? '') || draft.source !== fn.source)
  );

  const save = async () => {
    if (!fn || !draft || saving) return;
    if (!dirty) {
      notify('No changes to save.');
      return;
    }
    if (!draft.name.trim()) {
      setSaveError(new Error('The name cannot be empty.'));
      return;
    }
    setSaving(true);
    setSaveError(null);
    const input: Record<string, string | null> = {};
    if (draft.name !== fn.name) input.name = draft.name.trim();
    if (draft.description !== (fn.description ?? '')) input.description = draft.description.trim() || null;
    if (draft.source !== fn.source) input.source = draft.source;
    try {
      const res = await request<{ updateFunction: Fn }>(UPDATE_FUNCTION, { id: fn.id, input });
      current.current = null;
      setDraft(null);
      apply(res.updateFunction);
      notify(input.source !== undefined ? 'Saved; recompiling…' : 'Saved.');
      onChanged();
    } catch (err) {
      setSaveError(err);
    } finally {
      setSaving(false);
    }
  };

  const remove = async () => {
    if (!fn) return;
    setDeleting(true);
    try {
      await request(DELETE_FUNCTION, { id: fn.id });
      setConfirmDelete(false);
      notify(`Deleted “${fn.name}”.`);
      onChanged();
      navigate('#/');
    } catch (err) {
      notify(`Delete failed: ${describeError(err).message}`, 'error');
    } finally {
      setDeleting(false);
    }
  };

  const diagnostics: CompileDiagnostic[] = useMemo(
    () => (fn?.status === 'FAILED' && fn.compileError ? parseCompileError(fn.compileError) : []),
    [fn?.status, fn?.compileError],
  );

  if (fn === undefined) {
    return loadError != null ? (
      <div className="detail">
        <ErrorBox error={loadError} title="Could not load the function" onRetry={() => void load()} />
      </div>
    ) : (
      <div className="detail muted pad">Loading…</div>
    );
  }
  if (fn === null) {
    return (
      <div className="detail">
        <Empty>
          This function does not exist (it may have been deleted). <a href="#/">Back to the list</a>
        </Empty>
      </div>
    );
  }

  return (
    <div className="detail" data-testid="function-detail" data-id={fn.id}>
      <form
        className="meta-form"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <div className="detail-head">
          <h1 title={fn.id}>{fn.name}</h1>
          <StatusBadge status={fn.status} testId="detail-status" />
          <span className="muted small">
            rev {fn.revision} · {fn.language}
            {fn.wasmSize != null && <> · wasm {formatBytes(fn.wasmSize)}</>} · updated {formatTime(fn.updatedAt)}
          </span>
          <div className="spacer" />
          {dirty && <span className="unsaved">Unsaved changes</span>}
          <button type="submit" className="btn btn-primary" disabled={saving || !dirty} data-testid="save" title="Save (Ctrl+S)">
            {saving ? 'Saving…' : 'Save'}
          </button>
          <button type="button" className="btn btn-danger-outline" onClick={() => setConfirmDelete(true)} data-testid="delete">
            Delete…
          </button>
        </div>
        {draft && (
          <div className="meta-fields">
            <label>
              Name
              <input
                value={draft.name}
                onChange={(e) => setDraft({ ...draft, name: e.target.value })}
                required
                data-testid="fn-name"
              />
            </label>
            <label className="grow">
              Description
              <input
                value={draft.description}
                onChange={(e) => setDraft({ ...draft, description: e.target.value })}
                data-testid="fn-description"
              />
            </label>
          </div>
        )}
      </form>
      {saveError != null && <ErrorBox error={saveError} title="Could not save" />}

      <div className="detail-grid">
        <div className="col-source">
          {draft && (
            <CodeEditor
              key={fn.id}
              value={draft.source}
              onChange={(source) => setDraft((d) => d && { ...d, source })}
              language="typescript"
              ariaLabel="Function source (AssemblyScript)"
              diagnostics={diagnostics}
              onSave={() => void save()}
              handleRef={(h) => (editor.current = h)}
              testId="source-editor"
              className="source-editor"
            />
          )}
          {fn.status !== 'FAILED' && <CompileStatus fn={fn} diagnostics={diagnostics} onJump={() => {}} />}
        </div>
        <div className="col-run">
          {/* Compile errors sit beside the source, where the run panel would be of no use. */}
          {fn.status === 'FAILED' && (
            <CompileStatus fn={fn} diagnostics={diagnostics} onJump={(l, c) => editor.current?.focusAt(l, c)} />
          )}
          <RunPanel fn={fn} />
          <Executions functionId={fn.id} />
        </div>
      </div>

      <ConfirmDialog
        open={confirmDelete}
        title={`Delete “${fn.name}”?`}
        confirmLabel="Delete"
        busy={deleting}
        onConfirm={() => void remove()}
        onCancel={() => setConfirmDelete(false)}
      >
        The function, its compiled module and all of its executions are deleted. This cannot be undone.
      </ConfirmDialog>
    </div>
  );
}

function CompileStatus({
  fn,
  diagnostics,
  onJump,
}: {
  fn: Fn;
  diagnostics: CompileDiagnostic[];
  onJump: (line: number, column: number) => void;
}) {
  if (fn.status === 'PENDING' || fn.status === 'COMPILING') {
    return (
      <div className="compile-status compiling" role="status" data-testid="compile-status">
        <span className="spinner" aria-hidden="true" />
        {fn.status === 'PENDING' ? 'Waiting for a compiler worker…' : 'Compiling…'}
      </div>
    );
  }
  if (fn.status === 'READY') {
    return (
      <div className="compile-status ok" role="status" data-testid="compile-status">
        Compiled · {formatBytes(fn.wasmSize)} of WebAssembly, ready to run.
      </div>
    );
  }
  return (
    <section className="compile-errors" aria-labelledby="compile-errors-heading" data-testid="compile-errors">
      <h3 id="compile-errors-heading">
        Compilation failed{diagnostics.length > 1 ? ` · ${diagnostics.length} problems` : ''}
      </h3>
      {diagnostics.length === 0 && <pre className="diag-text">{fn.compileError ?? 'No details were given.'}</pre>}
      <ul>
        {diagnostics.map((d, i) => (
          <li key={i} className={`diag diag-${d.severity}`}>
            <div className="diag-head">
              {d.line != null ? (
                <button
                  type="button"
                  className="linklike diag-loc"
                  onClick={() => onJump(d.line!, d.column ?? 1)}
                  title="Go to this line"
                  data-testid="diag-location"
                >
                  line {d.line}:{d.column}
                </button>
              ) : null}
              <span className="diag-message">{d.message}</span>
            </div>
            <pre className="diag-text">{d.text}</pre>
          </li>
        ))}
      </ul>
    </section>
  );
}
