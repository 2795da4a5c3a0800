import { useCallback, useRef, useState } from 'react';
import { Header } from '../shared/Header';
import { FunctionList } from './FunctionList';
import { FunctionView, NewFunction } from './FunctionDetail';
import { MetricsOverview } from './Metrics';
import { QueuePanel } from './QueuePanel';
import { ConfirmDialog, type Notify } from './bits';
import { useConnection } from './hooks';
import { useGuardedRoute } from './navigation';

interface Notice {
  id: number;
  message: string;
  kind: 'ok' | 'error';
  tag?: string;
}

/** A tagged notice waits for its dismissal, but not forever. */
const TAGGED_MAX_MS = 60_000;

export function App() {
  const { route, pending, proceed, stay } = useGuardedRoute();
  const [refreshToken, setRefreshToken] = useState(0);
  const [notice, setNotice] = useState<Notice | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const conn = useConnection();

  const notify: Notify = useCallback((message, kind = 'ok', opts) => {
    clearTimeout(timer.current);
    setNotice({ id: Date.now(), message, kind, tag: opts?.tag });
    const ms = opts?.tag ? TAGGED_MAX_MS : kind === 'error' ? 8000 : 3500;
    timer.current = setTimeout(() => setNotice(null), ms);
  }, []);
  const dismiss = useCallback((tag: string) => setNotice((n) => (n?.tag === tag ? null : n)), []);
  const changed = useCallback(() => setRefreshToken((n) => n + 1), []);

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header page={route.page === 'metrics' ? 'metrics' : 'dashboard'} />
      {conn.status !== 'connected' && conn.lostAt != null && (
        <div className="banner banner-warn" role="alert" data-testid="connection-lost">
          {conn.generation === 0
            ? 'Cannot open the live connection to the server; retrying. Lists still load but will not update by themselves.'
            : 'Connection to the server lost. Reconnecting automatically; live updates resume (and the page catches up) once it is back.'}
        </div>
      )}
      <div className="layout">
        <aside className="sidebar">
          <FunctionList selectedId={route.page === 'function' ? route.id : null} refreshToken={refreshToken} />
          <QueuePanel refreshToken={refreshToken} />
        </aside>
        <main id="main" className="main" tabIndex={-1}>
          {/* In the flow, above the page: a notice never covers a panel. */}
          <div className="notice-area" aria-live="polite">
            {notice && (
              <div key={notice.id} className={`toast toast-${notice.kind}`} data-testid="toast" data-tag={notice.tag}>
                <span>{notice.message}</span>
                <button type="button" className="toast-close" aria-label="Dismiss" onClick={() => setNotice(null)}>
                  ×
                </button>
              </div>
            )}
          </div>
          {route.page === 'new' && <NewFunction onChanged={changed} notify={notify} />}
          {route.page === 'function' && (
            <FunctionView
              key={route.id}
              id={route.id}
              revision={route.revision}
              onChanged={changed}
              notify={notify}
              dismiss={dismiss}
            />
          )}
          {route.page === 'metrics' && <MetricsOverview />}
          {route.page === 'home' && <Home />}
        </main>
      </div>
      <ConfirmDialog
        open={pending != null}
        title="Leave with unsaved changes?"
        confirmLabel="Discard changes and leave"
        cancelLabel="Stay"
        testId="leave-dialog"
        onConfirm={proceed}
        onCancel={stay}
      >
        {pending?.message}
      </ConfirmDialog>
    </div>
  );
}

function Home() {
  return (
    <div className="home">
      <h1>WebAssembly functions, live</h1>
      <p>
        Write a function in AssemblyScript, watch it compile, run it with JSON in and JSON out. Every status below
        updates live over a GraphQL subscription.
      </p>
      <ol>
        <li>
          <a href="#/new">Create a function</a> — it starts from the contract's example (<code>json-as</code>, adds{' '}
          <code>a</code> and <code>b</code>).
        </li>
        <li>
          Pick a function on the left to edit it, see its compile errors, run it, browse its executions and its versions
          (diff any two, roll back).
        </li>
        <li>
          See how they do in <a href="#/metrics">Metrics</a>: invocations over time, durations, error kinds and the
          top functions, live.
        </li>
        <li>
          Explore the API in <a href="/graphiql">GraphiQL</a>.
        </li>
      </ol>
      <p className="muted small">
        Keys: <kbd>/</kbd> search · <kbd>Ctrl</kbd>+<kbd>S</kbd> save · <kbd>Ctrl</kbd>+<kbd>Enter</kbd> run (in the input
        editor) · <kbd>Esc</kbd> closes dialogs.
      </p>
    </div>
  );
}
