/**
 * The browser client page (issue 4): three static files in `lib/web/static/` served on the WebSocket
 * listener's plain HTTP GETs (`RelayOptions.onHttpRequest`). Only the listed paths exist, so no request
 * path ever reaches the file system; everything else is 404. Each file is read once, at its first
 * request, and served from memory after that: read per request, a client pipelining 30,000 GETs it
 * never reads had 30,000 file reads in flight, held ~500 MB and every free descriptor (TLS/WS audit).
 * An edited page shows after a restart.
 *
 * ```
 *  GET /  /index.html  ──► index.html (text/html)
 *  GET /app.js         ──► app.js     (text/javascript: ES module, no build step)
 *  GET /style.css      ──► style.css  (text/css)
 *  anything else       ──► 404         other methods ──► 405
 * ```
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the static files live: `lib/web/static/` of the package, found from the compiled module
 * (`build/lib/web/page.js`), since `tsc` does not copy them into `build/`.
 */
export const STATIC_DIR = fileURLToPath(new URL('../../../lib/web/static/', import.meta.url));

/** URL path → file name and content type: the whole site. */
const ROUTES: ReadonlyMap<string, { file: string; type: string }> = new Map([
  ['/', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/index.html', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/app.js', { file: 'app.js', type: 'text/javascript; charset=utf-8' }],
  ['/style.css', { file: 'style.css', type: 'text/css; charset=utf-8' }],
]);

/**
 * Same-origin scripts and styles only; WebSocket connections to any relay the user types in; the inline
 * empty favicon as a `data:` image.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; " +
  "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Options of {@link createWebHandler}. */
export interface WebHandlerOptions {
  /** Directory holding index.html, app.js and style.css (default {@link STATIC_DIR}). */
  dir?: string;
}

/**
 * Creates the HTTP handler for the browser client: GET/HEAD of `/`, `/index.html`, `/app.js` and
 * `/style.css` with their content types and `Cache-Control: no-cache`; 404 for any other path.
 */
export function createWebHandler(
  options: WebHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const dir = options.dir ?? STATIC_DIR;
  // One read per file, shared by every request that waits for it; a failed read is tried again later.
  const files = new Map<string, Promise<Buffer>>();
  const load = (file: string): Promise<Buffer> => {
    let p = files.get(file);
    if (p === undefined) {
      p = readFile(join(dir, file));
      p.catch(() => files.delete(file));
      files.set(file, p);
    }
    return p;
  };
  return (req, res) => {
    serve(load, req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'Internal server error\n');
      else res.destroy();
    });
  };
}

async function serve(
  load: (file: string) => Promise<Buffer>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = req.url ?? '/';
  const q = url.search(/[?#]/);
  const route = ROUTES.get(q === -1 ? url : url.slice(0, q));
  if (route === undefined) {
    send(res, 404, 'Not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, 'Method not allowed\n', { Allow: 'GET, HEAD' });
    return;
  }
  const body = await load(route.file);
  res.writeHead(200, {
    'Content-Type': route.type,
    'Content-Length': body.length,
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Content-Security-Policy': CSP,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function send(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    ...extra,
  });
  res.end(text);
}
