/**
 * NLTK's word_tokenize (nltk.tokenize, 3.8), which the Mem0 paper's BLEU-1 tokenizes with: sentences, then each
 * sentence by NLTKWordTokenizer's rules (the improved Treebank tokenizer: quotes, punctuation, brackets, dashes,
 * contractions), in its order. NLTK splits sentences with its trained Punkt model, which this machine does not have:
 * chatq splits after ".", "?" or "!" (and closing quotes or brackets) followed by a space, except after a single
 * letter or a common abbreviation, which is where Punkt splits ordinary prose.
 */

/** Python's whitespace (str.isspace), as \s matches in NLTK's patterns. */
const S = '\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** A word character as Python's `re` has it on text, and a boundary after or before one. */
const W = '\\p{L}\\p{N}_';
const re = (source: string, flags = '') => new RegExp(source, `gu${flags}`);

type Sub = [RegExp, string];

const STARTING_QUOTES: Sub[] = [
  [re('([«“‘„]|[`]+)'), ' $1 '],
  [re('^"'), '``'],
  [re('(``)'), ' $1 '],
  [re('([ ([{<])("|\'{2})'), '$1 `` '],
  [re(`(')(?!re|ve|ll|m|t|s|d|n)([${W}])(?![${W}])`, 'i'), '$1 $2'],
];

const PUNCTUATION: Sub[] = [
  [re(`([^.])(\\.)([\\])}>"'»”’ ]*)[${S}]*$`), '$1 $2 $3 '],
  [re('([:,])([^\\p{Nd}])'), ' $1 $2'],
  [re('([:,])(?=\\n?$)'), ' $1 '],
  [re('\\.{2,}'), ' $& '],
  [re('[;@#$%&]'), ' $& '],
  [re(`([^.])(\\.)([\\])}>"']*)[${S}]*$`), '$1 $2$3 '],
  [re('[?!]'), ' $& '],
  [re("([^'])' "), "$1 ' "],
  [re('[*]'), ' $& '],
];

const PARENS_BRACKETS: Sub = [re('[\\][(){}<>]'), ' $& '];
const DOUBLE_DASHES: Sub = [re('--'), ' -- '];

const ENDING_QUOTES: Sub[] = [
  [re('([»”’])'), ' $1 '],
  [re("''"), " '' "],
  [re('"'), " '' "],
  [re("([^' ])('[sS]|'[mM]|'[dD]|') "), '$1 $2 '],
  [re("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), '$1 $2 '],
];

const word = (left: string, right: string, after = `(?![${W}])`) => re(`(?<![${W}])(${left})(${right})${after}`, 'i');
const CONTRACTIONS: Sub[] = [
  [word('can', 'not'), ' $1 $2 '],
  [word('d', "'ye"), ' $1 $2 '],
  [word('gim', 'me'), ' $1 $2 '],
  [word('gon', 'na'), ' $1 $2 '],
  [word('got', 'ta'), ' $1 $2 '],
  [word('lem', 'me'), ' $1 $2 '],
  [word('more', "'n"), ' $1 $2 '],
  [word('wan', 'na', `(?=[${S}])`), ' $1 $2 '],
  [re(` ('t)(is)(?![${W}])`, 'i'), ' $1 $2 '],
  [re(` ('t)(was)(?![${W}])`, 'i'), ' $1 $2 '],
];

const SPACES = re(`[${S}]+`);

function tokenizeSentence(sentence: string): string[] {
  let text = sentence;
  const apply = (subs: Sub[]) => {
    for (const [pattern, replacement] of subs) text = text.replace(pattern, replacement);
  };
  apply(STARTING_QUOTES);
  apply(PUNCTUATION);
  apply([PARENS_BRACKETS, DOUBLE_DASHES]);
  text = ` ${text} `;
  apply(ENDING_QUOTES);
  apply(CONTRACTIONS);
  return text.split(SPACES).filter((t) => t !== '');
}

/** Words a period follows without ending a sentence (a single letter does too: an initial). */
const ABBREVIATIONS = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'prof',
  'st',
  'jr',
  'sr',
  'vs',
  'etc',
  'e.g',
  'i.e',
  'inc',
  'ltd',
  'co',
  'corp',
  'no',
  'u.s',
  'u.k',
  'a.m',
  'p.m',
  'jan',
  'feb',
  'mar',
  'apr',
  'jun',
  'jul',
  'aug',
  'sep',
  'sept',
  'oct',
  'nov',
  'dec',
  'mt',
  'ft',
  'fig',
  'vol',
  'approx',
  'dept',
  'est',
  'gen',
  'gov',
  'lt',
  'sgt',
  'capt',
  'col',
  'rev',
  'ave',
]);
/** A sentence's end: ".", "?" or "!" (and closing quotes or brackets), then whitespace. */
const SENTENCE_END = re(`([.?!])["'”’)\\]]*(?=[${S}])`);

/** Sentences, as Punkt splits ordinary prose (see above). */
export function sentences(text: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (const m of text.matchAll(SENTENCE_END)) {
    const end = m.index + m[0].length;
    if (m[1] === '.') {
      const before = /([^\s]+)$/u.exec(text.slice(from, m.index))?.[1]?.toLowerCase() ?? '';
      if (before.length === 1 || ABBREVIATIONS.has(before)) continue;
    }
    out.push(text.slice(from, end));
    from = end;
  }
  if (from < text.length) out.push(text.slice(from));
  return out.filter((s) => s.trim() !== '');
}

/** nltk.word_tokenize(text). */
export function wordTokenize(text: string): string[] {
  return sentences(text).flatMap(tokenizeSentence);
}
