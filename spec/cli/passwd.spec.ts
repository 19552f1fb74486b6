import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileUserStore } from '../../lib/relay/users.js';
import { Harness } from '../helpers/relay.js';
import { tempDir } from '../helpers/temp.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'msrp-relay');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `msrp-relay passwd ...` with `input` on stdin (a pipe, not a terminal). */
function passwd(args: string[], input: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'passwd', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('passwd did not exit within 10 s'));
    }, 10_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

const md5 = (s: string): string => createHash('md5').update(s, 'utf8').digest('hex');

describe('msrp-relay passwd', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('prints user:HA1 for the realm given, which a relay with that realm accepts', async () => {
    const r = await passwd(['bob', '--realm', 'test.realm'], 'bob-pw\n');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.equal(`bob:${md5('bob:test.realm:bob-pw')}\n`);
    expect(r.stderr).to.include('realm "test.realm"');
    const file = join(tempDir('msrp-passwd-'), 'users');
    writeFileSync(file, r.stdout);
    const relay = await h.relay({ realm: 'test.realm', users: FileUserStore.fromFile(file) });
    const ep = await h.connect(relay);
    const res = await ep.auth({ relayUri: h.relayUri(relay, 'bob'), username: 'bob', password: 'bob-pw' });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
  });

  it('takes the realm as start would: the config file, else the public host', async () => {
    const dir = tempDir('msrp-passwd-');
    const config = join(dir, 'relay.json');
    writeFileSync(config, JSON.stringify({ publicHost: 'relay.example.com' }));
    const fromFile = await passwd(['alice', '--config', config], 'pw\r\nignored second line\n');
    expect(fromFile.stdout).to.equal(`alice:${md5('alice:relay.example.com:pw')}\n`);
    // Only the realm is needed: a users file yet to be written, or an unreadable TLS key, is no obstacle.
    const early = join(dir, 'early.json');
    writeFileSync(
      early,
      JSON.stringify({
        publicHost: 'relay.example.com',
        users: join(dir, 'users-to-come'),
        tlsKey: '/root/none.pem',
      }),
    );
    const beforeUsers = await passwd(['alice', '--config', early], 'pw\n');
    expect(beforeUsers.code).to.equal(0);
    expect(beforeUsers.stdout).to.equal(`alice:${md5('alice:relay.example.com:pw')}\n`);
    const fromEnv = await passwd(['alice'], 'pw', { MSRP_RELAY_REALM: 'env.realm' });
    expect(fromEnv.stdout).to.equal(`alice:${md5('alice:env.realm:pw')}\n`);
  });

  it('refuses a bad user name, an empty password or no input with one line and exit code 2', async () => {
    for (const [args, input] of [
      [['a:b'], 'pw\n'],
      [['has space'], 'pw\n'],
      [['carol'], '\n'],
      [['carol'], ''],
    ] as Array<[string[], string]>) {
      const r = await passwd(args, input);
      expect(r.code, `${args.join(' ')} / ${JSON.stringify(input)}`).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr.trim().split('\n')).to.have.length(1);
    }
  });
});
