// One function: metadata and source in a CodeMirror editor (create or edit),
// compile errors next to the source, the run panel, the executions history,
// its metrics and the versions. Every change by anyone arrives live (functionChanged); unsaved
// edits are never lost: leaving asks first, a save sends the revision the edits
// started from, and a newer revision saved elsewhere shows both to choose from.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { request, subscribe } from '../shared/client';
import type { VariablesOf } from '../shared/graphql';
import {
  CREATE_FUNCTION,
  DELETE_FUNCTION,
  FUNCTION_CHANGED_SUBSCRIPTION,
  FUNCTION_QUERY,
  TEMPLATE_SOURCE,
  UPDATE_FUNCTION,
  type ExecutionErrorKind,
  type FunctionDetail as Fn,
} from './api';
import { CodeEditor, type EditorHandle } from './CodeEditor';
import { parseCompileError, type CompileDiagnostic } from './compileErrors';
import { ConfirmDialog, Empty, ErrorBox, StatusBadge, describeError, type Notify } from './bits';
import { formatBytes, formatTime, useConnection, useQuery, useScrollIntoViewWhenNarrow } from './hooks';
import { navigate, useLeaveGuard, type LeaveGuard } from './navigation';
import { RunPanel, forgetInput, type RunControls, type SaveRunPhase } from './RunPanel';
import { Executions, type ExecutionFilter } from './Executions';
import { FunctionMetrics } from './Metrics';
import { settled, useFunctionDraft } from './draft';
import { ConflictPanel } from './ConflictPanel';
import { Serving } from './Serving';
import { VersionsPanel, type RevisionFocus } from './Versions';

/** The tag of the "compiling…" notice of a function: dismissed once its compile settles. */
const compileTag = (id: string) => `compile:${id}`;

export function NewFunction({ onChanged, notify }: { onChanged: () => void; notify: Notify }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [source, setSource] = useState(TEMPLATE_SOURCE);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const dirty = !!(name.trim() || description.trim() || source !== TEMPLATE_SOURCE);
  const page = useRef<HTMLDivElement>(null);
  useScrollIntoViewWhenNarrow(page, true);
  const guard: LeaveGuard | null = useMemo(
    () => (dirty ? (to) => (to.page === 'new' ? null : 'The new function has not been created yet; its source would be lost.') : null),
    [dirty],
  );
  useLeaveGuard(busy ? null : guard);

  const create = async () => {
    if (busy) return;
    if (!name.trim()) {
      setError(new Error('Give the function a name.'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const res = await request(CREATE_FUNCTION, {
        input: { name: name.trim(), description: description.trim() || null, language: 'assemblyscript', source },
      });
      const f = res.createFunction;
      notify(`Created “${f.name}”; compiling…`, 'ok', { tag: compileTag(f.id) });
      onChanged();
      navigate(`#/functions/${f.id}`, { force: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div ref={page} className="detail">
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

export function FunctionView({
  id,
  revision,
  onChanged,
  notify,
  dismiss,
}: {
  id: string;
  /** A revision to show in the Versions panel (from the URL). */
  revision: number | null;
  onChanged: () => void;
  notify: Notify;
  dismiss: (tag: string) => void;
}) {
  const { state, dispatch, sourceDirty, dirty, conflict } = useFunctionDraft();
  const { fn, draft, base, deleted } = state;
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<unknown>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [saveRun, setSaveRun] = useState<SaveRunPhase>(null);
  const [focus, setFocus] = useState<RevisionFocus>({ revision, n: 0 });
  const [execFilter, setExecFilter] = useState<ExecutionFilter>({ errorKind: null, n: 0 });
  const showErrorKind = useCallback(
    (errorKind: ExecutionErrorKind) => setExecFilter((f) => ({ errorKind, n: f.n + 1 })),
    [],
  );
  const clearExecFilter = useCallback(() => setExecFilter((f) => ({ errorKind: null, n: f.n })), []);
  const editor = useRef<EditorHandle | null>(null);
  const runControls = useRef<RunControls | null>(null);
  /** The source of a save in flight: its own events are not someone else's change. */
  const savingSource = useRef<string | null>(null);
  /** The newest state the server told us about, read synchronously after a save. */
  const lastSeen = useRef<Fn | null>(null);
  const { generation } = useConnection();
  const page = useRef<HTMLDivElement>(null);
  useScrollIntoViewWhenNarrow(page, fn !== undefined);

  const seen = useCallback(
    (next: Fn) => {
      const prev = lastSeen.current;
      if (!prev || next.revision > prev.revision || (next.revision === prev.revision && settled(next.status))) {
        lastSeen.current = next;
      }
      dispatch({ type: 'server', fn: next, ownSource: savingSource.current });
    },
    [dispatch],
  );

  const { error: loadError, refetch: load } = useQuery(FUNCTION_QUERY, { id }, {
    refetchOn: [generation],
    onData: (res) => {
      if (res.function) seen(res.function);
      else dispatch({ type: 'missing' });
    },
  });

  useEffect(
    () =>
      subscribe(FUNCTION_CHANGED_SUBSCRIPTION, { id }, {
        next: ({ functionChanged: ev }) => {
          if (ev.kind === 'DELETED' || !ev.function) dispatch({ type: 'deleted' });
          else seen(ev.function);
        },
      }),
    [id, seen, dispatch],
  );

  // The "compiling…" notice goes once the compile settled (or this page closes).
  useEffect(() => {
    if (fn && settled(fn.status)) dismiss(compileTag(id));
  }, [fn, id, dismiss]);
  useEffect(() => () => dismiss(compileTag(id)), [id, dismiss]);

  // A revision link (or the URL) asks the Versions panel to show a revision.
  const firstRevision = useRef(true);
  useEffect(() => {
    if (firstRevision.current) {
      firstRevision.current = false;
      return;
    }
    setFocus((f) => ({ revision, n: f.n + 1 }));
  }, [revision]);
  const showRevision = useCallback((r: number) => setFocus((f) => ({ revision: r, n: f.n + 1 })), []);

  // Unsaved edits: switching away asks first, closing the tab warns.
  const name = fn?.name ?? '';
  const guard: LeaveGuard | null = useMemo(
    () =>
      dirty
        ? (to) =>
            to.page === 'function' && to.id === id
              ? null
              : `Your unsaved changes to “${name}” will be lost if you leave this function.`
        : null,
    [dirty, id, name],
  );
  useLeaveGuard(guard);

  /**
   * Saves the draft over revision `over` (by default the one the edits started from).
   * Returns the saved function, or null when nothing was saved.
   */
  const save = async ({ over }: { over?: number } = {}): Promise<Fn | null> => {
    if (!fn || !draft || !base || saving || deleted) return null;
    if (!dirty) {
      notify('No changes to save.');
      return fn;
    }
    if (!draft.name.trim()) {
      setSaveError(new Error('The name cannot be empty.'));
      return null;
    }
    setSaving(true);
    setSaveError(null);
    const input: VariablesOf<typeof UPDATE_FUNCTION>['input'] = {};
    if (draft.name !== fn.name) input.name = draft.name.trim();
    if (draft.description !== (fn.description ?? '')) input.description = draft.description.trim() || null;
    if (sourceDirty) input.source = draft.source;
    const expectedRevision = over ?? base.revision;
    savingSource.current = sourceDirty ? draft.source : null;
    try {
      const res = await request(UPDATE_FUNCTION, { id: fn.id, input, expectedRevision });
      const saved = res.updateFunction;
      lastSeen.current =
        lastSeen.current && lastSeen.current.revision === saved.revision && settled(lastSeen.current.status)
          ? lastSeen.current
          : saved;
      dispatch({ type: 'saved', fn: saved, source: input.source ?? saved.source });
      const compiling = input.source !== undefined && !settled(lastSeen.current.status);
      if (compiling) notify(`Saved revision ${saved.revision}; compiling…`, 'ok', { tag: compileTag(id) });
      else notify(input.source !== undefined ? `Saved revision ${saved.revision}.` : 'Saved.');
      onChanged();
      return saved;
    } catch (err) {
      const code = describeError(err).code;
      if (code === 'CONFLICT') {
        // Someone saved a newer revision: fetch it, and both versions are shown to choose from.
        const latest = (await load())?.function;
        if (latest && latest.revision !== expectedRevision) return null;
      }
      setSaveError(err);
      return null;
    } finally {
      savingSource.current = null;
      setSaving(false);
    }
  };

  const saveAndRun = async () => {
    setSaveRun({ phase: 'saving' });
    const before = fn?.revision;
    const saved = await save();
    if (!saved) return setSaveRun(null);
    if (saved.revision === before) {
      // Only the name or description changed: the deployed revision is the same.
      setSaveRun(null);
      runControls.current?.run();
      return;
    }
    setSaveRun({ phase: 'compiling', revision: saved.revision });
  };

  // Save & Run: run once the saved revision is READY (or say why not).
  useEffect(() => {
    if (saveRun?.phase !== 'compiling' || !fn) return;
    const r = saveRun.revision;
    const failed = fn.revision === r && fn.status === 'FAILED';
    const ready = (fn.deployedRevision ?? 0) >= r || (fn.revision === r && fn.status === 'READY');
    if (deleted) setSaveRun(null);
    else if (failed) {
      setSaveRun(null);
      notify(`Revision ${r} failed to compile; nothing was run.`, 'error');
    } else if (ready || fn.revision > r) {
      setSaveRun(null);
      runControls.current?.run();
    }
  }, [fn, saveRun, deleted, notify]);

  const remove = async () => {
    if (!fn) return;
    setDeleting(true);
    try {
      await request(DELETE_FUNCTION, { id: fn.id });
      setConfirmDelete(false);
      forgetInput(fn.id);
      notify(`Deleted “${fn.name}”.`);
      onChanged();
      navigate('#/', { force: true });
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
    <div ref={page} className="detail" data-testid="function-detail" data-id={fn.id} data-deleted={deleted}>
      {deleted && (
        <div className="banner-deleted" role="alert" data-testid="deleted-banner">
          <strong>This function was deleted.</strong> It can no longer run or be saved.
          {dirty && ' Your unsaved edits are still below: copy them before you leave.'} <a href="#/">Back to the list</a>
        </div>
      )}
      <form
        className="meta-form"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <div className="detail-head">
          <h1 title={fn.id} data-testid="detail-name">
            {fn.name}
          </h1>
          <StatusBadge status={deleted ? 'DELETED' : fn.status} testId="detail-status" />
          <Serving fn={fn} deleted={deleted} />
          <span className="muted small">
            {fn.language}
            {fn.wasmSize != null && <> · wasm {formatBytes(fn.wasmSize)}</>} · updated {formatTime(fn.updatedAt)}
          </span>
          <div className="spacer" />
          {dirty && (
            <span className="unsaved" data-testid="unsaved">
              Unsaved changes
            </span>
          )}
          <button
            type="submit"
            className="btn btn-primary"
            disabled={saving || !dirty || deleted}
            data-testid="save"
            title="Save (Ctrl+S)"
          >
            {saving ? 'Saving…' : 'Save'}
          </button>
          <button
            type="button"
            className="btn btn-danger-outline"
            disabled={deleted}
            onClick={() => setConfirmDelete(true)}
            data-testid="delete"
          >
            Delete…
          </button>
        </div>
        {draft && (
          <div className="meta-fields">
            <label>
              Name
              <input
                value={draft.name}
                onChange={(e) => dispatch({ type: 'edit', patch: { name: e.target.value } })}
                required
                data-testid="fn-name"
              />
            </label>
            <label className="grow">
              Description
              <input
                value={draft.description}
                onChange={(e) => dispatch({ type: 'edit', patch: { description: e.target.value } })}
                data-testid="fn-description"
              />
            </label>
          </div>
        )}
      </form>
      {saveError != null && <ErrorBox error={saveError} title="Could not save" testId="save-error" />}
      {conflict && !deleted && draft && base && (
        <ConflictPanel
          theirRevision={fn.revision}
          baseRevision={base.revision}
          theirs={fn.source}
          yours={draft.source}
          busy={saving}
          onKeepMine={() => void save({ over: fn.revision })}
          onTakeTheirs={() => {
            setSaveError(null);
            dispatch({ type: 'takeTheirs' });
          }}
        />
      )}

      <div className="detail-grid">
        <div className="col-source">
          {draft && (
            <CodeEditor
              key={fn.id}
              value={draft.source}
              onChange={(source) => dispatch({ type: 'edit', patch: { source } })}
              language="typescript"
              ariaLabel="Function source (AssemblyScript)"
              diagnostics={diagnostics}
              onSave={() => void save()}
              handleRef={(h) => (editor.current = h)}
              testId="source-editor"
              className="source-editor"
            />
          )}
          {fn.status !== 'FAILED' && !deleted && <CompileStatus fn={fn} diagnostics={diagnostics} onJump={() => {}} />}
        </div>
        <div className="col-run">
          {/* Compile errors sit beside the source. */}
          {fn.status === 'FAILED' && (
            <CompileStatus fn={fn} diagnostics={diagnostics} onJump={(l, c) => editor.current?.focusAt(l, c)} />
          )}
          <RunPanel
            fn={fn}
            deleted={deleted}
            dirty={dirty}
            saveRun={saveRun}
            onSaveAndRun={() => void saveAndRun()}
            controlsRef={runControls}
          />
          <Executions
            functionId={fn.id}
            onShowRevision={showRevision}
            filter={execFilter}
            onClearFilter={clearExecFilter}
          />
        </div>
      </div>
      {!deleted && <FunctionMetrics functionId={fn.id} onShowErrorKind={showErrorKind} />}
      {!deleted && <VersionsPanel fn={fn} focus={focus} onRolledBack={seen} notify={notify} />}

      <ConfirmDialog
        open={confirmDelete}
        title={`Delete “${fn.name}”?`}
        confirmLabel="Delete"
        busyLabel="Deleting…"
        busy={deleting}
        testId="delete-dialog"
        onConfirm={() => void remove()}
        onCancel={() => setConfirmDelete(false)}
      >
        The function, its compiled module, its versions and all of its executions are deleted. This cannot be undone.
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
