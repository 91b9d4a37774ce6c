// Zulip's confirmation framework (confirmation/models.py) as rows in the database: keys,
// confirmation types, content types looked up by (app_label, model), and the realm creation
// link, which lives in confirmation_confirmation (type 11) on newer servers and in
// confirmation_realmcreationkey on older ones.
import type { Queryable } from "../db/db.js";
import { generateKey } from "../lib/random.js";
import { EnvironmentError } from "../lib/errors.js";

/** Confirmation.type values (confirmation/models.py). */
export const CONFIRMATION_TYPES = {
  USER_REGISTRATION: 1,
  INVITATION: 2,
  EMAIL_CHANGE: 3,
  UNSUBSCRIBE: 4,
  SERVER_REGISTRATION: 5,
  MULTIUSE_INVITE: 6,
  NEW_REALM_USER_REGISTRATION: 7,
  REALM_REACTIVATION: 8,
  REMOTE_SERVER_BILLING_LEGACY_LOGIN: 9,
  REMOTE_REALM_BILLING_LEGACY_LOGIN: 10,
  CAN_CREATE_REALM: 11,
} as const;

/** Status values of the objects a confirmation points at (confirmation/settings.py; 0 = unused). */
export const CONFIRMATION_STATUS = { UNUSED: 0, USED: 1, REVOKED: 2 } as const;

/**
 * ConfirmationType.validity_in_days of UNSUBSCRIBE (confirmation/models.py: 1000000, "should
 * never expire"); the other types' validity comes from settings.
 */
export const UNSUBSCRIBE_VALIDITY_DAYS = 1_000_000;

// generate_key (confirmation.models.generate_key) is src/lib/random.ts generateKey.

/**
 * django_content_type id for (app_label, model). Like ContentType.objects.get_for_model, the
 * row is created when missing (Django creates them after migrating, so this is rare).
 */
export async function contentTypeId(db: Queryable, appLabel: string, model: string): Promise<number> {
  const found = await db.query("SELECT id FROM django_content_type WHERE app_label = $1 AND model = $2", [appLabel, model]);
  if (found.rows.length) return Number(found.rows[0].id);
  await db.query("INSERT INTO django_content_type (app_label, model) VALUES ($1, $2) ON CONFLICT (app_label, model) DO NOTHING", [appLabel, model]);
  const again = await db.query("SELECT id FROM django_content_type WHERE app_label = $1 AND model = $2", [appLabel, model]);
  return Number(again.rows[0].id);
}

export interface NewConfirmation {
  /** The object the confirmation points at, as (app_label, model) and its id. */
  contentType: { appLabel: string; model: string };
  objectId: number;
  type: number;
  /** NULL for objects not tied to a realm on this server (realm creation). */
  realmId: number | null;
  /** Days of validity (expiry_date = date_sent + timedelta(days): exact 24-hour days); null = never expires. */
  validityDays: number | null;
  now?: Date;
  key?: string;
}

export interface ConfirmationRow {
  id: number;
  key: string;
  dateSent: Date;
  expiryDate: Date | null;
}

const DAY_MS = 86_400_000;

/** create_confirmation_object(): one confirmation_confirmation row with a fresh key. */
export async function insertConfirmation(db: Queryable, c: NewConfirmation): Promise<ConfirmationRow> {
  const ctId = await contentTypeId(db, c.contentType.appLabel, c.contentType.model);
  const now = c.now ?? new Date();
  const key = c.key ?? generateKey();
  const expiry = c.validityDays === null ? null : new Date(now.getTime() + c.validityDays * DAY_MS);
  const { rows } = await db.query(
    `INSERT INTO confirmation_confirmation (content_type_id, object_id, date_sent, confirmation_key, expiry_date, realm_id, type)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
    [ctId, c.objectId, now, key, expiry, c.realmId, c.type],
  );
  return { id: Number(rows[0].id), key, dateSent: now, expiryDate: expiry };
}

/** urljoin(ROOT_DOMAIN_URI, "/new/<key>"): an absolute path replaces any path of the base. */
export function realmCreationUrl(rootDomainUri: string, key: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)/i.exec(rootDomainUri);
  const origin = m ? m[1] : rootDomainUri.replace(/\/+$/, "");
  return `${origin}/new/${key}`;
}

export interface RealmCreationLink {
  url: string;
  key: string;
  createdAt: Date;
  expiresAt: Date;
  /** Where the link was stored: Zulip 11+ (status + confirmation) or older (realmcreationkey). */
  storage: "realmcreationstatus" | "realmcreationkey";
  /** zerver_realmcreationstatus.id or confirmation_realmcreationkey.id */
  objectId: number;
  confirmationId?: number;
}

export interface SchemaProbe extends Queryable {
  hasTable(table: string): Promise<boolean>;
}

/**
 * generate_realm_creation_url(by_admin=True), deciding the storage from the schema:
 * zerver_realmcreationstatus + a CAN_CREATE_REALM confirmation where that table exists,
 * else the older confirmation_realmcreationkey row. Run inside a transaction.
 */
export async function createRealmCreationLink(
  db: SchemaProbe,
  opts: { rootDomainUri: string; validityDays: number; now?: Date; key?: string },
): Promise<RealmCreationLink> {
  const now = opts.now ?? new Date();
  const key = opts.key ?? generateKey();
  const expiresAt = new Date(now.getTime() + opts.validityDays * DAY_MS);
  const url = realmCreationUrl(opts.rootDomainUri, key);
  if (await db.hasTable("zerver_realmcreationstatus")) {
    const status = await db.query(
      `INSERT INTO zerver_realmcreationstatus (status, date_created, presume_email_valid)
       VALUES ($1, $2, true) RETURNING id`,
      [CONFIRMATION_STATUS.UNUSED, now],
    );
    const objectId = Number(status.rows[0].id);
    const conf = await insertConfirmation(db, {
      contentType: { appLabel: "zerver", model: "realmcreationstatus" },
      objectId,
      type: CONFIRMATION_TYPES.CAN_CREATE_REALM,
      realmId: null,
      validityDays: opts.validityDays,
      now,
      key,
    });
    return { url, key, createdAt: now, expiresAt, storage: "realmcreationstatus", objectId, confirmationId: conf.id };
  }
  if (await db.hasTable("confirmation_realmcreationkey")) {
    const { rows } = await db.query(
      `INSERT INTO confirmation_realmcreationkey (creation_key, date_created, presume_email_valid)
       VALUES ($1, $2, true) RETURNING id`,
      [key, now],
    );
    return { url, key, createdAt: now, expiresAt, storage: "realmcreationkey", objectId: Number(rows[0].id) };
  }
  throw new EnvironmentError(
    "This database has neither zerver_realmcreationstatus nor confirmation_realmcreationkey; it does not look like a Zulip database zulip-manage supports.",
    "database_unsupported",
  );
}
