import { expect } from 'chai';
import {
  forwardedClient,
  parseProxyEntry,
  parseProxyHeader,
  ProxyHeaderError,
  TrustedProxies,
} from '../../lib/transport/proxy.js';

/** A PROXY v2 header: command 1 (PROXY) or 0 (LOCAL), family/protocol octet, address block. */
function v2(command: number, famProto: number, block: Buffer): Buffer {
  const head = Buffer.from([
    0x0d,
    0x0a,
    0x0d,
    0x0a,
    0x00,
    0x0d,
    0x0a,
    0x51,
    0x55,
    0x49,
    0x54,
    0x0a,
    0x20 | command,
    famProto,
    0,
    0,
  ]);
  head.writeUInt16BE(block.length, 14);
  return Buffer.concat([head, block]);
}

describe('PROXY protocol header and X-Forwarded-For (--trusted-proxies)', () => {
  describe('parseProxyHeader', () => {
    it('reads a version 1 TCP4 and TCP6 line and says how long it is', () => {
      const line = 'PROXY TCP4 203.0.113.7 192.0.2.1 40001 2855\r\n';
      const buf = Buffer.from(line + 'MSRP a AUTH\r\n');
      expect(parseProxyHeader(buf)).to.deep.equal({
        length: line.length,
        source: { address: '203.0.113.7', port: 40001 },
      });
      const six = Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 5 2855\r\n');
      expect(parseProxyHeader(six)?.source).to.deep.equal({ address: '2001:db8::7', port: 5 });
    });

    it('reads UNKNOWN and LOCAL as "no client named", and other octets as no header at all', () => {
      expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\nMSRP'))).to.deep.equal({
        length: 15,
        source: null,
      });
      expect(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)))).to.deep.equal({ length: 16, source: null });
      expect(parseProxyHeader(Buffer.from('MSRP a1 AUTH\r\n'))).to.deep.equal({ length: 0, source: null });
      expect(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))).to.deep.equal({ length: 0, source: null });
    });

    it('waits (null) while a header may still be arriving, in either version', () => {
      const line = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 40001 2855\r\n');
      const bin = v2(1, 0x11, Buffer.from([203, 0, 113, 7, 192, 0, 2, 1, 0x9c, 0x41, 0x0b, 0x27]));
      for (const whole of [line, bin])
        for (let n = 1; n < whole.length; n++)
          expect(parseProxyHeader(whole.subarray(0, n)), `${n}`).to.equal(null);
      expect(parseProxyHeader(bin)).to.deep.equal({
        length: 28,
        source: { address: '203.0.113.7', port: 40001 },
      });
    });

    it('reads a version 2 IPv6 address block, TLVs after it skipped', () => {
      const block = Buffer.alloc(36 + 7);
      Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05]).copy(block, 0);
      block.writeUInt16BE(443, 32);
      const buf = v2(1, 0x21, block);
      expect(parseProxyHeader(buf)).to.deep.equal({
        length: 16 + 43,
        source: { address: '2001:db8::5', port: 443 },
      });
    });

    const malformed: Array<[string, Buffer]> = [
      ['a v1 line without CRLF', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')],
      ['a v1 line with a bad address', Buffer.from('PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n')],
      ['a v1 TCP6 line with IPv4 addresses', Buffer.from('PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n')],
      ['a v1 line with a port past 65535', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n')],
      ['a v1 line too long', Buffer.from('PROXY ' + 'x'.repeat(120))],
      [
        'a v2 header of version 3',
        Buffer.from([...v2(1, 0x11, Buffer.alloc(12)).subarray(0, 12), 0x31, 0x11, 0, 12]),
      ],
      ['a v2 header with command 2', v2(2, 0x11, Buffer.alloc(12))],
      ['a v2 IPv4 block too short', v2(1, 0x11, Buffer.alloc(8))],
      ['a v2 header longer than 4 KiB', v2(1, 0x11, Buffer.alloc(5000))],
    ];
    for (const [what, buf] of malformed) {
      it(`refuses ${what}`, () => {
        expect(() => parseProxyHeader(buf)).to.throw(ProxyHeaderError);
      });
    }
  });

  describe('TrustedProxies and forwardedClient', () => {
    const trusted = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', '2001:db8:1::/48']);

    it('trusts listed addresses and networks, an IPv4-mapped address as its IPv4', () => {
      const yes = ['127.0.0.1', '10.9.8.7', '::ffff:10.1.2.3', '2001:db8:1:ff::9'];
      const no = ['127.0.0.2', '11.0.0.1', '2001:db8:2::1', 'not-an-ip', undefined];
      expect(yes.map((a) => trusted.has(a))).to.deep.equal(yes.map(() => true));
      expect(no.map((a) => trusted.has(a))).to.deep.equal(no.map(() => false));
      expect(new TrustedProxies([]).has('127.0.0.1')).to.equal(false);
    });

    it('takes the right-most X-Forwarded-For entry that is not a trusted proxy', () => {
      expect(forwardedClient('198.51.100.1, 203.0.113.9, 10.1.1.1', trusted)).to.equal('203.0.113.9');
      expect(forwardedClient(['198.51.100.1', '203.0.113.9:5555'], trusted)).to.equal('203.0.113.9');
      expect(forwardedClient('[2001:db8:9::1]:443', trusted)).to.equal('2001:db8:9::1');
      expect(forwardedClient('10.0.0.1, 10.0.0.2', trusted)).to.equal(undefined);
      expect(forwardedClient('unknown, 10.0.0.2', trusted)).to.equal(undefined);
      expect(forwardedClient(undefined, trusted)).to.equal(undefined);
    });

    it('reads entries of --trusted-proxies and refuses what is not an address or network', () => {
      expect(parseProxyEntry('10.0.0.0/8')).to.deep.equal({ address: '10.0.0.0', prefix: 8 });
      expect(parseProxyEntry('::1')).to.deep.equal({ address: '::1', prefix: undefined });
      for (const bad of ['10.0.0.0/33', 'lb.example.com', '10.0.0.0/', '::/129', '10.0.0.0/8x'])
        expect(() => parseProxyEntry(bad), bad).to.throw(Error);
    });
  });
});
