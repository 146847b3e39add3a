/** A URL fit to print: its scheme, host and path, without a user name, password, query or fragment (where keys go). */
export function printableUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** printableUrl of a URL's text; one that does not parse is named, never echoed. */
export function printableUrlText(text: string, what: string): string {
  return URL.canParse(text) ? printableUrl(new URL(text)) : `(unparsable ${what})`;
}
