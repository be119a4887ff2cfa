/** HTML pieces the reports share: escaping, and tables whose cells may be flagged as suspect. */

/** Text made safe inside HTML (elements and attribute values). */
export const escape = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A table cell: text, or text flagged as suspect with the reason (shown on hover and by a mark). */
export type Cell = string | { text: string; suspect: string };

/** A cell as plain text (a terminal table): a suspect value followed by "(?)". */
export const cellText = (c: Cell) => (typeof c === 'string' ? c : `${c.text} (?)`);

const cell = (c: Cell) =>
  typeof c === 'string'
    ? `<td>${escape(c)}</td>`
    : `<td class="suspect" title="${escape(c.suspect)}">${escape(c.text)} &#9888;</td>`;

/** An HTML table from a header and rows of cells. */
export function htmlTable(header: string[], rows: Cell[][]): string {
  const head = header.map((h) => `<th>${escape(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** The style every report page shares: readable at a laptop's width, figures scaled to fit. */
export const PAGE_STYLE = `body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 90%; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
td.suspect { background: #fff0e0; color: #a04000; }
figure { margin: 1.5em 0; } figure svg, figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 90%; } .meta { color: #666; font-size: 90%; } code { font-size: 95%; }`;
