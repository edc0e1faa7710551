/**
 * Ad and filler skipping: segments whose URL matches one of the request's patterns, and whole
 * discontinuity runs (an inserted ad break; a DASH period in our model) no longer than N seconds.
 * Pure: the request's rules compiled once (at submission too, so a bad pattern is a 422), and the
 * spans of a playlist's timeline they cut out.
 */
import type { JobRequest } from '../../jobs/types.js';
import type { Segment } from '../../playlist/model.js';
import { GabeError } from '../../service/errors.js';
import type { Span } from './clip-window.js';

export interface SkipRules {
  patterns: RegExp[];
  /** Runs lasting at most this many seconds are skipped; null: none. */
  maxRunSeconds: number | null;
}

/**
 * A quantified group that itself holds a quantifier, `(a+)+`, `(\w*)*`, `(x{2,})+`: the shape that
 * backtracks exponentially. JavaScript has no linear-time engine to fall back on, so such patterns
 * are refused; with the schema's 500-character limit and URLs as the only input that keeps matching
 * cheap in practice (not a proof: alternations like `(a|a)*` are not caught).
 */
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*(?:[+*]|\{\d+,\d*\})(?:[^()\\]|\\.)*\)(?:[+*]|\{\d+,\d*\})/;

/** The request's skip rules, or null when it asks for none. Throws VALIDATION for a bad pattern. */
export function skipRules(
  request: Pick<JobRequest, 'skip_segments' | 'skip_discontinuity_runs'>,
): SkipRules | null {
  const sources = request.skip_segments ?? [];
  const maxRunSeconds = request.skip_discontinuity_runs ?? null;
  if (sources.length === 0 && maxRunSeconds === null) return null;
  const patterns = sources.map((source, i) => {
    if (NESTED_QUANTIFIER.test(source)) {
      throw new GabeError(
        'VALIDATION',
        `skip_segments[${i}] nests quantifiers ("${source.slice(0, 60)}"), which can take exponential time`,
      );
    }
    try {
      // 'u': strict syntax (no Annex B leniency: a stray `\_` or `{` is an error, not a literal). Not
      // 'v', whose classes refuse the everyday `[/_-]` unescaped.
      return new RegExp(source, 'u');
    } catch (err) {
      throw new GabeError(
        'VALIDATION',
        `skip_segments[${i}] is not a valid regular expression: ${(err as Error).message}`,
      );
    }
  });
  return { patterns, maxRunSeconds };
}

/** What the rules cut out of one playlist: spans of its timeline, and a note when they declined to. */
export interface SkipDecision {
  spans: Span[];
  warning: string | null;
}

/**
 * The spans of `segments` (timeline `spans`, resolved `urls`) the rules cut out: matching URLs, and
 * runs of at most `maxRunSeconds`, unless every run is that short (then the programme itself is made
 * of short runs and nothing is skipped by length).
 */
export function skipSpans(
  segments: readonly Segment[],
  spans: readonly Span[],
  urls: readonly string[],
  rules: SkipRules,
): SkipDecision {
  const skip = urls.map((u) => rules.patterns.some((p) => p.test(u)));
  let warning: string | null = null;
  if (rules.maxRunSeconds !== null) {
    const runs = runsOf(segments, spans);
    const short = runs.filter((r) => r.seconds <= rules.maxRunSeconds!);
    if (short.length === runs.length) {
      warning = `every discontinuity run lasts ${rules.maxRunSeconds} s or less; none was skipped by length`;
    } else {
      for (const r of short) for (let i = r.first; i <= r.last; i++) skip[i] = true;
    }
  }
  const out: Span[] = [];
  skip.forEach((s, i) => {
    if (!s) return;
    const prev = out.at(-1);
    if (prev && prev.end === spans[i]!.start) prev.end = spans[i]!.end;
    else out.push({ ...spans[i]! });
  });
  return { spans: out, warning };
}

function runsOf(segments: readonly Segment[], spans: readonly Span[]) {
  const runs: { first: number; last: number; seconds: number }[] = [];
  segments.forEach((s, i) => {
    const current = runs.at(-1);
    const seconds = spans[i]!.end - spans[i]!.start;
    if (!current || s.discontinuity) runs.push({ first: i, last: i, seconds });
    else {
      current.last = i;
      current.seconds += seconds;
    }
  });
  return runs;
}
