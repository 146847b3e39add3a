/** Small files in the published shapes of LongMemEval and LoCoMo, for tests. */

/** A LongMemEval instance of `sessions` sessions of `turns` turns of `chars` characters each. */
export const lmeInstance = (
  id: string,
  sessions: number,
  turns = 2,
  chars = 10,
  extra: Record<string, unknown> = {},
) => ({
  question_id: id,
  question_type: 'single-session-user',
  question: 'What is my name?',
  answer: 'Ada',
  question_date: '2023/06/01 (Thu) 10:00',
  haystack_dates: Array.from({ length: sessions }, () => '2023/05/01 (Mon) 09:00'),
  haystack_session_ids: Array.from({ length: sessions }, (_, i) => `${id}_s${i}`),
  haystack_sessions: Array.from({ length: sessions }, () =>
    Array.from({ length: turns }, (_, t) => ({ role: t % 2 ? 'assistant' : 'user', content: 'x'.repeat(chars) })),
  ),
  ...extra,
});

/**
 * A LongMemEval instance as the published _S and _oracle files have them: evidence sessions named "answer_…", turns
 * flagged has_answer, dates out of order (its second session is the earliest).
 */
export const publishedLmeInstance = (id = 'e47becba') => ({
  question_id: id,
  question_type: 'single-session-user',
  question: 'What is the name of my beagle?',
  answer: 'Biscuit',
  question_date: '2023/05/30 (Tue) 18:00',
  haystack_dates: ['2023/05/20 (Sat) 10:02', '2023/05/01 (Mon) 09:12', '2023/05/25 (Thu) 08:00'],
  haystack_session_ids: [`answer_${id}_1`, `sharegpt_${id}_0`, `ultrachat_${id}_2`],
  haystack_sessions: [
    [
      { role: 'user', content: 'My beagle has the name Biscuit and he loves the park.', has_answer: true },
      { role: 'assistant', content: 'Biscuit sounds like a happy dog!' },
    ],
    [
      { role: 'user', content: 'Can you recommend a podcast about history?' },
      { role: 'assistant', content: 'Try Hardcore History by Dan Carlin. <|endoftext|>' },
    ],
    [
      { role: 'user', content: 'I am training for a 10k run.' },
      { role: 'assistant', content: 'Good luck with the training!' },
    ],
  ],
  answer_session_ids: [`answer_${id}_1`],
});

/** A LoCoMo sample with its sessions listed out of date order, an integer answer and two category-5 questions. */
export const publishedLocomoSample = () => ({
  sample_id: 'conv-7',
  conversation: {
    speaker_a: 'Caroline',
    speaker_b: 'Melanie',
    session_1_date_time: '1:14 pm on 25 May, 2023',
    session_1: [
      { speaker: 'Melanie', dia_id: 'D1:1', text: 'I ran a charity race for mental health on Saturday.' },
      { speaker: 'Caroline', dia_id: 'D1:2', text: 'So proud of you! I painted my first sunrise in 2022.' },
    ],
    session_2_date_time: '1:56 pm on 8 May, 2023',
    session_2: [
      { speaker: 'Caroline', dia_id: 'D2:1', text: 'I went to the LGBTQ support group yesterday.' },
      {
        speaker: 'Melanie',
        dia_id: 'D2:2',
        text: 'That is great!',
        img_url: ['https://example.invalid/x.jpg'],
        blip_caption: 'a photo of a lake',
      },
    ],
  },
  qa: [
    { question: 'When did Caroline paint her first sunrise?', answer: 2022, evidence: ['D1:2'], category: 2 },
    { question: 'What did Melanie run?', answer: 'a charity race', evidence: ['D1:1'], category: 4 },
    {
      question: 'What did Caroline realize after her charity race?',
      adversarial_answer: 'self-care is important',
      evidence: ['D1:1'],
      category: 5,
    },
    { question: 'Did Caroline go to a book club?', answer: 'No', evidence: [], category: 5 },
  ],
});
