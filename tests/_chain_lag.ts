/**
 * Test helpers for a chain follower that lags behind the network, shared by the verifier
 * forgery tests.
 *
 * @module
 */
import type { ChainEvent, ChainPort } from "../chain/port.ts";

/** A promise and the function that resolves it. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/**
 * `port` with its events handed over in order, each `WorkerAssigned` and everything after it
 * only once `held` resolves: a chain follower that lags behind the network. It says it does not
 * filter, so the node filters what it gets itself.
 */
export function lagging(port: ChainPort, held: Promise<void>): ChainPort {
  return new Proxy(port, {
    get(target, key) {
      if (key === "filtersEvents") return false;
      if (key === "subscribe") {
        return (handler: (event: ChainEvent) => void, options: Record<string, unknown> = {}) => {
          const { interest: _interest, passed: _passed, ...rest } = options;
          let tail = Promise.resolve();
          return target.subscribe((event) => {
            const wait = event.name === "WorkerAssigned" ? held : undefined;
            tail = tail.then(() => wait).then(() => handler(event));
          }, rest);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
