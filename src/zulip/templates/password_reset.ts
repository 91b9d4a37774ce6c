// Zulip's password reset email (templates/zerver/emails/password_reset.{subject.txt,txt,html}),
// rendered in English. The plain-text body reproduces what Jinja2 makes of Zulip's template
// with the plain-text engine's trim_blocks/lstrip_blocks byte for byte — including the missing
// line break before the help link in the deactivated-user variant, which real Zulip servers send
// too.
import { BUTTON_STYLE, emailBaseDefault, emailTag, escapeHtml, linkTag } from "./html.js";

export interface PasswordResetContext {
  /** The address the email is about (the user's delivery_email). */
  email: string;
  realmUrl: string;
  realmName: string;
  /** An active account in this realm: the email carries the reset link. */
  activeAccountInRealm: boolean;
  resetUrl?: string;
  /** The account exists but is deactivated (no link; points at the reactivation help). */
  userDeactivated?: boolean;
  /** Realms where the same address has an active account (only used without an active account here). */
  otherRealmUrls?: string[];
  emailImagesBaseUrl: string;
  physicalAddress: string;
}

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

function passwordResetSubject(realmName: string): string {
  // render → .strip() → newlines removed
  return `Password reset request for ${realmName}`.trim().replace(/\n/g, "");
}

export function passwordResetText(c: PasswordResetContext): string {
  let out = `Somebody (possibly you) requested a new password for the Zulip account ${c.email} on ${c.realmUrl}.`;
  out += "\n";
  if (c.activeAccountInRealm) {
    out += "Click the link below to reset your password.\n";
    out += `${c.resetUrl ?? ""}\n`;
  } else {
    if (c.userDeactivated) {
      out += `You previously had an account on ${c.realmUrl}, but it has been deactivated. You can contact an organization administrator to reactivate your account.`;
      out += `${c.realmUrl}/help/deactivate-or-reactivate-a-user\n`;
    } else {
      out += "You do not have an account in that Zulip organization.";
    }
    out += "\n";
    if (c.otherRealmUrls && c.otherRealmUrls.length > 0) {
      out += "\n";
      out += "You do have active accounts in the following organization(s).\n";
      for (const url of c.otherRealmUrls) out += `${url}\n`;
      out += "\n";
      out += "You can try logging in or resetting your password in the organization(s) above.";
    }
  }
  out += "\n";
  out += "If you do not recognize this activity, you can safely ignore this email.";
  return out;
}

function passwordResetHtml(c: PasswordResetContext): string {
  const p = (inner: string) => `<p>\n    ${inner}\n</p>`;
  const parts: string[] = [];
  parts.push(p(`Somebody (possibly you) requested a new password for the Zulip account ${emailTag(c.email)} on ${linkTag(c.realmUrl)}.`));
  if (c.activeAccountInRealm) {
    parts.push(
      p(
        `Click the button below to reset your password.\n    <a class="button" href="${escapeHtml(c.resetUrl ?? "")}" style="${BUTTON_STYLE}">Reset password</a>`,
      ),
    );
  } else {
    if (c.userDeactivated) {
      const help = `${c.realmUrl}/help/deactivate-or-reactivate-a-user`;
      parts.push(
        p(
          `You previously had an account on ${linkTag(c.realmUrl)}, but it has been deactivated. You can contact an organization administrator to <a href="${escapeHtml(help)}">reactivate your account</a>.`,
        ),
      );
    } else {
      parts.push(p("You do not have an account in that Zulip organization."));
    }
    if (c.otherRealmUrls && c.otherRealmUrls.length > 0) {
      parts.push(p("You do have active accounts in the following organization(s)."));
      parts.push(`<ul>\n${c.otherRealmUrls.map((u) => `    <li>${escapeHtml(u)}</li>`).join("\n")}\n</ul>`);
      parts.push(p("You can try logging in or resetting your password in the organization(s) above."));
    }
  }
  parts.push(p("If you do not recognize this activity, you can safely ignore this email."));
  return emailBaseDefault({
    emailImagesBaseUrl: c.emailImagesBaseUrl,
    physicalAddress: c.physicalAddress,
    illustration: "email_logo.png",
    content: parts.join("\n"),
  });
}

export function renderPasswordReset(c: PasswordResetContext): RenderedEmail {
  return { subject: passwordResetSubject(c.realmName), text: passwordResetText(c), html: passwordResetHtml(c) };
}
