// The daemon's live events (contract.ts DaemonEvents): the lifecycle publishes one `payments`
// event per settled request and again on each late change; the daemon publishes `providers`
// events from the breakers, the statistics and the market. A listener that throws is logged
// and kept: one broken subscriber never stops the request path.
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import type { DaemonEvent, DaemonEvents } from './contract.ts';

export class EventHub implements DaemonEvents {
  private readonly listeners = new Set<(e: DaemonEvent) => void>();

  constructor(private readonly logger: Logger = nullLogger) {}

  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(e: DaemonEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.logger.warn('event listener failed', { topic: e.topic, error: (err as Error).message });
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
