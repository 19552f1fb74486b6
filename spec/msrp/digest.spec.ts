import { expect } from 'chai';
import fc from 'fast-check';
import { isMsrpError, MsrpError } from '../../lib/errors.js';
import {
  authScheme,
  formatAuthenticationInfo,
  formatDigestChallenge,
  formatDigestCredentials,
  parseAuthenticationInfo,
  parseDigestChallenge,
  parseDigestCredentials,
  splitQopOptions,
} from '../../lib/msrp/digest.js';

// Header values of the spec digest's E2.2, E2.3 and E2.4 (after "Name: ").
const E2_2 = 'Digest realm="relay.example.com", nonce="Zk7qR2m9c1Xw4bT8", qop="auth"';
const E2_3 =
  'Digest username="alice", realm="relay.example.com", nonce="Zk7qR2m9c1Xw4bT8", ' +
  'uri="msrps://alice@relay.example.com;tcp", response="6048e0013858ed1df5654a022023c386", ' +
  'qop=auth, cnonce="u5Jd0aQe", nc=00000001';
const E2_4 =
  'nextnonce="Pq2w8Er5Ty7u", qop=auth, rspauth="08347fe4baaf60484e5d20dbd3a4b388", ' +
  'cnonce="u5Jd0aQe", nc=00000001';

function thrown(fn: () => unknown): MsrpError {
  try {
    fn();
  } catch (err) {
    if (isMsrpError(err)) return err;
    throw err;
  }
  throw new Error('expected an MsrpError');
}

describe('parseDigestChallenge', () => {
  it('parses the E2.2 challenge into realm, nonce and qop', () => {
    const c = parseDigestChallenge(E2_2);
    expect(c).to.deep.equal({ realm: 'relay.example.com', nonce: 'Zk7qR2m9c1Xw4bT8', qop: 'auth' });
  });

  it('matches the Digest scheme case-insensitively', () => {
    expect(parseDigestChallenge('dIGEST realm="r", nonce="n"').realm).to.equal('r');
  });

  it('accepts white space around commas and equals signs', () => {
    const c = parseDigestChallenge('  Digest \t realm = "r" ,nonce=  "n",\tqop ="auth"  ');
    expect(c).to.deep.equal({ realm: 'r', nonce: 'n', qop: 'auth' });
  });

  it('resolves backslash escapes in quoted strings', () => {
    expect(parseDigestChallenge('Digest realm="a\\"b\\\\c\\d", nonce="n"').realm).to.equal('a"b\\cd');
  });

  it('reads stale=true, stale=TRUE and stale=false', () => {
    expect(parseDigestChallenge('Digest realm="r", nonce="n", stale=true').stale).to.equal(true);
    expect(parseDigestChallenge('Digest realm="r", nonce="n", stale=TRUE').stale).to.equal(true);
    expect(parseDigestChallenge('Digest realm="r", nonce="n", stale=false').stale).to.equal(false);
  });

  it('reads opaque and algorithm, quoted or as tokens', () => {
    const c = parseDigestChallenge('Digest realm="r", nonce="n", opaque=xyz, algorithm="MD5"');
    expect([c.opaque, c.algorithm]).to.deep.equal(['xyz', 'MD5']);
  });

  it('keeps unknown parameters in extra under their lower-case name', () => {
    const c = parseDigestChallenge('Digest realm="r", nonce="n", Domain="/x", charset=UTF-8');
    expect({ ...c.extra }).to.deep.equal({ domain: '/x', charset: 'UTF-8' });
  });

  it('does not let a __proto__ parameter touch the prototype of extra', () => {
    const c = parseDigestChallenge('Digest realm="r", nonce="n", __proto__="x"');
    expect(Object.getPrototypeOf(c.extra)).to.equal(null);
    expect(c.extra!['__proto__']).to.equal('x');
  });

  it('rejects stale values other than true and false', () => {
    expect(thrown(() => parseDigestChallenge('Digest realm="r", nonce="n", stale=maybe')).message).to.equal(
      "WWW-Authenticate: stale must be true or false, got 'maybe'",
    );
  });

  it('rejects a challenge without realm', () => {
    expect(thrown(() => parseDigestChallenge('Digest nonce="n"')).message).to.equal(
      "WWW-Authenticate: missing 'realm'",
    );
  });

  it('rejects a challenge without nonce', () => {
    expect(thrown(() => parseDigestChallenge('Digest realm="r"')).message).to.equal(
      "WWW-Authenticate: missing 'nonce'",
    );
  });

  it('rejects the Basic scheme', () => {
    expect(thrown(() => parseDigestChallenge('Basic realm="r"')).message).to.equal(
      "WWW-Authenticate: unsupported scheme 'Basic', expected Digest",
    );
  });

  it('rejects an unterminated quoted string', () => {
    expect(thrown(() => parseDigestChallenge('Digest realm="r, nonce="n')).message).to.equal(
      "WWW-Authenticate: expected ',' at offset 24",
    );
    expect(thrown(() => parseDigestChallenge('Digest realm="r')).message).to.equal(
      "WWW-Authenticate: unterminated quoted string in 'realm'",
    );
  });

  it('rejects a repeated parameter', () => {
    expect(thrown(() => parseDigestChallenge('Digest realm="r", nonce="n", Realm="s"')).message).to.equal(
      "WWW-Authenticate: parameter 'realm' repeated",
    );
  });

  it('rejects a trailing comma', () => {
    expect(thrown(() => parseDigestChallenge('Digest realm="r", nonce="n",')).message).to.equal(
      'WWW-Authenticate: expected a parameter at the end',
    );
  });

  it('rejects a parameter without a value', () => {
    expect(thrown(() => parseDigestChallenge('Digest realm="r", nonce')).message).to.equal(
      "WWW-Authenticate: expected '=' after 'nonce' at offset 23",
    );
  });

  it('rejects a scheme with no parameters', () => {
    expect(thrown(() => parseDigestChallenge('Digest')).message).to.equal(
      'WWW-Authenticate: expected white space after Digest',
    );
  });

  it('raises MSRP_ERR_BAD_HEADER_VALUE with status 400, not fatal', () => {
    const err = thrown(() => parseDigestChallenge('Digest realm'));
    expect([err.code, err.statusCode, err.fatal]).to.deep.equal(['MSRP_ERR_BAD_HEADER_VALUE', 400, false]);
  });

  it('throws only MsrpError for arbitrary input', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        for (const parse of [parseDigestChallenge, parseDigestCredentials, parseAuthenticationInfo]) {
          try {
            parse(`Digest ${s}`);
            parse(s);
          } catch (err) {
            if (!isMsrpError(err)) return false;
          }
        }
        return true;
      }),
      { seed: 4976, numRuns: 2000 },
    );
  });
});

describe('formatDigestChallenge', () => {
  it('formats the E2.2 challenge byte for byte', () => {
    expect(
      formatDigestChallenge({ realm: 'relay.example.com', nonce: 'Zk7qR2m9c1Xw4bT8', qop: 'auth' }),
    ).to.equal(E2_2);
  });

  it('round-trips the E2.2 challenge', () => {
    expect(formatDigestChallenge(parseDigestChallenge(E2_2))).to.equal(E2_2);
  });

  it('appends stale=true only when stale is true', () => {
    expect(formatDigestChallenge({ realm: 'r', nonce: 'n', qop: 'auth', stale: true })).to.equal(
      'Digest realm="r", nonce="n", qop="auth", stale=true',
    );
    expect(formatDigestChallenge({ realm: 'r', nonce: 'n', qop: 'auth', stale: false })).to.equal(
      'Digest realm="r", nonce="n", qop="auth"',
    );
  });

  it('emits opaque quoted and algorithm as a token', () => {
    expect(
      formatDigestChallenge({ realm: 'r', nonce: 'n', qop: 'auth', opaque: 'o', algorithm: 'MD5' }),
    ).to.equal('Digest realm="r", nonce="n", qop="auth", opaque="o", algorithm=MD5');
  });

  it('joins a qop list with commas inside one quoted string', () => {
    expect(formatDigestChallenge({ realm: 'r', nonce: 'n', qop: ['auth', 'auth-int'] })).to.equal(
      'Digest realm="r", nonce="n", qop="auth,auth-int"',
    );
  });

  it('escapes quotes and backslashes', () => {
    expect(formatDigestChallenge({ realm: 'a"b\\c', nonce: 'n', qop: 'auth' })).to.equal(
      'Digest realm="a\\"b\\\\c", nonce="n", qop="auth"',
    );
  });

  it('emits extra parameters as tokens when they are tokens, else quoted', () => {
    expect(
      formatDigestChallenge({ realm: 'r', nonce: 'n', extra: { charset: 'UTF-8', domain: '/a b' } }),
    ).to.equal('Digest realm="r", nonce="n", charset=UTF-8, domain="/a b"');
  });

  it('refuses a value containing CR or LF', () => {
    expect(
      thrown(() => formatDigestChallenge({ realm: 'r\r\nX: y', nonce: 'n', qop: 'auth' })).message,
    ).to.equal("WWW-Authenticate: 'realm' contains a character that cannot be quoted");
  });
});

describe('splitQopOptions', () => {
  it('splits a qop list and drops white space', () => {
    expect(splitQopOptions('auth, auth-int')).to.deep.equal(['auth', 'auth-int']);
  });
});

describe('authScheme', () => {
  it('returns the scheme as written', () => {
    expect(authScheme('  Basic dXNlcjpwdw==')).to.equal('Basic');
  });

  it('returns undefined when the value does not start with a token', () => {
    expect(authScheme(' ="x"')).to.equal(undefined);
  });
});

describe('parseDigestCredentials', () => {
  it('parses the E2.3 credentials', () => {
    expect(parseDigestCredentials(E2_3)).to.deep.equal({
      username: 'alice',
      realm: 'relay.example.com',
      nonce: 'Zk7qR2m9c1Xw4bT8',
      uri: 'msrps://alice@relay.example.com;tcp',
      response: '6048e0013858ed1df5654a022023c386',
      qop: 'auth',
      cnonce: 'u5Jd0aQe',
      nc: '00000001',
    });
  });

  it('accepts white space around commas and equals signs', () => {
    const v =
      'Digest username = "alice" ,realm="relay.example.com",nonce="n" , uri ="u",' +
      'response= "6048e0013858ed1df5654a022023c386"\t,qop=auth,cnonce="c",nc=00000001 ';
    const c = parseDigestCredentials(v);
    expect([c.username, c.realm, c.nonce, c.uri, c.qop, c.cnonce, c.nc]).to.deep.equal([
      'alice',
      'relay.example.com',
      'n',
      'u',
      'auth',
      'c',
      '00000001',
    ]);
  });

  it('accepts a quoted qop', () => {
    expect(parseDigestCredentials(E2_3.replace('qop=auth', 'qop="auth"')).qop).to.equal('auth');
  });

  it('leaves qop, cnonce and nc undefined when absent', () => {
    const c = parseDigestCredentials(
      'Digest username="a", realm="r", nonce="n", uri="u", response="6048e0013858ed1df5654a022023c386"',
    );
    expect([c.qop, c.cnonce, c.nc]).to.deep.equal([undefined, undefined, undefined]);
  });

  it('rejects a response that is not 32 hex digits', () => {
    expect(thrown(() => parseDigestCredentials(E2_3.replace('6048e001', '6048e00'))).message).to.equal(
      'Authorization: response must be 32 hex digits',
    );
  });

  it('rejects an nc that is not 8 hex digits', () => {
    expect(thrown(() => parseDigestCredentials(E2_3.replace('nc=00000001', 'nc=1'))).message).to.equal(
      'Authorization: nc must be 8 hex digits',
    );
  });

  it('rejects credentials without uri', () => {
    expect(
      thrown(() => parseDigestCredentials(E2_3.replace(' uri="msrps://alice@relay.example.com;tcp",', '')))
        .message,
    ).to.equal("Authorization: missing 'uri'");
  });

  it('rejects a quoted string holding a bare control character', () => {
    expect(thrown(() => parseDigestCredentials(E2_3.replace('"alice"', '"al\nice"'))).message).to.equal(
      "Authorization: control character in 'username' at offset 19",
    );
  });
});

describe('formatDigestCredentials', () => {
  it('formats the E2.3 credentials byte for byte', () => {
    const v = formatDigestCredentials({
      username: 'alice',
      realm: 'relay.example.com',
      nonce: 'Zk7qR2m9c1Xw4bT8',
      uri: 'msrps://alice@relay.example.com;tcp',
      response: '6048e0013858ed1df5654a022023c386',
      qop: 'auth',
      cnonce: 'u5Jd0aQe',
      nc: '00000001',
    });
    expect(v).to.equal(E2_3);
  });

  it('round-trips the E2.3 credentials', () => {
    expect(formatDigestCredentials(parseDigestCredentials(E2_3))).to.equal(E2_3);
  });

  it('appends algorithm as a token and opaque quoted', () => {
    const c = { ...parseDigestCredentials(E2_3), algorithm: 'MD5', opaque: 'op' };
    expect(formatDigestCredentials(c)).to.equal(`${E2_3}, algorithm=MD5, opaque="op"`);
  });

  it('refuses an nc that is not a token', () => {
    const c = { ...parseDigestCredentials(E2_3), nc: '0 1' };
    expect(thrown(() => formatDigestCredentials(c)).message).to.equal(
      "Authorization: 'nc' must be a token, got '0 1'",
    );
  });
});

describe('parseAuthenticationInfo', () => {
  it('parses the E2.4 Authentication-Info', () => {
    expect(parseAuthenticationInfo(E2_4)).to.deep.equal({
      nextnonce: 'Pq2w8Er5Ty7u',
      qop: 'auth',
      rspauth: '08347fe4baaf60484e5d20dbd3a4b388',
      cnonce: 'u5Jd0aQe',
      nc: '00000001',
    });
  });

  it('accepts items separated by a bare comma as in the RFC 4976 ABNF', () => {
    const a = parseAuthenticationInfo(
      'qop=auth,rspauth="08347fe4baaf60484e5d20dbd3a4b388",cnonce="c",nc=00000001',
    );
    expect([a.qop, a.rspauth, a.cnonce, a.nc]).to.deep.equal([
      'auth',
      '08347fe4baaf60484e5d20dbd3a4b388',
      'c',
      '00000001',
    ]);
  });

  it('accepts white space before commas and around equals signs', () => {
    expect(parseAuthenticationInfo('qop = auth ,  nc= 00000002').nc).to.equal('00000002');
  });

  it('rejects an rspauth that is not hex', () => {
    expect(thrown(() => parseAuthenticationInfo('rspauth="xyz"')).message).to.equal(
      'Authentication-Info: rspauth must be hex digits',
    );
  });

  it('rejects an empty value', () => {
    expect(thrown(() => parseAuthenticationInfo('')).message).to.equal(
      'Authentication-Info: expected a parameter at the end',
    );
  });
});

describe('formatAuthenticationInfo', () => {
  it('formats the E2.4 Authentication-Info byte for byte', () => {
    const v = formatAuthenticationInfo({
      nextnonce: 'Pq2w8Er5Ty7u',
      qop: 'auth',
      rspauth: '08347fe4baaf60484e5d20dbd3a4b388',
      cnonce: 'u5Jd0aQe',
      nc: '00000001',
    });
    expect(v).to.equal(E2_4);
  });

  it('round-trips the E2.4 Authentication-Info', () => {
    const a = parseAuthenticationInfo(E2_4);
    const v = formatAuthenticationInfo({
      ...a,
      qop: a.qop!,
      rspauth: a.rspauth!,
      cnonce: a.cnonce!,
      nc: a.nc!,
    });
    expect(v).to.equal(E2_4);
  });

  it('omits nextnonce when none is given', () => {
    expect(formatAuthenticationInfo({ qop: 'auth', rspauth: 'ab', cnonce: 'c', nc: '00000001' })).to.equal(
      'qop=auth, rspauth="ab", cnonce="c", nc=00000001',
    );
  });
});
