import { expect } from 'chai';

import { ErrorCodes, MsrpError } from '../../lib/errors.js';
import {
  formatPath,
  formatUri,
  parsePath,
  parseUri,
  uriEquals,
  uriKey,
  type MsrpUri,
} from '../../lib/msrp/uri.js';

/** Runs `fn` and returns the MsrpError it throws; fails the test when it does not throw one. */
function catchError(fn: () => unknown): MsrpError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(MsrpError);
    return err as MsrpError;
  }
  expect.fail('expected an MsrpError');
}

/** Every distinct URI in the wire examples of the spec digest (§1.16, §2.14, §3.8). */
const WIRE_URIS = [
  'msrp://bob.example.net:7394/s8Fh2kQpZr;tcp',
  'msrp://alice.example.org:7655/a1B2c3D4e5;tcp',
  'msrp://bob.example.net:7394/XXunknownXX;tcp',
  'msrps://alice@relay.example.com;tcp',
  'msrps://alice-pc.example.org:50001/aLc3sE9kQm7xY2;tcp',
  'msrps://relay.example.com:2855/Rk9sT1x4ZbQ;tcp',
  'msrps://carol@relay.example.com:443;ws',
  'msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;ws',
  'msrps://relay.example.com:2855/Tj5bN8vQ2r;tcp',
];

/** Every multi-URI path value in the wire examples of the spec digest (§2.6, §2.14, §3.8). */
const WIRE_PATHS = [
  'msrps://relay.example.com:2855/Rk9sT1x4ZbQ;tcp msrp://bob.example.net:7394/s8Fh2kQpZr;tcp',
  'msrps://relay.example.com:2855/Rk9sT1x4ZbQ;tcp msrps://alice-pc.example.org:50001/aLc3sE9kQm7xY2;tcp',
  'msrps://relay.example.com:2855/Tj5bN8vQ2r;tcp msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;ws',
];

describe('parseUri', () => {
  it('parses a session URI into scheme, host, port, session-id and transport', () => {
    expect(parseUri('msrp://bob.example.net:7394/s8Fh2kQpZr;tcp')).to.deep.equal({
      scheme: 'msrp',
      host: 'bob.example.net',
      port: 7394,
      sessionId: 's8Fh2kQpZr',
      transport: 'tcp',
      params: [],
    });
  });

  it('parses the msrps scheme', () => {
    expect(parseUri('msrps://relay.example.com:2855/Rk9sT1x4ZbQ;tcp').scheme).to.equal('msrps');
  });

  it('lower-cases the scheme and the transport and keeps the host as written', () => {
    const uri = parseUri('MSRP://Bob.Example.net:7394/abc;TCP');
    expect(uri.scheme).to.equal('msrp');
    expect(uri.transport).to.equal('tcp');
    expect(uri.host).to.equal('Bob.Example.net');
  });

  it('parses the AUTH To-Path URI with userinfo and no port or session-id', () => {
    expect(parseUri('msrps://alice@relay.example.com;tcp')).to.deep.equal({
      scheme: 'msrps',
      user: 'alice',
      host: 'relay.example.com',
      transport: 'tcp',
      params: [],
    });
  });

  it('accepts a percent-encoded userinfo', () => {
    expect(parseUri('msrps://al%20ice@relay.example.com;tcp').user).to.equal('al%20ice');
  });

  it('parses a ;ws URI with a .invalid host (RFC 7977)', () => {
    expect(parseUri('msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;ws')).to.deep.equal({
      scheme: 'msrps',
      host: 'q8zf2kd9wl3m.invalid',
      port: 2855,
      sessionId: 'Wc7eP0s1aB',
      transport: 'ws',
      params: [],
    });
  });

  it('accepts a .invalid ;ws URI without a port', () => {
    const uri = parseUri('msrps://df7jal23ls0d.invalid/98s2x;ws');
    expect(uri.host).to.equal('df7jal23ls0d.invalid');
    expect(uri.port).to.equal(undefined);
  });

  it('keeps IPv6 literals with their brackets', () => {
    const uri = parseUri('msrp://[2001:db8::1]:2855/s1;tcp');
    expect(uri.host).to.equal('[2001:db8::1]');
    expect(uri.port).to.equal(2855);
  });

  it('accepts IPv6 literals with an embedded IPv4 part', () => {
    expect(parseUri('msrp://[::ffff:192.0.2.7]:2855;tcp').host).to.equal('[::ffff:192.0.2.7]');
  });

  it('accepts the unspecified IPv6 address', () => {
    expect(parseUri('msrp://[::]:2855;tcp').host).to.equal('[::]');
  });

  it('accepts a full eight-group IPv6 literal', () => {
    expect(parseUri('msrp://[2001:DB8:0:0:0:0:0:1]:1;tcp').host).to.equal('[2001:DB8:0:0:0:0:0:1]');
  });

  it('parses an IPv4 host with a port', () => {
    const uri = parseUri('msrp://192.0.2.10:7000/s1;tcp');
    expect(uri.host).to.equal('192.0.2.10');
    expect(uri.port).to.equal(7000);
  });

  it('accepts a percent-encoded reg-name host', () => {
    expect(parseUri('msrp://b%6Fb.example.net:1;tcp').host).to.equal('b%6Fb.example.net');
  });

  it('accepts session-ids made of unreserved characters, +, = and /', () => {
    expect(parseUri('msrp://h.example:1/aZ09-._~+=/x;tcp').sessionId).to.equal('aZ09-._~+=/x');
  });

  it('accepts the ports 1 and 65535', () => {
    expect(parseUri('msrp://h.example:1;tcp').port).to.equal(1);
    expect(parseUri('msrp://h.example:65535;tcp').port).to.equal(65535);
  });

  it('accepts an extension transport made of alphanumerics', () => {
    expect(parseUri('msrp://h.example:1/s;SCTP2').transport).to.equal('sctp2');
  });

  it('keeps further URI parameters in order, with and without values', () => {
    expect(parseUri('msrp://h.example:1/s;tcp;foo=Bar;baz').params).to.deep.equal([
      ['foo', 'Bar'],
      ['baz', undefined],
    ]);
  });

  it('requires a port when requirePort is set', () => {
    const err = catchError(() => parseUri('msrps://relay.example.com/s1;tcp', { requirePort: true }));
    expect(err.code).to.equal(ErrorCodes.BAD_URI);
    expect(err.statusCode).to.equal(400);
  });

  it('accepts a URI with a port when requirePort is set', () => {
    expect(parseUri('msrps://relay.example.com:2855/s1;tcp', { requirePort: true }).port).to.equal(2855);
  });

  it('accepts a port-less ;ws URI even when requirePort is set (RFC 7977)', () => {
    expect(parseUri('msrps://abc.invalid/s1;ws', { requirePort: true }).port).to.equal(undefined);
  });

  const BAD: Array<[string, string]> = [
    ['an empty string', ''],
    ['an unknown scheme', 'sip://bob.example.net:7394/s;tcp'],
    ['a scheme without //', 'msrp:bob.example.net:7394/s;tcp'],
    ['a missing transport', 'msrp://bob.example.net:7394/s'],
    ['an empty transport', 'msrp://bob.example.net:7394/s;'],
    ['a non-alphanumeric transport', 'msrp://bob.example.net:7394/s;t-cp'],
    ['a password in the userinfo', 'msrp://alice:secret@bob.example.net:7394/s;tcp'],
    ['an empty userinfo', 'msrp://@bob.example.net:7394/s;tcp'],
    ['an @ after the authority', 'msrp://bob.example.net:7394/s@x;tcp'],
    ['a missing host', 'msrp://:7394/s;tcp'],
    ['port 0', 'msrp://bob.example.net:0/s;tcp'],
    ['port 65536', 'msrp://bob.example.net:65536/s;tcp'],
    ['an empty port', 'msrp://bob.example.net:/s;tcp'],
    ['a signed port', 'msrp://bob.example.net:+80/s;tcp'],
    ['a port with letters', 'msrp://bob.example.net:80a/s;tcp'],
    ['a very long port', 'msrp://bob.example.net:99999999999999999999/s;tcp'],
    ['an empty session-id', 'msrp://bob.example.net:7394/;tcp'],
    ['a session-id with a percent sign', 'msrp://bob.example.net:7394/a%41;tcp'],
    ['a session-id with a colon', 'msrp://bob.example.net:7394/a:b;tcp'],
    ['non-ASCII in the host', 'msrp://bób.example.net:7394/s;tcp'],
    ['non-ASCII in the session-id', 'msrp://bob.example.net:7394/sé;tcp'],
    ['a space inside', 'msrp://bob.example.net:7394/s ;tcp'],
    ['a bad percent escape in the host', 'msrp://b%zzb.example.net:7394/s;tcp'],
    ['a truncated percent escape in the host', 'msrp://bob%4:7394/s;tcp'],
    ['an IPv4 host without a port', 'msrp://192.0.2.1/s;tcp'],
    ['an IPv6 host without a port', 'msrp://[2001:db8::1]/s;tcp'],
    ['an unterminated IPv6 literal', 'msrp://[2001:db8::1:7394/s;tcp'],
    ['an IPv6 literal with two ::', 'msrp://[2001::db8::1]:7394/s;tcp'],
    ['an IPv6 literal with nine groups', 'msrp://[1:2:3:4:5:6:7:8:9]:7394/s;tcp'],
    ['an IPv6 literal with seven groups and no ::', 'msrp://[1:2:3:4:5:6:7]:7394/s;tcp'],
    ['an IPv6 group of five hex digits', 'msrp://[12345::1]:7394/s;tcp'],
    ['an IPv6 literal with a zone id', 'msrp://[fe80::1%25eth0]:7394/s;tcp'],
    ['an IPv6 literal with an invalid IPv4 part', 'msrp://[::ffff:1.2.3.256]:7394/s;tcp'],
    ['an empty IPv6 literal', 'msrp://[]:7394/s;tcp'],
    ['an empty URI parameter', 'msrp://bob.example.net:7394/s;tcp;'],
    ['an empty URI parameter value', 'msrp://bob.example.net:7394/s;tcp;a='],
    ['a URI parameter with a bad character', 'msrp://bob.example.net:7394/s;tcp;a=b"c'],
    ['a query string', 'msrp://bob.example.net:7394/s?x;tcp'],
    ['a fragment', 'msrp://bob.example.net:7394/s;tcp#frag'],
    ['trailing white space', 'msrp://bob.example.net:7394/s;tcp '],
  ];
  for (const [what, text] of BAD) {
    it(`rejects ${what} with MSRP_ERR_BAD_URI and status 400`, () => {
      const err = catchError(() => parseUri(text));
      expect(err.code).to.equal(ErrorCodes.BAD_URI);
      expect(err.statusCode).to.equal(400);
      expect(err.fatal).to.equal(false);
    });
  }

  it('names the reason and quotes the URI in the error message', () => {
    const err = catchError(() => parseUri('msrp://alice:pw@h.example:1;tcp'));
    expect(err.message).to.equal(
      'invalid MSRP URI "msrp://alice:pw@h.example:1;tcp": userinfo must not carry a password',
    );
  });

  it('cuts a long URI in the error message to 100 characters', () => {
    const err = catchError(() => parseUri('msrp://' + 'a'.repeat(500)));
    expect(err.message).to.equal(
      `invalid MSRP URI "msrp://${'a'.repeat(93)}...": missing transport parameter`,
    );
  });

  it('scans a hostile 100 000-character host in linear time', () => {
    const text = 'msrp://' + 'a.'.repeat(50_000) + ':1/s;tcp';
    const started = process.hrtime.bigint();
    expect(parseUri(text).port).to.equal(1);
    expect(Number(process.hrtime.bigint() - started) / 1e6).to.be.below(200);
  });
});

describe('formatUri', () => {
  for (const text of WIRE_URIS) {
    it(`round-trips ${text}`, () => {
      expect(formatUri(parseUri(text))).to.equal(text);
    });
  }

  it('round-trips an IPv6 URI', () => {
    const text = 'msrp://[2001:db8::1]:2855/s8Fh2kQpZr;tcp';
    expect(formatUri(parseUri(text))).to.equal(text);
  });

  it('round-trips URI parameters', () => {
    const text = 'msrp://h.example:1/s;tcp;foo=Bar;baz';
    expect(formatUri(parseUri(text))).to.equal(text);
  });

  it('writes scheme and transport in lower case', () => {
    expect(formatUri(parseUri('MSRPS://Relay.Example.com:2855/AbC;WS'))).to.equal(
      'msrps://Relay.Example.com:2855/AbC;ws',
    );
  });

  it('formats a URI built by hand', () => {
    const uri: MsrpUri = {
      scheme: 'msrps',
      host: 'relay.example.com',
      port: 2855,
      sessionId: 'Tok3n',
      transport: 'tcp',
      params: [],
    };
    expect(formatUri(uri)).to.equal('msrps://relay.example.com:2855/Tok3n;tcp');
  });
});

describe('uriEquals', () => {
  // [a, b, equal, why]: digest §1.6 rules 1-5, §1.17 item 19, §3.9 items 9 and 11.
  const TABLE: Array<[string, string, boolean, string]> = [
    [
      'MSRP://Bob.Example.net:7394/abc;TCP',
      'msrp://bob.example.net:7394/abc;tcp',
      true,
      'scheme, host and transport compare case-insensitively',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:7394/ABC;tcp',
      false,
      'the session-id compares case-sensitively',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net/abc;tcp',
      false,
      'an explicit port differs from no port',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:7394/abc;ws',
      false,
      ';tcp differs from ;ws',
    ],
    [
      'msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;ws',
      'msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;tcp',
      false,
      'a ;ws session URI differs from the same URI over ;tcp',
    ],
    [
      'msrp://alice@bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:7394/abc;tcp',
      true,
      'userinfo is ignored',
    ],
    [
      'msrps://alice@relay.example.com;tcp',
      'msrps://bob@relay.example.com;tcp',
      true,
      'different userinfo is ignored',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrps://bob.example.net:7394/abc;tcp',
      false,
      'msrp differs from msrps',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:7395/abc;tcp',
      false,
      'different ports differ',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:07394/abc;tcp',
      true,
      'ports compare as numbers',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:7394;tcp',
      false,
      'no session-id differs from a session-id',
    ],
    [
      'msrps://relay.example.com:2855;tcp',
      'msrps://relay.example.com:2855;tcp',
      true,
      'two device URIs without session-id are equal',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp',
      'msrp://bob.example.org:7394/abc;tcp',
      false,
      'different hosts differ',
    ],
    [
      'msrp://%62ob.example.net:7394/abc;tcp',
      'msrp://bob.example.net:7394/abc;tcp',
      true,
      'percent-encoded unreserved characters are decoded',
    ],
    [
      'msrp://bob%2Dx.example.net:7394/abc;tcp',
      'msrp://BOB-X.example.net:7394/abc;tcp',
      true,
      'a decoded unreserved character compares case-insensitively',
    ],
    [
      'msrp://b%2cb.example.net:7394/abc;tcp',
      'msrp://b%2Cb.example.net:7394/abc;tcp',
      true,
      'escapes of reserved characters compare case-insensitively',
    ],
    [
      'msrp://b%2Cb.example.net:7394/abc;tcp',
      'msrp://b,b.example.net:7394/abc;tcp',
      false,
      'escapes of reserved characters are not decoded',
    ],
    [
      'msrp://bob.example.net:7394/abc;tcp;foo=1',
      'msrp://bob.example.net:7394/abc;tcp;bar',
      true,
      'other URI parameters are ignored',
    ],
    [
      'msrp://[2001:db8::1]:2855/abc;tcp',
      'msrp://[2001:DB8:0:0:0:0:0:1]:2855/abc;tcp',
      true,
      'IPv6 literals compare as addresses',
    ],
    [
      'msrp://[2001:db8::1]:2855/abc;tcp',
      'msrp://[2001:db8::2]:2855/abc;tcp',
      false,
      'different IPv6 addresses differ',
    ],
    [
      'msrp://[::ffff:192.0.2.1]:2855/abc;tcp',
      'msrp://[::ffff:c000:201]:2855/abc;tcp',
      true,
      'an embedded IPv4 part equals its hex groups',
    ],
    [
      'msrp://192.0.2.1:2855/abc;tcp',
      'msrp://192.0.2.1:2855/abc;tcp',
      true,
      'equal IPv4 addresses are equal',
    ],
    [
      'msrp://192.0.2.1:2855/abc;tcp',
      'msrp://192.0.2.2:2855/abc;tcp',
      false,
      'different IPv4 addresses differ',
    ],
    [
      'msrps://relay.example.com:2855/Rk9sT1x4ZbQ;tcp',
      'msrps://relay.example.com:2855/Rk9sT1x4ZbQ;tcp',
      true,
      'a Use-Path token URI equals itself',
    ],
    [
      'msrps://a.invalid/s1;ws',
      'msrps://A.INVALID/s1;WS',
      true,
      'port-less .invalid ;ws URIs compare case-insensitively on host and transport',
    ],
    [
      'msrps://a.invalid/s1;ws',
      'msrps://a.invalid:2855/s1;ws',
      false,
      'a port-less ;ws URI differs from one with a port',
    ],
  ];
  for (const [a, b, equal, why] of TABLE) {
    it(`${equal ? 'matches' : 'tells apart'} ${a} and ${b}: ${why}`, () => {
      const ua = parseUri(a);
      const ub = parseUri(b);
      expect(uriEquals(ua, ub)).to.equal(equal);
      expect(uriEquals(ub, ua)).to.equal(equal);
      expect(uriKey(ua) === uriKey(ub)).to.equal(equal);
    });
  }
});

describe('uriKey', () => {
  it('builds the normalised key of a session URI', () => {
    expect(uriKey(parseUri('MSRPS://alice@Relay.Example.com:2855/Tok3n;TCP;x=y'))).to.equal(
      'msrps://relay.example.com:2855/Tok3n;tcp',
    );
  });

  it('writes IPv6 hosts as eight uncompressed groups', () => {
    expect(uriKey(parseUri('msrp://[2001:DB8::1]:1;tcp'))).to.equal('msrp://[2001:db8:0:0:0:0:0:1]:1;tcp');
  });

  it('serves as a Map key for equal URIs', () => {
    const map = new Map<string, number>();
    map.set(uriKey(parseUri('msrp://bob.example.net:7394/abc;tcp')), 1);
    expect(map.get(uriKey(parseUri('MSRP://user@BOB.example.net:7394/abc;TCP')))).to.equal(1);
  });
});

describe('parsePath', () => {
  it('parses a single-URI path', () => {
    const path = parsePath('msrp://bob.example.net:7394/s8Fh2kQpZr;tcp');
    expect(path.map(formatUri)).to.deep.equal(['msrp://bob.example.net:7394/s8Fh2kQpZr;tcp']);
  });

  it('parses a two-URI path in order', () => {
    const path = parsePath(WIRE_PATHS[0]!);
    expect(path).to.have.length(2);
    expect(path[0]!.host).to.equal('relay.example.com');
    expect(path[1]!.host).to.equal('bob.example.net');
  });

  it('tolerates runs of spaces and tabs and surrounding white space', () => {
    const path = parsePath(' \tmsrp://a.example:1/x;tcp  \t msrp://b.example:2/y;tcp ');
    expect(path.map(formatUri)).to.deep.equal(['msrp://a.example:1/x;tcp', 'msrp://b.example:2/y;tcp']);
  });

  it('rejects an empty value with MSRP_ERR_BAD_URI and status 400', () => {
    const err = catchError(() => parsePath(''));
    expect(err.code).to.equal(ErrorCodes.BAD_URI);
    expect(err.statusCode).to.equal(400);
  });

  it('rejects a value of only white space', () => {
    expect(catchError(() => parsePath('   ')).code).to.equal(ErrorCodes.BAD_URI);
  });

  it('rejects a path when any URI in it is bad', () => {
    const err = catchError(() => parsePath('msrp://a.example:1/x;tcp msrp://b.example:2/y'));
    expect(err.code).to.equal(ErrorCodes.BAD_URI);
    expect(err.statusCode).to.equal(400);
  });

  it('passes requirePort on to every URI', () => {
    const err = catchError(() =>
      parsePath('msrp://a.example:1/x;tcp msrp://b.example/y;tcp', { requirePort: true }),
    );
    expect(err.code).to.equal(ErrorCodes.BAD_URI);
  });

  it('accepts the port-less AUTH To-Path without requirePort', () => {
    expect(parsePath('msrps://alice@relay.example.com;tcp')[0]!.port).to.equal(undefined);
  });

  it('accepts a From-Path ending in a port-less ;ws URI with requirePort (RFC 7977)', () => {
    const path = parsePath('msrps://relay.example.com:2855/Tj5bN8vQ2r;tcp msrps://x1y2.invalid/Wc7e;ws', {
      requirePort: true,
    });
    expect(path).to.have.length(2);
  });
});

describe('formatPath', () => {
  for (const value of WIRE_PATHS) {
    it(`round-trips ${value}`, () => {
      expect(formatPath(parsePath(value))).to.equal(value);
    });
  }

  it('joins URIs with single spaces after tolerant parsing', () => {
    expect(formatPath(parsePath('msrp://a.example:1/x;tcp \t  msrp://b.example:2/y;tcp'))).to.equal(
      'msrp://a.example:1/x;tcp msrp://b.example:2/y;tcp',
    );
  });

  it('formats an empty list as an empty string', () => {
    expect(formatPath([])).to.equal('');
  });
});
