/**
 * Slots for long-lived event streams. Each open stream holds a socket, a file descriptor, until its
 * client leaves; without a cap, unauthenticated clients opening streams exhausted the process's
 * descriptors (20,000 of them) and with them every download and the database.
 */
import { GabeError } from '../service/errors.js';

/** Seconds a refused client is told to wait: streams usually end with a job or a closed tab. */
const RETRY_AFTER_S = 10;

export class StreamSlots {
  private total = 0;
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
  ) {}

  get open(): number {
    return this.total;
  }

  /**
   * Takes a slot for `client` and returns the function that gives it back (safe to call more than
   * once); throws 503 GABE_ERR_STREAMS_FULL when the client or the service has none left.
   */
  acquire(client: string): () => void {
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.maxPerClient) {
      throw new GabeError(
        'STREAMS_FULL',
        `this client already has ${mine} event streams open (max_event_streams_per_client); close one, or poll GET /job/{id}`,
        { retryAfter: RETRY_AFTER_S },
      );
    }
    if (this.total >= this.maxTotal) {
      throw new GabeError(
        'STREAMS_FULL',
        `the service has ${this.total} event streams open (max_event_streams); try again later, or poll GET /job/{id}`,
        { retryAfter: RETRY_AFTER_S },
      );
    }
    this.total++;
    this.perClient.set(client, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left > 0) this.perClient.set(client, left);
      else this.perClient.delete(client);
    };
  }
}
