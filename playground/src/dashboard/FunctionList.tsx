// The functions list: search by name, filter by status (both kept in the query
// string), Relay-cursor paging, and rows kept live by the functionChanged
// subscription (all functions): badges, renames, new and deleted functions.
import { useEffect, useRef, useState } from 'react';
import { subscribe } from '../shared/client';
import { ALL_FUNCTIONS_CHANGED_SUBSCRIPTION, FUNCTIONS_QUERY, FUNCTION_STATUSES, type FunctionStatus } from './api';
import { Empty, ErrorBox, StatusBadge } from './bits';
import { useConnection, useDebounced, useQuery } from './hooks';
import { getQueryParam, setQueryParams } from './navigation';

const PAGE_SIZE = 15;

const initialStatus = (): FunctionStatus | '' => {
  const s = getQueryParam('status').toUpperCase();
  return (FUNCTION_STATUSES as string[]).includes(s) ? (s as FunctionStatus) : '';
};

export function FunctionList({ selectedId, refreshToken }: { selectedId: string | null; refreshToken: number }) {
  const [search, setSearch] = useState(() => getQueryParam('q'));
  const [status, setStatus] = useState<FunctionStatus | ''>(initialStatus);
  const nameContains = useDebounced(search.trim(), 250);
  // A reload (or a shared link) keeps the search and the filter.
  useEffect(() => setQueryParams({ q: search.trim(), status }), [search, status]);
  // cursors[i] is the `after` cursor of page i (page 0 starts at the beginning).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const page = cursors.length - 1;
  const { generation } = useConnection();
  const searchRef = useRef<HTMLInputElement>(null);

  const {
    data: res,
    error,
    loading,
    refetch,
    setData,
  } = useQuery(
    FUNCTIONS_QUERY,
    { first: PAGE_SIZE, after: cursors[page], status: status || null, nameContains: nameContains || null },
    { refetchOn: [refreshToken, generation] },
  );
  const data = res?.functions;

  // A new filter starts again from the first page.
  useEffect(() => setCursors((c) => (c.length === 1 && c[0] === null ? c : [null])), [status, nameContains]);

  // Live rows: patch the row at once (badge, rename) or drop a deleted one, then
  // refetch (debounced) so that new, filtered-out or reordered functions land where they belong.
  const refetchTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => {
    const stop = subscribe(ALL_FUNCTIONS_CHANGED_SUBSCRIPTION, {}, {
      next: ({ functionChanged: ev }) => {
        setData((r) => {
          if (!r) return r;
          const d = r.functions;
          if (ev.kind === 'DELETED' || !ev.function) {
            const nodes = d.nodes.filter((n) => n.id !== ev.functionId);
            return nodes.length === d.nodes.length
              ? r
              : { functions: { ...d, nodes, totalCount: Math.max(0, d.totalCount - 1) } };
          }
          const f = ev.function;
          return { functions: { ...d, nodes: d.nodes.map((n) => (n.id === f.id ? { ...n, ...f } : n)) } };
        });
        clearTimeout(refetchTimer.current);
        refetchTimer.current = setTimeout(() => void refetch(), 400);
      },
    });
    return () => {
      stop();
      clearTimeout(refetchTimer.current);
    };
  }, [setData, refetch]);

  // "/" focuses the search box from anywhere outside an editor or field.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      if (t.closest('input, textarea, select, .cm-editor, [contenteditable]')) return;
      e.preventDefault();
      searchRef.current?.focus();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  const filtered = !!(nameContains || status);
  const first = page * PAGE_SIZE + 1;

  return (
    <section className="panel function-list" aria-labelledby="functions-heading">
      <div className="panel-head">
        <h2 id="functions-heading">Functions</h2>
        <a className="btn btn-primary btn-small" href="#/new" data-testid="new-function">
          + New
        </a>
      </div>
      <div className="filters">
        <input
          ref={searchRef}
          type="search"
          placeholder="Search by name"
          title="Search by name (press / to focus)"
          aria-label="Search functions by name"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          data-testid="search"
        />
        <select
          aria-label="Filter by status"
          value={status}
          onChange={(e) => setStatus(e.target.value as FunctionStatus | '')}
          data-testid="status-filter"
        >
          <option value="">All statuses</option>
          {FUNCTION_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>

      {error != null && <ErrorBox error={error} title="Could not load functions" onRetry={() => void refetch()} />}

      {data && data.nodes.length === 0 && !error && (
        <Empty>
          {filtered ? (
            <>No function matches this search.</>
          ) : (
            <>
              No functions yet. <a href="#/new">Create the first one</a> from the example template.
            </>
          )}
        </Empty>
      )}

      {data && data.nodes.length > 0 && (
        <ul className="fn-list" aria-busy={loading} data-testid="function-list">
          {data.nodes.map((f) => (
            <li key={f.id}>
              <a
                href={`#/functions/${f.id}`}
                className={`fn-row ${f.id === selectedId ? 'selected' : ''}`}
                aria-current={f.id === selectedId ? 'true' : undefined}
                data-testid="function-row"
                data-id={f.id}
                data-name={f.name}
              >
                <span className="fn-name">{f.name}</span>
                <StatusBadge status={f.status} testId="function-status" />
              </a>
            </li>
          ))}
        </ul>
      )}
      {!data && !error && <div className="muted pad">Loading…</div>}

      {data && (data.totalCount > 0 || page > 0) && (
        <div className="pager">
          <button
            type="button"
            className="btn btn-small"
            disabled={page === 0}
            onClick={() => setCursors((c) => c.slice(0, -1))}
            aria-label="Previous page"
          >
            ‹ Prev
          </button>
          <span className="muted" data-testid="page-info">
            {data.nodes.length ? `${first}–${first + data.nodes.length - 1}` : '0'} of {data.totalCount}
          </span>
          <button
            type="button"
            className="btn btn-small"
            disabled={!data.pageInfo.hasNextPage}
            onClick={() => setCursors((c) => [...c, data.pageInfo.endCursor])}
            aria-label="Next page"
          >
            Next ›
          </button>
        </div>
      )}
    </section>
  );
}
