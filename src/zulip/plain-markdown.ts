// The stand-in for Zulip's Markdown processor in the rows we write ourselves (realm and
// channel descriptions, messages): paragraphs of escaped text.
import { escapeMessageHtml } from "./templates/html.js";

/** A minimal stand-in for Zulip's Markdown: paragraphs of escaped text. */
export function renderPlainMarkdown(text: string): string {
  if (text.trim() === "") return "";
  return text
    .split(/\n{2,}/)
    .map((p) => `<p>${escapeMessageHtml(p).replace(/\n/g, "<br>\n")}</p>`)
    .join("\n");
}
