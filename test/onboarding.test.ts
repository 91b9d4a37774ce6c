// process_new_human_user's rows (src/zulip/actions/onboarding.ts) in-process: the welcome
// emails' one-click unsubscribe link is an UNSUBSCRIBE confirmation whose expiry_date is
// date_sent + timedelta(days=1000000) — exactly 1,000,000 × 24 hours, whatever the database
// session's time zone (a PostgreSQL `+ interval '… days'` keeps the local time of day across
// daylight saving time instead).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRealm } from "../src/zulip/actions/create-realm.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { processNewHumanUserRows, type NewUserUrls } from "../src/zulip/actions/onboarding.js";
import { CONFIRMATION_TYPES, UNSUBSCRIBE_VALIDITY_DAYS } from "../src/zulip/confirmation.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";

const DAY_MS = 86_400_000;

describe("onboarding rows", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
  }, 180_000);
  afterAll(async () => {
    await db?.drop();
  });

  it("the unsubscribe confirmation expires 1,000,000 days of 24 hours later, in a session time zone with daylight saving time", async () => {
    const q = db.client;
    await q.query("BEGIN");
    try {
      await q.query("SET LOCAL TimeZone TO 'America/New_York'");
      const realm = await createRealm(q, { stringId: "tz", name: "Time zones" });
      const user = await createUser(q, realm.id, { email: "new@tz.example", fullName: "New", role: 400, externalHost: "zulip.example.net" });
      const urls: NewUserUrls = {
        realmUrl: "https://tz.zulip.example.net",
        rootDomainUrl: "https://zulip.example.net",
        externalUriScheme: "https://",
        externalHost: "zulip.example.net",
        corporateEnabled: false,
        welcomeEmailSender: null,
        realmHosts: {},
        fakeEmailDomain: "zulip.example.net",
      };
      // 20 March is in daylight saving time; 1,000,000 days later is 14 February, which is not.
      const now = new Date("2026-03-20T12:00:00Z");
      const steps = await processNewHumanUserRows(q, user.id, urls, { now });
      const id = steps.welcomeEmails!.unsubscribeConfirmationId;
      const { rows } = await q.query("SELECT type, date_sent, expiry_date, realm_id FROM confirmation_confirmation WHERE id = $1", [id]);
      expect(rows[0].type).toBe(CONFIRMATION_TYPES.UNSUBSCRIBE);
      expect(rows[0].date_sent.getTime()).toBe(now.getTime());
      expect(rows[0].expiry_date.getTime() - now.getTime()).toBe(UNSUBSCRIBE_VALIDITY_DAYS * DAY_MS);
      expect(UNSUBSCRIBE_VALIDITY_DAYS).toBe(1_000_000);
    } finally {
      await q.query("ROLLBACK");
    }
  });
});
