/**
 * The browser client page (issue 4): three static files in `lib/web/static/` served on the WebSocket
 * listener's plain HTTP GETs (`RelayOptions.onHttpRequest`). Only the listed paths exist, so no request
 * path ever reaches the file system; everything else is 404. Files are read per request (they are
 * small, and `Cache-Control: no-cache` lets an edited page show on reload).
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
  return (req, res) => {
    serve(dir, req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'Internal server error\n');
      else res.destroy();
    });
  };
}

async function serve(dir: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  const body = await readFile(join(dir, route.file));
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
