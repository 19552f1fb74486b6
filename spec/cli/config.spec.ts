import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Command } from 'commander';
import {
  addRelayOptions,
  describeConfig,
  formatHostPort,
  parseDuration,
  parseHostPort,
  parseSize,
  resolveConfig,
  type RelayConfig,
} from '../../lib/cli/config.js';
import { MsrpError } from '../../lib/errors.js';
import { defaultMaxConnections } from '../../lib/relay/options.js';
import { ecCertificate, testCertificate } from '../helpers/tls.js';
import { tempDir } from '../helpers/temp.js';

function parseFlags(args: string[]): Record<string, unknown> {
  const cmd = addRelayOptions(new Command('x').exitOverride());
  cmd.parse(['node', 'x', ...args]);
  return cmd.opts();
}

function resolve(args: string[] = [], env: NodeJS.ProcessEnv = {}): RelayConfig {
  return resolveConfig(parseFlags(args), env);
}

function configError(args: string[], env: NodeJS.ProcessEnv = {}): MsrpError {
  try {
    resolve(args, env);
  } catch (err) {
    expect(err).to.be.instanceOf(MsrpError);
    return err as MsrpError;
  }
  return expect.fail('expected resolveConfig to throw');
}

let dir = '';
let seq = 0;

function writeTemp(name: string, text: string): string {
  const path = join(dir, `${seq++}-${name}`);
  writeFileSync(path, text);
  return path;
}

describe('relay configuration', () => {
  let cert = '';
  let key = '';
  let users = '';

  before(() => {
    dir = tempDir('msrp-relay-config-');
    ({ certPath: cert, keyPath: key } = testCertificate());
    users = writeTemp('users.txt', 'alice:secret\n');
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('addRelayOptions', () => {
    it('leaves every option undefined when no flag is given', () => {
      expect(parseFlags([])).to.deep.equal({});
    });

    it('collects a repeated --listen into a list of strings', () => {
      expect(parseFlags(['--listen', ':1', '--listen', ':2']).listen).to.deep.equal([':1', ':2']);
    });

    it('states the default and the environment variable in the help of --max-queued-bytes', () => {
      const cmd = addRelayOptions(new Command('x'));
      const option = cmd.options.find((o) => o.long === '--max-queued-bytes');
      expect(option?.description).to.equal(
        'queued bytes per connection before its sources pause (default: 1MiB; env MSRP_RELAY_MAX_QUEUED_BYTES)',
      );
    });

    it('shows --no-auth and hides --auth in the help', () => {
      const cmd = addRelayOptions(new Command('x'));
      const visible = cmd
        .createHelp()
        .visibleOptions(cmd)
        .map((o) => o.long);
      expect([visible.includes('--no-auth'), visible.includes('--auth')]).to.deep.equal([true, false]);
    });

    it('declares --config', () => {
      expect(parseFlags(['--config', 'relay.yaml']).config).to.equal('relay.yaml');
    });
  });

  describe('resolveConfig defaults', () => {
    it('resolves every default when nothing is given', () => {
      expect(resolve()).to.deep.equal({
        listen: [{ host: '127.0.0.1', port: 2855 }],
        tlsListen: [],
        wsListen: [],
        wssListen: [],
        wsAllowedOrigins: [],
        trustedProxies: [],
        proxyProtocolFrom: [],
        nextHopAllow: [],
        nextHopDeny: [],
        nextHopPerSession: [],
        wsMaxMessage: 65536,
        web: true,
        publicHost: '127.0.0.1',
        realm: '127.0.0.1',
        auth: true,
        authExpires: 600,
        authMinExpires: 60,
        authMaxExpires: 3600,
        authLockoutFailures: 10,
        authLockoutTime: 900,
        maxMessageSize: 64 * 1024 * 1024,
        maxQueuedBytes: 1024 * 1024,
        maxTotalQueuedBytes: 256 * 1024 * 1024,
        maxConnections: defaultMaxConnections(),
        maxConnectionsPerIp: 0,
        maxNextHops: 100,
        maxRelayedTokens: 4096,
        transactionTimeout: 30,
        probationTimeout: 30,
        idleTimeout: 3600,
        writeStallTimeout: 60,
        tcpKeepalive: 120,
        deadPeerTimeout: 30,
        reports: 'on-ack',
        reportsDedupe: true,
        reportsDedupeEntries: 10_000,
        reportsProcessing: false,
        logLevel: 'info',
        logFormat: 'json',
      });
    });

    it('returns a fresh default listen list on every call', () => {
      resolve().listen.push({ host: 'x', port: 1 });
      expect(resolve().listen).to.deep.equal([{ host: '127.0.0.1', port: 2855 }]);
    });
  });

  describe('resolveConfig precedence', () => {
    const cases = [
      {
        key: 'listen',
        flag: ['--listen', '127.0.0.4:4'],
        env: { MSRP_RELAY_LISTEN: '127.0.0.3:3' },
        file: { listen: ['127.0.0.2:2'] },
        values: [
          [{ host: '127.0.0.4', port: 4 }],
          [{ host: '127.0.0.3', port: 3 }],
          [{ host: '127.0.0.2', port: 2 }],
        ],
      },
      {
        key: 'maxQueuedBytes',
        flag: ['--max-queued-bytes', '4k'],
        env: { MSRP_RELAY_MAX_QUEUED_BYTES: '3k' },
        file: { maxQueuedBytes: '2k' },
        values: [4096, 3072, 2048],
      },
      {
        key: 'reports',
        flag: ['--reports', 'off'],
        env: { MSRP_RELAY_REPORTS: 'on-receipt' },
        file: { reports: 'off' },
        values: ['off', 'on-receipt', 'off'],
      },
      {
        key: 'auth',
        flag: ['--auth'],
        env: { MSRP_RELAY_AUTH: 'true' },
        file: { auth: false },
        values: [true, true, false],
      },
    ] as const;

    for (const c of cases) {
      it(`takes ${c.key} from the config file over the default`, () => {
        const file = writeTemp('relay.json', JSON.stringify(c.file));
        expect(resolve(['--config', file])[c.key]).to.deep.equal(c.values[2]);
      });

      it(`takes ${c.key} from the environment over the config file`, () => {
        const file = writeTemp('relay.json', JSON.stringify(c.file));
        expect(resolve(['--config', file], c.env)[c.key]).to.deep.equal(c.values[1]);
      });

      it(`takes ${c.key} from the flag over the environment`, () => {
        const file = writeTemp('relay.json', JSON.stringify(c.file));
        expect(resolve(['--config', file, ...c.flag], c.env)[c.key]).to.deep.equal(c.values[0]);
      });
    }

    it('lets --auth override MSRP_RELAY_AUTH=false', () => {
      expect(resolve(['--auth'], { MSRP_RELAY_AUTH: 'false' }).auth).to.equal(true);
    });

    it('lets --no-auth override the default', () => {
      expect(resolve(['--no-auth']).auth).to.equal(false);
    });

    it('turns reportsProcessing on with --reports-processing', () => {
      expect(resolve(['--reports-processing']).reportsProcessing).to.equal(true);
    });

    it('turns web off with --no-web', () => {
      expect(resolve(['--no-web']).web).to.equal(false);
    });

    it('turns reportsDedupe off with MSRP_RELAY_REPORTS_DEDUPE=off', () => {
      expect(resolve([], { MSRP_RELAY_REPORTS_DEDUPE: 'off' }).reportsDedupe).to.equal(false);
    });

    it('reads --reports-dedupe-entries as a whole number of at least 1', () => {
      expect(resolve(['--reports-dedupe-entries', '250000']).reportsDedupeEntries).to.equal(250_000);
      expect(resolve([], { MSRP_RELAY_REPORTS_DEDUPE_ENTRIES: '42' }).reportsDedupeEntries).to.equal(42);
      for (const bad of ['0', '-3', '1.5', 'many', '', '1e3', '0x10', '2000000', '99999999999']) {
        expect(() => resolve(['--reports-dedupe-entries', bad]), bad).to.throw(/reports-dedupe-entries/);
      }
    });

    it('reads --max-connections and --max-connections-per-ip as whole numbers, 0 for no limit', () => {
      expect(resolve(['--max-connections', '50000']).maxConnections).to.equal(50_000);
      expect(resolve(['--max-connections', '0']).maxConnections).to.equal(0);
      expect(resolve([]).maxConnections).to.equal(defaultMaxConnections()); // from the open-file limit
      expect(resolve([], { MSRP_RELAY_MAX_CONNECTIONS_PER_IP: '64' }).maxConnectionsPerIp).to.equal(64);
      for (const bad of ['-1', '1.5', 'lots', '', '1e3', '999999999999']) {
        expect(() => resolve(['--max-connections', bad]), bad).to.throw(/max-connections/);
        expect(() => resolve(['--max-connections-per-ip', bad]), bad).to.throw(/max-connections-per-ip/);
      }
    });

    it('reads --write-stall-timeout 0 in any spelling as off, and refuses a negative one', () => {
      for (const zero of ['0', '0s', '0ms', '00', '0.0'])
        expect(resolve(['--write-stall-timeout', zero]).writeStallTimeout, zero).to.equal(0);
      expect(resolve(['--write-stall-timeout', '2m']).writeStallTimeout).to.equal(120);
      expect(() => resolve(['--write-stall-timeout', '-1'])).to.throw(
        /expected 0 \(off\) or a duration of at most/,
      );
      // Other durations still refuse 0.
      expect(() => resolve(['--idle-timeout', '0'])).to.throw(/expected a duration above 0/);
    });

    it('reads --dead-peer-timeout as a duration, 0 meaning never, from a flag or the environment', () => {
      expect(resolve(['--dead-peer-timeout', '0']).deadPeerTimeout).to.equal(0);
      expect(resolve(['--dead-peer-timeout', '45s']).deadPeerTimeout).to.equal(45);
      expect(resolve([], { MSRP_RELAY_DEAD_PEER_TIMEOUT: '2m' }).deadPeerTimeout).to.equal(120);
      expect(() => resolve(['--dead-peer-timeout', '-5'])).to.throw(/--dead-peer-timeout/);
    });

    it('reads --next-hop-per-session hosts from flags, a comma list in the environment, and a file list', () => {
      expect(
        resolve(['--next-hop-per-session', 'AG.example.com', '--next-hop-per-session', '[::1]'])
          .nextHopPerSession,
      ).to.deep.equal(['AG.example.com', '::1']);
      expect(
        resolve([], { MSRP_RELAY_NEXT_HOP_PER_SESSION: 'a.example.com, 10.0.0.1' }).nextHopPerSession,
      ).to.deep.equal(['a.example.com', '10.0.0.1']);
      expect(() => resolve(['--next-hop-per-session', 'bad host'])).to.throw(
        /invalid host .*next-hop-per-session/,
      );
    });

    it('reads --tcp-keepalive in whole seconds up to the kernel limit, 0 meaning off', () => {
      expect(resolve(['--tcp-keepalive', '0']).tcpKeepalive).to.equal(0);
      expect(resolve(['--tcp-keepalive', '2m']).tcpKeepalive).to.equal(120);
      expect(resolve(['--tcp-keepalive', '32767']).tcpKeepalive).to.equal(32767);
      expect(() => resolve(['--tcp-keepalive', '32768'])).to.throw(/--tcp-keepalive .*at most 32767s/);
      expect(() => resolve(['--tcp-keepalive', '1500ms'])).to.throw(/whole number of seconds/);
      // The message names the flag's own limit, not the timer limit of other durations.
      expect(() => resolve(['--tcp-keepalive', '-1'])).to.throw(
        /--tcp-keepalive .*0 \(off\) .*at most 32767s/,
      );
    });

    it('treats an empty environment variable as unset', () => {
      expect(resolve([], { MSRP_RELAY_MAX_QUEUED_BYTES: '' }).maxQueuedBytes).to.equal(1048576);
    });

    it('replaces the environment list whole with the flag list', () => {
      const cfg = resolve(['--listen', '127.0.0.1:5'], { MSRP_RELAY_LISTEN: '127.0.0.1:6,127.0.0.1:7' });
      expect(cfg.listen).to.deep.equal([{ host: '127.0.0.1', port: 5 }]);
    });

    it('reads a JSON config file that starts with a UTF-8 byte-order mark', () => {
      const file = writeTemp('relay.json', '\ufeff{"maxQueuedBytes": 555}');
      expect(resolve(['--config', file]).maxQueuedBytes).to.equal(555);
    });

    it('reads the config file named by MSRP_RELAY_CONFIG', () => {
      const file = writeTemp('relay.json', '{"maxQueuedBytes": 777}');
      expect(resolve([], { MSRP_RELAY_CONFIG: file }).maxQueuedBytes).to.equal(777);
    });

    it('prefers --config over MSRP_RELAY_CONFIG', () => {
      const flagFile = writeTemp('relay.json', '{"maxQueuedBytes": 111}');
      const envFile = writeTemp('relay.json', '{"maxQueuedBytes": 222}');
      expect(resolve(['--config', flagFile], { MSRP_RELAY_CONFIG: envFile }).maxQueuedBytes).to.equal(111);
    });

    it('ignores flags it does not know', () => {
      expect(resolveConfig({ version: true }, {}).logLevel).to.equal('info');
    });
  });

  describe('resolveConfig config files', () => {
    it('reads a JSON file', () => {
      const file = writeTemp(
        'relay.json',
        JSON.stringify({
          listen: ['[::1]:2855'],
          wsListen: [{ host: '127.0.0.1', port: 8080 }],
          wsAllowedOrigins: ['https://chat.example.com'],
          idleTimeout: '2h',
          logFormat: 'pretty',
        }),
      );
      const cfg = resolve(['--config', file]);
      expect([cfg.listen, cfg.wsListen, cfg.wsAllowedOrigins, cfg.idleTimeout, cfg.logFormat]).to.deep.equal([
        [{ host: '::1', port: 2855 }],
        [{ host: '127.0.0.1', port: 8080 }],
        ['https://chat.example.com'],
        7200,
        'pretty',
      ]);
    });

    it('reads a YAML file', () => {
      const file = writeTemp(
        'relay.yaml',
        [
          'listen:',
          '  - host: 127.0.0.1',
          '    port: 0',
          'metricsListen: 127.0.0.1:9100',
          'maxMessageSize: 16MiB',
          'reportsDedupe: false',
          'realm: example.com',
          '',
        ].join('\n'),
      );
      const cfg = resolve(['--config', file]);
      expect([cfg.listen, cfg.metricsListen, cfg.maxMessageSize, cfg.reportsDedupe, cfg.realm]).to.deep.equal(
        [
          [{ host: '127.0.0.1', port: 0 }],
          { host: '127.0.0.1', port: 9100 },
          16 * 1024 * 1024,
          false,
          'example.com',
        ],
      );
    });

    it('reads a .yml file', () => {
      const file = writeTemp('relay.yml', 'logLevel: debug\n');
      expect(resolve(['--config', file]).logLevel).to.equal('debug');
    });

    it('resolves an empty YAML file to the defaults', () => {
      const file = writeTemp('relay.yaml', '');
      expect(resolve(['--config', file])).to.deep.equal(resolve());
    });

    it('resolves a relative path in the file against the file folder', () => {
      const sub = join(dir, 'sub');
      mkdirSync(sub, { recursive: true });
      writeFileSync(join(sub, 'users.txt'), 'bob:pw\n');
      const file = join(sub, 'relay.yaml');
      writeFileSync(file, 'users: users.txt\n');
      expect(resolve(['--config', file]).users).to.equal(join(sub, 'users.txt'));
    });

    it('takes publicHost from the first WebSocket listener when the file empties listen', () => {
      const file = writeTemp('relay.yaml', 'listen: []\nwsListen: ["localhost:8080"]\n');
      expect(resolve(['--config', file]).publicHost).to.equal('localhost');
    });
  });

  describe('sizes', () => {
    const sizes: Array<[string, number]> = [
      ['1048576', 1048576],
      ['512k', 524288],
      ['512K', 524288],
      ['2KiB', 2048],
      ['2kib', 2048],
      ['64m', 67108864],
      ['64MiB', 67108864],
      ['1g', 1073741824],
      ['1GiB', 1073741824],
      ['1.5k', 1536],
    ];
    for (const [text, bytes] of sizes) {
      it(`reads --max-message-size ${text} as ${bytes} bytes`, () => {
        expect(resolve(['--max-message-size', text]).maxMessageSize).to.equal(bytes);
      });
    }

    it('reads a number in a file as bytes', () => {
      const file = writeTemp('relay.json', '{"wsMaxMessage": 4096}');
      expect(resolve(['--config', file]).wsMaxMessage).to.equal(4096);
    });

    it('exports parseSize for other commands', () => {
      expect(parseSize('3 MiB')).to.equal(3145728);
    });
  });

  describe('durations', () => {
    const durations: Array<[string, number]> = [
      ['45', 45],
      ['500ms', 0.5],
      ['90s', 90],
      ['10m', 600],
      ['2h', 7200],
    ];
    for (const [text, seconds] of durations) {
      it(`reads --transaction-timeout ${text} as ${seconds} seconds`, () => {
        expect(resolve(['--transaction-timeout', text]).transactionTimeout).to.equal(seconds);
      });
    }

    it('reads --auth-max-expires 2h as 7200 seconds', () => {
      expect(resolve(['--auth-max-expires', '2h']).authMaxExpires).to.equal(7200);
    });

    it('exports parseDuration for other commands', () => {
      expect(parseDuration('250ms')).to.equal(0.25);
    });
  });

  describe('host:port', () => {
    const addresses: Array<[string, { host: string; port: number }]> = [
      ['[::1]:2855', { host: '::1', port: 2855 }],
      ['[::]:2855', { host: '::', port: 2855 }],
      ['127.0.0.1:2855', { host: '127.0.0.1', port: 2855 }],
      [':2855', { host: '0.0.0.0', port: 2855 }],
      ['relay.example.com:2855', { host: 'relay.example.com', port: 2855 }],
      ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ];
    for (const [text, addr] of addresses) {
      it(`parses ${text}`, () => {
        expect(parseHostPort(text)).to.deep.equal(addr);
      });
    }

    it('reads a comma-separated MSRP_RELAY_WS_LISTEN with an IPv6 host', () => {
      const cfg = resolve([], { MSRP_RELAY_WS_LISTEN: '[::1]:8080, 127.0.0.1:8081' });
      expect(cfg.wsListen).to.deep.equal([
        { host: '::1', port: 8080 },
        { host: '127.0.0.1', port: 8081 },
      ]);
    });

    it('defaults publicHost to an IPv6 first listen host', () => {
      expect(resolve(['--listen', '[::1]:0']).publicHost).to.equal('::1');
    });

    it('formats an IPv6 address with brackets', () => {
      expect(formatHostPort({ host: '::1', port: 2855 })).to.equal('[::1]:2855');
    });
  });

  describe('publicHost and realm', () => {
    it('defaults realm to --public-host', () => {
      expect(resolve(['--public-host', 'relay.example.com']).realm).to.equal('relay.example.com');
    });

    it('accepts a wildcard listener when --public-host is given', () => {
      expect(resolve(['--listen', ':2855', '--public-host', 'relay.example.com']).listen).to.deep.equal([
        { host: '0.0.0.0', port: 2855 },
      ]);
    });

    it('brings the default AUTH lifetime within bounds the operator set, but not one given', () => {
      // Operations audit: --auth-max-expires 300 alone failed, naming an --auth-expires nobody gave.
      expect(resolve(['--auth-max-expires', '300']).authExpires).to.equal(300);
      expect(resolve(['--auth-min-expires', '1200']).authExpires).to.equal(1200);
      expect(configError(['--auth-max-expires', '300', '--auth-expires', '600']).message).to.match(
        /^--auth-expires \(600\) must lie between/,
      );
    });

    it('keeps --realm apart from the public host', () => {
      expect(resolve(['--realm', 'example.com']).realm).to.equal('example.com');
    });
  });

  describe('TLS and files', () => {
    it('accepts a TLS listener with a readable cert and key', () => {
      const cfg = resolve(['--tls-listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key]);
      expect([cfg.tlsListen, cfg.tlsCert, cfg.tlsKey]).to.deep.equal([
        [{ host: '127.0.0.1', port: 0 }],
        cert,
        key,
      ]);
    });

    it('reads --tls-ca as a file of PEM certificates, and names it when it holds none or a broken one', () => {
      expect(resolve(['--tls-ca', cert]).tlsCa).to.equal(cert);
      const broken = writeTemp(
        'broken-ca.pem',
        '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n',
      );
      expect(configError(['--tls-ca', users]).message).to.match(/^--tls-ca .* holds no PEM certificate/);
      expect(configError(['--tls-ca', broken]).message).to.match(
        /^--tls-ca .*: certificate 1 of 1 does not parse/,
      );
      expect(configError(['--tls-ca', '/nonexistent/ca.pem']).message).to.match(
        /^--tls-ca .* is not a readable file/,
      );
    });

    it('reads --relay-ca as a file of PEM certificates, only with a TLS listener', () => {
      const tls = ['--tls-listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key];
      expect(resolve([...tls, '--relay-ca', cert]).relayCa).to.equal(cert);
      expect(configError([...tls, '--relay-ca', users]).message).to.match(
        /^--relay-ca .* holds no PEM certificate/,
      );
      expect(configError(['--relay-ca', cert]).message).to.match(/^--relay-ca needs --tls-listen/);
    });

    it('rejects a certificate or key that is not PEM, or a key of another certificate, naming both flags', () => {
      // Operations audit: found only at bind time, as `cannot listen: ERR_OSSL_PEM_NO_START_LINE ...`.
      const other = writeTemp(
        'other-key.pem',
        execFileSync('openssl', ['genrsa', '2048'], { stdio: 'pipe' }).toString(),
      );
      for (const args of [
        ['--tls-cert', users, '--tls-key', key],
        ['--tls-cert', cert, '--tls-key', cert],
        ['--tls-cert', cert, '--tls-key', other],
        ['--tls-cert', ecCertificate().certPath, '--tls-key', key],
      ]) {
        const err = configError(['--tls-listen', '127.0.0.1:0', ...args]);
        expect(err.message).to.match(
          /^--tls-cert .* and --tls-key .* are not a usable certificate and key \(/,
        );
        expect(err.message).not.to.include('\n');
      }
    });

    it('rejects a wildcard listener on the port of another listener (the default --listen too)', () => {
      // Operations audit: `--tls-listen :2855` passed check-config and failed at bind with EADDRINUSE.
      const err = configError([
        '--tls-listen',
        ':2855',
        '--tls-cert',
        cert,
        '--tls-key',
        key,
        '--public-host',
        'x.example',
      ]);
      expect(err.message).to.equal(
        "--tls-listen 0.0.0.0:2855 clashes with 127.0.0.1:2855 of --listen (--listen defaults to 127.0.0.1:2855; '' turns it off): give each listener its own port",
      );
    });

    it('accepts a readable users file', () => {
      expect(resolve(['--users', users]).users).to.equal(users);
    });
  });

  it('reads --trusted-proxies as a list of addresses and networks, repeated or comma-separated', () => {
    const cfg = resolve(['--trusted-proxies', '10.0.0.0/8,192.0.2.7', '--trusted-proxies', '2001:db8::/32']);
    expect(cfg.trustedProxies).to.deep.equal(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
    expect(resolve([], { MSRP_RELAY_TRUSTED_PROXIES: '127.0.0.1' }).trustedProxies).to.deep.equal([
      '127.0.0.1',
    ]);
    expect(resolve(['--proxy-protocol-from', '10.1.0.0/16']).proxyProtocolFrom).to.deep.equal([
      '10.1.0.0/16',
    ]);
  });

  describe('validation', () => {
    const failures: Array<[string, string[], NodeJS.ProcessEnv, string]> = [
      ['a size that is not a number', ['--max-queued-bytes', 'abc'], {}, '--max-queued-bytes'],
      ['a size of 0', ['--max-queued-bytes', '0'], {}, '--max-queued-bytes'],
      ['a size in decimal kilobytes', ['--max-message-size', '10KB'], {}, '--max-message-size'],
      ['a fractional byte count', ['--ws-max-message', '1.5'], {}, '--ws-max-message'],
      ['a timeout of 0', ['--transaction-timeout', '0'], {}, '--transaction-timeout'],
      ['a duration in days', ['--probation-timeout', '5d'], {}, '--probation-timeout'],
      ['a duration too long for a timer', ['--idle-timeout', '9999999'], {}, '--idle-timeout'],
      ['an AUTH lifetime that is not whole seconds', ['--auth-expires', '1500ms'], {}, '--auth-expires'],
      ['an AUTH lifetime below the minimum', ['--auth-expires', '30'], {}, '--auth-min-expires'],
      ['an AUTH lifetime above the maximum', ['--auth-expires', '2h'], {}, '--auth-max-expires'],
      ['an AUTH minimum above the maximum', ['--auth-min-expires', '2h'], {}, '--auth-min-expires'],
      ['an unknown reports mode', ['--reports', 'sometimes'], {}, '--reports'],
      ['an unknown log level', ['--log-level', 'verbose'], {}, '--log-level'],
      ['an unknown log format', ['--log-format', 'xml'], {}, '--log-format'],
      ['a listen address without port', ['--listen', '127.0.0.1'], {}, '--listen'],
      ['an unbracketed IPv6 listen address', ['--listen', '::1:2855'], {}, '--listen'],
      ['a port above 65535', ['--listen', '127.0.0.1:70000'], {}, '--listen'],
      ['an IPv4 address in brackets', ['--listen', '[127.0.0.1]:2855'], {}, '--listen'],
      ['a host name with an underscore', ['--ws-listen', 'bad_host:2855'], {}, '--ws-listen'],
      ['a metrics address without port', ['--metrics-listen', 'nope'], {}, '--metrics-listen'],
      ['a proxy given by name', ['--trusted-proxies', 'lb.example.com'], {}, '--trusted-proxies'],
      [
        'a proxy address with a zone id',
        ['--proxy-protocol-from', 'fe80::1%eth0'],
        {},
        '--proxy-protocol-from',
      ],
      [
        'a proxy network with a prefix too long',
        [],
        { MSRP_RELAY_TRUSTED_PROXIES: '10.0.0.0/40' },
        'MSRP_RELAY_TRUSTED_PROXIES',
      ],
      [
        'an origin with a path',
        ['--ws-allowed-origins', 'https://x.example/app'],
        {},
        '--ws-allowed-origins',
      ],
      ['a public host with a space', ['--public-host', 'a b'], {}, '--public-host'],
      ['a TLS listener without cert', ['--tls-listen', '127.0.0.1:0'], {}, '--tls-cert'],
      [
        'a WSS listener without key',
        ['--wss-listen', '127.0.0.1:0', '--tls-cert', '/dev/null'],
        {},
        '--tls-key',
      ],
      ['an unreadable cert', ['--tls-cert', '/nonexistent/cert.pem'], {}, '--tls-cert'],
      ['a users path that is a folder', ['--users', '/'], {}, '--users'],
      [
        'two listeners on one address',
        ['--listen', '127.0.0.1:2855', '--ws-listen', '127.0.0.1:2855'],
        {},
        '--ws-listen',
      ],
      ['a wildcard first listener without public host', ['--listen', ':2855'], {}, '--public-host'],
      ['no listener at all', ['--listen', ''], {}, '--listen'],
      ['a bad boolean in the environment', [], { MSRP_RELAY_AUTH: 'maybe' }, 'MSRP_RELAY_AUTH'],
      [
        'a bad size in the environment',
        [],
        { MSRP_RELAY_MAX_QUEUED_BYTES: 'lots' },
        'MSRP_RELAY_MAX_QUEUED_BYTES',
      ],
      [
        'a missing config file from the environment',
        [],
        { MSRP_RELAY_CONFIG: '/nonexistent/r.yaml' },
        'MSRP_RELAY_CONFIG',
      ],
      ['a missing config file', ['--config', '/nonexistent/r.yaml'], {}, '--config'],
      ['a config file of another format', ['--config', '/nonexistent/r.toml'], {}, '.json, .yaml or .yml'],
    ];
    for (const [what, args, env, names] of failures) {
      it(`rejects ${what} with a one-line MSRP_ERR_CONFIG naming ${names}`, () => {
        const err = configError(args, env);
        expect([err.code, err.statusCode, err.fatal]).to.deep.equal(['MSRP_ERR_CONFIG', 0, true]);
        expect(err.message).to.include(names);
        expect(err.message).not.to.include('\n');
      });
    }

    it('names the file key of a bad file value', () => {
      const file = writeTemp('relay.json', '{"maxQueuedBytes": "lots"}');
      expect(configError(['--config', file]).message).to.include(`maxQueuedBytes in ${file}`);
    });

    it('rejects an unknown key in the file', () => {
      const file = writeTemp('relay.yaml', 'colour: blue\n');
      expect(configError(['--config', file]).message).to.equal(
        `unknown key "colour" in config file ${file}: remove it or check its spelling`,
      );
    });

    it('suggests the camelCase key for a kebab-case key in the file', () => {
      const file = writeTemp('relay.yaml', 'max-queued-bytes: 1k\n');
      expect(configError(['--config', file]).message).to.include('did you mean maxQueuedBytes?');
    });

    it('rejects an unknown key in a listen entry of the file', () => {
      const file = writeTemp('relay.json', '{"listen": [{"host": "127.0.0.1", "port": 1, "tls": true}]}');
      expect(configError(['--config', file]).message).to.include(`listen in ${file}`);
    });

    it('rejects a file that is not valid JSON on one line', () => {
      const file = writeTemp('relay.json', '{"listen": ');
      const err = configError(['--config', file]);
      expect([err.code, err.message.includes('\n')]).to.deep.equal(['MSRP_ERR_CONFIG', false]);
    });

    it('rejects a file that is not valid YAML on one line, with its position and no dangling colon', () => {
      const file = writeTemp('relay.yaml', 'listen: [\n');
      const message = configError(['--config', file]).message;
      expect([message.includes('\n'), /at line \d+, column \d+$/.test(message)]).to.deep.equal([false, true]);
    });

    it('rejects a YAML file holding a list', () => {
      const file = writeTemp('relay.yaml', '- listen\n');
      expect(configError(['--config', file]).message).to.include('must hold a mapping');
    });
  });

  describe('describeConfig', () => {
    it('prints addresses as host:port', () => {
      const described = describeConfig(resolve(['--listen', '[::1]:2855', '--metrics-listen', ':9100']));
      expect([described.listen, described.metricsListen]).to.deep.equal([['[::1]:2855'], '0.0.0.0:9100']);
    });

    it('leaves out absent optional keys', () => {
      expect(describeConfig(resolve())).not.to.have.any.keys('users', 'tlsCert', 'tlsKey', 'metricsListen');
    });

    it('masks a secret-looking key', () => {
      const cfg = { ...resolve(), tokenSecret: 's3cret' } as RelayConfig;
      expect(describeConfig(cfg).tokenSecret).to.equal('***');
    });

    it('prints a count whose name looks secret as it is (maxRelayedTokens)', () => {
      const cfg = {
        ...resolve(['--max-relayed-tokens', '77']),
        tokenCount: 5,
        tokenText: '5',
      } as RelayConfig;
      const d = describeConfig(cfg);
      expect([d.maxRelayedTokens, d.tokenCount, d.tokenText]).to.deep.equal([77, 5, '***']);
    });

    it('prints a config that resolves to the same config from a file', () => {
      const cfg = resolve([
        '--listen',
        '[::1]:0',
        '--ws-listen',
        '127.0.0.1:0',
        '--users',
        users,
        '--reports',
        'off',
      ]);
      const file = writeTemp('relay.json', JSON.stringify(describeConfig(cfg)));
      expect(resolve(['--config', file])).to.deep.equal(cfg);
    });
  });
});
