import o200kBase from 'js-tiktoken/ranks/o200k_base';
import { BoundedTokenizer } from './bounded-tokenizer.js';
import type { ChatMessage, ToolDefinition } from './llm-provider.js';

// o200k_base: the encoding of the current OpenAI chat models; for other vendors' models it is an estimate,
// used only when the provider reports no usage and for the budget's worst case (with a margin). Bounded: a
// run's input is up to 100 messages of 100,000 characters each.
let encoder: BoundedTokenizer | undefined;
const encoding = () => (encoder ??= new BoundedTokenizer(o200kBase));

export function countTextTokens(text: string): number {
  return text ? encoding().encode(text).length : 0;
}

/** Tokens of a chat request's input: messages plus their per-message framing (~4 each) plus the tool schemas. */
export function countChatInputTokens(messages: ChatMessage[], tools: ToolDefinition[] = []): number {
  let n = 3;
  for (const m of messages) {
    n += 4;
    if (m.role === 'tool') n += countTextTokens(m.content);
    else if (m.role === 'assistant') n += countTextTokens(m.content ?? '') + (m.toolCalls ?? []).reduce((s, c) => s + countTextTokens(c.name) + countTextTokens(c.arguments) + 4, 0);
    else n += countTextTokens(m.content);
  }
  for (const t of tools) n += countTextTokens(JSON.stringify(t)) + 4;
  return n;
}
