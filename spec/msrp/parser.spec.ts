import { expect } from 'chai';
import fc from 'fast-check';
import { ErrorCodes, MsrpError } from '../../lib/errors.js';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { getHeader, type Frame, type FrameHead } from '../../lib/msrp/message.js';
import { MsrpParser, type ErrorContext, type ParserHandler } from '../../lib/msrp/parser.js';
import { serializeFrame, serializeRequest } from '../../lib/msrp/serializer.js';
import { randomSplit, seededRandom, wireFixture, wireFixtures } from '../helpers/fixtures.js';

const CRLF = '\r\n';
const TO = 'msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
const FROM = 'msrp://alice.example.org:7655/a1B2c3D4e5;tcp';

/** Serialises frames back to bytes: the mirror of the parser. */
function mirror(frames: Frame[]): Buffer {
  return Buffer.concat(frames.map(serializeFrame));
}

/** Frames as comparable plain values. */
function summary(frames: Frame[]): unknown[] {
  return frames.map((f) => ({
    kind: f.kind,
    tid: f.transactionId,
    headers: f.headers,
    body: f.body === null ? null : f.body.toString('hex'),
    flag: f.flag,
  }));
}

function lines(...ls: string[]): Buffer {
  return Buffer.from(ls.join(CRLF) + CRLF, 'latin1');
}

/** Records the parser's event stream. */
class Recorder implements ParserHandler {
  events: string[] = [];
  errors: Array<{ err: MsrpError; ctx: ErrorContext | null }> = [];
  onHead(head: FrameHead): void {
    this.events.push(`head:${head.transactionId}`);
  }
  onBody(piece: Buffer): void {
    this.events.push(`body:${piece.length}`);
  }
  onEnd(flag: string): void {
    this.events.push(`end:${flag}`);
  }
  onError(err: MsrpError, ctx: ErrorContext | null): void {
    this.errors.push({ err, ctx });
    this.events.push(`error:${err.code}`);
  }
}

describe('MsrpParser', () => {
  describe('wire examples of the digest', () => {
    for (const [name, bytes] of wireFixtures()) {
      it(`parses ${name} without errors and re-serialises it byte-exactly`, () => {
        const { frames, errors } = parseFrames(bytes);
        expect(errors).to.deep.equal([]);
        expect(frames.length).to.be.greaterThan(0);
        expect(mirror(frames).equals(bytes)).to.equal(true);
      });

      it(`parses ${name} the same at every split point`, () => {
        const whole = summary(parseFrames(bytes).frames);
        for (let i = 1; i < bytes.length; i++) {
          const split = parseFrames([bytes.subarray(0, i), bytes.subarray(i)]);
          expect(split.errors, `split at ${i}`).to.deep.equal([]);
          expect(summary(split.frames), `split at ${i}`).to.deep.equal(whole);
        }
      });

      it(`parses ${name} the same byte by byte and in random pieces`, () => {
        const whole = summary(parseFrames(bytes).frames);
        const bytewise = [...bytes].map((b) => Buffer.from([b]));
        expect(summary(parseFrames(bytewise).frames)).to.deep.equal(whole);
        const rand = seededRandom(name.length * 7919);
        for (let round = 0; round < 20; round++) {
          expect(summary(parseFrames(randomSplit(bytes, rand, 17)).frames)).to.deep.equal(whole);
        }
      });
    }

    it('yields the 11-octet body and every header of E1.1', () => {
      const [f] = parseFrames(wireFixture('e1.1')).frames;
      expect(f!.kind).to.equal('request');
      expect(f!.kind === 'request' && f!.method).to.equal('SEND');
      expect(f!.transactionId).to.equal('t9Kx2mQ4');
      expect(f!.body!.toString()).to.equal('Hi there!!!');
      expect(f!.flag).to.equal('$');
      expect(f!.headers.map((h) => h[0])).to.deep.equal([
        'To-Path',
        'From-Path',
        'Message-ID',
        'Success-Report',
        'Byte-Range',
        'Content-Type',
      ]);
    });

    it('yields three interleaved chunks for E1.4 with flags +, $, $', () => {
      const { frames } = parseFrames(wireFixture('e1.4'));
      expect(
        frames.map((f) => [getHeader(f.headers, 'message-id'), f.body!.toString(), f.flag]),
      ).to.deep.equal([
        ['Big0000Msg', '0123456789', '+'],
        ['Small01Msg', 'ok', '$'],
        ['Big0000Msg', 'ABCDEFGHIJ', '$'],
      ]);
    });

    it('ends E1.5 with the abort flag #', () => {
      const [f] = parseFrames(wireFixture('e1.5')).frames;
      expect(f!.flag).to.equal('#');
      expect(f!.body!.toString()).to.equal('ABC');
    });

    it('treats end-line look-alikes in E1.6 as body octets (45-octet body)', () => {
      const [f] = parseFrames(wireFixture('e1.6')).frames;
      expect(f!.body!.length).to.equal(45);
      expect(f!.body!.toString()).to.equal('line1\r\n-------Ab12Cd34x\r\n-------Ab12Cd3$\r\nend');
    });

    it('gives E1.7 no body and E1.8 an empty body', () => {
      expect(parseFrames(wireFixture('e1.7')).frames[0]!.body).to.equal(null);
      const e18 = parseFrames(wireFixture('e1.8')).frames[0]!;
      expect(e18.hasBody).to.equal(true);
      expect(e18.body!.length).to.equal(0);
    });

    it('parses responses with status code and comment (E1.9)', () => {
      const [f] = parseFrames(wireFixture('e1.9')).frames;
      expect(f!.kind).to.equal('response');
      if (f!.kind !== 'response') return;
      expect(f!.statusCode).to.equal(481);
      expect(f!.comment).to.equal('Session does not exist');
    });
  });

  describe('start lines', () => {
    // What the start line's rest (after the transaction id) makes of a frame: a status and comment, a
    // method, or a start-line error with the frame still skipped to its end-line.
    const cases: Array<[string, string]> = [
      ['200', 'status 200 ""'],
      ['200 ', 'status 200 ""'],
      ['200 OK', 'status 200 "OK"'],
      ['000 odd but three digits', 'status 0 "odd but three digits"'],
      ['481  two  spaces ', 'status 481 " two  spaces "'],
      ['2000', `error:${ErrorCodes.BAD_START_LINE}`],
      ['20x OK', `error:${ErrorCodes.BAD_START_LINE}`],
      ['200\tOK', `error:${ErrorCodes.BAD_START_LINE}`],
      ['200 a\rb', `error:${ErrorCodes.BAD_START_LINE}`],
      ['SEND', 'method SEND'],
      ['NICKNAME', 'method NICKNAME'],
      ['SENDX', 'method SENDX'],
      ['SEN', 'method SEN'],
      ['Send', `error:${ErrorCodes.BAD_START_LINE}`],
      ['SEND ', `error:${ErrorCodes.BAD_START_LINE}`],
    ];
    for (const [rest, want] of cases) {
      it(`reads "MSRP tid ${JSON.stringify(rest).slice(1, -1)}" as ${want}`, () => {
        const wire = lines(
          `MSRP abcd1234 ${rest}`,
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          '-------abcd1234$',
        );
        const { frames, errors } = parseFrames(wire);
        const got =
          errors.length > 0
            ? `error:${errors[0]!.error.code}`
            : frames[0]!.kind === 'response'
              ? `status ${frames[0]!.statusCode} ${JSON.stringify(frames[0]!.comment)}`
              : `method ${frames[0]!.kind === 'request' ? frames[0]!.method : ''}`;
        expect(got).to.equal(want);
      });
    }
  });

  describe('streaming', () => {
    it('ends each frame at its own end-line only, as transaction ids change length from frame to frame', () => {
      // The parser rewrites its end-line needle in place per frame: a body that carries the previous
      // frame's end-line (same id length, then a shorter and a longer id) must not end there.
      const frame = (tid: string, body: string): string =>
        `MSRP ${tid} SEND${CRLF}To-Path: ${TO}${CRLF}From-Path: ${FROM}${CRLF}Content-Type: a/b${CRLF}${CRLF}` +
        `${body}${CRLF}-------${tid}$${CRLF}`;
      const wire = Buffer.from(
        frame('tidAAAA1', 'first') +
          frame('tidBBBB2', `x${CRLF}-------tidAAAA1$${CRLF}y`) +
          frame('tidC', `${CRLF}-------tidBBBB2$${CRLF}`) +
          frame('tidDDDDDDDDDDDDDDDDDDDDDDDDDDD32', `${CRLF}-------tidC$ and ${CRLF}-------tidC`) +
          frame('tidE', 'last'),
        'latin1',
      );
      const rand = seededRandom(4975);
      for (const input of [wire, randomSplit(wire, rand, 7), randomSplit(wire, rand, 1)]) {
        const { frames, errors } = parseFrames(input);
        expect(errors).to.deep.equal([]);
        expect(frames.map((f) => [f.transactionId, f.body!.toString('latin1')])).to.deep.equal([
          ['tidAAAA1', 'first'],
          ['tidBBBB2', `x${CRLF}-------tidAAAA1$${CRLF}y`],
          ['tidC', `${CRLF}-------tidBBBB2$${CRLF}`],
          ['tidDDDDDDDDDDDDDDDDDDDDDDDDDDD32', `${CRLF}-------tidC$ and ${CRLF}-------tidC`],
          ['tidE', 'last'],
        ]);
      }
    });

    it('hands body octets on before the end-line arrives, holding back at most an end-line', () => {
      const rec = new Recorder();
      const parser = new MsrpParser(rec);
      const head = lines(
        'MSRP Tx123456 SEND',
        `To-Path: ${TO}`,
        `From-Path: ${FROM}`,
        'Content-Type: a/b',
        '',
      );
      parser.write(head);
      const piece = Buffer.alloc(65536, 0x61);
      let seen = 0;
      for (let i = 0; i < 16; i++) parser.write(piece);
      for (const e of rec.events) if (e.startsWith('body:')) seen += Number(e.slice(5));
      expect(seen).to.be.at.least(16 * 65536 - ('\r\n-------Tx123456'.length + 2));
      expect(rec.events).to.not.include('end:$');
      parser.write(Buffer.from('\r\n-------Tx123456$\r\n'));
      seen = 0;
      for (const e of rec.events) if (e.startsWith('body:')) seen += Number(e.slice(5));
      expect(seen).to.equal(16 * 65536);
      expect(rec.events.at(-1)).to.equal('end:$');
    });

    it('finds an end-line split across two reads after a large body piece', () => {
      const body = Buffer.alloc(100_000, 0x62);
      const frame = serializeRequest({
        transactionId: 'Split9999',
        method: 'SEND',
        toPath: TO,
        fromPath: FROM,
        body,
      });
      const cut = frame.length - 10; // inside "-------Split9999$\r\n"
      const { frames, errors } = parseFrames([frame.subarray(0, cut), frame.subarray(cut)]);
      expect(errors).to.deep.equal([]);
      expect(frames[0]!.body!.equals(body)).to.equal(true);
    });

    it('accepts blank lines between frames', () => {
      const a = wireFixture('e1.2');
      const { frames, errors } = parseFrames(
        Buffer.concat([Buffer.from('\r\n\r\n'), a, Buffer.from('\r\n'), a]),
      );
      expect(errors).to.deep.equal([]);
      expect(frames.length).to.equal(2);
    });
  });

  describe('round trip (property)', () => {
    const lookAlikes = fc.constantFrom('\r\n', '-------', '\r\n-------', '$\r\n', '#', '+\r\n', '\r', '\n');
    const bodyArb = fc
      .array(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          lookAlikes.map((s) => Buffer.from(s)),
        ),
        { maxLength: 20 },
      )
      .map((parts) => Buffer.concat(parts.map((p) => Buffer.from(p))));

    it('parses what the serializer wrote, at any fragmentation', () => {
      fc.assert(
        fc.property(
          bodyArb,
          fc.constantFrom('+', '$', '#'),
          fc.integer({ min: 1, max: 50 }),
          fc.integer(),
          (body, flag, maxPiece, seed) => {
            const bytes = serializeRequest({
              method: 'SEND',
              toPath: TO,
              fromPath: FROM,
              headers: [['Message-ID', 'abcd1234']],
              contentType: 'application/octet-stream',
              body,
              flag: flag as '+' | '$' | '#',
            });
            const { frames, errors } = parseFrames(randomSplit(bytes, seededRandom(seed), maxPiece));
            expect(errors).to.deep.equal([]);
            expect(frames.length).to.equal(1);
            expect(frames[0]!.body!.equals(body)).to.equal(true);
            expect(frames[0]!.flag).to.equal(flag);
            expect(serializeFrame(frames[0]!).equals(bytes)).to.equal(true);
          },
        ),
        { numRuns: 300, seed: 4975 },
      );
    });

    it('finds the end when the body contains the end-line of a sibling transaction id', () => {
      const body = Buffer.from('x\r\n-------Ab12Cd34$\r\ny', 'latin1');
      const bytes = serializeRequest({
        transactionId: 'Ab12Cd345',
        method: 'SEND',
        toPath: TO,
        fromPath: FROM,
        body,
      });
      const { frames } = parseFrames(bytes);
      expect(frames[0]!.body!.equals(body)).to.equal(true);
    });

    it('never throws on random input and reports only MsrpError', () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              fc.uint8Array({ maxLength: 64 }),
              fc
                .constantFrom('MSRP abcd1234 SEND\r\n', 'To-Path: x\r\n', '\r\n', '-------abcd1234$\r\n')
                .map((s) => Buffer.from(s)),
            ),
            { maxLength: 30 },
          ),
          (parts) => {
            const rec = new Recorder();
            const parser = new MsrpParser(rec);
            for (const p of parts) parser.write(Buffer.from(p));
            for (const e of rec.errors) expect(e.err).to.be.instanceOf(MsrpError);
          },
        ),
        { numRuns: 500, seed: 7 },
      );
    });
  });

  describe('malformed frames', () => {
    const corpus: Array<[string, Buffer, string, number, boolean]> = [
      ['a start line without MSRP', lines('HTTP/1.1 200 OK'), ErrorCodes.BAD_START_LINE, 400, true],
      ['a lower-case protocol name', lines('msrp abcd1234 SEND'), ErrorCodes.BAD_START_LINE, 400, true],
      [
        'a start line with only a transaction id',
        lines('MSRP abcd1234'),
        ErrorCodes.BAD_START_LINE,
        400,
        true,
      ],
      ['a 3-character transaction id', lines('MSRP abc SEND'), ErrorCodes.BAD_TRANSACTION_ID, 400, true],
      [
        'a 33-character transaction id',
        lines(`MSRP ${'a'.repeat(33)} SEND`),
        ErrorCodes.BAD_TRANSACTION_ID,
        400,
        true,
      ],
      [
        'a transaction id starting with "-"',
        lines('MSRP -abc1234 SEND'),
        ErrorCodes.BAD_TRANSACTION_ID,
        400,
        true,
      ],
      [
        'a bare CR inside a header value (a next hop splitting at CR would see another header)',
        lines(
          'MSRP abcd1234 SEND',
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          'Message-ID: m1\rX-Injected: yes',
          '-------abcd1234$',
        ),
        ErrorCodes.BAD_HEADER_VALUE,
        400,
        false,
      ],
      [
        'a lower-case method',
        lines('MSRP abcd1234 send', `To-Path: ${TO}`, `From-Path: ${FROM}`, '-------abcd1234$'),
        ErrorCodes.BAD_START_LINE,
        400,
        false,
      ],
      [
        'From-Path before To-Path',
        lines('MSRP abcd1234 SEND', `From-Path: ${FROM}`, `To-Path: ${TO}`, '-------abcd1234$'),
        ErrorCodes.HEADER_ORDER,
        400,
        false,
      ],
      [
        'Message-ID on line 3',
        lines(
          'MSRP abcd1234 SEND',
          `To-Path: ${TO}`,
          'Message-ID: abcd',
          `From-Path: ${FROM}`,
          '-------abcd1234$',
        ),
        ErrorCodes.HEADER_ORDER,
        400,
        false,
      ],
      [
        'a header after Content-Type',
        lines(
          'MSRP abcd1234 SEND',
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          'Content-Type: text/plain',
          'Message-ID: abcd',
          '',
          'x',
          '-------abcd1234$',
        ),
        ErrorCodes.HEADER_ORDER,
        400,
        false,
      ],
      [
        'a body without Content-Type',
        lines(
          'MSRP abcd1234 SEND',
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          'Message-ID: abcd',
          '',
          'x',
          '-------abcd1234$',
        ),
        ErrorCodes.BAD_BODY,
        400,
        false,
      ],
      [
        'Content-Type on a bodiless request',
        lines(
          'MSRP abcd1234 SEND',
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          'Content-Type: text/plain',
          '-------abcd1234$',
        ),
        ErrorCodes.BAD_BODY,
        400,
        false,
      ],
      [
        'a response with a body',
        lines(
          'MSRP abcd1234 200 OK',
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          'Content-Type: text/plain',
          '',
          'x',
          '-------abcd1234$',
        ),
        ErrorCodes.BAD_BODY,
        400,
        false,
      ],
      [
        'a response ending with +',
        lines('MSRP abcd1234 200 OK', `To-Path: ${TO}`, `From-Path: ${FROM}`, '-------abcd1234+'),
        ErrorCodes.BAD_END_LINE,
        400,
        false,
      ],
      [
        'a request without From-Path',
        lines('MSRP abcd1234 SEND', `To-Path: ${TO}`, '-------abcd1234$'),
        ErrorCodes.MISSING_HEADER,
        400,
        false,
      ],
      [
        'a header line without a colon',
        lines(
          'MSRP abcd1234 SEND',
          `To-Path: ${TO}`,
          `From-Path: ${FROM}`,
          'Garbage line',
          '-------abcd1234$',
        ),
        ErrorCodes.BAD_HEADER,
        400,
        false,
      ],
      [
        'a header line ending in a bare LF',
        Buffer.from(`MSRP abcd1234 SEND\r\nTo-Path: ${TO}\nFrom-Path: ${FROM}\r\n-------abcd1234$\r\n`),
        ErrorCodes.BAD_HEADER,
        400,
        false,
      ],
    ];

    for (const [what, bytes, code, status, fatal] of corpus) {
      it(`maps ${what} to ${code} (${status}${fatal ? ', fatal' : ''})`, () => {
        const rec = new Recorder();
        const parser = new MsrpParser(rec);
        parser.write(bytes);
        expect(rec.errors.length).to.equal(1);
        expect(rec.errors[0]!.err.code).to.equal(code);
        expect(rec.errors[0]!.err.statusCode).to.equal(status);
        expect(rec.errors[0]!.err.fatal).to.equal(fatal);
        expect(parser.failed).to.equal(fatal);
      });
    }

    it('ends a refused frame at an end-line that closes a junk header line (Kamailio 5.6.3 423)', () => {
      // Kamailio wrote 17 octets of stale memory, then the end-line without a CRLF before it.
      const junk = Buffer.from([0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0, 0, 0x80, 0x80, 0x80, 0xed]);
      const bytes = Buffer.concat([
        Buffer.from(`MSRP VNRIfgvEuT 423 Interval Out Of Bounds\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\n`),
        junk,
        Buffer.from('-------VNRIfgvEuT$\r\n'),
        lines('MSRP next1234 200 OK', `To-Path: ${TO}`, `From-Path: ${FROM}`, '-------next1234$'),
      ]);
      for (const pieces of [[bytes], randomSplit(bytes, seededRandom(7), 9)]) {
        const rec = new Recorder();
        const parser = new MsrpParser(rec);
        for (const p of pieces) parser.write(p);
        expect(rec.events).to.deep.equal([`error:${ErrorCodes.BAD_HEADER}`, 'head:next1234', 'end:$']);
        expect(parser.failed).to.equal(false);
      }
      // The same junk in a line of header shape (review).
      const shaped = new Recorder();
      const shapedParser = new MsrpParser(shaped);
      shapedParser.write(
        Buffer.concat([
          Buffer.from(
            `MSRP abcd1234 AUTH\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\nX: junk-------abcd1234$\r\n`,
          ),
          lines('MSRP next1234 200 OK', `To-Path: ${TO}`, `From-Path: ${FROM}`, '-------next1234$'),
        ]),
      );
      expect(shaped.events).to.deep.equal([`error:${ErrorCodes.BAD_HEADER}`, 'head:next1234', 'end:$']);
      // A junk line ending in another transaction's end-line does not end the frame.
      const rec = new Recorder();
      new MsrpParser(rec).write(
        Buffer.concat([
          lines('MSRP abcd1234 SEND', `To-Path: ${TO}`, `From-Path: ${FROM}`, 'junk-------other99$'),
        ]),
      );
      expect(rec.events).to.deep.equal([]);
    });

    it('recovers after a non-fatal error and parses the next frame', () => {
      const bad = lines(
        'MSRP abcd1234 SEND',
        `From-Path: ${FROM}`,
        `To-Path: ${TO}`,
        'Content-Type: text/plain',
        '',
        'body',
        '-------abcd1234$',
      );
      const { frames, errors } = parseFrames(Buffer.concat([bad, wireFixture('e1.1')]));
      expect(errors.map((e) => e.error.code)).to.deep.equal([ErrorCodes.HEADER_ORDER]);
      expect(errors[0]!.context!.transactionId).to.equal('abcd1234');
      expect(frames.map((f) => f.transactionId)).to.deep.equal(['t9Kx2mQ4']);
    });

    it("gives no transaction context to a fatal error before the next frame's start line", () => {
      // The previous frame's id, paths and Message-ID must not be answered again (or reported failed)
      // for an error in a frame whose start line never came whole.
      const oneSend = wireFixture('e1.1');
      const cases: Array<[string, Buffer]> = [
        ['bare LF', Buffer.from('MSRP newTID22 SEND\n', 'latin1')],
        ['no line end within the head limit', Buffer.alloc(17 * 1024, 0x41)],
      ];
      for (const [name, next] of cases) {
        const rec = new Recorder();
        const parser = new MsrpParser(rec);
        parser.write(oneSend);
        parser.write(next);
        expect(
          rec.errors.map((e) => [e.err.fatal, e.ctx]),
          name,
        ).to.deep.equal([[true, null]]);
      }
    });

    it('ignores all input after a fatal error', () => {
      const rec = new Recorder();
      const parser = new MsrpParser(rec);
      parser.write(lines('GARBAGE'));
      parser.write(wireFixture('e1.1'));
      expect(rec.events).to.deep.equal([`error:${ErrorCodes.BAD_START_LINE}`]);
    });
  });

  describe('limits', () => {
    it('emits a fatal error if the start line and headers exceed maxHeadBytes', () => {
      const rec = new Recorder();
      const parser = new MsrpParser(rec, { maxHeadBytes: 200 });
      parser.write(
        lines('MSRP abcd1234 SEND', `To-Path: ${TO}`, `From-Path: ${FROM}`, `X-Pad: ${'p'.repeat(150)}`),
      );
      expect(rec.errors.map((e) => [e.err.code, e.err.fatal])).to.deep.equal([
        [ErrorCodes.HEAD_TOO_LARGE, true],
      ]);
    });

    it('emits a fatal error if one unterminated line exceeds maxHeadBytes', () => {
      const rec = new Recorder();
      const parser = new MsrpParser(rec, { maxHeadBytes: 1024 });
      parser.write(Buffer.from('MSRP '));
      for (let i = 0; i < 10; i++) parser.write(Buffer.alloc(200, 0x41));
      expect(rec.errors.map((e) => [e.err.code, e.err.fatal])).to.deep.equal([
        [ErrorCodes.HEAD_TOO_LARGE, true],
      ]);
    });

    it('reads long header lines that arrive an octet at a time, and still stops at maxHeadBytes', () => {
      // The partial line grows by doubling (it was copied whole at every write).
      const long = `msrp://bob.example.net:7394/${'s'.repeat(5000)};tcp`;
      const bytes = lines('MSRP abcd1234 SEND', `To-Path: ${long}`, `From-Path: ${FROM}`, '-------abcd1234$');
      const bytewise = parseFrames([...bytes].map((b) => Buffer.from([b])));
      expect(summary(bytewise.frames)).to.deep.equal(summary(parseFrames(bytes).frames));
      expect(bytewise.frames[0]!.headers[0]).to.deep.equal(['To-Path', long]);
      const rec = new Recorder();
      const parser = new MsrpParser(rec, { maxHeadBytes: 4096 });
      for (const b of Buffer.from(`MSRP abcd1234 SEND\r\nTo-Path: ${long}`)) parser.write(Buffer.from([b]));
      expect(rec.errors.map((e) => [e.err.code, e.err.fatal])).to.deep.equal([
        [ErrorCodes.HEAD_TOO_LARGE, true],
      ]);
    });

    it('emits an error if a frame has more than maxHeaders header lines', () => {
      const extra = Array.from({ length: 5 }, (_, i) => `X-H${i}: v`);
      const { frames, errors } = parseFrames(
        Buffer.concat([
          lines('MSRP abcd1234 SEND', `To-Path: ${TO}`, `From-Path: ${FROM}`, ...extra, '-------abcd1234$'),
          wireFixture('e1.7'),
        ]),
        { maxHeaders: 6 },
      );
      expect(errors.map((e) => e.error.code)).to.deep.equal([ErrorCodes.TOO_MANY_HEADERS]);
      expect(frames.length).to.equal(1);
    });

    it('answers 413 when a non-SEND body exceeds maxOtherBodyBytes and keeps parsing', () => {
      const report = serializeRequest({
        method: 'REPORT',
        toPath: TO,
        fromPath: FROM,
        body: Buffer.alloc(2000, 0x41),
      });
      const { frames, errors } = parseFrames(Buffer.concat([report, wireFixture('e1.1')]), {
        maxOtherBodyBytes: 1000,
      });
      expect(errors.map((e) => [e.error.code, e.error.statusCode, e.context!.headEmitted])).to.deep.equal([
        [ErrorCodes.BODY_TOO_LARGE, 413, true],
      ]);
      expect(frames.map((f) => f.transactionId)).to.deep.equal(['t9Kx2mQ4']);
    });

    it('answers 413 when a SEND chunk exceeds maxChunkBytes', () => {
      const send = serializeRequest({
        method: 'SEND',
        toPath: TO,
        fromPath: FROM,
        body: Buffer.alloc(5000, 0x41),
      });
      const { errors } = parseFrames(randomSplit(send, seededRandom(1), 700), { maxChunkBytes: 4096 });
      expect(errors.map((e) => [e.error.code, e.error.statusCode])).to.deep.equal([
        [ErrorCodes.BODY_TOO_LARGE, 413],
      ]);
    });

    it('hands on the octets up to maxChunkBytes before the 413, and none after', () => {
      // The relay reads a report request from the head of a body refused for its size (issue 5).
      const rec = new Recorder();
      const parser = new MsrpParser(rec, { maxChunkBytes: 4096 });
      const send = serializeRequest({
        method: 'SEND',
        toPath: TO,
        fromPath: FROM,
        body: Buffer.alloc(5000, 0x41),
      });
      for (const piece of randomSplit(send, seededRandom(3), 700)) parser.write(piece);
      let seen = 0;
      for (const e of rec.events) if (e.startsWith('body:')) seen += Number(e.slice(5));
      expect([seen, rec.errors.map((e) => e.err.statusCode)]).to.deep.equal([4096, [413]]);
    });
  });
});
