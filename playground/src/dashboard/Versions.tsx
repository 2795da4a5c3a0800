// A function's revisions, newest first: status, time and size of each, the
// deployed one marked, Rollback on the other READY ones, and a side-by-side
// diff of any two (revision 0 stands for the empty source before the first).
import { useEffect, useMemo, useRef, useState } from 'react';
import { request } from '../shared/client';
import {
  FUNCTION_VERSIONS_QUERY,
  FUNCTION_VERSION_QUERY,
  ROLLBACK_FUNCTION,
  type FunctionDetail as Fn,
  type FunctionVersion,
} from './api';
import { ConfirmDialog, ErrorBox, StatusBadge, describeError } from './bits';
import { DiffView } from './DiffView';
import { formatBytes, formatTime, useConnection, useQuery } from './hooks';
import { functionHash } from './navigation';

const PAGE = 20;

/** Which revision to show, from a link elsewhere on the page; `n` changes on every request. */
export interface RevisionFocus {
  revision: number | null;
  n: number;
}

// Revisions never change: their sources are cached for the page's life.
const sources = new Map<string, Promise<string>>();

function fetchSource(id: string, revision: number): Promise<string> {
  if (revision < 1) return Promise.resolve('');
  const key = `${id}:${revision}`;
  let p = sources.get(key);
  if (!p) {
    p = request(FUNCTION_VERSION_QUERY, { id, revision }).then((res) => {
      const v = res.function?.version;
      if (!v) throw new Error(`Revision ${revision} was not found.`);
      return v.source;
    });
    p.catch(() => sources.delete(key));
    sources.set(key, p);
  }
  return p;
}

function useSource(id: string, revision: number) {
  const [state, setState] = useState<{ key: string; source?: string; error?: unknown }>({ key: '' });
  const key = `${id}:${revision}`;
  useEffect(() => {
    let live = true;
    fetchSource(id, revision).then(
      (source) => live && setState({ key, source }),
      (error) => live && setState({ key, error }),
    );
    return () => {
      live = false;
    };
  }, [id, revision, key]);
  return state.key === key ? state : { key };
}

export function VersionsPanel({
  fn,
  focus,
  onRolledBack,
  notify,
}: {
  fn: Fn;
  focus: RevisionFocus;
  onRolledBack: (fn: Fn) => void;
  notify: (message: string, kind?: 'ok' | 'error') => void;
}) {
  const [items, setItems] = useState<FunctionVersion[]>([]);
  const [total, setTotal] = useState(0);
  const [next, setNext] = useState<string | null>(null);
  const [moreError, setMoreError] = useState<unknown>(null);
  const [selected, setSelected] = useState<number | null>(focus.revision);
  const [from, setFrom] = useState<number | null>(null);
  const [rollback, setRollback] = useState<number | null>(null);
  const [rollingBack, setRollingBack] = useState(false);
  const { generation } = useConnection();
  const panel = useRef<HTMLElement>(null);
  const count = useRef(0);
  count.current = items.length;

  // A new revision, a compile outcome or a deploy: the list changed. A refetch
  // asks for as many revisions as are listed (older pages included), counted
  // only when one of these changes, so that loading older ones is no refetch.
  const refetchOn = [fn.revision, fn.status, fn.deployedRevision, generation];
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const first = useMemo(() => Math.min(100, Math.max(PAGE, count.current)), refetchOn);
  const query = useQuery(FUNCTION_VERSIONS_QUERY, { id: fn.id, first }, {
    refetchOn,
    onData: (res) => {
      const conn = res.function?.versions;
      if (!conn) return;
      setItems(conn.nodes);
      setTotal(conn.totalCount);
      setNext(conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null);
      setMoreError(null);
    },
  });
  const error = query.error ?? moreError;

  const more = async () => {
    if (!next) return;
    try {
      const res = await request(FUNCTION_VERSIONS_QUERY, {
        id: fn.id,
        first: PAGE,
        after: next,
      });
      const conn = res.function?.versions;
      if (!conn) return;
      setItems((list) => [...list, ...conn.nodes.filter((n) => !list.some((x) => x.revision === n.revision))]);
      setNext(conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null);
    } catch (err) {
      setMoreError(err);
    }
  };

  // A link elsewhere (an execution's revision, the URL) asked for a revision: select it and bring it into view.
  useEffect(() => {
    if (focus.revision == null) return;
    setSelected(focus.revision);
    setFrom(null);
    const frame = requestAnimationFrame(() => {
      const row = panel.current?.querySelector(`[data-testid="version-row"][data-revision="${focus.revision}"]`);
      (row ?? panel.current)?.scrollIntoView({ block: 'center', behavior: 'smooth' });
    });
    return () => cancelAnimationFrame(frame);
  }, [focus]);

  const shown = Math.min(selected ?? fn.revision, fn.revision);
  const base = from ?? shown - 1;

  const select = (revision: number) => {
    setSelected(revision);
    setFrom(null);
    // Keep the choice across a reload, without a history entry of its own.
    history.replaceState(history.state, '', `${location.pathname}${location.search}${functionHash(fn.id, revision)}`);
  };

  const doRollback = async () => {
    if (rollback == null) return;
    setRollingBack(true);
    try {
      const res = await request(ROLLBACK_FUNCTION, { id: fn.id, revision: rollback });
      const f = res.rollbackFunction;
      notify(`Rolled back: revision ${f.revision} (the source of revision ${rollback}) is live.`);
      setRollback(null);
      onRolledBack(f);
      select(f.revision);
    } catch (err) {
      notify(`Rollback failed: ${describeError(err).message}`, 'error');
    } finally {
      setRollingBack(false);
    }
  };

  const revisions = Array.from({ length: fn.revision }, (_, i) => fn.revision - i);
  const statusOf = (v: FunctionVersion) => (v.revision === fn.revision ? fn.status : v.status);
  const selectedVersion = items.find((v) => v.revision === shown);

  return (
    <section ref={panel} className="panel versions" aria-labelledby="versions-heading" data-testid="versions">
      <div className="panel-head">
        <h2 id="versions-heading">Versions</h2>
        <span className="muted small">
          {total} revision{total === 1 ? '' : 's'} · newest first
        </span>
      </div>
      {error != null && <ErrorBox error={error} title="Could not load versions" onRetry={() => void query.refetch()} />}
      <div className="versions-body">
        <div className="versions-list-col">
          <ul className="version-list" data-testid="version-list">
            {items.map((v) => {
              const deployed = v.revision === fn.deployedRevision;
              const status = statusOf(v);
              return (
                <li
                  key={v.revision}
                  className={`version-row ${v.revision === shown ? 'selected' : ''}`}
                  data-testid="version-row"
                  data-revision={v.revision}
                  data-status={status}
                  data-deployed={deployed}
                >
                  <button
                    type="button"
                    className="version-select"
                    aria-pressed={v.revision === shown}
                    onClick={() => select(v.revision)}
                    title={`Compare revision ${v.revision} with the one before it`}
                  >
                    <span className="version-rev">r{v.revision}</span>
                    <StatusBadge status={status} testId="version-status" />
                    {deployed && (
                      <span className="deployed-marker" data-testid="deployed-marker" title="Executions run this revision">
                        deployed
                      </span>
                    )}
                    <span className="version-meta muted">
                      {formatTime(v.createdAt)}
                      {v.wasmSize != null && <> · {formatBytes(v.wasmSize)}</>}
                    </span>
                  </button>
                  {status === 'READY' && !deployed && (
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() => setRollback(v.revision)}
                      data-testid="rollback"
                      title={`Serve revision ${v.revision}'s source again, at once`}
                    >
                      Rollback
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
          {next && (
            <button type="button" className="btn btn-small more" onClick={() => void more()}>
              Load older revisions
            </button>
          )}
        </div>
        <div className="versions-diff-col">
          <div className="diff-controls">
            <label>
              Compare
              <select
                value={base}
                onChange={(e) => setFrom(Number(e.target.value))}
                data-testid="diff-from"
                aria-label="Older side of the diff"
              >
                {revisions.map((r) => (
                  <option key={r} value={r}>
                    revision {r}
                  </option>
                ))}
                <option value={0}>empty</option>
              </select>
            </label>
            <label>
              with
              <select
                value={shown}
                onChange={(e) => {
                  setSelected(Number(e.target.value));
                  if (from == null) setFrom(base);
                }}
                data-testid="diff-to"
                aria-label="Newer side of the diff"
              >
                {revisions.map((r) => (
                  <option key={r} value={r}>
                    revision {r}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <RevisionDiff id={fn.id} from={base} to={shown} />
          {selectedVersion && statusOf(selectedVersion) === 'FAILED' && selectedVersion.compileError && (
            <details className="version-error" data-testid="version-compile-error">
              <summary>Revision {shown} failed to compile</summary>
              <pre className="diag-text">{selectedVersion.compileError}</pre>
            </details>
          )}
        </div>
      </div>
      <ConfirmDialog
        open={rollback != null}
        title={`Roll back to revision ${rollback}?`}
        confirmLabel="Rollback"
        busyLabel="Rolling back…"
        tone="primary"
        busy={rollingBack}
        testId="rollback-dialog"
        onConfirm={() => void doRollback()}
        onCancel={() => setRollback(null)}
      >
        Records revision {fn.revision + 1} with the source of revision {rollback} and serves it at once, with no
        compile. Executions run it from then on.
      </ConfirmDialog>
    </section>
  );
}

function RevisionDiff({ id, from, to }: { id: string; from: number; to: number }) {
  const a = useSource(id, from);
  const b = useSource(id, to);
  const failed = a.error ?? b.error;
  if (failed != null) return <ErrorBox error={failed} title="Could not load the sources" />;
  if (a.source === undefined || b.source === undefined) return <div className="muted small pad">Loading…</div>;
  return (
    <DiffView
      a={a.source}
      b={b.source}
      aLabel={from < 1 ? 'empty' : `revision ${from}`}
      bLabel={`revision ${to}`}
      testId="revision-diff"
    />
  );
}
