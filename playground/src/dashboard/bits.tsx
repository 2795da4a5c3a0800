// Small shared pieces: status badges, error boxes, the confirmation dialog.
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { ApiError } from '../shared/client';

/**
 * Shows a notice. A tagged one stays until dismissed by its tag (e.g. "compiling…"
 * until the compile settles), an untagged one for a few seconds.
 */
export interface Notify {
  (message: string, kind?: 'ok' | 'error', opts?: { tag?: string }): void;
}

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge badge-${status.toLowerCase()}`} data-status={status} data-testid={testId}>
      {status}
    </span>
  );
}

export function describeError(err: unknown): { message: string; code: string } {
  if (err instanceof ApiError) return { message: err.message, code: err.code };
  if (err instanceof Error) return { message: err.message, code: 'ERROR' };
  return { message: String(err), code: 'ERROR' };
}

export function ErrorBox({
  error,
  onRetry,
  title,
  testId,
}: {
  error: unknown;
  onRetry?: () => void;
  title?: string;
  testId?: string;
}) {
  const { message, code } = describeError(error);
  return (
    <div className="error-box" role="alert" data-testid={testId} data-code={code}>
      <div className="error-box-head">
        <strong>{title ?? 'Something went wrong'}</strong> <code className="error-code">{code}</code>
      </div>
      <pre className="error-message">{message}</pre>
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/** A modal confirmation (native <dialog>: Esc cancels, focus starts on Cancel). */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  /** Shown on the confirm button while `busy`. */
  busyLabel?: string;
  cancelLabel?: string;
  /** The confirm button's look: a destructive action (the default) or a plain one. */
  tone?: 'danger' | 'primary';
  busy?: boolean;
  testId?: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={titleId}
      data-testid={props.testId}
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id={titleId}>{props.title}</h2>
      <div className="dialog-body">{props.children}</div>
      <div className="dialog-actions">
        <button type="button" className="btn" autoFocus onClick={props.onCancel} data-testid="dialog-cancel">
          {props.cancelLabel ?? 'Cancel'}
        </button>
        <button
          type="button"
          className={`btn ${props.tone === 'primary' ? 'btn-primary' : 'btn-danger'}`}
          disabled={props.busy}
          onClick={props.onConfirm}
          data-testid="dialog-confirm"
        >
          {props.busy ? (props.busyLabel ?? 'Working…') : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** Re-renders every `ms` so relative times stay fresh. */
export function useTick(ms: number) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
}
