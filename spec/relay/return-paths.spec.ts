/**
 * ReturnPaths (lib/relay/return-paths.ts): which connection a proven relay opened carries each of its
 * URIs. URIs are read by the router's own parser (`tryParse`).
 */
import { expect } from 'chai';
import { parseUri } from '../../lib/msrp/uri.js';
import { ReturnPaths } from '../../lib/relay/return-paths.js';
import { tryParse } from '../../lib/relay/router.js';

const K = 'msrps://relay.example.com:2855/sessK;tcp';
const at = (text: string): ReturnType<typeof parseUri> => parseUri(text);

describe('ReturnPaths', () => {
  it('gives a URI to the newest connection that brought it, and compares URIs as RFC 4975 §6.1 does', () => {
    const paths = new ReturnPaths<string>(10);
    paths.learn('p1', 'cert', K, tryParse);
    paths.learn('p2', 'cert', K, tryParse);
    expect(paths.lookup(at('MSRPS://RELAY.example.com:2855/sessK;TCP'))).to.equal('p2');
    expect(paths.lookup(at('msrps://relay.example.com:2855/sessk;tcp'))).to.equal(undefined); // session-id case
    expect(paths.lookup(at('msrps://relay.example.com:2856/sessK;tcp'))).to.equal(undefined); // another port
  });

  it('gives a URI back to an older connection that brings it again after the newer one closed', () => {
    // Review of 56e4d60: the older one skipped the URI as already seen, and the reply was dialed.
    const paths = new ReturnPaths<string>(10);
    paths.learn('p1', 'cert', K, tryParse);
    paths.learn('p2', 'cert', K, tryParse);
    paths.forget('p2');
    expect(paths.lookup(at(K))).to.equal(undefined);
    paths.learn('p1', 'cert', K, tryParse);
    expect(paths.lookup(at(K))).to.equal('p1');
  });

  it('counts the URIs of every connection of one certificate together, and forgets the oldest past the cap', () => {
    const paths = new ReturnPaths<string>(2);
    const u = (i: number): string => `msrps://relay.example.com:2855/s${i};tcp`;
    paths.learn('p1', 'certA', u(1), tryParse);
    paths.learn('p2', 'certA', u(2), tryParse);
    paths.learn('p3', 'certB', u(9), tryParse);
    paths.learn('p2', 'certA', u(3), tryParse);
    expect([1, 2, 3, 9].map((i) => paths.lookup(at(u(i))) ?? null)).to.deep.equal([null, 'p2', 'p2', 'p3']);
    expect(paths.size).to.equal(3);
    paths.forget('p2');
    paths.forget('p3');
    expect(paths.size).to.equal(0);
  });

  it('learns neither a From-Path URI longer than 256 octets nor one that does not parse', () => {
    const paths = new ReturnPaths<string>(10);
    const long = `msrps://relay.example.com:2855/${'x'.repeat(250)};tcp`;
    paths.learn('p1', 'cert', long, tryParse);
    paths.learn('p1', 'cert', 'not a uri', tryParse);
    expect(paths.size).to.equal(0);
  });
});
