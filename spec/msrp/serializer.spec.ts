import { expect } from 'chai';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { frameRequest, randomId, serializeRequest, serializeResponse } from '../../lib/msrp/serializer.js';
import { wireFixture } from '../helpers/fixtures.js';

const TO = 'msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
const FROM = 'msrp://alice.example.org:7655/a1B2c3D4e5;tcp';

describe('serializer', () => {
  it('writes E1.1 byte-exactly from its parts', () => {
    const bytes = serializeRequest({
      transactionId: 't9Kx2mQ4',
      method: 'SEND',
      toPath: TO,
      fromPath: FROM,
      headers: [
        ['Message-ID', 'm7Yq20aZ'],
        ['Success-Report', 'yes'],
        ['Byte-Range', '1-11/11'],
      ],
      contentType: 'text/plain',
      body: 'Hi there!!!',
    });
    expect(bytes.toString('latin1')).to.equal(wireFixture('e1.1').toString('latin1'));
  });

  it('writes the bodiless E1.7 without an empty line', () => {
    const bytes = serializeRequest({
      transactionId: 'b1NdQx7c',
      method: 'SEND',
      toPath: TO,
      fromPath: FROM,
      headers: [
        ['Message-ID', 'e0M9pTy1'],
        ['Byte-Range', '1-0/0'],
      ],
    });
    expect(bytes.equals(wireFixture('e1.7'))).to.equal(true);
  });

  it('writes the empty-body E1.8 with empty line and CRLF before the end-line', () => {
    const bytes = serializeRequest({
      transactionId: 'z3R0Len0',
      method: 'SEND',
      toPath: TO,
      fromPath: FROM,
      headers: [
        ['Message-ID', 'Empty0001'],
        ['Byte-Range', '1-0/0'],
      ],
      contentType: 'text/plain',
      body: Buffer.alloc(0),
    });
    expect(bytes.equals(wireFixture('e1.8'))).to.equal(true);
  });

  it('writes responses ending in $ with the standard phrase (E1.2)', () => {
    const bytes = serializeResponse({
      transactionId: 't9Kx2mQ4',
      statusCode: 200,
      toPath: FROM,
      fromPath: TO,
    });
    expect(bytes.equals(wireFixture('e1.2'))).to.equal(true);
  });

  it('writes MIME headers before Content-Type', () => {
    const bytes = serializeRequest({
      method: 'SEND',
      toPath: TO,
      fromPath: FROM,
      mimeHeaders: [['Content-Disposition', 'notification']],
      contentType: 'message/cpim',
      body: 'x',
    });
    const [f] = parseFrames(bytes).frames;
    expect(f!.headers.slice(-2).map((h) => h[0])).to.deep.equal(['Content-Disposition', 'Content-Type']);
  });

  it('re-draws the transaction id when its end-line occurs in the body', () => {
    const body = Buffer.from('a\r\n-------Fixed1234$\r\nb');
    const f = frameRequest({ transactionId: 'Fixed1234', method: 'SEND', toPath: TO, fromPath: FROM, body });
    expect(f.transactionId).to.not.equal('Fixed1234');
    const parsed = parseFrames(Buffer.concat([f.head, f.body!, f.tail])).frames[0]!;
    expect(parsed.body!.equals(body)).to.equal(true);
  });

  it('draws 16-character alphanumeric ids that do not repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20000; i++) {
      const id = randomId();
      expect(id).to.match(/^[A-Za-z0-9]{16}$/);
      seen.add(id);
    }
    expect(seen.size).to.equal(20000);
  });
});
