/**
 * Everything the CLI prints goes through here: results and tables to stdout, progress and notes to stderr, with the
 * control characters of user data (file names, custom_ids, replies, upstream errors) removed, so that no input can
 * move the cursor, retitle the terminal or hide text. Newlines and tabs stay.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export const printable = (text: string) => text.replace(CONTROL, '');

const ANY_CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
/** One table cell's text: every control character shown escaped (\n, \t, \u001b), so that no value makes a row of its own. */
export const cellText = (text: string) =>
  text.replace(ANY_CONTROL, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * Ends the command with one line and exit 2 when `stream` (stdout, or an -o file) cannot be written: a full disk, a
 * missing directory, no permission. A closed pipe (`chatq results B | head`) ends it quietly with 0.
 */
export function exitOnWriteError(stream: NodeJS.WritableStream, what: string): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    say(
      `chatq: cannot write ${what}: ${err.code ?? err.message}${err.code ? ` (${err.message.replace(/^[A-Z]+: /, '').split(',')[0]})` : ''}`,
    );
    process.exit(2);
  });
}

/** A result line or table, to stdout. */
export const out = (text: string) => process.stdout.write(`${printable(text)}\n`);
/** A note, a progress line or an error, to stderr. */
export const say = (text: string) => process.stderr.write(`${printable(text)}\n`);
