/**
 * A bounded set of strings that forgets the oldest first.
 *
 * @module
 */

/**
 * A set of the last `capacity` values added, the oldest out first. A ring, not a `Set`'s own
 * order: V8 finds a `Set`'s first value by stepping over every value deleted before it, so
 * evicting from the front of a full `Set` costs more the longer it has been full.
 */
export class RecentSet {
  readonly #set = new Set<string>();
  /** The values in the order added, grown to `capacity`, then overwritten oldest first. */
  readonly #ring: string[] = [];
  readonly #capacity: number;
  #next = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  add(value: string): void {
    if (this.#set.has(value)) return;
    if (this.#ring.length < this.#capacity) this.#ring.push(value);
    else {
      this.#set.delete(this.#ring[this.#next]!);
      this.#ring[this.#next] = value;
      this.#next = (this.#next + 1) % this.#capacity;
    }
    this.#set.add(value);
  }

  has(value: string): boolean {
    return this.#set.has(value);
  }
}

/**
 * A map of the last `capacity` keys set, the oldest out first (a ring, as {@link RecentSet}).
 * Setting a key it holds replaces its value and keeps its place.
 */
export class RecentMap<V> {
  readonly #map = new Map<string, V>();
  readonly #ring: string[] = [];
  readonly #capacity: number;
  #next = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  set(key: string, value: V): void {
    if (this.#capacity === 0) return;
    if (!this.#map.has(key)) {
      if (this.#ring.length < this.#capacity) this.#ring.push(key);
      else {
        this.#map.delete(this.#ring[this.#next]!);
        this.#ring[this.#next] = key;
        this.#next = (this.#next + 1) % this.#capacity;
      }
    }
    this.#map.set(key, value);
  }

  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  get size(): number {
    return this.#map.size;
  }
}
