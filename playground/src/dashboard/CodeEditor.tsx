// A CodeMirror 6 editor: TypeScript (AssemblyScript) or JSON, with compile
// diagnostics shown as lint markers and their lines highlighted.
import { useEffect, useRef } from 'react';
import { basicSetup } from 'codemirror';
import { EditorView, keymap, Decoration, type DecorationSet } from '@codemirror/view';
import { Compartment, EditorState, StateEffect, StateField, Prec, type Extension } from '@codemirror/state';
import { javascript } from '@codemirror/lang-javascript';
import { json } from '@codemirror/lang-json';
import { setDiagnostics, lintGutter, type Diagnostic } from '@codemirror/lint';
import type { CompileDiagnostic } from './compileErrors';

export interface EditorHandle {
  focusAt(line: number, column: number): void;
  focus(): void;
}

interface Props {
  value: string;
  onChange: (value: string) => void;
  language: 'typescript' | 'json';
  ariaLabel: string;
  diagnostics?: CompileDiagnostic[];
  /** Mod-s */
  onSave?: () => void;
  /** Mod-Enter */
  onSubmit?: () => void;
  handleRef?: (handle: EditorHandle | null) => void;
  testId?: string;
  className?: string;
}

const setErrorLines = StateEffect.define<DecorationSet>();
const errorLines = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    deco = deco.map(tr.changes);
    for (const e of tr.effects) if (e.is(setErrorLines)) deco = e.value;
    return deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const theme = EditorView.theme({
  '&': { fontSize: '13px', height: '100%' },
  '.cm-scroller': { fontFamily: 'var(--mono)', lineHeight: '1.55' },
  '.cm-content': { padding: '6px 0' },
  '.cm-gutters': { background: 'var(--surface-2)', borderRight: '1px solid var(--border)', color: 'var(--muted)' },
  '.cm-compile-error-line': { backgroundColor: 'rgba(220, 38, 38, 0.12)', boxShadow: 'inset 3px 0 0 #dc2626' },
  '&.cm-focused': { outline: 'none' },
});

function toLint(state: EditorState, diagnostics: CompileDiagnostic[]): { lint: Diagnostic[]; lines: DecorationSet } {
  const lint: Diagnostic[] = [];
  const marks: ReturnType<Decoration['range']>[] = [];
  const seen = new Set<number>();
  for (const d of diagnostics) {
    if (d.line == null || d.line < 1 || d.line > state.doc.lines) continue;
    const line = state.doc.line(d.line);
    const from = Math.min(line.from + Math.max((d.column ?? 1) - 1, 0), line.to);
    const to = Math.min(from + Math.max(d.length, 1), line.to);
    lint.push({ from, to: Math.max(to, from), severity: d.severity, message: d.message, source: 'asc' });
    if (!seen.has(line.from)) {
      seen.add(line.from);
      marks.push(
        Decoration.line({
          class: 'cm-compile-error-line',
          attributes: { 'data-error-line': String(d.line), title: d.message },
        }).range(line.from),
      );
    }
  }
  marks.sort((a, b) => a.from - b.from);
  return { lint, lines: Decoration.set(marks) };
}

export function CodeEditor(props: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const language = new Compartment();
    const extensions: Extension[] = [
      Prec.highest(
        keymap.of([
          { key: 'Mod-s', preventDefault: true, run: () => (latest.current.onSave?.(), true) },
          { key: 'Mod-Enter', preventDefault: true, run: () => (latest.current.onSubmit?.(), !!latest.current.onSubmit) },
        ]),
      ),
      basicSetup,
      language.of(props.language === 'json' ? json() : javascript({ typescript: true })),
      lintGutter(),
      errorLines,
      theme,
      EditorView.contentAttributes.of({ 'aria-label': props.ariaLabel }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) latest.current.onChange(u.state.doc.toString());
      }),
    ];
    const v = new EditorView({ parent: host.current!, state: EditorState.create({ doc: props.value, extensions }) });
    view.current = v;
    props.handleRef?.({
      focus: () => v.focus(),
      focusAt(line, column) {
        if (line < 1 || line > v.state.doc.lines) return;
        const l = v.state.doc.line(line);
        const pos = Math.min(l.from + Math.max(column - 1, 0), l.to);
        v.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
        v.focus();
      },
    });
    return () => {
      props.handleRef?.(null);
      v.destroy();
      view.current = null;
    };
    // The editor is created once; later prop changes are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // Outside changes to the value (load, reset after save) replace the document.
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== props.value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: props.value } });
    }
  }, [props.value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const { lint, lines } = toLint(v.state, props.diagnostics ?? []);
    v.dispatch(setDiagnostics(v.state, lint));
    v.dispatch({ effects: setErrorLines.of(lines) });
  }, [props.diagnostics]);

  return <div ref={host} className={`code-editor ${props.className ?? ''}`} data-testid={props.testId} />;
}
