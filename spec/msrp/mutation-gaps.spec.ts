/**
 * Boundaries of the wire layer that mutation testing found unpinned: a body of exactly the parser's limit,
 * an end-line look-alike longer than the transaction's own, and a range-end one past the total.
 */
import { expect } from 'chai';
import { ErrorCodes, MsrpError } from '../../lib/errors.js';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { parseByteRange } from '../../lib/msrp/headers.js';
import { serializeRequest } from '../../lib/msrp/serializer.js';
import { wireFixture } from '../helpers/fixtures.js';

const CRLF = '\r\n';
const TO = 'msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
const FROM = 'msrp://alice.example.org:7655/a1B2c3D4e5;tcp';

function lines(...ls: string[]): Buffer {
  return Buffer.from(ls.join(CRLF) + CRLF, 'latin1');
}

describe('wire-layer boundaries found by mutation testing', () => {
  describe('MsrpParser body limits are inclusive', () => {
    it('passes a non-SEND body of exactly maxOtherBodyBytes octets whole', () => {
      const report = serializeRequest({
        method: 'REPORT',
        toPath: TO,
        fromPath: FROM,
        body: Buffer.alloc(1000, 0x41),
      });
      const { frames, errors } = parseFrames(report, { maxOtherBodyBytes: 1000 });
      expect(errors.map((e) => e.error.code)).to.deep.equal([]);
      expect(frames.map((f) => [f.kind, f.body?.length, f.flag])).to.deep.equal([['request', 1000, '$']]);
    });

    it('passes a SEND chunk of exactly maxChunkBytes octets and refuses one octet more with 413', () => {
      const send = (n: number): Buffer =>
        serializeRequest({ method: 'SEND', toPath: TO, fromPath: FROM, body: Buffer.alloc(n, 0x42) });
      const exact = parseFrames(send(4096), { maxChunkBytes: 4096 });
      expect(exact.errors.map((e) => e.error.code)).to.deep.equal([]);
      expect(exact.frames.map((f) => f.body?.length)).to.deep.equal([4096]);
      const over = parseFrames(send(4097), { maxChunkBytes: 4096 });
      expect(over.errors.map((e) => [e.error.code, e.error.statusCode])).to.deep.equal([
        [ErrorCodes.BODY_TOO_LARGE, 413],
      ]);
    });
  });

  describe('MsrpParser bodiless end-lines match the transaction id exactly (digest §1.4)', () => {
    it('does not end a frame at `-------<tid>XY$`, whose id only begins with the transaction id', () => {
      const { frames, errors } = parseFrames(
        Buffer.concat([
          lines(
            'MSRP abcd1234 SEND',
            `To-Path: ${TO}`,
            `From-Path: ${FROM}`,
            '-------abcd1234XY$',
            '-------abcd1234$',
          ),
          wireFixture('e1.7'),
        ]),
      );
      // The look-alike is a malformed header line: the frame is refused at its real end-line, and the
      // next frame parses as usual (no fatal error from reading an end-line as a start line).
      expect(errors.map((e) => [e.error.code, e.error.fatal, e.context?.transactionId])).to.deep.equal([
        [ErrorCodes.BAD_HEADER, false, 'abcd1234'],
      ]);
      expect(frames.map((f) => f.transactionId)).to.deep.equal([
        parseFrames(wireFixture('e1.7')).frames[0]!.transactionId,
      ]);
    });
  });

  describe('parseByteRange', () => {
    for (const value of ['1-11/10', '10-11/10']) {
      it(`rejects ${value} (a range-end one past the total) with MSRP_ERR_BAD_HEADER_VALUE and status 400`, () => {
        let caught: unknown;
        try {
          parseByteRange(value);
        } catch (err) {
          caught = err;
        }
        expect(caught).to.be.instanceOf(MsrpError);
        expect([(caught as MsrpError).code, (caught as MsrpError).statusCode]).to.deep.equal([
          ErrorCodes.BAD_HEADER_VALUE,
          400,
        ]);
      });
    }

    it('accepts a range-end equal to the total', () => {
      expect(parseByteRange('10-10/10')).to.deep.equal({ start: 10, end: 10, total: 10 });
    });
  });
});
