import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { escapeControls, escapeJsonControls } from '../../lib/cli/logger.js';

const loggerModule = join(dirname(fileURLToPath(import.meta.url)), '../../lib/cli/logger.js');

describe('the pretty log format', () => {
  it('writes control characters from the wire as \\xNN, so a client cannot drive the terminal', () => {
    expect(escapeControls('bad method "FOO\x1b[2K\rFAKE"\n\u0085 ok é')).to.equal(
      'bad method "FOO\\x1b[2K\\x0dFAKE"\\x0a\\x85 ok é',
    );
  });

  it('escapes them in the message and the fields of every line it prints', () => {
    // A child process: the pretty destination writes to stdout.
    const script = `import(${JSON.stringify(loggerModule)}).then(({ createLogger }) => {
      createLogger('info', 'pretty').warn({ remote: 'a\\u001b]0;x\\u0007' }, 'start line "X\\rY"');
    });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/WARN {2}start line "X\\x0dY" {2}remote=a\\x1b\]0;x\\x07\n$/);
    expect(r.stdout.split('\n')).to.have.length(2); // one line, then the end
  });

  it('quotes a field value with a space, quote, `=` or backslash, so it cannot pass for fields of its own', () => {
    // Observability audit: a Digest user name `x remote=6.6.6.6:1234` printed `user=x remote=6.6.6.6:1234`.
    const script = `import(${JSON.stringify(loggerModule)}).then(({ createLogger }) => {
      createLogger('info', 'pretty').warn(
        { remote: '127.0.0.1:5000', user: 'x remote=6.6.6.6:1234', tid: 'a"b', plain: 'alice', n: 3 },
        'AUTH failed',
      );
    });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.stdout).to.match(
      /WARN {2}AUTH failed {2}remote=127\.0\.0\.1:5000 user="x remote=6\.6\.6\.6:1234" tid="a\\"b" plain=alice n=3\n$/,
    );
  });
});

describe('the JSON log format', () => {
  it('writes DEL and the C1 controls as \\u00NN, and the line parses to the same values', () => {
    expect(escapeJsonControls('{"msg":"a\u009b2Jb\u007fc é"}')).to.equal('{"msg":"a\\u009b2Jb\\u007fc é"}');
    const script = `import(${JSON.stringify(loggerModule)}).then(({ createLogger }) => {
      const log = createLogger('info', 'json');
      log.warn({ remote: 'a\\u009b2J\\u0085' }, 'start line "X\\u007fY\\u001b"');
      log.flush();
    });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).to.equal(0);
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).to.not.match(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    const rec = JSON.parse(r.stdout) as { msg: string; remote: string };
    expect(rec.msg).to.equal('start line "X\u007fY\u001b"');
    expect(rec.remote).to.equal('a\u009b2J\u0085');
  });
});
