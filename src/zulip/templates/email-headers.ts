// The file of a custom email (send_custom_email's --markdown-template-path): optional RFC 822
// headers (`Subject:`, `From:` — the sender's name) parsed as Python's email.parser does
// (policy=default), then the Markdown body; and get_header(), which reconciles a header with its
// command-line option (zerver/management/commands/send_custom_email.py, zerver/lib/send_email.py).
import { crypto } from "../../lib/builtins.js";
import { CommandError } from "../../lib/errors.js";

export interface EmailTemplateFile {
  /** The file text with newlines normalized as Python's text mode reads it. */
  text: string;
  /** First value of each header, by lower-cased name. */
  headers: Map<string, string>;
  /** The payload: everything after the headers and their blank separator line. */
  body: string;
  /** sha256(text)[0:32] */
  hash: string;
}

const HEADER_LINE = /^(From |[\x21-\x39\x3b-\x7e]*:|[\t ])/;

/** Parse the headers the way Python's email.parser does (including its quirks, see below). */
export function parseEmailTemplate(raw: string): EmailTemplateFile {
  // open() in text mode: universal newlines. The hash is of this text.
  const text = raw.replace(/\r\n?/g, "\n");
  const hash = crypto().createHash("sha256").update(text, "utf8").digest("hex").slice(0, 32);
  const lines = text.split(/(?<=\n)/);
  const headerLines: string[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (!HEADER_LINE.test(line)) {
      // A blank line ends the headers (and is consumed); any other line is the start of the
      // body (Python records a MissingHeaderBodySeparatorDefect and keeps the line).
      if (line === "\n") i++;
      break;
    }
    headerLines.push(line);
  }
  const body = lines.slice(i).join("");
  const headers = new Map<string, string>();
  let last: { name: string; value: string } | null = null;
  const flush = () => {
    if (last && !headers.has(last.name.toLowerCase())) {
      headers.set(
        last.name.toLowerCase(),
        last.value
          .replace(/\n/g, "")
          .replace(/^[ \t]+/, "")
          .trimEnd(),
      );
    }
  };
  headerLines.forEach((line) => {
    if (line[0] === " " || line[0] === "\t") {
      if (last) last.value += line; // a continuation line (its leading whitespace is kept)
      return; // else FirstHeaderLineIsContinuationDefect: ignored
    }
    if (line.startsWith("From ")) return; // the unix "From " envelope line (first line) or a misplaced one
    const colon = line.indexOf(":");
    if (colon <= 0) return; // InvalidHeaderDefect
    flush();
    last = { name: line.slice(0, colon), value: line.slice(colon + 1) };
  });
  flush();
  return { text, headers, body, hash };
}

/** get_header(): exactly one of the option and the template header must be given. */
export function getHeader(option: string | undefined | null, header: string | undefined | null, name: string): string {
  if (option && header) throw new CommandError(`Argument '${name}' is ambiguously present in both options and email template.`);
  if (!option && !header) throw new CommandError(`Argument '${name}' is required in either options or email template.`);
  return String(option || header);
}
