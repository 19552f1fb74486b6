/**
 * msrp-relay web chat: a browser MSRP client (RFC 4975) behind the relay (RFC 4976) over WebSocket
 * (RFC 7977). Plain ES module, no build step, no dependencies. The protocol helpers at the top are pure
 * (exported, and usable from Node for tests); the UI at the bottom only runs in a page.
 *
 * ```
 *  Connect ─► WebSocket "msrp" ─► AUTH ─401─► AUTH + Digest ─200─► Use-Path ─► a=path shown
 *  Send    ─► SEND (message/cpim, IMDN requested) ─200 from relay─► ✓
 *                             relay-injected IMDN: delivered ─► ✓✓   failed ─► ✗
 *  SEND in ─► 200 (when Failure-Report is yes) ─► shown      REPORT in ─► ignored
 * ```
 */

const enc = new TextEncoder();
const dec = new TextDecoder();
const CRLF = enc.encode('\r\n');
const CRLFCRLF = enc.encode('\r\n\r\n');
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const IMDN_XMLNS = 'urn:ietf:params:xml:ns:imdn';
/** Milliseconds to wait for a response to AUTH or SEND. */
const RESPONSE_TIMEOUT_MS = 10_000;
/** Largest incoming message reassembled, bytes (this is a chat page). */
const MAX_MESSAGE_BYTES = 1 << 20;
/** Incoming messages reassembled at once; a new one past it drops the oldest (memory stays bounded). */
const MAX_ASSEMBLIES = 16;
/** Messages shown; past it the oldest leave the list (a flood cannot grow the page without bound). */
const MAX_SHOWN = 500;

// ---- MD5 (RFC 1321) ---------------------------------------------------------------------------------
// Digest AUTH (RFC 4976 §5.1, RFC 2617) needs MD5, which crypto.subtle does not offer.

/** Per-step left-rotation amounts: four per round, repeated four times within the round. */
const MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
/** K[i] = floor(|sin(i + 1)| · 2^32), RFC 1321 §3.4 (as signed 32-bit integers). */
const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

/** The MD5 of a string's UTF-8 octets, as 32 lower-case hex digits. */
export function md5(text) {
  const data = enc.encode(text);
  // Padding: 0x80, zeros, then the length in bits as 64-bit little-endian; a multiple of 64 octets.
  const size = (((data.length + 8) >>> 6) + 1) * 64;
  const buf = new Uint8Array(size);
  buf.set(data);
  buf[data.length] = 0x80;
  const view = new DataView(buf.buffer);
  view.setUint32(size - 8, (data.length * 8) >>> 0, true);
  view.setUint32(size - 4, Math.floor(data.length / 2 ** 29), true);
  const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  for (let off = 0; off < size; off += 64) {
    let [a, b, c, d] = h;
    for (let i = 0; i < 64; i++) {
      const round = i >> 4;
      // The round's function F/G/H/I and the index g of the message word it mixes in.
      let f, g;
      if (round === 0) [f, g] = [(b & c) | (~b & d), i];
      else if (round === 1) [f, g] = [(d & b) | (~d & c), (5 * i + 1) & 15];
      else if (round === 2) [f, g] = [b ^ c ^ d, (3 * i + 5) & 15];
      else [f, g] = [c ^ (b | ~d), (7 * i) & 15];
      const x = (a + f + MD5_K[i] + view.getUint32(off + 4 * g, true)) | 0;
      const s = MD5_SHIFTS[round * 4 + (i & 3)];
      [a, b, c, d] = [d, (b + ((x << s) | (x >>> (32 - s)))) | 0, b, c];
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
  }
  let hex = '';
  for (const word of h)
    for (let i = 0; i < 32; i += 8) hex += ((word >>> i) & 0xff).toString(16).padStart(2, '0');
  return hex;
}

// ---- identifiers ------------------------------------------------------------------------------------

/** A random alphanumeric id (≈5.95 bits a character, from the CSPRNG; 16 give ≈95 bits). */
export function randomId(length = 16) {
  let out = '';
  while (out.length < length) {
    for (const b of crypto.getRandomValues(new Uint8Array(length))) {
      // 248 = 4 · 62: rejecting the top values keeps the draw unbiased.
      if (b < 248 && out.length < length) out += ALNUM[b % 62];
    }
  }
  return out;
}

// ---- MSRP frames (RFC 4975 §7.1; RFC 7977 §5.1: exactly one frame per WebSocket message) ----------

/** Index of `needle` in `bytes` at or after `from`, or -1. */
function indexOf(bytes, needle, from = 0) {
  outer: for (let i = from; i <= bytes.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Builds a request as the bytes of one WebSocket message. `headers` follow From-Path in order; `body`
 * (Uint8Array) needs `contentType`. The transaction id is re-drawn until its end-line cannot occur in
 * the body (RFC 4975 §7.1). Returns `{ tid, bytes }`.
 */
export function buildRequest({ method, toPath, fromPath, headers = [], contentType, body = null }) {
  let tid = randomId();
  if (body !== null) while (indexOf(body, enc.encode(`\r\n-------${tid}`)) !== -1) tid = randomId();
  let head = `MSRP ${tid} ${method}\r\nTo-Path: ${toPath}\r\nFrom-Path: ${fromPath}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  if (body === null) return { tid, bytes: enc.encode(`${head}-------${tid}$\r\n`) };
  head += `Content-Type: ${contentType}\r\n\r\n`;
  return { tid, bytes: concat(enc.encode(head), body, enc.encode(`\r\n-------${tid}$\r\n`)) };
}

/** Builds a response (RFC 4975 §7.2: To-Path is the first From-Path URI of the request). */
export function buildResponse({ tid, status, comment, toPath, fromPath }) {
  const start = `MSRP ${tid} ${status}${comment ? ' ' + comment : ''}`;
  return enc.encode(`${start}\r\nTo-Path: ${toPath}\r\nFrom-Path: ${fromPath}\r\n-------${tid}$\r\n`);
}

/**
 * Parses one WebSocket message as one MSRP frame: `{ kind: 'request', tid, method, headers, body, flag }`
 * or `{ kind: 'response', tid, status, comment, headers, body: null, flag }`; null when the message is
 * not exactly one frame. `headers` is `[name, value][]` in wire order; `body` a Uint8Array or null.
 */
export function parseFrame(bytes) {
  const lineEnd = indexOf(bytes, CRLF);
  if (lineEnd < 0) return null;
  const m = /^MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}) (?:([A-Z]+)|(\d{3})(?: (.*))?)$/.exec(
    dec.decode(bytes.subarray(0, lineEnd)),
  );
  if (m === null) return null;
  const tid = m[1];
  // The message ends with the end-line `-------<tid><flag>CRLF`.
  const endLine = enc.encode(`-------${tid}`);
  const endAt = bytes.length - endLine.length - 3;
  if (endAt < lineEnd + 2 || indexOf(bytes, endLine, endAt) !== endAt) return null;
  const flag = String.fromCharCode(bytes[bytes.length - 3]);
  if (!'$+#'.includes(flag) || bytes[bytes.length - 2] !== 13 || bytes[bytes.length - 1] !== 10) return null;
  // Heads hold no empty line, so the first CRLFCRLF (if any) ends the head and a body follows.
  const blank = indexOf(bytes, CRLFCRLF, lineEnd);
  const hasBody = blank !== -1 && blank + 2 < endAt;
  let body = null;
  if (hasBody) {
    if (bytes[endAt - 2] !== 13 || bytes[endAt - 1] !== 10) return null;
    body = bytes.subarray(blank + 4, Math.max(blank + 4, endAt - 2));
  }
  const headText = dec.decode(bytes.subarray(lineEnd + 2, hasBody ? blank : endAt));
  const headers = [];
  for (const line of headText.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  if (m[2] !== undefined) return { kind: 'request', tid, method: m[2], headers, body, flag };
  return { kind: 'response', tid, status: Number(m[3]), comment: m[4] ?? '', headers, body: null, flag };
}

/** The first header of that name (case-insensitive), or undefined. */
export function header(frame, name) {
  const lower = name.toLowerCase();
  return frame.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
}

/** The lower-case media type of a Content-Type value, parameters dropped. */
function mediaType(value) {
  return (value ?? '').split(';')[0].trim().toLowerCase();
}

/** The URIs of a path header value or a pasted a=path. */
function splitPath(value) {
  return (value ?? '').trim().split(/\s+/).filter(Boolean);
}

// ---- Digest (RFC 4976 §5.1 profile of RFC 2617) ----------------------------------------------------

/** The `name=value` / `name="value"` parameters of a Digest header value, names lower-cased. */
export function parseDigestParams(value) {
  const out = {};
  const re = /([A-Za-z][A-Za-z0-9-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))/g;
  for (const m of value.replace(/^\s*Digest\s+/i, '').matchAll(re))
    out[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  return out;
}

const quote = (s) => `"${String(s).replace(/["\\]/g, '\\$&')}"`;

/**
 * The Authorization value answering `challenge` (parsed WWW-Authenticate), and the rspauth the relay
 * must send back. digest-uri is the rightmost AUTH To-Path URI; qop=auth; method AUTH (RFC 4976 §5.1).
 */
export function digestAuthorization({ username, password, challenge, uri, cnonce, nc = '00000001' }) {
  const ha1 = md5(`${username}:${challenge.realm}:${password}`);
  const kd = (ha2) => md5(`${ha1}:${challenge.nonce}:${nc}:${cnonce}:auth:${ha2}`);
  const fields = [
    `username=${quote(username)}`,
    `realm=${quote(challenge.realm)}`,
    `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(uri)}`,
    `response=${quote(kd(md5(`AUTH:${uri}`)))}`,
    'qop=auth',
    `cnonce=${quote(cnonce)}`,
    `nc=${nc}`,
  ];
  if (challenge.algorithm !== undefined) fields.push(`algorithm=${challenge.algorithm}`);
  if (challenge.opaque !== undefined) fields.push(`opaque=${quote(challenge.opaque)}`);
  // RFC 2617 §3.2.3: rspauth is the response computed with an empty method in A2.
  return { authorization: `Digest ${fields.join(', ')}`, rspauth: kd(md5(`:${uri}`)) };
}

// ---- CPIM (RFC 3862) and IMDN (RFC 5438) -------------------------------------------------------------

/** `im:` address of a user: `alice` → `im:alice@<domain>`, `bob@example.net` kept as given. */
export function imAddress(user, domain) {
  return `im:${user.includes('@') ? user : `${user}@${domain}`}`;
}

/** A CPIM text message requesting positive and negative delivery notifications (digest §5.7 E5.1). */
export function buildCpim({ from, to, dateTime, imdnId, text }) {
  return (
    `From: <${from}>\r\nTo: <${to}>\r\nDateTime: ${dateTime}\r\n` +
    `NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: ${imdnId}\r\n` +
    'imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n' +
    `\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}`
  );
}

/** Splits at the first empty line (CRLF or, leniently, LF). */
function splitAtBlank(s) {
  const m = /\r?\n\r?\n/.exec(s);
  return m === null ? [s, ''] : [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

function headerLines(block) {
  return block
    .split(/\r?\n/)
    .filter((l) => l.includes(':'))
    .map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]);
}

/** A CPIM message: `{ headers, contentType, body }` (message headers, encapsulated type, content). */
export function parseCpim(text) {
  const [head, rest] = splitAtBlank(text);
  const [mime, body] = splitAtBlank(rest);
  const mimeHeaders = headerLines(mime);
  const contentType = mimeHeaders.find(([n]) => n.toLowerCase() === 'content-type')?.[1];
  return { headers: headerLines(head), contentType, body };
}

/** The user part of a CPIM From/To value: `Bob <im:bob@example.net>` → `bob`. */
export function cpimUser(value) {
  const m = /<(?:im:|sip:|tel:)?([^@>]+)/.exec(value ?? '');
  return m === null ? '?' : m[1];
}

/**
 * An IMDN document (needs DOMParser, i.e. a browser): `{ messageId, kind, status }` with kind `delivery`,
 * `display` or `processing` and status the `<status>` child (`delivered`, `failed`, ...); null if it is
 * not one.
 */
export function parseImdn(xml) {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  if (doc.getElementsByTagName('parsererror').length > 0) return null;
  const first = (parent, name) => parent.getElementsByTagNameNS(IMDN_XMLNS, name)[0];
  const messageId = first(doc, 'message-id')?.textContent?.trim();
  const note =
    first(doc, 'delivery-notification') ??
    first(doc, 'display-notification') ??
    first(doc, 'processing-notification');
  const status = note && first(note, 'status')?.firstElementChild?.localName;
  if (!messageId || !note || !status) return null;
  return { messageId, kind: note.localName.replace('-notification', ''), status };
}

/** True when `parts` (`[first octet, bytes]`) hold every octet 1..total. */
function covers(parts, total) {
  let next = 1;
  for (const [at, part] of [...parts].sort((x, y) => x[0] - y[0])) {
    if (at > next) return false;
    next = Math.max(next, at + part.length);
  }
  return next > total;
}

/** Comments of the responses the page sends. */
const STATUS_COMMENTS = { 200: 'OK', 400: 'Bad Request', 413: 'Message Too Large', 501: 'Not Implemented' };

// ---- the session ------------------------------------------------------------------------------------

/**
 * One MSRP session over one WebSocket. Callbacks: `onText(user, text)`, `onDelivery(imdnId, status)`,
 * `onClose(reason)`.
 */
export class MsrpSession {
  constructor(url, callbacks) {
    const u = new URL(url);
    this.url = u.href;
    this.secure = u.protocol === 'wss:';
    this.host = u.hostname;
    this.port = u.port || (this.secure ? '443' : '80');
    // Digest §3.4 (RFC 7977): a WebSocket client's URI has a random .invalid host and the ws transport.
    this.uri = `${this.secure ? 'msrps' : 'msrp'}://${randomId(10).toLowerCase()}.invalid:2855/${randomId()};ws`;
    this.usePath = [];
    this.peerPath = [];
    this.realm = '';
    this.callbacks = callbacks;
    this.pending = new Map(); // tid → { resolve, timer }
    this.assemblies = new Map(); // Message-ID → { parts, got, total, contentType }
    this.ws = null;
  }

  /** This endpoint's a=path: reverse(Use-Path) then its own URI (RFC 4976 §5.2). */
  get path() {
    return [...this.usePath].reverse().concat(this.uri).join(' ');
  }

  /** Opens the WebSocket; RFC 7977 §4.1: a 101 without the `msrp` subprotocol is a failed handshake. */
  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, 'msrp');
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        if (ws.protocol !== 'msrp') {
          ws.close();
          reject(new Error('the server did not agree to the msrp subprotocol'));
          return;
        }
        this.ws = ws;
        resolve();
      };
      ws.onerror = () => reject(new Error(`cannot connect to ${this.url}`));
      ws.onmessage = (ev) => this.onWsMessage(ev.data);
      ws.onclose = (ev) => {
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.resolve({ kind: 'response', status: 0, comment: 'closed', headers: [] });
        }
        this.pending.clear();
        if (this.ws === ws) this.callbacks.onClose?.(ev.reason || `closed (${ev.code})`);
      };
    });
  }

  close() {
    this.ws?.close(1000);
  }

  /** Sends a built request; resolves with its response (status 0 on timeout or close). */
  request({ tid, bytes }) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(tid);
        resolve({ kind: 'response', status: 0, comment: 'no response', headers: [] });
      }, RESPONSE_TIMEOUT_MS);
      this.pending.set(tid, { resolve, timer });
      this.ws.send(bytes);
    });
  }

  /** AUTH with Digest (RFC 4976 §5.1); stores Use-Path. Throws with a one-line reason on refusal. */
  async auth(username, password) {
    const scheme = this.secure ? 'msrps' : 'msrp';
    // Digest §3.5 (RFC 7977 §8.1.2): the relay's URI as a WebSocket client addresses it; the digest-uri.
    const relayUri = `${scheme}://${encodeURIComponent(username)}@${this.host}:${this.port};ws`;
    const auth = (headers) =>
      this.request(buildRequest({ method: 'AUTH', toPath: relayUri, fromPath: this.uri, headers }));
    let res = await auth([]);
    let rspauth = null;
    for (let tries = 0; res.status === 401 && tries < 2; tries++) {
      const challenge = parseDigestParams(header(res, 'WWW-Authenticate') ?? '');
      if (tries > 0 && challenge.stale !== 'true') break; // a second 401 not stale: wrong password
      if (!(challenge.qop ?? '').split(',').some((q) => q.trim() === 'auth'))
        throw new Error('relay challenge does not offer qop=auth');
      if (challenge.algorithm !== undefined && challenge.algorithm.toUpperCase() !== 'MD5')
        throw new Error(`unsupported Digest algorithm ${challenge.algorithm}`);
      const digest = digestAuthorization({
        username,
        password,
        challenge,
        uri: relayUri,
        cnonce: randomId(),
      });
      rspauth = digest.rspauth;
      this.realm = challenge.realm ?? '';
      res = await auth([['Authorization', digest.authorization]]);
    }
    if (res.status === 401) throw new Error('wrong user name or password');
    if (res.status !== 200) throw new Error(`AUTH refused: ${res.status || ''} ${res.comment}`.trim());
    // RFC 4976 §5.1: the 200 proves the relay knows the password too (mutual authentication).
    if (rspauth !== null && parseDigestParams(header(res, 'Authentication-Info') ?? '').rspauth !== rspauth)
      throw new Error('the relay answered with a wrong rspauth');
    this.usePath = splitPath(header(res, 'Use-Path'));
    if (this.usePath.length === 0) throw new Error('AUTH 200 without Use-Path');
    this.expires = Number(header(res, 'Expires') ?? 0);
  }

  /**
   * Sends `text` to the peer as one SEND (one WebSocket message) with a CPIM body requesting delivery
   * notifications. Returns `{ imdnId, response }`, the response a promise of the relay's answer.
   */
  sendText(text, me, peer) {
    const domain = this.realm || this.host;
    const imdnId = randomId();
    const body = enc.encode(
      buildCpim({
        from: imAddress(me, domain),
        to: imAddress(peer, domain),
        dateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        imdnId,
        text,
      }),
    );
    const frame = buildRequest({
      method: 'SEND',
      // RFC 4976 §5.2: own Use-Path first, then the peer's a=path.
      toPath: [...this.usePath, ...this.peerPath].join(' '),
      fromPath: this.uri,
      headers: [
        ['Message-ID', randomId()],
        ['Byte-Range', `1-${body.length}/${body.length}`],
      ],
      contentType: 'message/cpim',
      body,
    });
    return { imdnId, response: this.request(frame) };
  }

  onWsMessage(data) {
    // RFC 7977 §4.2: text and binary messages are both MSRP octets.
    const frame = parseFrame(typeof data === 'string' ? enc.encode(data) : new Uint8Array(data));
    if (frame === null) {
      console.warn('msrp: a WebSocket message that is not one MSRP frame was ignored');
      return;
    }
    if (frame.kind === 'response') {
      const p = this.pending.get(frame.tid);
      if (p === undefined) return;
      this.pending.delete(frame.tid);
      clearTimeout(p.timer);
      p.resolve(frame);
      return;
    }
    if (frame.method === 'REPORT') return; // delivery is shown from IMDNs only
    const known = frame.method === 'SEND';
    const { status, whole, contentType } = known ? this.assemble(frame) : { status: 501, whole: null };
    // RFC 4975 §7.1.1: answer unless Failure-Report is no; with partial only errors are sent.
    const fr = (header(frame, 'Failure-Report') ?? 'yes').toLowerCase();
    const from = splitPath(frame.headers[1]?.[1]);
    if ((fr === 'yes' || (fr === 'partial' && status !== 200)) && from.length > 0) {
      // RFC 4975 §7.2: a SEND is answered to the previous hop, any other request along the whole From-Path.
      const toPath = known ? from[0] : from.join(' ');
      const comment = STATUS_COMMENTS[status];
      this.ws.send(buildResponse({ tid: frame.tid, status, comment, toPath, fromPath: this.uri }));
    }
    if (whole === null) return;
    // RFC 4975 §7.1.2: Success-Report yes asks a REPORT covering every octet, along the whole From-Path.
    const id = header(frame, 'Message-ID');
    if ((header(frame, 'Success-Report') ?? '').toLowerCase() === 'yes' && id !== undefined) {
      const headers = [
        ['Message-ID', id],
        ['Byte-Range', `1-${whole.length}/${whole.length}`],
        ['Status', '000 200 OK'],
      ];
      this.ws.send(
        buildRequest({ method: 'REPORT', toPath: from.join(' '), fromPath: this.uri, headers }).bytes,
      );
    }
    this.onMessage(contentType, dec.decode(whole));
  }

  /**
   * Adds a chunk by its Byte-Range (the relay re-chunks large messages, RFC 7977 §5.1). Returns the
   * status to answer (413 for a message over MAX_MESSAGE_BYTES: RFC 4975 §7.3.1, the sender stops) and
   * the message's octets once every one of them came (`whole`, else null) with its `contentType`.
   */
  assemble(frame) {
    // A bodiless SEND is a keep-alive (RFC 7977 §6).
    if (frame.body === null) return { status: 200, whole: null };
    const id = header(frame, 'Message-ID') ?? '';
    if (frame.flag === '#') {
      this.assemblies.delete(id);
      return { status: 200, whole: null };
    }
    const br = /^(\d+)-(?:\d+|\*)\/(\d+|\*)$/.exec(header(frame, 'Byte-Range') ?? '1-*/*');
    const start = br === null ? 1 : Number(br[1]);
    if (start < 1) return { status: 400, whole: null };
    let a = this.assemblies.get(id);
    if (a === undefined) {
      if (this.assemblies.size >= MAX_ASSEMBLIES) this.assemblies.delete(this.assemblies.keys().next().value);
      this.assemblies.set(id, (a = { parts: [], got: 0, total: null, contentType: undefined }));
    }
    a.parts.push([start, frame.body.slice()]);
    // Octets received, re-sent ones counted again: what the parts hold.
    a.got += frame.body.length;
    a.contentType ??= header(frame, 'Content-Type');
    if (br !== null && br[2] !== '*') a.total = Number(br[2]);
    if (frame.flag === '$') a.total = start - 1 + frame.body.length;
    const end = start - 1 + frame.body.length;
    if (a.got > MAX_MESSAGE_BYTES || Math.max(end, a.total ?? 0) > MAX_MESSAGE_BYTES) {
      this.assemblies.delete(id);
      return { status: 413, whole: null };
    }
    if (a.total === null || a.got < a.total || !covers(a.parts, a.total)) return { status: 200, whole: null };
    this.assemblies.delete(id);
    // Later chunks overwrite earlier ones where they overlap (RFC 4975 §7.3.1).
    const whole = new Uint8Array(a.total);
    for (const [at, part] of a.parts) {
      if (at <= a.total) whole.set(part.subarray(0, a.total - (at - 1)), at - 1);
    }
    return { status: 200, whole, contentType: a.contentType };
  }

  onMessage(contentType, text) {
    const type = mediaType(contentType);
    if (type !== 'message/cpim') {
      if (type.startsWith('text/')) this.callbacks.onText?.('', text);
      return;
    }
    const cpim = parseCpim(text);
    const inner = mediaType(cpim.contentType);
    const from = cpimUser(cpim.headers.find(([n]) => n === 'From')?.[1]);
    if (inner === 'message/imdn+xml') {
      const imdn = parseImdn(cpim.body);
      if (imdn !== null && imdn.kind === 'delivery') this.callbacks.onDelivery?.(imdn.messageId, imdn.status);
    } else if (inner.startsWith('text/') || inner === '') {
      this.callbacks.onText?.(from, cpim.body);
    }
  }
}

// ---- the page ---------------------------------------------------------------------------------------

const TICKS = { sending: '·', sent: '✓', delivered: '✓✓', failed: '✗' };
const TICK_TITLES = {
  sending: 'sending',
  sent: 'accepted by the relay',
  delivered: 'delivered',
  failed: 'not delivered',
};

function startPage() {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    login: $('login'),
    username: $('username'),
    password: $('password'),
    relayUrl: $('relay-url'),
    connect: $('connect'),
    session: $('session'),
    myPath: $('my-path'),
    peerUser: $('peer-user'),
    peerPath: $('peer-path'),
    messages: $('messages'),
    compose: $('compose'),
    input: $('compose-input'),
    send: $('send'),
  };
  const sent = new Map(); // imdn.Message-ID → the message's tick element
  let session = null;
  let me = '';
  let connectedText = '';
  let refreshTimer;

  if (location.protocol === 'http:' || location.protocol === 'https:')
    ui.relayUrl.value = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;

  const setStatus = (state, text) => {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  };

  const setConnected = (on) => {
    for (const el of [ui.username, ui.password, ui.relayUrl]) el.disabled = on;
    ui.connect.textContent = on ? 'Disconnect' : 'Connect';
    ui.session.hidden = !on;
    ui.input.disabled = ui.send.disabled = !on;
  };

  const setTick = (tick, status, detail) => {
    // Never step back: a late 200 from the relay does not undo a delivered or failed report.
    const rank = { sending: 0, sent: 1, delivered: 2, failed: 2 };
    if (rank[status] < rank[tick.dataset.status]) return;
    tick.dataset.status = status;
    tick.textContent = TICKS[status];
    tick.title = detail ? `${TICK_TITLES[status]} (${detail})` : TICK_TITLES[status];
  };

  const addMessage = (direction, who, text) => {
    const li = document.createElement('li');
    li.dataset.testid = 'message';
    li.dataset.direction = direction;
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = who;
    const body = document.createElement('span');
    body.className = 'text';
    body.dataset.testid = 'message-text';
    body.textContent = text;
    li.append(name, body);
    ui.messages.append(li);
    while (ui.messages.childElementCount > MAX_SHOWN) {
      const oldest = ui.messages.firstElementChild;
      if (oldest.dataset.imdnId !== undefined) sent.delete(oldest.dataset.imdnId);
      oldest.remove();
    }
    ui.messages.scrollTop = ui.messages.scrollHeight;
    return li;
  };

  /** The session's callbacks: messages and ticks into the list, a lost connection into the status. */
  const callbacks = () => ({
    onText: (from, text) => {
      if (from && !ui.peerUser.value) ui.peerUser.value = from;
      addMessage('in', from || ui.peerUser.value || 'peer', text);
    },
    onDelivery: (imdnId, status) => {
      const tick = sent.get(imdnId);
      if (tick === undefined) return;
      if (status === 'delivered') setTick(tick, 'delivered');
      else setTick(tick, 'failed', status); // failed, forbidden or error (digest §5.1)
    },
    onClose: (reason) => {
      if (session === null) return; // a failed login: its error stays on screen
      clearTimeout(refreshTimer);
      session = null;
      setConnected(false);
      setStatus('closed', `Disconnected: ${reason}`);
    },
  });

  /**
   * Digest §2.3 (RFC 4976 §5.1): the Use-Path is valid for the Expires granted, and a client whose
   * tokens all expired is cut off; re-AUTH at 80 % of it. The new token changes the a=path.
   */
  const scheduleRefresh = (s, password) => {
    if (!(s.expires > 0)) return;
    refreshTimer = setTimeout(async () => {
      if (session !== s) return;
      try {
        await s.auth(me, password);
      } catch (err) {
        if (session === s) setStatus('error', `AUTH renewal failed: ${err.message ?? err}`);
        return;
      }
      if (session !== s) return;
      ui.myPath.value = s.path;
      connectedText = `Connected as ${me} (AUTH renewed, valid ${s.expires} s): give your peer your new a=path`;
      setStatus('connected', connectedText);
      scheduleRefresh(s, password);
    }, s.expires * 800);
  };

  ui.login.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (session !== null) {
      session.close();
      return;
    }
    if (ui.connect.disabled) return; // a login is under way
    me = ui.username.value.trim();
    let s;
    try {
      s = new MsrpSession(ui.relayUrl.value.trim(), callbacks());
    } catch {
      setStatus('error', 'The relay URL must look like ws://host:port/ or wss://host/');
      return;
    }
    setStatus('connecting', `Connecting to ${s.url} …`);
    ui.connect.disabled = true;
    try {
      await s.open();
      await s.auth(me, ui.password.value);
    } catch (err) {
      s.close();
      setStatus('error', String(err.message ?? err));
      return;
    } finally {
      ui.connect.disabled = false;
    }
    session = s;
    ui.myPath.value = s.path;
    setConnected(true);
    connectedText = `Connected as ${me} (AUTH valid ${s.expires} s)`;
    setStatus('connected', connectedText);
    scheduleRefresh(s, ui.password.value);
  });

  ui.myPath.addEventListener('focus', () => ui.myPath.select());

  ui.compose.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = ui.input.value;
    if (session === null || text === '') return;
    const peerPath = splitPath(ui.peerPath.value);
    if (peerPath.length === 0 || !peerPath.every((u) => /^msrps?:\/\//i.test(u))) {
      setStatus('error', "Paste the peer's a=path (msrp:// or msrps:// URIs) first");
      ui.peerPath.focus();
      return;
    }
    session.peerPath = peerPath;
    if (ui.status.dataset.state === 'error') setStatus('connected', connectedText);
    ui.input.value = '';
    const { imdnId, response } = session.sendText(text, me, ui.peerUser.value.trim() || 'peer');
    const li = addMessage('out', me, text);
    li.dataset.imdnId = imdnId;
    const tick = document.createElement('span');
    tick.className = 'tick';
    tick.dataset.testid = 'tick';
    tick.dataset.status = 'sending';
    li.append(tick);
    setTick(tick, 'sending');
    sent.set(imdnId, tick);
    const res = await response;
    if (res.status === 200) setTick(tick, 'sent');
    else setTick(tick, 'failed', `${res.status || ''} ${res.comment}`.trim());
  });
}

if (typeof document !== 'undefined') startPage();
