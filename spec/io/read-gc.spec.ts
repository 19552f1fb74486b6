import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { noteBytesRead, pacedCollections, READ_GC_BYTES, setCollector } from '../../lib/io/read-gc.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/spec/io

describe('read-paced young collections', () => {
  it('asks for one young collection per READ_GC_BYTES octets read, and none before', () => {
    const calls: unknown[] = [];
    const before = setCollector((options) => calls.push(options));
    try {
      const start = pacedCollections();
      noteBytesRead(READ_GC_BYTES - 1);
      expect(calls).to.have.length(0);
      noteBytesRead(1);
      expect(calls).to.deep.equal([{ type: 'minor' }]);
      // Reads of any size add up; the count starts again after each collection.
      for (let i = 0; i < 3; i++) noteBytesRead(READ_GC_BYTES / 4);
      expect(calls).to.have.length(1);
      noteBytesRead(READ_GC_BYTES / 4);
      expect(calls).to.have.length(2);
      expect(pacedCollections() - start).to.equal(2);
    } finally {
      setCollector(before);
    }
  });

  it('carries the octets a read brings past the mark toward the next collection', () => {
    const calls: unknown[] = [];
    const before = setCollector((options) => calls.push(options));
    try {
      noteBytesRead(READ_GC_BYTES + 100);
      expect(calls).to.have.length(1);
      noteBytesRead(READ_GC_BYTES - 101);
      expect(calls).to.have.length(1);
      noteBytesRead(1);
      expect(calls).to.have.length(2);
    } finally {
      setCollector(before);
    }
  });

  it('does nothing without an exposed collector', () => {
    const before = setCollector(null);
    try {
      const start = pacedCollections();
      noteBytesRead(READ_GC_BYTES * 3);
      expect(pacedCollections()).to.equal(start);
    } finally {
      setCollector(before);
    }
  });

  it("runs V8's own young collection under --expose-gc, as bin/msrp-relay starts node", async function () {
    this.timeout(20_000);
    const module = pathToFileURL(join(here, '..', '..', 'lib', 'io', 'read-gc.js')).href;
    const script =
      `const m = await import(${JSON.stringify(module)});` +
      `for (let i = 0; i < 3; i++) m.noteBytesRead(m.READ_GC_BYTES);` +
      `console.log(m.pacedCollections());`;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--expose-gc', '--trace-gc', '--input-type=module', '-e', script],
        { timeout: 15_000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      );
    });
    const lines = out.trim().split('\n');
    expect(lines.at(-1)).to.equal('3');
    // Three scavenges traced: young collections, not full ones.
    expect(lines.filter((l) => /Scavenge .* testing/.test(l))).to.have.length(3);
  });
});
