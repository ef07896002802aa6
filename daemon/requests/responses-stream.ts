// A streamed /v1/responses paid by X-Cashu: routstr-core v0.4.5 finds no usage in that stream,
// so it keeps the whole token and returns no change (ROUTSTR.md section 4; test/world mirrors
// it). The node buffers an X-Cashu stream until it is complete anyway, so nothing is lost by
// asking it for the JSON answer (`stream: false`, whose usage it reads and whose change it
// returns) and streaming that answer to the client as the Responses API's events.
import type { PaidEndpoint } from '../../protocol/openai.ts';
import { responseStreamEvents } from '../../protocol/responses-replay.ts';
import type { Done, ResponseSink } from './contract.ts';

/** Does this request go to the node unstreamed and reach the client as a replayed stream? */
export function replaysStream(endpoint: PaidEndpoint, clientStream: boolean): boolean {
  return endpoint === '/v1/responses' && clientStream;
}

/** The body for an X-Cashu call: a streamed /v1/responses asks for the JSON answer instead. */
export function xcashuBody(endpoint: PaidEndpoint, body: Record<string, unknown>): Record<string, unknown> {
  if (!replaysStream(endpoint, body.stream === true)) return body;
  const { stream_options: _ignored, ...rest } = body;
  return { ...rest, stream: false };
}

/** The JSON answer to the client as the Responses API's stream, then the sink's end (`satroute` event, `[DONE]`). */
export async function replayResponse(sink: ResponseSink, answer: Record<string, unknown>, done: Done): Promise<void> {
  for (const e of responseStreamEvents(answer)) await sink.chunk(e.data, e.event);
  await sink.done(done);
}
