/**
 * The cluster's Redis pub/sub: every process publishes the job events it makes (submissions, its
 * workers' progress and transitions, its cancellations) and every API node re-emits them all as its
 * feed, so SSE and the live progress overlay answer the same on every node. Cancellation requests
 * travel the same way to whichever worker runs the job.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../service/log.js';
import type { JobEvents } from './queue.js';
import type { Job, JobProgress } from './types.js';

type Message = { kind: 'job'; job: Job } | { kind: 'progress'; id: string; progress: JobProgress };

export class ClusterBus {
  /** Every job event of the cluster, as received from Redis. */
  readonly feed = new EventEmitter<JobEvents>();
  private readonly eventsChannel: string;
  private readonly cancelChannel: string;
  private readonly cancelHandlers = new Set<(id: string) => void>();
  private readonly unfollow: (() => void)[] = [];

  /** `subscriber` is a connection of its own: a subscribed ioredis connection can issue no commands. */
  constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.eventsChannel = `${prefix}:events`;
    this.cancelChannel = `${prefix}:cancel`;
    subscriber.on('message', this.onMessage);
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.eventsChannel, this.cancelChannel);
  }

  /** Publishes `local`'s job and progress events (retries are counted where they happen, not shared). */
  publishFrom(local: EventEmitter<JobEvents>): void {
    const onJob = (job: Job) => this.send({ kind: 'job', job });
    const onProgress = (id: string, progress: JobProgress) => this.send({ kind: 'progress', id, progress });
    local.on('job', onJob);
    local.on('progress', onProgress);
    this.unfollow.push(() => {
      local.off('job', onJob);
      local.off('progress', onProgress);
    });
  }

  requestCancel(id: string): Promise<number> {
    return this.redis.publish(this.cancelChannel, id);
  }

  onCancel(handler: (id: string) => void): () => void {
    this.cancelHandlers.add(handler);
    return () => this.cancelHandlers.delete(handler);
  }

  async close(): Promise<void> {
    for (const stop of this.unfollow) stop();
    this.subscriber.off('message', this.onMessage);
    this.cancelHandlers.clear();
    this.feed.removeAllListeners();
  }

  private send(message: Message): void {
    this.redis.publish(this.eventsChannel, JSON.stringify(message)).catch((err: unknown) => {
      // Lost while Redis restarts: SSE clients miss one update; the stored job stays right.
      this.log.warn({ err: (err as Error).message }, 'could not publish a job event');
    });
  }

  private readonly onMessage = (channel: string, text: string) => {
    if (channel === this.cancelChannel) {
      for (const h of this.cancelHandlers) h(text);
      return;
    }
    if (channel !== this.eventsChannel) return;
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch {
      return;
    }
    if (message.kind === 'job') this.feed.emit('job', message.job);
    else if (message.kind === 'progress') this.feed.emit('progress', message.id, message.progress);
  };
}
