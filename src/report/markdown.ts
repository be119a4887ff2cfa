/**
 * The little Markdown snnl writes (results tables: headings, pipe tables, paragraphs, `code`) as HTML, so
 * that a report shows a table.md as tables a reader can read, not as pipes and dashes.
 */
import { escape } from './html.js';

const inline = (text: string) => escape(text).replace(/`([^`]+)`/g, '<code>$1</code>');

const cells = (line: string) =>
  line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());

const isRule = (line: string) => /^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line);

/** Markdown (headings, pipe tables, paragraphs, inline code) as HTML; headings shift down by `shift`. */
export function markdownToHtml(markdown: string, shift = 1): string {
  const lines = markdown.split('\n');
  const out: string[] = [];
  let paragraph: string[] = [];
  const flush = () => {
    if (paragraph.length > 0) out.push(`<p>${inline(paragraph.join(' '))}</p>`);
    paragraph = [];
  };
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k]!;
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      const level = Math.min(6, heading[1]!.length + shift);
      out.push(`<h${level}>${inline(heading[2]!)}</h${level}>`);
    } else if (line.trim().startsWith('|') && isRule(lines[k + 1] ?? '')) {
      flush();
      const head = cells(line);
      const rows: string[][] = [];
      for (k += 2; k < lines.length && lines[k]!.trim().startsWith('|'); k++) rows.push(cells(lines[k]!));
      k--;
      const th = head.map((h) => `<th>${inline(h)}</th>`).join('');
      const body = rows.map((r) => `<tr>${r.map((c) => `<td>${inline(c)}</td>`).join('')}</tr>`).join('\n');
      out.push(`<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`);
    } else if (line.trim() === '') {
      flush();
    } else {
      paragraph.push(line.trim());
    }
  }
  flush();
  return out.join('\n');
}
