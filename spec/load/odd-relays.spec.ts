/**
 * The load tester against relays that behave legally but unlike ours (load-tester audit): a second 401
 * with `stale=true`, several challenges, 200s that come after the forward, REPORTs for no message of the
 * run, SENDs swallowed without an answer. Each figure is checked against what the fake relay did.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { parseDigestCredentials } from '../../lib/msrp/digest.js';
import { getHeader, type Frame, type Header } from '../../lib/msrp/message.js';
import { randomId, serializeRequest, serializeResponse } from '../../lib/msrp/serializer.js';
import type { LoadOptions } from '../../lib/load/options.js';
import type { LoadReport } from '../../lib/load/report.js';
import { runLoad } from '../../lib/load/runner.js';
import { fakeMsrpServer } from '../helpers/fake-server.js';

const USER = { username: 'alice', password: 'secret' };
const REALM = 'odd.example';

/** An answer: status and headers, or null for none at all. */
type Answer = { status: number; headers?: Header[]; delayMs?: number } | null;

interface Script {
  /** The answer to the `n`-th AUTH of a connection (0-based); default: 200. */
  auth?(n: number, authorization: string | undefined): Answer;
  /**
   * The answer to the `n`-th SEND the relay got (0-based), whether it is forwarded (default 200, yes), and
   * optionally a failure REPORT `000 481` to the sender `reportAfterMs` later, the receiver's connection
   * closed first.
   */
  send?(n: number): { answer: Answer; forward: boolean; reportAfterMs?: number };
  /** REPORTs written back at a connection's first SEND (their Message-IDs name no message). */
  unsolicitedReports?: number;
}

interface Fake {
  port: number;
  /** SENDs received, SENDs forwarded. */
  counts: { sends: number; forwarded: number };
  /** Nonces the relay handed out, in order, and the ones Authorization headers answered. */
  nonces: { issued: string[]; answered: string[] };
  close(): Promise<void>;
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** A challenge with a fresh nonce, recorded in `issued`. */
function challenge(issued: string[], extra = ''): Header {
  const nonce = randomId(16);
  issued.push(nonce);
  return ['WWW-Authenticate', `Digest realm="${REALM}", nonce="${nonce}", qop="auth"${extra}`];
}

/** True when `authorization` is a right answer for USER (RFC 2617 qop=auth). */
function validDigest(authorization: string): boolean {
  const a = parseDigestCredentials(authorization);
  const ha1 = md5(`${USER.username}:${REALM}:${USER.password}`);
  const ha2 = md5(`AUTH:${a.uri}`);
  return a.response === md5(`${ha1}:${a.nonce}:${a.nc ?? ''}:${a.cnonce ?? ''}:auth:${ha2}`);
}

/**
 * A relay of one hop that forwards SENDs by the To-Path URI of the receiver's Use-Path (no chunking, no
 * checks), answering as `script` says.
 */
async function scriptedRelay(script: Script): Promise<Fake> {
  const byId = new Map<string, Socket>();
  const counts = { sends: 0, forwarded: 0 };
  const nonces = { issued: [] as string[], answered: [] as string[] };
  const fake = await fakeMsrpServer((socket, port) => {
    let auths = 0;
    let reported = 0;
    const respond = (f: Frame & { kind: 'request' }, a: Answer): void => {
      if (a === null) return;
      const write = (): void => {
        if (socket.destroyed) return;
        socket.write(
          serializeResponse({
            transactionId: f.transactionId,
            statusCode: a.status,
            toPath: f.headers[1]![1].split(' ')[0]!,
            fromPath: f.headers[0]![1].split(' ')[0]!,
            headers: a.headers ?? [],
          }),
        );
      };
      if ((a.delayMs ?? 0) > 0) setTimeout(write, a.delayMs);
      else write();
    };
    const onFrame = (f: Frame): void => {
      if (f.kind !== 'request') return;
      if (f.method === 'AUTH') {
        const authorization = getHeader(f.headers, 'authorization');
        if (authorization !== undefined) nonces.answered.push(parseDigestCredentials(authorization).nonce);
        const a = script.auth?.(auths++, authorization) ?? { status: 200 };
        if (a?.status === 200) {
          const id = randomId(12);
          byId.set(id, socket);
          a.headers = [
            ['Use-Path', `msrp://127.0.0.1:${port}/${id};tcp`],
            ['Expires', '600'],
          ];
          respond(f, a);
        } else {
          respond(f, a);
        }
        return;
      }
      if (f.method !== 'SEND') return;
      const plan = script.send?.(counts.sends) ?? { answer: { status: 200 }, forward: true };
      counts.sends++;
      respond(f, plan.answer);
      for (; reported < (script.unsolicitedReports ?? 0); reported++) {
        socket.write(
          serializeRequest({
            method: 'REPORT',
            toPath: f.headers[1]![1],
            fromPath: f.headers[0]![1].split(' ')[0]!,
            headers: [
              ['Message-ID', `nobody-${reported}`],
              ['Byte-Range', '1-10/10'],
              ['Status', '000 481 Gone'],
            ],
          }),
        );
      }
      // To-Path: our URI for the sender, ours for the receiver, the receiver.
      const uris = f.headers[0]![1].split(' ');
      const next = byId.get(/\/([^/;]+);tcp$/.exec(uris[1] ?? '')?.[1] ?? '');
      if (plan.reportAfterMs !== undefined) {
        next?.destroy(); // the receiver is gone
        setTimeout(() => {
          if (socket.destroyed) return;
          socket.write(
            serializeRequest({
              method: 'REPORT',
              toPath: f.headers[1]![1],
              fromPath: uris[0]!,
              headers: [
                ['Message-ID', getHeader(f.headers, 'message-id') ?? ''],
                ['Byte-Range', getHeader(f.headers, 'byte-range') ?? '1-1/1'],
                ['Status', '000 481 Gone'],
              ],
            }),
          );
        }, plan.reportAfterMs);
      }
      if (!plan.forward) return;
      if (next === undefined || next.destroyed) return;
      counts.forwarded++;
      next.write(
        serializeRequest({
          method: 'SEND',
          toPath: uris.slice(2).join(' '),
          fromPath: `${uris[1]} ${f.headers[1]![1]}`,
          headers: f.headers.slice(2).filter(([n]) => !/^content-type$/i.test(n)),
          contentType: getHeader(f.headers, 'content-type') ?? 'text/plain',
          body: f.body,
          flag: f.flag,
        }),
      );
    };
    return onFrame;
  });
  return { port: fake.port, counts, nonces, close: fake.close };
}

describe('runLoad against relays unlike ours', function () {
  this.timeout(30_000);
  const fakes: Fake[] = [];
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((f) => f.close()));
  });
  const start = async (script: Script): Promise<Fake> => {
    const f = await scriptedRelay(script);
    fakes.push(f);
    return f;
  };
  const run = (f: Fake, options: LoadOptions): Promise<LoadReport> =>
    runLoad({ target: `127.0.0.1:${f.port}`, progress: false, ...options });

  it('forwards through the scripted relay: every message delivered (the fake itself works)', async () => {
    const f = await start({});
    const r = await run(f, { sessions: 2, messages: 20, drain: 2 });
    expect(r.messages).to.deep.equal({ sent: 20, delivered: 20, failed: 0, lost: 0 });
    expect(f.counts).to.deep.equal({ sends: 20, forwarded: 20 });
  });

  it('counts a message whose SEND is swallowed as lost, once: not also failed, not a disconnect', async () => {
    // Every 4th SEND gets no answer and goes nowhere: 5 of 20 lost (audit: counted lost and failed).
    const f = await start({
      send: (n) =>
        n % 4 === 3 ? { answer: null, forward: false } : { answer: { status: 200 }, forward: true },
    });
    // An open loop, so the run ends (drain over) long before the 20 s transaction timeout.
    const r = await run(f, { sessions: 2, rate: 40, messages: 20, drain: 0.5, timeout: 20 });
    expect(r.messages).to.deep.equal({ sent: 20, delivered: 15, failed: 0, lost: 5 });
    expect(r.timing.totalSeconds).to.be.below(10);
    expect(r.errors.disconnects).to.equal(0);
    expect(r.errors.timeouts).to.equal(0);
    expect(r.result.errorRate).to.equal(0.25);
  });

  it('counts nothing more once the drain is over, --hold included', async () => {
    // Review: a chunk timing out during --hold counted a timeout for a message already counted lost.
    const f = await start({ send: () => ({ answer: null, forward: false }) });
    const r = await run(f, { sessions: 1, rate: 20, messages: 2, drain: 0.2, timeout: 1, hold: 2 });
    expect(r.messages).to.deep.equal({ sent: 2, delivered: 0, failed: 0, lost: 2 });
    expect([r.errors.timeouts, r.errors.total]).to.deep.equal([0, 0]);
  });

  it('waits in the drain for 200s that come after the message was delivered', async () => {
    // The relay forwards at once and answers the sender 400 ms later (audit: the drain ended with the
    // delivery, and the answers still due were counted as disconnects).
    const f = await start({ send: () => ({ answer: { status: 200, delayMs: 400 }, forward: true }) });
    const r = await run(f, { sessions: 2, messages: 10, concurrency: 5, drain: 3 });
    expect(r.messages).to.deep.equal({ sent: 10, delivered: 10, failed: 0, lost: 0 });
    expect(r.chunks).to.deep.equal({ sent: 10, acknowledged: 10 });
    expect(r.latency.firstHop.count).to.equal(10);
    expect(r.errors.disconnects).to.equal(0);
  });

  it('counts throughput over the traffic, not up to the last outcome, when the rest is lost', async () => {
    // The first 5 SENDs fail at once (415), every later one is swallowed: the last outcome comes in the
    // first few ms, the traffic lasts 1.5 s (audit: 8× the sending rate printed).
    const f = await start({
      send: (n) => ({ answer: n < 5 ? { status: 415 } : null, forward: false }),
    });
    const r = await run(f, { sessions: 2, rate: 100, duration: 1.5, drain: 0.2, timeout: 20 });
    expect(r.messages.sent).to.be.within(130, 151);
    expect(r.messages.lost).to.equal(r.messages.sent - 5);
    expect(r.timing.activeSeconds).to.be.within(1.3, 1.6);
    expect(r.throughput.sentMessagesPerSecond).to.be.within(85, 115);
  });

  it('fails a run that sent nothing because no session came up before the end of the traffic', async () => {
    const f = await start({ auth: () => ({ status: 200, delayMs: 1200 }) });
    const r = await run(f, { sessions: 2, rate: 50, rampUp: 0.5, duration: 0.8, drain: 0.2 });
    expect(r.messages.sent).to.equal(0);
    expect(r.openLoop!.skippedWithoutSession).to.be.above(0);
    expect(r.result.passed).to.equal(false);
    expect(r.result.exitCode).to.equal(1);
  });

  it('answers a second 401 that says stale=true with the new nonce', async () => {
    const f = await start({
      auth: (n, authorization) => {
        if (authorization === undefined) return { status: 401, headers: [challenge(f.nonces.issued)] };
        // The first answer is refused as stale (digest §2.2: its nonce expired meanwhile).
        if (n === 1) return { status: 401, headers: [challenge(f.nonces.issued, ', stale=true')] };
        return { status: validDigest(authorization) ? 200 : 403 };
      },
    });
    const r = await run(f, { sessions: 1, messages: 2, users: [USER], drain: 1 });
    expect(r.sessions.setupErrors).to.deep.equal({});
    expect(r.messages.delivered).to.equal(2);
    // Each endpoint: a challenge, a stale challenge; its two answers used them in turn.
    expect(f.nonces.answered).to.have.length(4);
    expect(new Set(f.nonces.answered)).to.deep.equal(new Set(f.nonces.issued));
  });

  it('answers the first challenge it can among several WWW-Authenticate headers', async () => {
    const f = await start({
      auth: (_n, authorization) => {
        if (authorization === undefined) {
          const md5Challenge = challenge(f.nonces.issued);
          return {
            status: 401,
            headers: [
              ['WWW-Authenticate', `Digest realm="${REALM}", nonce="x", qop="auth", algorithm=SHA-256`],
              md5Challenge,
            ],
          };
        }
        return { status: validDigest(authorization) ? 200 : 403 };
      },
    });
    const r = await run(f, { sessions: 1, messages: 2, users: [USER], drain: 1 });
    expect(r.sessions.setupErrors).to.deep.equal({});
    expect(r.sessions.established).to.equal(1);
    expect(f.nonces.answered).to.deep.equal(f.nonces.issued);
  });

  it("keeps draining while the sender's connection is open after the receiver's closed: late 481s fail", async () => {
    // Chaining audit: the drain ended with the receiver's connection, so the relay's failure REPORTs
    // for what was in flight, coming a moment later, left those messages counted lost.
    const f = await start({
      send: (n) =>
        n < 2
          ? { answer: { status: 200 }, forward: true }
          : { answer: { status: 200 }, forward: false, reportAfterMs: 300 },
    });
    const r = await run(f, { sessions: 1, rate: 20, messages: 5, drain: 3 });
    // The session stops sending once it sees its receiver gone: 3 sent, the third answered by a late
    // 481; on a busy machine the close may come after one more send (50 ms later), failed the same way.
    const { sent } = r.messages;
    expect(sent).to.be.oneOf([3, 4]);
    expect(r.messages).to.deep.equal({ sent, delivered: 2, failed: sent - 2, lost: 0 });
    expect(r.errors.failureReports).to.deep.equal({ '481': sent - 2 });
  });

  it('counts REPORTs naming no message of the run as unmatched, not as errors', async () => {
    const f = await start({ unsolicitedReports: 3 });
    const r = await run(f, { sessions: 1, messages: 4, drain: 1 });
    expect(r.messages.delivered).to.equal(4);
    expect(r.reports.unmatched).to.equal(3);
    expect(r.errors.total).to.equal(0);
    expect(r.errors.failureReports).to.deep.equal({});
    expect(r.result.passed).to.equal(true);
  });
});
