// A page opened as http://user:token@host/... cannot fetch() anything: its base URL keeps the credentials, and the
// Fetch standard refuses a Request whose URL has them (relative URLs inherit them), so a single-page app on it
// never loads its data (bull-board shows raw i18n keys or "Loading"). Go to the same address without the
// credentials: the browser keeps them for this site and answers the server's prompt with them.
const base = new URL(document.baseURI);
if (base.username || base.password) {
  base.username = '';
  base.password = '';
  location.replace(base.href);
}
