import { expect } from 'chai';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMsrpError, type MsrpError } from '../../lib/errors.js';
import { computeHA1 } from '../../lib/relay/digest-auth.js';
import { FileUserStore } from '../../lib/relay/users.js';
import { tempDir } from '../helpers/temp.js';

const REALM = 'relay.example.com';
const HA1 = '96dd0f04ed9b519d3e5d2abbb036e312'; // alice / relay.example.com / s3cret-Pw
const FORMS = "write 'user:password', 'user:<32 lower-case hex HA1>' or 'user:plain:<password>'";

describe('FileUserStore', () => {
  let dir: string;
  let seq = 0;

  before(() => {
    dir = tempDir('msrp-users-');
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function file(content: string | Buffer): string {
    const path = join(dir, `users-${++seq}.txt`);
    writeFileSync(path, content);
    return path;
  }

  function loadError(content: string | Buffer): { path: string; err: MsrpError } {
    const path = file(content);
    try {
      FileUserStore.fromFile(path);
    } catch (err) {
      if (isMsrpError(err)) return { path, err };
      throw err;
    }
    throw new Error('expected an MsrpError');
  }

  it('reads a user:password line into the HA1 of that password', () => {
    const store = FileUserStore.fromFile(file('alice:s3cret-Pw\n'));
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(HA1);
  });

  it('computes the HA1 for the realm asked for', () => {
    const store = FileUserStore.fromFile(file('alice:s3cret-Pw\n'));
    expect(store.lookup('alice')!.ha1('other')).to.equal(computeHA1('alice', 'other', 's3cret-Pw'));
  });

  it('takes 32 lower-case hex digits as a precomputed HA1', () => {
    const store = FileUserStore.fromFile(file(`alice:${HA1}\n`));
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(HA1);
  });

  it('takes 32 upper-case hex digits as a password', () => {
    const store = FileUserStore.fromFile(file(`alice:${HA1.toUpperCase()}\n`));
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(computeHA1('alice', REALM, HA1.toUpperCase()));
  });

  it('takes user:plain:<password> as a password even when it looks like an HA1', () => {
    const store = FileUserStore.fromFile(file(`alice:plain:${HA1}\n`));
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(computeHA1('alice', REALM, HA1));
  });

  it('keeps colons inside a password', () => {
    const store = FileUserStore.fromFile(file('alice:a:b:c\n'));
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(computeHA1('alice', REALM, 'a:b:c'));
  });

  it('ignores comments, blank lines and CRLF line ends', () => {
    const store = FileUserStore.fromFile(
      file('# users\r\n\r\n   \r\n  # indented comment\r\nalice:s3cret-Pw\r\nbob:b0b'),
    );
    expect([store.size, store.lookup('alice')!.ha1(REALM), store.lookup('bob')!.ha1(REALM)]).to.deep.equal([
      2,
      HA1,
      computeHA1('bob', REALM, 'b0b'),
    ]);
  });

  it('skips a UTF-8 byte order mark', () => {
    const store = FileUserStore.fromFile(file('\ufeffalice:s3cret-Pw\n'));
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(HA1);
  });

  it('reads non-ASCII names and passwords as UTF-8', () => {
    const store = FileUserStore.fromFile(file('j\u00fcrgen:p\u00e4ss\n'));
    expect(store.lookup('j\u00fcrgen')!.ha1(REALM)).to.equal(computeHA1('j\u00fcrgen', REALM, 'p\u00e4ss'));
  });

  it('looks user names up case-sensitively', () => {
    const store = FileUserStore.fromFile(file('alice:pw\n'));
    expect(store.lookup('Alice')).to.equal(undefined);
  });

  it('returns undefined for an unknown user', () => {
    expect(FileUserStore.fromFile(file('alice:pw\n')).lookup('bob')).to.equal(undefined);
  });

  it('remembers the path it was read from', () => {
    const path = file('alice:pw\n');
    expect(FileUserStore.fromFile(path).path).to.equal(path);
  });

  it('raises MSRP_ERR_CONFIG with status 0 for a bad line', () => {
    const { err } = loadError('alice\n');
    expect([err.code, err.statusCode, err.fatal]).to.deep.equal(['MSRP_ERR_CONFIG', 0, false]);
  });

  it('names the file and line of a line without a colon', () => {
    const { path, err } = loadError('# users\nalice:pw\n\nbob\n');
    expect(err.message).to.equal(`${path}:4: no ':' in line; ${FORMS}`);
  });

  it('names the file and line of an empty user name', () => {
    const { path, err } = loadError(':pw\n');
    expect(err.message).to.equal(`${path}:1: empty user name; ${FORMS}`);
  });

  it('names the file and line of a user name with white space', () => {
    const { path, err } = loadError('alice:pw\n  bob:pw\n');
    expect(err.message).to.equal(
      `${path}:2: user name "  bob" contains white space or a control character; ${FORMS}`,
    );
  });

  it('escapes a control character in a user name it reports', () => {
    const { path, err } = loadError('al\x01ice:pw\n');
    expect(err.message).to.equal(
      `${path}:1: user name "al\\u0001ice" contains white space or a control character; ${FORMS}`,
    );
  });

  it('names the file and line of an empty password', () => {
    const { path, err } = loadError('alice:\n');
    expect(err.message).to.equal(`${path}:1: empty password for user 'alice'; ${FORMS}`);
  });

  it('names the file and line of an empty plain: password', () => {
    const { path, err } = loadError('alice:plain:\n');
    expect(err.message).to.equal(`${path}:1: empty password for user 'alice'; ${FORMS}`);
  });

  it('names both lines of a user defined twice', () => {
    const { path, err } = loadError('alice:one\nbob:x\nalice:two\n');
    expect(err.message).to.equal(`${path}:3: user 'alice' already defined on line 1; keep one of them`);
  });

  it('never puts the password into an error message', () => {
    const { err } = loadError('alice:hunter2\nalice:hunter2\n');
    expect(err.message).to.not.include('hunter2');
  });

  it('keeps the message on one line', () => {
    const { err } = loadError('bob\r\n');
    expect(err.message).to.not.match(/[\r\n]/);
  });

  it('names the file it cannot read', () => {
    const path = join(dir, 'missing.txt');
    let message = '';
    try {
      FileUserStore.fromFile(path);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).to.equal(`${path}: cannot read users file (ENOENT); check the path and its permissions`);
  });

  it('names a file that is not UTF-8', () => {
    const { path, err } = loadError(Buffer.from([0x61, 0x3a, 0xff, 0x0a]));
    expect(err.message).to.equal(`${path}: users file is not valid UTF-8; save it as UTF-8`);
  });

  it('reads the file again on reload and returns a new store', () => {
    const path = file('alice:one\n');
    const first = FileUserStore.fromFile(path);
    writeFileSync(path, 'alice:two\nbob:x\n');
    const second = first.reload();
    expect([
      first.size,
      second.size,
      first.lookup('alice')!.ha1(REALM),
      second.lookup('alice')!.ha1(REALM),
    ]).to.deep.equal([1, 2, computeHA1('alice', REALM, 'one'), computeHA1('alice', REALM, 'two')]);
  });

  it('leaves the store unchanged when a reload fails', () => {
    const path = file('alice:one\n');
    const store = FileUserStore.fromFile(path);
    writeFileSync(path, 'broken\n');
    expect(() => store.reload()).to.throw(`${path}:1: no ':' in line`);
    expect(store.lookup('alice')!.ha1(REALM)).to.equal(computeHA1('alice', REALM, 'one'));
  });

  describe('fromMap', () => {
    it('reads values like the part after user: in a file', () => {
      const store = FileUserStore.fromMap({ alice: 's3cret-Pw', bob: HA1, carol: `plain:${HA1}` });
      expect([
        store.lookup('alice')!.ha1(REALM),
        store.lookup('bob')!.ha1(REALM),
        store.lookup('carol')!.ha1(REALM),
      ]).to.deep.equal([HA1, HA1, computeHA1('carol', REALM, HA1)]);
    });

    it('names the user with an empty password', () => {
      expect(() => FileUserStore.fromMap({ alice: '' })).to.throw(
        `users map: empty password for user 'alice'; ${FORMS}`,
      );
    });

    it('refuses a user name with a colon', () => {
      expect(() => FileUserStore.fromMap({ 'a:b': 'pw' })).to.throw(
        `users map: user name 'a:b' contains ':'; ${FORMS}`,
      );
    });

    it('returns itself on reload', () => {
      const store = FileUserStore.fromMap({ alice: 'pw' });
      expect(store.reload()).to.equal(store);
    });
  });
});
