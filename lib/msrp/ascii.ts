/**
 * Case-insensitive comparison of protocol tokens (header names, URI schemes and transports, CPIM header
 * names): ASCII letters fold, nothing else does, and no lower-cased copy is made. These run for every
 * header of every frame, where `a.toLowerCase() === b` allocated a string each time.
 */

/** Lower-cases an ASCII letter code; any other code is returned as it is. */
function fold(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** True when `a` and `b` are equal with ASCII letters compared case-insensitively. */
export function equalsIgnoringAsciiCase(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y && fold(x) !== fold(y)) return false;
  }
  return true;
}

/** True when `s` starts with `prefix`, ASCII letters compared case-insensitively. */
export function startsWithIgnoringAsciiCase(s: string, prefix: string): boolean {
  if (s.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const x = s.charCodeAt(i);
    const y = prefix.charCodeAt(i);
    if (x !== y && fold(x) !== fold(y)) return false;
  }
  return true;
}

/** True when the octets `buf[start..end)` spell `s`, ASCII letters compared case-insensitively. */
export function bytesEqualIgnoringAsciiCase(buf: Buffer, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) {
    const x = buf[start + i]!;
    const y = s.charCodeAt(i);
    if (x !== y && fold(x) !== fold(y)) return false;
  }
  return true;
}
