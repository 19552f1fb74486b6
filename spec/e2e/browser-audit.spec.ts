import { expect } from 'chai';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { WebSocket } from 'ws';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import type { Relay } from '../../lib/relay/relay.js';
import { createWebHandler, STATIC_DIR } from '../../lib/web/page.js';
import { haveChromium, launchChromium } from '../helpers/browser.js';
import { Harness, USERS, until } from '../helpers/relay.js';
import { portOf, wsRelayOptions, wsUrl } from '../helpers/ws.js';

/** The page's session class (lib/web/static/app.js), as the specs drive it. */
interface PageSession {
  path: string;
  assemblies: Map<string, unknown>;
  open(): Promise<void>;
  auth(username: string, password: string): Promise<void>;
  close(): void;
}
type PageSessionClass = new (
  url: string,
  callbacks: { onText?(from: string, text: string): void; onClose?(reason: string): void },
) => PageSession;

describe("web client's MSRP receiver (app.js MsrpSession in Node over ws, against the relay)", function () {
  this.timeout(15_000);
  const h = new Harness();
  const g = globalThis as { WebSocket?: unknown };
  let MsrpSession: PageSessionClass;
  let relay: Relay;
  let page: PageSession;
  let texts: string[];
  let bob: MsrpEndpoint;
  let toPage: string;

  before(async () => {
    // Node 20 has no WebSocket global: the ws client, a real socket, stands in for the browser's.
    g.WebSocket = WebSocket;
    const app = (await import(pathToFileURL(join(STATIC_DIR, 'app.js')).href)) as {
      MsrpSession: PageSessionClass;
    };
    MsrpSession = app.MsrpSession;
    relay = await h.relay(wsRelayOptions());
  });
  after(async () => {
    delete g.WebSocket;
    await h.cleanup();
  });
  beforeEach(async () => {
    texts = [];
    page = new MsrpSession(wsUrl(relay), { onText: (_from, text) => texts.push(text) });
    await page.open();
    await page.auth('alice', USERS.alice);
    bob = await h.client(relay, 'bob');
    toPage = bob.toPathFor(page.path.split(' '));
  });
  afterEach(() => page.close());

  /** The WebSocket messages the page sends from now on, as latin1 text. */
  function spy(session: PageSession): string[] {
    const seen: string[] = [];
    const ws = (session as unknown as { ws: { send(b: Uint8Array): void } }).ws;
    const send = ws.send.bind(ws);
    ws.send = (b: Uint8Array) => {
      seen.push(Buffer.from(b).toString('latin1'));
      send(b);
    };
    return seen;
  }

  /** Sends one chunk from bob to the page; resolves with the relay's status (RFC 4976: hop by hop). */
  function chunk(
    messageId: string,
    range: string,
    body: string | Buffer,
    flag: '+' | '$' | '#',
  ): Promise<number> {
    return bob
      .request({
        method: 'SEND',
        toPath: toPage,
        fromPath: bob.uri,
        headers: [
          ['Message-ID', messageId],
          ['Byte-Range', range],
        ],
        contentType: 'text/plain',
        body,
        flag,
      })
      .then((f) => (f.kind === 'response' ? f.statusCode : 0));
  }

  it('answers 413 to a message over its 1 MiB limit, so the sender stops (RFC 4975 §7.3.1)', async () => {
    const sent = spy(page);
    const tooBig = 1024 * 1024 + 1;
    await chunk('big', `1-${tooBig}/${tooBig}`, Buffer.alloc(tooBig, 0x61), '$');
    await until(() => sent.length > 0, 3000, "the page's response");
    expect(sent[0]!.split('\r\n')[0]).to.match(/^MSRP \S+ 413 /);
    expect(texts).to.deep.equal([]);
  });

  it('waits for every octet: a re-sent range does not complete a message (RFC 4975 §7.3.1)', async () => {
    expect(await chunk('ovl', '1-5/10', 'hello', '+')).to.equal(200);
    expect(await chunk('ovl', '1-5/10', 'HELLO', '+')).to.equal(200);
    expect(texts).to.deep.equal([]);
    expect(await chunk('ovl', '6-10/10', 'world', '$')).to.equal(200);
    await until(() => texts.length === 1, 3000, 'the message');
    expect(texts).to.deep.equal(['HELLOworld']);
  });

  it('keeps at most 16 unfinished messages, dropping the oldest', async () => {
    for (let i = 0; i < 40; i++)
      expect(await chunk(`open${i}`, '1-*/*', Buffer.alloc(1000, 0x62), '+')).to.equal(200);
    expect([...page.assemblies.keys()]).to.deep.equal(Array.from({ length: 16 }, (_, i) => `open${i + 24}`));
  });

  it('sends the success REPORT a sender asks with Success-Report yes (RFC 4975 §7.1.2)', async () => {
    const reports: Frame[] = [];
    bob.on('report', (f: Frame) => reports.push(f));
    const { messageId, statuses } = await bob.send({
      toPath: toPage,
      body: 'report me',
      successReport: true,
    });
    expect(statuses).to.deep.equal([200]);
    await until(() => reports.length === 1, 3000, 'the REPORT');
    const r = reports[0]!;
    expect([
      getHeader(r.headers, 'message-id'),
      getHeader(r.headers, 'byte-range'),
      getHeader(r.headers, 'status'),
    ]).to.deep.equal([messageId, '1-9/9', '000 200 OK']);
    expect(texts).to.deep.equal(['report me']);
  });

  it('answers an unknown method 501 along the whole From-Path (RFC 4975 §7.2)', async () => {
    const seen = spy(page);
    const res = await bob.request({ method: 'FOO', toPath: toPage, fromPath: bob.uri });
    expect(res.kind === 'response' && res.statusCode).to.equal(501);
    const toPathLine = seen[0]!.split('\r\n')[1]!;
    expect(toPathLine.split(' ').length).to.equal(4); // "To-Path:" and the three URIs the FOO came from
  });
});

describe('web client in headless Chromium: AUTH refresh, a flood of messages', function () {
  this.timeout(30_000);
  const h = new Harness();
  let browser: Browser | null = null;
  after(async () => {
    await browser?.close();
    await h.cleanup();
  });

  /** A page of the relay's logged in as alice, and the JavaScript errors it throws. */
  async function alicePage(relay: Relay): Promise<{ alice: Page; problems: string[] }> {
    browser ??= await launchChromium();
    const alice = await (await browser.newContext()).newPage();
    alice.setDefaultTimeout(8000);
    const problems: string[] = [];
    alice.on('pageerror', (err) => problems.push(err.message));
    await alice.goto(`http://127.0.0.1:${portOf(relay, 'ws')}/`);
    await alice.fill('#username', 'alice');
    await alice.fill('#password', USERS.alice);
    await alice.click('#connect');
    await alice.waitForSelector('#status[data-state="connected"]');
    return { alice, problems };
  }

  it('re-AUTHs before the Use-Path expires, shows the new a=path and stays connected (RFC 4976 §5.1)', async function () {
    if (!haveChromium(this)) return;
    // A 3 s token stands in for the default 600 s (renewed at 2.4 s: 600 ms for a late timer and the AUTH
    // round trip); the relay cuts a client off once all its tokens expired.
    const relay = await h.relay(
      wsRelayOptions({
        onHttpRequest: createWebHandler(),
        authExpires: 3,
        authMinExpires: 1,
        probationMs: 1000,
      }),
    );
    const { alice, problems } = await alicePage(relay);
    const first = await alice.inputValue('#my-path');
    await alice.waitForSelector('#status:has-text("AUTH renewed")');
    const renewed = await alice.inputValue('#my-path');
    expect(renewed).to.not.equal(first);
    // Past the first token's expiry and the probation period: still connected, and reachable on the new path.
    await new Promise((r) => setTimeout(r, 3200));
    expect(await alice.getAttribute('#status', 'data-state')).to.equal('connected');
    const current = await alice.inputValue('#my-path');
    const bob = await h.client(relay, 'bob');
    expect(
      (await bob.send({ toPath: bob.toPathFor(current.split(' ')), body: 'still here?' })).statuses,
    ).to.deep.equal([200]);
    await alice.waitForSelector('#messages li[data-direction="in"]');
    expect(await alice.textContent('#messages li[data-direction="in"] .text')).to.equal('still here?');
    expect(problems).to.deep.equal([]);
    await alice.context().close();
  });

  it('shows at most 500 messages: a flood drops the oldest from the list', async function () {
    if (!haveChromium(this)) return;
    const relay = await h.relay(wsRelayOptions({ onHttpRequest: createWebHandler() }));
    const { alice, problems } = await alicePage(relay);
    const bob = await h.client(relay, 'bob');
    const toPath = bob.toPathFor((await alice.inputValue('#my-path')).split(' '));
    const sends: Array<Promise<unknown>> = [];
    for (let i = 1; i <= 520; i++) sends.push(bob.send({ toPath, body: `flood ${i}` }));
    await Promise.all(sends);
    await alice.waitForSelector('#messages li:last-child .text:has-text("flood 520")');
    const shown = await alice.$$eval('#messages li', (items) => [
      items.length,
      items[0]!.querySelector('.text')!.textContent,
    ]);
    expect([shown, problems]).to.deep.equal([[500, 'flood 21'], []]);
    await alice.context().close();
  });
});
