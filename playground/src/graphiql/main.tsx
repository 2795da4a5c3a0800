// GraphiQL (from the graphiql npm package, Monaco workers bundled by Vite) wired
// to /graphql over HTTP and /graphql/ws (graphql-ws) for subscriptions.
import './workers';
import { useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import 'graphiql/style.css';
import '../shared/base.css';
import './graphiql.css';
import { Header } from '../shared/Header';
import { authHeaders, connectionParams, getApiKey, httpUrl, onApiKeyChange, wsUrl } from '../shared/settings';
import { EXAMPLE_TABS } from './examples';

function Page() {
  const [apiKey, setKey] = useState(getApiKey);
  useEffect(() => onApiKeyChange(() => setKey(getApiKey())), []);
  const fetcher = useMemo(
    () =>
      createGraphiQLFetcher({
        url: httpUrl(),
        subscriptionUrl: wsUrl(),
        headers: authHeaders(),
        wsConnectionParams: connectionParams(),
      }),
    // A new key needs a new fetcher (and GraphiQL refetches the schema).
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [apiKey],
  );
  return (
    <div className="graphiql-page">
      <Header page="graphiql" />
      <div className="graphiql-host">
        <GraphiQL fetcher={fetcher} defaultTabs={EXAMPLE_TABS} defaultEditorToolsVisibility="variables" />
      </div>
    </div>
  );
}

createRoot(document.getElementById('graphiql')!).render(<Page />);
