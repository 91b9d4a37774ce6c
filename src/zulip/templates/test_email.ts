// The wording of Zulip's send_test_email (zerver/management/commands/send_test_email.py), which
// extends Django's sendtestemail command.

export const TEST_EMAIL_SUBJECT = "Zulip email test";
export const TEST_NOREPLY_EMAIL_SUBJECT = "Zulip noreply email test";
export const TEST_MANAGERS_SUBJECT = "Zulip manager email test";
export const TEST_MANAGERS_BODY = "This email was sent to the site managers.";
export const TEST_ADMINS_SUBJECT = "Zulip admins email test";
export const TEST_ADMINS_BODY = "This email was sent to the site admins.";

export const TEST_EMAIL_BODY =
  "Success!  If you receive this message (and a second with a different subject), " +
  "you've successfully configured sending emails from your Zulip server.  " +
  "Remember that you need to restart " +
  "the Zulip server with /home/zulip/deployments/current/scripts/restart-server " +
  "after changing the settings in /etc/zulip before your changes will take effect.";

/** What the command prints before sending. */
export const TEST_EMAIL_PREAMBLE = [
  "If you run into any trouble, read:",
  "",
  "  https://zulip.readthedocs.io/en/latest/production/email.html#troubleshooting",
  "",
  "The most common error is not setting `ADD_TOKENS_TO_NOREPLY_ADDRESS=False` when",
  "using an email provider that doesn't support that feature.",
  "",
  "Sending 2 test emails from:",
];

export function testEmailSuccessLine(addresses: string[]): string {
  return `Successfully sent 2 emails to ${addresses.join(", ")}!`;
}
