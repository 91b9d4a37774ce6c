// Email address validation as Django's validate_email (django.core.validators.EmailValidator)
// does it, which is what Zulip applies to addresses people enter.
//
// validateEmailAddress(value) returns null for a valid address, or the reason it is invalid.
// Rules (Django 5.x): at most 320 characters; one "@" splitting user and domain (the last one);
// the user part is a dot-atom of RFC 5322 atext or a quoted string; the domain is "localhost", a
// bracketed IPv4/IPv6 literal, or dot-separated labels of letters, digits and hyphens (1-63
// characters, no leading/trailing hyphen) ending in a 2-63 character top-level label, checked
// again after IDNA (punycode) conversion when it contains non-ASCII letters.
import net from "node:net";
import { domainToASCII } from "node:url";

const USER_DOT_ATOM = /^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*$/i;
const USER_QUOTED = /^"([\x01-\x08\x0b\x0c\x0e-\x1f!#-[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"$/i;
const DOMAIN = /^((?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+)(?:[A-Z0-9-]{2,63}(?<!-))$/i;
const LITERAL = /^\[([A-F0-9:.]+)\]$/i;

const MAX_EMAIL_LENGTH = 320;

function validDomain(domain: string): boolean {
  if (domain === "localhost" || DOMAIN.test(domain)) return true;
  const literal = LITERAL.exec(domain);
  if (literal) return net.isIP(literal[1]) !== 0;
  return false;
}

export function validateEmailAddress(value: string): string | null {
  if (!value || !value.includes("@")) return "it has no '@'";
  if (value.length > MAX_EMAIL_LENGTH) return `it is longer than ${MAX_EMAIL_LENGTH} characters`;
  const at = value.lastIndexOf("@");
  const user = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (!USER_DOT_ATOM.test(user) && !USER_QUOTED.test(user)) return `'${user}' is not a valid local part`;
  if (validDomain(domain)) return null;
  // Non-ASCII domains are checked in their IDNA form.
  if (/[^\x00-\x7f]/.test(domain)) {
    const ascii = domainToASCII(domain);
    if (ascii && validDomain(ascii)) return null;
  }
  return `'${domain}' is not a valid domain`;
}
