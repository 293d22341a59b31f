/**
 * A test helper: runs code with `Object.prototype.__proto__` as the language defines it (a setter
 * that sets the prototype), as Node, browsers and Deno with `--unstable-unsafe-proto` have it;
 * Deno's own setter defines an own key instead. Code that hashes or commits to a value must keep
 * an own `__proto__` key (JSON.parse makes one) under both.
 *
 * @module
 */

/** Runs `body` under the language's `__proto__` setter, then puts the host's back. */
export function withStandardProto(body: () => void): void {
  const own = Object.getOwnPropertyDescriptor(Object.prototype, "__proto__");
  Object.defineProperty(Object.prototype, "__proto__", {
    configurable: true,
    get(this: object) {
      return Object.getPrototypeOf(this);
    },
    set(this: object, proto: unknown) {
      if (typeof proto === "object") Object.setPrototypeOf(this, proto);
    },
  });
  try {
    body();
  } finally {
    if (own === undefined) delete (Object.prototype as { __proto__?: unknown }).__proto__;
    else Object.defineProperty(Object.prototype, "__proto__", own);
  }
}
