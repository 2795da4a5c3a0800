// Metrics: a function's panel (tiles, executions over time, error kinds; a
// kind opens the executions that failed with it) and the overview of all
// functions (the platform's totals and series, the top functions by
// invocations and by failures). Both count executions that FINISHED in the
// chosen window and follow finishing executions live (executionStatusChanged,
// refetches throttled to one every 2 s).
import { useRef, type ReactNode } from 'react';
import {
  ALL_EXECUTIONS_FINISHED_SUBSCRIPTION,
  FUNCTION_EXECUTIONS_FINISHED_SUBSCRIPTION,
  FUNCTION_STATS_QUERY,
  PLATFORM_STATS_QUERY,
  type ExecutionErrorKind,
  type ExecutionStats,
  type FunctionStatsSummary,
} from './api';
import { Empty, ErrorBox, StatusBadge } from './bits';
import { formatDuration, useScrollIntoViewWhenNarrow } from './hooks';
import {
  ERROR_KIND_LABELS,
  WINDOWS,
  formatCount,
  formatRate,
  useLiveStats,
  useStatsWindow,
  type StatsRange,
  type StatsWindow,
  type WindowKey,
} from './metrics';
import { functionHash } from './navigation';
import { StatsChart } from './StatsChart';

const TOP = 5;

function WindowPicker({ value, onChange }: { value: StatsWindow; onChange: (k: WindowKey) => void }) {
  return (
    <div className="segmented" role="group" aria-label="Time window" data-testid="window-picker">
      {WINDOWS.map((w) => (
        <button
          key={w.key}
          type="button"
          className="segmented-btn"
          aria-pressed={w.key === value.key}
          onClick={() => onChange(w.key)}
          data-testid={`window-${w.key}`}
          title={`Executions that finished in ${w.phrase}`}
        >
          {w.label}
        </button>
      ))}
    </div>
  );
}

function Tile({
  label,
  value,
  raw,
  testId,
  tone,
  title,
}: {
  label: string;
  value: string;
  raw: number | null | undefined;
  testId: string;
  tone?: 'ok' | 'bad';
  title?: string;
}) {
  return (
    <div className={`stat-tile ${tone ? `stat-${tone}` : ''}`} data-testid={testId} data-value={raw ?? ''} title={title}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
    </div>
  );
}

function StatTiles({ stats }: { stats: ExecutionStats }) {
  const d = stats.durationMs;
  return (
    <div className="stat-tiles" data-testid="stat-tiles">
      <Tile label="Finished" value={formatCount(stats.total)} raw={stats.total} testId="stat-total" title="completed + failed" />
      <Tile label="Completed" value={formatCount(stats.completed)} raw={stats.completed} testId="stat-completed" />
      <Tile
        label="Failed"
        value={formatCount(stats.failed)}
        raw={stats.failed}
        testId="stat-failed"
        tone={stats.failed > 0 ? 'bad' : undefined}
      />
      <Tile
        label="Success rate"
        value={formatRate(stats.successRate)}
        raw={stats.successRate}
        testId="stat-success-rate"
        tone={stats.successRate == null ? undefined : stats.successRate >= 0.99 ? 'ok' : stats.successRate < 0.9 ? 'bad' : undefined}
        title="completed / (completed + failed)"
      />
      <Tile label="p50" value={formatDuration(d?.p50)} raw={d?.p50} testId="stat-p50" title="Median duration" />
      <Tile label="p95" value={formatDuration(d?.p95)} raw={d?.p95} testId="stat-p95" />
      <Tile label="p99" value={formatDuration(d?.p99)} raw={d?.p99} testId="stat-p99" />
      <Tile label="Mean" value={formatDuration(d?.mean)} raw={d?.mean} testId="stat-mean" />
      <Tile label="Max" value={formatDuration(d?.max)} raw={d?.max} testId="stat-max" />
    </div>
  );
}

/** Failures by kind, most frequent first; with `onShow`, a kind is a button. */
function ErrorKinds({
  stats,
  onShow,
}: {
  stats: ExecutionStats;
  onShow?: (kind: ExecutionErrorKind) => void;
}) {
  const kinds = [...stats.errorsByKind].filter((k) => k.count > 0).sort((a, b) => b.count - a.count || a.kind.localeCompare(b.kind));
  const max = Math.max(1, ...kinds.map((k) => k.count));
  return (
    <div className="error-kinds" data-testid="error-kinds">
      <h3>Failures by kind</h3>
      {kinds.length === 0 ? (
        <div className="muted small" data-testid="no-failures">
          No failures in this window.
        </div>
      ) : (
        <ul className="kind-list">
          {kinds.map((k) => {
            const body = (
              <>
                <span className="kind-name">
                  {ERROR_KIND_LABELS[k.kind] ?? k.kind} <code>{k.kind}</code>
                </span>
                <span className="kind-count">{formatCount(k.count)}</span>
                <span className="meter" aria-hidden="true">
                  <span className="meter-fill meter-bad" style={{ width: `${(k.count / max) * 100}%` }} />
                </span>
              </>
            );
            return (
              <li key={k.kind} data-testid="error-kind" data-kind={k.kind} data-count={k.count}>
                {onShow ? (
                  <button
                    type="button"
                    className="kind-row"
                    onClick={() => onShow(k.kind)}
                    title={`Show the executions that failed with ${k.kind}`}
                    data-testid="error-kind-show"
                  >
                    {body}
                  </button>
                ) : (
                  <div className="kind-row">{body}</div>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

/** Tiles, chart and error kinds of one answer, or its empty state. */
function StatsBody({
  stats,
  range,
  w,
  chartTestId,
  onShowKind,
}: {
  stats: ExecutionStats;
  range: StatsRange;
  w: StatsWindow;
  chartTestId: string;
  onShowKind?: (kind: ExecutionErrorKind) => void;
}) {
  return (
    <>
      <StatTiles stats={stats} />
      {stats.total === 0 ? (
        <Empty>
          <span data-testid="metrics-empty">No executions finished in this window ({w.phrase}).</span>
        </Empty>
      ) : (
        <>
          <StatsChart series={stats.series} range={range} per={w.per} testId={chartTestId} />
          <ErrorKinds stats={stats} onShow={onShowKind} />
        </>
      )}
    </>
  );
}

function LiveNote({ loading, children }: { loading: boolean; children?: ReactNode }) {
  return (
    <span className="muted small" data-testid="metrics-live" data-loading={loading}>
      {children}
      {loading ? 'updating…' : 'live'}
    </span>
  );
}

// ---- one function -------------------------------------------------------------

export function FunctionMetrics({
  functionId,
  onShowErrorKind,
}: {
  functionId: string;
  onShowErrorKind: (kind: ExecutionErrorKind) => void;
}) {
  const [w, setWindow] = useStatsWindow();
  const live = useLiveStats(w, FUNCTION_STATS_QUERY, { id: functionId }, FUNCTION_EXECUTIONS_FINISHED_SUBSCRIPTION, {
    functionId,
  });
  const { range, error, loading, reload } = live;
  const data = live.data && (live.data.function?.stats ?? null);

  return (
    <section className="panel metrics" aria-labelledby="metrics-heading" data-testid="function-metrics" aria-busy={loading}>
      <div className="panel-head wrap">
        <h2 id="metrics-heading">Metrics</h2>
        <LiveNote loading={loading}>{w.phrase} · </LiveNote>
        <div className="spacer" />
        <WindowPicker value={w} onChange={setWindow} />
      </div>
      {error != null && <ErrorBox error={error} title="Could not load the metrics" onRetry={reload} testId="metrics-error" />}
      {data === undefined && error == null && <div className="muted small">Loading…</div>}
      {data && range && (
        <StatsBody stats={data} range={range} w={w} chartTestId="function-chart" onShowKind={onShowErrorKind} />
      )}
    </section>
  );
}

// ---- all functions --------------------------------------------------------------

function TopList({
  title,
  testId,
  items,
  value,
  empty,
  tone,
}: {
  title: string;
  testId: string;
  items: FunctionStatsSummary[];
  value: (f: FunctionStatsSummary) => number;
  empty: string;
  tone: 'accent' | 'bad';
}) {
  const max = Math.max(1, ...items.map(value));
  return (
    <section className="panel top-list" aria-label={title} data-testid={testId}>
      <h3>{title}</h3>
      {items.length === 0 ? (
        <div className="muted small">{empty}</div>
      ) : (
        <ol className="top-rows">
          {items.map((f) => (
            <li key={f.id} data-testid="top-row" data-name={f.name} data-id={f.id} data-count={value(f)}>
              <span className="top-fn">
                <a className="top-name" href={functionHash(f.id)} title={f.name}>
                  {f.name}
                </a>
                {f.status !== 'READY' && <StatusBadge status={f.status} />}
              </span>
              <span className="top-count">{formatCount(value(f))}</span>
              <span className="top-rate muted" title="Success rate">
                {formatRate(f.stats.successRate)}
              </span>
              <span className="meter" aria-hidden="true">
                <span className={`meter-fill meter-${tone}`} style={{ width: `${(value(f) / max) * 100}%` }} />
              </span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function MetricsOverview() {
  const [w, setWindow] = useStatsWindow();
  const page = useRef<HTMLDivElement>(null);
  const { data, range, error, loading, reload } = useLiveStats(w, PLATFORM_STATS_QUERY, {}, ALL_EXECUTIONS_FINISHED_SUBSCRIPTION, {});
  useScrollIntoViewWhenNarrow(page, data !== undefined);

  // Ranked client-side among the first 100 functions only (PLATFORM_STATS_QUERY asks for functions(first: 100)).
  const fns = data?.functions.nodes ?? [];
  const byInvocations = fns
    .filter((f) => f.stats.total > 0)
    .sort((a, b) => b.stats.total - a.stats.total || a.name.localeCompare(b.name))
    .slice(0, TOP);
  const byFailures = fns
    .filter((f) => f.stats.failed > 0)
    .sort((a, b) => b.stats.failed - a.stats.failed || a.name.localeCompare(b.name))
    .slice(0, TOP);
  const bounded = (data?.functions.totalCount ?? 0) > fns.length;

  return (
    <div ref={page} className="detail metrics-overview" data-testid="metrics-overview" aria-busy={loading}>
      <section className="panel metrics" aria-labelledby="overview-heading">
        <div className="panel-head wrap">
          <h1 id="overview-heading">Metrics · all functions</h1>
          <LiveNote loading={loading}>{w.phrase} · </LiveNote>
          <div className="spacer" />
          <WindowPicker value={w} onChange={setWindow} />
        </div>
        {error != null && <ErrorBox error={error} title="Could not load the metrics" onRetry={reload} testId="metrics-error" />}
        {data === undefined && error == null && <div className="muted small">Loading…</div>}
        {data && range && <StatsBody stats={data.executionStats} range={range} w={w} chartTestId="platform-chart" />}
      </section>
      {data && (
        <>
          <div className="top-lists">
            <TopList
              title="Top functions by invocations"
              testId="top-invocations"
              items={byInvocations}
              value={(f) => f.stats.total}
              empty="No function finished an execution in this window."
              tone="accent"
            />
            <TopList
              title="Top functions by failures"
              testId="top-failures"
              items={byFailures}
              value={(f) => f.stats.failed}
              empty="No failures in this window."
              tone="bad"
            />
          </div>
          {bounded && (
            <p className="muted small" data-testid="top-bounded">
              The top lists rank the first {fns.length} of {data.functions.totalCount} functions.
            </p>
          )}
        </>
      )}
    </div>
  );
}
