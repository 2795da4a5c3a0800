// Executions over time with uPlot (small, fast canvas charts, MIT, no
// dependencies): per bucket, completed and failed stacked as bars (counts,
// left axis) and the bucket's p95 duration as a line (ms, right axis). The
// chart follows its container's width (ResizeObserver), so it reads at 400 px.
import { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { StatsPoint } from './api';
import { formatDuration } from './hooks';
import { toGrid, type Grid, type StatsRange } from './metrics';

const COLORS = {
  completed: '#3aa76d',
  failed: '#d64545',
  p95: '#2f5bd3',
  axis: '#5f6b7d',
  grid: '#eef1f5',
};

const HEIGHT = 200;
const NARROW_HEIGHT = 170;

/** "12 ms", "1.2 s": short enough for an axis. */
function shortMs(v: number): string {
  if (v === 0) return '0';
  if (v < 1) return `${+v.toFixed(2)} ms`;
  if (v < 1000) return `${+v.toFixed(v < 10 ? 1 : 0)} ms`;
  return `${+(v / 1000).toFixed(1)} s`;
}

const timeOnly = uPlot.fmtDate('{HH}:{mm}');
const dayOnly = uPlot.fmtDate('{MMM} {D}');
const dateTime = uPlot.fmtDate('{MMM} {D}, {HH}:{mm}');

/** Time ticks on a 24-hour clock (as the rest of the dashboard), the date under the first and each midnight. */
function timeTicks(_u: uPlot, splits: number[], _axis: number, _space: number, incr: number): string[] {
  let prevDay = '';
  return splits.map((v) => {
    const d = new Date(v * 1000);
    const day = dayOnly(d);
    if (incr >= 86_400) return day;
    const label = day !== prevDay ? `${timeOnly(d)}\n${day}` : timeOnly(d);
    prevDay = day;
    return label;
  });
}

/** A p95 value with no value beside it draws no line: show it as a dot. */
function isolated(u: uPlot, seriesIdx: number): number[] | null {
  const ys = u.data[seriesIdx];
  const out: number[] = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] != null && ys[i - 1] == null && ys[i + 1] == null) out.push(i);
  }
  return out.length ? out : null;
}

function options(width: number, grid: { current: Grid }, range: { current: StatsRange }): uPlot.Options {
  const bucket = () => range.current.bucketSeconds;
  const bars = uPlot.paths.bars!({ size: [0.8, 48, 1], align: 0 });
  return {
    width,
    height: width < 480 ? NARROW_HEIGHT : HEIGHT,
    padding: [8, 4, 0, 4],
    // Bars are stacked by hand: "Failed" is drawn from the completed count up to the total.
    bands: [{ series: [2, 1] }],
    scales: {
      x: {
        time: true,
        range: () => {
          const x = grid.current.x;
          const half = bucket() / 2;
          return [x[0] - half, x[x.length - 1] + half];
        },
      },
      n: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] },
      ms: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
    },
    series: [
      {
        // The cursor's bucket, from its start.
        value: (_u, v) => {
          if (v == null) return '—';
          const start = new Date((v - bucket() / 2) * 1000);
          return bucket() >= 3600 ? dateTime(start) : `${dateTime(start)}–${timeOnly(new Date(start.getTime() + bucket() * 1000))}`;
        },
      },
      {
        label: 'Completed',
        scale: 'n',
        fill: COLORS.completed,
        stroke: COLORS.completed,
        width: 0,
        paths: bars,
        points: { show: false },
        value: (_u, v) => (v == null ? '—' : String(v)),
      },
      {
        label: 'Failed',
        scale: 'n',
        fill: COLORS.failed,
        stroke: COLORS.failed,
        width: 0,
        paths: bars,
        points: { show: false },
        // The series holds the stack's top (the total): the legend shows the failures alone.
        value: (_u, _v, _s, i) => (i == null ? '—' : String(grid.current.failed[i] ?? 0)),
      },
      {
        label: 'p95',
        scale: 'ms',
        stroke: COLORS.p95,
        width: 2,
        spanGaps: false,
        points: { show: true, size: 5, fill: COLORS.p95, filter: isolated },
        value: (_u, v) => (v == null ? '—' : formatDuration(v)),
      },
    ],
    axes: [
      {
        stroke: COLORS.axis,
        grid: { stroke: COLORS.grid, width: 1 },
        ticks: { stroke: COLORS.grid, width: 1 },
        space: 56,
        values: timeTicks,
      },
      {
        scale: 'n',
        stroke: COLORS.axis,
        grid: { stroke: COLORS.grid, width: 1 },
        ticks: { show: false },
        incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000],
        values: (_u, splits) => splits.map((v) => (v >= 10_000 ? `${+(v / 1000).toFixed(0)}k` : String(v))),
        size: 38,
        space: 28,
      },
      {
        scale: 'ms',
        side: 1,
        stroke: COLORS.p95,
        grid: { show: false },
        ticks: { show: false },
        values: (_u, splits) => splits.map(shortMs),
        size: 52,
        space: 28,
      },
    ],
    legend: { live: true },
    cursor: { y: false, points: { show: false }, drag: { x: false, y: false } },
  };
}

function toData(g: Grid, bucketSeconds: number): uPlot.AlignedData {
  const centers = g.x.map((x) => x + bucketSeconds / 2);
  return [centers, g.completed, g.total, g.p95.map((v) => v ?? null)] as uPlot.AlignedData;
}

export function StatsChart({
  series,
  range,
  per,
  testId,
}: {
  series: StatsPoint[];
  range: StatsRange;
  /** "per minute": the bucket size, in words. */
  per: string;
  testId?: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const grid = useMemo(() => toGrid(series, range), [series, range]);
  const gridRef = useRef(grid);
  gridRef.current = grid;
  const rangeRef = useRef(range);
  rangeRef.current = range;
  const totals = useMemo(
    () => ({
      completed: grid.completed.reduce((a, b) => a + b, 0),
      failed: grid.failed.reduce((a, b) => a + b, 0),
    }),
    [grid],
  );

  // One chart per mounted component, sized to its container.
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const make = (width: number) => {
      chart.current?.destroy();
      chart.current = new uPlot(options(width, gridRef, rangeRef), toData(gridRef.current, rangeRef.current.bucketSeconds), el);
    };
    let lastWidth = 0;
    const ro = new ResizeObserver(() => {
      const width = Math.floor(el.clientWidth);
      if (width <= 0 || width === lastWidth) return;
      const narrowChanged = (lastWidth < 480) !== (width < 480);
      lastWidth = width;
      if (!chart.current || narrowChanged) make(width);
      else chart.current.setSize({ width, height: chart.current.height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  // New numbers: the same chart, new data (and scales).
  useEffect(() => {
    chart.current?.setData(toData(grid, range.bucketSeconds));
  }, [grid, range.bucketSeconds]);

  return (
    <figure
      className="stats-chart"
      data-testid={testId}
      data-buckets={grid.x.length}
      data-completed={totals.completed}
      data-failed={totals.failed}
    >
      <div ref={host} className="stats-chart-host" aria-hidden="true" />
      <figcaption className="muted small">
        Executions finished {per}: completed and failed stacked (left axis), with the p95 duration (line, right axis).{' '}
        <span className="sr-only">
          In all, {totals.completed} completed and {totals.failed} failed.
        </span>
      </figcaption>
    </figure>
  );
}
