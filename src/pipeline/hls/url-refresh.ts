/**
 * Signed segment URLs that expire mid-download: a request refused as expired reloads the track's
 * playlist (once for every request waiting on it) and tries again with the reloaded playlist's URL.
 */
import { GabeError, originStatus } from '../../service/errors.js';
import type { Ticket } from './memory-budget.js';
import { describe } from './segment-checks.js';
import { type FetchContext, type Fetched, fetchPieces, type PieceUrls } from './segment-fetch.js';
import type { TrackOptions } from './track-download.js';
import type { Fetch, Piece, TrackPlan } from './track-plan.js';

/** Signed URLs that expired answer 401, 403, 404 or 410; a fresh playlist has working ones. */
const EXPIRY_STATUSES = new Set([401, 403, 404, 410]);
/** Playlist reloads for one request before its failure is final. */
const MAX_REFRESHES_PER_FETCH = 2;

export function isExpiredUrlError(err: unknown): boolean {
  return EXPIRY_STATUSES.has(originStatus(err) ?? 0);
}

/** Pieces are matched across playlist reloads by media sequence number (RFC 8216 6.2.1). */
function anchorsOf(plan: TrackPlan): string[] {
  const anchors: string[] = new Array(plan.pieces.length);
  let next = '';
  for (let i = plan.pieces.length - 1; i >= 0; i--) {
    const p = plan.pieces[i]!;
    if (p.kind === 'segment') next = String(p.msn);
    anchors[i] = `${p.kind}:${p.kind === 'segment' ? p.msn : next}`;
  }
  return anchors;
}

/** The current URLs of a track's pieces: the plan's, or newer ones from a reloaded playlist. */
export class FreshUrls {
  private readonly fresh = new Map<number, PieceUrls>();
  private refreshing: Promise<void> | null = null;

  constructor(private readonly o: Pick<TrackOptions, 'plan' | 'refresh' | 'log' | 'label'>) {}

  readonly urlsOf = (p: Piece): PieceUrls =>
    this.fresh.get(p.index) ?? { url: p.url, keyUri: p.decrypt?.keyUri ?? null };

  /** True once a reload listed the piece. */
  has(p: Piece): boolean {
    return this.fresh.has(p.index);
  }

  /** Reloads the playlist; every request that finds its URL expired meanwhile waits on the same reload. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const { plan } = this.o;
      const next = await this.o.refresh!();
      // Computed now: a live plan has grown since the track started.
      const anchors = anchorsOf(plan);
      const byAnchor = new Map<string, Piece>();
      anchorsOf(next).forEach((a, i) => {
        byAnchor.set(a, next.pieces[i]!);
      });
      plan.pieces.forEach((p, i) => {
        const q = byAnchor.get(anchors[i]!);
        if (q) this.fresh.set(p.index, { url: q.url, keyUri: q.decrypt?.keyUri ?? null });
      });
      this.o.log.info({ track: this.o.label }, 'reloaded the playlist for fresh segment URLs');
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
}

/** A fetch whose URL expired gets a reloaded playlist's URL and tries again. */
export async function fetchWithRefresh(
  f: Fetch,
  o: TrackOptions,
  context: FetchContext,
  ticket: Ticket,
  urls: FreshUrls,
): Promise<Fetched> {
  const { signal } = context;
  for (let round = 0; ; round++) {
    const before = f.pieces.map((p) => JSON.stringify(urls.urlsOf(p))).join();
    try {
      return await fetchPieces(f, o, context, ticket);
    } catch (err) {
      const expired = isExpiredUrlError(err) || isExpiredUrlError((err as { cause?: unknown }).cause);
      if (!o.refresh || !expired || round >= MAX_REFRESHES_PER_FETCH || signal.aborted) throw err;
      await urls.refresh().catch((reloadErr: unknown) => {
        o.log.warn({ err: (reloadErr as Error).message }, 'reloading the playlist failed');
        throw err;
      });
      if (!urls.has(f.pieces[0]!)) {
        throw new GabeError(
          'SEGMENT',
          `${describe(f.pieces[0]!, o.label)} expired and is no longer listed in the reloaded playlist`,
          { cause: err },
        );
      }
      // Same URLs after a reload: the resource is really gone, not expired.
      if (f.pieces.map((p) => JSON.stringify(urls.urlsOf(p))).join() === before) throw err;
    }
  }
}
