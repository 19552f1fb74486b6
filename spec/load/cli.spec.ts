import { expect } from 'chai';
import { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  commandLine,
  loadCommand,
  loadOptionsFromFlags,
  registerLoadCommand,
  type LoadFlags,
} from '../../lib/cli/load-command.js';
import type { LoadReport } from '../../lib/load/report.js';
import type { Relay } from '../../lib/relay/relay.js';
import { parseLoadFlags } from '../helpers/cli.js';
import { Harness } from '../helpers/relay.js';
import { tempDir } from '../helpers/temp.js';

/** Runs the command with captured output; `argv` as commander would see it after `msrp-relay load`. */
async function runCommand(flags: LoadFlags): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await loadCommand(
    { progress: false, ...flags },
    { stdout: (s) => (out += s), stderr: (s) => (err += s) },
    ['node', 'msrp-relay', 'load', '--test'],
  );
  return { code, out, err };
}

describe('msrp-relay load (CLI)', function () {
  this.timeout(30_000);
  const h = new Harness();
  afterEach(() => h.cleanup());
  const target = (relay: Relay): string => `127.0.0.1:${relay.addresses()[0]!.port}`;

  it('registers every flag with help text and its default', () => {
    const program = new Command('msrp-relay');
    registerLoadCommand(program);
    const load = program.commands.find((c) => c.name() === 'load')!;
    const flags = load.options.map((o) => o.long);
    expect(flags).to.deep.equal([
      '--target',
      '--target-ws',
      '--transport',
      '--receiver-target',
      '--auth-host',
      '--auth-expires',
      '--tls-ca',
      '--insecure',
      '--user',
      '--password',
      '--users',
      '--sessions',
      '--rate',
      '--concurrency',
      '--messages',
      '--duration',
      '--size',
      '--chunk-size',
      '--cpim',
      '--request-reports',
      '--report-dialect',
      '--receiver-imdn',
      '--receiver-status',
      '--ramp-up',
      '--warm-up',
      '--drain',
      '--timeout',
      '--hold',
      '--workers',
      '--setup-concurrency',
      '--max-error-rate',
      '--json',
      '--no-progress',
    ]);
    for (const o of load.options) expect(o.description, o.long).to.match(/\w/);
    for (const o of load.options.filter(
      (x) => !['--password', '--target-ws', '--insecure'].includes(x.long!),
    )) {
      expect(o.description, o.long).to.match(/default|implies/);
    }
  });

  it('masks the --password value in the command line the report keeps', () => {
    const argv = ['node', 'msrp-relay', 'load', '--user', 'u', '--password', 's3cret', '--password=x y'];
    expect(commandLine(argv)).to.equal("msrp-relay load --user u --password '***' '--password=***'");
  });

  it('turns parsed flags into load options', () => {
    const flags = parseLoadFlags([
      '--target',
      'msrps://relay.example.com:2855;tcp',
      '--receiver-target',
      'msrps://relay2.example.com:2855;tcp',
      '-s',
      '50',
      '-r',
      '1000',
      '-d',
      '2m',
      '--size',
      '100:50,1k:50',
      '--chunk-size',
      '16k',
      '--request-reports',
      'positive-delivery',
      '--receiver-status',
      'none',
      '--ramp-up',
      '5s',
      '--warm-up',
      '1500ms',
      '-w',
      '2',
      '--max-error-rate',
      '0.05',
      '--no-progress',
    ]);
    expect(loadOptionsFromFlags(flags)).to.deep.equal({
      target: 'msrps://relay.example.com:2855;tcp',
      receiverTarget: 'msrps://relay2.example.com:2855;tcp',
      sessions: 50,
      rate: 1000,
      duration: 120,
      sizes: [
        { bytes: 100, weight: 50 },
        { bytes: 1024, weight: 50 },
      ],
      chunkSize: 16384,
      requestReports: ['positive-delivery'],
      receiverStatus: null,
      rampUp: 5,
      warmUp: 1.5,
      workers: 2,
      maxErrorRate: 0.05,
      progress: false,
    });
  });

  it('exits 2 with one line naming the flag for a bad value', async () => {
    for (const [flags, re] of [
      [{ sessions: 'many' }, /^msrp-relay load: --sessions must be a whole number \(got "many"\)\n$/],
      // Decimal only, as --size and --duration (load-tester audit: `1e3`, `0x10` were read as numbers).
      [{ sessions: '1e3' }, /^msrp-relay load: --sessions must be a whole number \(got "1e3"\)\n$/],
      [{ messages: '0x10' }, /^msrp-relay load: --messages must be a whole number \(got "0x10"\)\n$/],
      [{ rate: '0b11' }, /^msrp-relay load: --rate must be a number \(got "0b11"\)\n$/],
      [{ rate: '5', concurrency: '2' }, /^msrp-relay load: --rate \(open loop\) and --concurrency/],
      [{ duration: 'forever' }, /^msrp-relay load: --duration must be a duration/],
      [{ users: '/nonexistent/users' }, /^msrp-relay load: --users: cannot read \/nonexistent\/users/],
      [{ json: '/nonexistent/dir/report.json' }, /^msrp-relay load: --json: cannot write/],
    ] as Array<[LoadFlags, RegExp]>) {
      const r = await runCommand(flags);
      expect(r.code, JSON.stringify(flags)).to.equal(2);
      expect(r.err).to.match(re);
      expect(r.err.split('\n')).to.have.length(2);
      expect(r.out).to.equal('');
    }
  });

  it('exits 0 within --max-error-rate and prints the table', async () => {
    const relay = await h.relay();
    const r = await runCommand({
      target: target(relay),
      user: 'alice',
      password: 'alice-pw',
      messages: '20',
      sessions: '2',
    });
    expect(r.code).to.equal(0);
    expect(r.out).to.match(/^msrp-relay load — /);
    expect(r.out).to.include('command: msrp-relay load --test');
    expect(r.out).to.match(/first hop \(SEND→200\)\s+20 /);
    expect(r.out).to.include('result: PASS');
  });

  it('exits 1 above --max-error-rate, 0 when the maximum allows the errors', async () => {
    const relay = await h.relay();
    const base = {
      target: target(relay),
      user: 'alice',
      password: 'alice-pw',
      messages: '10',
      receiverStatus: '415',
    };
    const failing = await runCommand(base);
    expect(failing.code).to.equal(1);
    expect(failing.out).to.include('failure REPORTs  415×10');
    expect(failing.out).to.include('result: FAIL');
    const tolerated = await runCommand({ ...base, maxErrorRate: '1' });
    expect(tolerated.code).to.equal(0);
  });

  it('writes the report as JSON with --json', async () => {
    const relay = await h.relay();
    const file = join(tempDir('load-json-'), 'report.json');
    writeFileSync(file, '{"an earlier": "report, replaced whole"}\n');
    const r = await runCommand({
      target: target(relay),
      user: 'bob',
      password: 'bob-pw',
      messages: '5',
      json: file,
    });
    expect(r.code).to.equal(0);
    const report = JSON.parse(readFileSync(file, 'utf8')) as LoadReport;
    expect(report.schema).to.equal('msrp-relay/load-report/v1');
    expect(report.command).to.equal('msrp-relay load --test');
    expect(report.messages).to.deep.equal({ sent: 5, delivered: 5, failed: 0, lost: 0 });
  });
});
