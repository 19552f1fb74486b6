import { expect } from 'chai';
import {
  bytesEqualIgnoringAsciiCase,
  equalsIgnoringAsciiCase,
  startsWithIgnoringAsciiCase,
} from '../../lib/msrp/ascii.js';

describe('ASCII case-insensitive comparison', () => {
  it('folds ASCII letters only', () => {
    expect(equalsIgnoringAsciiCase('Content-Type', 'content-type')).to.equal(true);
    expect(equalsIgnoringAsciiCase('MSRPS', 'msrps')).to.equal(true);
    expect(equalsIgnoringAsciiCase('Content-Type', 'content-typ')).to.equal(false);
    expect(equalsIgnoringAsciiCase('a-b', 'a_b')).to.equal(false);
    // '@' (0x40) and '[' (0x5b) sit next to the letters and must not fold onto '`' and '{'.
    expect(equalsIgnoringAsciiCase('@[', '`{')).to.equal(false);
    // Non-ASCII letters are not tokens: the Kelvin sign is not "k", and "É" is not "é".
    expect(equalsIgnoringAsciiCase('\u212aey', 'key')).to.equal(false);
    expect(equalsIgnoringAsciiCase('\u00c9', '\u00e9')).to.equal(false);
  });

  it('agrees with toLowerCase on every pair of printable ASCII strings it is given', () => {
    const chars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
    for (const a of chars) {
      for (const b of chars) {
        expect(equalsIgnoringAsciiCase(a + 'x', b + 'X'), `${a} ${b}`).to.equal(
          a.toLowerCase() === b.toLowerCase(),
        );
      }
    }
  });

  it('matches a prefix case-insensitively', () => {
    expect(startsWithIgnoringAsciiCase('CONTENT-Disposition', 'content-')).to.equal(true);
    expect(startsWithIgnoringAsciiCase('Content', 'content-')).to.equal(false);
    expect(startsWithIgnoringAsciiCase('Contents-x', 'content-')).to.equal(false);
  });

  it('compares octets of a buffer with a string case-insensitively', () => {
    const buf = Buffer.from('x.MESSAGE-id: y');
    expect(bytesEqualIgnoringAsciiCase(buf, 2, 12, 'Message-ID')).to.equal(true);
    expect(bytesEqualIgnoringAsciiCase(buf, 2, 11, 'Message-ID')).to.equal(false);
    expect(bytesEqualIgnoringAsciiCase(buf, 0, 1, 'X')).to.equal(true);
    expect(bytesEqualIgnoringAsciiCase(Buffer.from('@['), 0, 2, '`{')).to.equal(false);
  });
});
