import { useEffect, useState } from 'react';
import { getApiKey, setApiKey, onApiKeyChange } from './settings';
import { useConnection } from '../dashboard/hooks';

export function ConnectionIndicator() {
  const c = useConnection();
  const label =
    c.status === 'connected'
      ? 'Live'
      : c.generation === 0 && c.status === 'connecting'
        ? 'Connecting…'
        : c.generation === 0
          ? 'Cannot connect — retrying…'
          : 'Connection lost — reconnecting…';
  return (
    <span
      className={`conn conn-${c.status}`}
      role="status"
      data-testid="connection"
      data-state={c.status}
      title="Live updates over WebSocket (/graphql/ws)"
    >
      <span className="conn-dot" aria-hidden="true" />
      {label}
    </span>
  );
}

export function ApiKeyField() {
  const [saved, setSaved] = useState(getApiKey);
  const [draft, setDraft] = useState(saved);
  useEffect(
    () =>
      onApiKeyChange(() => {
        setSaved(getApiKey());
        setDraft(getApiKey());
      }),
    [],
  );
  const commit = () => {
    if (draft.trim() !== saved) setApiKey(draft);
  };
  return (
    <form
      className="api-key"
      onSubmit={(e) => {
        e.preventDefault();
        commit();
      }}
    >
      <label htmlFor="api-key">API key</label>
      <input
        id="api-key"
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="not set"
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        title="Sent as Authorization: Bearer <key> (HTTP) and in the WebSocket connection_init payload. Stored in this browser only."
      />
      {saved && <span className="api-key-set" title="An API key is set">●</span>}
    </form>
  );
}

export function Header({ page }: { page: 'dashboard' | 'metrics' | 'graphiql' }) {
  return (
    <header className="topbar">
      <a className="brand" href="/">
        <span className="brand-mark" aria-hidden="true">N</span> ProjectNIL
      </a>
      <nav className="topnav" aria-label="Pages">
        <a href="/" aria-current={page === 'dashboard' ? 'page' : undefined}>
          Dashboard
        </a>
        {/* On the dashboard a hash link: no reload, and the unsaved-edits guard applies. */}
        <a
          href={page === 'graphiql' ? '/#/metrics' : '#/metrics'}
          aria-current={page === 'metrics' ? 'page' : undefined}
          data-testid="nav-metrics"
        >
          Metrics
        </a>
        <a href="/graphiql" aria-current={page === 'graphiql' ? 'page' : undefined}>
          GraphiQL
        </a>
      </nav>
      <div className="topbar-spacer" />
      {page !== 'graphiql' && <ConnectionIndicator />}
      <ApiKeyField />
    </header>
  );
}
