// Operators: compilation queue backlogs (queueStats), refreshed every 5 s
// while the page is visible and soon after any function change (compiles included).
import { useEffect, useState } from 'react';
import { subscribe } from '../shared/client';
import { ALL_FUNCTIONS_CHANGED_SUBSCRIPTION, QUEUE_STATS_QUERY } from './api';
import { ErrorBox } from './bits';
import { useQuery } from './hooks';

const STUCK_AFTER_SECONDS = 60;

export function QueuePanel({ refreshToken }: { refreshToken: number }) {
  const [at, setAt] = useState<Date | null>(null);
  // Something was created, saved or deleted (refreshToken): the backlog just changed.
  const { data, error, refetch } = useQuery(QUEUE_STATS_QUERY, {}, {
    refetchOn: [refreshToken],
    onData: () => setAt(new Date()),
  });
  const stats = data?.queueStats;

  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') void refetch();
    }, 5000);
    return () => clearInterval(t);
  }, [refetch]);

  // A function changed (a save, a compile moving on): the backlog just changed.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = subscribe(ALL_FUNCTIONS_CHANGED_SUBSCRIPTION, {}, {
      next: () => {
        clearTimeout(timer);
        timer = setTimeout(() => void refetch(), 500);
      },
    });
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, [refetch]);

  return (
    <section className="panel queue-panel" aria-labelledby="queues-heading" data-testid="queue-panel">
      <div className="panel-head">
        <h2 id="queues-heading">Queue backlog</h2>
        <button type="button" className="btn btn-small" onClick={() => void refetch()} title="Refresh now">
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
