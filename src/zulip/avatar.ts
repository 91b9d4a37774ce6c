// Avatar URLs as Zulip's zerver/lib/avatar.py computes them (avatar_url / get_avatar_field with
// client_gravatar=False), for the events that carry them. Checked against zulip/zulip's
// avatar.py (an older version and the 12.x one: AVATAR_FROM_JDENTICON shares the uploaded-avatar
// path, user_avatar_base_path_from_ids with the version in the hash and no ?version query,
// GRAVATAR_REALM_OVERRIDE, system bots' static avatars) and zerver/lib/upload/local.py
// get_avatar_url ("/user_avatars/" + path + ".png" / "-medium.png"). What depends on the S3
// backend or on content-hashed static file names is not reproduced: avatarUrl says why instead.
import fs from "node:fs";
import path from "node:path";
import type { Queryable } from "../db/db.js";
import { crypto } from "../lib/builtins.js";
import { FL } from "../services/events.js";

/** The settings avatar_url depends on (zerver/lib/avatar.py), read by the command. */
export interface AvatarSettings {
  /** settings.ENABLE_GRAVATAR (default True). */
  enableGravatar: boolean;
  /** settings.DEFAULT_AVATAR_URI (default None). */
  defaultAvatarUri: string | null;
  /** settings.GRAVATAR_REALM_OVERRIDE (12.x; default {}). */
  gravatarRealmOverride: Record<string, boolean>;
  /** LOCAL_UPLOADS_DIR is set (the local upload backend); false: S3. */
  localUploads: boolean;
  /** settings.AVATAR_SALT, or null when unreadable. */
  avatarSalt: string | null;
}

/** settings.AVATAR_SALT, or null when it cannot be read. */
export function readAvatarSalt(settings: { get(name: "AVATAR_SALT"): string }): string | null {
  try {
    return settings.get("AVATAR_SALT");
  } catch {
    return null;
  }
}

/** Reads AvatarSettings; a value that cannot be read is reported as null (the URL is then not guessed). */
export function readAvatarSettings(settings: { fileValue(name: string, fallback: any): any; get(name: any): any }): AvatarSettings | null {
  try {
    const override = settings.fileValue("GRAVATAR_REALM_OVERRIDE", {});
    let salt: string | null = null;
    try {
      salt = settings.get("AVATAR_SALT") as string;
    } catch {
      salt = null;
    }
    const uri = settings.fileValue("DEFAULT_AVATAR_URI", null);
    return {
      enableGravatar: settings.fileValue("ENABLE_GRAVATAR", true) !== false,
      defaultAvatarUri: typeof uri === "string" ? uri : null,
      gravatarRealmOverride: override && typeof override === "object" && !Array.isArray(override) ? (override as Record<string, boolean>) : {},
      localUploads: settings.fileValue("LOCAL_UPLOADS_DIR", null) !== null,
      avatarSalt: salt,
    };
  } catch {
    return null;
  }
}

/** gravatar_hash(email): md5 of the lower-cased address. */
function gravatarHash(email: string): string {
  return crypto().createHash("md5").update(email.toLowerCase()).digest("hex");
}

/**
 * get_avatar_field(..., medium, client_gravatar=False) for a human user; a string, or
 * {reason} when Zulip's value cannot be reproduced here.
 */
export function avatarUrl(
  s: AvatarSettings,
  u: { id: number; realm_id: number; delivery_email: string; avatar_source: string; avatar_version: number },
  featureLevel: number,
  medium = false,
): string | { reason: string } {
  const version = Number(u.avatar_version);
  if (u.avatar_source === "U" || u.avatar_source === "J") {
    // 12.x: user_avatar_base_path_from_ids(user_id, avatar_version, realm_id), no ?version query;
    // local backend: "/user_avatars/" + hash + (".png" | "-medium.png").
    if (featureLevel < FL.IMPORTED_STUB) return { reason: "the avatar URL of an uploaded avatar on this release is not reproduced" };
    if (!s.localUploads) return { reason: "avatars are stored in S3 (LOCAL_UPLOADS_DIR is not set); their URL is not reproduced" };
    if (s.avatarSalt === null) return { reason: "the avatar_salt secret is not readable" };
    return `/user_avatars/${userAvatarBasePath(u.id, version, u.realm_id, s.avatarSalt)}${medium ? "-medium.png" : ".png"}`;
  }
  let useGravatar = s.enableGravatar;
  if (featureLevel >= FL.IMPORTED_STUB && Object.prototype.hasOwnProperty.call(s.gravatarRealmOverride, String(u.realm_id))) {
    useGravatar = Boolean(s.gravatarRealmOverride[String(u.realm_id)]);
  }
  let url: string;
  if (useGravatar) url = `https://secure.gravatar.com/avatar/${gravatarHash(u.delivery_email)}?d=identicon${medium ? "&s=500" : ""}`;
  else if (s.defaultAvatarUri !== null) url = s.defaultAvatarUri;
  else return { reason: "Gravatar is disabled and DEFAULT_AVATAR_URI is not set (the static default avatar's hashed name is not reproduced)" };
  // append_url_query_string(url, "version=N")
  return `${url}${url.includes("?") ? "&" : "?"}version=${version}`;
}

/** Zulip ≥ 9: <realm_id>/<sha256("<uid>:<version>:<salt>")[:40]> (zerver/lib/avatar_hash.py). */
export function userAvatarBasePath(userId: number, version: number, realmId: number, salt: string): string {
  const hash = crypto().createHash("sha256").update(`${userId}:${version}:${salt}`).digest("hex").slice(0, 40);
  return `${realmId}/${hash}`;
}

// ---------------------------------------------------------------------------------------------
// Jdenticon avatars (Zulip 12.0; PR #36920, realm.default_avatar_source FL 456)
//
// A user created with avatar_source "J" is served from the uploaded-avatar path
// (/user_avatars/<realm_id>/<sha256("<id>:<version>:<salt>")[:40]>.png), so the image has to
// exist there. Zulip writes it when the user is created: zerver/lib/avatar.py
// generate_and_upload_jdenticon_avatar(user, realm.uuid, future) runs its own bundled generator
// — `node <static>/webpack-bundles/jdenticon.js "<realm uuid>:<user id>" -s <size> -p 0
// --lightness-color 0.3,0.7 --lightness-grayscale 0.3,0.7`, sizes DEFAULT_AVATAR_SIZE (100)
// and MEDIUM_AVATAR_SIZE (500) — and stores both PNGs through the upload backend
// (write_jdenticon_avatars; with the local backend, LOCAL_UPLOADS_DIR/avatars/<path>.png and
// <path>-medium.png, which nginx serves as /user_avatars/…). zulip-manage runs the same
// generator from the deployment, so the files have the bytes Zulip's would have. Without it
// (no bundle found), or with the S3 backend, the image is not written and the caller says so.

/** Where a production deployment keeps the generator (static_path("webpack-bundles/jdenticon.js")), most likely first. */
function jdenticonScriptCandidates(deployDir: string): string[] {
  return [
    path.join(deployDir, "prod-static", "serve", "webpack-bundles", "jdenticon.js"),
    path.join(deployDir, "static", "webpack-bundles", "jdenticon.js"),
    path.join(deployDir, "node_modules", "jdenticon", "bin", "jdenticon.js"),
  ];
}

/** DEFAULT_AVATAR_SIZE, MEDIUM_AVATAR_SIZE (zerver/lib/thumbnail.py) */
const AVATAR_SIZES = { default: 100, medium: 500 } as const;

async function runJdenticon(script: string, key: string, size: number): Promise<Buffer> {
  const { execFileSync } = await import("node:child_process");
  return execFileSync(process.execPath, [script, key, "-s", String(size), "-p", "0", "--lightness-color", "0.3,0.7", "--lightness-grayscale", "0.3,0.7"], {
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30_000,
  });
}

/**
 * generate_and_upload_jdenticon_avatar(user, realm.uuid, future=False) for a user just created
 * with avatar_source "J" (after the commit). Returns what was not done, with the reason; nothing
 * for other avatar sources.
 */
export async function writeJdenticonAvatar(
  q: Queryable,
  settings: { fileValue(name: string, fallback: any): any; get(name: any): any },
  deployDir: string,
  userId: number,
): Promise<string[]> {
  const { rows } = await q.query(
    "SELECT u.id, u.realm_id, u.avatar_source, u.avatar_version, r.uuid FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1",
    [userId],
  );
  const u = rows[0];
  if (!u || u.avatar_source !== "J") return [];
  const what = `the Jdenticon profile picture of user ${userId} (shown as a broken image until it exists)`;
  const s = readAvatarSettings(settings);
  const uploads = settings.fileValue("LOCAL_UPLOADS_DIR", null);
  if (typeof uploads !== "string") return [`${what}: avatars are stored in S3 (LOCAL_UPLOADS_DIR is not set), which zulip-manage does not write to`];
  if (!s || s.avatarSalt === null) return [`${what}: the avatar_salt secret is not readable`];
  const script = jdenticonScriptCandidates(deployDir).find((p) => fs.existsSync(p));
  if (!script) return [`${what}: Zulip's generator (webpack-bundles/jdenticon.js) was not found in ${deployDir}`];
  const key = `${u.uuid}:${u.id}`;
  let image: Buffer, medium: Buffer;
  try {
    image = await runJdenticon(script, key, AVATAR_SIZES.default);
    medium = await runJdenticon(script, key, AVATAR_SIZES.medium);
  } catch (e: any) {
    return [`${what}: ${script} failed: ${String(e?.stderr ?? e?.message ?? e).trim()}`];
  }
  const base = path.join(uploads, "avatars", userAvatarBasePath(Number(u.id), Number(u.avatar_version), Number(u.realm_id), s.avatarSalt));
  try {
    fs.mkdirSync(path.dirname(base), { recursive: true });
    fs.writeFileSync(`${base}.png`, image);
    fs.writeFileSync(`${base}-medium.png`, medium);
  } catch (e: any) {
    return [`${what}: ${e?.message ?? e}`];
  }
  return [];
}
