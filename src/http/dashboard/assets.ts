// The fleet dashboard (GET /dashboard): one page, its script, style and icon, served by the
// gateway itself with a Content-Security-Policy that lets them load nothing but themselves
// (no inline script, no other origin). The page reads the same /health, /admin/usage and
// /admin/cache an operator's tools do; it holds no data of its own. The script, style and icon
// are plain files beside this one (`npm run build` copies them into dist/), read once.

import { readFileSync } from 'node:fs';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AI Fabric</title>
<link rel="icon" href="/dashboard/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<p id="status" class="meta" role="status"></p>
<main id="main"><p class="meta">Loading the fleet…</p></main>
</body>
</html>
`;

/** Only this page's own files, and fetches to this gateway. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface Asset {
  type: string;
  body: string;
  headers: Record<string, string>;
}

const HEADERS = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'same-origin', 'cache-control': 'no-cache' };

let files: Map<string, Asset> | undefined;

function load(): Map<string, Asset> {
  const read = (name: string): string => readFileSync(new URL(name, import.meta.url), 'utf8');
  return new Map([
    ['/dashboard', { type: 'text/html; charset=utf-8', body: PAGE, headers: HEADERS }],
    ['/dashboard/', { type: 'text/html; charset=utf-8', body: PAGE, headers: HEADERS }],
    ['/dashboard/app.js', { type: 'text/javascript; charset=utf-8', body: read('./app.js'), headers: HEADERS }],
    ['/dashboard/app.css', { type: 'text/css; charset=utf-8', body: read('./app.css'), headers: HEADERS }],
    ['/dashboard/favicon.svg', { type: 'image/svg+xml', body: read('./favicon.svg'), headers: HEADERS }],
  ]);
}

/** The dashboard's file at `path`, or undefined when the path is not one of its. */
export function dashboardAsset(path: string): Asset | undefined {
  if (!path.startsWith('/dashboard')) return undefined;
  files ??= load();
  return files.get(path);
}
