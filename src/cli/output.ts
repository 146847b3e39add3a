/**
 * Everything the CLI prints goes through here: results and tables to stdout, progress and notes to stderr, with the
 * control characters of user data (file names, custom_ids, replies, upstream errors) removed, so that no input can
 * move the cursor, retitle the terminal or hide text. Newlines and tabs stay.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export const printable = (text: string) => text.replace(CONTROL, '');

/** A result line or table, to stdout. */
export const out = (text: string) => process.stdout.write(`${printable(text)}\n`);
/** A note, a progress line or an error, to stderr. */
export const say = (text: string) => process.stderr.write(`${printable(text)}\n`);
