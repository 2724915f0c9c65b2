/**
 * Text from outside (the datastore, a request) made safe for a log line or a terminal: control
 * characters — C0, DEL, C1 (0x9b opens a terminal escape like ESC [ does) — and the Unicode
 * line and paragraph separators become \uXXXX; other text stays readable. Cut at `max`.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

export function printable(s: string, max = 120): string {
  const t = s.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}
