// A newer revision was saved elsewhere while the source was being edited here:
// both versions side by side (theirs, yours) and the choice between them.
import { DiffView } from './DiffView';

export function ConflictPanel({
  theirRevision,
  baseRevision,
  theirs,
  yours,
  busy,
  onKeepMine,
  onTakeTheirs,
}: {
  theirRevision: number;
  baseRevision: number;
  theirs: string;
  yours: string;
  busy: boolean;
  onKeepMine: () => void;
  onTakeTheirs: () => void;
}) {
  return (
    <section className="conflict" role="alertdialog" aria-labelledby="conflict-heading" data-testid="conflict">
      <div className="conflict-head">
        <h3 id="conflict-heading">Changed elsewhere while you were editing</h3>
        <p>
          You started from revision {baseRevision}; revision {theirRevision} has been saved since (by another tab or
          client). Keep one of the two sources:
        </p>
      </div>
      <DiffView a={theirs} b={yours} aLabel={`Theirs · revision ${theirRevision}`} bLabel="Yours · unsaved" testId="conflict-diff" />
      <div className="conflict-actions">
        <button type="button" className="btn btn-primary" disabled={busy} onClick={onKeepMine} data-testid="keep-mine">
          {busy ? 'Saving…' : `Keep mine (save over revision ${theirRevision})`}
        </button>
        <button type="button" className="btn" disabled={busy} onClick={onTakeTheirs} data-testid="take-theirs">
          Take theirs (discard mine)
        </button>
      </div>
    </section>
  );
}
