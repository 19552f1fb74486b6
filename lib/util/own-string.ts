/**
 * A copy of `text` with memory of its own. A substring V8 made as a slice keeps the whole string it was
 * cut from alive: a value kept long (a token's client URI, a tracked nonce) cut from a header a peer may
 * pad to 16 KiB would keep the header (memory audits). `text` is latin1, as the parser decodes headers.
 */
export function ownString(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}
