// SQL text we build ourselves (table and column names read from the catalog, never user input).

/** A quoted SQL identifier, as pg's escapeIdentifier and PostgreSQL's quote_ident write it. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** A possibly schema-qualified name ("zulip.zerver_message"), each part quoted. */
export function quoteQualified(name: string): string {
  return name.split(".").map(quoteIdent).join(".");
}
