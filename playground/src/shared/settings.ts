// The API key (for later access control) lives in localStorage and is shared by
// the dashboard and GraphiQL. It is sent as `Authorization: Bearer <key>` over
// HTTP and as `{"authorization": "Bearer <key>"}` in the WebSocket
// connection_init payload.

const KEY = 'projectnil.apiKey';
const listeners = new Set<() => void>();

export function getApiKey(): string {
  try {
    return localStorage.getItem(KEY)?.trim() ?? '';
  } catch {
    return '';
  }
}

export function setApiKey(value: string): void {
  const key = value.trim();
  try {
    if (key) localStorage.setItem(KEY, key);
    else localStorage.removeItem(KEY);
  } catch {
    // storage disabled: the key lasts until the page closes
  }
  listeners.forEach((l) => l());
}

export function onApiKeyChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

// Another tab changed the key.
if (typeof window !== 'undefined') {
  window.addEventListener('storage', (e) => {
    if (e.key === KEY) listeners.forEach((l) => l());
  });
}

export function authHeaders(): Record<string, string> {
  const key = getApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export function connectionParams(): Record<string, string> {
  const key = getApiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Absolute endpoint URLs built from the page's own location. */
export function httpUrl(): string {
  return new URL('/graphql', location.href).href;
}

/** A function's HTTP trigger: `POST` (JSON body) or `GET` (query string) runs it by name. */
export function triggerUrl(name: string): string {
  return `${location.origin}/run/${encodeURIComponent(name)}`;
}

export function wsUrl(): string {
  const url = new URL('/graphql/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}
