// Which revision executions run, and what the latest one is doing when that is
// not the same: "Serving revision 3 · revision 4 compiling",
// "revision 4 failed to compile — still serving revision 3".
import type { FunctionDetail as Fn } from './api';

export function servingText(fn: Fn): string {
  const { revision: latest, deployedRevision: serving, status } = fn;
  const doing = status === 'PENDING' ? 'waiting to compile' : 'compiling';
  if (serving == null) {
    if (status === 'FAILED') return `revision ${latest} failed to compile — nothing is serving yet`;
    if (status === 'READY') return `Serving revision ${latest}`;
    return `revision ${latest} ${doing} — nothing is serving yet`;
  }
  if (serving === latest) return `Serving revision ${serving}`;
  if (status === 'FAILED') return `revision ${latest} failed to compile — still serving revision ${serving}`;
  if (status === 'READY') return `Serving revision ${serving} · revision ${latest} is ready`;
  return `Serving revision ${serving} · revision ${latest} ${doing}`;
}

export function Serving({ fn, deleted }: { fn: Fn; deleted: boolean }) {
  if (deleted) return null;
  const behind = fn.deployedRevision !== fn.revision;
  const tone = !behind ? 'ok' : fn.status === 'FAILED' ? 'failed' : 'busy';
  return (
    <span
      className={`serving serving-${tone}`}
      data-testid="serving"
      data-serving={fn.deployedRevision ?? ''}
      data-latest={fn.revision}
      role="status"
    >
      {servingText(fn)}
    </span>
  );
}
