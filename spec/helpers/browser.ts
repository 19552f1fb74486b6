/**
 * Headless Chromium for the browser page's specs: Debian's chromium package (`npx playwright install`
 * cannot download a browser here; .ci/run installs the package), launched for a closed network.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium package. */
export const CHROMIUM = '/usr/bin/chromium';
/** Flags for a closed network (machines/node.md); playwright adds --headless and a fresh profile dir. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** True when the browser is installed; else marks `test` skipped, saying why. */
export function haveChromium(test: Mocha.Context): boolean {
  if (existsSync(CHROMIUM)) return true;
  test.test!.title += ` (skipped: ${CHROMIUM} not found; apt-get install chromium)`;
  test.skip();
  return false;
}

/** Starts a headless Chromium. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 15_000 });
}
