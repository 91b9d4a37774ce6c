// Client rows (zerver/models/clients.py): the "sending client" of messages and user activity.
import type { Queryable } from "../db/db.js";

/** get_client(name): get-or-create a zerver_client row. */
export async function getOrCreateClient(db: Queryable, name: string): Promise<number> {
  const found = await db.query(`SELECT id FROM zerver_client WHERE name = $1`, [name]);
  if (found.rows.length) return Number(found.rows[0].id);
  const r = await db.query(`INSERT INTO zerver_client (name) VALUES ($1) RETURNING id`, [name]);
  return Number(r.rows[0].id);
}
