// Random strings as Django makes them, and the random sources the creation code takes (the
// system's CSPRNG, or a seeded generator so that seeds are reproducible).
import { crypto } from "./builtins.js";

/** Django's RANDOM_STRING_CHARS. */
export const RANDOM_STRING_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** Where creation code gets its random strings and UUIDs (injectable so seeds are reproducible). */
export interface RandomSource {
  /** n random characters from [A-Za-z0-9] (Django's get_random_string alphabet). */
  alnum(n: number): string;
  /** A random version-4 UUID string. */
  uuid(): string;
}

/** The system's CSPRNG. */
export const cryptoRandom: RandomSource = {
  alnum: getRandomString,
  uuid: () => crypto().randomUUID(),
};

/** A deterministic RandomSource (mulberry32) with a few extra helpers for seeding. */
export class SeededRandom implements RandomSource {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  shuffle<T>(items: readonly T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
  alnum(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += RANDOM_STRING_CHARS[this.int(RANDOM_STRING_CHARS.length)];
    return s;
  }
  uuid(): string {
    const hex = Array.from({ length: 32 }, () => this.int(16).toString(16));
    hex[12] = "4";
    hex[16] = (8 + this.int(4)).toString(16);
    const h = hex.join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

/** Django's get_random_string(length): characters drawn uniformly (CSPRNG) from [a-zA-Z0-9]. */
export function getRandomString(length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += RANDOM_STRING_CHARS[crypto().randomInt(RANDOM_STRING_CHARS.length)];
  return s;
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 with '=' padding, like Python's base64.b32encode. */
export function base32Encode(data: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  while (out.length % 8 !== 0) out += "=";
  return out;
}

/**
 * confirmation.models.generate_key(): 15 random bytes in lowercase base32 = 24 chars of [a-z2-7].
 * Zulip uses it for confirmation keys and the token of tokenized noreply addresses.
 */
export function generateKey(random: (n: number) => Uint8Array = (n) => crypto().randomBytes(n)): string {
  return base32Encode(random(15)).toLowerCase();
}

/** Python's secrets.token_urlsafe(nbytes): base64url without padding. */
export function tokenUrlsafe(nbytes = 32): string {
  return crypto().randomBytes(nbytes).toString("base64url");
}

/** The random part of a Python tempfile name (tempfile._RandomNameSequence): `length` characters of [a-z0-9_]. */
export function tempfileRandomName(length = 8): string {
  const chars = "abcdefghijklmnopqrstuvwxyz0123456789_";
  const bytes = crypto().randomBytes(length);
  return [...bytes].map((b) => chars[b % chars.length]).join("");
}
