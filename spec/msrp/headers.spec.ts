import { expect } from 'chai';

import { ErrorCodes, MsrpError } from '../../lib/errors.js';
import {
  formatByteRange,
  formatStatus,
  isIdent,
  parseByteRange,
  parseExpires,
  parseFailureReport,
  parseMessageId,
  parseStatus,
  parseSuccessReport,
  type ByteRange,
} from '../../lib/msrp/headers.js';

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

/** Asserts that `fn` throws MSRP_ERR_BAD_HEADER_VALUE with status 400, not fatal. */
function expectBadValue(fn: () => unknown): void {
  const err = catchError(fn);
  expect(err.code).to.equal(ErrorCodes.BAD_HEADER_VALUE);
  expect(err.statusCode).to.equal(400);
  expect(err.fatal).to.equal(false);
}

describe('parseByteRange', () => {
  const GOOD: Array<[string, ByteRange, string]> = [
    ['1-0/0', { start: 1, end: 0, total: 0 }, 'the empty message'],
    ['1-*/*', { start: 1, end: '*', total: '*' }, 'unknown end and total'],
    ['5-*/10', { start: 5, end: '*', total: 10 }, 'an interruptible chunk of a known total'],
    ['1-11/11', { start: 1, end: 11, total: 11 }, 'a whole message (E1.1)'],
    ['1-*/20', { start: 1, end: '*', total: 20 }, 'a first chunk with unknown end (E1.4)'],
    ['11-20/20', { start: 11, end: 20, total: 20 }, 'a last chunk (E1.4)'],
    ['11-*/20', { start: 11, end: '*', total: 20 }, 'an aborted chunk (E1.5)'],
    ['1-45/45', { start: 1, end: 45, total: 45 }, 'the look-alike body of E1.6'],
    ['4097-8192/10000', { start: 4097, end: 8192, total: 10000 }, 'a middle piece of a re-chunked message'],
    ['1-5/*', { start: 1, end: 5, total: '*' }, 'a known end with unknown total'],
    ['7-7/7', { start: 7, end: 7, total: 7 }, 'a one-octet last chunk'],
    ['10-10/*', { start: 10, end: 10, total: '*' }, 'a one-octet chunk of unknown total'],
    ['1-*/0', { start: 1, end: '*', total: 0 }, 'the empty message with unknown end'],
    ['20-*/20', { start: 20, end: '*', total: 20 }, 'an interruptible chunk starting at the last octet'],
    ['01-05/010', { start: 1, end: 5, total: 10 }, 'numbers with leading zeros'],
    [
      '1-9007199254740991/9007199254740991',
      { start: 1, end: Number.MAX_SAFE_INTEGER, total: Number.MAX_SAFE_INTEGER },
      'numbers up to Number.MAX_SAFE_INTEGER',
    ],
  ];
  for (const [value, range, what] of GOOD) {
    it(`parses ${value} (${what})`, () => {
      expect(parseByteRange(value)).to.deep.equal(range);
    });
  }

  const BAD: Array<[string, string]> = [
    ['0-5/5', 'a range-start of 0'],
    ['6-5/10', 'a range-end one before range-start when it is not the empty message'],
    ['1-0/5', 'an empty first chunk of a non-empty message'],
    ['1-0/*', 'an empty range of unknown total'],
    ['7-3/10', 'a range-end well before range-start'],
    ['1-20/10', 'a range-end beyond total'],
    ['11-*/10', 'a range-start beyond total'],
    ['2-*/0', 'a range-start beyond an empty total'],
    ['0-0/0', 'the empty range starting at 0'],
    ['', 'an empty value'],
    ['1-5', 'a missing total'],
    ['1/5', 'a missing range-end'],
    ['-5/5', 'a missing range-start'],
    ['1-/5', 'an empty range-end'],
    ['1-5/', 'an empty total'],
    ['*-5/5', 'a star range-start'],
    ['1-**/5', 'a double star'],
    ['a-5/5', 'letters'],
    ['1-5/5x', 'trailing letters'],
    ['+1-5/5', 'a leading plus'],
    ['1-+5/5', 'a plus before range-end'],
    [' 1-5/5', 'a leading space'],
    ['1-5/5 ', 'a trailing space'],
    ['1 -5/5', 'a space before the dash'],
    ['1-5 /5', 'a space before the slash'],
    ['1.5-5/5', 'a decimal point'],
    ['1e3-1000/1000', 'an exponent'],
    ['1-5/5/5', 'two slashes'],
    ['1-9007199254740992/9007199254740992', 'numbers above Number.MAX_SAFE_INTEGER'],
    ['1-*/99999999999999999999', 'a 20-digit total'],
    ['１-5/5', 'non-ASCII digits'],
  ];
  for (const [value, what] of BAD) {
    it(`rejects ${JSON.stringify(value)} (${what}) with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
      expectBadValue(() => parseByteRange(value));
    });
  }

  it('names the header and the reason in the error message', () => {
    expect(catchError(() => parseByteRange('1-20/10')).message).to.equal(
      'invalid Byte-Range value "1-20/10": range-end beyond total',
    );
  });
});

describe('formatByteRange', () => {
  it('formats a range with known numbers', () => {
    expect(formatByteRange({ start: 8193, end: 10000, total: 10000 })).to.equal('8193-10000/10000');
  });

  it('formats stars', () => {
    expect(formatByteRange({ start: 1, end: '*', total: '*' })).to.equal('1-*/*');
  });

  it('formats the empty message', () => {
    expect(formatByteRange({ start: 1, end: 0, total: 0 })).to.equal('1-0/0');
  });

  for (const value of ['1-0/0', '1-*/*', '5-*/10', '1-11/11', '11-20/20', '4097-8192/10000']) {
    it(`round-trips ${value}`, () => {
      expect(formatByteRange(parseByteRange(value))).to.equal(value);
    });
  }
});

describe('parseStatus', () => {
  it('parses a success status with a comment', () => {
    expect(parseStatus('000 200 OK')).to.deep.equal({ namespace: '000', code: 200, comment: 'OK' });
  });

  it('parses a failure status with a multi-word comment', () => {
    expect(parseStatus('000 408 Request Timeout')).to.deep.equal({
      namespace: '000',
      code: 408,
      comment: 'Request Timeout',
    });
  });

  it('parses a status without a comment', () => {
    expect(parseStatus('000 413')).to.deep.equal({ namespace: '000', code: 413, comment: '' });
  });

  it('parses an empty comment after the space', () => {
    expect(parseStatus('000 200 ')).to.deep.equal({ namespace: '000', code: 200, comment: '' });
  });

  it('keeps an extension namespace', () => {
    expect(parseStatus('123 456 ext')).to.deep.equal({ namespace: '123', code: 456, comment: 'ext' });
  });

  it('keeps UTF-8 octets of the comment as latin1 characters', () => {
    const comment = Buffer.from('déjà vu', 'utf8').toString('latin1');
    expect(parseStatus(`000 200 ${comment}`).comment).to.equal(comment);
  });

  it('accepts a tab inside the comment', () => {
    expect(parseStatus('000 200 a\tb').comment).to.equal('a\tb');
  });

  const BAD: Array<[string, string]> = [
    ['', 'an empty value'],
    ['200', 'a code without namespace'],
    ['000 20', 'a two-digit code'],
    ['00 200', 'a two-digit namespace'],
    ['000 2000', 'a four-digit code'],
    ['000  200', 'two spaces'],
    ['000-200', 'a dash instead of a space'],
    ['abc 200 OK', 'a non-digit namespace'],
    ['000 2x0 OK', 'a non-digit code'],
    ['000 200\tOK', 'a tab before the comment'],
    ['000 200 O\rK', 'a CR in the comment'],
    ['000 200 O\x7fK', 'a DEL in the comment'],
    [' 000 200', 'a leading space'],
  ];
  for (const [value, what] of BAD) {
    it(`rejects ${JSON.stringify(value)} (${what}) with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
      expectBadValue(() => parseStatus(value));
    });
  }
});

describe('formatStatus', () => {
  it('formats a status with a comment', () => {
    expect(formatStatus({ namespace: '000', code: 408, comment: 'Request Timeout' })).to.equal(
      '000 408 Request Timeout',
    );
  });

  it('leaves out the space when the comment is empty', () => {
    expect(formatStatus({ namespace: '000', code: 200, comment: '' })).to.equal('000 200');
  });

  it('pads the code to three digits', () => {
    expect(formatStatus({ namespace: '000', code: 7, comment: '' })).to.equal('000 007');
  });

  for (const value of [
    '000 200 OK',
    '000 408 Request Timeout',
    '000 481 Session does not exist',
    '000 413',
  ]) {
    it(`round-trips ${value}`, () => {
      expect(formatStatus(parseStatus(value))).to.equal(value);
    });
  }
});

describe('parseSuccessReport', () => {
  it("returns 'no' when the header is absent", () => {
    expect(parseSuccessReport(undefined)).to.equal('no');
  });

  it("parses 'yes'", () => {
    expect(parseSuccessReport('yes')).to.equal('yes');
  });

  it("parses 'no'", () => {
    expect(parseSuccessReport('no')).to.equal('no');
  });

  it('accepts any letter case and returns lower case', () => {
    expect(parseSuccessReport('YeS')).to.equal('yes');
    expect(parseSuccessReport('NO')).to.equal('no');
  });

  for (const value of ['partial', '', 'y', 'true', ' yes', 'yes ', 'yess']) {
    it(`rejects ${JSON.stringify(value)} with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
      expectBadValue(() => parseSuccessReport(value));
    });
  }
});

describe('parseFailureReport', () => {
  it("returns 'yes' when the header is absent", () => {
    expect(parseFailureReport(undefined)).to.equal('yes');
  });

  it("parses 'yes', 'no' and 'partial'", () => {
    expect(parseFailureReport('yes')).to.equal('yes');
    expect(parseFailureReport('no')).to.equal('no');
    expect(parseFailureReport('partial')).to.equal('partial');
  });

  it('accepts any letter case and returns lower case', () => {
    expect(parseFailureReport('PARTIAL')).to.equal('partial');
    expect(parseFailureReport('No')).to.equal('no');
  });

  for (const value of ['', 'maybe', 'partially', ' no', 'no ', 'false']) {
    it(`rejects ${JSON.stringify(value)} with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
      expectBadValue(() => parseFailureReport(value));
    });
  }
});

describe('parseExpires', () => {
  it('parses whole seconds', () => {
    expect(parseExpires('1800')).to.equal(1800);
  });

  it('parses 0', () => {
    expect(parseExpires('0')).to.equal(0);
  });

  it('parses leading zeros', () => {
    expect(parseExpires('0600')).to.equal(600);
  });

  it('parses Number.MAX_SAFE_INTEGER', () => {
    expect(parseExpires('9007199254740991')).to.equal(Number.MAX_SAFE_INTEGER);
  });

  for (const value of ['', '-1', '+60', '1.5', '60s', ' 60', '60 ', '9007199254740992', '1'.repeat(40)]) {
    it(`rejects ${JSON.stringify(value)} with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
      expectBadValue(() => parseExpires(value));
    });
  }

  it('names the header given in the error message', () => {
    expect(catchError(() => parseExpires('x', 'Min-Expires')).message).to.equal(
      'invalid Min-Expires value "x": expected whole seconds (digits only)',
    );
  });
});

describe('isIdent', () => {
  it('accepts 4 characters', () => {
    expect(isIdent('a1B2')).to.equal(true);
  });

  it('accepts 32 characters', () => {
    expect(isIdent('A'.repeat(32))).to.equal(true);
  });

  it('rejects 3 characters', () => {
    expect(isIdent('a1B')).to.equal(false);
  });

  it('rejects 33 characters', () => {
    expect(isIdent('A'.repeat(33))).to.equal(false);
  });

  it('rejects the empty string', () => {
    expect(isIdent('')).to.equal(false);
  });

  it('accepts . - + % = after the first character', () => {
    expect(isIdent('a.-+%=')).to.equal(true);
  });

  for (const first of ['.', '-', '+', '%', '=']) {
    it(`rejects ${first} as the first character`, () => {
      expect(isIdent(`${first}abc`)).to.equal(false);
    });
  }

  for (const bad of ['ab_cd', 'ab cd', 'ab/cd', 'ab:cd', 'ab$cd', 'abcé', 'ab\r\ncd']) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      expect(isIdent(bad)).to.equal(false);
    });
  }

  it('accepts the transaction ids and Message-IDs of the wire examples', () => {
    for (const id of ['t9Kx2mQ4', 'm7Yq20aZ', 'Big0000Msg', 'Empty0001', 'Mx41Qa9Zr', 'x0Au7Kw1']) {
      expect(isIdent(id), id).to.equal(true);
    }
  });
});

describe('parseMessageId', () => {
  it('returns a valid Message-ID unchanged', () => {
    expect(parseMessageId('m7Yq20aZ')).to.equal('m7Yq20aZ');
  });

  for (const value of ['abc', 'A'.repeat(33), '-abc', 'ab cd', '']) {
    it(`rejects ${JSON.stringify(value)} with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
      expectBadValue(() => parseMessageId(value));
    });
  }
});
