import { expect } from 'chai';
import { serializeRequest, serializeResponse } from '../../lib/msrp/serializer.js';
import { classifyWsMessage, firstFrameHead } from '../../lib/msrp/ws-message.js';

const send = serializeRequest({
  transactionId: 'wsTid0001',
  method: 'SEND',
  toPath: 'msrp://relay.example.com:2855/tok;tcp',
  fromPath: 'msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;ws',
  headers: [
    ['Message-ID', 'm1'],
    ['Byte-Range', '1-11/11'],
  ],
  contentType: 'text/plain',
  body: 'hello world',
});
const response = serializeResponse({
  transactionId: 'wsTid0002',
  statusCode: 200,
  toPath: 'msrps://q8zf2kd9wl3m.invalid:2855/Wc7eP0s1aB;ws',
  fromPath: 'msrp://relay.example.com:2855/tok;tcp',
});
const bodiless = serializeRequest({
  transactionId: 'wsTid0003',
  method: 'SEND',
  toPath: 'msrp://relay.example.com:2855/tok;tcp',
  fromPath: 'msrps://q8zf2kd9wl3m.invalid/Wc7eP0s1aB;ws',
  headers: [['Message-ID', 'm3']],
});

describe('classifyWsMessage (RFC 7977 §5.1)', () => {
  it('classifies a request with a body, a response and a bodiless request as one frame', () => {
    expect([send, response, bodiless].map(classifyWsMessage)).to.deep.equal(['one', 'one', 'one']);
  });

  it('tolerates blank lines before and after the frame, as the parser does', () => {
    const padded = Buffer.concat([Buffer.from('\r\n'), send, Buffer.from('\r\n\r\n')]);
    expect(classifyWsMessage(padded)).to.equal('one');
  });

  it('classifies every proper prefix of a frame as partial', () => {
    const shapes = new Set<string>();
    for (let cut = 0; cut < send.length; cut++) shapes.add(classifyWsMessage(send.subarray(0, cut)));
    expect([...shapes]).to.deep.equal(['partial']);
  });

  it('classifies two frames, or a frame followed by other octets, as several', () => {
    expect(classifyWsMessage(Buffer.concat([send, response]))).to.equal('several');
    expect(classifyWsMessage(Buffer.concat([send, Buffer.from('MSRP')]))).to.equal('several');
  });

  it('reads a look-alike end-line inside the body as body octets', () => {
    const body = 'a\r\n-------wsTid0001x\r\n-------other$\r\nb';
    const frame = serializeRequest({
      transactionId: 'wsTid0001',
      method: 'SEND',
      toPath: 'msrp://a.example:1/s;tcp',
      fromPath: 'msrp://b.example:1/s;tcp',
      contentType: 'text/plain',
      body,
    });
    expect(classifyWsMessage(frame)).to.equal('one');
  });

  it('classifies octets without an MSRP start line as unframed', () => {
    expect(classifyWsMessage(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).to.equal('unframed');
    expect(classifyWsMessage(Buffer.from('MSRP ab SEND\r\n-------ab$\r\n'))).to.equal('unframed');
  });
});

describe('firstFrameHead', () => {
  it('returns the transaction id, method and headers of the first of two frames', () => {
    const head = firstFrameHead(Buffer.concat([send, response]));
    expect(head).to.not.equal(null);
    expect(head!.transactionId).to.equal('wsTid0001');
    expect(head!.method).to.equal('SEND');
    expect(head!.headers.map((h) => h[0])).to.deep.equal([
      'To-Path',
      'From-Path',
      'Message-ID',
      'Byte-Range',
      'Content-Type',
    ]);
  });

  it('returns the head of a frame cut inside its body', () => {
    expect(firstFrameHead(send.subarray(0, send.length - 20))?.transactionId).to.equal('wsTid0001');
  });

  it('returns null when the head itself is cut', () => {
    expect(firstFrameHead(send.subarray(0, 30))).to.equal(null);
  });
});
