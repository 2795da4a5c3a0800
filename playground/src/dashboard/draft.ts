// The function page's state: the function as the server has it, the user's
// draft of it, and the revision the draft's source was loaded from (its base).
//
// Fields nobody edited follow the server. An edited source keeps its base: a
// save sends expectedRevision = base.revision, and a newer revision arriving
// while the source is edited is a conflict (theirs = the server's, yours = the
// draft) until the user keeps one of them.
import { useReducer } from 'react';
import type { FunctionDetail as Fn, FunctionStatus } from './api';

export interface Draft {
  name: string;
  description: string;
  source: string;
}

export interface Base {
  revision: number;
  source: string;
}

export interface DraftState {
  /** undefined while loading, null when the function does not exist. */
  fn: Fn | null | undefined;
  /** It was deleted while open (by anyone): the draft stays so nothing is lost. */
  deleted: boolean;
  draft: Draft | null;
  base: Base | null;
}

type Action =
  | { type: 'server'; fn: Fn; ownSource?: string | null }
  | { type: 'saved'; fn: Fn; source: string }
  | { type: 'missing' }
  | { type: 'deleted' }
  | { type: 'edit'; patch: Partial<Draft> }
  | { type: 'takeTheirs' };

const RANK: Record<FunctionStatus, number> = { PENDING: 0, COMPILING: 1, READY: 2, FAILED: 2 };

export const settled = (s: FunctionStatus) => s === 'READY' || s === 'FAILED';

/**
 * Whether `next` is not older than `prev`. A mutation's answer and the
 * subscription's events race: an answer saying PENDING must not undo the
 * READY that an event already brought for the same revision.
 */
export function notOlder(prev: Fn, next: Fn): boolean {
  if (next.revision !== prev.revision) return next.revision > prev.revision;
  return RANK[next.status] >= RANK[prev.status];
}

const fromFn = (fn: Fn): Draft => ({ name: fn.name, description: fn.description ?? '', source: fn.source });

function server(s: DraftState, next: Fn, ownSource: string | null | undefined): DraftState {
  const prev = s.fn;
  if (prev && !notOlder(prev, next)) return s;
  if (!s.draft || !s.base || !prev) {
    return { fn: next, deleted: false, draft: fromFn(next), base: { revision: next.revision, source: next.source } };
  }
  const d = s.draft;
  const draft: Draft = {
    name: d.name === prev.name ? next.name : d.name,
    description: d.description === (prev.description ?? '') ? (next.description ?? '') : d.description,
    source: d.source,
  };
  let base = s.base;
  if (next.revision !== base.revision) {
    const unedited = d.source === base.source;
    // Ours (a save in flight), or the same text anyway: nothing to choose.
    const same = next.source === d.source || next.source === ownSource || next.source === base.source;
    if (unedited) draft.source = next.source;
    if (unedited || same) base = { revision: next.revision, source: next.source };
  }
  return { ...s, fn: next, draft, base };
}

function reduce(s: DraftState, a: Action): DraftState {
  switch (a.type) {
    case 'server':
      return server(s, a.fn, a.ownSource);
    case 'saved': {
      // Our save became a.fn.revision, whatever the events said meanwhile.
      const after = server(s, a.fn, a.source);
      const base = after.base && after.base.revision > a.fn.revision ? after.base : { revision: a.fn.revision, source: a.source };
      return { ...after, base };
    }
    case 'missing':
      return { ...s, fn: s.fn ? s.fn : null, deleted: !!s.fn };
    case 'deleted':
      return { ...s, deleted: true };
    case 'edit':
      return s.draft ? { ...s, draft: { ...s.draft, ...a.patch } } : s;
    case 'takeTheirs':
      if (!s.fn || !s.draft) return s;
      return { ...s, draft: { ...s.draft, source: s.fn.source }, base: { revision: s.fn.revision, source: s.fn.source } };
  }
}

export function useFunctionDraft() {
  const [state, dispatch] = useReducer(reduce, { fn: undefined, deleted: false, draft: null, base: null });
  const { fn, draft, base } = state;
  const sourceDirty = !!(draft && base && draft.source !== base.source);
  const metaDirty = !!(
    fn &&
    draft &&
    (draft.name !== fn.name || draft.description !== (fn.description ?? ''))
  );
  /** A newer revision was saved elsewhere while the source was edited here. */
  const conflict = !!(fn && base && sourceDirty && fn.revision !== base.revision);
  return { state, dispatch, sourceDirty, dirty: sourceDirty || metaDirty, conflict };
}
