/**
 * The dashboard's files (`GET /ui/...`): `index.html`, `app.js` and `style.css` beside this
 * module, and uPlot (`npm:uplot`, its IIFE build and stylesheet) from `node_modules`. Read once,
 * on first use; a name not in the list is not served, so no path reaches the file system.
 *
 * @module
 */
// Loaded for its files only: importing it here makes `deno install` (and every run of a program
// that serves the dashboard) put the package in `node_modules`.
import "uplot";

/** A served file. */
export interface UiAsset {
  readonly type: string;
  readonly body: Uint8Array<ArrayBuffer>;
}

const FILES: Readonly<Record<string, { url: URL; type: string }>> = {
  "index.html": { url: new URL("./index.html", import.meta.url), type: "text/html; charset=utf-8" },
  "app.js": { url: new URL("./app.js", import.meta.url), type: "text/javascript; charset=utf-8" },
  "style.css": { url: new URL("./style.css", import.meta.url), type: "text/css; charset=utf-8" },
  "uplot.js": {
    url: new URL("../../../node_modules/uplot/dist/uPlot.iife.min.js", import.meta.url),
    type: "text/javascript; charset=utf-8",
  },
  "uplot.css": {
    url: new URL("../../../node_modules/uplot/dist/uPlot.min.css", import.meta.url),
    type: "text/css; charset=utf-8",
  },
};

const cache = new Map<string, UiAsset>();

/** The asset called `name`, or undefined when there is none (or it cannot be read). */
export function uiAsset(name: string): UiAsset | undefined {
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
  if (file === undefined) return undefined;
  let body: Uint8Array<ArrayBuffer>;
  try {
    body = Deno.readFileSync(file.url) as Uint8Array<ArrayBuffer>;
  } catch {
    return undefined;
  }
  const asset = { type: file.type, body };
  cache.set(name, asset);
  return asset;
}
