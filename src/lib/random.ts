// Random strings as Django makes them.
import { crypto } from "./builtins.js";

/** Django's RANDOM_STRING_CHARS. */
export const RANDOM_STRING_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

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
