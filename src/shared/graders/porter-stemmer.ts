/**
 * The Porter stemmer as NLTK's PorterStemmer() stems (its default mode, NLTK_EXTENSIONS: Porter's algorithm with
 * Martin Porter's and NLTK's amendments), which LoCoMo's F1 stems with: the same rules in the same order, so that a
 * word stems here as it does there (checked against NLTK 3.8 in test/graders.test.ts). Words are lowercased.
 */

const VOWELS = new Set(['a', 'e', 'i', 'o', 'u']);

/** Forms NLTK stems by a table. */
const IRREGULAR: Record<string, string> = {
  sky: 'sky',
  skies: 'sky',
  dying: 'die',
  lying: 'lie',
  tying: 'tie',
  news: 'news',
  innings: 'inning',
  inning: 'inning',
  outings: 'outing',
  outing: 'outing',
  cannings: 'canning',
  canning: 'canning',
  howe: 'howe',
  proceed: 'proceed',
  exceed: 'exceed',
  succeed: 'succeed',
};

/**
 * A letter other than a vowel, and a "y" that follows a vowel or begins the word: along a run of y's the answer
 * alternates from the run's first, so it is found without recursion (a word of many y's cannot overflow the stack).
 */
function isConsonant(word: string, i: number): boolean {
  const c = word[i]!;
  if (VOWELS.has(c)) return false;
  if (c !== 'y') return true;
  let start = i;
  while (start > 0 && word[start - 1] === 'y') start -= 1;
  const first = start === 0 || VOWELS.has(word[start - 1]!);
  return (i - start) % 2 === 0 ? first : !first;
}

/** m: the number of vowel-consonant sequences ([C](VC){m}[V]). */
function measure(stem: string): number {
  let m = 0;
  for (let i = 1; i < stem.length; i++) if (!isConsonant(stem, i - 1) && isConsonant(stem, i)) m += 1;
  return m;
}

const positive = (stem: string) => measure(stem) > 0;

function containsVowel(stem: string): boolean {
  for (let i = 0; i < stem.length; i++) if (!isConsonant(stem, i)) return true;
  return false;
}

const endsDoubleConsonant = (w: string) => w.length >= 2 && w.at(-1) === w.at(-2) && isConsonant(w, w.length - 1);

/** *o: the stem ends consonant-vowel-consonant, the last not w, x or y; or (NLTK) is two letters, vowel-consonant. */
function endsCvc(w: string): boolean {
  const n = w.length;
  return (
    (n >= 3 &&
      isConsonant(w, n - 3) &&
      !isConsonant(w, n - 2) &&
      isConsonant(w, n - 1) &&
      !['w', 'x', 'y'].includes(w[n - 1]!)) ||
    (n === 2 && !isConsonant(w, 0) && isConsonant(w, 1))
  );
}

/** [suffix, replacement, condition on the stem]; "*d" stands for a double consonant. */
type Rule = [string, string, ((stem: string) => boolean) | null];

/** The first rule whose suffix the word ends with decides: its replacement when the condition holds, else no change. */
function applyRules(word: string, rules: Rule[]): string {
  for (const [suffix, replacement, condition] of rules) {
    if (suffix === '*d' && endsDoubleConsonant(word)) {
      const stem = word.slice(0, -2);
      return condition === null || condition(stem) ? stem + replacement : word;
    }
    if (word.endsWith(suffix)) {
      const stem = word.slice(0, word.length - suffix.length);
      return condition === null || condition(stem) ? stem + replacement : word;
    }
  }
  return word;
}

function step1a(word: string): string {
  if (word.endsWith('ies') && word.length === 4) return `${word.slice(0, -3)}ie`;
  return applyRules(word, [
    ['sses', 'ss', null],
    ['ies', 'i', null],
    ['ss', 'ss', null],
    ['s', '', null],
  ]);
}

function step1b(word: string): string {
  if (word.endsWith('ied')) return word.length === 4 ? `${word.slice(0, -3)}ie` : `${word.slice(0, -3)}i`;
  if (word.endsWith('eed')) {
    const stem = word.slice(0, -3);
    return measure(stem) > 0 ? `${stem}ee` : word;
  }
  let stem: string | undefined;
  for (const suffix of ['ed', 'ing']) {
    if (word.endsWith(suffix) && containsVowel(word.slice(0, word.length - suffix.length))) {
      stem = word.slice(0, word.length - suffix.length);
      break;
    }
  }
  if (stem === undefined) return word;
  const last = stem.at(-1) ?? '';
  return applyRules(stem, [
    ['at', 'ate', null],
    ['bl', 'ble', null],
    ['iz', 'ize', null],
    ['*d', last, () => !['l', 's', 'z'].includes(last)],
    ['', 'e', (s) => measure(s) === 1 && endsCvc(s)],
  ]);
}

const step1c = (word: string) =>
  applyRules(word, [['y', 'i', (stem) => stem.length > 1 && isConsonant(stem, stem.length - 1)]]);

function step2(word: string): string {
  if (word.endsWith('alli') && positive(word.slice(0, -4))) return step2(`${word.slice(0, -4)}al`);
  return applyRules(word, [
    ['ational', 'ate', positive],
    ['tional', 'tion', positive],
    ['enci', 'ence', positive],
    ['anci', 'ance', positive],
    ['izer', 'ize', positive],
    ['bli', 'ble', positive],
    ['alli', 'al', positive],
    ['entli', 'ent', positive],
    ['eli', 'e', positive],
    ['ousli', 'ous', positive],
    ['ization', 'ize', positive],
    ['ation', 'ate', positive],
    ['ator', 'ate', positive],
    ['alism', 'al', positive],
    ['iveness', 'ive', positive],
    ['fulness', 'ful', positive],
    ['ousness', 'ous', positive],
    ['aliti', 'al', positive],
    ['iviti', 'ive', positive],
    ['biliti', 'ble', positive],
    ['fulli', 'ful', positive],
    ['logi', 'log', () => positive(word.slice(0, -3))],
  ]);
}

const step3 = (word: string) =>
  applyRules(word, [
    ['icate', 'ic', positive],
    ['ative', '', positive],
    ['alize', 'al', positive],
    ['iciti', 'ic', positive],
    ['ical', 'ic', positive],
    ['ful', '', positive],
    ['ness', '', positive],
  ]);

function step4(word: string): string {
  const over1 = (stem: string) => measure(stem) > 1;
  return applyRules(word, [
    ['al', '', over1],
    ['ance', '', over1],
    ['ence', '', over1],
    ['er', '', over1],
    ['ic', '', over1],
    ['able', '', over1],
    ['ible', '', over1],
    ['ant', '', over1],
    ['ement', '', over1],
    ['ment', '', over1],
    ['ent', '', over1],
    ['ion', '', (stem) => measure(stem) > 1 && ['s', 't'].includes(stem.at(-1) ?? '')],
    ['ou', '', over1],
    ['ism', '', over1],
    ['ate', '', over1],
    ['iti', '', over1],
    ['ous', '', over1],
    ['ive', '', over1],
    ['ize', '', over1],
  ]);
}

function step5a(word: string): string {
  if (!word.endsWith('e')) return word;
  const stem = word.slice(0, -1);
  const m = measure(stem);
  return m > 1 || (m === 1 && !endsCvc(stem)) ? stem : word;
}

const step5b = (word: string) => applyRules(word, [['ll', 'l', () => measure(word.slice(0, -1)) > 1]]);

/** A word's stem, as NLTK's PorterStemmer().stem(word) gives it. */
export function porterStem(word: string): string {
  if (Object.hasOwn(IRREGULAR, word)) return IRREGULAR[word]!;
  const lower = word.toLowerCase();
  if (word.length <= 2) return lower;
  return step5b(step5a(step4(step3(step2(step1c(step1b(step1a(lower))))))));
}
