// Operators: compilation queue backlogs (queueStats), refreshed every 5 s
// while the page is visible and soon after any function change (compiles included).
import { useCallback, useEffect, useState } from 'react';
import { request, subscribe } from '../shared/client';
import { ALL_FUNCTIONS_CHANGED_SUBSCRIPTION, QUEUE_STATS_QUERY, type QueueStats } from './api';
import { ErrorBox } from './bits';

const STUCK_AFTER_SECONDS = 60;

export function QueuePanel({ refreshToken }: { refreshToken: number }) {
  const [stats, setStats] = useState<QueueStats[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [at, setAt] = useState<Date | null>(null);

  const load = useCallback(async () => {
    try {
      const res = await request<{ queueStats: QueueStats[] }>(QUEUE_STATS_QUERY);
      setStats(res.queueStats);
      setError(null);
      setAt(new Date());
    } catch (err) {
      setError(err);
    }
  }, []);

  useEffect(() => {
    void load();
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, 5000);
    return () => clearInterval(t);
  }, [load]);

  // A function changed (a save, a compile moving on): the backlog just changed.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = subscribe(ALL_FUNCTIONS_CHANGED_SUBSCRIPTION, {}, {
      next: () => {
        clearTimeout(timer);
        timer = setTimeout(() => void load(), 500);
      },
    });
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, [load]);

  // Something was created, saved or deleted: the backlog just changed.
  useEffect(() => {
    if (refreshToken > 0) void load();
  }, [refreshToken, load]);

  return (
    <section className="panel queue-panel" aria-labelledby="queues-heading" data-testid="queue-panel">
      <div className="panel-head">
        <h2 id="queues-heading">Queue backlog</h2>
        <button type="button" className="btn btn-small" onClick={() => void load()} title="Refresh now">
          ↻
        </button>
      </div>
      {error != null && <ErrorBox error={error} title="Could not load queue stats" />}
      {stats && (
        <table className="queue-table">
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col" className="num" title="Messages waiting or in flight">
                Backlog
              </th>
              <th scope="col" className="num" title="Age of the oldest message">
                Oldest
              </th>
              <th scope="col" className="num" title="Messages ever sent">
                Total
              </th>
            </tr>
          </thead>
          <tbody>
            {stats.map((q) => {
              const stuck = (q.oldestMessageAgeSeconds ?? 0) >= STUCK_AFTER_SECONDS;
              return (
                <tr key={q.queueName} className={stuck ? 'stuck' : ''} data-testid="queue-row" data-queue={q.queueName}>
                  <td>
                    <code>{q.queueName}</code>
                  </td>
                  <td className="num">{q.length}</td>
                  <td className="num">{q.oldestMessageAgeSeconds == null ? '—' : `${q.oldestMessageAgeSeconds}s`}</td>
                  <td className="num">{q.totalMessages}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {at && <div className="muted small">updated {at.toLocaleTimeString()} · every 5 s</div>}
    </section>
  );
}
