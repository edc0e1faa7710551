/**
 * Continuity and damage accounting of MPEG-TS packets (ISO/IEC 13818-1 2.4.3.3): each packet of a
 * stream against the continuity_counter of the one before it, telling a lost packet, a damaged one
 * (transport_error_indicator) and a duplicate apart, and counting each for the log. Called per
 * packet by the demuxer; its state (counters, the packet before) stays the demuxer's. No I/O.
 */

const PACKET = 188;

/** Continuity of a packet (continuity()). */
export const OK = 0;
export const DUPLICATE = 1;
export const LOST = 2;
export const DAMAGED = 3;

/** What the demuxer found wrong in transport, for the log. */
export interface TransportDamage {
  /** Gaps in a continuity_counter (at least one packet lost each). */
  lost: number;
  /** Packets with transport_error_indicator set. */
  errors: number;
  /** Duplicate packets dropped. */
  duplicates: number;
  /** PES packets shorter than their PES_packet_length. */
  short: number;
}

/**
 * The packet at `k` against its stream's continuity_counter (2.4.3.3): OK, a DUPLICATE of the one
 * before, LOST packets before it, or DAMAGED (transport_error_indicator). The counter advances
 * with every packet that has a payload, and a discontinuity_indicator allows any value. `counters`:
 * each PID's last continuity_counter (-1: none yet); `prev`: the last packet of the chunk before.
 */
export function continuity(
  counters: Int8Array,
  prev: Buffer,
  damage: TransportDamage,
  pid: number,
  b: Buffer,
  k: number,
): number {
  const afc = (b[k + 3]! >> 4) & 0x03;
  const cc = b[k + 3]! & 0x0f;
  const last = counters[pid]!;
  if ((afc & 1) !== 0) counters[pid] = cc;
  if ((b[k + 1]! & 0x80) !== 0) {
    damage.errors++;
    return DAMAGED;
  }
  if ((afc & 1) === 0) return OK;
  if (last < 0) {
    // No counter to go by (the first packet, or the first after a segment boundary): a packet that
    // is byte for byte the one right before it is still a repeat.
    if (!repeats(prev, b, k)) return OK;
    damage.duplicates++;
    return DUPLICATE;
  }
  if (afc === 3 && b[k + 4]! > 0 && (b[k + 5]! & 0x80) !== 0) return OK;
  if (cc === ((last + 1) & 0x0f)) return OK;
  // A repeat must be the same packet; one that differs is another packet with a wrong counter.
  if (cc === last && repeats(prev, b, k)) {
    damage.duplicates++;
    return DUPLICATE;
  }
  damage.lost++;
  return LOST;
}

/** The packet at `k` is the same as the one right before it (in this chunk, or ending the last). */
function repeats(prev: Buffer, b: Buffer, k: number): boolean {
  if (k >= PACKET) return b.compare(b, k - PACKET, k, k, k + PACKET) === 0;
  return prev.compare(b, k, k + PACKET) === 0;
}

export function sumDamage(all: readonly TransportDamage[]): TransportDamage {
  const total: TransportDamage = { lost: 0, errors: 0, duplicates: 0, short: 0 };
  for (const d of all) {
    total.lost += d.lost;
    total.errors += d.errors;
    total.duplicates += d.duplicates;
    total.short += d.short;
  }
  return total;
}

/** What transport damage cost the tracks, in words for the result's warnings; null when no frame was lost. */
export function damageNote(total: TransportDamage, video: number, audio: number): string | null {
  if (video + audio === 0) return null;
  const what = [
    total.lost > 0 ? `${total.lost} lost` : '',
    total.errors > 0 ? `${total.errors} with transport errors` : '',
    total.short > 0 ? `${total.short} cut short` : '',
  ].filter(Boolean);
  return `MPEG-TS packets damaged in transport (${what.join(', ') || 'damaged'}): ${video} video and ${audio} audio frames left out`;
}
