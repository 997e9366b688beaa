/**
 * Splits text into plain and matched parts for the words of a search query, so the view renders
 * matches as <mark> elements and everything else as text nodes. Nothing is ever parsed as HTML,
 * so a message containing markup stays inert. The server's `snippet` (HTML) is deliberately not
 * used: the client contract does not promise it, and the client should not trust markup anyway.
 */
export interface Part {
  text: string;
  match: boolean;
}

/** The words worth highlighting: quotes, `or` and excluded (`-word`) terms dropped. */
export function queryTerms(q: string): string[] {
  return q
    .replace(/["()]/g, ' ')
    .split(/\s+/)
    .filter((w) => w && !w.startsWith('-') && w.toLowerCase() !== 'or')
    .map((w) => w.toLowerCase());
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function highlight(text: string, q: string): Part[] {
  // Search is stemmed ("messages" finds "message"), so match a word that starts with the term's
  // stem-ish prefix: all but the last two letters, at least three.
  const stems = queryTerms(q).map((w) => escapeRegExp(w.length > 4 ? w.slice(0, Math.max(3, w.length - 2)) : w));
  if (stems.length === 0) return [{ text, match: false }];
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${stems.join('|')})[\\p{L}\\p{N}]*`, 'giu');
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) parts.push({ text: text.slice(last, m.index), match: false });
    parts.push({ text: m[0], match: true });
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last), match: false });
  return parts;
}
