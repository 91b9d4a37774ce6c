// HTML pieces shared by the email templates: escaping (Jinja2's autoescape), Zulip's email
// macros (templates/zerver/emails/macros.html) and the default email layout
// (email_base_default.html), written out with inline styles in place of Zulip's CSS inliner.

/** Jinja2/MarkupSafe escape(): & < > " ' */
export function escapeHtml(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&#34;").replace(/'/g, "&#39;");
}

/**
 * The escaping of text in the HTML of messages we render ourselves (the stand-in for Zulip's
 * Markdown in src/zulip/plain-markdown.ts, and the seed builder's messages): & < > " ' as &amp; &lt; &gt; &quot;
 * &#39;. Not the same bytes as escapeHtml's &#34; for '"' (MarkupSafe), which the email
 * templates need.
 */
export function escapeMessageHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/**
 * Python-Markdown's escaping of text (markdown/serializers.py _escape_cdata): & < > escaped,
 * character references already in the text kept — its RE_AMP,
 * `&(?!(?:\#[0-9]+|\#x[0-9a-f]+|[0-9a-z]+);)` with re.I. Used by the Markdown renderer of custom
 * emails (markdown.ts) and for the text of channel links and mentions in the messages Zulip's
 * Markdown renders (actions/channels.ts).
 */
export function escapeMarkdownText(s: string): string {
  return s
    .replace(/&(?!(?:#[0-9]+|#x[0-9a-f]+|[0-9a-z]+);)/gi, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}

/** escapeMarkdownText() and '"' as &quot;: an attribute value in Python-Markdown's output. */
export function escapeMarkdownAttr(s: string): string {
  return escapeMarkdownText(s).replace(/"/g, "&quot;");
}

/** macros.email_tag(email, text) */
export function emailTag(email: string, text?: string): string {
  return `<a href="mailto:${escapeHtml(email)}">${escapeHtml(text ?? email)}</a>`;
}

/** macros.link_tag(url, text) */
export function linkTag(url: string, text?: string): string {
  return `<a href="${escapeHtml(url)}">${escapeHtml(text ?? url)}</a>`;
}

export interface BaseLayout {
  /** settings.STATIC_URL + "images/emails" */
  emailImagesBaseUrl: string;
  /** settings.PHYSICAL_ADDRESS */
  physicalAddress: string;
  /** The illustration block's image file name (e.g. "email_logo.png"), or none. */
  illustration?: string;
  /** Already-escaped HTML of the content block. */
  content: string;
}

const FONT = "font-family: 'Source Sans 3', 'Helvetica Neue', Helvetica, Arial, sans-serif";

/** email_base_default.html with the content block filled in. */
export function emailBaseDefault(layout: BaseLayout): string {
  const img = escapeHtml(layout.emailImagesBaseUrl);
  const illustration = layout.illustration ? `<img src="${img}/${escapeHtml(layout.illustration)}" alt="" style="max-width: 100%;"/>` : "";
  return `<!DOCTYPE html>
<html lang="en">
    <head>
        <meta name="viewport" content="width=device-width" />
        <meta charset="UTF-8" />
        <title>Zulip</title>
    </head>
    <body class="default-email-font-settings" style="${FONT}; font-size: 16px; line-height: 1.4; color: hsl(0, 0%, 20%); background-color: hsl(0, 0%, 100%); margin: 0; padding: 0;">
        <table border="0" cellpadding="0" cellspacing="0" class="body layout" style="border-collapse: separate; width: 100%;">
            <tr>
                <td>&nbsp;</td>
                <td class="container" style="display: block; margin: 0 auto; max-width: 600px; padding: 10px;">
                    <div class="content" style="box-sizing: border-box; display: block; margin: 0 auto; max-width: 600px; padding: 10px;">
                        <a href="#" class="illustration">
                            ${illustration}
                        </a>
                        <span class="preheader" style="display: none;"></span>
                        <table class="main layout" style="border-collapse: separate; width: 100%; background: hsl(0, 0%, 100%); border-radius: 6px;">
                            <tr>
                                <td class="wrapper" style="box-sizing: border-box; padding: 20px;">
                                    <table border="0" cellpadding="0" cellspacing="0" class="layout" style="border-collapse: separate; width: 100%;">
                                        <tr>
                                            <td>
${layout.content}
                                            </td>
                                        </tr>
                                    </table>
                                    <img class="bottom-illustration" src="${img}/footer.png" alt="Swimming fish" style="max-width: 100%;"/>
                                </td>
                            </tr>
                        </table>
                        <div class="footer" style="clear: both; margin-top: 10px; text-align: center; width: 100%;">
                            <table border="0" cellpadding="0" cellspacing="0" class="layout" style="border-collapse: separate; width: 100%;">
                                <tr>
                                    <td class="footer-content-block" style="font-size: 12px; color: hsl(0, 0%, 60%); text-align: center;">
                                        <span class="physical-address">${escapeHtml(layout.physicalAddress)}</span>
                                    </td>
                                </tr>
                            </table>
                        </div>
                    </div>
                </td>
                <td>&nbsp;</td>
            </tr>
        </table>
    </body>
</html>
`;
}

/** Inline style Zulip's stylesheet gives `a.button`. */
export const BUTTON_STYLE =
  "display: block; margin: 20px auto; padding: 10px 20px; width: fit-content; border-radius: 4px; background-color: hsl(213, 81%, 60%); color: hsl(0, 0%, 100%); text-decoration: none; font-weight: 600; text-align: center;";
