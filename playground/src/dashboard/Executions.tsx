// A function's executions, newest first, kept live by
// executionStatusChanged(functionId); a row opens its input/output/error/logs,
// and its revision links to that revision in the Versions panel.
// Unfinished rows tick a live timer and can be cancelled. With an error kind
// (from the Metrics panel) it lists only the executions that failed with it.
import { useCallback, useEffect, useRef, useState } from 'react';
import { request, subscribe } from '../shared/client';
import { FUNCTION_EXECUTIONS_QUERY, FUNCTION_EXECUTIONS_SUBSCRIPTION, type Execution, type ExecutionErrorKind } from './api';
import { Empty, ErrorBox, StatusBadge } from './bits';
import { Attempt, CancelButton, Elapsed, isActive, latest, useCancel } from './ExecutionControls';
import { formatDuration, formatTime, useConnection, useQuery } from './hooks';
import { functionHash } from './navigation';
import { ExecutionBody } from './RunPanel';

const PAGE = 20;

function preview(e: Execution): string {
  if (e.status === 'FAILED') return e.errorMessage ?? 'failed';
  if (e.status !== 'COMPLETED') return '…';
  const s = JSON.stringify(e.output);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

/** Which executions to list, from a link elsewhere on the page; `n` changes on every request. */
export interface ExecutionFilter {
  errorKind: ExecutionErrorKind | null;
  n: number;
}

export function Executions({
  functionId,
  onShowRevision,
  filter,
  onClearFilter,
}: {
  functionId: string;
  onShowRevision: (revision: number) => void;
  filter?: ExecutionFilter;
  onClearFilter?: () => void;
}) {
  const errorKind = filter?.errorKind ?? null;
  const [items, setItems] = useState<Execution[]>([]);
  const [total, setTotal] = useState(0);
  const [next, setNext] = useState<string | null>(null);
  const [moreError, setMoreError] = useState<unknown>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const { generation } = useConnection();
  const known = useRef(new Set<string>());
  const panel = useRef<HTMLElement>(null);

  const update = useCallback((e: Execution) => {
    setItems((list) => list.map((x) => (x.id === e.id ? latest(x, e) : x)));
  }, []);

  const query = useQuery(FUNCTION_EXECUTIONS_QUERY, { id: functionId, first: PAGE, errorKind }, {
    refetchOn: [generation],
    onData: (res) => {
      const conn = res.function?.executions;
      if (!conn) return;
      setMoreError(null);
      known.current = new Set(conn.nodes.map((n) => n.id));
      setItems(conn.nodes);
      setTotal(conn.totalCount);
      setNext(conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null);
    },
  });
  const error = query.error ?? moreError;
  const loaded = query.data !== undefined || query.error != null;

  // Asked for from elsewhere (an error kind in Metrics): bring the list into view.
  const filterN = filter?.n ?? 0;
  useEffect(() => {
    if (filterN > 0) panel.current?.scrollIntoView({ block: 'start' });
  }, [filterN]);

  useEffect(
    () =>
      subscribe(
        FUNCTION_EXECUTIONS_SUBSCRIPTION,
        { functionId },
        {
          next: ({ executionStatusChanged: ev }) => {
            const e = { ...ev.execution, status: ev.status };
            if (!known.current.has(e.id)) {
              // Filtered: only an execution that failed with the kind joins the list.
              if (errorKind && (e.status !== 'FAILED' || e.errorKind !== errorKind)) return;
              known.current.add(e.id);
              setTotal((t) => t + 1);
              setItems((list) => [e, ...list]);
            } else {
              update(e);
            }
          },
        },
      ),
    [functionId, errorKind, update],
  );

  const more = async () => {
    if (!next) return;
    setLoadingMore(true);
    try {
      const res = await request(FUNCTION_EXECUTIONS_QUERY, {
        id: functionId,
        first: PAGE,
        after: next,
        errorKind,
      });
      const conn = res.function?.executions;
      if (conn) {
        const fresh = conn.nodes.filter((n) => !known.current.has(n.id));
        fresh.forEach((n) => known.current.add(n.id));
        setItems((list) => [...list, ...fresh]);
        setNext(conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null);
      }
    } catch (err) {
      setMoreError(err);
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <section
      ref={panel}
      className="panel executions"
      aria-labelledby="executions-heading"
      data-testid="executions"
      data-error-kind={errorKind ?? undefined}
    >
      <div className="panel-head">
        <h2 id="executions-heading">Executions</h2>
        <span className="muted small" data-testid="executions-total">
          {errorKind ? `${total} failed with ${errorKind}` : `${total} total`} · newest first · live
        </span>
      </div>
      {errorKind && (
        <div className="filter-chip" data-testid="executions-filter" data-kind={errorKind}>
          <span>
            Only failures of kind <code>{errorKind}</code>
          </span>
          <button
            type="button"
            className="linklike"
            onClick={onClearFilter}
            data-testid="executions-filter-clear"
            aria-label="Show all executions"
          >
            Show all
          </button>
        </div>
      )}
      {error != null && <ErrorBox error={error} title="Could not load executions" onRetry={() => void query.refetch()} />}
      {loaded && items.length === 0 && !error && (
        <Empty>
          {errorKind
            ? `No executions of this function failed with ${errorKind}.`
            : 'No executions yet. Run the function to see them here.'}
        </Empty>
      )}
      {items.length > 0 && (
        <ul className="exec-list" data-testid="execution-list">
          {items.map((e) => (
            <ExecutionItem
              key={e.id}
              execution={e}
              open={open === e.id}
              onToggle={() => setOpen(open === e.id ? null : e.id)}
              onUpdate={update}
              onShowRevision={onShowRevision}
            />
          ))}
        </ul>
      )}
      {next && (
        <button type="button" className="btn btn-small more" disabled={loadingMore} onClick={() => void more()}>
          {loadingMore ? 'Loading…' : 'Load older executions'}
        </button>
      )}
    </section>
  );
}

function ExecutionItem({
  execution: e,
  open,
  onToggle,
  onUpdate,
  onShowRevision,
}: {
  execution: Execution;
  open: boolean;
  onToggle: () => void;
  onUpdate: (e: Execution) => void;
  onShowRevision: (revision: number) => void;
}) {
  const { cancel, busy, error } = useCancel(onUpdate);
  const active = isActive(e.status);
  return (
    <li
      className={open ? 'open' : ''}
      data-testid="execution-item"
      data-id={e.id}
      data-status={e.status}
      data-error-kind={e.errorKind ?? undefined}
    >
      <div className="exec-line">
        <button
          type="button"
          className="exec-row"
          aria-expanded={open}
          onClick={onToggle}
          data-testid="execution-row"
          data-id={e.id}
        >
          <span className="exec-state">
            <StatusBadge status={e.status} testId="execution-status" />
            <Attempt attempt={e.attempt} />
          </span>
          <span className="exec-time" title={e.createdAt} data-testid="execution-time">
            {formatTime(e.createdAt)}
          </span>
          <span className="exec-duration">
            {active ? <Elapsed execution={e} testId="execution-elapsed" /> : formatDuration(e.durationMs)}
          </span>
          <span
            className={`exec-preview ${e.status === 'FAILED' ? 'failed' : ''}`}
            data-testid="execution-preview"
            title={e.errorKind ? `${e.errorKind}: ${e.errorMessage ?? ''}` : undefined}
          >
            {preview(e)}
          </span>
        </button>
        <a
          className="exec-rev"
          href={functionHash(e.functionId, e.revision)}
          onClick={() => onShowRevision(e.revision)}
          title={`Ran revision ${e.revision}: show it in Versions`}
          data-testid="execution-revision"
          data-revision={e.revision}
        >
          r{e.revision}
        </a>
        {active && <CancelButton busy={busy} onClick={() => void cancel(e.id)} />}
      </div>
      {error != null && active && (
        <div className="exec-cancel-error">
          <ErrorBox error={error} title="Could not cancel the execution" testId="cancel-error" />
        </div>
      )}
      {open && (
        <div className="exec-detail" data-testid="execution-detail">
          <ExecutionBody execution={e} showInput />
          <div className="muted small exec-meta">
            id {e.id} · started {formatTime(e.startedAt)} · completed {formatTime(e.completedAt)}
            {e.attempt > 1 && <> · attempt {e.attempt}</>}
          </div>
        </div>
      )}
    </li>
  );
}
