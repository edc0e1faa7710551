/**
 * Language tags as MP4 stores them: HLS (and DASH's AdaptationSet@lang) give RFC 5646 / BCP 47 tags,
 * mostly ISO 639-1 ("en", "fr-CA"); an MP4 track's mdhd and ffmpeg's `language=` take ISO 639-2/T
 * three-letter codes. Pure.
 */

/** The common ISO 639-1 codes; anything else two-letter reads 'und' rather than a wrong guess. */
const ISO639_1_TO_2: Record<string, string> = {
  ar: 'ara',
  bg: 'bul',
  bn: 'ben',
  ca: 'cat',
  cs: 'ces',
  cy: 'cym',
  da: 'dan',
  de: 'deu',
  el: 'ell',
  en: 'eng',
  es: 'spa',
  et: 'est',
  eu: 'eus',
  fa: 'fas',
  fi: 'fin',
  fr: 'fra',
  ga: 'gle',
  gl: 'glg',
  he: 'heb',
  hi: 'hin',
  hr: 'hrv',
  hu: 'hun',
  id: 'ind',
  is: 'isl',
  it: 'ita',
  ja: 'jpn',
  ko: 'kor',
  lt: 'lit',
  lv: 'lav',
  ms: 'msa',
  nb: 'nob',
  nl: 'nld',
  nn: 'nno',
  no: 'nor',
  pl: 'pol',
  pt: 'por',
  ro: 'ron',
  ru: 'rus',
  sk: 'slk',
  sl: 'slv',
  sr: 'srp',
  sv: 'swe',
  ta: 'tam',
  th: 'tha',
  tr: 'tur',
  uk: 'ukr',
  ur: 'urd',
  vi: 'vie',
  zh: 'zho',
};

/**
 * ISO 639-2 bibliographic codes some sources use where MP4 wants the terminology (/T) one; the mdhd
 * field is defined as 639-2/T (14496-12 8.4.2.3).
 */
const BIBLIOGRAPHIC_TO_T: Record<string, string> = {
  chi: 'zho',
  cze: 'ces',
  dut: 'nld',
  fre: 'fra',
  ger: 'deu',
  gre: 'ell',
  per: 'fas',
  rum: 'ron',
  slo: 'slk',
};

/** "en", "en-US", "eng", "fre" → the ISO 639-2/T code; null, empty or unknown → 'und'. */
export function iso639_2(tag: string | null | undefined): string {
  const primary = (tag ?? '').trim().toLowerCase().split(/[-_]/)[0] ?? '';
  if (/^[a-z]{3}$/.test(primary)) return BIBLIOGRAPHIC_TO_T[primary] ?? primary;
  return ISO639_1_TO_2[primary] ?? 'und';
}

/** An ISO 639-2/T code packed into mdhd's 15 bits, three 5-bit letters (14496-12 8.4.2.3). */
export function packLanguage(code: string): number {
  const c = /^[a-z]{3}$/.test(code) ? code : 'und';
  return ((c.charCodeAt(0) - 0x60) << 10) | ((c.charCodeAt(1) - 0x60) << 5) | (c.charCodeAt(2) - 0x60);
}
