// Avatar URLs as Zulip's zerver/lib/avatar.py computes them (avatar_url / get_avatar_field with
// client_gravatar=False), for the events that carry them. Checked against zulip/zulip's
// avatar.py (an older version and the 12.x one: AVATAR_FROM_JDENTICON shares the uploaded-avatar
// path, user_avatar_base_path_from_ids with the version in the hash and no ?version query,
// GRAVATAR_REALM_OVERRIDE, system bots' static avatars) and zerver/lib/upload/local.py
// get_avatar_url ("/user_avatars/" + path + ".png" / "-medium.png"). What depends on the S3
// backend or on content-hashed static file names is not reproduced: avatarUrl says why instead.
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
