// register_server: register this server with the Mobile Push Notification Service (or update,
// rotate the key of, transfer or deactivate its registration), like
// zerver/management/commands/register_server.py, then upload the server data the service expects
// (send_server_data_to_push_bouncer without usage statistics) and store the per-realm
// push_notifications_enabled answers the way Zulip does.
//
// Differences from manage.py, on purpose:
//  - without a terminal and without --agree-to-terms-of-service we stop (exit 1) and say which
//    flag to pass, instead of waiting on input();
//  - --rotate-key and --registration-transfer check that zulip-secrets.conf can be updated
//    before anything is sent, and the secrets file is replaced atomically (not via crudini);
//  - --rotate-key stores the new key right after the service accepted it, and the data upload
//    that follows authenticates with the new key (manage.py uploads with the old key, which the
//    service has just invalidated, and only then writes the new one);
//  - the database and (for a transfer) Redis are connected to before the service is contacted;
//  - a stuck service cannot hang the command: every request has a deadline (--timeout).
//
// The registration steps and the upload: src/zulip/actions/remote-server.ts; the HTTP client:
// src/services/push-service.ts.
import path from "node:path";
import { Option } from "@commander-js/extra-typings";
import { addEventsOption, addFlushCacheOption } from "../cli/options.js";
import { serverDataJson } from "../cli/json-objects.js";
import type { RegisterServerBody } from "../schemas/register_server.js";
import { defineCommand } from "../cli/command.js";
import type { Db } from "../db/db.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { askYesNo } from "../cli/prompt.js";
import { HostnameInUseError, readZulipVersion } from "../services/push-service.js";
import { connectZulipRedis, type RedisClient, zulipRedisOptions } from "../services/redis.js";
import { checkSecretsWritable } from "../config/secrets-file.js";
import {
  deactivateServerRegistration,
  pushRegistrationSettings,
  pushServiceClient,
  registerServer,
  registrationRequest,
  sendServerDataToPushBouncer,
  storeRotatedKey,
  transferRegistration,
} from "../zulip/actions/remote-server.js";

const TOS_QUESTION = "Do you want to agree to the Zulip Terms of Service and proceed?";

function notice(hostname: string, contactEmail: string): string {
  return (
    "This command registers your server for the Mobile Push Notifications Service.\n" +
    "Doing so will share basic metadata with the service's maintainers:\n\n" +
    `* This server's configured hostname: ${hostname}\n` +
    `* This server's configured contact email address: ${contactEmail}\n` +
    "* Metadata about each organization hosted by the server; see:\n\n" +
    "    <https://zulip.com/doc-permalinks/basic-metadata>\n\n" +
    "Use of this service is governed by the Zulip Terms of Service:\n\n" +
    "    <https://zulip.com/policies/terms>\n"
  );
}

export default defineCommand({
  name: "register_server",
  description:
    "Register a remote Zulip server for push notifications.\n\n" +
    "Registers this server with the Mobile Push Notification Service at ZULIP_SERVICES_URL (or updates its " +
    "registration), uploads the metadata the service needs, and stores each organization's push notification " +
    "status. Requires ZULIP_SERVICE_PUSH_NOTIFICATIONS = True in /etc/zulip/settings.py. Without a terminal, " +
    "pass --agree-to-terms-of-service.",
  examples: [
    "zulip-manage register_server",
    "zulip-manage register_server --agree-to-terms-of-service",
    "zulip-manage register_server --rotate-key",
    "zulip-manage register_server --registration-transfer",
    "zulip-manage register_server --deactivate",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        cmd
          .option("--agree-to-terms-of-service", "Agree to the Zulipchat Terms of Service: https://zulip.com/policies/terms.")
          .addOption(new Option("--rotate-key", "Automatically rotate your server's zulip_org_key").conflicts(["registrationTransfer", "deactivate"]))
          .addOption(
            new Option(
              "--registration-transfer",
              "If your server uses a publicly verifiable SSL certificate for a hostname that is already registered " +
                "for Zulip services, transfers the registration to this server by changing the zulip_org_key secret " +
                "for that registration and saving the updated secret in /etc/zulip/zulip-secrets.conf.",
            ).conflicts(["deactivate"]),
          )
          .option("--deactivate", "Deregister the server; this will stop mobile push notifications")
          .option("--timeout <seconds>", "give up on a request to the service after this many seconds (default: Zulip's 15, and 90 for the data upload)"),
      ),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const config = ctx.config();
    const settings = config.settings;
    const secretsPath = ctx.paths.secretsPath;

    let timeoutMs: number | undefined;
    if (opts.timeout !== undefined) {
      const t = Number(opts.timeout);
      if (!Number.isFinite(t) || t <= 0) throw new UsageError(`argument --timeout: invalid positive number: '${opts.timeout}'`);
      timeoutMs = Math.round(t * 1000);
    }

    // Pre-checks, in manage.py's order.
    const registration = pushRegistrationSettings(config);
    const version = readZulipVersion(ctx.paths.deployDir);
    const client = pushServiceClient(ctx, registration, version, timeoutMs);
    const action = opts.deactivate ? "deactivate" : opts.rotateKey ? "rotate_key" : opts.registrationTransfer ? "registration_transfer" : "register";
    const doc: RegisterServerBody = {
      dry_run: false,
      action,
      services_url: registration.servicesUrl,
      hostname: null,
      contact_email: null,
      agreed_to_terms_of_service: null,
      created: null,
      secrets_updated: [],
      server_data: null,
      restart_required: false,
      requests: [],
    };
    const warn = (text: string) => out.warn(text);

    // The document, also on failure (the runner adds the error from what was thrown).
    const finish = (extra: Partial<RegisterServerBody>) => {
      Object.assign(doc, extra);
      doc.requests = client.exchanges.map((x) => ({
        method: x.method,
        path: x.path,
        sent: x.sent ?? null,
        status: x.status ?? null,
        answer: x.answer ?? null,
        error: x.error ?? null,
      }));
      out.jsonBody<RegisterServerBody>(doc);
    };
    const fail = (e: unknown): never => {
      if (out.json) {
        finish({});
        if (e instanceof HostnameInUseError) throw new CommandError(e.box);
      } else if (e instanceof HostnameInUseError) {
        out.line(e.box);
      }
      throw e;
    };

    if (opts.deactivate) {
      try {
        await deactivateServerRegistration(client);
      } catch (e) {
        fail(e);
      }
      out.line("Mobile Push Notification Service registration successfully deactivated!");
      finish({});
      return;
    }

    const { hostname, contactEmail } = registration;
    if (opts.rotateKey || opts.registrationTransfer) {
      // Both store what the service sends back: refuse now rather than lose it later.
      try {
        checkSecretsWritable(secretsPath);
      } catch (e) {
        fail(e);
      }
    }
    const request = registrationRequest(registration, { rotateKey: Boolean(opts.rotateKey) });
    Object.assign(doc, { hostname, contact_email: contactEmail });

    // Connect to everything we will need before the service changes anything.
    let db: Db;
    let redis: RedisClient | undefined;
    try {
      db = await ctx.db();
      if (opts.registrationTransfer) redis = await connectZulipRedis(zulipRedisOptions(settings, (n) => config.secret(n)));
    } catch (e) {
      fail(e);
    }

    try {
      // print() of a text that already ends with a newline: a blank line follows.
      out.write(notice(hostname, contactEmail) + "\n");

      if (!opts.agreeToTermsOfService && !opts.rotateKey) {
        const agreed = await askYesNo(TOS_QUESTION, {
          defaultYes: true,
          flag: "--agree-to-terms-of-service",
          what: "whether you agree to the Zulip Terms of Service (https://zulip.com/policies/terms)",
          output: out.json ? process.stderr : process.stdout,
        });
        out.line();
        if (!agreed) {
          // Like manage.py: the "n" answer speaks for itself.
          finish({ agreed_to_terms_of_service: false });
          return;
        }
      }

      const secretsUpdated: string[] = [];
      if (opts.registrationTransfer) {
        await transferRegistration(client, redis!, request, secretsPath, (line) => out.line(line));
        secretsUpdated.push("zulip_org_id", "zulip_org_key");
        out.line("Mobile Push Notification Service registration successfully transferred.");
        out.line();
        out.line("Proceeding to update the registration with current metadata...");
      }

      const created = await registerServer(client, request);
      if (!created && opts.rotateKey) {
        out.line(`Success! Updating ${secretsPath} with the new key...`);
        storeRotatedKey(client, request, secretsPath);
        secretsUpdated.push("zulip_org_key");
      }

      const upload = await sendServerDataToPushBouncer({
        ctx,
        db: db!,
        settings,
        client,
        version,
        flushCache: opts.flushCache,
        events: opts.events,
        redisOptions: () => zulipRedisOptions(settings, (n) => config.secret(n)),
        warn,
      });

      if (created) {
        out.line("Your server is now registered for the Mobile Push Notification Service!\nReturn to the documentation for next steps.");
      } else {
        out.line("Mobile Push Notification Service registration successfully updated!");
      }
      const restartHint = Boolean(opts.registrationTransfer);
      if (restartHint) {
        out.line();
        out.line(
          `Make sure to restart the server next by running ${path.join(ctx.paths.deployDir, "scripts", "restart-server")} ` +
            "so that the new credentials are reloaded.",
        );
      }
      finish({
        agreed_to_terms_of_service: opts.rotateKey && !opts.agreeToTermsOfService ? null : true,
        created,
        secrets_updated: secretsUpdated,
        server_data: serverDataJson(settings, upload),
        restart_required: restartHint,
      });
    } catch (e) {
      fail(e);
    } finally {
      redis?.close();
    }
  },
});
