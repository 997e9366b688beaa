import type { ComponentChildren } from 'preact';

/** http(s) addresses in text, up to whitespace; trailing punctuation is the sentence's, not the link's. */
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING = /[.,;:!?)\]}'»]+$/;

/**
 * A message body as text nodes and links (issue 22: addresses were not clickable). Nothing is parsed
 * as HTML: each piece is a string child, and only http and https addresses become `<a>`, opened in a
 * new tab without giving it this page (`noopener noreferrer`). A `javascript:` or `data:` address
 * stays text.
 */
export function linkify(text: string): ComponentChildren[] {
  const parts: ComponentChildren[] = [];
  let at = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const start = match.index ?? 0;
    let url = match[0];
    const trailing = TRAILING.exec(url)?.[0] ?? '';
    url = url.slice(0, url.length - trailing.length);
    if (!url) continue;
    if (start > at) parts.push(text.slice(at, start));
    parts.push(
      <a href={url} target="_blank" rel="noopener noreferrer">
        {url}
      </a>,
    );
    at = start + url.length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}
