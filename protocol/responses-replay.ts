// A finished OpenAI Responses object replayed as the Responses API's streaming events, in the
// order OpenAI sends them (response.created, response.in_progress, then per output item
// output_item.added, its content parts with their deltas, output_item.done, and
// response.completed | incomplete | failed), each with `type` and `sequence_number`.
//
// Why: routstr-core v0.4.5 finds no usage in a streamed /v1/responses answer, so in X-Cashu
// mode it keeps the whole token and mints no change (ROUTSTR.md section 4). The daemon asks
// such a node for the JSON answer and streams it to its client from here; the official openai
// client (`responses.create({ stream: true })`, `responses.stream()`) reads these events as
// it reads OpenAI's. The node buffers an X-Cashu stream until it is complete anyway, so the
// client waits no longer for its first event than before.

type Json = Record<string, unknown>;

/** One SSE event: its `event:` name and its data (whose `type` is the same name). */
export interface ReplayEvent {
  event: string;
  data: Json;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The streaming events that carry `response`, a Responses API answer (`object: "response"`). */
export function responseStreamEvents(response: Json): ReplayEvent[] {
  const out: ReplayEvent[] = [];
  const emit = (type: string, fields: Json) => out.push({ event: type, data: { type, sequence_number: out.length, ...fields } });
  const output = Array.isArray(response.output) ? response.output.filter(isObject) : [];
  const started = { ...response, status: 'in_progress', output: [], usage: null, incomplete_details: null, error: null };
  emit('response.created', { response: started });
  emit('response.in_progress', { response: started });
  output.forEach((item, outputIndex) => {
    const itemId = typeof item.id === 'string' ? item.id : `item_${outputIndex}`;
    if (item.type === 'message') {
      const content = Array.isArray(item.content) ? item.content.filter(isObject) : [];
      emit('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', content: [] } });
      content.forEach((part, contentIndex) => {
        const at = { item_id: itemId, output_index: outputIndex, content_index: contentIndex };
        if (part.type === 'output_text') {
          const text = typeof part.text === 'string' ? part.text : '';
          emit('response.content_part.added', { ...at, part: { ...part, text: '', annotations: [] } });
          if (text) emit('response.output_text.delta', { ...at, delta: text, logprobs: [] });
          emit('response.output_text.done', { ...at, text, logprobs: [] });
        } else if (part.type === 'refusal') {
          const refusal = typeof part.refusal === 'string' ? part.refusal : '';
          emit('response.content_part.added', { ...at, part: { ...part, refusal: '' } });
          if (refusal) emit('response.refusal.delta', { ...at, delta: refusal });
          emit('response.refusal.done', { ...at, refusal });
        } else {
          emit('response.content_part.added', { ...at, part });
        }
        emit('response.content_part.done', { ...at, part });
      });
    } else if (item.type === 'function_call') {
      const args = typeof item.arguments === 'string' ? item.arguments : '';
      emit('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', arguments: '' } });
      const at = { item_id: itemId, output_index: outputIndex };
      if (args) emit('response.function_call_arguments.delta', { ...at, delta: args });
      emit('response.function_call_arguments.done', { ...at, arguments: args });
    } else {
      // Reasoning, tool calls and the rest: the whole item at once.
      emit('response.output_item.added', { output_index: outputIndex, item });
    }
    emit('response.output_item.done', { output_index: outputIndex, item });
  });
  const end = response.status === 'incomplete' ? 'response.incomplete' : response.status === 'failed' ? 'response.failed' : 'response.completed';
  emit(end, { response });
  return out;
}
