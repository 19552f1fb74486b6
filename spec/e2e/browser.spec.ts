import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { getHeader } from '../../lib/msrp/message.js';
import { computeHA1, computeResponse, computeRspauth } from '../../lib/relay/digest-auth.js';
import type { Relay } from '../../lib/relay/relay.js';
import { createWebHandler, STATIC_DIR } from '../../lib/web/page.js';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { Harness, USERS } from '../helpers/relay.js';
import { portOf, wsRelayOptions, wsUrl } from '../helpers/ws.js';

/** Written only with UPDATE_SCREENSHOT=1, so ordinary runs leave the tree clean. */
const SCREENSHOT = fileURLToPath(new URL('../../../docs/browser-client.png', import.meta.url));

/** What the specs use of lib/web/static/app.js (plain browser JavaScript, loaded as a module). */
interface WebApp {
  md5(text: string): string;
  buildRequest(spec: {
    method: string;
    toPath: string;
    fromPath: string;
    headers?: [string, string][];
    contentType?: string;
    body?: Uint8Array | null;
  }): { tid: string; bytes: Uint8Array };
  parseFrame(
    bytes: Uint8Array,
  ): { kind: string; tid: string; headers: [string, string][]; body: Uint8Array | null } | null;
  buildCpim(m: { from: string; to: string; dateTime: string; imdnId: string; text: string }): string;
  digestAuthorization(p: {
    username: string;
    password: string;
    challenge: Record<string, string>;
    uri: string;
    cnonce: string;
  }): { authorization: string; rspauth: string };
}

function loadApp(): Promise<WebApp> {
  return import(pathToFileURL(join(STATIC_DIR, 'app.js')).href) as Promise<WebApp>;
}

/** One raw HTTP request to the relay's WebSocket listener; the path is sent exactly as given. */
function fetchRaw(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web client page (lib/web/page.ts)', () => {
  const h = new Harness();
  let relay: Relay;
  let port: number;
  before(async () => {
    relay = await h.relay(wsRelayOptions({ onHttpRequest: createWebHandler() }));
    port = portOf(relay, 'ws');
  });
  after(() => h.cleanup());

  for (const [path, file, type] of [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/index.html', 'index.html', 'text/html; charset=utf-8'],
    ['/app.js', 'app.js', 'text/javascript; charset=utf-8'],
    ['/style.css', 'style.css', 'text/css; charset=utf-8'],
  ] as const) {
    it(`serves ${file} at ${path} as ${type} with Cache-Control: no-cache`, async () => {
      const res = await fetchRaw(port, path);
      expect([res.status, res.headers['content-type'], res.headers['cache-control']]).to.deep.equal([
        200,
        type,
        'no-cache',
      ]);
      expect(res.body.equals(readFileSync(join(STATIC_DIR, file)))).to.equal(true);
    });
  }

  it('ignores the query string', async () => {
    expect((await fetchRaw(port, '/app.js?v=2')).status).to.equal(200);
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await fetchRaw(port, '/style.css', 'HEAD');
    expect([res.status, Number(res.headers['content-length']), res.body.length]).to.deep.equal([
      200,
      readFileSync(join(STATIC_DIR, 'style.css')).length,
      0,
    ]);
  });

  for (const path of [
    '/nope',
    '/favicon.ico',
    '/../package.json',
    '/%2e%2e/package.json',
    '/..%2f..%2fpackage.json',
    '/static/app.js',
    '/app.js/',
    '//app.js',
  ]) {
    it(`answers 404 to GET ${path}`, async () => {
      const res = await fetchRaw(port, path);
      expect([res.status, res.headers['content-type']]).to.deep.equal([404, 'text/plain; charset=utf-8']);
    });
  }

  it('answers 405 with Allow to POST /', async () => {
    const res = await fetchRaw(port, '/', 'POST');
    expect([res.status, res.headers.allow]).to.deep.equal([405, 'GET, HEAD']);
  });

  it('serves at most 16 pipelined requests on one connection, then closes it', async () => {
    // TLS/WS audit: 30,000 pipelined GETs from a client that never read held ~500 MB and every descriptor.
    const sock = connect(port, '127.0.0.1');
    sock.write('GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200));
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection still open after 10 s')), 10_000);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
      sock.on('error', () => {});
    });
    const text = Buffer.concat(parts).toString('latin1');
    const ok = text.match(/^HTTP\/1\.1 200 /gm)?.length ?? 0;
    expect(ok).to.be.within(1, 16);
  });

  it('reads each file once and serves it from memory after that', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'msrp-web-'));
    try {
      writeFileSync(join(dir, 'style.css'), 'a {}');
      const local = await h.relay(wsRelayOptions({ onHttpRequest: createWebHandler({ dir }) }));
      const localPort = portOf(local, 'ws');
      expect((await fetchRaw(localPort, '/style.css')).body.toString()).to.equal('a {}');
      writeFileSync(join(dir, 'style.css'), 'b {}');
      expect((await fetchRaw(localPort, '/style.css')).body.toString()).to.equal('a {}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('web client script (lib/web/static/app.js, in Node)', () => {
  it('computes the RFC 1321 test-suite MD5 digests', async () => {
    const { md5 } = await loadApp();
    const suite: [string, string][] = [
      ['', 'd41d8cd98f00b204e9800998ecf8427e'],
      ['a', '0cc175b9c0f1b6a831c399e269772661'],
      ['abc', '900150983cd24fb0d6963f7d28e17f72'],
      ['message digest', 'f96b697d7cb7938d525a2f31aaf161d0'],
      ['abcdefghijklmnopqrstuvwxyz', 'c3fcd3d76192e4007dfb496cca67e13b'],
      ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 'd174ab98d277d9f5a5611c2c9f419d9f'],
      ['1234567890'.repeat(8), '57edf4a22be3c955ac49da2e2107b67a'],
    ];
    expect(suite.map(([s]) => md5(s))).to.deep.equal(suite.map(([, d]) => d));
  });

  it('agrees with node:crypto MD5 on UTF-8 strings of 0 to 300 characters', async () => {
    const { md5 } = await loadApp();
    const mismatches: number[] = [];
    for (let n = 0; n <= 300; n++) {
      const s = 'é✓x'.repeat(n).slice(0, n);
      if (md5(s) !== createHash('md5').update(s, 'utf8').digest('hex')) mismatches.push(n);
    }
    expect(mismatches).to.deep.equal([]);
  });

  it("computes the Digest response and rspauth the relay's authenticator computes", async () => {
    const { digestAuthorization } = await loadApp();
    const uri = 'msrp://alice@127.0.0.1:8080;ws';
    const challenge = { realm: 'test.realm', nonce: 'n0nce', qop: 'auth' };
    const d = digestAuthorization({ username: 'alice', password: 'pw ✓', challenge, uri, cnonce: 'c1' });
    const input = {
      ha1: computeHA1('alice', 'test.realm', 'pw ✓'),
      nonce: 'n0nce',
      nc: '00000001',
      cnonce: 'c1',
      qop: 'auth',
      uri,
    };
    expect(d.authorization).to.equal(
      `Digest username="alice", realm="test.realm", nonce="n0nce", uri="${uri}", ` +
        `response="${computeResponse(input)}", qop=auth, cnonce="c1", nc=00000001`,
    );
    expect(d.rspauth).to.equal(computeRspauth(input));
  });

  it("builds a CPIM SEND that the relay's parser reads as one frame with the exact body", async () => {
    const { buildRequest, buildCpim } = await loadApp();
    const cpim = buildCpim({
      from: 'im:alice@test.realm',
      to: 'im:bob@test.realm',
      dateTime: '2024-05-06T10:15:30Z',
      imdnId: 'Qw8rT2zLk4',
      text: 'hello ✓\r\n-------x$\r\n',
    });
    const body = new TextEncoder().encode(cpim);
    const { tid, bytes } = buildRequest({
      method: 'SEND',
      toPath: 'msrp://127.0.0.1:1/a;tcp',
      fromPath: 'msrp://x.invalid:2855/b;ws',
      headers: [['Byte-Range', `1-${body.length}/${body.length}`]],
      contentType: 'message/cpim',
      body,
    });
    const { frames, errors } = parseFrames(Buffer.from(bytes));
    expect(errors).to.deep.equal([]);
    expect(frames.length).to.equal(1);
    const f = frames[0]!;
    expect([
      f.transactionId,
      f.kind === 'request' && f.method,
      getHeader(f.headers, 'content-type'),
    ]).to.deep.equal([tid, 'SEND', 'message/cpim']);
    expect(Buffer.from(f.body ?? []).equals(Buffer.from(body))).to.equal(true);
    expect(cpim.split('\r\n').slice(0, 7)).to.deep.equal([
      'From: <im:alice@test.realm>',
      'To: <im:bob@test.realm>',
      'DateTime: 2024-05-06T10:15:30Z',
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: Qw8rT2zLk4',
      'imdn.Disposition-Notification: positive-delivery, negative-delivery',
      '',
    ]);
  });

  it('parses a frame back to its headers and body, and refuses a message holding one and a half frames', async () => {
    const { buildRequest, parseFrame } = await loadApp();
    const body = new TextEncoder().encode('hi');
    const { tid, bytes } = buildRequest({
      method: 'SEND',
      toPath: 'msrp://a.example:1/s;tcp',
      fromPath: 'msrp://b.invalid:2855/t;ws',
      contentType: 'text/plain',
      body,
    });
    const f = parseFrame(bytes)!;
    expect([f.kind, f.tid, f.headers, Buffer.from(f.body!).toString()]).to.deep.equal([
      'request',
      tid,
      [
        ['To-Path', 'msrp://a.example:1/s;tcp'],
        ['From-Path', 'msrp://b.invalid:2855/t;ws'],
        ['Content-Type', 'text/plain'],
      ],
      'hi',
    ]);
    const extra = new Uint8Array([...bytes, ...bytes.subarray(0, 20)]);
    expect(parseFrame(extra)).to.equal(null);
  });
});

describe('web client in headless Chromium (issue 4)', function () {
  this.timeout(30_000);
  const h = new Harness();
  let browser: Browser | null = null;
  after(async () => {
    await browser?.close();
    await h.cleanup();
  });

  /** Opens the page in a fresh browser context; page errors and console errors/warnings are collected. */
  async function openPage(base: string, problems: string[]): Promise<Page> {
    const context = await browser!.newContext({ viewport: { width: 800, height: 720 } });
    const page = await context.newPage();
    page.setDefaultTimeout(8000);
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning')
        problems.push(`console.${msg.type()}: ${msg.text()}`);
    });
    await page.goto(base);
    return page;
  }

  /** Logs `user` in; resolves with the a=path the page shows. */
  async function login(page: Page, relay: Relay, user: keyof typeof USERS): Promise<string> {
    expect(await page.inputValue('#relay-url')).to.equal(wsUrl(relay));
    await page.fill('#username', user);
    await page.fill('#password', USERS[user]);
    await page.click('#connect');
    await page.waitForSelector('#status[data-state="connected"], #status[data-state="error"]');
    expect(await page.textContent('#status')).to.match(new RegExp(`^Connected as ${user} `));
    return page.inputValue('#my-path');
  }

  /** The tick of the first outgoing message. */
  const OUT_TICK = '#messages li[data-direction="out"] [data-testid="tick"]';

  async function say(page: Page, text: string): Promise<void> {
    await page.fill('#compose-input', text);
    await page.click('#send');
  }

  /** [who, text] of every message of one direction on the page. */
  async function messages(page: Page, direction: 'in' | 'out'): Promise<string[][]> {
    return page.$$eval(`#messages li[data-direction="${direction}"]`, (lis) =>
      lis.map((li) => [
        li.querySelector('.who')?.textContent ?? '',
        li.querySelector('.text')?.textContent ?? '',
      ]),
    );
  }

  it('lets alice and bob log in, chat through the relay and see delivered ticks from injected reports', async function () {
    if (!haveChromium(this)) return;
    const relay = await h.relay(wsRelayOptions({ onHttpRequest: createWebHandler(), reports: 'on-ack' }));
    browser = await launchChromium();
    const base = `http://127.0.0.1:${portOf(relay, 'ws')}/`;
    const problems: string[] = [];
    const alice = await openPage(base, problems);
    const bob = await openPage(base, problems);

    // RFC 4976 §5.2, RFC 7977 §8.1.2: a=path = the relay's ;tcp Use-Path URI, then the page's ;ws URI.
    const pathRe = new RegExp(
      `^msrp://127\\.0\\.0\\.1:${portOf(relay, 'tcp')}/[A-Za-z0-9]+;tcp msrp://[a-z0-9]+\\.invalid:2855/[A-Za-z0-9]+;ws$`,
    );
    const alicePath = await login(alice, relay, 'alice');
    const bobPath = await login(bob, relay, 'bob');
    expect(alicePath).to.match(pathRe);
    expect(bobPath).to.match(pathRe);
    expect([relay.counters.authChallenged, relay.counters.authOk]).to.deep.equal([2, 2]);

    await alice.fill('#peer-user', 'bob');
    await alice.fill('#peer-path', bobPath);
    await bob.fill('#peer-user', 'alice');
    await bob.fill('#peer-path', alicePath);

    await say(alice, 'hello bob');
    await bob.waitForSelector('#messages li[data-direction="in"]');
    expect(await messages(bob, 'in')).to.deep.equal([['alice', 'hello bob']]);
    // The relay's 200 (RFC 4976 §6.5) shows at least "sent".
    await alice.waitForSelector('[data-testid="tick"]:is([data-status="sent"], [data-status="delivered"])');

    // REPORT INJECTION 1/2 (issue 4): ✓✓ comes only from the delivery IMDN the relay injects toward alice
    // (bob's page sends none). Needs report injection wired into the relay (`reports: 'on-ack'`).
    await alice.waitForSelector(`${OUT_TICK}[data-status="delivered"]`);
    expect(await alice.textContent(OUT_TICK)).to.equal('✓✓');

    await say(bob, 'hi alice, got it');
    await alice.waitForSelector('#messages li[data-direction="in"]');
    expect(await messages(alice, 'in')).to.deep.equal([['bob', 'hi alice, got it']]);
    expect(await messages(alice, 'out')).to.deep.equal([['alice', 'hello bob']]);
    if (process.env.UPDATE_SCREENSHOT === '1') await alice.screenshot({ path: SCREENSHOT, fullPage: true });

    // REPORT INJECTION 2/2: bob's answer is reported delivered too: two injected reports in all.
    await bob.waitForSelector(`${OUT_TICK}[data-status="delivered"]`);
    expect(relay.reports.counters.injected.imdn.delivered).to.equal(2);
    expect(problems).to.deep.equal([]);
  });
});
