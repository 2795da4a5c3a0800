// Where the dashboard is: the route lives in the hash (#/functions/<id>, and
// #/functions/<id>/revisions/<n> for one revision, #/metrics for the overview), the list's search and status
// filter in the query string (?q=…&status=…), so a reload keeps all of them.
// A view with unsaved edits registers a leave guard: in-app navigation away
// from it waits for the user's confirmation.
import { useCallback, useEffect, useState } from 'react';

export type Route =
  | { page: 'home' }
  | { page: 'new' }
  | { page: 'metrics' }
  | { page: 'function'; id: string; revision: number | null };

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  if (h === 'new') return { page: 'new' };
  if (h === 'metrics') return { page: 'metrics' };
  const m = h.match(/^functions\/([0-9a-fA-F-]{36})(?:\/revisions\/(\d+))?$/);
  if (m) return { page: 'function', id: m[1].toLowerCase(), revision: m[2] ? Number(m[2]) : null };
  return { page: 'home' };
}

export const functionHash = (id: string, revision?: number | null) =>
  revision == null ? `#/functions/${id}` : `#/functions/${id}/revisions/${revision}`;

// ---- leave guards -----------------------------------------------------------

/** Returns a question to ask before going to `to`, or null to let it go. */
export type LeaveGuard = (to: Route) => string | null;

const guards = new Set<LeaveGuard>();

function blockedBy(to: Route): string | null {
  for (const g of guards) {
    const message = g(to);
    if (message) return message;
  }
  return null;
}

/** While `guard` is given, leaving asks first (and closing the tab warns: beforeunload). */
export function useLeaveGuard(guard: LeaveGuard | null) {
  useEffect(() => {
    if (!guard) return;
    guards.add(guard);
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      // Older browsers want a returnValue; the text itself is not shown.
      e.returnValue = '';
    };
    window.addEventListener('beforeunload', onBeforeUnload);
    return () => {
      guards.delete(guard);
      window.removeEventListener('beforeunload', onBeforeUnload);
    };
  }, [guard]);
}

// ---- navigation -------------------------------------------------------------

interface Pending {
  hash: string;
  message: string;
}

let pending: Pending | null = null;
const pendingListeners = new Set<() => void>();

function setPending(next: Pending | null) {
  pending = next;
  pendingListeners.forEach((l) => l());
}

/** A hash allowed past the guards once (forced, or confirmed by the user). */
let allowed: string | null = null;

function go(hash: string, replace: boolean, force = false) {
  if (location.hash === hash) return;
  if (force) allowed = hash;
  if (replace) {
    history.replaceState(history.state, '', `${location.pathname}${location.search}${hash}`);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = hash;
  }
}

/**
 * Goes to `hash` (e.g. "#/functions/<id>"); asks first when a leave guard
 * objects, unless `force` (the view itself is done, e.g. after a delete).
 */
export function navigate(hash: string, { force = false, replace = false } = {}) {
  const message = force ? null : blockedBy(parseHash(hash));
  if (message) setPending({ hash, message });
  else go(hash, replace, force);
}

// In-app links (<a href="#/…">) go through the guards too.
if (typeof window !== 'undefined') {
  window.addEventListener(
    'click',
    (e) => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const a = (e.target as Element | null)?.closest?.('a[href^="#"]');
      if (!a || a.getAttribute('target')) return;
      const hash = a.getAttribute('href')!;
      const message = blockedBy(parseHash(hash));
      if (!message) return;
      e.preventDefault();
      setPending({ hash, message });
    },
    true,
  );
}

/**
 * The current route, and the navigation waiting for confirmation (if any):
 * `proceed` drops the guards' objection and goes, `stay` cancels.
 */
export function useGuardedRoute() {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  const [waiting, setWaiting] = useState<Pending | null>(pending);

  useEffect(() => {
    let current = location.hash;
    const onChange = () => {
      const next = parseHash(location.hash);
      // Back button or an edited URL: the hash changed already; put it back and ask.
      const pass = allowed !== null && location.hash === allowed;
      allowed = null;
      const message = pass ? null : blockedBy(next);
      if (message) {
        const target = location.hash;
        history.replaceState(history.state, '', `${location.pathname}${location.search}${current}`);
        setPending({ hash: target, message });
        return;
      }
      current = location.hash;
      setRoute(next);
    };
    const onPending = () => setWaiting(pending);
    window.addEventListener('hashchange', onChange);
    pendingListeners.add(onPending);
    return () => {
      window.removeEventListener('hashchange', onChange);
      pendingListeners.delete(onPending);
    };
  }, []);

  const proceed = useCallback(() => {
    const p = pending;
    setPending(null);
    if (p) go(p.hash, false, true);
  }, []);
  const stay = useCallback(() => setPending(null), []);

  return { route, pending: waiting, proceed, stay };
}

// ---- query string -----------------------------------------------------------

export function getQueryParam(name: string): string {
  return new URLSearchParams(location.search).get(name) ?? '';
}

/** Sets (or, for '', removes) query parameters in place: no reload, no history entry. */
export function setQueryParams(values: Record<string, string>) {
  const params = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v) params.set(k, v);
    else params.delete(k);
  }
  const search = params.toString();
  const url = `${location.pathname}${search ? `?${search}` : ''}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(history.state, '', url);
}
