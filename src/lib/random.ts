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
