// Two sources side by side (CodeMirror's MergeView), read-only, with changed
// lines and text marked and long unchanged stretches collapsed.
import { useEffect, useRef } from 'react';
import { MergeView } from '@codemirror/merge';
import { EditorState, type Extension } from '@codemirror/state';
import { EditorView, lineNumbers } from '@codemirror/view';
import { javascript } from '@codemirror/lang-javascript';
import { syntaxHighlighting, defaultHighlightStyle } from '@codemirror/language';

const theme = EditorView.theme({
  '&': { fontSize: '12.5px' },
  '.cm-scroller': { fontFamily: 'var(--mono)', lineHeight: '1.5' },
  '.cm-gutters': { background: 'var(--surface-2)', borderRight: '1px solid var(--border)', color: 'var(--muted)' },
});

const extensions = (label: string): Extension[] => [
  lineNumbers(),
  javascript({ typescript: true }),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  EditorState.readOnly.of(true),
  EditorView.editable.of(false),
  EditorView.lineWrapping,
  EditorView.contentAttributes.of({ 'aria-label': label }),
  theme,
];

interface Props {
  a: string;
  b: string;
  /** Headings over each side, e.g. "revision 3" and "revision 4". */
  aLabel: string;
  bLabel: string;
  testId?: string;
}

export function DiffView({ a, b, aLabel, bLabel, testId }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<MergeView | null>(null);

  useEffect(() => {
    const v = new MergeView({
      a: { doc: a, extensions: extensions(aLabel) },
      b: { doc: b, extensions: extensions(bLabel) },
      parent: host.current!,
      gutter: true,
      highlightChanges: true,
      collapseUnchanged: { margin: 3, minSize: 6 },
    });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // Created once; new texts are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    for (const [editor, text] of [
      [v.a, a],
      [v.b, b],
    ] as const) {
      if (editor.state.doc.toString() !== text) {
        editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text } });
      }
    }
  }, [a, b]);

  const same = a === b;
  return (
    <div className="diff" data-testid={testId} data-same={same}>
      <div className="diff-labels">
        <span data-testid="diff-a-label">{aLabel}</span>
        <span data-testid="diff-b-label">{bLabel}</span>
      </div>
      {same && <div className="muted small diff-same">No differences.</div>}
      <div ref={host} className="diff-host" />
    </div>
  );
}
