// Password hashes a Zulip server accepts, and Zulip's password strength rule.
//
// Hashing: production Zulip lists Django's Argon2PasswordHasher first in PASSWORD_HASHERS
// (zproject/computed_settings.py), so set_password() stores
//   "argon2" + argon2-cffi's encoded hash = "argon2$argon2id$v=19$m=102400,t=2,p=8$<salt>$<hash>"
// with Django's parameters (time_cost 2, memory_cost 102400 KiB, parallelism 8, hash length 16 =
// argon2-cffi's DEFAULT_HASH_LENGTH) and Django's salt: 22 random characters from [a-zA-Z0-9]
// (BasePasswordHasher.salt(): 128 bits of entropy), used as the salt's bytes; both salt and hash
// are base64 without padding in the encoded string. Django only rehashes (must_update) when these
// parameters differ, so a hash made here is indistinguishable from one made by the server.
// Argon2id comes from hash-wasm (WebAssembly, no native code, no install script).
// Development servers do not list Argon2 (SHA1 + PBKDF2 hashers); for them
// djangoPasswordHash() makes a PBKDF2 hash, which they accept.
//
// Strength: UserProfile.set_password refuses passwords that fail zproject/backends.py
// check_password_strength(): shorter than PASSWORD_MIN_LENGTH (default 6), empty, or fewer than
// PASSWORD_MIN_GUESSES (default 10000) guesses as estimated by zxcvbn — the same 4.4.2 algorithm
// and dictionaries as Zulip's Python zxcvbn and its web app's (npm zxcvbn), loaded only when a
// password is checked. Zulip's forms also cap passwords at PASSWORD_MAX_LENGTH (default 100).
import { createRequire } from "node:module";
import { crypto } from "../lib/builtins.js";
import { cryptoRandom, getRandomString, RANDOM_STRING_CHARS, type RandomSource } from "../lib/random.js";
import { CommandError } from "../lib/errors.js";
import { pyInt } from "../lib/pyformat.js";

/** Django's Argon2PasswordHasher parameters (Django 4.x/5.x, argon2-cffi defaults). */
const DJANGO_ARGON2 = { timeCost: 2, memoryCost: 102400, parallelism: 8, hashLength: 16 } as const;

/** BasePasswordHasher.salt(): ceil(128 / log2(62)) = 22 random characters. */
function djangoSalt(): string {
  return getRandomString(Math.ceil(128 / Math.log2(RANDOM_STRING_CHARS.length)));
}

/** Django's unusable password: "!" + 40 random characters. */
export function unusablePassword(random: RandomSource = cryptoRandom): string {
  return "!" + random.alnum(40);
}

/**
 * A Django PBKDF2-SHA256 password hash ("pbkdf2_sha256$<iterations>$<salt>$<b64>"). Zulip lists
 * PBKDF2PasswordHasher after Argon2 in PASSWORD_HASHERS, so it verifies (and upgrades) these.
 */
function djangoPbkdf2Hash(password: string, opts: { salt?: string; iterations?: number; random?: RandomSource } = {}): string {
  const iterations = opts.iterations ?? 1_000_000; // Django 5.2 default
  const salt = opts.salt ?? (opts.random ?? cryptoRandom).alnum(22);
  const hash = crypto().pbkdf2Sync(password, salt, iterations, 32, "sha256").toString("base64");
  return `pbkdf2_sha256$${iterations}$${salt}$${hash}`;
}

/** Argon2PasswordHasher.encode(password, salt). */
/** hash-wasm, whichever way a bundler exposes its exports. */
async function hashWasm(): Promise<typeof import("hash-wasm")> {
  const mod: any = await import("hash-wasm");
  return typeof mod.argon2id === "function" ? mod : mod.default;
}

export async function djangoArgon2Hash(password: string, opts: { salt?: string } = {}): Promise<string> {
  const { argon2id } = await hashWasm();
  const salt = opts.salt ?? djangoSalt();
  const encoded = await argon2id({
    password: Buffer.from(password, "utf8"),
    salt: Buffer.from(salt, "utf8"),
    iterations: DJANGO_ARGON2.timeCost,
    memorySize: DJANGO_ARGON2.memoryCost,
    parallelism: DJANGO_ARGON2.parallelism,
    hashLength: DJANGO_ARGON2.hashLength,
    outputType: "encoded",
  });
  // argon2-cffi's encoding: "$argon2id$v=19$m=…,t=…,p=…$<salt b64>$<hash b64>", no padding.
  return "argon2" + encoded.replace(/=+(?=\$|$)/g, "");
}

/** Argon2PasswordHasher.verify(): whether `password` matches a Django "argon2$…" hash. */
export async function verifyDjangoArgon2Hash(password: string, encoded: string): Promise<boolean> {
  if (!encoded.startsWith("argon2$")) return false;
  const { argon2Verify } = await hashWasm();
  try {
    return await argon2Verify({ password: Buffer.from(password, "utf8"), hash: encoded.slice("argon2".length) });
  } catch {
    return false;
  }
}

/** The hash set_password() stores: Argon2 on a production server, PBKDF2 on a development one. */
export async function djangoPasswordHash(password: string, production: boolean): Promise<string> {
  return production ? djangoArgon2Hash(password) : djangoPbkdf2Hash(password, { salt: djangoSalt() });
}

export interface PasswordRules {
  minLength: number;
  minGuesses: number;
  maxLength: number;
}

/** default_settings.py values. */
export const DEFAULT_PASSWORD_RULES: PasswordRules = { minLength: 6, minGuesses: 10000, maxLength: 100 };

/** The rules in force: settings.py values when set there (literal assignments), else the defaults. */
export function passwordRules(settings: { fileValue(name: string, fallback: any): any }): PasswordRules {
  const num = (name: string, dflt: number): number => {
    const v = settings.fileValue(name, dflt);
    return typeof v === "number" && Number.isFinite(v) ? v : dflt;
  };
  return {
    minLength: num("PASSWORD_MIN_LENGTH", DEFAULT_PASSWORD_RULES.minLength),
    minGuesses: num("PASSWORD_MIN_GUESSES", DEFAULT_PASSWORD_RULES.minGuesses),
    maxLength: num("PASSWORD_MAX_LENGTH", DEFAULT_PASSWORD_RULES.maxLength),
  };
}

type Zxcvbn = (password: string, userInputs?: string[]) => { guesses: number; score: number };
let zxcvbnFn: Zxcvbn | undefined;

/**
 * zxcvbn's estimated number of guesses. The package (CommonJS, ~800 kB of dictionaries) is
 * required on first use, synchronously: in the CLI's bundle (CommonJS, where `require` exists)
 * with a require() that scripts/bundle.mjs points at zxcvbn's own chunk file; run as ES modules
 * (dist/, the tests) from node_modules.
 */
export function passwordGuesses(password: string): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the bundle maps this require() to zxcvbn's chunk
  if (!zxcvbnFn) zxcvbnFn = (typeof require === "function" ? require("zxcvbn") : createRequire(import.meta.url)("zxcvbn")) as Zxcvbn;
  return zxcvbnFn(password).guesses;
}

export interface StrengthVerdict {
  ok: boolean;
  /** Why it is refused (null when ok). */
  reason: string | null;
  /** zxcvbn's estimate (null when not computed). */
  guesses: number | null;
}

/** The Zulip server's PASSWORD_TOO_WEAK_ERROR text. */
const PASSWORD_TOO_WEAK = "The password is too weak.";

/** check_password_strength() plus the forms' length cap, with a reason a person can act on. */
export function checkPasswordStrength(password: string, rules: PasswordRules = DEFAULT_PASSWORD_RULES): StrengthVerdict {
  const length = [...password].length; // Python len(): code points
  if (length > rules.maxLength) {
    return { ok: false, reason: `Passwords may be at most ${rules.maxLength} characters long (PASSWORD_MAX_LENGTH).`, guesses: null };
  }
  if (length < rules.minLength || password === "") {
    return {
      ok: false,
      reason: `${PASSWORD_TOO_WEAK} It must be at least ${rules.minLength} characters long (PASSWORD_MIN_LENGTH).`,
      guesses: null,
    };
  }
  const guesses = passwordGuesses(password);
  if (Math.trunc(guesses) < rules.minGuesses) {
    return {
      ok: false,
      reason:
        `${PASSWORD_TOO_WEAK} It could be guessed in about ${pyInt(Math.trunc(guesses))} tries; ` +
        `this server requires at least ${pyInt(Math.trunc(rules.minGuesses))} (PASSWORD_MIN_GUESSES). Use a longer, less predictable password.`,
      guesses,
    };
  }
  return { ok: true, reason: null, guesses };
}

/**
 * The password hash set_password() stores for a new user's password, after
 * check_password_strength (manage.py create_user / create_realm do not apply the forms'
 * PASSWORD_MAX_LENGTH); null for none (an unusable password is written).
 */
export async function hashNewPassword(
  settings: { fileValue(name: string, fallback: any): any; get(name: "PRODUCTION"): boolean },
  password: string | null,
): Promise<string | null> {
  if (password === null) return null;
  const rules = { ...passwordRules(settings), maxLength: Number.POSITIVE_INFINITY };
  const verdict = checkPasswordStrength(password, rules);
  if (!verdict.ok) throw new CommandError(verdict.reason ?? PASSWORD_TOO_WEAK);
  return djangoPasswordHash(password, settings.get("PRODUCTION"));
}
