// reactivate_realm: manage.py reactivate_realm (do_reactivate_realm).
//
// One transaction (the realm row locked): deactivated=false, scheduled_deletion_date=NULL and
// the REALM_REACTIVATED audit row {"10": ROLE_COUNT} (acting user NULL, as Zulip hardcodes it).
// The deactivated_redirect is kept, sessions and email are untouched; memcached gets Zulip's
// flush_realm (the cached profiles of the realm's active users).
//
// --json prints one document:
//   {
//     "realm": {"id": 2, "string_id": "zulip", "name": "Zulip Dev"},
//     "dry_run": false,
//     "already_active": false,
//     "reactivated": true,
//     "audit_log_id": 124,              // null when nothing was done
//     "deactivated_redirect": "https://..." | null,   // kept as it is
//     "cache": {...} | null             // as in change_user_role
//   }
import { addFlushCacheOption, CacheInvalidation } from "../lib/cache.js";
import { defineCommand } from "../lib/command.js";
import { addRealmOption, getRealm, type Realm } from "../lib/lookup.js";
import { cacheJson, lockRealm, reactivateRealm } from "../lib/realm-lifecycle.js";

export default defineCommand({
  name: "reactivate_realm",
  description:
    "Script to reactivate a deactivated realm.\n\n" +
    "Users of the organization can log in again; its redirect URL (if any) is kept.",
  examples: ["zulip-manage reactivate_realm -r zulip", "zulip-manage reactivate_realm -r 2 --dry-run"],
  configure(cmd) {
    cmd.usage("[options] -r REALM");
    addRealmOption(cmd, { required: true });
    cmd.option("--dry-run", "show what would change, and change nothing");
    addFlushCacheOption(cmd);
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm)) as Realm;
    const realmArg: string = opts.realm;
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const result = {
      realm: { id: Number(realm.id), string_id: realm.string_id, name: realm.name },
      dry_run: dryRun,
      already_active: !realm.deactivated,
      reactivated: false,
      audit_log_id: null as number | null,
      deactivated_redirect: (realm.deactivated_redirect ?? null) as string | null,
      cache: null as ReturnType<typeof cacheJson>,
    };
    const finish = () => {
      if (out.json) out.jsonResult(result);
      return 0;
    };
    if (!realm.deactivated) {
      out.line(`Realm ${realmArg} is already active.`);
      return finish();
    }
    if (dryRun) {
      out.line(`Would reactivate ${realmArg}.`);
      out.line("(dry run: nothing was changed)");
      return finish();
    }
    out.line(`Reactivating ${realmArg}`);
    const r = await db.tx(async (q) => {
      const locked = await lockRealm(q, realm.id);
      if (!locked.deactivated) return null;
      return reactivateRealm(q, locked, { cache: inval });
    });
    if (r === null) {
      result.already_active = true;
      out.line(`Realm ${realmArg} is already active.`);
      return finish();
    }
    inval.changeCommitted();
    result.reactivated = true;
    result.audit_log_id = r.auditLogId;
    result.cache = cacheJson(await inval.commit());
    out.line("Done!");
    return finish();
  },
});
