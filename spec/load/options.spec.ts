import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMsrpError } from '../../lib/errors.js';
import {
  parseDuration,
  parseReportList,
  parseSize,
  parseSizeMix,
  readUsersFile,
  resolveLoadOptions,
  type LoadOptions,
} from '../../lib/load/options.js';
import { splitShares } from '../../lib/load/runner.js';
import { authUri, connectOptions, resolveTarget } from '../../lib/load/target.js';
import { tempDir } from '../helpers/temp.js';

/** The message of the one-line config error `fn` throws. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isMsrpError(err) && err.code).to.equal('MSRP_ERR_CONFIG');
    const message = (err as Error).message;
    expect(message).to.not.include('\n');
    return message;
  }
  throw new Error('no error thrown');
}

describe('load options', () => {
  it('parses sizes with binary units', () => {
    expect(['0', '1024', '64k', '1.5k', '1MiB', '2g'].map((s) => parseSize(s))).to.deep.equal([
      0,
      1024,
      65536,
      1536,
      1048576,
      2 * 1024 ** 3,
    ]);
    expect(configError(() => parseSize('lots', '--chunk-size'))).to.match(
      /^--chunk-size must be a byte count/,
    );
    // Not rounded to a size nobody asked for (0.4 would have become 0 bytes).
    expect(configError(() => parseSize('0.4', '--chunk-size'))).to.match(
      /^--chunk-size must be a whole number of bytes \(got "0\.4"\)/,
    );
  });

  it('parses a weighted size mix', () => {
    expect(parseSizeMix('100:50,1k:40,64k:10')).to.deep.equal([
      { bytes: 100, weight: 50 },
      { bytes: 1024, weight: 40 },
      { bytes: 65536, weight: 10 },
    ]);
    expect(parseSizeMix('512')).to.deep.equal([{ bytes: 512, weight: 1 }]);
    expect(configError(() => parseSizeMix('100:0'))).to.match(/weights must be positive/);
    expect(configError(() => parseSizeMix('100:1:2'))).to.match(/^--size must be BYTES or BYTES:WEIGHT/);
    for (const w of ['0x10', '1e3', '']) {
      expect(configError(() => parseSizeMix(`1k:${w}`))).to.match(/weights must be positive/);
    }
  });

  it('parses durations in s, ms, m and h', () => {
    expect(
      ['30', '1.5', '90s', '500ms', '2m', '1h'].map((s) => parseDuration(s, '--duration')),
    ).to.deep.equal([30, 1.5, 90, 0.5, 120, 3600]);
    expect(configError(() => parseDuration('soon', '--ramp-up'))).to.match(/^--ramp-up must be a duration/);
  });

  it('parses the report list and rejects unknown reports', () => {
    expect(parseReportList('positive-delivery, negative-delivery,positive-delivery')).to.deep.equal([
      'positive-delivery',
      'negative-delivery',
    ]);
    expect(configError(() => parseReportList('display'))).to.match(/^--request-reports takes/);
    expect(configError(() => parseReportList(','))).to.match(/^--request-reports takes .* \(got ","\)/);
  });

  it('reads a users file of user:password lines, passwords may hold colons', () => {
    const file = join(tempDir('load-users-'), 'users');
    writeFileSync(file, '# load users\nalice:a:b:c\n\nbob:pw\r\n');
    expect(readUsersFile(file)).to.deep.equal([
      { username: 'alice', password: 'a:b:c' },
      { username: 'bob', password: 'pw' },
    ]);
    writeFileSync(file, 'alice\n');
    expect(configError(() => readUsersFile(file))).to.equal(`--users: ${file}:1 is not user:password`);
    expect(configError(() => readUsersFile(join(file, 'missing')))).to.match(/^--users: cannot read/);
  });

  it('sends receivers to --receiver-target, the target by default, of the same transport family', () => {
    expect(resolveLoadOptions({}).receiverTarget).to.include({ host: '127.0.0.1', port: 2855 });
    const c = resolveLoadOptions({ target: '127.0.0.1:2855', receiverTarget: 'msrps://127.0.0.1:2856;tcp' });
    expect(c.receiverTarget).to.include({ transport: 'tls', host: '127.0.0.1', port: 2856 });
    expect(
      resolveLoadOptions({ receiverTarget: 'ws://127.0.0.1:8080/', targetWs: 'ws://127.0.0.1:8081/' })
        .receiverTarget,
    ).to.include({ transport: 'ws', port: 8080 });
    expect(() => resolveLoadOptions({ receiverTarget: 'ws://127.0.0.1:8080/' })).to.throw(
      /--receiver-target/,
    );
    expect(() => resolveLoadOptions({ receiverTarget: 'nonsense://x' })).to.throw();
    // --transport applies to both: a bare host:port takes it, a scheme must agree with it.
    const tls = resolveLoadOptions({ transport: 'tls', target: 'h:5000', receiverTarget: 'h:6000' });
    expect([tls.target.transport, tls.receiverTarget.transport]).to.deep.equal(['tls', 'tls']);
    expect(() =>
      resolveLoadOptions({ transport: 'tls', target: 'h:5000', receiverTarget: 'msrp://h:6000;tcp' }),
    ).to.throw(/--receiver-target/);
  });

  it('applies the defaults: 1 session, closed loop of 1, 10 s, 1 KiB, 64 KiB chunks', () => {
    const c = resolveLoadOptions({});
    expect(c.target).to.include({ transport: 'tcp', host: '127.0.0.1', port: 2855 });
    expect([c.sessions, c.concurrency, c.rate, c.messages, c.duration]).to.deep.equal([1, 1, null, null, 10]);
    expect([c.sizes, c.chunkSize, c.cpim, c.receiverStatus]).to.deep.equal([
      [{ bytes: 1024, weight: 1 }],
      65536,
      false,
      200,
    ]);
    expect([c.drain, c.timeout, c.workers, c.maxErrorRate, c.warmUp]).to.deep.equal([10, 30, 1, 0.01, 0]);
    expect(c.idPrefix).to.match(/^[A-Z0-9]{6}$/);
  });

  it('turns on CPIM when reports are requested and has no duration default with --messages', () => {
    const c = resolveLoadOptions({ requestReports: ['positive-delivery'], messages: 5 });
    expect([c.cpim, c.messages, c.duration]).to.deep.equal([true, 5, null]);
  });

  it('refuses --rate with --concurrency, bad numbers, and --password without --user', () => {
    const cases: Array<[LoadOptions, RegExp]> = [
      [
        { rate: 10, concurrency: 2 },
        /^--rate \(open loop\) and --concurrency \(closed loop\) exclude each other/,
      ],
      [{ rate: -1 }, /^--rate must be a positive number/],
      [{ sessions: 0 }, /^--sessions must be an integer from 1 to 100000/],
      [{ sessions: 1e9 }, /^--sessions must be an integer from 1 to 100000 \(got 1000000000\)/],
      [{ concurrency: 1e6 }, /^--concurrency must be an integer from 1 to 10000/],
      [{ workers: 10_000 }, /^--workers must be an integer from 1 to 64/],
      [{ timeout: 1e10 }, /^--timeout must be a number from 0 to 2147483/],
      [{ tlsCa: 'not a certificate' }, /^--tls-ca holds no PEM certificate/],
      [{ sessions: 1.5 }, /^--sessions must be an integer/],
      [{ messages: -1 }, /^--messages must be an integer of at least 0/],
      [{ duration: 0 }, /^--duration must be more than 0/],
      [{ maxErrorRate: 2 }, /^--max-error-rate must be a number from 0 to 1 \(got 2\)/],
      [{ maxErrorRate: -1 }, /^--max-error-rate must be a number from 0 to 1 \(got -1\)/],
      [{ setupConcurrency: 1e20 }, /^--setup-concurrency must be an integer from 1 to 100000/],
      [
        { users: [{ username: 'a', password: 'b' }], password: 'x' },
        /^--password goes with --user; with --users the file holds the passwords/,
      ],
      [{ receiverStatus: 42 }, /^--receiver-status must be a 3-digit status code/],
      [{ password: 'x' }, /^--password needs --user/],
      [{ sizes: [] }, /^--size needs at least one size/],
      [{ warmUp: -1 }, /^--warm-up must be/],
      [{ warmUp: 10 }, /^--warm-up must be shorter than --duration \(got 10 s and 10 s\)/],
    ];
    for (const [options, re] of cases) expect(configError(() => resolveLoadOptions(options))).to.match(re);
  });

  it('uses no more workers than sessions', () => {
    expect(resolveLoadOptions({ sessions: 3, workers: 8 }).workers).to.equal(3);
  });

  it('splits sessions, messages and rate over workers so that they add up', () => {
    const shares = splitShares(resolveLoadOptions({ sessions: 10, workers: 3, messages: 1001 }));
    // Interleaved (sessions 0, 3, 6, 9 / 1, 4, 7 / 2, 5, 8): each share has a session up from the start of
    // a ramp-up.
    expect(shares.map((s) => [s.firstSession, s.stride, s.sessions])).to.deep.equal([
      [0, 3, 4],
      [1, 3, 3],
      [2, 3, 3],
    ]);
    expect(shares.reduce((n, s) => n + s.messages!, 0)).to.equal(1001);
    const open = splitShares(resolveLoadOptions({ sessions: 4, workers: 2, rate: 100 }));
    expect(open.map((s) => s.rate)).to.deep.equal([50, 50]);
  });
});

describe('load addressing (RFC 4976 §5.1)', () => {
  it('derives the transport from the target scheme', () => {
    expect(resolveTarget({ target: 'msrp://relay.example.com:2855;tcp' })).to.include({
      transport: 'tcp',
      host: 'relay.example.com',
      port: 2855,
    });
    expect(resolveTarget({ target: 'msrps://relay.example.com:2856;tcp' }).transport).to.equal('tls');
    expect(resolveTarget({ target: '[::1]:9000' })).to.include({
      host: '::1',
      port: 9000,
      authHost: '[::1]',
    });
    expect(resolveTarget({ target: '10.0.0.1', transport: 'tls' })).to.include({
      transport: 'tls',
      port: 2855,
    });
    expect(resolveTarget({ targetWs: 'wss://relay.example.com/msrp' })).to.include({
      transport: 'wss',
      port: 443,
    });
  });

  it('builds AUTH To-Path URIs with the user and no session-id', () => {
    const tcp = resolveTarget({ target: 'msrp://10.1.2.3:2855;tcp', authHost: 'example.com' });
    expect(authUri(tcp, 'alice')).to.equal('msrp://alice@example.com:2855;tcp');
    expect(authUri(resolveTarget({ target: 'msrps://relay.example.com:2855;tcp' }), 'bob')).to.equal(
      'msrps://bob@relay.example.com:2855;tcp',
    );
    expect(authUri(resolveTarget({ targetWs: 'wss://relay.example.com:8443/' }), 'carol')).to.equal(
      'msrps://carol@relay.example.com:8443;ws',
    );
    expect(authUri(tcp)).to.equal('msrp://example.com:2855;tcp');
  });

  it('gives each endpoint a .invalid session URI on the transport it uses', () => {
    const ws = connectOptions(resolveTarget({ targetWs: 'ws://127.0.0.1:8080/' }), undefined, false, {});
    expect(ws.ws).to.deep.equal({ url: 'ws://127.0.0.1:8080/' });
    expect(ws.uri).to.match(/^msrp:\/\/[a-z0-9]+\.invalid:2855\/[A-Za-z0-9]{16};ws$/);
    const tls = connectOptions(resolveTarget({ target: 'msrps://localhost:2855;tcp' }), 'CA', true, {});
    expect(tls.tls).to.deep.include({ rejectUnauthorized: false, ca: 'CA', servername: 'localhost' });
    expect(tls.uri).to.match(/^msrps:\/\/.*;tcp$/);
  });

  it('refuses conflicting or malformed targets with one line naming the flag', () => {
    const cases: Array<[Parameters<typeof resolveTarget>[0], RegExp]> = [
      [{ target: 'msrp://h:1;tcp', targetWs: 'ws://h/' }, /^--target and --target-ws exclude each other/],
      [{ target: 'msrp://h:1;tcp', transport: 'tls' }, /^--transport tls conflicts with --target/],
      [{ target: 'h:1', transport: 'ws' }, /^--transport ws needs --target-ws/],
      [{ target: 'http://h/' }, /^--target must be/],
      [{ target: 'msrp://h:1;ws' }, /^--target must use ;tcp/],
      [{ targetWs: 'msrp://h' }, /^--target-ws must start with ws:\/\/ or wss:\/\//],
      [{ transport: 'udp' as never }, /^--transport must be tcp, tls, ws or wss/],
      [{ authHost: 'bad host' }, /^--auth-host must be a host name/],
    ];
    for (const [opts, re] of cases) expect(configError(() => resolveTarget(opts))).to.match(re);
  });
});
