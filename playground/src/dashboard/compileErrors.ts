// Splits an asc diagnostic text into entries with their index.ts location, e.g.
//
//   ERROR TS1109: Expression expected.
//      :
//    3 │ let x = ;
//      │         ^
//      └─ at index.ts:3:11

export interface CompileDiagnostic {
  severity: 'error' | 'warning';
  /** First line, e.g. "TS1109: Expression expected." */
  message: string;
  /** The whole block as asc printed it. */
  text: string;
  /** 1-based position in index.ts, when the diagnostic points into it. */
  line: number | null;
  column: number | null;
  /** Length of the marked span (the ~~~ or ^ under the source line). */
  length: number;
}

const HEADER = /^(ERROR|WARNING)\b:?\s*(.*)$/;
const LOCATION = /\bindex\.ts:(\d+):(\d+)/;
const UNDERLINE = /│\s*([~^]+)\s*$/;

export function parseCompileError(text: string): CompileDiagnostic[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const blocks: string[][] = [];
  for (const line of lines) {
    if (HEADER.test(line.trim()) || blocks.length === 0) blocks.push([line]);
    else blocks[blocks.length - 1].push(line);
  }
  return blocks
    .map((block) => {
      const body = block.join('\n').trim();
      if (!body) return null;
      const header = block[0].trim().match(HEADER);
      const location = body.match(LOCATION);
      const underline = block.map((l) => l.match(UNDERLINE)).find(Boolean);
      const diagnostic: CompileDiagnostic = {
        severity: header?.[1] === 'WARNING' ? 'warning' : 'error',
        message: header ? header[2] : block[0].trim(),
        text: body,
        line: location ? Number(location[1]) : null,
        column: location ? Number(location[2]) : null,
        length: underline ? underline[1].length : 1,
      };
      return diagnostic;
    })
    .filter((d): d is CompileDiagnostic => d !== null);
}
