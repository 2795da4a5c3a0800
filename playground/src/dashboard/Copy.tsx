// Copying to the clipboard: navigator.clipboard where the page may use it (a
// secure context: https or localhost), else a read-only field with the text
// selected, ready for Ctrl+C.
import { useCallback, useEffect, useRef, useState } from 'react';

/** The last copy of one of several texts (`key`): done, or left to the user. */
export type CopyState<K extends string> = { key: K; how: 'copied' | 'manual' } | null;

export function useCopy<K extends string>() {
  const [state, setState] = useState<CopyState<K>>(null);
  // "Copied" shows for a moment; the manual field stays until closed.
  useEffect(() => {
    if (state?.how !== 'copied') return;
    const t = setTimeout(() => setState(null), 2500);
    return () => clearTimeout(t);
  }, [state]);
  const copy = useCallback(async (key: K, text: string) => {
    try {
      if (!navigator.clipboard?.writeText) throw new Error('the clipboard API is unavailable');
      await navigator.clipboard.writeText(text);
      setState({ key, how: 'copied' });
    } catch {
      setState({ key, how: 'manual' });
    }
  }, []);
  const close = useCallback(() => setState(null), []);
  return { state, copy, close };
}

export function CopyButton<K extends string>({
  copyKey,
  label,
  text,
  state,
  onCopy,
  disabled,
  title,
  testId,
}: {
  copyKey: K;
  label: string;
  text: string | null;
  state: CopyState<K>;
  onCopy: (key: K, text: string) => void;
  disabled?: boolean;
  title?: string;
  testId?: string;
}) {
  const copied = state?.key === copyKey && state.how === 'copied';
  return (
    <button
      type="button"
      className="btn btn-small"
      disabled={disabled || text == null}
      onClick={() => text != null && onCopy(copyKey, text)}
      title={title}
      data-testid={testId}
      data-copied={copied}
    >
      {copied ? '✓ Copied' : label}
    </button>
  );
}

/** The fallback: the text selected in a read-only field (and copied, where the browser still allows it). */
export function ManualCopy({ text, onClose, testId }: { text: string; onClose: () => void; testId?: string }) {
  const field = useRef<HTMLTextAreaElement>(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    const el = field.current;
    if (!el) return;
    el.focus();
    el.select();
    try {
      // Deprecated, but the one way left to copy outside a secure context.
      setCopied(document.execCommand('copy'));
    } catch {
      setCopied(false);
    }
  }, []);
  return (
    <div className="manual-copy" data-testid={testId} data-copied={copied}>
      <div className="manual-copy-head">
        <span className="small" role="status">
          {copied ? 'Copied.' : 'The clipboard is not available here: press Ctrl+C (⌘C) to copy the selected text.'}
        </span>
        <button type="button" className="linklike small" onClick={onClose}>
          Close
        </button>
      </div>
      <textarea
        ref={field}
        readOnly
        value={text}
        rows={4}
        spellCheck={false}
        aria-label="Text to copy"
        onFocus={(e) => e.currentTarget.select()}
      />
    </div>
  );
}
